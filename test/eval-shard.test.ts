/**
 * Sharded evaluation: `--shard i/n` runs plus `flamingo eval merge` give byte for byte the results
 * files and scores.json of a single run (captioning with corpus-level CIDEr and a generated scoring
 * file, classification with RICES, per-batch demonstrations); bad merges are refused with clear errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src/cli/main.ts';
import { encodePng, makeImage } from '../src/data/image.ts';
import { Rng } from '../src/engine/rng.ts';
import { parseShard, shardRange } from '../src/eval/shard.ts';
import { capture, saveModelDir, tinyModel, tinyTokenizer } from './eval-helpers.ts';

// through the CLI's entry point, which turns errors into one line and an exit code
const evalRun = (a: string[]): Promise<number> => main(['eval', ...a]);

const tmp = mkdtempSync(join(tmpdir(), 'flamingo-eval-shard-'));
after(() => { if (!process.env.KEEP_TMP) rmSync(tmp, { recursive: true, force: true }); });
let modelDir = '';
const coco = join(tmp, 'coco');
const memes = join(tmp, 'memes');
const WORDS = ['a dog on grass', 'two cats sleeping', 'a red bus', 'a man riding a bike', 'a plate of food', 'a boat on water'];

function randomPng(rng: Rng, file: string): void {
  const data = new Uint8Array(20 * 20 * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
  writeFileSync(file, encodePng(makeImage(20, 20, data)));
}

before(() => {
  const tok = tinyTokenizer();
  modelDir = saveModelDir(join(tmp, 'model'), tok, tinyModel(tok, 4));
  const rng = new Rng(7);
  mkdirSync(join(coco, 'img'), { recursive: true });
  const images = Array.from({ length: 17 }, (_, i) => {
    const filename = `im${i}.png`;
    randomPng(rng, join(coco, 'img', filename));
    const sentences = [0, 1].map((k) => ({ raw: WORDS[(i + k) % WORDS.length]!, tokens: WORDS[(i + k) % WORDS.length]!.split(' ') }));
    return { filepath: 'img', filename, cocoid: 100 + i, split: i < 6 ? 'train' : 'test', sentences };
  });
  writeFileSync(join(coco, 'dataset_coco.json'), JSON.stringify({ images }));
  mkdirSync(join(memes, 'img'), { recursive: true });
  const line = (i: number) => {
    randomPng(rng, join(memes, 'img', `${i}.png`));
    return JSON.stringify({ id: i, img: `img/${i}.png`, label: i % 2, text: WORDS[i % WORDS.length] });
  };
  writeFileSync(join(memes, 'train.jsonl'), Array.from({ length: 6 }, (_, i) => line(i)).join('\n') + '\n');
  writeFileSync(join(memes, 'dev_seen.jsonl'), Array.from({ length: 9 }, (_, i) => line(50 + i)).join('\n') + '\n');
});

test('shard slices: whole batches, in order, covering every query once', () => {
  assert.deepEqual(parseShard('2/8'), { index: 2, count: 8 });
  assert.throws(() => parseShard('8/8'), /0-based and must be below 8/);
  assert.throws(() => parseShard('1-4'), /i\/n/);
  assert.throws(() => parseShard('0/0'), /at least 1/);
  for (const [items, bs, n] of [[11, 2, 3], [10, 4, 4], [3, 8, 2], [100, 7, 9]] as const) {
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const r = shardRange(items, bs, { index: i, count: n });
      assert.equal(r.start, pos);
      assert.ok(r.start % bs === 0 || r.start === items, 'starts on a batch boundary');
      pos = r.end;
    }
    assert.equal(pos, items);
  }
});

async function ok(args: string[]): Promise<string> {
  const r = await capture(evalRun, args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The files a run's scores are read from, by name. */
function deterministicFiles(dir: string): Map<string, Buffer> {
  const names = readdirSync(dir).filter((f) => f.endsWith('_results.json') || f === 'scores.json');
  return new Map(names.map((f) => [f, readFileSync(join(dir, f))]));
}

const CASES: { name: string; args: string[]; shards: number }[] = [
  { name: 'coco captioning, per-query random demonstrations', shards: 3, args: ['--task', 'coco', '--data', coco, '--shots', '0,2', '--seeds', '1,2', '--batch-size', '2', '--max-new-tokens', '5'] },
  { name: 'coco, per-batch shared demonstrations', shards: 2, args: ['--task', 'coco', '--data', coco, '--shots', '2', '--seeds', '3', '--batch-size', '3', '--demo-mode', 'per-batch', '--max-new-tokens', '4'] },
  { name: 'hateful memes with RICES', shards: 4, args: ['--task', 'hateful_memes', '--data', memes, '--shots', '2', '--seeds', '0', '--batch-size', '2', '--selection', 'rices'] },
];

for (const c of CASES) {
  test(`${c.name}: merged shards == single run, byte for byte`, async () => {
    const base = join(tmp, c.name.replace(/\W+/g, '-'));
    const common = ['--model', modelDir, ...c.args, '--quiet'];
    await ok([...common, '--out', join(base, 'single')]);
    const dirs: string[] = [];
    // Shards run in any order (they are independent jobs).
    for (const i of Array.from({ length: c.shards }, (_, k) => c.shards - 1 - k)) {
      const d = join(base, `shard-${i}`);
      const line = await ok([...common, '--shard', `${i}/${c.shards}`, '--out', d]);
      assert.match(line, new RegExp(`^shard ${i}/${c.shards}: \\d+ queries evaluated`));
      dirs.push(d);
    }
    const merged = JSON.parse(await ok(['merge', ...dirs, '--out', join(base, 'merged'), '--quiet', '--json']));
    const single = deterministicFiles(join(base, 'single'));
    const fromShards = deterministicFiles(join(base, 'merged'));
    assert.ok(single.size >= 2 && single.has('scores.json'));
    assert.deepEqual([...fromShards.keys()].sort(), [...single.keys()].sort());
    for (const [name, bytes] of single) assert.ok(bytes.equals(fromShards.get(name)!), `${name} differs`);
    const summary = JSON.parse(readFileSync(join(base, 'single', 'summary.json'), 'utf8'));
    assert.deepEqual(merged.results.map((r: { mean: number }) => r.mean), summary.results.map((r: { mean: number }) => r.mean));
  });
}

test('merge refuses incomplete, duplicated or mismatched shards', async () => {
  const base = join(tmp, 'bad');
  const common = ['--model', modelDir, '--task', 'coco', '--data', coco, '--shots', '0', '--seeds', '1', '--batch-size', '4', '--max-new-tokens', '2', '--quiet'];
  await ok([...common, '--shard', '0/2', '--out', join(base, 's0')]);
  await ok([...common, '--shard', '1/2', '--out', join(base, 's1')]);
  await ok([...common.map((a) => (a === '2' ? '3' : a)), '--shard', '1/2', '--out', join(base, 'other')]);
  const merge = (...dirs: string[]) => capture(evalRun, ['merge', ...dirs.map((d) => join(base, d)), '--out', join(base, 'm')]);
  let r = await merge('s0');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing shard\(s\) 1 of 2/);
  r = await merge('s0', 's0');
  assert.match(r.stderr, /shard 0 given twice/);
  r = await merge('s0', 'other');
  assert.match(r.stderr, /other settings/);
  r = await merge('s0', 'nowhere');
  assert.match(r.stderr, /nowhere: no shard\.json/);
  r = await capture(evalRun, [...common, '--shard', '2/2', '--out', join(base, 'x')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /must be below 2/);
  assert.equal((await merge('s0', 's1')).code, 0);
});
