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

function coefficients(inSize: number, outSize: number, filter: ResampleFilter): Coefficients {
  const { support: base, fn } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = base * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1 / filterScale; // Pillow multiplies by the reciprocal; dividing differs in the last bit
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      const w = fn((k + lo - center + 0.5) * ss);
      weights[o * ksize + k] = w;
      sum += w;
    }
    if (sum !== 0) for (let k = 0; k < n; k++) weights[o * ksize + k] /= sum;
    start[o] = lo;
    count[o] = Math.max(n, 0);
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

/**
 * One separable pass over interleaved 8-bit samples. `axis` 0 resizes rows (width), 1 columns (height).
 */
function pass8(src: Uint8Array, w: number, h: number, ch: number, out: number, axis: 0 | 1, filter: ResampleFilter): Uint8Array {
  const inSize = axis === 0 ? w : h;
  const c = coefficients(inSize, out, filter);
  const k = fixedPoint(c);
  const ow = axis === 0 ? out : w;
  const oh = axis === 0 ? h : out;
  const dst = new Uint8Array(ow * oh * ch);
  if (axis === 0) {
    for (let y = 0; y < h; y++) {
      const row = y * w * ch;
      for (let x = 0; x < out; x++) {
        const s = c.start[x]!, n = c.count[x]!, kb = x * c.ksize;
        for (let b = 0; b < ch; b++) {
          let acc = HALF;
          for (let i = 0; i < n; i++) acc += src[row + (s + i) * ch + b]! * k[kb + i]!;
          dst[(y * out + x) * ch + b] = clip8(acc);
        }
      }
    }
  } else {
    const stride = w * ch;
    for (let y = 0; y < out; y++) {
      const s = c.start[y]!, n = c.count[y]!, kb = y * c.ksize;
      for (let p = 0; p < stride; p++) {
        let acc = HALF;
        for (let i = 0; i < n; i++) acc += src[(s + i) * stride + p]! * k[kb + i]!;
        dst[y * stride + p] = clip8(acc);
      }
    }
  }
  return dst;
}

const roundAway = (v: number): number => Math.trunc(v >= 0 ? v + 0.5 : v - 0.5);

function pass32(src: Int32Array, w: number, h: number, out: number, axis: 0 | 1, filter: ResampleFilter): Int32Array {
  const c = coefficients(axis === 0 ? w : h, out, filter);
  const ow = axis === 0 ? out : w;
  const oh = axis === 0 ? h : out;
  const dst = new Int32Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const o = axis === 0 ? x : y;
      const s = c.start[o]!, n = c.count[o]!, kb = o * c.ksize;
      let acc = 0;
      for (let i = 0; i < n; i++) acc += (axis === 0 ? src[y * w + s + i]! : src[(s + i) * w + x]!) * c.weights[kb + i]!;
      dst[y * ow + x] = roundAway(acc);
    }
  }
  return dst;
}

/** Separable convolution resize of interleaved 8-bit samples (Pillow's 8bpc path). */
export function resample8(src: Uint8Array, w: number, h: number, ch: number, outW: number, outH: number, filter: ResampleFilter): Uint8Array {
  let cur = src;
  if (outW !== w) cur = pass8(cur, w, h, ch, outW, 0, filter);
  if (outH !== h) cur = pass8(cur, outW, h, ch, outH, 1, filter);
  return cur === src ? src.slice() : cur;
}

/** Pillow's nearest-neighbour scaling: source index trunc(pos), pos starting at scale/2 and stepping by scale. */
function nearestIndex(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  const scale = inSize / outSize;
  let pos = scale / 2;
  for (let i = 0; i < outSize; i++) {
    idx[i] = Math.min(Math.trunc(pos), inSize - 1);
    pos += scale;
  }
  return idx;
}

export function resampleNearest<T extends Uint8Array | Int32Array>(src: T, w: number, h: number, ch: number, outW: number, outH: number): T {
  const xi = nearestIndex(w, outW);
  const yi = nearestIndex(h, outH);
  const dst = new (src.constructor as new (n: number) => T)(outW * outH * ch);
  for (let y = 0; y < outH; y++) {
    const row = yi[y]! * w;
    for (let x = 0; x < outW; x++) {
      const s = (row + xi[x]!) * ch;
      const d = (y * outW + x) * ch;
      for (let b = 0; b < ch; b++) dst[d + b] = src[s + b]!;
    }
  }
  return dst;
}

const muldiv255 = (a: number, b: number): number => {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
};

/** `Image.resize(size, filter)` on an image in its own mode. The palette and transparency travel along. */
export function resizeDecoded(img: DecodedImage, width: number, height: number, filter: ResampleFilter = 'bicubic'): DecodedImage {
  const { mode, width: w, height: h } = img;
  const ch = modeChannels(mode);
  const base = { ...img, width, height };
  if (width === w && height === h) return { ...base, data: img.data.slice() };
  if (mode === 'P' || mode === '1') return { ...base, data: resampleNearest(img.data as Uint8Array, w, h, ch, width, height) };
  if (mode === 'I') {
    let cur = img.data as Int32Array;
    if (width !== w) cur = pass32(cur, w, h, width, 0, filter);
    if (height !== h) cur = pass32(cur, width, h, height, 1, filter);
    return { ...base, data: cur };
  }
  const src = img.data as Uint8Array;
  if (mode === 'RGBA' || mode === 'LA') {
    // Premultiply ("RGBa"/"La") so colours under transparent pixels do not bleed into visible ones.
    const pre = new Uint8Array(src.length);
    for (let p = 0; p < src.length; p += ch) {
      const a = src[p + ch - 1]!;
      for (let b = 0; b < ch - 1; b++) pre[p + b] = muldiv255(src[p + b]!, a);
      pre[p + ch - 1] = a;
    }
    const out = resample8(pre, w, h, ch, width, height, filter);
    for (let p = 0; p < out.length; p += ch) {
      const a = out[p + ch - 1]!;
      if (a === 0 || a === 255) continue;
      for (let b = 0; b < ch - 1; b++) out[p + b] = Math.min(255, Math.floor((255 * out[p + b]!) / a));
    }
    return { ...base, data: out };
  }
  return { ...base, data: resample8(src, w, h, ch, width, height, filter) };
}
