/**
 * Memory behaviour of autograd: the graph keeps only what backward functions need (GradSlot instead
 * of tensors), and a backward pass that drops the graph reuses dead buffers (buffer-pool.ts) without
 * changing a single gradient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as E from '../src/engine/index.ts';
import { GradSlot, Tensor, emptyF32 } from '../src/engine/tensor.ts';
import { BufferPool, releaseF32, takePooled } from '../src/engine/buffer-pool.ts';
import { Rng } from '../src/engine/rng.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import type { FlamingoConfig, LMConfig } from '../src/model/config.ts';
import { TINY, openGates, pixels } from './helpers/tiny-flamingo.ts';

test('BufferPool hands out only whole buffers of the exact length, each once', () => {
  const p = new BufferPool();
  assert.equal(p.take(5000), null);
  const a = new Float32Array(5000);
  p.give(a);
  p.give(a); // a second release of the same buffer is ignored
  p.give(new Float32Array(100)); // too small to pool
  const big = new Float32Array(20000);
  p.give(big.subarray(0, 5000)); // a view of a larger buffer: refused
  p.give(big.subarray(5000, 10000));
  assert.equal(p.take(4999), null);
  assert.equal(p.take(5000), a);
  assert.equal(p.take(5000), null);
  assert.equal(p.take(100), null);
});

test('outside a backward pass nothing is pooled', () => {
  const b = emptyF32(8192);
  releaseF32(b);
  assert.equal(takePooled(8192), null);
  assert.notEqual(emptyF32(8192), b);
});

test('graph nodes refer to their inputs by slot, not by tensor', () => {
  const x = new Tensor(new Float32Array(12), [3, 4], true);
  const w = new Tensor(new Float32Array(8), [2, 4]);
  const y = E.linear(x, w);
  assert.ok(y.node);
  for (const i of y.node.inputs) assert.ok(i instanceof GradSlot);
  assert.equal(y.node.inputs[0], x.slot);
});

/** The collector, for the test that a dropped input's buffer is really freed. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

test('a frozen linear layer does not keep its input alive until backward', async () => {
  const gc = collector();
  const w = new Tensor(new Float32Array(64 * 64).fill(0.01), [64, 64]);
  const x0 = new Tensor(new Float32Array(64 * 64).fill(1), [64, 64], true);
  const make = (): { y: Tensor; ref: WeakRef<ArrayBuffer> } => {
    const h = E.gelu(x0); // an intermediate: only the frozen linear reads it
    const ref = new WeakRef(h.f32.buffer as ArrayBuffer);
    return { y: E.linear(h, w), ref };
  };
  const { y, ref } = make();
  for (let i = 0; i < 5 && ref.deref() !== undefined; i++) {
    await new Promise((r) => setTimeout(r, 10));
    gc();
  }
  assert.equal(ref.deref(), undefined, 'the gelu output (the linear input) is still alive');
  E.backward(E.sum(y));
  assert.ok(x0.grad && x0.grad.every((v) => Number.isFinite(v)));
});

/** Wider than the shared tiny model, so that activations and gradients reach the pooled sizes. */
const WIDE: FlamingoConfig = {
  ...TINY,
  resampler: { ...TINY.resampler, num_latents: 8 },
  xattn: { ...TINY.xattn, dim: 64, dim_head: 16, heads: 4 },
  lm: { ...(TINY.lm as LMConfig), hidden_size: 64, intermediate_size: 160, num_heads: 4, num_key_value_heads: 4 },
};

function gradients(model: Flamingo, retain: boolean): Map<string, Float32Array> {
  const rng = new Rng(3);
  const B = 2;
  const L = 40;
  const ids = new Int32Array(B * L);
  for (let i = 0; i < ids.length; i++) ids[i] = i % 13 === 0 ? 38 : 1 + (i * 7) % 36;
  const targets = Int32Array.from(ids, (v, i) => (i % L === L - 1 ? -100 : ids[i + 1]!));
  const logits = model.forward({ inputIds: new Tensor(ids, [B, L]), visionX: pixels(rng, B, 4) });
  const loss = E.crossEntropy(E.reshape(logits, [-1, WIDE.lm.vocab_size]), new Tensor(targets, [B * L]));
  E.backward(loss, undefined, retain);
  const out = new Map<string, Float32Array>();
  for (const [name, p] of model.trainableParameters()) {
    if (p.grad) out.set(name, p.grad.slice());
    p.grad = null;
  }
  return out;
}

for (const everything of [false, true]) {
  test(`dropping the graph (pooled buffers) gives bit-identical gradients (${everything ? 'all parameters' : 'Flamingo'} trainable)`, () => {
    const model = new Flamingo(WIDE, 1);
    openGates(model);
    if (everything) for (const [, p] of model.namedParameters()) p.requiresGrad = true;
    const kept = gradients(model, true);
    const dropped = gradients(model, false);
    assert.ok(kept.size > 0);
    assert.deepEqual([...dropped.keys()], [...kept.keys()]);
    for (const [name, g] of kept) assert.deepEqual(dropped.get(name), g, name);
  });
}

test('BufferPool.nextStep keeps one step of unused buffers, then drops them', () => {
  const p = new BufferPool();
  const a = new Float32Array(6000), b = new Float32Array(7000);
  p.give(a);
  p.nextStep(); // a: from the previous step, still handed out
  p.give(b);
  assert.equal(p.heldElements(), 13000);
  p.nextStep(); // a was not taken during a whole step: dropped; b survives one boundary
  assert.equal(p.heldElements(), 7000);
  assert.equal(p.take(6000), null);
  assert.equal(p.take(7000), b);
  p.give(a); // a dropped buffer may come back later (it is not remembered as held)
  assert.equal(p.take(6000), a);
});

test('a pool kept across training steps (as the loop keeps it) gives bit-identical gradients and reuses buffers', () => {
  const fresh = new Flamingo(WIDE, 1);
  openGates(fresh);
  const pooled = new Flamingo(WIDE, 1);
  openGates(pooled);
  const pool = new BufferPool();
  let reused = 0;
  for (let step = 0; step < 3; step++) {
    const want = gradients(fresh, false);
    pool.nextStep();
    const before = pool.heldElements();
    const got = E.withBufferPool(() => gradients(pooled, false), pool);
    if (step > 0 && before > 0) reused++;
    for (const [name, g] of want) assert.deepEqual(got.get(name), g, `step ${step}: ${name}`);
  }
  // the backward passes left dead gradients for the next step's forward
  assert.ok(reused >= 1 && pool.heldElements() > 0);
});
