/**
 * NumPy-style broadcasting: shape resolution, strided iteration and the reduction that maps a
 * broadcast gradient back onto an input's shape.
 */
import { ShapeError, fmtShape, shapeSize } from '../tensor.ts';
import { backend } from '../backend.ts';

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Element strides of `shape` seen as broadcast to `outShape` (0 along broadcast axes). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const n = outShape.length;
  const strides = new Array<number>(n).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const axis = n - shape.length + i;
    strides[axis] = shape[i] === 1 ? 0 : s;
    s *= shape[i]!;
  }
  return strides;
}

/**
 * If `small` broadcasts to `big` as a repeated suffix block (e.g. bias [D] onto [N, D]) or a repeated
 * prefix (e.g. [N, 1] onto [N, D]), describe it so loops can run on contiguous rows.
 */
export function broadcastPattern(
  small: readonly number[], big: readonly number[],
): { kind: 'same' } | { kind: 'suffix'; inner: number } | { kind: 'prefix'; inner: number } | { kind: 'general' } {
  const ns = shapeSize(small);
  const nb = shapeSize(big);
  if (ns === nb) return { kind: 'same' };
  // suffix: small's non-trivial dims equal big's trailing dims
  const s = [...small];
  while (s.length > 0 && s[0] === 1) s.shift();
  if (s.length <= big.length) {
    let ok = true;
    for (let i = 0; i < s.length; i++) if (s[i] !== big[big.length - s.length + i]) { ok = false; break; }
    if (ok) return { kind: 'suffix', inner: ns };
  }
  // prefix: small = big's leading dims followed by trailing 1s
  const lead = [...small];
  let inner = 1;
  let k = big.length;
  const padded = new Array(big.length - lead.length).fill(1).concat(lead) as number[];
  while (k > 0 && padded[k - 1] === 1 && big[k - 1] !== 1) { inner *= big[k - 1]!; k--; }
  if (inner > 1) {
    let ok = true;
    for (let i = 0; i < k; i++) if (padded[i] !== big[i]) { ok = false; break; }
    if (ok) return { kind: 'prefix', inner };
  }
  return { kind: 'general' };
}

/** Calls fn(outIndex, aIndex, bIndex) for every output element (odometer over strides). */
export function forEachBroadcast(
  outShape: readonly number[], aStrides: readonly number[], bStrides: readonly number[],
  fn: (o: number, ia: number, ib: number) => void,
): void {
  const n = outShape.length;
  const total = shapeSize(outShape);
  if (n === 0) { if (total === 1) fn(0, 0, 0); return; }
  const idx = new Array<number>(n).fill(0);
  let ia = 0;
  let ib = 0;
  const last = n - 1;
  const lastDim = outShape[last]!;
  const sa = aStrides[last]!;
  const sb = bStrides[last]!;
  for (let o = 0; o < total;) {
    for (let j = 0; j < lastDim; j++, o++) fn(o, ia + j * sa, ib + j * sb);
    // carry
    let ax = last - 1;
    while (ax >= 0) {
      idx[ax]!++;
      ia += aStrides[ax]!;
      ib += bStrides[ax]!;
      if (idx[ax]! < outShape[ax]!) break;
      ia -= aStrides[ax]! * outShape[ax]!;
      ib -= bStrides[ax]! * outShape[ax]!;
      idx[ax] = 0;
      ax--;
    }
    if (ax < 0) break;
  }
}

/** Sum a gradient of shape `outShape` down to `inShape` (the inverse of broadcasting). */
export function reduceToShape(g: Float32Array, outShape: readonly number[], inShape: readonly number[]): Float32Array {
  const nIn = shapeSize(inShape);
  if (nIn === g.length) return g;
  const res = new Float32Array(nIn);
  if (nIn === 1) {
    // to a scalar (a gate's gradient): the same float32 running sum as the block loop below, flat
    let s = 0;
    for (let i = 0; i < g.length; i++) s = Math.fround(s + g[i]!);
    res[0] = s;
    return res;
  }
  const pat = broadcastPattern(inShape, outShape);
  if (pat.kind === 'suffix') {
    const inner = pat.inner;
    if (inner >= 4096) {
      // same sums in the same order (block after block), one kernel call per block
      const k = backend();
      for (let o = 0; o < g.length; o += inner) k.add(res, g.subarray(o, o + inner), res, inner);
      return res;
    }
    for (let o = 0; o < g.length; o += inner) for (let j = 0; j < inner; j++) res[j]! += g[o + j]!;
    return res;
  }
  if (pat.kind === 'prefix') {
    const inner = pat.inner;
    for (let r = 0; r < nIn; r++) {
      let s = 0;
      const base = r * inner;
      for (let j = 0; j < inner; j++) s += g[base + j]!;
      res[r] = s;
    }
    return res;
  }
  const st = broadcastStrides(inShape, outShape);
  const zero = new Array<number>(outShape.length).fill(0);
  forEachBroadcast(outShape, st, zero, (o, i) => { res[i]! += g[o]!; });
  return res;
}
