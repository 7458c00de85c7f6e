import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inferKey, loadTaskData } from '../src/eval/data-args.ts';
import { EvalDatasetError, formatPattern, defaultImagePattern, type VqaItem, type CaptionItem, type ClassificationItem } from '../src/eval/datasets/index.ts';
import { readCocoCaptions } from '../src/eval/formats-captions.ts';
import { FIXTURES } from './eval-helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'flamingo-eval-ds-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/* eslint-disable @typescript-eslint/no-explicit-any -- fixture JSON */
const readJson = (p: string): any => JSON.parse(readFileSync(p, 'utf8'));

test('image name patterns (Python %-format)', () => {
  assert.equal(formatPattern('COCO_val2014_%012d.jpg', 42), 'COCO_val2014_000000000042.jpg');
  assert.equal(formatPattern('%s.jpg', 'ab12'), 'ab12.jpg');
  assert.equal(formatPattern('%d%%.png', 7), '7%.png');
  assert.throws(() => formatPattern('%d.jpg', 'abc'), /not an integer/);
  assert.throws(() => formatPattern('plain.jpg', 1), /no %d or %s/);
  assert.equal(defaultImagePattern('vqav2', 'support'), 'COCO_train2014_%012d.jpg');
  assert.equal(defaultImagePattern('okvqa', 'query'), 'COCO_val2014_%012d.jpg');
  assert.equal(defaultImagePattern('textvqa', 'query'), '%s.jpg');
  assert.equal(defaultImagePattern('vizwiz', 'query'), '%s');
});

test('COCO Karpathy: train → support, test → query (val ignored), ids are cocoids, images resolve', () => {
  const d = loadTaskData('coco', [join(FIXTURES, 'coco')], {});
  const raw = readJson(join(FIXTURES, 'coco/dataset_coco.json')).images;
  assert.equal(d.kind, 'captioning');
  assert.deepEqual(d.support.map((x) => x.id), raw.filter((r: any) => r.split === 'train').map((r: any) => r.cocoid));
  assert.deepEqual(d.query.map((x) => x.id), raw.filter((r: any) => r.split === 'test').map((r: any) => r.cocoid));
  const q = d.query[0] as CaptionItem;
  assert.deepEqual(q.captions, raw.find((r: any) => r.cocoid === q.id).sentences.map((s: any) => s.raw));
  assert.equal(q.media.files[0], join(FIXTURES, 'coco/val2014', raw.find((r: any) => r.cocoid === q.id).filename));
  const [img] = q.media.load();
  assert.equal(img!.width, 16);
  // The scorer's annotations are written from the same json, COCO style.
  const spec = d.scoring(tmp, d.query);
  assert.equal(spec.task, 'captioning');
  const ann = readCocoCaptions(spec.annotations);
  assert.deepEqual(ann.imageIds, d.query.map((x) => x.id));
  assert.deepEqual(ann.references.get(q.id), q.captions);
});

test('Flickr30K Karpathy: ids are file stems, images under flickr30k_images', () => {
  const d = loadTaskData('flickr30k', [join(FIXTURES, 'flickr30k')], {});
  assert.deepEqual(d.query.map((x) => x.id), ['3003', '3004', '3005']);
  assert.equal(d.support.length, 3);
  assert.equal(d.query[0]!.media.files[0], join(FIXTURES, 'flickr30k/flickr30k_images/3003.png'));
});

test('VQA family: questions joined with annotations by question_id; patterns pick the image files', () => {
  const cases: [string, string[]][] = [
    ['vqav2', ['train_pattern=COCO_train2014_%012d.png', 'test_pattern=COCO_val2014_%012d.png']],
    ['okvqa', ['train_pattern=COCO_train2014_%012d.png', 'test_pattern=COCO_val2014_%012d.png']],
    ['textvqa', ['train_pattern=%s.png', 'test_pattern=%s.png']],
    ['vizwiz', []],
  ];
  for (const [task, keys] of cases) {
    const d = loadTaskData(task as 'vqav2', [join(FIXTURES, task), ...keys], {});
    assert.equal(d.kind, 'vqa', task);
    assert.equal(d.support.length, 4, task);
    assert.equal(d.query.length, 3, task);
    const spec = d.scoring(tmp, d.query);
    assert.equal(spec.task, 'vqa');
    const qs = readJson((spec as { questions: string }).questions).questions;
    const anns = readJson((spec as { annotations: string }).annotations).annotations;
    for (const it of d.query as VqaItem[]) {
      const q = qs.find((x: any) => x.question_id === it.id);
      assert.equal(it.question, q.question);
      assert.deepEqual(it.answers, anns.find((a: any) => a.question_id === it.id).answers.map((a: any) => a.answer));
      assert.equal(it.media.load().length, 1);
    }
  }
});

test('VQAv2 with the default .jpg pattern names the missing file', () => {
  assert.throws(
    () => loadTaskData('vqav2', [join(FIXTURES, 'vqav2')], {}),
    (e: Error) => e instanceof EvalDatasetError && /COCO_val2014_000000000510\.jpg/.test(e.message) && /file not found/.test(e.message) && /--skip-invalid/.test(e.message),
  );
});

test('Hateful Memes jsonl: labels, OCR text, img paths; the query jsonl is the scorer annotation file', () => {
  const d = loadTaskData('hateful_memes', [join(FIXTURES, 'hateful_memes')], {});
  const lines = readFileSync(join(FIXTURES, 'hateful_memes/dev_seen.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(d.query.map((x) => [(x as ClassificationItem).id, (x as ClassificationItem).label, (x as ClassificationItem).text]), lines.map((l: any) => [l.id, l.label, l.text]));
  const spec = d.scoring(tmp, d.query);
  assert.deepEqual(spec, { task: 'classification', annotations: join(FIXTURES, 'hateful_memes/dev_seen.jsonl') });
});

test('MSRVTT-QA: video_id → frame folder videoN, F frames per video, VQA-format scoring files', () => {
  const d = loadTaskData('msrvtt_qa', [join(FIXTURES, 'msrvtt_qa')], { frames: 2 });
  assert.equal(d.kind, 'video_qa');
  const q = d.query[0] as VqaItem;
  assert.equal(q.media.files[0], join(FIXTURES, 'msrvtt_qa/frames/video7010'));
  assert.equal(q.media.load().length, 2);
  const all = loadTaskData('msrvtt_qa', [join(FIXTURES, 'msrvtt_qa')], { frames: 8 });
  assert.equal(all.query[0]!.media.load().length, 3, 'fewer frames on disk than asked: all of them');
  const spec = d.scoring(tmp, d.query) as { task: string; questions: string; annotations: string };
  const anns = readJson(spec.annotations).annotations;
  assert.equal(anns.length, 3);
  assert.equal(anns[0].answers.length, 10);
  assert.ok(anns[0].answers.every((a: any) => a.answer === q.answers[0]));
});

test('missing media: error names the file, or skip-and-count with skipInvalid', () => {
  const dir = join(tmp, 'hm');
  cpSync(join(FIXTURES, 'hateful_memes'), dir, { recursive: true });
  unlinkSync(join(dir, 'img/42011.png'));
  assert.throws(() => loadTaskData('hateful_memes', [dir], {}), /42011\.png: file not found/);
  const d = loadTaskData('hateful_memes', [dir], { skipInvalid: true });
  assert.equal(d.query.length, 3);
  assert.deepEqual(d.skipped.map((s) => [s.split, s.id]), [['query', 42011]]);
});

test('malformed annotation files name the file and entry', () => {
  assert.throws(() => loadTaskData('coco', [`annotations=${join(FIXTURES, 'hateful_memes/train.jsonl')}`, `images=${FIXTURES}`], {}), /train\.jsonl: invalid JSON/);
  assert.throws(() => loadTaskData('coco', [join(tmp, 'nope')], {}), /not a folder/);
  assert.throws(() => loadTaskData('msrvtt_qa', [`train=${join(FIXTURES, 'coco/dataset_coco.json')}`, join(FIXTURES, 'msrvtt_qa')], {}), /dataset_coco\.json: expected a JSON array/);
});

test('--data accepts annotation files directly; their role comes from the file name', () => {
  assert.equal(inferKey('vqav2', 'v2_mscoco_val2014_annotations.json'), 'test_annotations');
  assert.equal(inferKey('vqav2', 'v2_OpenEnded_mscoco_train2014_questions.json'), 'train_questions');
  assert.equal(inferKey('hateful_memes', 'dev_seen.jsonl'), 'test');
  assert.equal(inferKey('coco', 'dataset_coco.json'), 'annotations');
  const v = join(FIXTURES, 'vizwiz');
  const d = loadTaskData('vizwiz', [
    join(v, 'train_questions_vqa_format.json'), join(v, 'train_annotations_vqa_format.json'), `train_images=${join(v, 'train')}`,
    join(v, 'val_questions_vqa_format.json'), join(v, 'val_annotations_vqa_format.json'), `test_images=${join(v, 'val')}`,
  ], {});
  assert.equal(d.query.length, 3);
  assert.equal(d.support.length, 4);
  const c = loadTaskData('coco', [join(FIXTURES, 'coco/dataset_coco.json'), `images=${join(FIXTURES, 'coco')}`], {});
  assert.equal(c.query.length, 2);
  assert.throws(() => loadTaskData('coco', [join(FIXTURES, 'hateful_memes/train.jsonl')], {}), /cannot tell which coco file/);
});
