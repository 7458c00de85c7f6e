/**
 * Pure-TypeScript kernels: the portable implementation of `Kernels` and the oracle the native
 * addon is tested against. Correctness first: reductions accumulate in float64 (JS numbers),
 * transcendental functions are evaluated in float64 and rounded once on store.
 *
 * Hot loops live in top-level functions (monomorphic, no allocation); the kernels object only
 * validates sizes and dispatches. Scratch buffers are owned by each kernels instance.
 */
import type { Activation, GemmBatch, Kernels } from './types.ts';
import { type PackedWeight, blocksPerRow, dequantizeRow, quantize } from '../quant.ts';
import { FlamingoError } from '../../errors.ts';

/** Misuse of a kernel (buffer too small, bad dimension): names the kernel and the sizes. */
export class TsKernelError extends FlamingoError {
  constructor(kernel: string, message: string) {
    super(`kernels/ts ${kernel}: ${message}`);
  }
}

function need(kernel: string, name: string, buf: ArrayLike<number>, size: number): void {
  if (buf.length < size) {
    throw new TsKernelError(kernel, `buffer '${name}' has ${buf.length} elements, needs ${size}`);
  }
}

function dims(kernel: string, values: Record<string, number>): void {
  for (const key in values) {
    const v = values[key]!;
    if (!Number.isInteger(v) || v < 0) throw new TsKernelError(kernel, `${key} must be a non-negative integer, got ${v}`);
  }
}

// ---------------------------------------------------------------------------------------------
// erf / erfc in float64.
//
// g(z) = erfc(z)·exp(z²) is smooth and slowly varying on z ≥ 0 (g(0) = 1, g(z) ~ 1/(z√π)), so it
// is tabulated once at load time as piecewise Chebyshev interpolants on [0, 6]; beyond 6 its
// asymptotic series converges to double precision within a few terms. The table is built from
// slow but exact-in-double definitions: the all-positive-term series of erf for z < 2 and the
// continued fraction of erfc for z ≥ 2. Keeping erfc (not 1 − erf) preserves relative accuracy
// in the far tail, which GELU's negative side needs.

const SQRT_PI = Math.sqrt(Math.PI);
const TWO_OVER_SQRT_PI = 2 / SQRT_PI;

/** erf(z) = 2/√π · e^{−z²} · Σ 2ⁿ z^{2n+1} / (2n+1)!!  (no cancellation; z ≥ 0). */
function erfSeries(z: number): number {
  const z2 = z * z;
  let term = z;
  let sum = z;
  for (let n = 0; n < 500; n++) {
    term *= (2 * z2) / (2 * n + 3);
    sum += term;
    if (term < sum * 1e-18) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-z2) * sum;
}

/** g(z) = erfc(z)·e^{z²} via the continued fraction 1/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))). */
function gContinuedFraction(z: number): number {
  let f = z;
  for (let n = 4000; n >= 1; n--) f = z + (n / 2) / f;
  return 1 / (f * SQRT_PI);
}

function gExact(z: number): number {
  if (z < 2) return (1 - erfSeries(z)) * Math.exp(z * z);
  return gContinuedFraction(z);
}

const G_INTERVAL = 0.25;
const G_MAX = 6;
const G_DEGREE = 14;
const G_NCOEF = G_DEGREE + 1;
const G_INTERVALS = Math.round(G_MAX / G_INTERVAL);
const G_TABLE = buildGTable();

function buildGTable(): Float64Array {
  const table = new Float64Array(G_INTERVALS * G_NCOEF);
  const fx = new Float64Array(G_NCOEF);
  for (let iv = 0; iv < G_INTERVALS; iv++) {
    const a = iv * G_INTERVAL;
    for (let k = 0; k < G_NCOEF; k++) {
      const t = Math.cos((Math.PI * (k + 0.5)) / G_NCOEF);
      fx[k] = gExact(a + (t + 1) * 0.5 * G_INTERVAL);
    }
    for (let j = 0; j < G_NCOEF; j++) {
      let s = 0;
      for (let k = 0; k < G_NCOEF; k++) s += fx[k]! * Math.cos((Math.PI * j * (k + 0.5)) / G_NCOEF);
      table[iv * G_NCOEF + j] = (2 / G_NCOEF) * s * (j === 0 ? 0.5 : 1);
    }
  }
  return table;
}

/** g(z) = erfc(z)·e^{z²} for z ≥ 0. */
function gScaled(z: number): number {
  if (z < G_MAX) {
    const iv = Math.floor(z / G_INTERVAL);
    const t = (z - iv * G_INTERVAL) * (2 / G_INTERVAL) - 1;
    const base = iv * G_NCOEF;
    const t2 = 2 * t;
    let b1 = 0;
    let b2 = 0;
    for (let j = G_DEGREE; j >= 1; j--) {
      const tmp = t2 * b1 - b2 + G_TABLE[base + j]!;
      b2 = b1;
      b1 = tmp;
    }
    return t * b1 - b2 + G_TABLE[base]!;
  }
  // Asymptotic series Σ (−1)ⁿ (2n−1)!! / (2z²)ⁿ; terms shrink fast for z ≥ 6.
  const inv = 1 / (2 * z * z);
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 30; n++) {
    term *= -(2 * n - 1) * inv;
    sum += term;
    if (Math.abs(term) < 1e-17) break;
  }
  return sum / (z * SQRT_PI);
}

/** Complementary error function in float64 (relative accuracy ~1e-14 across the range). */
export function erfc(z: number): number {
  if (z !== z) return NaN;
  if (z >= 0) return z > 27 ? 0 : Math.exp(-z * z) * gScaled(z);
  return z < -6 ? 2 : 2 - Math.exp(-z * z) * gScaled(-z);
}

/** Error function in float64. */
export function erf(z: number): number {
  if (z !== z) return NaN;
  if (Math.abs(z) < 0.5) return z >= 0 ? erfSeries(z) : -erfSeries(-z);
  return z >= 0 ? 1 - erfc(z) : erfc(-z) - 1;
}

/** Standard normal CDF Φ(x) = ½·erfc(−x/√2), accurate in both tails. */
function normalCdf(x: number): number {
  if (x !== x) return NaN;
  if (x < 0) {
    const z = -x * Math.SQRT1_2;
    return z > 27 ? 0 : 0.5 * Math.exp(-0.5 * x * x) * gScaled(z);
  }
  const z = x * Math.SQRT1_2;
  return z > 27 ? 1 : 1 - 0.5 * Math.exp(-0.5 * x * x) * gScaled(z);
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_TANH_C = Math.sqrt(2 / Math.PI);
const GELU_TANH_A = 0.044715;
const QUICK_GELU_K = 1.702;

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

interface GemmScratch {
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

function gemmOne(
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

// ---------------------------------------------------------------------------------------------
// Row-wise softmax family.

function softmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let max = -Infinity;
    for (let j = o; j < end; j++) {
      const v = x[j]!;
      if (v > max || v !== v) max = v;
    }
    let sum = 0;
    for (let j = o; j < end; j++) {
      const e = Math.exp(x[j]! - max);
      out[j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = o; j < end; j++) out[j] = out[j]! * inv;
  }
}

function logSoftmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let max = -Infinity;
    for (let j = o; j < end; j++) {
      const v = x[j]!;
      if (v > max || v !== v) max = v;
    }
    let sum = 0;
    for (let j = o; j < end; j++) sum += Math.exp(x[j]! - max);
    const logSum = Math.log(sum);
    for (let j = o; j < end; j++) out[j] = x[j]! - max - logSum;
  }
}

function softmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let dot = 0;
    for (let j = o; j < end; j++) dot += dy[j]! * y[j]!;
    for (let j = o; j < end; j++) dx[j] = y[j]! * (dy[j]! - dot);
  }
}

function logSoftmaxBackwardRows(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let sum = 0;
    for (let j = o; j < end; j++) sum += dy[j]!;
    for (let j = o; j < end; j++) dx[j] = dy[j]! - Math.exp(y[j]!) * sum;
  }
}

/** Last visible key index for query i (−1 when none), ignoring the explicit mask. */
function causalLimit(lk: number, i: number, causal: boolean, causalOffset: number): number {
  if (!causal) return lk - 1;
  const lim = i + causalOffset;
  return lim < lk - 1 ? lim : lk - 1;
}

function maskedSoftmaxImpl(
  x: Float32Array, out: Float32Array, batch: number, heads: number, lq: number, lk: number,
  mask: Uint8Array | null, mbs: number, mqs: number, causal: boolean, causalOffset: number, uniform: boolean,
): void {
  const uniformValue = 1 / lk;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const lim = causalLimit(lk, i, causal, causalOffset);
        const mo = b * mbs + i * mqs;
        let max = -Infinity;
        let visible = 0;
        for (let j = 0; j <= lim; j++) {
          if (mask !== null && mask[mo + j] === 0) continue;
          const v = x[o + j]!;
          if (v > max || v !== v) max = v;
          visible++;
        }
        if (visible === 0) {
          out.fill(uniform ? uniformValue : 0, o, o + lk);
          continue;
        }
        let sum = 0;
        for (let j = 0; j < lk; j++) {
          if (j > lim || (mask !== null && mask[mo + j] === 0)) {
            out[o + j] = 0;
          } else {
            const e = Math.exp(x[o + j]! - max);
            out[o + j] = e;
            sum += e;
          }
        }
        const inv = 1 / sum;
        for (let j = 0; j <= lim; j++) out[o + j] = out[o + j]! * inv;
      }
    }
  }
}

function maskedSoftmaxBackwardImpl(
  y: Float32Array, dy: Float32Array, dx: Float32Array, batch: number, heads: number, lq: number, lk: number,
  mask: Uint8Array | null, mbs: number, mqs: number, causal: boolean, causalOffset: number,
): void {
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const lim = causalLimit(lk, i, causal, causalOffset);
        const mo = b * mbs + i * mqs;
        let dot = 0;
        for (let j = 0; j <= lim; j++) {
          if (mask !== null && mask[mo + j] === 0) continue;
          dot += dy[o + j]! * y[o + j]!;
        }
        for (let j = 0; j < lk; j++) {
          if (j > lim || (mask !== null && mask[mo + j] === 0)) dx[o + j] = 0;
          else dx[o + j] = y[o + j]! * (dy[o + j]! - dot);
        }
        // A fully masked row has no visible entry, so the loop above already wrote zeros.
      }
    }
  }
}

function alibiBiasImpl(x: Float32Array, batch: number, heads: number, lq: number, lk: number, slopes: Float32Array, off: number): void {
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const sl = slopes[h]!;
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const base = -(i + off);
        // float32 product as the native kernel computes it (Math.fround), then the float32 add
        for (let j = 0; j < lk; j++) x[o + j] = x[o + j]! + Math.fround(sl * (base + j));
      }
    }
  }
}

function alibiBiasBackwardImpl(dx: Float32Array, batch: number, heads: number, lq: number, lk: number, off: number, ds: Float32Array): void {
  for (let h = 0; h < heads; h++) {
    let acc = 0;
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < lq; i++) {
        const o = ((b * heads + h) * lq + i) * lk;
        const base = -(i + off);
        for (let j = 0; j < lk; j++) acc += dx[o + j]! * (base + j);
      }
    }
    ds[h] = ds[h]! + acc;
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation.

function layerNormImpl(
  x: Float32Array, w: Float32Array | null, b: Float32Array | null, out: Float32Array,
  meanOut: Float32Array, rstdOut: Float32Array, rows: number, cols: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let s = 0;
    for (let j = o; j < end; j++) s += x[j]!;
    const mean = s / cols;
    // Two-pass variance: no cancellation when |mean| ≫ std.
    let v = 0;
    for (let j = o; j < end; j++) {
      const d = x[j]! - mean;
      v += d * d;
    }
    const rstd = 1 / Math.sqrt(v / cols + eps);
    meanOut[r] = mean;
    rstdOut[r] = rstd;
    if (w !== null && b !== null) {
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j]! - mean) * rstd * w[j]! + b[j]!;
    } else if (w !== null) {
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j]! - mean) * rstd * w[j]!;
    } else if (b !== null) {
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j]! - mean) * rstd + b[j]!;
    } else {
      for (let j = o; j < end; j++) out[j] = (x[j]! - mean) * rstd;
    }
  }
}

function layerNormBackwardImpl(
  x: Float32Array, w: Float32Array | null, meanIn: Float32Array, rstdIn: Float32Array, dy: Float32Array,
  dx: Float32Array, dwAcc: Float64Array | null, dbAcc: Float64Array | null, rows: number, cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mean = meanIn[r]!;
    const rstd = rstdIn[r]!;
    let sumG = 0;
    let sumGX = 0;
    for (let j = 0; j < cols; j++) {
      const d = dy[o + j]!;
      const xhat = (x[o + j]! - mean) * rstd;
      const g = w !== null ? d * w[j]! : d;
      sumG += g;
      sumGX += g * xhat;
      if (dwAcc !== null) dwAcc[j] += d * xhat;
      if (dbAcc !== null) dbAcc[j] += d;
    }
    const mG = sumG / cols;
    const mGX = sumGX / cols;
    for (let j = 0; j < cols; j++) {
      const xhat = (x[o + j]! - mean) * rstd;
      const g = w !== null ? dy[o + j]! * w[j]! : dy[o + j]!;
      dx[o + j] = rstd * (g - mG - xhat * mGX);
    }
  }
}

function rmsNormImpl(
  x: Float32Array, w: Float32Array | null, out: Float32Array, rstdOut: Float32Array,
  rows: number, cols: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) {
      const v = x[o + j]!;
      ss += v * v;
    }
    const rstd = 1 / Math.sqrt(ss / cols + eps);
    rstdOut[r] = rstd;
    if (w !== null) for (let j = 0; j < cols; j++) out[o + j] = w[j]! * (x[o + j]! * rstd);
    else for (let j = 0; j < cols; j++) out[o + j] = x[o + j]! * rstd;
  }
}

function rmsNormBackwardImpl(
  x: Float32Array, w: Float32Array | null, rstdIn: Float32Array, dy: Float32Array,
  dx: Float32Array, dwAcc: Float64Array | null, rows: number, cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const rstd = rstdIn[r]!;
    let sumGX = 0;
    for (let j = 0; j < cols; j++) {
      const d = dy[o + j]!;
      const xv = x[o + j]!;
      const g = w !== null ? d * w[j]! : d;
      sumGX += g * xv;
      if (dwAcc !== null) dwAcc[j] += d * xv * rstd;
    }
    // d/dx_k of x_j·r with r = (mean x² + eps)^−½:  r·δ_jk − r³·x_j·x_k / cols.
    const k = (rstd * rstd * rstd * sumGX) / cols;
    for (let j = 0; j < cols; j++) {
      const g = w !== null ? dy[o + j]! * w[j]! : dy[o + j]!;
      dx[o + j] = rstd * g - k * x[o + j]!;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Activations.

function sigmoid(v: number): number {
  // exp(−v) overflows to +Infinity for very negative v, giving exactly 0: no NaN.
  return 1 / (1 + Math.exp(-v));
}

function activationImpl(kind: Activation, x: Float32Array, out: Float32Array, n: number): void {
  switch (kind) {
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = v * normalCdf(v);
      }
      return;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = 0.5 * v * (1 + Math.tanh(GELU_TANH_C * (v + GELU_TANH_A * v * v * v)));
      }
      return;
    case 'quick_gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = v * sigmoid(QUICK_GELU_K * v);
      }
      return;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = v * sigmoid(v);
      }
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
      return;
    case 'relu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        // NaN propagates like torch.relu.
        out[i] = v > 0 || v !== v ? v : 0;
      }
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) out[i] = sigmoid(x[i]!);
      return;
    default:
      throw new TsKernelError('activation', `unknown activation '${kind as string}'`);
  }
}

function activationBackwardImpl(kind: Activation, x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void {
  switch (kind) {
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        dx[i] = dy[i]! * (normalCdf(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
      }
      return;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const v2 = v * v;
        const t = Math.tanh(GELU_TANH_C * (v + GELU_TANH_A * v2 * v));
        const d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_TANH_C * (1 + 3 * GELU_TANH_A * v2);
        dx[i] = dy[i]! * d;
      }
      return;
    case 'quick_gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const s = sigmoid(QUICK_GELU_K * v);
        dx[i] = dy[i]! * (s + QUICK_GELU_K * v * s * (1 - s));
      }
      return;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const s = sigmoid(v);
        dx[i] = dy[i]! * (s * (1 + v * (1 - s)));
      }
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) {
        const t = Math.tanh(x[i]!);
        dx[i] = dy[i]! * (1 - t * t);
      }
      return;
    case 'relu':
      // Gradient at exactly 0 is 0, as in PyTorch.
      for (let i = 0; i < n; i++) dx[i] = x[i]! > 0 ? dy[i]! : 0;
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) {
        const s = sigmoid(x[i]!);
        dx[i] = dy[i]! * (s * (1 - s));
      }
      return;
    default:
      throw new TsKernelError('activationBackward', `unknown activation '${kind as string}'`);
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy.

function crossEntropyImpl(
  logits: Float32Array, targets: Int32Array, rows: number, cols: number, ignoreIndex: number,
  losses: Float32Array, lse: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const end = o + cols;
    let max = -Infinity;
    for (let j = o; j < end; j++) {
      const v = logits[j]!;
      if (v > max || v !== v) max = v;
    }
    let sum = 0;
    for (let j = o; j < end; j++) sum += Math.exp(logits[j]! - max);
    const l = max + Math.log(sum);
    lse[r] = l;
    const t = targets[r]!;
    losses[r] = t === ignoreIndex ? 0 : l - logits[o + t]!;
  }
}

function crossEntropyBackwardImpl(
  logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, cols: number,
  ignoreIndex: number, scale: number, dlogits: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      dlogits.fill(0, o, o + cols);
      continue;
    }
    const l = lse[r]!;
    for (let j = 0; j < cols; j++) {
      const p = Math.exp(logits[o + j]! - l);
      dlogits[o + j] = scale * (j === t ? p - 1 : p);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rotary embedding.

function ropeImpl(
  x: Float32Array, out: Float32Array, batch: number, seq: number, heads: number, dim: number,
  positions: Int32Array, theta: number, inverse: boolean, invFreq: Float64Array, cos: Float32Array, sin: Float32Array,
): void {
  const half = dim >> 1;
  for (let i = 0; i < half; i++) invFreq[i] = Math.pow(theta, (-2 * i) / dim);
  const sign = inverse ? -1 : 1;
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const pos = positions[b * seq + s]!;
      // Angles in float64, then cos/sin rounded to float32 (the tables HF keeps are float32).
      for (let i = 0; i < half; i++) {
        const ang = pos * invFreq[i]!;
        cos[i] = Math.cos(ang);
        sin[i] = sign * Math.sin(ang);
      }
      for (let h = 0; h < heads; h++) {
        const o = ((b * seq + s) * heads + h) * dim;
        for (let i = 0; i < half; i++) {
          const x1 = x[o + i]!;
          const x2 = x[o + half + i]!;
          const c = cos[i]!;
          const sn = sin[i]!;
          // rotate_half(x) = [−x2, x1]
          out[o + i] = x1 * c - x2 * sn;
          out[o + half + i] = x2 * c + x1 * sn;
        }
      }
    }
  }
}

/** A packed weight's buffers hold what its shape says. */
function checkPacked(kernel: string, w: PackedWeight, rows: number): void {
  dims(kernel, { rows, 'w.rows': w.rows, 'w.cols': w.cols });
  if (w.kind === 'bf16') need(kernel, 'w.bits', w.bits, w.rows * w.cols);
  else {
    need(kernel, 'w.qs', w.qs, w.rows * w.cols);
    need(kernel, 'w.scales', w.scales, w.rows * blocksPerRow(w.cols));
  }
}

// ---------------------------------------------------------------------------------------------

export function createTsKernels(): Kernels {
  const gemmScratch: GemmScratch = {
    ap: new Float64Array(MC * KC), bp: new Float64Array(NC * KC), row: new Float64Array(0), acc: new Float64Array(0),
  };
  let accA = new Float64Array(0);
  let accB = new Float64Array(0);
  let ropeInvFreq = new Float64Array(0);
  let ropeCos = new Float32Array(0);
  let ropeSin = new Float32Array(0);

  /** Per-instance float64 accumulators for dw/db (zeroed). */
  const accumulators = (cols: number): [Float64Array, Float64Array] => {
    if (accA.length < cols) {
      accA = new Float64Array(cols);
      accB = new Float64Array(cols);
    }
    accA.fill(0, 0, cols);
    accB.fill(0, 0, cols);
    return [accA, accB];
  };
  const flush = (acc: Float64Array, target: Float32Array, cols: number): void => {
    for (let j = 0; j < cols; j++) target[j] = target[j]! + acc[j]!;
  };

  const checkAttention = (
    kernel: string, batch: number, heads: number, lq: number, lk: number,
    mask: Uint8Array | null, mbs: number, mqs: number, causalOffset: number,
  ): number => {
    dims(kernel, { batch, heads, lq, lk, maskBatchStride: mbs, maskQStride: mqs });
    if (!Number.isInteger(causalOffset)) throw new TsKernelError(kernel, `causalOffset must be an integer, got ${causalOffset}`);
    const size = batch * heads * lq * lk;
    if (mask !== null && size > 0) need(kernel, 'mask', mask, (batch - 1) * mbs + (lq - 1) * mqs + lk);
    return size;
  };

  return {
    name: 'typescript',
    description: 'typescript (pure JS, single thread, float64 accumulation)',

    gemm(transA, transB, m, n, k, alpha, a, b, beta, c, batch?: GemmBatch) {
      dims('gemm', { m, n, k });
      const count = batch ? batch.count : 1;
      const sA = batch ? batch.strideA : 0;
      const sB = batch ? batch.strideB : 0;
      const sC = batch ? batch.strideC : m * n;
      dims('gemm', { count, strideA: sA, strideB: sB, strideC: sC });
      if (count === 0) return;
      if (m * k > 0) need('gemm', 'a', a, (count - 1) * sA + m * k);
      if (k * n > 0) need('gemm', 'b', b, (count - 1) * sB + k * n);
      if (m * n > 0) need('gemm', 'c', c, (count - 1) * sC + m * n);
      for (let i = 0; i < count; i++) {
        gemmOne(transA, transB, m, n, k, alpha, a, i * sA, b, i * sB, beta, c, i * sC, gemmScratch);
      }
    },

    softmax(x, out, rows, cols) {
      dims('softmax', { rows, cols });
      need('softmax', 'x', x, rows * cols);
      need('softmax', 'out', out, rows * cols);
      softmaxRows(x, out, rows, cols);
    },
    softmaxBackward(y, dy, dx, rows, cols) {
      dims('softmaxBackward', { rows, cols });
      need('softmaxBackward', 'y', y, rows * cols);
      need('softmaxBackward', 'dy', dy, rows * cols);
      need('softmaxBackward', 'dx', dx, rows * cols);
      softmaxBackwardRows(y, dy, dx, rows, cols);
    },
    logSoftmax(x, out, rows, cols) {
      dims('logSoftmax', { rows, cols });
      need('logSoftmax', 'x', x, rows * cols);
      need('logSoftmax', 'out', out, rows * cols);
      logSoftmaxRows(x, out, rows, cols);
    },
    logSoftmaxBackward(y, dy, dx, rows, cols) {
      dims('logSoftmaxBackward', { rows, cols });
      need('logSoftmaxBackward', 'y', y, rows * cols);
      need('logSoftmaxBackward', 'dy', dy, rows * cols);
      need('logSoftmaxBackward', 'dx', dx, rows * cols);
      logSoftmaxBackwardRows(y, dy, dx, rows, cols);
    },

    maskedSoftmax(x, out, batch, heads, lq, lk, mask, mbs, mqs, causal, causalOffset, uniform) {
      const size = checkAttention('maskedSoftmax', batch, heads, lq, lk, mask, mbs, mqs, causalOffset);
      need('maskedSoftmax', 'x', x, size);
      need('maskedSoftmax', 'out', out, size);
      maskedSoftmaxImpl(x, out, batch, heads, lq, lk, mask, mbs, mqs, causal, causalOffset, uniform);
    },
    maskedSoftmaxBackward(y, dy, dx, batch, heads, lq, lk, mask, mbs, mqs, causal, causalOffset) {
      const size = checkAttention('maskedSoftmaxBackward', batch, heads, lq, lk, mask, mbs, mqs, causalOffset);
      need('maskedSoftmaxBackward', 'y', y, size);
      need('maskedSoftmaxBackward', 'dy', dy, size);
      need('maskedSoftmaxBackward', 'dx', dx, size);
      maskedSoftmaxBackwardImpl(y, dy, dx, batch, heads, lq, lk, mask, mbs, mqs, causal, causalOffset);
    },

    alibiBias(x, batch, heads, lq, lk, slopes, qOffset) {
      dims('alibiBias', { batch, heads, lq, lk });
      if (!Number.isInteger(qOffset)) throw new TsKernelError('alibiBias', `qOffset must be an integer, got ${qOffset}`);
      need('alibiBias', 'x', x, batch * heads * lq * lk);
      need('alibiBias', 'slopes', slopes, heads);
      alibiBiasImpl(x, batch, heads, lq, lk, slopes, qOffset);
    },
    alibiBiasBackward(dx, batch, heads, lq, lk, qOffset, dslopes) {
      dims('alibiBiasBackward', { batch, heads, lq, lk });
      if (!Number.isInteger(qOffset)) throw new TsKernelError('alibiBiasBackward', `qOffset must be an integer, got ${qOffset}`);
      need('alibiBiasBackward', 'dx', dx, batch * heads * lq * lk);
      need('alibiBiasBackward', 'dslopes', dslopes, heads);
      alibiBiasBackwardImpl(dx, batch, heads, lq, lk, qOffset, dslopes);
    },

    layerNorm(x, w, b, out, mean, rstd, rows, cols, eps) {
      dims('layerNorm', { rows, cols });
      need('layerNorm', 'x', x, rows * cols);
      need('layerNorm', 'out', out, rows * cols);
      need('layerNorm', 'mean', mean, rows);
      need('layerNorm', 'rstd', rstd, rows);
      if (w !== null) need('layerNorm', 'w', w, cols);
      if (b !== null) need('layerNorm', 'b', b, cols);
      layerNormImpl(x, w, b, out, mean, rstd, rows, cols, eps);
    },
    layerNormBackward(x, w, mean, rstd, dy, dx, dw, db, rows, cols) {
      dims('layerNormBackward', { rows, cols });
      need('layerNormBackward', 'x', x, rows * cols);
      need('layerNormBackward', 'dy', dy, rows * cols);
      need('layerNormBackward', 'dx', dx, rows * cols);
      need('layerNormBackward', 'mean', mean, rows);
      need('layerNormBackward', 'rstd', rstd, rows);
      if (w !== null) need('layerNormBackward', 'w', w, cols);
      if (dw !== null) need('layerNormBackward', 'dw', dw, cols);
      if (db !== null) need('layerNormBackward', 'db', db, cols);
      const [aw, ab] = accumulators(cols);
      layerNormBackwardImpl(x, w, mean, rstd, dy, dx, dw !== null ? aw : null, db !== null ? ab : null, rows, cols);
      if (dw !== null) flush(aw, dw, cols);
      if (db !== null) flush(ab, db, cols);
    },

    rmsNorm(x, w, out, rstd, rows, cols, eps) {
      dims('rmsNorm', { rows, cols });
      need('rmsNorm', 'x', x, rows * cols);
      need('rmsNorm', 'out', out, rows * cols);
      need('rmsNorm', 'rstd', rstd, rows);
      if (w !== null) need('rmsNorm', 'w', w, cols);
      rmsNormImpl(x, w, out, rstd, rows, cols, eps);
    },
    rmsNormBackward(x, w, rstd, dy, dx, dw, rows, cols) {
      dims('rmsNormBackward', { rows, cols });
      need('rmsNormBackward', 'x', x, rows * cols);
      need('rmsNormBackward', 'dy', dy, rows * cols);
      need('rmsNormBackward', 'dx', dx, rows * cols);
      need('rmsNormBackward', 'rstd', rstd, rows);
      if (w !== null) need('rmsNormBackward', 'w', w, cols);
      if (dw !== null) need('rmsNormBackward', 'dw', dw, cols);
      const [aw] = accumulators(cols);
      rmsNormBackwardImpl(x, w, rstd, dy, dx, dw !== null ? aw : null, rows, cols);
      if (dw !== null) flush(aw, dw, cols);
    },

    activation(kind, x, out, n) {
      dims('activation', { n });
      need('activation', 'x', x, n);
      need('activation', 'out', out, n);
      activationImpl(kind, x, out, n);
    },
    activationBackward(kind, x, dy, dx, n) {
      dims('activationBackward', { n });
      need('activationBackward', 'x', x, n);
      need('activationBackward', 'dy', dy, n);
      need('activationBackward', 'dx', dx, n);
      activationBackwardImpl(kind, x, dy, dx, n);
    },

    swiglu(gate, up, out, n) {
      dims('swiglu', { n });
      need('swiglu', 'gate', gate, n);
      need('swiglu', 'up', up, n);
      need('swiglu', 'out', out, n);
      for (let i = 0; i < n; i++) {
        const g = gate[i]!;
        out[i] = g * sigmoid(g) * up[i]!;
      }
    },
    swigluBackward(gate, up, dy, dgate, dup, n) {
      dims('swigluBackward', { n });
      need('swigluBackward', 'gate', gate, n);
      need('swigluBackward', 'up', up, n);
      need('swigluBackward', 'dy', dy, n);
      need('swigluBackward', 'dgate', dgate, n);
      need('swigluBackward', 'dup', dup, n);
      for (let i = 0; i < n; i++) {
        const g = gate[i]!;
        const u = up[i]!;
        const d = dy[i]!;
        const s = sigmoid(g);
        dgate[i] = d * u * (s * (1 + g * (1 - s)));
        dup[i] = d * g * s;
      }
    },

    crossEntropy(logits, targets, rows, cols, ignoreIndex, losses, lse) {
      dims('crossEntropy', { rows, cols });
      need('crossEntropy', 'logits', logits, rows * cols);
      need('crossEntropy', 'targets', targets, rows);
      need('crossEntropy', 'losses', losses, rows);
      need('crossEntropy', 'lse', lse, rows);
      crossEntropyImpl(logits, targets, rows, cols, ignoreIndex, losses, lse);
    },
    crossEntropyBackward(logits, targets, lse, rows, cols, ignoreIndex, scale, dlogits) {
      dims('crossEntropyBackward', { rows, cols });
      need('crossEntropyBackward', 'logits', logits, rows * cols);
      need('crossEntropyBackward', 'targets', targets, rows);
      need('crossEntropyBackward', 'lse', lse, rows);
      need('crossEntropyBackward', 'dlogits', dlogits, rows * cols);
      crossEntropyBackwardImpl(logits, targets, lse, rows, cols, ignoreIndex, scale, dlogits);
    },

    rope(x, out, batch, seq, heads, dim, positions, theta, inverse) {
      dims('rope', { batch, seq, heads, dim });
      if (dim % 2 !== 0) throw new TsKernelError('rope', `dim must be even, got ${dim}`);
      const size = batch * seq * heads * dim;
      need('rope', 'x', x, size);
      need('rope', 'out', out, size);
      need('rope', 'positions', positions, batch * seq);
      const half = dim / 2;
      if (ropeInvFreq.length < half) {
        ropeInvFreq = new Float64Array(half);
        ropeCos = new Float32Array(half);
        ropeSin = new Float32Array(half);
      }
      ropeImpl(x, out, batch, seq, heads, dim, positions, theta, inverse, ropeInvFreq, ropeCos, ropeSin);
    },

    adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step) {
      dims('adamw', { n });
      if (!Number.isInteger(step) || step < 1) throw new TsKernelError('adamw', `step must be an integer >= 1, got ${step}`);
      need('adamw', 'param', param, n);
      need('adamw', 'grad', grad, n);
      need('adamw', 'm', m, n);
      need('adamw', 'v', v, n);
      const decay = 1 - lr * weightDecay;
      const bc1 = 1 - Math.pow(beta1, step);
      const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
      const stepSize = lr / bc1;
      for (let i = 0; i < n; i++) {
        const g = grad[i]!;
        const p = param[i]! * decay;
        const mi = beta1 * m[i]! + (1 - beta1) * g;
        const vi = beta2 * v[i]! + (1 - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        // PyTorch: denom = sqrt(v)/sqrt(bc2) + eps, computed from the stored (float32) m and v.
        param[i] = p - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / bc2Sqrt + eps);
      }
    },

    swapMiddleAxes(x, out, B, A, C, D) {
      dims('swapMiddleAxes', { B, A, C, D });
      const n = B * A * C * D;
      need('swapMiddleAxes', 'x', x, n);
      need('swapMiddleAxes', 'out', out, n);
      let o = 0;
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          for (let a = 0; a < A; a++) {
            const src = ((b * A + a) * C + c) * D;
            for (let d = 0; d < D; d++) out[o + d] = x[src + d]!;
            o += D;
          }
        }
      }
    },
    axpy(alpha, x, y, n) {
      dims('axpy', { n });
      need('axpy', 'x', x, n);
      need('axpy', 'y', y, n);
      for (let i = 0; i < n; i++) y[i] = y[i]! + alpha * x[i]!;
    },
    mul(a, b, out, n) {
      dims('mul', { n });
      need('mul', 'a', a, n);
      need('mul', 'b', b, n);
      need('mul', 'out', out, n);
      for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
    },
    add(a, b, out, n) {
      dims('add', { n });
      need('add', 'a', a, n);
      need('add', 'b', b, n);
      need('add', 'out', out, n);
      for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    },
    packedLinear(x, w, out, rows, beta) {
      checkPacked('packedLinear', w, rows);
      need('packedLinear', 'x', x, rows * w.cols);
      need('packedLinear', 'out', out, rows * w.rows);
      if (beta !== 0 && beta !== 1) throw new TsKernelError('packedLinear', `beta must be 0 or 1, got ${beta}`);
      // one dequantised row of W at a time: the oracle reads the same packed storage as native
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
    },
    quantizeBf16(src, bits, n) {
      dims('quantizeBf16', { n });
      need('quantizeBf16', 'src', src, n);
      need('quantizeBf16', 'bits', bits, n);
      bits.set((quantize(src.subarray(0, n), 1, n, 'bf16') as { bits: Uint16Array }).bits);
    },
    quantizeInt8(src, qs, scales, rows, cols) {
      dims('quantizeInt8', { rows, cols });
      need('quantizeInt8', 'src', src, rows * cols);
      need('quantizeInt8', 'qs', qs, rows * cols);
      need('quantizeInt8', 'scales', scales, rows * blocksPerRow(cols));
      const p = quantize(src.subarray(0, rows * cols), rows, cols, 'int8') as { qs: Int8Array; scales: Float32Array };
      qs.set(p.qs);
      scales.set(p.scales);
    },
    packedLinearBackward(g, w, dx, rows) {
      checkPacked('packedLinearBackward', w, rows);
      need('packedLinearBackward', 'g', g, rows * w.rows);
      need('packedLinearBackward', 'dx', dx, rows * w.cols);
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
    },
    sumSquares(x, n) {
      dims('sumSquares', { n });
      need('sumSquares', 'x', x, n);
      let s = 0;
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        s += v * v;
      }
      return s;
    },
  };
}
