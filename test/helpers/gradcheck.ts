/**
 * Finite-difference gradient checks for ops: loss = Σ out ⊙ R (R fixed random), analytical
 * gradients by backward(), numerical ones by central differences on a sample of coordinates.
 */
import assert from 'node:assert/strict';
import { Tensor } from '../../src/engine/tensor.ts';
import { backward } from '../../src/engine/autograd.ts';
import { Rng } from '../../src/engine/rng.ts';
import type { Kernels } from '../../src/engine/kernels/types.ts';
import { getTsKernels, tryNativeKernels } from '../../src/engine/kernels/index.ts';

export function kernelSets(): { name: string; k: Kernels }[] {
  const sets = [{ name: 'typescript', k: getTsKernels() }];
  const n = tryNativeKernels();
  if (n.kernels) sets.push({ name: 'native', k: n.kernels });
  return sets;
}

export function randTensor(rng: Rng, shape: number[], scale = 1, requiresGrad = true): Tensor {
  const t = new Tensor(new Float32Array(shape.reduce((p, d) => p * d, 1)), shape, false);
  rng.fillNormal(t.f32, 0, scale);
  t.requiresGrad = requiresGrad;
  return t;
}

function lossOf(out: Tensor, R: Float64Array): number {
  let s = 0;
  const o = out.f32;
  for (let i = 0; i < o.length; i++) s += o[i]! * R[i]!;
  return s;
}

/**
 * Check d(Σ f(inputs) ⊙ R)/d(input) for every input that requires grad.
 * `maxCoords` coordinates per input are checked (all if fewer).
 */
export function gradcheck(
  f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { eps?: number; rtol?: number; atol?: number; maxCoords?: number; seed?: number } = {},
): void {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 2e-2;
  const atol = opts.atol ?? 2e-3;
  const rng = new Rng(opts.seed ?? 99);
  for (const x of inputs) x.grad = null;
  const out = f(...inputs);
  const R = new Float64Array(out.size);
  for (let i = 0; i < R.length; i++) R[i] = rng.normal();
  const Rt = new Tensor(Float32Array.from(R), out.shape);
  // loss = Σ out ⊙ R → seed gradient R
  backward(out, Rt.f32.slice());
  for (const [xi, x] of inputs.entries()) {
    if (!x.requiresGrad) continue;
    const g = x.grad;
    assert.ok(g, `input ${xi} received no gradient`);
    const n = x.size;
    const coords = n <= (opts.maxCoords ?? 40) ? [...Array(n).keys()] : Array.from({ length: opts.maxCoords ?? 40 }, () => rng.int(n));
    for (const c of coords) {
      const X = x.f32;
      const orig = X[c]!;
      X[c] = orig + eps;
      const lp = lossOf(f(...inputs.map((t) => t.detach())), R);
      X[c] = orig - eps;
      const lm = lossOf(f(...inputs.map((t) => t.detach())), R);
      X[c] = orig;
      const num = (lp - lm) / (2 * eps);
      const ana = g[c]!;
      assert.ok(
        Math.abs(num - ana) <= atol + rtol * Math.abs(num),
        `input ${xi} coord ${c}: analytical ${ana} vs numerical ${num}`,
      );
    }
  }
}
