import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli/main.ts';
import { capture, FIXTURES, saveModelDir, tinyModel, tinyTokenizer } from './eval-helpers.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- results/summary JSON */
const tmp = mkdtempSync(join(tmpdir(), 'flamingo-eval-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let modelDir = '';
before(() => {
  const tok = tinyTokenizer();
  modelDir = saveModelDir(join(tmp, 'model'), tok, tinyModel(tok, 9));
});

// Through the CLI's entry point, so errors are reported (one line, exit code) as a user sees them.
const evalRun = (a: string[]): Promise<number> => main(['eval', ...a]);
const scoreRun = (a: string[]): Promise<number> => main(['score', ...a]);
const readJson = (p: string): any => JSON.parse(readFileSync(p, 'utf8'));
const FAST = ['--max-new-tokens', '4', '--quiet', '--json'];

const TASKS: { task: string; data: string[]; shape: string[]; score: string }[] = [
  { task: 'coco', data: [], shape: ['image_id', 'caption'], score: 'captioning' },
  { task: 'flickr30k', data: [], shape: ['image_id', 'caption'], score: 'captioning' },
  { task: 'vqav2', data: ['train_pattern=COCO_train2014_%012d.png', 'test_pattern=COCO_val2014_%012d.png'], shape: ['question_id', 'answer'], score: 'vqa' },
  { task: 'okvqa', data: ['train_pattern=COCO_train2014_%012d.png', 'test_pattern=COCO_val2014_%012d.png'], shape: ['question_id', 'answer'], score: 'vqa' },
  { task: 'textvqa', data: ['train_pattern=%s.png', 'test_pattern=%s.png'], shape: ['question_id', 'answer'], score: 'vqa' },
  { task: 'vizwiz', data: [], shape: ['question_id', 'answer'], score: 'vqa' },
  { task: 'hateful_memes', data: [], shape: ['id', 'score'], score: 'classification' },
  { task: 'msrvtt_qa', data: [], shape: ['question_id', 'answer'], score: 'vqa' },
];

/** `flamingo score` arguments for this run's results file. */
function scoreArgs(spec: any, results: string): string[] {
  const args = ['--task', spec.task, '--results', results, '--annotations', spec.annotations];
  if (spec.questions) args.push('--questions', spec.questions);
  return args;
}

for (const t of TASKS) {
  test(`flamingo eval ${t.task}: 0 and 2 shots, official results files scored like flamingo score`, async () => {
    const out = join(tmp, `out-${t.task}`);
    const r = await capture(evalRun, ['--model', modelDir, '--task', t.task, '--data', join(FIXTURES, t.task), ...t.data.flatMap((d) => ['--data', d]),
      '--shots', '0,2', '--seeds', '1', '--max-items', '3', '--batch-size', '2', '--out', out, ...FAST]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.deepEqual(readJson(join(out, 'summary.json')).results.map((x: any) => x.shots), [0, 2]);
    assert.deepEqual(summary.results.map((x: any) => x.trials.length), [1, 1]);
    assert.ok(summary.items >= 2 && summary.items <= 3);
    assert.ok(existsSync(join(out, 'score_vs_shots.svg')));
    const spec = summary.settings.scoring;
    assert.equal(spec.task, t.score);
    for (const shot of summary.results) {
      const trial = shot.trials[0];
      const results = readJson(trial.resultsFile);
      assert.ok(Array.isArray(results));
      assert.equal(results.length, summary.items);
      for (const e of results) assert.deepEqual(Object.keys(e), t.shape);
      const s = await capture(scoreRun, [...scoreArgs(spec, trial.resultsFile), '--json']);
      if (t.score === 'classification' && /only one class|both classes/.test(s.stderr)) continue;
      assert.equal(s.code, 0, s.stderr);
      const scored = JSON.parse(s.stdout);
      const expected = t.score === 'captioning' ? 100 * scored.CIDEr : t.score === 'vqa' ? scored.accuracy : 100 * scored.roc_auc;
      assert.ok(Math.abs(trial.score - expected) < 1e-9, `${trial.score} vs flamingo score ${expected}`);
      assert.equal(shot.mean, trial.score);
      assert.equal(shot.std, 0);
    }
  });
}

test('determinism: the same seed gives byte-identical results files', async () => {
  const args = (out: string, seeds: string) => ['--model', modelDir, '--task', 'coco', '--data', join(FIXTURES, 'coco'), '--shots', '2', '--seeds', seeds,
    '--out', out, '--max-new-tokens', '6', '--quiet'];
  assert.equal((await capture(evalRun, args(join(tmp, 'det-a'), '5'))).code, 0);
  assert.equal((await capture(evalRun, args(join(tmp, 'det-b'), '5'))).code, 0);
  const name = 'coco_random_2shot_seed5_results.json';
  assert.deepEqual(readFileSync(join(tmp, 'det-a', name)), readFileSync(join(tmp, 'det-b', name)));
});

test('RICES end to end: support features cached on disk and reused by the next run', async () => {
  const out = join(tmp, 'rices');
  const cache = join(tmp, 'rices-cache');
  const args = ['--model', modelDir, '--task', 'hateful_memes', '--data', join(FIXTURES, 'hateful_memes'), '--shots', '2', '--seeds', '0',
    '--selection', 'rices', '--cache-dir', cache, '--out', out];
  const first = await capture(evalRun, args);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /RICES: computed 4 support features/);
  const files = readdirSync(cache);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^rices-hateful_memes-[0-9a-f]{16}-[0-9a-f]{16}\.safetensors$/);
  const second = await capture(evalRun, args);
  assert.match(second.stderr, /RICES: loaded 4 support features/);
  assert.ok(existsSync(join(out, 'hateful_memes_rices_2shot_seed0_results.json')));
});

test('progress on stderr shows items/s and ETA', async () => {
  const r = await capture(evalRun, ['--model', modelDir, '--task', 'vizwiz', '--data', join(FIXTURES, 'vizwiz'), '--shots', '0', '--seeds', '0',
    '--out', join(tmp, 'progress'), '--max-new-tokens', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /eval 3\/3 \[#{20}\] [\d.]+k? items\/s .*\| \d+:\d\d ETA \d+:\d\d/);
  assert.match(r.stdout, /0 shots/);
});

test('unreadable image: clear error naming the file, or skipped and counted with --skip-invalid', async () => {
  const data = join(tmp, 'hm-bad');
  cpSync(join(FIXTURES, 'hateful_memes'), data, { recursive: true });
  writeFileSync(join(data, 'img/42012.png'), 'not a png');
  const base = ['--model', modelDir, '--task', 'hateful_memes', '--data', data, '--shots', '0', '--seeds', '0', '--quiet'];
  const bad = await capture(evalRun, [...base, '--out', join(tmp, 'bad1')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /42012\.png/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
  const ok = await capture(evalRun, [...base, '--out', join(tmp, 'bad2'), '--skip-invalid', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const s = JSON.parse(ok.stdout);
  assert.equal(s.skipped, 1);
  assert.equal(s.items, 3);
  assert.deepEqual(s.settings.skipped_items.map((x: any) => x.id), [42012]);
});

test('video QA with 3 frames per video runs end to end', async () => {
  const r = await capture(evalRun, ['--model', modelDir, '--task', 'msrvtt_qa', '--data', join(FIXTURES, 'msrvtt_qa'), '--shots', '0', '--seeds', '0',
    '--frames', '3', '--out', join(tmp, 'frames'), '--quiet']);
  assert.equal(r.code, 0, r.stderr);
});

test('usage errors exit 2; model/tokenizer mismatch exits 1', async () => {
  const base = ['--model', modelDir, '--task', 'coco', '--data', join(FIXTURES, 'coco'), '--out', join(tmp, 'u')];
  for (const extra of [['--task', 'imagenet'], ['--shots', 'a,b'], ['--selection', 'nearest'], ['--batch-size', '0'], ['--bogus']]) {
    const r = await capture(evalRun, [...base, ...extra]);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
  }
  assert.equal((await capture(evalRun, ['--task', 'coco'])).code, 2);
  const noTok = join(tmp, 'no-tok');
  cpSync(modelDir, noTok, { recursive: true });
  rmSync(join(noTok, 'tokenizer.json'));
  const r = await capture(evalRun, ['--model', noTok, ...base.slice(2)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no tokenizer\.json/);
});

test('--suite needs a known suite name', async () => {
  for (const args of [['--suite'], ['--suite', 'other']]) {
    const r = await capture(evalRun, args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^flamingo eval: .*suite/);
  }
});
