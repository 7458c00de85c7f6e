/**
 * TypeScript oracle: matrix products. The float32 GEMM (GotoBLAS-style blocking, float64
 * accumulation, a skinny path for few rows) and the products with packed (bf16 / int8) weights,
 * which read the same packed storage as the native kernels.
 */
import { type PackedWeight, dequantizeRow, quantize } from '../../quant.ts';

// ---------------------------------------------------------------------------------------------
// GEMM: GotoBLAS-style blocking. op(B) is packed per (KC × NC) panel into 4-column strips and
// alpha·op(A) per (MC × KC) block into 4-row strips (float64, zero padded), so every trans
// combination runs the same 4×4 register micro-kernel over contiguous memory.

const MR = 4;
const NR = 4;
const KC = 256;
const MC = 64;
const NC = 256;
/**
 * Below these many rows of C, packing op(B) costs more than it saves and gemmSkinny wins
 * (measured: its 2×4 dot kernel on B stored n×k keeps up with the packed path up to ~48 rows).
 */
const SKINNY_M_TRANS_B = 48;
const SKINNY_M = 8;

export interface GemmScratch {
  ap: Float64Array;
  bp: Float64Array;
  /** Skinny path: the rows of op(A) (≥ m·k) and float64 accumulators for C (≥ m·n). */
  row: Float64Array;
  acc: Float64Array;
}

function packA(
  transA: boolean, a: Float32Array, aOff: number, m: number, k: number,
  ic: number, pc: number, mc: number, kc: number, alpha: number, ap: Float64Array,
): void {
  const strips = Math.ceil(mc / MR);
  for (let s = 0; s < strips; s++) {
    const base = s * kc * MR;
    const i0 = ic + s * MR;
    const rows = Math.min(MR, ic + mc - i0);
    if (!transA) {
      for (let ii = 0; ii < MR; ii++) {
        if (ii < rows) {
          const src = aOff + (i0 + ii) * k + pc;
          for (let p = 0; p < kc; p++) ap[base + p * MR + ii] = alpha * a[src + p]!;
        } else {
          for (let p = 0; p < kc; p++) ap[base + p * MR + ii] = 0;
        }
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const src = aOff + (pc + p) * m + i0;
        const dst = base + p * MR;
        for (let ii = 0; ii < MR; ii++) ap[dst + ii] = ii < rows ? alpha * a[src + ii]! : 0;
      }
    }
  }
}

function packB(
  transB: boolean, b: Float32Array, bOff: number, n: number, k: number,
  pc: number, jc: number, kc: number, nc: number, bp: Float64Array,
): void {
  const strips = Math.ceil(nc / NR);
  for (let s = 0; s < strips; s++) {
    const base = s * kc * NR;
    const j0 = jc + s * NR;
    const cols = Math.min(NR, jc + nc - j0);
    if (!transB) {
      for (let p = 0; p < kc; p++) {
        const src = bOff + (pc + p) * n + j0;
        const dst = base + p * NR;
        for (let jj = 0; jj < NR; jj++) bp[dst + jj] = jj < cols ? b[src + jj]! : 0;
      }
    } else {
      for (let jj = 0; jj < NR; jj++) {
        if (jj < cols) {
          const src = bOff + (j0 + jj) * k + pc;
          for (let p = 0; p < kc; p++) bp[base + p * NR + jj] = b[src + p]!;
        } else {
          for (let p = 0; p < kc; p++) bp[base + p * NR + jj] = 0;
        }
      }
    }
  }
}

/** C[rows×cols block at cOff, row stride ldc] += Ap-strip · Bp-strip. */
function micro4x4(
  kc: number, ap: Float64Array, pa: number, bp: Float64Array, pb: number,
  c: Float32Array, cOff: number, ldc: number, rows: number, cols: number,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  const end = pa + kc * MR;
  for (; pa < end; pa += MR, pb += NR) {
    const b0 = bp[pb]!, b1 = bp[pb + 1]!, b2 = bp[pb + 2]!, b3 = bp[pb + 3]!;
    const a0 = ap[pa]!;
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    const a1 = ap[pa + 1]!;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    const a2 = ap[pa + 2]!;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    const a3 = ap[pa + 3]!;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
  }
  if (rows === MR && cols === NR) {
    let o = cOff;
    c[o] += c00; c[o + 1] += c01; c[o + 2] += c02; c[o + 3] += c03; o += ldc;
    c[o] += c10; c[o + 1] += c11; c[o + 2] += c12; c[o + 3] += c13; o += ldc;
    c[o] += c20; c[o + 1] += c21; c[o + 2] += c22; c[o + 3] += c23; o += ldc;
    c[o] += c30; c[o + 1] += c31; c[o + 2] += c32; c[o + 3] += c33;
    return;
  }
  // Edge tile: write only the valid part.
  for (let i = 0; i < rows; i++) {
    const o = cOff + i * ldc;
    const r0 = i === 0 ? c00 : i === 1 ? c10 : i === 2 ? c20 : c30;
    const r1 = i === 0 ? c01 : i === 1 ? c11 : i === 2 ? c21 : c31;
    const r2 = i === 0 ? c02 : i === 1 ? c12 : i === 2 ? c22 : c32;
    const r3 = i === 0 ? c03 : i === 1 ? c13 : i === 2 ? c23 : c33;
    c[o] += r0;
    if (cols > 1) c[o + 1] += r1;
    if (cols > 2) c[o + 2] += r2;
    if (cols > 3) c[o + 3] += r3;
  }
}

/**
 * Skinny product (few rows of C, e.g. decode tokens): packing B would cost as much as the
 * product itself and the 4-row micro-kernel would waste lanes, so rows of C are computed
 * directly from B in place, accumulating in float64 and rounding once.
 */
function gemmSkinny(
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  alpha: number, a: Float32Array, aOff: number, b: Float32Array, bOff: number,
  beta: number, c: Float32Array, cOff: number, rows: Float64Array, acc: Float64Array,
): void {
  // op(A) rows, contiguous, row i at i·k.
  for (let i = 0; i < m; i++) {
    if (transA) for (let p = 0; p < k; p++) rows[i * k + p] = a[aOff + p * m + i]!;
    else for (let p = 0; p < k; p++) rows[i * k + p] = a[aOff + i * k + p]!;
  }
  if (transB) {
    // B stored n×k: C[i, j] = row_i · B[j, :]. Two rows × four columns share every load.
    let i = 0;
    for (; i + 2 <= m; i += 2) skinnyDots2(rows, i * k, n, k, b, bOff, acc, i * n);
    if (i < m) skinnyDots1(rows, i * k, n, k, b, bOff, acc, i * n);
  } else {
    // B stored k×n: axpy over B's rows, four rows per pass over the accumulator.
    for (let i = 0; i < m; i++) skinnyAxpy(rows, i * k, n, k, b, bOff, acc, i * n);
  }
  const mn = m * n;
  if (beta === 0) for (let t = 0; t < mn; t++) c[cOff + t] = alpha * acc[t]!;
  else for (let t = 0; t < mn; t++) c[cOff + t] = alpha * acc[t]! + beta * c[cOff + t]!;
}

function skinnyDots1(
  rows: Float64Array, r0: number, n: number, k: number, b: Float32Array, bOff: number, acc: Float64Array, o: number,
): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const b0 = bOff + j * k;
    const b1 = b0 + k;
    const b2 = b1 + k;
    const b3 = b2 + k;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let p = 0; p < k; p++) {
      const av = rows[r0 + p]!;
      s0 += av * b[b0 + p]!;
      s1 += av * b[b1 + p]!;
      s2 += av * b[b2 + p]!;
      s3 += av * b[b3 + p]!;
    }
    acc[o + j] = s0;
    acc[o + j + 1] = s1;
    acc[o + j + 2] = s2;
    acc[o + j + 3] = s3;
  }
  for (; j < n; j++) {
    const bj = bOff + j * k;
    let s = 0;
    for (let p = 0; p < k; p++) s += rows[r0 + p]! * b[bj + p]!;
    acc[o + j] = s;
  }
}

function skinnyDots2(
  rows: Float64Array, r0: number, n: number, k: number, b: Float32Array, bOff: number, acc: Float64Array, o: number,
): void {
  const r1 = r0 + k;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const b0 = bOff + j * k;
    const b1 = b0 + k;
    const b2 = b1 + k;
    const b3 = b2 + k;
    let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    for (let p = 0; p < k; p++) {
      const x0 = rows[r0 + p]!;
      const x1 = rows[r1 + p]!;
      const v0 = b[b0 + p]!, v1 = b[b1 + p]!, v2 = b[b2 + p]!, v3 = b[b3 + p]!;
      s00 += x0 * v0; s01 += x0 * v1; s02 += x0 * v2; s03 += x0 * v3;
      s10 += x1 * v0; s11 += x1 * v1; s12 += x1 * v2; s13 += x1 * v3;
    }
    acc[o + j] = s00; acc[o + j + 1] = s01; acc[o + j + 2] = s02; acc[o + j + 3] = s03;
    acc[o + n + j] = s10; acc[o + n + j + 1] = s11; acc[o + n + j + 2] = s12; acc[o + n + j + 3] = s13;
  }
  for (; j < n; j++) {
    const bj = bOff + j * k;
    let s0 = 0;
    let s1 = 0;
    for (let p = 0; p < k; p++) {
      const v = b[bj + p]!;
      s0 += rows[r0 + p]! * v;
      s1 += rows[r1 + p]! * v;
    }
    acc[o + j] = s0;
    acc[o + n + j] = s1;
  }
}

function skinnyAxpy(
  rows: Float64Array, r: number, n: number, k: number, b: Float32Array, bOff: number, acc: Float64Array, o: number,
): void {
  acc.fill(0, o, o + n);
  let p = 0;
  for (; p + 4 <= k; p += 4) {
    const a0 = rows[r + p]!, a1 = rows[r + p + 1]!, a2 = rows[r + p + 2]!, a3 = rows[r + p + 3]!;
    const q0 = bOff + p * n;
    const q1 = q0 + n;
    const q2 = q1 + n;
    const q3 = q2 + n;
    for (let j = 0; j < n; j++) {
      acc[o + j] += a0 * b[q0 + j]! + a1 * b[q1 + j]! + a2 * b[q2 + j]! + a3 * b[q3 + j]!;
    }
  }
  for (; p < k; p++) {
    const av = rows[r + p]!;
    const q0 = bOff + p * n;
    for (let j = 0; j < n; j++) acc[o + j] += av * b[q0 + j]!;
  }
}

export function gemmOne(
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  alpha: number, a: Float32Array, aOff: number, b: Float32Array, bOff: number,
  beta: number, c: Float32Array, cOff: number, scratch: GemmScratch,
): void {
  if (m < (transB ? SKINNY_M_TRANS_B : SKINNY_M) && alpha !== 0 && k > 0 && n > 0) {
    if (scratch.row.length < m * k) scratch.row = new Float64Array(m * k);
    if (scratch.acc.length < m * n) scratch.acc = new Float64Array(m * n);
    gemmSkinny(transA, transB, m, n, k, alpha, a, aOff, b, bOff, beta, c, cOff, scratch.row, scratch.acc);
    return;
  }
  if (n === 1 && alpha !== 0 && k > 0 && m > 0) {
    // C (m×1) and Cᵀ (1×m) share memory: compute Cᵀ = op(B)ᵀ·op(A)ᵀ as a single skinny row.
    if (scratch.row.length < k) scratch.row = new Float64Array(k);
    if (scratch.acc.length < m) scratch.acc = new Float64Array(m);
    gemmSkinny(!transB, !transA, 1, m, k, alpha, b, bOff, a, aOff, beta, c, cOff, scratch.row, scratch.acc);
    return;
  }
  const cEnd = cOff + m * n;
  if (beta === 0) c.fill(0, cOff, cEnd);
  else if (beta !== 1) for (let i = cOff; i < cEnd; i++) c[i] = beta * c[i]!;
  // BLAS semantics: alpha = 0 (or k = 0) leaves C = beta·C without reading A or B.
  if (alpha === 0 || k === 0 || m === 0 || n === 0) return;
  const { ap, bp } = scratch;
  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    const nStrips = Math.ceil(nc / NR);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      packB(transB, b, bOff, n, k, pc, jc, kc, nc, bp);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(MC, m - ic);
        packA(transA, a, aOff, m, k, ic, pc, mc, kc, alpha, ap);
        const mStrips = Math.ceil(mc / MR);
        for (let sj = 0; sj < nStrips; sj++) {
          const j0 = jc + sj * NR;
          const cols = Math.min(NR, n - j0);
          for (let si = 0; si < mStrips; si++) {
            const i0 = ic + si * MR;
            const rows = Math.min(MR, m - i0);
            micro4x4(kc, ap, si * kc * MR, bp, sj * kc * NR, c, cOff + i0 * n + j0, n, rows, cols);
          }
        }
      }
    }
  }
}


/** Scratch for gemmOne, owned by one kernels instance. */
export function newGemmScratch(): GemmScratch {
  return { ap: new Float64Array(MC * KC), bp: new Float64Array(NC * KC), row: new Float64Array(0), acc: new Float64Array(0) };
}

/** out = x · dequant(W)ᵀ (+ out when beta is 1), one dequantised row of W at a time. */
export function packedLinearImpl(x: Float32Array, w: PackedWeight, out: Float32Array, rows: number, beta: number): void {
  const row = new Float32Array(w.cols);
  const C = w.cols;
  for (let o = 0; o < w.rows; o++) {
    dequantizeRow(w, o, row);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      const xo = r * C;
      for (let j = 0; j < C; j++) s += x[xo + j]! * row[j]!;
      const i = r * w.rows + o;
      out[i] = beta ? out[i]! + s : s;
    }
  }
}

/** dx = g · dequant(W), accumulated in float64 (written). */
export function packedLinearBackwardImpl(g: Float32Array, w: PackedWeight, dx: Float32Array, rows: number): void {
  const C = w.cols;
  const acc = new Float64Array(rows * C);
  const row = new Float32Array(C);
  for (let o = 0; o < w.rows; o++) {
    dequantizeRow(w, o, row);
    for (let r = 0; r < rows; r++) {
      const gv = g[r * w.rows + o]!;
      if (gv === 0) continue;
      const ao = r * C;
      for (let j = 0; j < C; j++) acc[ao + j]! += gv * row[j]!;
    }
  }
  for (let i = 0; i < rows * C; i++) dx[i] = acc[i]!;
}

/** bits = bfloat16(src) through quant.ts, the definition of the format. */
export function quantizeBf16Impl(src: Float32Array, bits: Uint16Array, n: number): void {
  bits.set((quantize(src.subarray(0, n), 1, n, 'bf16') as { bits: Uint16Array }).bits);
}

/** Int8 blocks of 32 along each row through quant.ts. */
export function quantizeInt8Impl(src: Float32Array, qs: Int8Array, scales: Float32Array, rows: number, cols: number): void {
  const p = quantize(src.subarray(0, rows * cols), rows, cols, 'int8') as { qs: Int8Array; scales: Float32Array };
  qs.set(p.qs);
  scales.set(p.scales);
}
