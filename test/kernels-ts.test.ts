// The TypeScript kernels are the oracle for the native ones, so they are checked here against
// straightforward float64 references written independently below, and every backward kernel
// against central differences of the float64 reference forward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTsKernels } from '../src/engine/kernels/ts.ts';
import { erf, erfc } from '../src/engine/kernels/ts/activation.ts';
import { TsKernelError } from '../src/engine/kernels/ts/check.ts';
import type { Activation } from '../src/engine/kernels/types.ts';
import { Rng } from '../src/engine/rng.ts';

const K = createTsKernels();

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, scale);
}

/** A subarray view at a non-zero offset inside a larger buffer filled with sentinels. */
function viewOf(data: Float32Array, pad = 5): { view: Float32Array; buf: Float32Array } {
  const buf = new Float32Array(data.length + 2 * pad).fill(777);
  buf.set(data, pad);
  return { view: buf.subarray(pad, pad + data.length), buf };
}

function assertPadsIntact(buf: Float32Array, n: number, pad = 5): void {
  for (let i = 0; i < pad; i++) {
    assert.equal(buf[i], 777, 'wrote before the view');
    assert.equal(buf[pad + n + i], 777, 'wrote after the view');
  }
}

function assertClose(
  actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, label: string,
): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const ok = Math.abs(a - e) <= atol + rtol * Math.abs(e) || (Number.isNaN(a) && Number.isNaN(e)) || a === e;
    if (!ok) assert.fail(`${label}: index ${i}: got ${a}, expected ${e}`);
  }
}

/**
 * Central-difference gradient of L(x) = Σ dy ⊙ f(x) with f a float64 reference forward.
 */
function numericGrad(f: (x: Float64Array) => Float64Array, x: ArrayLike<number>, dy: ArrayLike<number>, h = 1e-5): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length);
  const loss = (): number => {
    const y = f(xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += dy[i]! * y[i]!;
    return s;
  };
  for (let i = 0; i < xs.length; i++) {
    const old = xs[i]!;
    xs[i] = old + h;
    const lp = loss();
    xs[i] = old - h;
    const lm = loss();
    xs[i] = old;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// Float64 references.

function refGemm(
  tA: boolean, tB: boolean, m: number, n: number, k: number, alpha: number,
  a: ArrayLike<number>, b: ArrayLike<number>, beta: number, c: ArrayLike<number>,
): { out: Float64Array; scale: Float64Array } {
  const out = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let sa = 0;
      for (let p = 0; p < k; p++) {
        const av = tA ? a[p * m + i]! : a[i * k + p]!;
        const bv = tB ? b[j * k + p]! : b[p * n + j]!;
        s += av * bv;
        sa += Math.abs(av * bv);
      }
      const cv = beta === 0 ? 0 : beta * c[i * n + j]!;
      out[i * n + j] = alpha * s + cv;
      scale[i * n + j] = Math.abs(alpha) * sa + Math.abs(cv);
    }
  }
  return { out, scale };
}

/** log Σ exp of row r, max-subtracted (the reference both softmax oracles are built on). */
function refRowLse(x: ArrayLike<number>, r: number, cols: number): number {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) max = Math.max(max, x[r * cols + j]!);
  let s = 0;
  for (let j = 0; j < cols; j++) s += Math.exp(x[r * cols + j]! - max);
  return max + Math.log(s);
}

function refSoftmaxRows(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const lse = refRowLse(x, r, cols);
    for (let j = 0; j < cols; j++) y[r * cols + j] = Math.exp(x[r * cols + j]! - lse);
  }
  return y;
}

function refLogSoftmaxRows(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const lse = refRowLse(x, r, cols);
    for (let j = 0; j < cols; j++) y[r * cols + j] = x[r * cols + j]! - lse;
  }
  return y;
}

interface MaskSpec {
  batch: number; heads: number; lq: number; lk: number;
  mask: Uint8Array | null; mbs: number; mqs: number; causal: boolean; offset: number;
}

function visibleRef(s: MaskSpec, b: number, i: number, j: number): boolean {
  const m = s.mask === null || s.mask[b * s.mbs + i * s.mqs + j] !== 0;
  return m && (!s.causal || j <= i + s.offset);
}

function refMaskedSoftmax(s: MaskSpec, x: ArrayLike<number>, uniform: boolean): Float64Array {
  const y = new Float64Array(s.batch * s.heads * s.lq * s.lk);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      for (let i = 0; i < s.lq; i++) {
        const o = ((b * s.heads + h) * s.lq + i) * s.lk;
        let max = -Infinity;
        let any = false;
        for (let j = 0; j < s.lk; j++) if (visibleRef(s, b, i, j)) { any = true; max = Math.max(max, x[o + j]!); }
        if (!any) {
          for (let j = 0; j < s.lk; j++) y[o + j] = uniform ? 1 / s.lk : 0;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < s.lk; j++) if (visibleRef(s, b, i, j)) sum += Math.exp(x[o + j]! - max);
        for (let j = 0; j < s.lk; j++) y[o + j] = visibleRef(s, b, i, j) ? Math.exp(x[o + j]! - max) / sum : 0;
      }
    }
  }
  return y;
}

function refLayerNorm(
  x: ArrayLike<number>, w: ArrayLike<number> | null, b: ArrayLike<number> | null, rows: number, cols: number, eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let j = 0; j < cols; j++) mu += x[r * cols + j]!;
    mu /= cols;
    let v = 0;
    for (let j = 0; j < cols; j++) v += (x[r * cols + j]! - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) {
      y[r * cols + j] = (x[r * cols + j]! - mu) * rs * (w ? w[j]! : 1) + (b ? b[j]! : 0);
    }
  }
  return { y, mean, rstd };
}

function refRmsNorm(x: ArrayLike<number>, w: ArrayLike<number> | null, rows: number, cols: number, eps: number) {
  const y = new Float64Array(rows * cols);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < cols; j++) ss += x[r * cols + j]! ** 2;
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    for (let j = 0; j < cols; j++) y[r * cols + j] = x[r * cols + j]! * rs * (w ? w[j]! : 1);
  }
  return { y, rstd };
}

/** Reference erfc: Maclaurin series of erf for |z| ≤ 1.5, Lentz continued fraction beyond. */
function refErfc(z: number): number {
  if (Math.abs(z) <= 1.5) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-18) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (z < 0) return 2 - refErfc(-z);
  // erfc(z) = e^{−z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), modified Lentz.
  const tiny = 1e-300;
  let f = z;
  let C = z;
  let D = 0;
  for (let n = 1; n < 100000; n++) {
    const an = n / 2;
    D = z + an * D;
    D = D === 0 ? tiny : 1 / D;
    C = z + an / C;
    if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
}

function refSigmoid(v: number): number {
  return v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
}

function refAct(kind: Activation, v: number): number {
  switch (kind) {
    case 'gelu': return 0.5 * v * refErfc(-v / Math.SQRT2);
    case 'gelu_tanh': return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    case 'quick_gelu': return v * refSigmoid(1.702 * v);
    case 'silu': return v * refSigmoid(v);
    case 'tanh': return Math.tanh(v);
    case 'relu': return Math.max(0, v);
    case 'sigmoid': return refSigmoid(v);
  }
}

const ACTIVATIONS: Activation[] = ['gelu', 'gelu_tanh', 'quick_gelu', 'silu', 'tanh', 'relu', 'sigmoid'];

// ---------------------------------------------------------------------------------------------

test('gemm: all transpose combinations, awkward sizes crossing block edges', () => {
  const rng = new Rng(1);
  // m < 4 and n = 1 take the unpacked skinny path; the rest the packed, blocked one.
  const sizes: Array<[number, number, number]> = [
    [1, 1, 1], [3, 5, 7], [17, 33, 65], [70, 261, 300], [5, 2, 600], [1, 37, 50], [2, 9, 3], [3, 300, 2],
    [9, 1, 33], [1, 1, 300], [4, 4, 4], [50, 7, 9], [47, 13, 5],
  ];
  for (const [m, n, k] of sizes) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const a = randn(rng, m * k);
        const b = randn(rng, k * n);
        const c = randn(rng, m * n);
        const { out, scale } = refGemm(tA, tB, m, n, k, 0.75, a, b, -0.5, c);
        const got = c.slice();
        K.gemm(tA, tB, m, n, k, 0.75, a, b, -0.5, got);
        for (let i = 0; i < out.length; i++) {
          const tol = 2e-6 * scale[i]! + 1e-30;
          if (Math.abs(got[i]! - out[i]!) > tol) {
            assert.fail(`gemm ${m}x${n}x${k} tA=${tA} tB=${tB} [${i}]: got ${got[i]}, expected ${out[i]}`);
          }
        }
      }
    }
  }
});

test('gemm: beta = 0 ignores NaN in C; beta = 1 accumulates; k = 0 scales C', () => {
  const rng = new Rng(2);
  const [m, n, k] = [6, 9, 4];
  const a = randn(rng, m * k);
  const b = randn(rng, k * n);
  const c = new Float32Array(m * n).fill(NaN);
  K.gemm(false, false, m, n, k, 1, a, b, 0, c);
  const { out } = refGemm(false, false, m, n, k, 1, a, b, 0, c);
  assertClose(c, out, 1e-5, 1e-6, 'beta=0');
  for (const [ms, ns] of [[2, n], [m, 1]]) {
    const cs = new Float32Array(ms * ns).fill(NaN);
    K.gemm(false, false, ms, ns, k, 1, a, b.subarray(0, k * ns), 0, cs);
    assertClose(cs, refGemm(false, false, ms, ns, k, 1, a, b, 0, cs).out, 1e-5, 1e-6, `beta=0 skinny ${ms}x${ns}`);
  }
  const c2 = randn(rng, m * n);
  const { out: out2 } = refGemm(false, true, m, n, k, 2, a, b, 1, c2);
  K.gemm(false, true, m, n, k, 2, a, b, 1, c2);
  assertClose(c2, out2, 1e-5, 1e-5, 'beta=1');
  const c3 = randn(rng, m * n);
  const expect3 = Array.from(c3, (v) => 3 * v);
  K.gemm(false, false, m, n, 0, 1, new Float32Array(0), new Float32Array(0), 3, c3);
  assertClose(c3, expect3, 1e-6, 0, 'k=0');
});

test('gemm: batched with strides, stride-0 broadcast, subarray views honour byteOffset', () => {
  const rng = new Rng(3);
  const [n, k, count] = [7, 6, 3];
  for (const [bcastA, bcastB, m] of [[false, false, 5], [true, false, 5], [false, true, 5], [false, false, 2], [true, false, 1]] as const) {
    const sA = bcastA ? 0 : m * k + 2; // padded strides
    const sB = bcastB ? 0 : k * n + 1;
    const sC = m * n + 3;
    const a = viewOf(randn(rng, (count - 1) * sA + m * k));
    const b = viewOf(randn(rng, (count - 1) * sB + k * n));
    const c = viewOf(randn(rng, (count - 1) * sC + m * n));
    const before = c.view.slice();
    K.gemm(true, false, m, n, k, 1.5, a.view, b.view, 0.5, c.view, { count, strideA: sA, strideB: sB, strideC: sC });
    for (let t = 0; t < count; t++) {
      const { out } = refGemm(true, false, m, n, k, 1.5, a.view.subarray(t * sA), b.view.subarray(t * sB), 0.5,
        before.subarray(t * sC));
      assertClose(c.view.subarray(t * sC, t * sC + m * n), out, 1e-5, 1e-5, `batch ${t}`);
      // gaps between C matrices are untouched
      for (let g = t * sC + m * n; g < Math.min((t + 1) * sC, c.view.length); g++) assert.equal(c.view[g], before[g]);
    }
    assertPadsIntact(c.buf, c.view.length);
  }
  // beta = 0 in a batch: each C matrix is overwritten, NaN ignored.
  const m = 5;
  const a = randn(rng, count * m * k);
  const b = randn(rng, k * n);
  const c = new Float32Array(count * m * n).fill(NaN);
  K.gemm(false, false, m, n, k, 1, a, b, 0, c, { count, strideA: m * k, strideB: 0, strideC: m * n });
  for (let t = 0; t < count; t++) {
    const { out } = refGemm(false, false, m, n, k, 1, a.subarray(t * m * k), b, 0, c);
    assertClose(c.subarray(t * m * n, (t + 1) * m * n), out, 1e-5, 1e-6, `beta=0 batch ${t}`);
  }
});

test('softmax and logSoftmax match float64, are stable for large inputs, work in place and on views', () => {
  const rng = new Rng(4);
  for (const [rows, cols] of [[1, 1], [3, 7], [5, 1024], [2, 33]]) {
    const x = randn(rng, rows * cols, 3);
    for (let i = 0; i < cols; i++) x[i] = x[i]! + 1000; // first row huge: needs max subtraction
    const ref = refSoftmaxRows(x, rows, cols);
    const out = new Float32Array(rows * cols);
    K.softmax(x, out, rows, cols);
    assertClose(out, ref, 2e-6, 1e-12, 'softmax');
    const lref = refLogSoftmaxRows(x, rows, cols);
    K.logSoftmax(x, out, rows, cols);
    assertClose(out, lref, 2e-6, 2e-6, 'logSoftmax');
    // in place on a view
    const v = viewOf(x);
    K.softmax(v.view, v.view, rows, cols);
    assertClose(v.view, ref, 2e-6, 1e-12, 'softmax in place');
    assertPadsIntact(v.buf, x.length);
    const lv = viewOf(x);
    K.logSoftmax(lv.view, lv.view, rows, cols);
    assertClose(lv.view, lref, 2e-6, 2e-6, 'logSoftmax in place');
  }
  // −Infinity entries get probability exactly 0
  const x = Float32Array.from([0, -Infinity, 1, -Infinity]);
  const y = new Float32Array(4);
  K.softmax(x, y, 1, 4);
  assert.equal(y[1], 0);
  assert.equal(y[3], 0);
  assertClose(y, refSoftmaxRows([0, -Infinity, 1, -Infinity], 1, 4), 1e-6, 0, 'softmax -inf');
});

test('softmaxBackward and logSoftmaxBackward match central differences', () => {
  const rng = new Rng(5);
  const [rows, cols] = [3, 6];
  const x = randn(rng, rows * cols, 2);
  const dy = randn(rng, rows * cols);
  const y = new Float32Array(rows * cols);
  const dx = new Float32Array(rows * cols);
  K.softmax(x, y, rows, cols);
  K.softmaxBackward(y, dy, dx, rows, cols);
  assertClose(dx, numericGrad((v) => refSoftmaxRows(v, rows, cols), x, dy), 1e-4, 1e-5, 'softmaxBackward');
  K.logSoftmax(x, y, rows, cols);
  K.logSoftmaxBackward(y, dy, dx, rows, cols);
  assertClose(dx, numericGrad((v) => refLogSoftmaxRows(v, rows, cols), x, dy), 1e-4, 1e-5, 'logSoftmaxBackward');
  // dx may alias dy
  const dy2 = dy.slice();
  K.logSoftmaxBackward(y, dy2, dy2, rows, cols);
  assertClose(dy2, dx, 0, 0, 'logSoftmaxBackward in place');
});

function maskCases(rng: Rng): MaskSpec[] {
  const batch = 2;
  const heads = 3;
  const lq = 4;
  const lk = 5;
  const full = new Uint8Array(batch * lq * lk).map(() => (rng.uniform() < 0.6 ? 1 : 0));
  for (let j = 0; j < lk; j++) full[1 * lq * lk + 2 * lk + j] = 0; // batch 1, query 2: fully masked
  const pad = Uint8Array.from([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]); // batch 1: every key padded out
  const shared = Uint8Array.from([1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0]); // (lq, lk), query 1 masked
  return [
    { batch, heads, lq, lk, mask: null, mbs: 0, mqs: 0, causal: false, offset: 0 },
    { batch, heads, lq, lk, mask: full, mbs: lq * lk, mqs: lk, causal: false, offset: 0 },
    { batch, heads, lq, lk, mask: pad, mbs: lk, mqs: 0, causal: false, offset: 0 },
    { batch, heads, lq, lk, mask: shared, mbs: 0, mqs: lk, causal: false, offset: 0 },
    { batch, heads, lq, lk, mask: null, mbs: 0, mqs: 0, causal: true, offset: 0 },
    { batch, heads, lq, lk, mask: null, mbs: 0, mqs: 0, causal: true, offset: 1 }, // KV cache: one past key
    { batch, heads, lq, lk, mask: null, mbs: 0, mqs: 0, causal: true, offset: -1 }, // query 0 sees nothing
    { batch, heads, lq, lk, mask: full, mbs: lq * lk, mqs: lk, causal: true, offset: 2 },
  ];
}

test('maskedSoftmax: masks, strides, causal offsets, fully masked rows in both modes, in place', () => {
  const rng = new Rng(6);
  for (const s of maskCases(rng)) {
    const size = s.batch * s.heads * s.lq * s.lk;
    const clean = randn(rng, size, 2);
    for (const uniform of [false, true]) {
      const ref = refMaskedSoftmax(s, clean, uniform);
      const out = new Float32Array(size).fill(-5);
      K.maskedSoftmax(clean, out, s.batch, s.heads, s.lq, s.lk, s.mask, s.mbs, s.mqs, s.causal, s.offset, uniform);
      assertClose(out, ref, 2e-6, 1e-12, `maskedSoftmax ${JSON.stringify({ ...s, mask: !!s.mask, uniform })}`);
      for (let b = 0; b < s.batch; b++) for (let h = 0; h < s.heads; h++) for (let i = 0; i < s.lq; i++) {
        const o = ((b * s.heads + h) * s.lq + i) * s.lk;
        let any = false;
        for (let j = 0; j < s.lk; j++) if (visibleRef(s, b, i, j)) any = true;
        for (let j = 0; j < s.lk; j++) {
          if (!any) assert.equal(out[o + j], uniform ? Math.fround(1 / s.lk) : 0);
          else if (!visibleRef(s, b, i, j)) assert.equal(out[o + j], 0, 'masked entry exactly 0');
        }
      }
      // in place on a view
      const v = viewOf(clean);
      K.maskedSoftmax(v.view, v.view, s.batch, s.heads, s.lq, s.lk, s.mask, s.mbs, s.mqs, s.causal, s.offset, uniform);
      assertClose(v.view, out, 0, 0, 'maskedSoftmax in place');
      assertPadsIntact(v.buf, size);
    }
    // Scores under a mask are ignored even when NaN.
    if (s.mask !== null || s.causal) {
      const dirty = randn(rng, size);
      for (let b = 0; b < s.batch; b++) for (let h = 0; h < s.heads; h++) for (let i = 0; i < s.lq; i++) {
        for (let j = 0; j < s.lk; j++) if (!visibleRef(s, b, i, j)) dirty[((b * s.heads + h) * s.lq + i) * s.lk + j] = NaN;
      }
      const out = new Float32Array(size);
      K.maskedSoftmax(dirty, out, s.batch, s.heads, s.lq, s.lk, s.mask, s.mbs, s.mqs, s.causal, s.offset, false);
      assert.ok(out.every((v) => Number.isFinite(v)), 'NaN under mask leaked');
    }
  }
});

test('maskedSoftmaxBackward matches central differences; zero on masked entries and fully masked rows', () => {
  const rng = new Rng(7);
  for (const s of maskCases(rng)) {
    const size = s.batch * s.heads * s.lq * s.lk;
    const x = randn(rng, size, 1.5);
    const dy = randn(rng, size);
    for (const uniform of [false, true]) {
      const y = new Float32Array(size);
      K.maskedSoftmax(x, y, s.batch, s.heads, s.lq, s.lk, s.mask, s.mbs, s.mqs, s.causal, s.offset, uniform);
      const dx = new Float32Array(size).fill(99);
      K.maskedSoftmaxBackward(y, dy, dx, s.batch, s.heads, s.lq, s.lk, s.mask, s.mbs, s.mqs, s.causal, s.offset);
      const num = numericGrad((v) => refMaskedSoftmax(s, v, uniform), x, dy);
      assertClose(dx, num, 1e-4, 1e-5, 'maskedSoftmaxBackward');
      for (let b = 0; b < s.batch; b++) for (let h = 0; h < s.heads; h++) for (let i = 0; i < s.lq; i++) {
        for (let j = 0; j < s.lk; j++) {
          if (!visibleRef(s, b, i, j)) assert.equal(dx[((b * s.heads + h) * s.lq + i) * s.lk + j], 0);
        }
      }
    }
  }
});

test('layerNorm forward and backward (x, w, b; dw/db accumulate), with and without affine', () => {
  const rng = new Rng(8);
  const [rows, cols, eps] = [4, 9, 1e-5];
  for (const affine of [[true, true], [true, false], [false, true], [false, false]]) {
    const x = randn(rng, rows * cols, 2);
    for (let j = 0; j < cols; j++) x[j] = x[j]! + 300; // large mean: variance must not cancel
    const w = affine[0] ? randn(rng, cols) : null;
    const b = affine[1] ? randn(rng, cols) : null;
    const ref = refLayerNorm(x, w, b, rows, cols, eps);
    const out = new Float32Array(rows * cols);
    const mean = new Float32Array(rows);
    const rstd = new Float32Array(rows);
    K.layerNorm(x, w, b, out, mean, rstd, rows, cols, eps);
    assertClose(out, ref.y, 1e-5, 2e-5, 'layerNorm out');
    assertClose(mean, ref.mean, 1e-6, 0, 'layerNorm mean');
    assertClose(rstd, ref.rstd, 1e-5, 0, 'layerNorm rstd');
    // in place on a view
    const v = viewOf(x);
    K.layerNorm(v.view, w, b, v.view, mean, rstd, rows, cols, eps);
    assertClose(v.view, out, 0, 0, 'layerNorm in place');
    assertPadsIntact(v.buf, x.length);

    const dy = randn(rng, rows * cols);
    const dx = new Float32Array(rows * cols);
    const dw0 = randn(rng, cols);
    const db0 = randn(rng, cols);
    const dw = dw0.slice();
    const db = db0.slice();
    K.layerNormBackward(x, w, mean, rstd, dy, dx, w ? dw : null, b ? db : null, rows, cols);
    // Centre x before differencing: h must be small relative to the row's spread, not its mean.
    const numX = numericGrad((xv) => refLayerNorm(xv, w, b, rows, cols, eps).y, x, dy, 1e-4);
    assertClose(dx, numX, 2e-3, 2e-4, 'layerNorm dx');
    if (w) {
      const numW = numericGrad((wv) => refLayerNorm(x, wv, b, rows, cols, eps).y, w, dy);
      assertClose(dw, Array.from(numW, (g, j) => g + dw0[j]!), 1e-4, 1e-4, 'layerNorm dw accumulates');
    }
    if (b) {
      const numB = numericGrad((bv) => refLayerNorm(x, w, bv, rows, cols, eps).y, b, dy);
      assertClose(db, Array.from(numB, (g, j) => g + db0[j]!), 1e-4, 1e-4, 'layerNorm db accumulates');
    }
  }
});

test('rmsNorm forward and backward (dw accumulates)', () => {
  const rng = new Rng(9);
  const [rows, cols, eps] = [3, 11, 1e-6];
  for (const withW of [true, false]) {
    const x = randn(rng, rows * cols, 1.5);
    const w = withW ? randn(rng, cols) : null;
    const ref = refRmsNorm(x, w, rows, cols, eps);
    const out = new Float32Array(rows * cols);
    const rstd = new Float32Array(rows);
    K.rmsNorm(x, w, out, rstd, rows, cols, eps);
    assertClose(out, ref.y, 1e-5, 1e-6, 'rmsNorm out');
    assertClose(rstd, ref.rstd, 1e-6, 0, 'rmsNorm rstd');
    const v = viewOf(x);
    K.rmsNorm(v.view, w, v.view, rstd, rows, cols, eps);
    assertClose(v.view, out, 0, 0, 'rmsNorm in place');

    const dy = randn(rng, rows * cols);
    const dx = new Float32Array(rows * cols);
    const dw0 = randn(rng, cols);
    const dw = dw0.slice();
    K.rmsNormBackward(x, w, rstd, dy, dx, w ? dw : null, rows, cols);
    assertClose(dx, numericGrad((xv) => refRmsNorm(xv, w, rows, cols, eps).y, x, dy), 1e-4, 1e-5, 'rmsNorm dx');
    if (w) {
      const numW = numericGrad((wv) => refRmsNorm(x, wv, rows, cols, eps).y, w, dy);
      assertClose(dw, Array.from(numW, (g, j) => g + dw0[j]!), 1e-4, 1e-5, 'rmsNorm dw accumulates');
    }
  }
});

test('erf/erfc are accurate in float64 across the range (relative)', () => {
  for (let z = -8; z <= 26; z += 0.0371) {
    const ref = refErfc(z);
    if (ref > 0) assert.ok(Math.abs(erfc(z) - ref) <= 1e-13 * ref, `erfc(${z}) = ${erfc(z)}, expected ${ref}`);
    const refE = 1 - ref;
    if (Math.abs(z) < 3) {
      assert.ok(Math.abs(erf(z) - refE) <= 1e-14 + 1e-13 * Math.abs(refE), `erf(${z}) = ${erf(z)}, expected ${refE}`);
    }
  }
  assert.equal(erf(0), 0);
  assert.ok(Number.isNaN(erfc(NaN)));
});

test('erf-based GELU: known values and far tails', () => {
  // Φ(x) from well-known constants erf(0.5), erf(1), erf(2) and Φ(−5), Φ(−10).
  const x = Float32Array.from([Math.SQRT2 * 0.5, Math.SQRT2, 2 * Math.SQRT2, -5, -10]);
  const out = new Float32Array(x.length);
  K.activation('gelu', x, out, x.length);
  const phi = [0.5 * (1 + 0.5204998778130465), 0.5 * (1 + 0.8427007929497149), 0.5 * (1 + 0.9953222650189527),
    2.866515718791939e-7, 7.619853024160527e-24];
  // Relative accuracy must hold even at −10, where GELU is ~1e−22.
  assertClose(out, Array.from(x, (v, i) => v * phi[i]!), 2e-7, 0, 'gelu known values');
});

test('activations match float64 references (in place too) and backward matches central differences', () => {
  const rng = new Rng(10);
  const n = 257;
  const x = randn(rng, n, 3);
  x[0] = 12; x[1] = -12; x[2] = 0.5; x[3] = -40; x[4] = 40;
  for (const kind of ACTIVATIONS) {
    const out = new Float32Array(n);
    K.activation(kind, x, out, n);
    assertClose(out, Array.from(x, (v) => refAct(kind, v)), 3e-7, 1e-30, `activation ${kind}`);
    const v = viewOf(x);
    K.activation(kind, v.view, v.view, n);
    assertClose(v.view, out, 0, 0, `activation ${kind} in place`);
    assertPadsIntact(v.buf, n);

    const xs = randn(rng, 40, 2).map((t) => (kind === 'relu' && Math.abs(t) < 0.05 ? t + 0.2 : t));
    const dy = randn(rng, 40);
    const dx = new Float32Array(40);
    K.activationBackward(kind, xs, dy, dx, 40);
    const num = numericGrad((xv) => Float64Array.from(xv, (t) => refAct(kind, t)), xs, dy);
    assertClose(dx, num, 1e-5, 1e-6, `activationBackward ${kind}`);
  }
  const relu = new Float32Array(3);
  K.activation('relu', Float32Array.from([NaN, -1, 0]), relu, 3);
  assert.ok(Number.isNaN(relu[0]), 'relu propagates NaN');
  const drelu = new Float32Array(1);
  K.activationBackward('relu', Float32Array.from([0]), Float32Array.from([1]), drelu, 1);
  assert.equal(drelu[0], 0, 'relu gradient at 0');
});

test('swiglu forward and backward', () => {
  const rng = new Rng(11);
  const n = 50;
  const gate = randn(rng, n, 2);
  const up = randn(rng, n);
  const out = new Float32Array(n);
  K.swiglu(gate, up, out, n);
  assertClose(out, Array.from(gate, (g, i) => g * refSigmoid(g) * up[i]!), 1e-6, 1e-7, 'swiglu');
  const inPlace = up.slice();
  K.swiglu(gate, inPlace, inPlace, n);
  assertClose(inPlace, out, 0, 0, 'swiglu in place');
  const dy = randn(rng, n);
  const dgate = new Float32Array(n);
  const dup = new Float32Array(n);
  K.swigluBackward(gate, up, dy, dgate, dup, n);
  const f = (g: ArrayLike<number>, u: ArrayLike<number>) => Float64Array.from(g, (gv, i) => gv * refSigmoid(gv) * u[i]!);
  assertClose(dgate, numericGrad((gv) => f(gv, up), gate, dy), 1e-5, 1e-6, 'swiglu dgate');
  assertClose(dup, numericGrad((uv) => f(gate, uv), up, dy), 1e-5, 1e-6, 'swiglu dup');
});

test('crossEntropy forward/backward with ignore index', () => {
  const rng = new Rng(12);
  const [rows, cols, ignore, scale] = [6, 13, -100, 0.25];
  const logits = randn(rng, rows * cols, 3);
  for (let j = 0; j < cols; j++) logits[j] = logits[j]! + 500;
  const targets = Int32Array.from([3, -100, 0, 12, -100, 7]);
  const losses = new Float32Array(rows);
  const lse = new Float32Array(rows);
  K.crossEntropy(logits, targets, rows, cols, ignore, losses, lse);
  const refLoss = (lg: ArrayLike<number>): Float64Array => {
    const ls = refLogSoftmaxRows(lg, rows, cols);
    return Float64Array.from(targets, (t, r) => (t === ignore ? 0 : -ls[r * cols + t]!));
  };
  assertClose(losses, refLoss(logits), 1e-5, 1e-5, 'crossEntropy losses');
  assert.equal(losses[1], 0);
  assert.equal(losses[4], 0);
  const dl = new Float32Array(rows * cols).fill(5);
  K.crossEntropyBackward(logits, targets, lse, rows, cols, ignore, scale, dl);
  const num = numericGrad(refLoss, logits, new Float64Array(rows).fill(scale), 1e-4);
  assertClose(dl, num, 1e-3, 1e-5, 'crossEntropyBackward');
  for (let j = 0; j < cols; j++) {
    assert.equal(dl[1 * cols + j], 0);
    assert.equal(dl[4 * cols + j], 0);
  }
});

test('rope: HF rotate_half layout, inverse undoes it and is its transpose, in place', () => {
  const rng = new Rng(13);
  const [batch, seq, heads, dim, theta] = [2, 3, 2, 8, 10000];
  const size = batch * seq * heads * dim;
  const x = randn(rng, size);
  const positions = Int32Array.from([0, 1, 2, 5, 17, 1000]);
  const out = new Float32Array(size);
  K.rope(x, out, batch, seq, heads, dim, positions, theta, false);
  const half = dim / 2;
  const ref = new Float64Array(size);
  for (let b = 0; b < batch; b++) for (let s = 0; s < seq; s++) for (let h = 0; h < heads; h++) {
    const o = ((b * seq + s) * heads + h) * dim;
    for (let d = 0; d < dim; d++) {
      const i = d % half;
      const ang = positions[b * seq + s]! / Math.pow(theta, (2 * i) / dim);
      const rot = d < half ? -x[o + d + half]! : x[o + d - half]!;
      ref[o + d] = x[o + d]! * Math.cos(ang) + rot * Math.sin(ang);
    }
  }
  assertClose(out, ref, 1e-5, 2e-6, 'rope forward');
  const back = new Float32Array(size);
  K.rope(out, back, batch, seq, heads, dim, positions, theta, true);
  assertClose(back, x, 1e-5, 2e-6, 'rope inverse');
  // <rope(x), y> = <x, ropeInverse(y)>: the inverse is the backward.
  const y = randn(rng, size);
  const yInv = new Float32Array(size);
  K.rope(y, yInv, batch, seq, heads, dim, positions, theta, true);
  let lhs = 0;
  let rhs = 0;
  for (let i = 0; i < size; i++) {
    lhs += out[i]! * y[i]!;
    rhs += x[i]! * yInv[i]!;
  }
  assert.ok(Math.abs(lhs - rhs) < 1e-4 * (1 + Math.abs(lhs)), `rope adjoint ${lhs} vs ${rhs}`);
  const v = viewOf(x);
  K.rope(v.view, v.view, batch, seq, heads, dim, positions, theta, false);
  assertClose(v.view, out, 0, 0, 'rope in place');
  assertPadsIntact(v.buf, size);
});

test('adamw follows the PyTorch update over several steps', () => {
  const rng = new Rng(14);
  const n = 31;
  const [lr, b1, b2, eps, wd] = [1e-2, 0.9, 0.95, 1e-8, 0.1];
  const p = randn(rng, n);
  const m = new Float32Array(n);
  const v = new Float32Array(n);
  const rp = Float64Array.from(p);
  const rm = new Float64Array(n);
  const rv = new Float64Array(n);
  for (let step = 1; step <= 5; step++) {
    const g = randn(rng, n);
    K.adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step);
    for (let i = 0; i < n; i++) {
      rp[i] = rp[i]! - lr * wd * rp[i]!;
      rm[i] = b1 * rm[i]! + (1 - b1) * g[i]!;
      rv[i] = b2 * rv[i]! + (1 - b2) * g[i]! ** 2;
      const mHat = rm[i]! / (1 - b1 ** step);
      const vHat = rv[i]! / (1 - b2 ** step);
      rp[i] = rp[i]! - (lr * mHat) / (Math.sqrt(vHat) + eps);
    }
  }
  assertClose(p, rp, 1e-5, 1e-6, 'adamw param');
  assertClose(m, rm, 1e-5, 1e-7, 'adamw m');
  assertClose(v, rv, 1e-5, 1e-9, 'adamw v');
});

test('axpy, mul, add (in place) and sumSquares', () => {
  const rng = new Rng(15);
  const n = 23;
  const a = randn(rng, n);
  const b = randn(rng, n);
  const y = b.slice();
  K.axpy(-2.5, a, y, n);
  assertClose(y, Array.from(b, (bv, i) => bv - 2.5 * a[i]!), 1e-6, 1e-6, 'axpy');
  const o = a.slice();
  K.mul(o, b, o, n);
  assertClose(o, Array.from(a, (av, i) => av * b[i]!), 1e-6, 0, 'mul');
  const s = a.slice();
  K.add(s, b, s, n);
  assertClose(s, Array.from(a, (av, i) => av + b[i]!), 1e-6, 1e-7, 'add');
  const big = new Float32Array(10000).fill(0.1);
  let ref = 0;
  for (const v of big) ref += v * v;
  assert.ok(Math.abs(K.sumSquares(big, big.length) - ref) < 1e-9 * ref, 'sumSquares float64 accumulation');
  assert.equal(K.sumSquares(big, 0), 0);
});

test('buffer-size and dimension errors are reported', () => {
  assert.throws(() => K.softmax(new Float32Array(5), new Float32Array(6), 2, 3), TsKernelError);
  assert.throws(() => K.gemm(false, false, 2, 2, 2, 1, new Float32Array(3), new Float32Array(4), 0, new Float32Array(4)), /buffer 'a'/);
  assert.throws(() => K.rope(new Float32Array(3), new Float32Array(3), 1, 1, 1, 3, new Int32Array(1), 1e4, false), /even/);
  assert.throws(() => K.adamw(new Float32Array(1), new Float32Array(1), new Float32Array(1), new Float32Array(1), 1,
    1e-3, 0.9, 0.999, 1e-8, 0, 0), /step/);
});

test('swapMiddleAxes: out[b, c, a, :] = x[b, a, c, :]', () => {
  const [B, A, C, D] = [2, 3, 4, 5];
  const x = Float32Array.from({ length: B * A * C * D }, (_, i) => i);
  const out = new Float32Array(x.length);
  K.swapMiddleAxes(x, out, B, A, C, D);
  for (let b = 0; b < B; b++) for (let a = 0; a < A; a++) for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) {
    assert.equal(out[((b * C + c) * A + a) * D + d], x[((b * A + a) * C + c) * D + d]);
  }
  assert.throws(() => K.swapMiddleAxes(x, new Float32Array(3), B, A, C, D), /out/);
});
