/**
 * The growable KV cache (src/model/lm/kv-cache.ts): appends in place, grows by doubling, keeps every
 * view valid when two branches append to the same prefix, and attention over a buffer's first
 * keyLength positions equals attention over a contiguous copy of them. Also the other decode-step
 * shortcut: the gated block's one-pass residual equals the ops it replaces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { CachedKV } from '../src/model/lm/kv-cache.ts';
import { causalAttention } from '../src/model/lm/causal-attention.ts';
import { ShapeError } from '../src/engine/tensor.ts';
import { GatedCrossAttentionBlock } from '../src/model/gated-xattn.ts';

function rand(shape: number[], rng: Rng): Tensor {
  const t = new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  rng.fillNormal(t.f32, 0, 1);
  return t;
}

test('appends equal concatenation, in place until the buffer is full, then doubling', () => {
  const rng = new Rng(1);
  const first = rand([2, 3, 5, 4], rng);
  let c = CachedKV.fromTensor(first);
  let ref = first;
  const buffers = new Set<Tensor>([c.buffer]);
  for (let i = 0; i < 9; i++) {
    const step = rand([2, 3, 1, 4], rng);
    c = c.append(step);
    ref = E.concat([ref, step], 2);
    buffers.add(c.buffer);
    assert.deepEqual(c.shape, [2, 3, 6 + i, 4]);
    assert.deepEqual(c.toTensor().f32, ref.f32);
  }
  // capacities 5 → 10 → 20: three buffers for 14 positions
  assert.equal(buffers.size, 3);
  assert.equal(c.capacity, 20);
});

test('two branches from one prefix: the second copies, and all three views keep their contents', () => {
  const rng = new Rng(2);
  const prefix = CachedKV.fromTensor(rand([1, 2, 3, 4], rng), 8);
  const before = prefix.toTensor().f32.slice();
  const a = rand([1, 2, 2, 4], rng);
  const b = rand([1, 2, 1, 4], rng);
  const ca = prefix.append(a);
  const cb = prefix.append(b);
  assert.equal(ca.buffer, prefix.buffer, 'the first branch appends in place');
  assert.notEqual(cb.buffer, prefix.buffer, 'the second branch must not overwrite the first');
  assert.deepEqual(prefix.toTensor().f32, before);
  assert.deepEqual(ca.toTensor().f32, E.concat([prefix.toTensor(), a], 2).f32);
  assert.deepEqual(cb.toTensor().f32, E.concat([prefix.toTensor(), b], 2).f32);
  // selected rows keep the capacity and the contents
  const sel = ca.selectRows([0, 0]);
  assert.equal(sel.capacity, 8);
  assert.deepEqual(sel.toTensor().f32, E.concat([ca.toTensor(), ca.toTensor()], 0).f32);
});

test('attention over the first keyLength positions of a buffer equals attention over a copy of them', () => {
  const rng = new Rng(3);
  const k = CachedKV.fromTensor(rand([2, 3, 6, 8], rng), 16);
  const v = CachedKV.fromTensor(rand([2, 3, 6, 8], rng), 16);
  const q = rand([2, 3, 1, 8], rng);
  const mask = { data: new Uint8Array(2 * 6).fill(1), batchStride: 6, qStride: 0 };
  const opts = { mask, causal: true, causalOffset: 5 };
  const ref = E.attention(q, k.toTensor(), v.toTensor(), opts);
  const got = E.attention(q, k.buffer, v.buffer, { ...opts, keyLength: 6 });
  assert.deepEqual(got.f32, ref.f32);
  assert.throws(() => E.attention(q, k.buffer, v.buffer, { ...opts, keyLength: 17 }), /keyLength/);
});

test('causalAttention: a key mask must cover exactly past + this step, spare cache room aside', () => {
  const rng = new Rng(4);
  const q = rand([1, 2, 3, 4], rng);
  const k = rand([1, 2, 3, 4], rng), v = rand([1, 2, 3, 4], rng);
  const ctx = (maskLen: number, past = 0, cache: boolean = false) => ({
    positions: new Tensor(new Int32Array(3), [1, 3]), keyMask: new Uint8Array(maskLen).fill(1), past,
    cache: cache ? { keys: [], values: [] } : null,
  });
  assert.equal(causalAttention('t', q, k, v, ctx(3)).shape.join(), '1,2,3,4');
  // without a cache, a mask shorter or longer than the keys is an error, not a shortened attention
  for (const bad of [2, 4]) assert.throws(() => causalAttention('layer 0', q, k, v, ctx(bad)), (e: unknown) => e instanceof ShapeError && /layer 0/.test(String(e)) && /covers 2|covers 4/.test(String(e)));
  // a cache buffer with spare room: the mask covers past + L and attention stops there
  const kb = CachedKV.fromTensor(k, 8), vb = CachedKV.fromTensor(v, 8);
  const got = causalAttention('t', q, kb.buffer, vb.buffer, ctx(3, 0, true));
  assert.deepEqual(got.f32, causalAttention('t', q, k, v, ctx(3)).f32);
  // the mask must still equal past + L with a cache
  assert.throws(() => causalAttention('t', q, kb.buffer, vb.buffer, ctx(2, 0, true)), ShapeError);
});

test('gated cross-attention without a graph (one-pass residual) equals the recorded ops exactly', () => {
  const rng = new Rng(4);
  const cfg = { dim: 48, dim_visual: 32, dim_head: 8, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 };
  const block = new GatedCrossAttentionBlock(cfg, rng);
  block.attn_gate!.f32[0] = 0.7;
  block.ff_gate!.f32[0] = -1.3;
  const x = rand([2, 3, 48], rng);
  const media = rand([2, 2, 4, 32], rng);
  const tt = Int32Array.from([0, 1, 2, 1, 1, 2]);
  const fast = E.noGrad(() => block.forward(x, media, tt));
  x.requiresGrad = true; // the recorded path: add(x, mul(a, tanh(α)))
  const ops = block.forward(x, media, tt);
  assert.deepEqual(fast.f32, ops.f32);
});
