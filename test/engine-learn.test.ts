/**
 * End-to-end learning through the engine: an MLP fits a non-linear classification problem and a
 * 2-layer transformer LM learns a sequence task (loss under stated thresholds on a fixed seed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Tensor, intTensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { Linear } from '../src/nn/layers.ts';
import { Module } from '../src/nn/module.ts';
import { AdamW, clipGradNorm, learningRate } from '../src/train/optim.ts';
import { LlamaForCausalLM } from '../src/model/lm/llama.ts';

class MLP extends Module {
  readonly l1: Linear;
  readonly l2: Linear;
  constructor(rng: Rng) {
    super();
    this.l1 = this.child('l1', new Linear(2, 32, rng));
    this.l2 = this.child('l2', new Linear(32, 2, rng));
  }
  forward(x: Tensor): Tensor {
    return this.l2.forward(E.gelu(this.l1.forward(x)));
  }
}

test('an MLP learns concentric circles (cross-entropy < 0.1)', () => {
  const rng = new Rng(1);
  const n = 256;
  const xs = new Float32Array(n * 2);
  const ys = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const cls = i % 2;
    const r = cls === 0 ? 0.5 + 0.2 * rng.uniform() : 1.2 + 0.2 * rng.uniform();
    const a = 2 * Math.PI * rng.uniform();
    xs[2 * i] = r * Math.cos(a);
    xs[2 * i + 1] = r * Math.sin(a);
    ys[i] = cls;
  }
  const model = new MLP(rng);
  const opt = new AdamW(model.trainableParameters(), { lr: 0.02, weightDecay: 0 });
  const x = new Tensor(xs, [n, 2]);
  const y = new Tensor(ys, [n]);
  let first = 0;
  let last = 0;
  for (let step = 0; step < 300; step++) {
    const loss = E.crossEntropy(model.forward(x), y);
    if (step === 0) first = loss.item();
    last = loss.item();
    E.backward(loss);
    opt.update();
    opt.zeroGrad();
  }
  assert.ok(first > 0.5, `initial loss ${first} should be near ln 2`);
  assert.ok(last < 0.1, `final loss ${last} should be below 0.1`);
});

test('a 2-layer transformer LM learns to copy a sequence (loss < 0.3)', () => {
  const rng = new Rng(2);
  const V = 16;
  const lm = new LlamaForCausalLM({
    vocab_size: V, hidden_size: 32, intermediate_size: 64, num_layers: 2, num_heads: 4, num_key_value_heads: 4,
    rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false,
  }, rng);
  // task: [a b c d e f SEP a b c d e f] — the second half is only predictable by attending back
  const B = 16;
  const half = 6;
  const L = 2 * half + 1;
  const opt = new AdamW(lm.trainableParameters(), { lr: 3e-3, weightDecay: 0 });
  const data = new Rng(3);
  let last = Infinity;
  const steps = 250;
  for (let step = 0; step < steps; step++) {
    const ids = new Int32Array(B * L);
    const targets = new Int32Array(B * L).fill(-100);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < half; t++) ids[b * L + t] = 1 + data.int(V - 1);
      ids[b * L + half] = 0;
      for (let t = 0; t < half; t++) ids[b * L + half + 1 + t] = ids[b * L + t]!;
      // only score the copied half: position half+t predicts token half+1+t
      for (let t = half; t < L - 1; t++) targets[b * L + t] = ids[b * L + t + 1]!;
    }
    const positions = intTensor(Array.from({ length: B * L }, (_, i) => i % L), [B, L]);
    const ctx = { positions, keyMask: new Uint8Array(B * L).fill(1), past: 0, cache: null };
    let x = lm.embed(new Tensor(ids, [B, L]));
    for (let i = 0; i < lm.numLayers; i++) x = lm.layer(i, x, ctx);
    const loss = E.crossEntropy(lm.head(x), new Tensor(targets, [B, L]));
    last = loss.item();
    E.backward(loss);
    clipGradNorm(lm.parameters(), 1);
    opt.update(learningRate(3e-3, step, { warmupSteps: 20, totalSteps: steps, kind: 'cosine', minRatio: 0.1 }));
    opt.zeroGrad();
  }
  assert.ok(last < 0.3, `copy-task loss ${last} should fall below 0.3 (chance is ln 15 ≈ 2.7)`);
});

test('AdamW: decoupled weight decay, excluded parameters and schedule shape', () => {
  const w = E.fromArray([1, -2]);
  w.requiresGrad = true;
  const b = E.fromArray([3]);
  b.requiresGrad = true;
  const opt = new AdamW([['w', w], ['b', b]], { lr: 0.1, weightDecay: 0.5, noDecay: (n) => n === 'b' });
  w.grad = new Float32Array([0, 0]);
  b.grad = new Float32Array([0]);
  opt.update();
  // zero gradient: only the decay moves w (w ← w − lr·wd·w), b is excluded
  assert.ok(Math.abs(w.f32[0]! - 0.95) < 1e-6 && Math.abs(w.f32[1]! + 1.9) < 1e-6);
  assert.equal(b.f32[0], 3);
  const s = { warmupSteps: 10, totalSteps: 110, kind: 'cosine' as const };
  assert.ok(Math.abs(learningRate(1, 0, s) - 0.1) < 1e-12);
  assert.equal(learningRate(1, 9, s), 1);
  assert.ok(Math.abs(learningRate(1, 60, s) - 0.5) < 1e-12);
  assert.ok(learningRate(1, 109, s) < 0.01);
});

test('clipGradNorm scales gradients to the max norm', () => {
  const a = E.fromArray([0, 0]);
  a.grad = new Float32Array([3, 4]);
  const norm = clipGradNorm([a], 1);
  assert.equal(norm, 5);
  assert.ok(Math.abs(Math.hypot(a.grad[0]!, a.grad[1]!) - 1) < 1e-5);
});

test('AdamW lrScale multiplies one parameter group\'s step', () => {
  const a = E.fromArray([0]);
  const g = E.fromArray([0]);
  a.requiresGrad = true;
  g.requiresGrad = true;
  const opt = new AdamW([['w', a], ['block.attn_gate', g]], { lr: 0.01, weightDecay: 0, lrScale: (n) => (n.endsWith('_gate') ? 10 : 1) });
  a.grad = new Float32Array([1]);
  g.grad = new Float32Array([1]);
  opt.update();
  // first Adam step moves each parameter by lr·scale (bias-corrected m/√v = 1)
  assert.ok(Math.abs(a.f32[0]! + 0.01) < 1e-6);
  assert.ok(Math.abs(g.f32[0]! + 0.1) < 1e-5);
});
