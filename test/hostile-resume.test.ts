/**
 * Resume trusts checksums, not sizes (issue 19, item 8): the newest training checkpoint damaged in place (same
 * size, different bytes) is skipped, saying so, and training resumes from the newest intact one and still ends
 * bit-identical to an uninterrupted run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveTrainConfig } from '../src/train/config.ts';
import { trainTokenizer } from '../src/train/run.ts';
import { trainContrastive } from '../src/train/stages.ts';
import { latestCheckpoint, listCheckpoints, sha256File } from '../src/train/checkpoint.ts';
import { TINY_MODEL, TINY_OPTIM, TINY_WORLD, tinyTokenizer } from './helpers/tiny-train.ts';

const world = TINY_WORLD;
const optim = TINY_OPTIM;
const cfg = resolveTrainConfig({
  seed: 5,
  tokenizer: tinyTokenizer(300, 40),
  model: TINY_MODEL,
  stages: {
    contrastive: { steps: 8, checkpoint_every: 2, keep_checkpoints: 3, optim, datasets: [{ name: 'pairs', source: { type: 'synthetic-pairs', world }, batch_size: 4, max_tokens: 24 }] },
    // trainContrastive alone is run; the other stages only need to be valid
    lm: { enabled: false, datasets: [{ name: 'text', source: { type: 'synthetic-text', world }, batch_size: 2, max_tokens: 32 }] },
    flamingo: { enabled: false, datasets: [{ name: 'docs', source: { type: 'synthetic-documents', world }, batch_size: 2, max_images: 2, max_tokens: 48 }] },
  },
});

test('a checkpoint damaged in place is skipped on --resume, with a message, for the newest intact one', () => {
  const tokenizer = trainTokenizer(cfg);
  const ref = mkdtempSync(join(tmpdir(), 'hostile-resume-ref-'));
  const dir = mkdtempSync(join(tmpdir(), 'hostile-resume-'));
  try {
    trainContrastive(cfg, { outDir: ref, tokenizer, progress: false, log: () => {} });
    const part = trainContrastive(cfg, { outDir: dir, tokenizer, progress: false, stopAfter: 6, log: () => {} });
    assert.equal(part.loop.step, 6);
    const stage = join(dir, 'contrastive');
    assert.deepEqual(listCheckpoints(stage).map((c) => c.step), [2, 4, 6]);
    const newest = latestCheckpoint(stage)!;
    assert.equal(newest.weightsSha256, sha256File(join(stage, newest.weightsFile)), 'the commit record carries the checksum');

    // Overwrite 64 bytes in the middle of the newest weights file: same size, so a size check cannot see it.
    const w = join(stage, newest.weightsFile);
    const size = statSync(w).size;
    const fd = openSync(w, 'r+');
    writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, Math.floor(size / 2));
    closeSync(fd);
    assert.equal(statSync(w).size, size);

    const skipped: string[] = [];
    assert.equal(latestCheckpoint(stage, (m) => skipped.push(m))!.step, 4);
    assert.match(skipped.join('\n'), /checkpoint step 6 skipped: .*ckpt-00000006\.safetensors does not match the SHA-256 in its commit record \(damaged in place\); trying the previous one/);

    const lines: string[] = [];
    const rest = trainContrastive(cfg, { outDir: dir, tokenizer, progress: false, resume: true, log: (l) => lines.push(l) });
    assert.equal(rest.loop.resumedFrom, 4);
    assert.match(lines.join('\n'), /contrastive: checkpoint step 6 skipped: .*SHA-256/);
    assert.match(lines.join('\n'), /contrastive: resuming from checkpoint step 4/);
    // Steps 5-8 redone from step 4 give exactly the uninterrupted run.
    const a = latestCheckpoint(stage)!;
    const b = latestCheckpoint(join(ref, 'contrastive'))!;
    assert.equal(a.step, 8);
    assert.deepEqual(readFileSync(join(stage, a.weightsFile)), readFileSync(join(ref, 'contrastive', b.weightsFile)));
    assert.deepEqual(readFileSync(join(stage, 'vision.safetensors')), readFileSync(join(ref, 'contrastive', 'vision.safetensors')));
  } finally {
    rmSync(ref, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
