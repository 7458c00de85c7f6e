import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { resolveTrainConfig, deepMerge, type TrainConfig } from '../src/train/config.ts';
import { trainFromConfig } from '../src/train/run.ts';
import { trainFlamingo, loadWeights } from '../src/train/stages.ts';
import { listCheckpoints, latestCheckpoint } from '../src/train/checkpoint.ts';
import { MetricsLog } from '../src/train/metrics.ts';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { TINY_MODEL, TINY_OPTIM, TINY_WORLD, tinyTokenizer } from './helpers/tiny-train.ts';

const world = TINY_WORLD;
const optim = TINY_OPTIM;
const RAW = {
  seed: 3,
  tokenizer: tinyTokenizer(300, 40),
  model: TINY_MODEL,
  stages: {
    contrastive: { steps: 4, checkpoint_every: 2, optim, datasets: [{ name: 'pairs', source: { type: 'synthetic-pairs', world }, batch_size: 4, max_tokens: 24 }] },
    lm: { steps: 14, checkpoint_every: 2, keep_checkpoints: 2, optim, datasets: [
      { name: 'text', source: { type: 'synthetic-text', world }, batch_size: 2, max_tokens: 32 },
      { name: 'words', source: { type: 'texts', texts: ['one two three', 'four five', 'six seven eight nine', 'ten'] }, batch_size: 2, max_tokens: 16, weight: 0.5 },
    ] },
    flamingo: { steps: 6, checkpoint_every: 2, optim, datasets: [
      { name: 'docs', source: { type: 'synthetic-documents', world }, batch_size: 2, max_images: 2, max_tokens: 48 },
      { name: 'pairs', source: { type: 'synthetic-pairs', world }, batch_size: 2, max_images: 1, max_tokens: 24, weight: 0.5 },
    ] },
  },
};
const cfg: TrainConfig = resolveTrainConfig(RAW);
const quiet = { progress: false, log: () => {} };
const tmp = () => mkdtempSync(join(tmpdir(), 'flamingo-resume-'));
const bytes = (f: string) => readFileSync(f);

let reference: string | null = null;
/** One uninterrupted run, shared by the tests. */
function referenceRun(): string {
  if (!reference) {
    reference = tmp();
    trainFromConfig(cfg, { outDir: reference, ...quiet });
  }
  return reference;
}

test('stop after k steps, resume to N: weights, moments and metrics equal the uninterrupted run', () => {
  const ref = referenceRun();
  const dir = tmp();
  try {
    // stages (a) and (b) straight through, then stage (c) in two goes
    const r1 = trainFromConfig(deepMerge(cfg, { stages: { flamingo: { enabled: false } } }), { outDir: dir, ...quiet });
    assert.ok(r1.stages.lm);
    const tok = BpeTokenizer.fromHuggingFace(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    assert.deepEqual(bytes(join(dir, 'lm', 'lm.safetensors')), bytes(join(ref, 'lm', 'lm.safetensors')));
    const common = { outDir: dir, tokenizer: tok, progress: false, vision: loadWeights(join(dir, 'contrastive', 'vision.safetensors')), lm: loadWeights(join(dir, 'lm', 'lm.safetensors')) };
    const part = trainFlamingo(cfg, { ...common, stopAfter: 3 });
    assert.equal(part.loop.step, 3);
    assert.equal(latestCheckpoint(join(dir, 'flamingo'))!.step, 3);
    assert.throws(() => trainFlamingo(cfg, common), /--resume/);
    const rest = trainFlamingo(cfg, { ...common, resume: true });
    assert.equal(rest.loop.resumedFrom, 3);
    const refCk = latestCheckpoint(join(ref, 'flamingo'))!;
    const ck = latestCheckpoint(join(dir, 'flamingo'))!;
    assert.equal(ck.step, 6);
    assert.deepEqual(ck.cursors, refCk.cursors);
    assert.deepEqual(ck.rng, refCk.rng);
    // weights + AdamW moments, byte for byte
    assert.deepEqual(bytes(join(dir, 'flamingo', ck.weightsFile)), bytes(join(ref, 'flamingo', refCk.weightsFile)));
    const steps = new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl')).read().map((m) => m.step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
    const refLosses = new MetricsLog(join(ref, 'flamingo', 'metrics.jsonl')).read().map((m) => m.loss);
    assert.deepEqual(new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl')).read().map((m) => m.loss), refLosses);
    // keep-last-N
    assert.deepEqual(listCheckpoints(join(ref, 'lm')).map((c) => c.step), [12, 14]);
    assert.ok(!readdirSync(join(ref, 'lm')).some((f) => f.endsWith('.tmp')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kill -9 of `flamingo train` mid-run, then --resume: final model is bit-identical', async () => {
  const ref = referenceRun();
  const dir = tmp();
  try {
    const cfgFile = join(dir, 'cfg.json');
    writeFileSync(cfgFile, JSON.stringify(RAW));
    const out = join(dir, 'run');
    const main = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'train', cfgFile, '--out', out, '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += String(d)));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // kill as soon as stage (b) has committed a checkpoint at step >= 4 (it has 7, every 2 steps; keep-last-2
    // deletes older ones, so a loaded machine that polls late must not wait for one particular file)
    const lmDir = join(out, 'lm');
    const committed = () => existsSync(lmDir) && readdirSync(lmDir).some((f) => /^ckpt-\d+\.json$/.test(f) && Number(f.slice(5, -5)) >= 4);
    const deadline = Date.now() + 30_000;
    let killed = false;
    while (Date.now() < deadline) {
      if (committed()) {
        child.kill('SIGKILL');
        killed = true;
        break;
      }
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    assert.ok(killed, `the child finished or failed before it could be killed: ${stderr}`);
    assert.ok(!existsSync(join(out, 'model')), 'killed before the end');
    const before = latestCheckpoint(join(out, 'lm'))!.step;
    assert.ok(before >= 4 && before < 14);

    trainFromConfig(cfg, { outDir: out, resume: true, ...quiet });
    assert.deepEqual(bytes(join(out, 'model', 'weights.safetensors')), bytes(join(ref, 'model', 'weights.safetensors')));
    assert.deepEqual(bytes(join(out, 'lm', 'lm.safetensors')), bytes(join(ref, 'lm', 'lm.safetensors')));
    // every step logged exactly once, nothing lost or repeated
    assert.deepEqual(new MetricsLog(join(out, 'lm', 'metrics.jsonl')).read().map((m) => m.step), Array.from({ length: 14 }, (_, i) => i + 1));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (reference) rmSync(reference, { recursive: true, force: true });
  }
});

test('checkpoints: torn or uncommitted saves are ignored and cleaned; the last good one survives', async () => {
  const { Linear } = await import('../src/nn/layers.ts');
  const { Rng } = await import('../src/engine/rng.ts');
  const { AdamW } = await import('../src/train/optim.ts');
  const { saveCheckpoint, loadCheckpoint } = await import('../src/train/checkpoint.ts');
  const dir = tmp();
  try {
    const model = new Linear(3, 2, new Rng(1));
    const opt = new AdamW(model.trainableParameters());
    const state = (step: number) => ({ stage: 't', step, configHash: 'h', rng: new Rng(step).state(), cursors: { d: { epoch: 0, offset: step } } });
    for (const step of [2, 4, 6]) {
      model.weight.f32[0] = step;
      saveCheckpoint({ dir, model, optimizer: opt, keep: 2, state: state(step) });
    }
    assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [4, 6]);
    // a kill during the next save: weights written, no commit record
    writeFileSync(join(dir, 'ckpt-00000008.safetensors'), 'partial');
    assert.equal(latestCheckpoint(dir)!.step, 6);
    // a commit record whose weights file is torn
    const rec = JSON.parse(readFileSync(join(dir, 'ckpt-00000006.json'), 'utf8'));
    writeFileSync(join(dir, 'ckpt-00000010.json'), JSON.stringify({ ...rec, step: 10, weightsFile: 'ckpt-00000010.safetensors' }));
    writeFileSync(join(dir, 'ckpt-00000010.safetensors'), 'short');
    const good = latestCheckpoint(dir)!;
    assert.equal(good.step, 6);
    model.weight.f32[0] = -1;
    loadCheckpoint(dir, good, model, opt);
    assert.equal(model.weight.f32[0], 6);
    assert.equal(opt.step, 6);
    assert.deepEqual(good.cursors, { d: { epoch: 0, offset: 6 } });
    // the next committed save removes the debris and keeps the newest two valid checkpoints
    saveCheckpoint({ dir, model, optimizer: opt, keep: 2, state: state(12) });
    assert.deepEqual(readdirSync(dir).sort(), ['ckpt-00000006.json', 'ckpt-00000006.safetensors', 'ckpt-00000012.json', 'ckpt-00000012.safetensors']);
    assert.equal(latestCheckpoint(dir)!.step, 12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
