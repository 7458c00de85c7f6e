import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, RngError } from '../src/engine/rng.ts';

function draws(r: Rng, n: number): number[] {
  return Array.from({ length: n }, () => r.uniform());
}

test('xoshiro128** core matches the reference C implementation for state {1,2,3,4}', () => {
  // Outputs of the published reference code (compiled separately) from s = {1, 2, 3, 4}.
  const r = Rng.fromState({ key: [0, 0, 0, 0], s: [1, 2, 3, 4], spare: null });
  const got = Array.from({ length: 1000 }, () => r.nextU32());
  assert.deepEqual(got.slice(0, 6), [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  assert.equal(got[999], 3170714187);
});

test('same seed gives the same sequence; different seeds differ', () => {
  assert.deepEqual(draws(new Rng(123), 50), draws(new Rng(123), 50));
  const a = draws(new Rng(1), 50);
  for (const seed of [2, 0, -1, 1.5, 2 ** 40, 2 ** 40 + 1]) {
    const b = draws(new Rng(seed), 50);
    assert.notDeepEqual(a, b, `seed ${seed}`);
  }
  assert.notDeepEqual(draws(new Rng(2 ** 40), 10), draws(new Rng(2 ** 40 + 1), 10));
  assert.deepEqual(draws(new Rng(0), 5), draws(new Rng(-0), 5));
  assert.throws(() => new Rng(NaN), RngError);
});

test('uniform moments and range; fillUniform respects bounds', () => {
  const r = new Rng(7);
  const n = 200000;
  let s = 0;
  let s2 = 0;
  let min = 1;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const u = r.uniform();
    s += u;
    s2 += u * u;
    min = Math.min(min, u);
    max = Math.max(max, u);
  }
  assert.ok(min >= 0 && max < 1);
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  assert.ok(Math.abs(mean - 0.5) < 0.005, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.002, `variance ${variance}`);
  const buf = r.fillUniform(new Float32Array(10000), -3, 5);
  assert.ok(buf.every((v) => v >= -3 && v <= 5));
  const m = buf.reduce((acc, v) => acc + v, 0) / buf.length;
  assert.ok(Math.abs(m - 1) < 0.15, `fillUniform mean ${m}`);
});

test('normal moments; fillNormal honours mean and std', () => {
  const r = new Rng(8);
  const n = 200000;
  let s = 0;
  let s2 = 0;
  let s4 = 0;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    s += z;
    s2 += z * z;
    s4 += z ** 4;
  }
  assert.ok(Math.abs(s / n) < 0.01, `mean ${s / n}`);
  assert.ok(Math.abs(s2 / n - 1) < 0.02, `variance ${s2 / n}`);
  assert.ok(Math.abs(s4 / n - 3) < 0.1, `4th moment ${s4 / n}`);
  const buf = r.fillNormal(new Float32Array(50000), 2, 0.5);
  const m = buf.reduce((acc, v) => acc + v, 0) / buf.length;
  const v = buf.reduce((acc, x) => acc + (x - m) ** 2, 0) / buf.length;
  assert.ok(Math.abs(m - 2) < 0.01, `fillNormal mean ${m}`);
  assert.ok(Math.abs(Math.sqrt(v) - 0.5) < 0.01, `fillNormal std ${Math.sqrt(v)}`);
});

test('int is in range and roughly uniform; rejects bad n', () => {
  const r = new Rng(9);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70000; i++) counts[r.int(7)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `bucket ${c}`);
  for (let i = 0; i < 1000; i++) {
    const big = r.int(2 ** 40 + 3);
    assert.ok(Number.isInteger(big) && big >= 0 && big < 2 ** 40 + 3);
  }
  assert.equal(r.int(1), 0);
  assert.throws(() => r.int(0), RngError);
  assert.throws(() => r.int(2.5), RngError);
});

test('dropoutMask keeps with probability 1 − p; edge probabilities', () => {
  const r = new Rng(10);
  const mask = r.dropoutMask(100000, 0.3);
  const kept = mask.reduce((acc, v) => acc + v, 0);
  assert.ok(Math.abs(kept / 100000 - 0.7) < 0.01, `kept ${kept}`);
  assert.ok(mask.every((v) => v === 0 || v === 1));
  assert.ok(r.dropoutMask(1000, 0).every((v) => v === 1));
  assert.ok(r.dropoutMask(1000, 1).every((v) => v === 0));
  assert.throws(() => r.dropoutMask(10, 1.5), RngError);
});

test('shuffle is an in-place permutation and deterministic', () => {
  const a = Array.from({ length: 50 }, (_, i) => i);
  const ret = new Rng(11).shuffle(a);
  assert.equal(ret, a);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assert.notDeepEqual(a, Array.from({ length: 50 }, (_, i) => i));
  const b = Array.from({ length: 50 }, (_, i) => i);
  new Rng(11).shuffle(b);
  assert.deepEqual(a, b);
});

test('state round trip (through JSON) continues the same sequence, including the cached normal', () => {
  const r = new Rng(12);
  draws(r, 17);
  r.normal(); // leaves a cached spare
  const saved = JSON.parse(JSON.stringify(r.state()));
  const expected = [r.normal(), r.uniform(), r.int(1000), r.normal(), r.normal()];
  const restored = new Rng(999);
  restored.setState(saved);
  assert.deepEqual([restored.normal(), restored.uniform(), restored.int(1000), restored.normal(), restored.normal()], expected);
  // the key travels with the state: forks agree too
  assert.deepEqual(draws(restored.fork('x'), 5), draws(r.fork('x'), 5));
  assert.throws(() => restored.setState({ key: [1, 2, 3], s: [1, 2, 3, 4], spare: null }), RngError);
  assert.throws(() => restored.setState({ key: [1, 2, 3, 4], s: [0, 0, 0, 0], spare: null }), RngError);
});

test('fork: deterministic, independent of parent position, distinct per stream, does not advance parent', () => {
  const p = new Rng(13);
  const f1 = draws(p.fork('data'), 20);
  const parentNext = new Rng(13);
  assert.deepEqual(draws(p, 20), draws(parentNext, 20), 'fork must not advance the parent');
  assert.deepEqual(draws(p.fork('data'), 20), f1, 'fork must not depend on parent position');
  const streams = [p.fork('init'), p.fork(0), p.fork(1), p.fork('1'), p.fork(2 ** 35), p.fork('data').fork('data'), new Rng(14).fork('data')];
  const seqs = [f1, ...streams.map((r) => draws(r, 20))];
  for (let i = 0; i < seqs.length; i++) {
    for (let j = i + 1; j < seqs.length; j++) assert.notDeepEqual(seqs[i], seqs[j], `streams ${i} and ${j} coincide`);
  }
  // Independence: correlation between a parent and its fork is near zero.
  const a = draws(new Rng(15), 20000);
  const b = draws(new Rng(15).fork(1), 20000);
  let cov = 0;
  for (let i = 0; i < a.length; i++) cov += (a[i]! - 0.5) * (b[i]! - 0.5);
  const corr = cov / a.length / (1 / 12);
  assert.ok(Math.abs(corr) < 0.03, `correlation ${corr}`);
});
