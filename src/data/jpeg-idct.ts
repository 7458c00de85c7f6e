/**
 * The accurate integer inverse DCT of libjpeg-turbo (jidctint.c, "islow": 13-bit constants, two passes),
 * dequantising and range-limiting one 8×8 block into a sample plane.
 */

const CONST_BITS = 13;
const PASS1_BITS = 2;
const F_0_298 = 2446, F_0_390 = 3196, F_0_541 = 4433, F_0_765 = 6270, F_0_899 = 7373, F_1_175 = 9633;
const F_1_501 = 12299, F_1_847 = 15137, F_1_961 = 16069, F_2_053 = 16819, F_2_562 = 20995, F_3_072 = 25172;

/** Arithmetic right shift with rounding (libjpeg's DESCALE), exact for |x| < 2^53. */
const descale = (x: number, n: number): number => Math.floor((x + 2 ** (n - 1)) / 2 ** n);

/** libjpeg's post-IDCT range limit: x + 128 clamped to [0, 255], wrapping like its 10-bit table for wild values. */
function rangeLimit(x: number): number {
  const m = x & 1023;
  return m < 128 ? m + 128 : m < 512 ? 255 : m < 896 ? 0 : m - 896;
}

/** jpeg_idct_islow on one block; writes 8x8 samples into `out` at (ox, oy) with row stride `stride`. */
export function idctIslow(co: Int16Array, off: number, q: Uint16Array, ws: Int32Array, out: Uint8Array, stride: number, ox: number, oy: number): void {
  for (let c = 0; c < 8; c++) {
    const i = off + c;
    if (co[i + 8] === 0 && co[i + 16] === 0 && co[i + 24] === 0 && co[i + 32] === 0 && co[i + 40] === 0 && co[i + 48] === 0 && co[i + 56] === 0) {
      const dcval = co[i]! * q[c]! * (1 << PASS1_BITS);
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dcval;
      continue;
    }
    let z2 = co[i + 16]! * q[c + 16]!;
    let z3 = co[i + 48]! * q[c + 48]!;
    let z1 = (z2 + z3) * F_0_541;
    let tmp2 = z1 + z3 * -F_1_847;
    let tmp3 = z1 + z2 * F_0_765;
    z2 = co[i]! * q[c]!;
    z3 = co[i + 32]! * q[c + 32]!;
    let tmp0 = (z2 + z3) * 8192;
    let tmp1 = (z2 - z3) * 8192;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = co[i + 56]! * q[c + 56]!;
    tmp1 = co[i + 40]! * q[c + 40]!;
    tmp2 = co[i + 24]! * q[c + 24]!;
    tmp3 = co[i + 8]! * q[c + 8]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175;
    tmp0 *= F_0_298; tmp1 *= F_2_053; tmp2 *= F_3_072; tmp3 *= F_1_501;
    z1 *= -F_0_899; z2 *= -F_2_562; z3 *= -F_1_961; z4 *= -F_0_390;
    z3 += z5; z4 += z5;
    tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
    const n = CONST_BITS - PASS1_BITS;
    ws[c] = descale(tmp10 + tmp3, n); ws[56 + c] = descale(tmp10 - tmp3, n);
    ws[8 + c] = descale(tmp11 + tmp2, n); ws[48 + c] = descale(tmp11 - tmp2, n);
    ws[16 + c] = descale(tmp12 + tmp1, n); ws[40 + c] = descale(tmp12 - tmp1, n);
    ws[24 + c] = descale(tmp13 + tmp0, n); ws[32 + c] = descale(tmp13 - tmp0, n);
  }
  const n2 = CONST_BITS + PASS1_BITS + 3;
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = (oy + r) * stride + ox;
    let z2 = ws[w + 2]!;
    let z3 = ws[w + 6]!;
    let z1 = (z2 + z3) * F_0_541;
    let tmp2 = z1 + z3 * -F_1_847;
    let tmp3 = z1 + z2 * F_0_765;
    let tmp0 = (ws[w]! + ws[w + 4]!) * 8192;
    let tmp1 = (ws[w]! - ws[w + 4]!) * 8192;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7]!; tmp1 = ws[w + 5]!; tmp2 = ws[w + 3]!; tmp3 = ws[w + 1]!;
    z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175;
    tmp0 *= F_0_298; tmp1 *= F_2_053; tmp2 *= F_3_072; tmp3 *= F_1_501;
    z1 *= -F_0_899; z2 *= -F_2_562; z3 *= -F_1_961; z4 *= -F_0_390;
    z3 += z5; z4 += z5;
    tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
    out[o] = rangeLimit(descale(tmp10 + tmp3, n2)); out[o + 7] = rangeLimit(descale(tmp10 - tmp3, n2));
    out[o + 1] = rangeLimit(descale(tmp11 + tmp2, n2)); out[o + 6] = rangeLimit(descale(tmp11 - tmp2, n2));
    out[o + 2] = rangeLimit(descale(tmp12 + tmp1, n2)); out[o + 5] = rangeLimit(descale(tmp12 - tmp1, n2));
    out[o + 3] = rangeLimit(descale(tmp13 + tmp0, n2)); out[o + 4] = rangeLimit(descale(tmp13 - tmp0, n2));
  }
}
