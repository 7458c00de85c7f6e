/**
 * Pillow's `Image.resize` for every mode the decoders produce, reproduced to the byte (semantics of
 * Pillow's Resample.c and Image.resize, 8-bit paths unchanged from 9.x to 11.x).
 *
 * - 8-bit modes: separable convolution, horizontal pass first, each pass only when that side
 *   changes; kernel widened by the downscale factor (antialiasing); weights normalised in double
 *   precision, then 22-bit fixed point; the first pass is rounded and clipped to 8 bits.
 * - "P" and "1": nearest neighbour whatever filter was asked (palette indices cannot be blended).
 * - "RGBA" / "LA": premultiplied by alpha first, resized as 8-bit, un-premultiplied after.
 * - "I": the same weights in double precision, each pass rounded half away from zero to int32.
 */
import { modeChannels, type DecodedImage } from './image-format.ts';

export type ResampleFilter = 'bicubic' | 'bilinear';

const FILTERS: Record<ResampleFilter, { support: number; fn: (x: number) => number }> = {
  bilinear: {
    support: 1,
    fn: (x) => {
      const t = x < 0 ? -x : x;
      return t < 1 ? 1 - t : 0;
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      const t = x < 0 ? -x : x;
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

const PRECISION_BITS = 22; // Pillow: 32 - 8 - 2
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

interface Coefficients {
  start: Int32Array;
  count: Int32Array;
  /** Normalised weights, `ksize` per output index. */
  weights: Float64Array;
  ksize: number;
}

/** Weights of output indices [from, from + n) of a pass from `inSize` to `outSize` samples. */
function coefficients(inSize: number, outSize: number, filter: ResampleFilter, from = 0, n = outSize): Coefficients {
  const { support: base, fn } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = base * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1 / filterScale; // Pillow multiplies by the reciprocal; dividing differs in the last bit
  const start = new Int32Array(n);
  const count = new Int32Array(n);
  const weights = new Float64Array(n * ksize);
  for (let j = 0; j < n; j++) {
    const center = (from + j + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const len = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let sum = 0;
    for (let k = 0; k < len; k++) {
      const w = fn((k + lo - center + 0.5) * ss);
      weights[j * ksize + k] = w;
      sum += w;
    }
    if (sum !== 0) for (let k = 0; k < len; k++) weights[j * ksize + k] /= sum;
    start[j] = lo;
    count[j] = Math.max(len, 0);
  }
  return { start, count, weights, ksize };
}

function fixedPoint(c: Coefficients): Int32Array {
  const out = new Int32Array(c.weights.length);
  for (let i = 0; i < out.length; i++) {
    const w = c.weights[i]!;
    out[i] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
  }
  return out;
}

const clip8 = (acc: number): number => {
  // The accumulator is an exact integer below 2^31 here; `>>` is Pillow's arithmetic shift.
  const v = acc >> PRECISION_BITS;
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
};

const roundAway = (v: number): number => Math.trunc(v >= 0 ? v + 0.5 : v - 0.5);

/** Part of the output of a resize: columns [left, left + width), rows [top, top + height). */
export interface Region { left: number; top: number; width: number; height: number }

/**
 * Separable resize of interleaved samples (8-bit: Pillow's fixed point with rounding between the
 * passes; 32-bit "I": double weights, each pass rounded half away from zero). Only `region` of the
 * output is computed, from the input rows it needs: each output sample depends on its own window
 * only, so the result equals cropping Pillow's full output, without allocating it.
 */
function resampleSeparable<T extends Uint8Array | Int32Array>(
  src: T, w: number, h: number, ch: number, outW: number, outH: number, filter: ResampleFilter, region: Region,
): T {
  const is8 = src instanceof Uint8Array;
  const make = (n: number): T => (is8 ? new Uint8Array(n) : new Int32Array(n)) as T;
  const rw = region.width;
  const rh = region.height;
  // Rows of the horizontal pass's output the vertical pass reads.
  const vc = outH !== h ? coefficients(h, outH, filter, region.top, rh) : null;
  let rowLo = region.top;
  let rowHi = region.top + rh;
  if (vc) {
    rowLo = Infinity;
    rowHi = 0;
    for (let j = 0; j < rh; j++) {
      rowLo = Math.min(rowLo, vc.start[j]!);
      rowHi = Math.max(rowHi, vc.start[j]! + vc.count[j]!);
    }
    if (rowHi <= rowLo) rowLo = rowHi = 0;
  }
  const rows = rowHi - rowLo;
  // Horizontal pass (only if the width changes): rows [rowLo, rowHi), output columns of the region.
  const inter = make(rw * rows * ch);
  if (outW !== w) {
    const hc = coefficients(w, outW, filter, region.left, rw);
    const k8 = is8 ? fixedPoint(hc) : null;
    for (let y = 0; y < rows; y++) {
      const row = (rowLo + y) * w * ch;
      for (let x = 0; x < rw; x++) {
        const s = hc.start[x]!, n = hc.count[x]!, kb = x * hc.ksize;
        for (let b = 0; b < ch; b++) {
          const o = (y * rw + x) * ch + b;
          if (k8) {
            let acc = HALF;
            for (let i = 0; i < n; i++) acc += src[row + (s + i) * ch + b]! * k8[kb + i]!;
            inter[o] = clip8(acc);
          } else {
            let acc = 0;
            for (let i = 0; i < n; i++) acc += src[row + (s + i) * ch + b]! * hc.weights[kb + i]!;
            inter[o] = roundAway(acc);
          }
        }
      }
    }
  } else {
    for (let y = 0; y < rows; y++) {
      const from = ((rowLo + y) * w + region.left) * ch;
      inter.set(src.subarray(from, from + rw * ch), y * rw * ch);
    }
  }
  if (!vc) return inter;
  // Vertical pass over the region's rows.
  const out = make(rw * rh * ch);
  const stride = rw * ch;
  const k8 = is8 ? fixedPoint(vc) : null;
  for (let j = 0; j < rh; j++) {
    const s = vc.start[j]! - rowLo, n = vc.count[j]!, kb = j * vc.ksize;
    for (let p = 0; p < stride; p++) {
      if (k8) {
        let acc = HALF;
        for (let i = 0; i < n; i++) acc += inter[(s + i) * stride + p]! * k8[kb + i]!;
        out[j * stride + p] = clip8(acc);
      } else {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += inter[(s + i) * stride + p]! * vc.weights[kb + i]!;
        out[j * stride + p] = roundAway(acc);
      }
    }
  }
  return out;
}

const fullRegion = (w: number, h: number): Region => ({ left: 0, top: 0, width: w, height: h });

function checkRegion(r: Region, outW: number, outH: number): void {
  if (!(r.left >= 0 && r.top >= 0 && r.width > 0 && r.height > 0 && r.left + r.width <= outW && r.top + r.height <= outH)) {
    throw new RangeError(`resize region ${r.width}x${r.height}+${r.left}+${r.top} is not inside the ${outW}x${outH} output`);
  }
}

/** Separable convolution resize of interleaved 8-bit samples (Pillow's 8bpc path), optionally only a region of the output. */
export function resample8(src: Uint8Array, w: number, h: number, ch: number, outW: number, outH: number, filter: ResampleFilter, region?: Region): Uint8Array {
  const r = region ?? fullRegion(outW, outH);
  checkRegion(r, outW, outH);
  if (outW === w && outH === h && !region) return src.slice();
  return resampleSeparable(src, w, h, ch, outW, outH, filter, r);
}

/** Pillow's nearest-neighbour scaling: source index trunc(pos), pos starting at scale/2 and stepping by scale. */
function nearestIndex(inSize: number, outSize: number, from: number, n: number): Int32Array {
  const idx = new Int32Array(n);
  const scale = inSize / outSize;
  let pos = scale / 2;
  // The repeated addition is part of the semantics (it decides ties), so it is replayed from 0.
  for (let i = 0; i < from + n; i++) {
    if (i >= from) idx[i - from] = Math.min(Math.trunc(pos), inSize - 1);
    pos += scale;
  }
  return idx;
}

export function resampleNearest<T extends Uint8Array | Int32Array>(src: T, w: number, h: number, ch: number, outW: number, outH: number, region?: Region): T {
  const r = region ?? fullRegion(outW, outH);
  checkRegion(r, outW, outH);
  const xi = nearestIndex(w, outW, r.left, r.width);
  const yi = nearestIndex(h, outH, r.top, r.height);
  const dst = new (src.constructor as new (n: number) => T)(r.width * r.height * ch);
  for (let y = 0; y < r.height; y++) {
    const row = yi[y]! * w;
    for (let x = 0; x < r.width; x++) {
      const s = (row + xi[x]!) * ch;
      const d = (y * r.width + x) * ch;
      for (let b = 0; b < ch; b++) dst[d + b] = src[s + b]!;
    }
  }
  return dst;
}

const muldiv255 = (a: number, b: number): number => {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
};

/**
 * `Image.resize((width, height), filter)` on an image in its own mode, optionally computing only
 * `region` of the result (then the returned image is region-sized). Palette and transparency travel along.
 */
export function resizeDecoded(img: DecodedImage, width: number, height: number, filter: ResampleFilter = 'bicubic', region?: Region): DecodedImage {
  const { mode, width: w, height: h } = img;
  const ch = modeChannels(mode);
  const r = region ?? fullRegion(width, height);
  checkRegion(r, width, height);
  const base = { ...img, width: r.width, height: r.height };
  if (width === w && height === h) {
    // Pillow copies an image whose size does not change; the region is a plain crop.
    return { ...base, data: resampleNearest(img.data, w, h, ch, w, h, r) };
  }
  if (mode === 'P' || mode === '1') return { ...base, data: resampleNearest(img.data as Uint8Array, w, h, ch, width, height, r) };
  if (mode === 'I') return { ...base, data: resampleSeparable(img.data as Int32Array, w, h, 1, width, height, filter, r) };
  const src = img.data as Uint8Array;
  if (mode === 'RGBA' || mode === 'LA') {
    // Premultiply ("RGBa"/"La") so colours under transparent pixels do not bleed into visible ones.
    const pre = new Uint8Array(src.length);
    for (let p = 0; p < src.length; p += ch) {
      const a = src[p + ch - 1]!;
      for (let b = 0; b < ch - 1; b++) pre[p + b] = muldiv255(src[p + b]!, a);
      pre[p + ch - 1] = a;
    }
    const out = resampleSeparable(pre, w, h, ch, width, height, filter, r);
    for (let p = 0; p < out.length; p += ch) {
      const a = out[p + ch - 1]!;
      if (a === 0 || a === 255) continue;
      for (let b = 0; b < ch - 1; b++) out[p + b] = Math.min(255, Math.floor((255 * out[p + b]!) / a));
    }
    return { ...base, data: out };
  }
  return { ...base, data: resampleSeparable(src, w, h, ch, width, height, filter, r) };
}
