/**
 * float16 and bfloat16 conversions at the bit level. The *Bits functions operate on raw IEEE bit patterns so
 * NaN payloads survive; the scalar helpers take and return JS numbers; the bulk ones convert whole arrays.
 */

/** float32 bit pattern -> float16 bit pattern, round to nearest even; overflow -> Inf; NaN stays a (quiet) NaN. */
export function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // |x| < 2^-25: below half the smallest subnormal, rounds to zero
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h; // h may carry into 0x400, which is exactly the smallest normal
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // carry may reach 0x7c00 = Inf, which is correct
  return sign | h;
}

/** float16 bit pattern -> float32 bit pattern (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: normalise the mantissa into a float32 normal.
    let e = -1;
    do { mant <<= 1; e++; } while ((mant & 0x400) === 0);
    return (sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/** float32 bit pattern -> bfloat16 bit pattern, round to nearest even; NaN stays a quiet NaN. */
export function f32BitsToBf16Bits(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32Bits(h: number): number {
  return ((h & 0xffff) << 16) >>> 0;
}

// One-element scratch views used only inside the scalar helpers below (synchronous, never escapes).
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(x: number): number { scratchF32[0] = x; return scratchU32[0]!; }
function bitsF32(b: number): number { scratchU32[0] = b; return scratchF32[0]!; }

/** float16 bits -> number. */
export function f16ToF32(h: number): number { return bitsF32(f16BitsToF32Bits(h)); }
/** number (rounded to float32 first, as a Float32Array would) -> float16 bits. */
export function f32ToF16(x: number): number { return f32BitsToF16Bits(f32Bits(x)); }
/** bfloat16 bits -> number. */
export function bf16ToF32(h: number): number { return bitsF32(bf16BitsToF32Bits(h)); }
/** number (rounded to float32 first) -> bfloat16 bits. */
export function f32ToBf16(x: number): number { return f32BitsToBf16Bits(f32Bits(x)); }

/** Bulk float32 -> float16/bfloat16 bits (bit-level, so NaN payloads are preserved as far as the format allows). */
export function float32ArrayToHalfBits(src: Float32Array, kind: 'F16' | 'BF16'): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  const conv = kind === 'F16' ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < bits.length; i++) out[i] = conv(bits[i]!);
  return out;
}

/** Bulk float16/bfloat16 bits -> float32. */
export function halfBitsToFloat32Array(src: Uint16Array, kind: 'F16' | 'BF16'): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  const conv = kind === 'F16' ? f16BitsToF32Bits : bf16BitsToF32Bits;
  for (let i = 0; i < src.length; i++) bits[i] = conv(src[i]!);
  return out;
}
