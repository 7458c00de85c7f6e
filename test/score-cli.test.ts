import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli/main.ts';
import { capture, type Captured } from './eval-helpers.ts';

const run = (a: string[]): Promise<number> => main(['score', ...a]);

/* eslint-disable @typescript-eslint/no-explicit-any -- fixtures are untyped JSON */
function fixture(name: string): any {
  return JSON.parse(readFileSync(new URL(`./fixtures/shared/metrics/${name}`, import.meta.url), 'utf8'));
}
const caption = fixture('captioning.json');
const vqa = fixture('vqa.json');
const cls = fixture('classification.json');

const dir = mkdtempSync(join(tmpdir(), 'flamingo-score-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
/** Writes `content` (JSON-encoded unless already a string) to a fresh temp file and returns its path. */
function write(content: unknown, ext = 'json'): string {
  const path = join(dir, `f${fileCounter++}.${ext}`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

type Outcome = Captured;

const score = (args: string[]): Promise<Outcome> => capture(run, args);

async function scoreJson(args: string[]): Promise<any> {
  const o = await score([...args, '--json']);
  assert.equal(o.code, 0, o.stderr);
  assert.equal(o.stderr, '');
  const lines = o.stdout.split('\n');
  assert.equal(lines.length, 2, 'exactly one line');
  assert.equal(lines[1], '');
  return JSON.parse(lines[0]!);
}

/** A data error: exit 1, one message line naming the file, no stack trace. */
async function dataError(args: string[], ...mustContain: (string | RegExp)[]): Promise<string> {
  const o = await score(args);
  assert.equal(o.code, 1, `expected exit 1, got ${o.code}; stderr: ${o.stderr}`);
  assert.equal(o.stdout, '');
  assert.doesNotMatch(o.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(o.stderr.trimEnd().split('\n').length, 1, o.stderr);
  for (const m of mustContain) {
    if (typeof m === 'string') assert.ok(o.stderr.includes(m), `stderr should contain ${JSON.stringify(m)}: ${o.stderr}`);
    else assert.match(o.stderr, m);
  }
  return o.stderr;
}

const TOL = 1e-9;
function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= TOL, `${what}: got ${actual}, expected ${expected}`);
}

// ---------------------------------------------------------------- captioning files from the fixture

function cocoAnnotations(images: any[]): any {
  let annId = 1;
  return {
    info: {},
    images: images.map((im) => ({ id: im.id, file_name: `COCO_val2014_${im.id}.jpg` })),
    annotations: images.flatMap((im) => im.references.map((caption: string) => ({ image_id: im.id, id: annId++, caption }))),
  };
}

const capAnn = write(cocoAnnotations(caption.images));
const capRes = write(caption.images.map((im: any) => ({ image_id: im.id, caption: im.candidate })));
const CAPTION_KEYS = ['CIDEr', 'Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'ROUGE_L'];

function checkCaptionOutput(out: any, expected: any, label: string): void {
  assert.deepEqual(Object.keys(out), CAPTION_KEYS);
  for (const k of CAPTION_KEYS) close(out[k], expected[k], `${label} ${k}`);
}

test('captioning --tokenized reproduces the fixture corpus scores', async () => {
  const out = await scoreJson(['--task', 'captioning', '--annotations', capAnn, '--results', capRes, '--tokenized']);
  checkCaptionOutput(out, caption.expected, 'full');
});

test('captioning evaluates only the images present in the results', async () => {
  for (const s of caption.subsets) {
    const ids = new Set<number>(s.image_ids);
    // Results in reverse order: the evaluated set, not the file order, determines the scores.
    const res = write(caption.images.filter((im: any) => ids.has(im.id)).reverse().map((im: any) => ({ image_id: im.id, caption: im.candidate })));
    const out = await scoreJson(['--task', 'captioning', '--annotations', capAnn, '--results', res, '--tokenized']);
    checkCaptionOutput(out, s.expected, s.name);
  }
});

test('captioning without --tokenized PTB-tokenizes raw captions first', async () => {
  // Capitalise and punctuate every caption; PTB tokenization must undo exactly that.
  const raw = (s: string) => `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
  const ann = write(cocoAnnotations(caption.images.map((im: any) => ({ ...im, references: im.references.map(raw) }))));
  const res = write(caption.images.map((im: any) => ({ image_id: im.id, caption: `"${raw(im.candidate)}"` })));
  const out = await scoreJson(['--task', 'captioning', '--annotations', ann, '--results', res]);
  checkCaptionOutput(out, caption.expected, 'raw');
  // The same files scored as if tokenized give different numbers, so the tokenizer did the work.
  const asIs = await scoreJson(['--task', 'captioning', '--annotations', ann, '--results', res, '--tokenized']);
  assert.ok(Math.abs(asIs.CIDEr - caption.expected.CIDEr) > 1e-3);
});

test('captioning table output lists every metric', async () => {
  const o = await score(['--task', 'captioning', '--annotations', capAnn, '--results', capRes, '--tokenized']);
  assert.equal(o.code, 0);
  for (const k of CAPTION_KEYS) assert.match(o.stdout, new RegExp(`${k}\\s+\\d+\\.\\d{4}`));
  assert.match(o.stdout, /40 images/);
});

// ---------------------------------------------------------------- VQA files from the fixture

const vqaQuestions = write({
  info: {}, task_type: 'Open-Ended', data_type: 'mscoco', data_subtype: 'val2014', license: {},
  questions: vqa.questions.map((q: any) => ({ question_id: q.question_id, image_id: q.image_id, question: q.question })),
});
const vqaAnnotations = write({
  annotations: vqa.questions.map((q: any) => ({
    question_id: q.question_id, image_id: q.image_id, question_type: q.question_type, answer_type: q.answer_type,
    multiple_choice_answer: q.answers[0],
    answers: q.answers.map((answer: string, j: number) => ({ answer, answer_confidence: 'yes', answer_id: j + 1 })),
  })),
});
const vqaResults = write(vqa.questions.map((q: any) => ({ question_id: q.question_id, answer: q.prediction })));
const vqaArgs = (results: string) => ['--task', 'vqa', '--questions', vqaQuestions, '--annotations', vqaAnnotations, '--results', results];

test('vqa reproduces the fixture accuracy and per-answer-type percentages exactly', async () => {
  const out = await scoreJson(vqaArgs(vqaResults));
  assert.deepEqual(Object.keys(out), ['accuracy', 'per_answer_type']);
  assert.equal(out.accuracy, vqa.expected.overall_accuracy);
  assert.deepEqual(out.per_answer_type, vqa.expected.per_answer_type);
});

test('vqa scores only the questions in the results', async () => {
  const subset = vqa.questions.filter((q: any) => q.answer_type === 'number');
  const res = write(subset.map((q: any) => ({ question_id: q.question_id, answer: q.prediction })));
  const out = await scoreJson(vqaArgs(res));
  assert.equal(out.accuracy, vqa.expected.per_answer_type.number);
  assert.deepEqual(out.per_answer_type, { number: vqa.expected.per_answer_type.number });
});

// ---------------------------------------------------------------- classification files from the fixture

test('classification reproduces the binary fixture ROC-AUC', async () => {
  const b = cls.binary;
  const ann = write(b.labels.map((label: number, i: number) => JSON.stringify({ id: 100 + i, img: `img/${i}.png`, label })).join('\n') + '\n', 'jsonl');
  const res = write(b.scores.map((score: number, i: number) => ({ id: 100 + i, score })));
  const out = await scoreJson(['--task', 'classification', '--annotations', ann, '--results', res]);
  assert.deepEqual(Object.keys(out), ['roc_auc', 'accuracy']);
  close(out.roc_auc, b.expected_roc_auc, 'roc_auc');
});

test('classification accuracy at 0.5 agrees with OpenFlamingo argmax on the Hateful Memes fixture', async () => {
  const hm = cls.hateful_memes;
  const ann = write(hm.items.map((it: any) => JSON.stringify({ id: it.id, label: it.gt_label === 'yes' ? 1 : 0 })).join('\n'), 'jsonl');
  const res = write(hm.items.map((it: any, i: number) => ({ id: it.id, score: hm.expected.pred_score[i] })));
  const out = await scoreJson(['--task', 'classification', '--annotations', ann, '--results', res]);
  close(out.roc_auc, hm.expected.roc_auc, 'roc_auc');
  const correct = hm.items.filter((it: any, i: number) => hm.expected.pred_label[i] === it.gt_label).length;
  close(out.accuracy, correct / hm.items.length, 'accuracy');
});

// ---------------------------------------------------------------- errors

const capArgs = (ann: string, res: string) => ['--task', 'captioning', '--annotations', ann, '--results', res, '--tokenized'];

test('unreadable and invalid JSON files are data errors naming the file', async () => {
  const missing = join(dir, 'does-not-exist.json');
  await dataError(capArgs(missing, capRes), missing, 'cannot read');
  const broken = write('{"images": [', 'json');
  await dataError(capArgs(broken, capRes), broken, 'invalid JSON');
  const brokenRes = write('[{"image_id": 1,}]');
  await dataError(capArgs(capAnn, brokenRes), brokenRes, 'invalid JSON');
});

test('malformed entries are reported with file, index and id', async () => {
  const noCaption = write([{ image_id: 100001, caption: 'a dog' }, { image_id: 100002 }]);
  await dataError(capArgs(capAnn, noCaption), noCaption, 'entry 1', '100002', '"caption"');
  const wrongType = write([{ image_id: 100001, caption: 42 }]);
  await dataError(capArgs(capAnn, wrongType), wrongType, 'entry 0', 'must be a string');
  const badId = write([{ image_id: 1.5, caption: 'x' }]);
  await dataError(capArgs(capAnn, badId), badId, 'entry 0', 'image_id');
  const notArray = write({ image_id: 1, caption: 'x' });
  await dataError(capArgs(capAnn, notArray), notArray, 'array');
  const annNoImages = write({ annotations: [] });
  await dataError(capArgs(annNoImages, capRes), annNoImages, '"images"');
  const annBadRef = write({ images: [{ id: 1 }], annotations: [{ image_id: 2, caption: 'x' }] });
  await dataError(capArgs(annBadRef, capRes), annBadRef, 'entry 0', 'image_id 2');
});

test('result ids missing from the annotations, duplicates and empty results are data errors', async () => {
  const unknown = write([{ image_id: 100001, caption: 'a' }, { image_id: 999, caption: 'b' }]);
  await dataError(capArgs(capAnn, unknown), unknown, 'entry 1', '999', 'not found', capAnn);
  const stringId = write([{ image_id: '100001', caption: 'a' }]);
  await dataError(capArgs(capAnn, stringId), stringId, 'same JSON type');
  const dup = write([{ image_id: 100001, caption: 'a' }, { image_id: 100002, caption: 'b' }, { image_id: 100001, caption: 'c' }]);
  await dataError(capArgs(capAnn, dup), dup, 'entry 2', 'duplicate', 'entry 0');
  const empty = write([]);
  await dataError(capArgs(capAnn, empty), empty, 'empty');
  const noRefs = write({ images: [{ id: 7 }], annotations: [] });
  const res7 = write([{ image_id: 7, caption: 'x' }]);
  await dataError(capArgs(noRefs, res7), res7, 'no reference captions');
});

test('vqa data errors: unknown question, duplicate result, bad answers', async () => {
  const unknown = write([{ question_id: 123, answer: 'yes' }]);
  await dataError(vqaArgs(unknown), unknown, 'entry 0', 'question_id 123', vqaQuestions);
  const first = vqa.questions[0].question_id;
  const dup = write([{ question_id: first, answer: 'yes' }, { question_id: first, answer: 'no' }]);
  await dataError(vqaArgs(dup), dup, 'entry 1', 'duplicate');
  const noAnswer = write([{ question_id: first }]);
  await dataError(vqaArgs(noAnswer), noAnswer, '"answer"');
  const badAnn = write({ annotations: [{ question_id: first, answer_type: 'yes/no', question_type: 'is', answers: ['yes'] }] });
  await dataError(['--task', 'vqa', '--questions', vqaQuestions, '--annotations', badAnn, '--results', vqaResults], badAnn, 'answers[0]');
  const qMissing = write({ questions: [] });
  const res = write([{ question_id: first, answer: 'yes' }]);
  await dataError(['--task', 'vqa', '--questions', qMissing, '--annotations', vqaAnnotations, '--results', res], res, 'not found', qMissing);
});

test('classification data errors: bad label line, bad score, one class only', async () => {
  const badLabel = write('{"id": 1, "label": 0}\n\n{"id": 2, "label": "yes"}\n', 'jsonl');
  const res = write([{ id: 1, score: 0.2 }, { id: 2, score: 0.9 }]);
  await dataError(['--task', 'classification', '--annotations', badLabel, '--results', res], badLabel, 'line 3', '"label"');
  const badJsonl = write('{"id": 1, "label": 0}\n{oops\n', 'jsonl');
  await dataError(['--task', 'classification', '--annotations', badJsonl, '--results', res], badJsonl, 'line 2', 'invalid JSON');
  const ann = write('{"id": 1, "label": 0}\n{"id": 2, "label": 1}\n{"id": 3, "label": 1}\n', 'jsonl');
  const badScore = write([{ id: 1, score: 'high' }]);
  await dataError(['--task', 'classification', '--annotations', ann, '--results', badScore], badScore, 'entry 0', '"score"');
  const oneClass = write([{ id: 2, score: 0.9 }, { id: 3, score: 0.4 }]);
  await dataError(['--task', 'classification', '--annotations', ann, '--results', oneClass], oneClass, 'both classes');
});

test('usage errors exit 2; --help exits 0', async () => {
  const cases: string[][] = [
    [],
    ['--task', 'nope'],
    ['--task', 'captioning', '--results', capRes],
    ['--task', 'captioning', '--annotations', capAnn, '--results', capRes, '--bogus'],
    ['--task', 'vqa', '--questions', vqaQuestions, '--annotations', vqaAnnotations, '--results', vqaResults, '--tokenized'],
    ['--task', 'captioning', '--annotations', capAnn, '--results', capRes, 'extra'],
  ];
  for (const args of cases) {
    const o = await score(args);
    assert.equal(o.code, 2, `args ${JSON.stringify(args)}: ${o.stderr}`);
    assert.match(o.stderr, /^flamingo score: .*\(see 'flamingo score --help'\)\n$/);
  }
  const help = await score(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--task captioning/);
});
