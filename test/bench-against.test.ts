/**
 * The side-by-side bench harness (bench/lib/against.ts) with small fake commands in place of the
 * model bench and PyTorch: alternation order, per-pair ratios and medians, and the failures
 * (non-zero exit, no JSON, timeout).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AgainstError, type Command, lastJsonObject, median, runPairs } from '../bench/lib/against.ts';

/**
 * A node one-liner that appends `side` to `log`, counts its own runs, and prints a JSON object
 * whose train_step_ms is base · (run number) and whose tokens/s is constant.
 */
function fake(side: string, log: string, base: number, extra: Record<string, unknown> = {}): Command {
  const src = `const fs=require('fs');fs.appendFileSync(${JSON.stringify(log)},${JSON.stringify(side + '\n')});`
    + `const n=fs.readFileSync(${JSON.stringify(log)},'utf8').split('\\n').filter(l=>l===${JSON.stringify(side)}).length;`
    + `console.log('warming up');console.log(JSON.stringify(Object.assign({config:'tiny',train_step_ms:${base}*n,decode_tokens_per_s:${base}},${JSON.stringify(extra)})));`;
  return { argv: [process.execPath, '-e', src] };
}

test('runPairs alternates ours and theirs (ABBA) and reports per-pair ratios and their median', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'against-'));
  try {
    const log = join(dir, 'order');
    const r = await runPairs({ ours: fake('ours', log, 100, { only_ours: 1 }), theirs: fake('theirs', log, 400, { only_theirs: 2, note: 'x' }), pairs: 3 });
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['ours', 'theirs', 'theirs', 'ours', 'ours', 'theirs']);
    // only figures both sides print as numbers are compared
    assert.deepEqual(Object.keys(r.figures).sort(), ['decode_tokens_per_s', 'train_step_ms']);
    const f = r.figures.train_step_ms!;
    assert.deepEqual(f.ours, [100, 200, 300]);
    assert.deepEqual(f.theirs, [400, 800, 1200]);
    assert.deepEqual(f.ratios, [0.25, 0.25, 0.25]);
    assert.equal(f.median_ratio, 0.25);
    assert.equal(r.figures.decode_tokens_per_s!.median_ratio, 0.25);
    assert.equal(r.runs.length, 6);
    assert.equal(r.pairs, 3);
    assert.ok(r.load_start.length === 3 && r.load_end.length === 3);
    assert.match(r.against, /node/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('median of the per-pair ratios, not the ratio of medians', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'against-'));
  try {
    // ours: 100, 200, 300 (runs 1..3); theirs constant 150 → ratios 2/3, 4/3, 2
    const theirs: Command = { shell: `${JSON.stringify(process.execPath)} -e 'console.log(JSON.stringify({train_step_ms:150}))'` };
    const r = await runPairs({ ours: fake('ours', join(dir, 'log'), 100), theirs, pairs: 3 });
    const f = r.figures.train_step_ms!;
    assert.deepEqual(f.ratios.map((x) => +x.toFixed(6)), [0.666667, 1.333333, 2]);
    assert.equal(+f.median_ratio.toFixed(6), 1.333333);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing, silent or hanging command is an AgainstError naming the command', async () => {
  const ok: Command = { argv: [process.execPath, '-e', 'console.log(JSON.stringify({a:1}))'] };
  await assert.rejects(runPairs({ ours: ok, theirs: { shell: 'echo boom >&2; exit 3' }, pairs: 1 }), (e: unknown) => e instanceof AgainstError && /exit 3/.test(e.message) && /exited with 3/.test(e.message) && /boom/.test(e.message));
  await assert.rejects(runPairs({ ours: ok, theirs: { shell: 'echo not json' }, pairs: 1 }), (e: unknown) => e instanceof AgainstError && /no JSON object/.test(e.message));
  await assert.rejects(runPairs({ ours: ok, theirs: { shell: 'sleep 30' }, pairs: 1, timeoutS: 0.5 }), (e: unknown) => e instanceof AgainstError && /timed out/.test(e.message));
  await assert.rejects(runPairs({ ours: ok, theirs: ok, pairs: 0 }), (e: unknown) => e instanceof AgainstError && /--pairs/.test(e.message));
});

test('lastJsonObject takes the last object line and skips log lines and arrays', () => {
  assert.deepEqual(lastJsonObject('{"a":1}\nlog {x\n{"b":2}\n[1]\nbye\n'), { b: 2 });
  assert.equal(lastJsonObject('nothing\n[1,2]\n'), null);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

test('bench model --against rejects a missing command and bad --pairs before running anything', () => {
  const main = fileURLToPath(new URL('../bench/main.ts', import.meta.url));
  const r1 = spawnSync(process.execPath, ['--import', 'tsx', main, 'model', '--config', 'tiny', '--against'], { encoding: 'utf8' });
  assert.equal(r1.status, 1);
  assert.match(r1.stderr, /--against needs a value/);
  const r2 = spawnSync(process.execPath, ['--import', 'tsx', main, 'model', '--config', 'tiny', '--against', 'true', '--pairs', 'x'], { encoding: 'utf8' });
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /--pairs must be an integer/);
});
