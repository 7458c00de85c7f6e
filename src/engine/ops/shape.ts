/**
 * Shape ops: reshape (a view sharing the buffer), permute/transpose, concat, split, slice,
 * index-select, embedding gather (scatter-add backward), masked fill, broadcast-to.
 */
import { type GradSlot, Tensor, ShapeError, emptyF32, fmtShape, shapeSize } from '../tensor.ts';
import { accumulateGrad, record, writableGrad } from '../autograd.ts';
import { broadcastShapes, broadcastStrides, forEachBroadcast, reduceToShape } from './broadcast.ts';
import { backend } from '../backend.ts';

/** A view with a new shape (one dim may be -1). Shares the buffer; gradient shares shape logic. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = s.reduce((p, d, i) => (i === neg ? p : p * d), 1);
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError('reshape', `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
    s[neg] = x.size / rest;
  }
  if (shapeSize(s) !== x.size) throw new ShapeError('reshape', `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
  const out = new Tensor(x.data, s);
  const xs = x.slot;
  return record(out, 'reshape', [x], (g) => accumulateGrad(xs, g, false));
}

function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { st[i] = s; s *= shape[i]!; }
  return st;
}

/** Copy x into a new order of axes: out.shape[i] = x.shape[perm[i]]. */
function permuteData<T extends Float32Array | Int32Array>(data: T, shape: readonly number[], perm: readonly number[]): T {
  const n = shape.length;
  const outShape = perm.map((p) => shape[p]!);
  const inStrides = stridesOf(shape);
  const st = perm.map((p) => inStrides[p]!);
  const out = (data instanceof Float32Array ? emptyF32(data.length) : new Int32Array(data.length)) as T;
  const total = data.length;
  if (total === 0) return out;
  if (n === 4 && perm[0] === 0 && perm[1] === 2 && perm[2] === 1 && perm[3] === 3 && data instanceof Float32Array) {
    // the attention head split/merge (B, A, C, D) → (B, C, A, D): whole rows of D, in a kernel
    const [B, A, C, D] = shape as [number, number, number, number];
    backend().swapMiddleAxes(data, out as Float32Array, B, A, C, D);
    return out;
  }
  const idx = new Array<number>(n).fill(0);
  const last = n - 1;
  const lastDim = outShape[last]!;
  const ls = st[last]!;
  let src = 0;
  for (let o = 0; o < total;) {
    for (let j = 0; j < lastDim; j++) out[o++] = data[src + j * ls]!;
    let ax = last - 1;
    while (ax >= 0) {
      idx[ax]!++;
      src += st[ax]!;
      if (idx[ax]! < outShape[ax]!) break;
      src -= st[ax]! * outShape[ax]!;
      idx[ax] = 0;
      ax--;
    }
    if (ax < 0) break;
  }
  return out;
}

/** Whether permuting `shape` by `perm` leaves every element where it is: the axes longer than 1 keep their order. */
function keepsLayout(shape: readonly number[], perm: readonly number[]): boolean {
  let last = -1;
  for (const p of perm) {
    if (shape[p]! === 1) continue;
    if (p < last) return false;
    last = p;
  }
  return true;
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.ndim || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new ShapeError('permute', `invalid permutation ${fmtShape(perm)} for ${fmtShape(x.shape)}`);
  }
  const shape = perm.map((p) => x.shape[p]!);
  if (keepsLayout(x.shape, perm)) {
    // only axes of size 1 move (a one-token step's head split / merge): the same elements in the
    // same order, so the output shares x's data as reshape does
    const xs = x.slot;
    return record(new Tensor(x.data, shape), 'permute', [x], (g) => accumulateGrad(xs, g, false));
  }
  const out = new Tensor(permuteData(x.data, x.shape, perm), shape);
  return record(out, 'permute', [x], permuteBackward(x.slot, out.shape, perm));
}

/** permute's backward, made outside permute() so that it captures neither tensor (their data may go). */
function permuteBackward(xs: GradSlot, outShape: readonly number[], perm: readonly number[]): (g: Float32Array) => void {
  return (g) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => { inv[p] = i; });
    accumulateGrad(xs, permuteData(g, outShape, inv));
  };
}

export function transpose(x: Tensor, a: number, b: number): Tensor {
  const n = x.ndim;
  const perm = [...Array(n).keys()];
  const aa = a < 0 ? n + a : a;
  const bb = b < 0 ? n + b : b;
  perm[aa] = bb;
  perm[bb] = aa;
  return permute(x, perm);
}

function axisOf(op: string, ndim: number, axis: number): number {
  const a = axis < 0 ? ndim + axis : axis;
  if (a < 0 || a >= ndim) throw new ShapeError(op, `axis ${axis} out of range for ${ndim}-D input`);
  return a;
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError('concat', 'no inputs');
  const first = xs[0]!;
  const a = axisOf('concat', first.ndim, axis);
  for (const t of xs) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i]) || t.dtype !== first.dtype) {
      throw new ShapeError('concat', `incompatible inputs ${xs.map((u) => fmtShape(u.shape)).join(', ')} along axis ${axis}`);
    }
  }
  const outer = shapeSize(first.shape.slice(0, a));
  const inner = shapeSize(first.shape.slice(a + 1));
  const total = xs.reduce((p, t) => p + t.shape[a]!, 0);
  const shape = first.shape.map((d, i) => (i === a ? total : d));
  const out = first.dtype === 'int32' ? new Int32Array(shapeSize(shape)) : emptyF32(shapeSize(shape));
  let off = 0;
  for (const t of xs) {
    const w = t.shape[a]! * inner;
    for (let o = 0; o < outer; o++) out.set(t.data.subarray(o * w, (o + 1) * w), o * total * inner + off);
    off += w;
  }
  return record(new Tensor(out, shape), 'concat', xs, concatBackward(xs.map((t) => t.slot), a, outer, inner, total));
}

/** concat's backward, made outside concat() so that it captures no input tensor (their data may go). */
function concatBackward(slots: readonly GradSlot[], a: number, outer: number, inner: number, total: number): (g: Float32Array) => void {
  return (g) => {
    let off2 = 0;
    for (const t of slots) {
      const w = t.shape[a]! * inner;
      if (t.requiresGrad) {
        const d = emptyF32(t.size);
        for (let o = 0; o < outer; o++) d.set(g.subarray(o * total * inner + off2, o * total * inner + off2 + w), o * w);
        accumulateGrad(t, d);
      }
      off2 += w;
    }
  };
}

/**
 * Slice gradients added into a shared buffer go to the kernel from this row length on: the k / v
 * halves of a packed projection (rows of 384-1536) added at ~2.5 ns per element in the loop, and a
 * call costs a few hundred ns. Same sums either way (float32 adds).
 */
const SLICE_KERNEL_ROW = 128;

/** x[..., start:end, ...] along one axis (copy; a leading-axis slice of an int tensor is a view). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = axisOf('slice', x.ndim, axis);
  const n = x.shape[a]!;
  if (start < 0 || end > n || start > end) throw new ShapeError('slice', `range [${start}, ${end}) out of bounds for axis ${axis} of ${fmtShape(x.shape)}`);
  const outer = shapeSize(x.shape.slice(0, a));
  const inner = shapeSize(x.shape.slice(a + 1));
  const len = end - start;
  const shape = x.shape.map((d, i) => (i === a ? len : d));
  const out = x.dtype === 'int32' ? new Int32Array(outer * len * inner) : emptyF32(outer * len * inner);
  for (let o = 0; o < outer; o++) {
    out.set(x.data.subarray((o * n + start) * inner, (o * n + end) * inner), o * len * inner);
  }
  const xs = x.slot;
  return record(new Tensor(out, shape), 'slice', [x], (g) => {
    // Into x's gradient in place: the slices of one tensor (q, k, v of a packed projection) fill one
    // buffer instead of each making a full-size zero buffer that is then added to the others.
    // A fresh buffer is not cleared first: each row gets the slice and zeros around it, one write each.
    const { buf, fresh } = writableGrad(xs, true);
    const w = len * inner;
    const k = backend();
    for (let o = 0; o < outer; o++) {
      const src = g.subarray(o * w, (o + 1) * w);
      const dst = (o * n + start) * inner;
      if (fresh) {
        buf.fill(0, o * n * inner, dst);
        buf.set(src, dst);
        buf.fill(0, dst + w, (o + 1) * n * inner);
      } else if (w >= SLICE_KERNEL_ROW) k.axpy(1, src, buf.subarray(dst, dst + w), w);
      else for (let j = 0; j < w; j++) buf[dst + j]! += src[j]!;
    }
  });
}

export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const a = axisOf('split', x.ndim, axis);
  const total = sizes.reduce((p, s) => p + s, 0);
  if (total !== x.shape[a]) throw new ShapeError('split', `sizes ${fmtShape(sizes)} do not add up to ${x.shape[a]} along axis ${axis} of ${fmtShape(x.shape)}`);
  const out: Tensor[] = [];
  let s = 0;
  for (const sz of sizes) { out.push(slice(x, a, s, s + sz)); s += sz; }
  return out;
}

/** Rows of x along `axis` picked by int32 indices (any shape of indices replaces that axis). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = axisOf('index_select', x.ndim, axis);
  const I = index.i32;
  const n = x.shape[a]!;
  const outer = shapeSize(x.shape.slice(0, a));
  const inner = shapeSize(x.shape.slice(a + 1));
  for (let i = 0; i < I.length; i++) {
    if (I[i]! < 0 || I[i]! >= n) throw new ShapeError('index_select', `index ${I[i]} at position ${i} out of range [0, ${n}) for ${fmtShape(x.shape)}`);
  }
  const m = I.length;
  const shape = [...x.shape.slice(0, a), ...index.shape, ...x.shape.slice(a + 1)];
  const out = x.dtype === 'int32' ? new Int32Array(outer * m * inner) : emptyF32(outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const src = (o * n + I[i]!) * inner;
      out.set(x.data.subarray(src, src + inner), (o * m + i) * inner);
    }
  }
  const xs = x.slot;
  return record(new Tensor(out, shape), 'index_select', [x], (g) => {
    const d = new Float32Array(xs.size);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < m; i++) {
        const dst = (o * n + I[i]!) * inner;
        const src = (o * m + i) * inner;
        for (let j = 0; j < inner; j++) d[dst + j]! += g[src + j]!;
      }
    }
    accumulateGrad(xs, d);
  });
}

/** Embedding lookup: weight (V, D), ids int32 of any shape → (...ids.shape, D). Scatter-add backward. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new ShapeError('embedding', `weight must be (vocab, dim), got ${fmtShape(weight.shape)}`);
  const [V, D] = [weight.shape[0]!, weight.shape[1]!];
  const I = ids.i32;
  for (let i = 0; i < I.length; i++) {
    if (I[i]! < 0 || I[i]! >= V) throw new ShapeError('embedding', `token id ${I[i]} at position ${i} is outside the vocabulary [0, ${V})`);
  }
  const W = weight.f32;
  const out = emptyF32(I.length * D);
  for (let i = 0; i < I.length; i++) out.set(W.subarray(I[i]! * D, (I[i]! + 1) * D), i * D);
  const ws = weight.slot;
  return record(new Tensor(out, [...ids.shape, D]), 'embedding', [weight], (g) => {
    const G = writableGrad(ws).buf;
    for (let i = 0; i < I.length; i++) {
      const dst = I[i]! * D;
      const src = i * D;
      for (let j = 0; j < D; j++) G[dst + j]! += g[src + j]!;
    }
  });
}

/** out = mask ? value : x, with mask (uint8/int32 tensor or Uint8Array + shape) broadcast to x. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const outShape = broadcastShapes('masked_fill', x.shape, mask.shape);
  if (outShape.length !== x.ndim || outShape.some((d, i) => d !== x.shape[i])) {
    throw new ShapeError('masked_fill', `mask ${fmtShape(mask.shape)} does not broadcast to input ${fmtShape(x.shape)}`);
  }
  const X = x.f32;
  const M = mask.data;
  const out = new Float32Array(X);
  const keep = new Uint8Array(X.length).fill(1);
  forEachBroadcast(outShape, broadcastStrides(x.shape, outShape), broadcastStrides(mask.shape, outShape), (o, _ia, im) => {
    if (M[im] !== 0) { out[o] = value; keep[o] = 0; }
  });
  return record(new Tensor(out, x.shape), 'masked_fill', [x], (g) => {
    const d = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) d[i] = keep[i] ? g[i]! : 0;
    accumulateGrad(x, d);
  });
}

/** Materialise a broadcast of x to `shape` (gradient summed back). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const outShape = broadcastShapes('broadcast_to', x.shape, shape);
  if (outShape.length !== shape.length || outShape.some((d, i) => d !== shape[i])) {
    throw new ShapeError('broadcast_to', `cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const X = x.f32;
  const out = emptyF32(shapeSize(shape));
  const zero = new Array<number>(shape.length).fill(0);
  forEachBroadcast(shape, broadcastStrides(x.shape, shape), zero, (o, ia) => { out[o] = X[ia]!; });
  const [xs, xShape] = [x.slot, x.shape];
  return record(new Tensor(out, shape), 'broadcast_to', [x], (g) => accumulateGrad(xs, reduceToShape(g, shape, xShape), false));
}
