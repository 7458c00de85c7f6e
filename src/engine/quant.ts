/**
 * Storage types for frozen weight matrices (out, in), PyTorch nn.Linear layout.
 *
 * - `bf16`: the upper 16 bits of each float32 (round to nearest even, as torch's `.to(bfloat16)`),
 *   2 bytes a weight. Dequantising is a shift, so it is exact in float32.
 * - `int8`: symmetric block quantisation along the input axis, as llama.cpp's Q8_0: each block of
 *   Q8_BLOCK = 32 consecutive input weights of a row keeps one float32 scale d = max|w| / 127 and
 *   int8 values q = round(w / d); w ≈ q·d. The last block of a row may be shorter when `in` is not
 *   a multiple of 32. 1.125 bytes a weight.
 *
 * Why blocks of 32: a finer block follows outlier weights more closely (the error is bounded by
 * d/2 of each block); 32 keeps the scale overhead at 1/8 byte a weight, divides every width of the
 * released configurations (1024, 2048, 4096, 5632, 8192, 11008), and one block is exactly one
 * 256-bit register of int8 values in the AVX2 kernels. Scales are float32 rather than float16 so the
 * kernels multiply them without a conversion; the cost is 0.0625 byte a weight.
 *
 * Quantised weights are inference storage: they never require grad. Gradients still flow through
 * them to the activations (dx = g · dequant(W)).
 */
import { FlamingoError } from '../errors.ts';

export type WeightDType = 'fp32' | 'bf16' | 'int8';
export const WEIGHT_DTYPES: readonly WeightDType[] = ['fp32', 'bf16', 'int8'];
export const Q8_BLOCK = 32;

export interface Bf16Weight {
  readonly kind: 'bf16';
  readonly rows: number;
  readonly cols: number;
  readonly bits: Uint16Array;
}

export interface Int8Weight {
  readonly kind: 'int8';
  readonly rows: number;
  readonly cols: number;
  /** rows × cols int8 values, row-major. */
  readonly qs: Int8Array;
  /** rows × blocksPerRow(cols) float32 scales. */
  readonly scales: Float32Array;
}

export type PackedWeight = Bf16Weight | Int8Weight;

export class QuantError extends FlamingoError {}

export function isWeightDType(s: string): s is WeightDType {
  return (WEIGHT_DTYPES as readonly string[]).includes(s);
}

/** Validates a user-given dtype (CLI flag, load option), naming where it came from. */
export function parseWeightDType(s: unknown, where = 'dtype'): WeightDType {
  if (typeof s !== 'string' || !isWeightDType(s)) {
    throw new QuantError(`${where} must be one of ${WEIGHT_DTYPES.join(', ')}, got ${JSON.stringify(s)}`);
  }
  return s;
}

export function blocksPerRow(cols: number): number {
  return Math.ceil(cols / Q8_BLOCK);
}

/** Bytes the packed weight occupies. */
export function packedBytes(p: PackedWeight): number {
  return p.kind === 'bf16' ? p.bits.byteLength : p.qs.byteLength + p.scales.byteLength;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, round to nearest even; NaN stays NaN (quiet). */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBf16Bits(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** Quantise one row block of int8: returns the scale, writes q. */
function quantizeBlock(src: Float32Array, off: number, n: number, qs: Int8Array): number {
  let amax = 0;
  let finite = true;
  for (let j = 0; j < n; j++) {
    const a = Math.abs(src[off + j]!);
    if (a > amax) amax = a;
    else if (a !== a) finite = false; // NaN
  }
  if (!finite || !Number.isFinite(amax)) throw new QuantError(`cannot quantise a non-finite weight (at element ${off})`);
  const d = Math.fround(amax / 127);
  const inv = d === 0 ? 0 : 1 / d;
  for (let j = 0; j < n; j++) {
    // round half away from zero, as llama.cpp's roundf
    const v = src[off + j]! * inv;
    qs[off + j] = Math.max(-127, Math.min(127, Math.sign(v) * Math.round(Math.abs(v))));
  }
  return d;
}

/** Packs a float32 (rows × cols) matrix. Source can be dropped afterwards; nothing aliases it. */
export function quantize(src: Float32Array, rows: number, cols: number, kind: 'bf16' | 'int8'): PackedWeight {
  if (src.length !== rows * cols) throw new QuantError(`quantize: ${src.length} values for a ${rows}×${cols} matrix`);
  if (kind === 'bf16') {
    const bits = new Uint16Array(rows * cols);
    for (let i = 0; i < bits.length; i++) bits[i] = toBf16Bits(src[i]!);
    return { kind, rows, cols, bits };
  }
  const nb = blocksPerRow(cols);
  const qs = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * nb);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const c0 = b * Q8_BLOCK;
      scales[r * nb + b] = quantizeBlock(src, r * cols + c0, Math.min(Q8_BLOCK, cols - c0), qs);
    }
  }
  return { kind, rows, cols, qs, scales };
}

/** Row r of the dequantised matrix into out (length cols). */
export function dequantizeRow(p: PackedWeight, r: number, out: Float32Array): void {
  const C = p.cols;
  if (p.kind === 'bf16') {
    const o = r * C;
    const outBits = new Uint32Array(out.buffer, out.byteOffset, C);
    for (let j = 0; j < C; j++) outBits[j] = p.bits[o + j]! << 16;
    return;
  }
  const nb = blocksPerRow(C);
  for (let b = 0; b < nb; b++) {
    const d = p.scales[r * nb + b]!;
    const c0 = b * Q8_BLOCK;
    const c1 = Math.min(C, c0 + Q8_BLOCK);
    for (let j = c0; j < c1; j++) out[j] = p.qs[r * C + j]! * d;
  }
}

/** The whole dequantised matrix (tests and conversion; kernels never do this). */
export function dequantize(p: PackedWeight): Float32Array {
  const out = new Float32Array(p.rows * p.cols);
  for (let r = 0; r < p.rows; r++) dequantizeRow(p, r, out.subarray(r * p.cols, (r + 1) * p.cols));
  return out;
}

/** Allocates empty packed storage for a rows × cols matrix (filled by a kernel or a file read). */
export function allocPacked(rows: number, cols: number, kind: 'bf16' | 'int8'): PackedWeight {
  if (kind === 'bf16') return { kind, rows, cols, bits: new Uint16Array(rows * cols) };
  return { kind, rows, cols, qs: new Int8Array(rows * cols), scales: new Float32Array(rows * blocksPerRow(cols)) };
}
