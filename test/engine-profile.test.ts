/**
 * The engine profiler: op kinds timed in forward and backward, kernels (GEMM by size class) counted
 * and timed, nothing recorded when no profiler is installed, and results unchanged by profiling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Profiler, gemmClass, gemmShape, profileKernels, withProfiler } from '../src/engine/profile.ts';

function smallGraph(): { loss: E.Tensor; w: E.Tensor } {
  const x = E.fromArray(Array.from({ length: 6 * 4 }, (_, i) => Math.sin(i)), [6, 4]);
  const w = E.fromArray(Array.from({ length: 3 * 4 }, (_, i) => Math.cos(i)), [3, 4]);
  w.requiresGrad = true;
  const y = E.gelu(E.linear(x, w));
  return { loss: E.sum(y), w };
}

test('withProfiler times each op kind forward and backward, and kernels by class', () => {
  const p = new Profiler();
  const k = profileKernels(E.backend());
  let grad: Float32Array | null = null;
  E.withBackend(k, () => withProfiler(p, () => {
    p.begin('forward');
    const { loss, w } = smallGraph();
    p.begin('backward');
    E.backward(loss);
    grad = w.grad;
  }));
  for (const op of ['linear', 'gelu', 'sum']) {
    const o = p.ops.get(op);
    assert.ok(o, `op ${op} profiled`);
    assert.equal(o.forward_calls, 1);
    assert.equal(o.backward_calls, 1);
    assert.ok(o.forward_ms >= 0 && o.backward_ms >= 0);
  }
  const fwdGemm = p.kernels.get(`forward/${gemmClass(6, 3, 4, 1)}`);
  const bwdGemm = p.kernels.get(`backward/${gemmClass(3, 4, 6, 1)}`);
  assert.equal(fwdGemm?.calls, 1);
  assert.equal(bwdGemm?.calls, 1); // dW only: x does not require grad
  assert.ok(Math.abs(fwdGemm!.gflop! - (2 * 6 * 3 * 4) / 1e9) < 1e-15);
  assert.equal(p.kernels.get('forward/activation gelu')?.calls, 1);
  assert.equal(p.kernels.get('backward/activationBackward gelu')?.calls, 1);
  // same gradient as without the profiler
  const plain = smallGraph();
  E.backward(plain.loss);
  assert.deepEqual(Array.from(grad!), Array.from(plain.w.grad!));
});

test('without a profiler installed nothing is recorded', () => {
  const p = new Profiler();
  const k = profileKernels(E.backend());
  E.withBackend(k, () => { E.backward(smallGraph().loss); });
  assert.equal(p.ops.size, 0);
  assert.equal(p.kernels.size, 0);
});

test('gemmClass separates batched and size classes', () => {
  assert.equal(gemmClass(32, 32, 32, 1), 'gemm tiny');
  assert.equal(gemmClass(64, 64, 64, 8), 'gemm batched small');
  assert.equal(gemmClass(1024, 512, 64, 1), 'gemm medium');
  assert.equal(gemmClass(1024, 1024, 1024, 1), 'gemm large');
});

test('with shapes, GEMM time is keyed by transposes and exact shape', () => {
  assert.equal(gemmShape(false, true, 1024, 2048, 768, 1), 'gemm NT 1024x2048x768');
  assert.equal(gemmShape(true, false, 256, 64, 256, 48), 'gemm TN 256x64x256x48');
  const p = new Profiler();
  const k = profileKernels(E.backend(), { shapes: true });
  E.withBackend(k, () => withProfiler(p, () => {
    p.begin('forward');
    const { loss } = smallGraph();
    p.begin('backward');
    E.backward(loss);
  }));
  assert.equal(p.kernels.get('forward/gemm NT 6x3x4')?.calls, 1);
  assert.equal(p.kernels.get('backward/gemm TN 3x4x6')?.calls, 1);
});
