/**
 * Reductions (sum, mean over one axis or all), softmax and log-softmax over the last axis, and the
 * fused cross-entropy with an ignore index.
 */
import { Tensor, ShapeError, emptyF32, fmtShape } from '../tensor.ts';
import { accumulateGrad, record } from '../autograd.ts';
import { backend } from '../backend.ts';
import { affine } from './elementwise.ts';

function normAxis(op: string, x: Tensor, axis: number): number {
  const a = axis < 0 ? x.ndim + axis : axis;
  if (a < 0 || a >= x.ndim) throw new ShapeError(op, `axis ${axis} out of range for ${fmtShape(x.shape)}`);
  return a;
}

/** Sum over `axis` (all elements when undefined). */
export function sum(x: Tensor, axis?: number, keepDim = false): Tensor {
  const X = x.f32;
  if (axis === undefined) {
    let s = 0;
    for (let i = 0; i < X.length; i++) s += X[i]!;
    return record(new Tensor(new Float32Array([s]), keepDim ? x.shape.map(() => 1) : []), 'sum', [x], (g) => {
      accumulateGrad(x, new Float32Array(x.size).fill(g[0]!));
    });
  }
  const a = normAxis('sum', x, axis);
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const n = x.shape[a]!;
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const base = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) out[o * inner + i]! += X[base + i]!;
    }
  }
  const shape = keepDim ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  return record(new Tensor(out, shape), 'sum', [x], (g) => {
    const d = new Float32Array(x.size);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const base = (o * n + j) * inner;
        for (let i = 0; i < inner; i++) d[base + i] = g[o * inner + i]!;
      }
    }
    accumulateGrad(x, d);
  });
}

export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis('mean', x, axis)]!;
  return affine(sum(x, axis, keepDim), 1 / n);
}

export function softmax(x: Tensor): Tensor {
  const cols = x.dim(-1);
  const rows = x.size / cols;
  const out = emptyF32(x.size);
  backend().softmax(x.f32, out, rows, cols);
  return record(new Tensor(out, x.shape), 'softmax', [x], (g) => {
    const d = emptyF32(x.size);
    backend().softmaxBackward(out, g, d, rows, cols);
    accumulateGrad(x, d);
  });
}

export function logSoftmax(x: Tensor): Tensor {
  const cols = x.dim(-1);
  const rows = x.size / cols;
  const out = emptyF32(x.size);
  backend().logSoftmax(x.f32, out, rows, cols);
  return record(new Tensor(out, x.shape), 'log_softmax', [x], (g) => {
    const d = emptyF32(x.size);
    backend().logSoftmaxBackward(out, g, d, rows, cols);
    accumulateGrad(x, d);
  });
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (PyTorch default), 'sum', or 'none' (per-row losses). */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits (..., V) against int32 targets (...). Targets equal to ignoreIndex
 * (default -100) contribute nothing; the mean is over the rest (0 when all are ignored).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  const V = logits.dim(-1);
  const rows = logits.size / V;
  const T = targets.i32;
  if (T.length !== rows) {
    throw new ShapeError('cross_entropy', `targets ${fmtShape(targets.shape)} do not match logits ${fmtShape(logits.shape)}`);
  }
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = T[r]!;
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= V) throw new ShapeError('cross_entropy', `target ${t} at row ${r} is outside [0, ${V}) and is not ignore_index ${ignoreIndex}`);
    count++;
  }
  const L = logits.f32;
  const losses = new Float32Array(rows);
  const lse = new Float32Array(rows);
  backend().crossEntropy(L, T, rows, V, ignoreIndex, losses, lse);
  let out: Tensor;
  let gradScale: (g: Float32Array) => number | Float32Array;
  if (reduction === 'none') {
    out = new Tensor(losses, targets.shape);
    gradScale = (g) => g;
  } else {
    let s = 0;
    for (let r = 0; r < rows; r++) s += losses[r]!;
    const denom = reduction === 'mean' ? Math.max(count, 1) : 1;
    out = new Tensor(new Float32Array([s / denom]), []);
    gradScale = (g) => g[0]! / denom;
  }
  return record(out, 'cross_entropy', [logits], (g) => {
    const sc = gradScale(g);
    const d = emptyF32(logits.size);
    if (typeof sc === 'number') {
      backend().crossEntropyBackward(L, T, lse, rows, V, ignoreIndex, sc, d);
    } else {
      backend().crossEntropyBackward(L, T, lse, rows, V, ignoreIndex, 1, d);
      for (let r = 0; r < rows; r++) {
        const s = sc[r]!;
        for (let j = 0; j < V; j++) d[r * V + j]! *= s;
      }
    }
    accumulateGrad(logits, d);
  });
}
