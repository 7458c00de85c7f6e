/**
 * Elementwise ops with broadcasting (add, sub, mul, div), scalar ops, and the activations
 * (GELU, tanh-GELU, quick-GELU, SiLU, tanh, ReLU, sigmoid) and SwiGLU. Forward and backward side by side.
 */
import { Tensor, ShapeError, emptyF32, fmtShape, shapeSize } from '../tensor.ts';
import { accumulateGrad, record } from '../autograd.ts';
import { backend } from '../backend.ts';
import type { Activation } from '../kernels/types.ts';
import { broadcastPattern, broadcastShapes, broadcastStrides, forEachBroadcast, reduceToShape } from './broadcast.ts';

type BinOp = 'add' | 'sub' | 'mul' | 'div';

/** Rows at least this long go to a kernel call each (below it the call costs more than the loop). */
export const KERNEL_ROW = 4096;

function binaryForward(op: BinOp, a: Tensor, b: Tensor): Tensor {
  const A = a.f32;
  const B = b.f32;
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const n = shapeSize(outShape);
  const out = emptyF32(n); // every path below writes all n
  const k = backend();
  const pa = broadcastPattern(a.shape, outShape);
  const pb = broadcastPattern(b.shape, outShape);
  if (pa.kind === 'same' && pb.kind === 'same') {
    if (op === 'add') k.add(A, B, out, n);
    else if (op === 'mul') k.mul(A, B, out, n);
    else if (op === 'sub') for (let i = 0; i < n; i++) out[i] = A[i]! - B[i]!;
    else for (let i = 0; i < n; i++) out[i] = A[i]! / B[i]!;
    return new Tensor(out, outShape);
  }
  if (pa.kind === 'same' && B.length === 1) {
    // a scalar b (the gated blocks' tanh gates): one flat loop, not n blocks of one element
    const v = B[0]!;
    if (op === 'add') for (let i = 0; i < n; i++) out[i] = A[i]! + v;
    else if (op === 'mul') for (let i = 0; i < n; i++) out[i] = A[i]! * v;
    else if (op === 'sub') for (let i = 0; i < n; i++) out[i] = A[i]! - v;
    else for (let i = 0; i < n; i++) out[i] = A[i]! / v;
    return new Tensor(out, outShape);
  }
  if (pa.kind === 'same' && pb.kind === 'suffix') {
    const inner = pb.inner;
    if ((op === 'add' || op === 'mul') && inner >= KERNEL_ROW) {
      // long repeated blocks (positional embeddings over a batch): one kernel call per block
      for (let o = 0; o < n; o += inner) {
        const ao = A.subarray(o, o + inner);
        const oo = out.subarray(o, o + inner);
        if (op === 'add') k.add(ao, B, oo, inner);
        else k.mul(ao, B, oo, inner);
      }
      return new Tensor(out, outShape);
    }
    for (let o = 0; o < n; o += inner) {
      if (op === 'add') for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! + B[j]!;
      else if (op === 'mul') for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! * B[j]!;
      else if (op === 'sub') for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! - B[j]!;
      else for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! / B[j]!;
    }
    return new Tensor(out, outShape);
  }
  if (pa.kind === 'same' && pb.kind === 'prefix') {
    const inner = pb.inner;
    for (let r = 0, o = 0; o < n; r++, o += inner) {
      const v = B[r]!;
      if (op === 'add') for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! + v;
      else if (op === 'mul') for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! * v;
      else if (op === 'sub') for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! - v;
      else for (let j = 0; j < inner; j++) out[o + j] = A[o + j]! / v;
    }
    return new Tensor(out, outShape);
  }
  const sa = broadcastStrides(a.shape, outShape);
  const sb = broadcastStrides(b.shape, outShape);
  const f = op === 'add' ? (x: number, y: number) => x + y
    : op === 'sub' ? (x: number, y: number) => x - y
      : op === 'mul' ? (x: number, y: number) => x * y
        : (x: number, y: number) => x / y;
  forEachBroadcast(outShape, sa, sb, (o, ia, ib) => { out[o] = f(A[ia]!, B[ib]!); });
  return new Tensor(out, outShape);
}

/** Elementwise a*b with broadcasting of b onto out's shape (used in backward). */
function mulBroadcast(g: Float32Array, outShape: readonly number[], t: Tensor): Float32Array {
  return binaryForward('mul', new Tensor(g, outShape), t).f32;
}

/**
 * The gradient of one factor of a product: g ⊙ other, summed back to the factor's shape. A scalar
 * factor beside a full-size one (the gated blocks' tanh gates) sums the products in one pass, without
 * the full-size temporary; the sum is the one reduceToShape makes (float32 running sum, same order).
 */
function mulGrad(g: Float32Array, outShape: readonly number[], other: Tensor, shape: readonly number[]): Float32Array {
  const O = other.f32;
  if (shapeSize(shape) === 1 && O.length === g.length) {
    let s = 0;
    for (let i = 0; i < g.length; i++) s = Math.fround(s + Math.fround(g[i]! * O[i]!));
    return Float32Array.of(s);
  }
  return reduceToShape(mulBroadcast(g, outShape, other), outShape, shape);
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryForward('add', a, b);
  // slots and shapes only: neither operand's data is needed for the gradient
  const [as, bs, oShape, aShape, bShape] = [a.slot, b.slot, out.shape, a.shape, b.shape];
  return record(out, 'add', [a, b], (g) => {
    if (as.requiresGrad) accumulateGrad(as, reduceToShape(g, oShape, aShape), false);
    if (bs.requiresGrad) accumulateGrad(bs, reduceToShape(g, oShape, bShape), false);
  });
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryForward('sub', a, b);
  const [as, bs, oShape, aShape, bShape] = [a.slot, b.slot, out.shape, a.shape, b.shape];
  return record(out, 'sub', [a, b], (g) => {
    if (as.requiresGrad) accumulateGrad(as, reduceToShape(g, oShape, aShape), false);
    if (bs.requiresGrad) {
      const r = reduceToShape(g, oShape, bShape);
      const neg = emptyF32(r.length);
      for (let i = 0; i < r.length; i++) neg[i] = -r[i]!;
      accumulateGrad(bs, neg);
    }
  });
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryForward('mul', a, b);
  // each operand is kept only for the other's gradient
  const [as, bs, oShape, aShape, bShape] = [a.slot, b.slot, out.shape, a.shape, b.shape];
  const aKeep = b.requiresGrad ? a : null;
  const bKeep = a.requiresGrad ? b : null;
  return record(out, 'mul', [a, b], (g) => {
    if (as.requiresGrad && bKeep !== null) accumulateGrad(as, mulGrad(g, oShape, bKeep, aShape));
    if (bs.requiresGrad && aKeep !== null) accumulateGrad(bs, mulGrad(g, oShape, aKeep, bShape));
  });
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryForward('div', a, b);
  return record(out, 'div', [a, b], (g) => {
    const gOverB = binaryForward('div', new Tensor(g, out.shape), b).f32;
    if (a.requiresGrad) accumulateGrad(a, reduceToShape(gOverB, out.shape, a.shape), false);
    if (b.requiresGrad) {
      // d(a/b)/db = -(a/b)/b
      const o = out.f32;
      const t = emptyF32(o.length);
      for (let i = 0; i < o.length; i++) t[i] = -gOverB[i]! * o[i]!;
      accumulateGrad(b, reduceToShape(t, out.shape, b.shape));
    }
  });
}

/** x * s + c for scalars s, c. */
export function affine(x: Tensor, s: number, c = 0): Tensor {
  const X = x.f32;
  const out = emptyF32(X.length);
  for (let i = 0; i < X.length; i++) out[i] = X[i]! * s + c;
  const xs = x.slot;
  return record(new Tensor(out, x.shape), 'affine', [x], (g) => {
    const d = emptyF32(g.length);
    for (let i = 0; i < g.length; i++) d[i] = g[i]! * s;
    accumulateGrad(xs, d);
  });
}

/**
 * min(max(x, lo), hi) (MPT's clip_qkv). The gradient passes where lo < x < hi, as torch.clamp's does
 * (at the bounds themselves it is 0 here; torch passes it there, a measure-zero difference).
 */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (!(lo <= hi)) throw new ShapeError('clamp', `lower bound ${lo} is above upper bound ${hi}`);
  const X = x.f32;
  const out = emptyF32(X.length);
  for (let i = 0; i < X.length; i++) { const v = X[i]!; out[i] = v < lo ? lo : v > hi ? hi : v; }
  return record(new Tensor(out, x.shape), 'clamp', [x], (g) => {
    const d = emptyF32(g.length);
    for (let i = 0; i < g.length; i++) { const v = X[i]!; d[i] = v > lo && v < hi ? g[i]! : 0; }
    accumulateGrad(x, d);
  });
}

export function scale(x: Tensor, s: number): Tensor {
  return affine(x, s, 0);
}

export function neg(x: Tensor): Tensor {
  return affine(x, -1, 0);
}

export function exp(x: Tensor): Tensor {
  const X = x.f32;
  const out = emptyF32(X.length);
  for (let i = 0; i < X.length; i++) out[i] = Math.exp(X[i]!);
  const xs = x.slot;
  return record(new Tensor(out, x.shape), 'exp', [x], (g) => {
    const d = emptyF32(g.length);
    for (let i = 0; i < g.length; i++) d[i] = g[i]! * out[i]!;
    accumulateGrad(xs, d);
  });
}

export function log(x: Tensor): Tensor {
  const X = x.f32;
  const out = emptyF32(X.length);
  for (let i = 0; i < X.length; i++) out[i] = Math.log(X[i]!);
  return record(new Tensor(out, x.shape), 'log', [x], (g) => {
    const d = emptyF32(g.length);
    for (let i = 0; i < g.length; i++) d[i] = g[i]! / X[i]!;
    accumulateGrad(x, d);
  });
}

export function activation(kind: Activation, x: Tensor): Tensor {
  const X = x.f32;
  const out = emptyF32(X.length);
  backend().activation(kind, X, out, X.length);
  return record(new Tensor(out, x.shape), kind, [x], (g) => {
    const d = emptyF32(g.length);
    backend().activationBackward(kind, X, g, d, g.length);
    accumulateGrad(x, d);
  });
}

export const gelu = (x: Tensor): Tensor => activation('gelu', x);
export const geluTanh = (x: Tensor): Tensor => activation('gelu_tanh', x);
export const quickGelu = (x: Tensor): Tensor => activation('quick_gelu', x);
export const silu = (x: Tensor): Tensor => activation('silu', x);
export const tanh = (x: Tensor): Tensor => activation('tanh', x);
export const relu = (x: Tensor): Tensor => activation('relu', x);
export const sigmoid = (x: Tensor): Tensor => activation('sigmoid', x);

/** SwiGLU: silu(gate) ⊙ up (LLaMA MLP), fused. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.size !== up.size) throw new ShapeError('swiglu', `gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} differ`);
  const G = gate.f32;
  const U = up.f32;
  const out = emptyF32(G.length);
  backend().swiglu(G, U, out, G.length);
  return record(new Tensor(out, gate.shape), 'swiglu', [gate, up], (g) => {
    const dg = emptyF32(g.length);
    const du = emptyF32(g.length);
    backend().swigluBackward(G, U, g, dg, du, g.length);
    accumulateGrad(gate, dg);
    accumulateGrad(up, du);
  });
}

