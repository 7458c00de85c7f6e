/**
 * Hostile checkpoints (issue 19, items 4-5): tiny crafted .pt and safetensors files that ask for gigabytes, millions
 * of pickle values or MARKs, 200k-deep nesting, reference cycles or a decompression bomb. Each must end in one clear
 * error of ours naming the file and the exceeded budget, quickly and in bounded memory: they are read in a child
 * process whose peak RSS (its own resource usage) is checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PickleBytes, torchZip } from './helpers/torch-zip.ts';
import { buildHostileCheckpoints } from './helpers/hostile-files.ts';
import { REPO, runNode } from './helpers/child-usage.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-readers-'));
const READER = path.join(REPO, 'test/helpers/read-weights.ts');
const cases = buildHostileCheckpoints(dir);

function write(name: string, bytes: Uint8Array): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return f;
}

test('hostile checkpoints end in one clear error naming the file and budget, fast and in bounded memory', () => {
  const sizes = cases.map((c) => fs.statSync(c.file).size);
  assert.ok(sizes.every((s) => s < 4 << 20), `crafted files are small: ${sizes.join(', ')}`);
  const r = runNode(READER, cases.map((c) => c.file), { timeoutMs: 180_000 });
  assert.equal(r.code, 0, r.stderr);
  const results = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; ok: boolean; ours: boolean; name: string; message: string; lines: number; ms: number });
  assert.equal(results.length, cases.length);
  results.forEach((res, i) => {
    const { name, file, expect } = cases[i]!;
    assert.equal(res.ok, false, `${name} must be refused`);
    assert.ok(res.ours, `${name}: ${res.name}: ${res.message}`);
    assert.match(res.message, expect, name);
    assert.ok(res.message.includes(file), `${name}: the message names the file`);
    assert.equal(res.lines, 1, `${name}: one line`);
    // A liveness bound only (the issue measured 34 s for one of these); the 2 s target is measured by bench.
    assert.ok(res.ms < 60_000, `${name} took ${res.ms.toFixed(0)} ms`);
  });
  // CPU time does not grow with the machine's load: all files together, start-up included (~1 s).
  assert.ok(r.cpuMs < 20_000, `${r.cpuMs.toFixed(0)} ms of CPU for all ${cases.length} files`);
  assert.ok(r.peakRssMiB < 512, `peak RSS ${r.peakRssMiB.toFixed(0)} MiB for all ${cases.length} files`);
});

test('the budgets are options: raised, a legitimate expansion loads; a real-sized layout passes the defaults', async () => {
  const { readTorchCheckpoint } = await import('../src/io/torch-pickle.ts');
  const p = new PickleBytes().raw(0x80, 2, 0x7d, 0x28).str('x').tensor('0', 1, [1024, 1024], [0, 0]).raw(0x75, 0x2e);
  const f = write('expand.pt', torchZip(p.bytes(), { 0: new Uint8Array(new Float32Array([2.5]).buffer) }));
  assert.throws(() => readTorchCheckpoint(f, { budgets: { maxMaterializedBytes: 1 << 20 } }), /over the budget of 1048576/);
  const t = readTorchCheckpoint(f).get('x')!;
  assert.deepEqual(t.shape, [1024, 1024]);
  assert.equal((t.data as Float32Array)[1024 * 1024 - 1], 2.5);
  assert.throws(() => readTorchCheckpoint(f, { budgets: { maxObjects: 10 } }), /more than 10 pickle values/);
  assert.throws(() => readTorchCheckpoint(f, { budgets: { maxDepth: 1 } }), /nested MARKs|nested deeper/);
  // 2000 tensors under nested module dicts (a state dict's shape), 8 MB stored: no budget is near.
  const q = new PickleBytes().raw(0x80, 2, 0x7d, 0x28);
  const storages: Record<string, Uint8Array> = {};
  for (let i = 0; i < 2000; i++) {
    q.str(`layers.${i}.weight`).tensor(String(i), 1024, [32, 32], [32, 1]);
    storages[String(i)] = new Uint8Array(4096);
  }
  const big = write('state-dict.pt', torchZip(q.raw(0x75, 0x2e).bytes(), storages));
  assert.equal(readTorchCheckpoint(big).size, 2000);
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
