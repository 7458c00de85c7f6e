/**
 * Native kernels vs the TypeScript oracle: every Kernels method on random inputs of awkward sizes
 * (odd lengths, not multiples of 8, sizes past the threading and blocking thresholds), subarray
 * views with offsets (guard cells around each view must stay untouched), in-place calls, and the
 * argument checks that keep a bad call from reading out of bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getTsKernels, tryNativeKernels } from '../src/engine/kernels/index.ts';
import { checkKernelEnv, loadNativeAddon, NativeKernelArgumentError, NativeKernelConfigError } from '../src/engine/kernels/native.ts';
import { FlamingoError } from '../src/errors.ts';
import type { Activation, Kernels } from '../src/engine/kernels/types.ts';

const { kernels: maybeNative, reason } = tryNativeKernels();
const skip = maybeNative ? false : `native addon unavailable: ${reason}`;
const ts = getTsKernels();
const nat = maybeNative as Kernels;

// CI (.ci/run) sets FLAMINGO_REQUIRE_NATIVE=1: there a missing addon is a failure, not a quiet skip of the tests below.
test('the native addon loads (required when FLAMINGO_REQUIRE_NATIVE=1)', (t) => {
  if (maybeNative) return;
  if (process.env.FLAMINGO_REQUIRE_NATIVE === '1') assert.fail(`FLAMINGO_REQUIRE_NATIVE=1 but the native addon is unavailable: ${reason}`);
  t.skip(`native addon unavailable: ${reason}`);
});

// ------------------------------------------------------------------ helpers
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function readCpuFlags(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
  } catch {
    return '';
  }
}
const rand = rng(Number(process.env.KERNEL_TEST_SEED ?? 12345));

const GUARD = 5;
const SENTINEL = -12345.5;

/** A view of n elements at offset GUARD inside a larger buffer whose guard cells hold SENTINEL. */
function view(n: number, fill: (i: number) => number = () => rand() * 2 - 1): Float32Array {
  const big = new Float32Array(n + 2 * GUARD).fill(SENTINEL);
  const v = big.subarray(GUARD, GUARD + n);
  for (let i = 0; i < n; i++) v[i] = fill(i);
  return v;
}
function randn(n: number, scale = 1): Float32Array {
  return view(n, () => (rand() * 2 - 1) * scale);
}
function copy(v: Float32Array): Float32Array {
  const c = view(v.length);
  c.set(v);
  return c;
}
function guardsIntact(v: Float32Array, label: string): void {
  const big = new Float32Array(v.buffer);
  const start = v.byteOffset / 4;
  for (let i = 0; i < start; i++) assert.equal(big[i], SENTINEL, `${label}: wrote before the view`);
  for (let i = start + v.length; i < big.length; i++) assert.equal(big[i], SENTINEL, `${label}: wrote past the view`);
}
function close(got: Float32Array, want: Float32Array, label: string, rtol = 1e-5, atol = 1e-6): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w)) {
      assert.ok(Number.isNaN(g), `${label}[${i}]: got ${g}, want NaN`);
      continue;
    }
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) {
      assert.fail(`${label}[${i}]: native ${g} vs typescript ${w} (|diff| ${Math.abs(g - w)})`);
    }
  }
  guardsIntact(got, label);
}
/** Runs `call` on both backends with fresh copies of the outputs and compares them. */
function agree(
  label: string, outs: Float32Array[], call: (k: Kernels, o: Float32Array[]) => void, rtol = 1e-5, atol = 1e-6,
): void {
  const a = outs.map(copy);
  const b = outs.map(copy);
  call(nat, a);
  call(ts, b);
  a.forEach((x, i) => close(x, b[i]!, `${label} out#${i}`, rtol, atol));
}

// ------------------------------------------------------------------ gemm
const GEMM_SHAPES: Array<[number, number, number]> = [
  [1, 1, 1], [3, 5, 7], [17, 33, 9], [6, 16, 1], [40, 41, 42], [65, 47, 130], [130, 70, 257], [97, 1030, 23],
  // matrix-vector and skinny products (sgemv, the few-rows kernel)
  [1, 301, 257], [300, 1, 257], [5, 299, 131], [8, 67, 600], [2, 1030, 33], [3, 130, 1000], [4, 257, 96],
  // ≥ 1M multiply-adds: split over the pool by rows or by columns (blocks with leading dimensions)
  [1, 4100, 300], [4100, 1, 300], [33, 2000, 40], [2000, 20, 40],
];

test('gemm: every trans combination, alpha/beta, NaN in C ignored when beta = 0', { skip }, () => {
  for (const [m, n, k] of GEMM_SHAPES) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        // (1, 0) and (1, 1) with tB and ≤ 4 rows take the streaming decode kernel (x · Wᵀ)
        for (const [alpha, beta] of [[1, 0], [1, 1], [0.5, 1.5], [-2, 1]] as const) {
          const a = randn(m * k), b = randn(k * n);
          const c0 = beta === 0 ? view(m * n, () => NaN) : randn(m * n);
          agree(`gemm ${m}x${n}x${k} tA=${tA} tB=${tB} α=${alpha} β=${beta}`, [c0], (kern, [c]) =>
            kern.gemm(tA, tB, m, n, k, alpha, a, b, beta, c!), 1e-5, 2e-6 * k);
        }
      }
    }
  }
});

test('gemm: built-in blocked GEMM and the direct small kernel agree with the oracle', { skip }, () => {
  const addon = loadNativeAddon();
  // Past every blocking size (KC=256, MC=96, NC=1024) with ragged edges.
  const shapes: Array<[number, number, number]> = [[7, 9, 11], [101, 35, 300], [13, 1050, 17], [200, 50, 40]];
  for (const [m, n, k] of shapes) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const a = randn(m * k), b = randn(k * n);
        for (const [name, fn] of [['gemmBuiltin', addon.gemmBuiltin], ['gemmSmall', addon.gemmSmall]] as const) {
          const c = view(m * n, () => NaN);
          const want = new Float32Array(m * n);
          ts.gemm(tA, tB, m, n, k, 0.75, a, b, 0, want);
          fn(tA, tB, m, n, k, 0.75, a, b, 0, c, 1, 0, 0, 0);
          close(c, want, `${name} ${m}x${n}x${k} tA=${tA} tB=${tB}`, 1e-5, 2e-6 * k);
          const c2 = randn(m * n), want2 = Float32Array.from(c2);
          ts.gemm(tA, tB, m, n, k, 1, a, b, 0.5, want2);
          fn(tA, tB, m, n, k, 1, a, b, 0.5, c2, 1, 0, 0, 0);
          close(c2, want2, `${name} β=0.5 ${m}x${n}x${k}`, 1e-5, 2e-6 * k);
        }
      }
    }
  }
});

// ------------------------------------------------------------------ the GEMM choice (AVX-512 / OpenBLAS)
/** C = alpha·op(A)·op(B) + beta·C in float64, with leading dimensions (beta = 0 ignores C). */
function gemmRef(
  tA: boolean, tB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number,
  b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number,
): Float32Array {
  const out = Float32Array.from(c);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (tA ? a[p * lda + i]! : a[i * lda + p]!) * (tB ? b[j * ldb + p]! : b[p * ldb + j]!);
      out[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * ldc + j]!);
    }
  }
  return out;
}

// Sizes around the AVX-512 kernel's tile (14 × 32) and K block (192), past the thread split (2^20
// multiply-adds), with leading dimensions longer than the rows: the padding must stay untouched.
const LD_SHAPES: Array<[number, number, number]> = [
  [1, 1, 1], [2, 3, 1], [13, 31, 7], [14, 32, 192], [15, 33, 193], [29, 65, 191], [1, 77, 50], [77, 1, 50],
  [100, 47, 300], [257, 129, 64], [300, 300, 17], [45, 290, 385], [131, 1000, 12],
];

test('gemmLd (the engine\'s GEMM choice): transposes, alpha/beta, NaN with beta = 0, leading dimensions, views', { skip }, () => {
  const addon = loadNativeAddon();
  let shape = 0;
  for (const [m, n, k] of LD_SHAPES) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        const [alpha, beta] = ([[1, 0], [0.75, 1], [-1.5, 0.5], [2, 0]] as const)[shape++ % 4]!;
        const pad = shape % 3;  // 0, 1 or 2 floats of padding per row
        const lda = (tA ? m : k) + pad, ldb = (tB ? k : n) + pad, ldc = n + pad;
        const a = randn((tA ? k : m) * lda), b = randn((tB ? n : k) * ldb);
        const c = beta === 0 ? view(m * ldc, () => NaN) : randn(m * ldc);
        const want = gemmRef(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        // the padding of C keeps its old contents (NaN when beta = 0), like the guards around the view
        addon.gemmLd(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        close(c, want, `gemmLd ${m}x${n}x${k} tA=${tA} tB=${tB} α=${alpha} β=${beta} pad=${pad}`, 1e-5, 2e-6 * k);
      }
    }
  }
  // k = 0: C = beta·C (beta = 0 clears NaN); alpha = 0 likewise
  const c = view(6, () => NaN);
  addon.gemmLd(false, false, 2, 3, 0, 1, new Float32Array(0), 0, new Float32Array(0), 3, 0, c, 3);
  assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
  const c2 = view(6, () => 2);
  addon.gemmLd(true, true, 2, 3, 4, 0, randn(8), 2, randn(12), 4, 0.5, c2, 3);
  assert.deepEqual([...c2], [1, 1, 1, 1, 1, 1]);
});

test('gemm: the AVX-512 GEMM runs when the CPU has AVX-512, and FLAMINGO_GEMM=openblas turns it off', { skip }, () => {
  const info = loadNativeAddon().info();
  const cpuHas = /\bavx512f\b/.test(readCpuFlags()) && /\bavx512bw\b/.test(readCpuFlags());
  const forced = process.env.FLAMINGO_GEMM === 'openblas';
  assert.equal(info.gemm, cpuHas && !forced ? 'avx512' : info.hasBlas ? 'openblas' : 'builtin');
  if (info.gemm === 'avx512') assert.match(nat.description, /\+ own AVX-512 sgemm \d+x\d+/);
});

test('gemm: an unknown FLAMINGO_GEMM is an error naming the value and the allowed ones', () => {
  assert.doesNotThrow(() => checkKernelEnv({}));
  assert.doesNotThrow(() => checkKernelEnv({ FLAMINGO_GEMM: 'openblas' }));
  assert.doesNotThrow(() => checkKernelEnv({ FLAMINGO_GEMM: 'avx512' }));
  assert.throws(() => checkKernelEnv({ FLAMINGO_GEMM: 'OpenBLAS ' }), (e: unknown) =>
    e instanceof NativeKernelConfigError && e instanceof FlamingoError && /FLAMINGO_GEMM="OpenBLAS "/.test(e.message) && /avx512, openblas/.test(e.message));
});

test('decode kernels: an unknown FLAMINGO_SIMD or a malformed FLAMINGO_GEMV_KC is an error naming it', () => {
  assert.doesNotThrow(() => checkKernelEnv({ FLAMINGO_SIMD: 'avx2', FLAMINGO_GEMV_KC: '0' }));
  assert.doesNotThrow(() => checkKernelEnv({ FLAMINGO_SIMD: 'avx512', FLAMINGO_GEMV_KC: '4096' }));
  assert.throws(() => checkKernelEnv({ FLAMINGO_SIMD: 'sse4' }), (e: unknown) =>
    e instanceof NativeKernelConfigError && /FLAMINGO_SIMD="sse4"/.test(e.message) && /avx512, avx2/.test(e.message));
  for (const bad of ['-1', '2k', '1.5']) {
    assert.throws(() => checkKernelEnv({ FLAMINGO_GEMV_KC: bad }), (e: unknown) =>
      e instanceof NativeKernelConfigError && e.variable === 'FLAMINGO_GEMV_KC' && e.message.includes(JSON.stringify(bad)));
  }
});

test('gemm tests pass with FLAMINGO_GEMM=openblas too (the previous path, in a child process)', { skip }, () => {
  if (process.env.FLAMINGO_GEMM === 'openblas' || loadNativeAddon().info().gemm !== 'avx512') return;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-name-pattern=gemm',
    fileURLToPath(import.meta.url)], {
    // without NODE_TEST_CONTEXT the child reports as TAP on stdout instead of to this runner
    env: { ...process.env, FLAMINGO_GEMM: 'openblas', NODE_TEST_CONTEXT: undefined }, encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout.slice(-3000) + r.stderr.slice(-2000));
  assert.match(r.stdout, /# pass [1-9]/);
  assert.match(r.stdout, /# fail 0/);
});

test('gemm: batched, with stride-0 broadcast operands, tiny and large products', { skip }, () => {
  for (const [m, n, k, count] of [[3, 4, 5, 7], [8, 8, 8, 33], [70, 65, 40, 3], [3, 200, 90, 3], [1, 200, 300, 2]] as const) {
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      // A broadcast (stride 0), B per batch.
      const a = randn(m * k), b = randn(count * k * n + 3);
      agree(`batched A-broadcast ${m}x${n}x${k}×${count}`, [view(count * m * n, () => NaN)], (kern, [c]) =>
        kern.gemm(tA, tB, m, n, k, 1, a, b, 0, c!, { count, strideA: 0, strideB: k * n, strideC: m * n }),
      1e-5, 2e-6 * k);
      // B broadcast, padded strides on A and C, accumulate into C.
      const a2 = randn(count * (m * k + 2)), b2 = randn(k * n);
      agree(`batched B-broadcast ${m}x${n}x${k}×${count}`, [randn(count * (m * n + 1))], (kern, [c]) =>
        kern.gemm(tA, tB, m, n, k, 0.5, a2, b2, 1, c!, { count, strideA: m * k + 2, strideB: 0, strideC: m * n + 1 }),
      1e-5, 2e-6 * k);
    }
  }
});

test('gemm: larger batched products (spread over threads when even, else threaded one by one)', { skip }, () => {
  const [m, n, k] = [260, 130, 131];
  for (const count of [2, 3]) {
    const a = randn(count * m * k), b = randn(k * n);
    agree(`batched large ${m}x${n}x${k}×${count}`, [view(count * m * n, () => NaN)], (kern, [c]) =>
      kern.gemm(false, true, m, n, k, 1, a, b, 0, c!, { count, strideA: m * k, strideB: 0, strideC: m * n }),
    1e-5, 2e-6 * k);
  }
});

test('empty shapes: k = 0 scales C by beta, zero rows/elements are no-ops', { skip }, () => {
  for (const beta of [0, 2]) {
    agree(`gemm k=0 β=${beta}`, [beta === 0 ? view(12, () => NaN) : randn(12)], (kern, [c]) =>
      kern.gemm(false, false, 3, 4, 0, 1, new Float32Array(0), new Float32Array(0), beta, c!));
    agree(`batched gemm k=0 β=${beta}`, [beta === 0 ? view(24, () => NaN) : randn(24)], (kern, [c]) =>
      kern.gemm(true, true, 3, 4, 0, 1, new Float32Array(0), new Float32Array(0), beta, c!,
        { count: 2, strideA: 0, strideB: 0, strideC: 12 }));
  }
  const e = new Float32Array(0);
  nat.gemm(false, false, 0, 5, 3, 1, e, new Float32Array(15), 0, e);
  nat.softmax(e, e, 0, 7);
  nat.layerNorm(e, null, null, e, e, e, 0, 16, 1e-5);
  nat.maskedSoftmax(e, e, 0, 2, 3, 4, null, 0, 0, true, 0, false);
  nat.crossEntropy(e, new Int32Array(0), 0, 10, -100, e, e);
  nat.rope(e, e, 0, 3, 2, 4, new Int32Array(0), 1e4, false);
  assert.equal(nat.sumSquares(e, 0), 0);
});

// ------------------------------------------------------------------ softmax family
const ROW_SHAPES: Array<[number, number]> = [[1, 1], [7, 13], [33, 129], [5, 1000], [300, 515]];

test('softmax / logSoftmax and their backward, including in place', { skip }, () => {
  for (const [rows, cols] of ROW_SHAPES) {
    const x = randn(rows * cols, 6);
    agree(`softmax ${rows}x${cols}`, [view(rows * cols)], (k, [o]) => k.softmax(x, o!, rows, cols));
    agree(`softmax in place ${rows}x${cols}`, [copy(x)], (k, [o]) => k.softmax(o!, o!, rows, cols));
    agree(`logSoftmax ${rows}x${cols}`, [view(rows * cols)], (k, [o]) => k.logSoftmax(x, o!, rows, cols), 1e-5, 2e-6);
    agree(`logSoftmax in place ${rows}x${cols}`, [copy(x)], (k, [o]) => k.logSoftmax(o!, o!, rows, cols), 1e-5, 2e-6);

    const y = new Float32Array(rows * cols);
    ts.softmax(x, y, rows, cols);
    const dy = randn(rows * cols);
    agree(`softmaxBackward ${rows}x${cols}`, [view(rows * cols)], (k, [dx]) => k.softmaxBackward(y, dy, dx!, rows, cols));
    const ly = new Float32Array(rows * cols);
    ts.logSoftmax(x, ly, rows, cols);
    agree(`logSoftmaxBackward ${rows}x${cols}`, [view(rows * cols)], (k, [dx]) =>
      k.logSoftmaxBackward(ly, dy, dx!, rows, cols), 1e-5, 2e-6);
  }
});

test('maskedSoftmax: masks (full, key padding, shared), fully masked rows, causal offsets', { skip }, () => {
  for (const [batch, heads, lq, lk] of [[2, 3, 5, 19], [2, 2, 9, 67], [1, 4, 3, 8], [3, 2, 40, 300]] as const) {
    const n = batch * heads * lq * lk;
    const x = randn(n, 5);
    const dy = randn(n);
    // Mask variants: [mask, maskBatchStride, maskQStride, label]
    const full = new Uint8Array(batch * lq * lk).map(() => (rand() < 0.7 ? 1 : 0));
    full.fill(0, lk, 2 * lk); // query 1 of batch 0 sees nothing
    const keyPad = new Uint8Array(batch * lk).map(() => (rand() < 0.8 ? 1 : 0));
    keyPad.fill(0, (batch - 1) * lk, batch * lk); // the last batch row is entirely padding
    const shared = new Uint8Array(3 + lq * lk).map(() => (rand() < 0.6 ? 1 : 0)).subarray(3);
    const masks: Array<[Uint8Array | null, number, number, string]> = [
      [null, 0, 0, 'none'],
      [full, lq * lk, lk, 'full'],
      [keyPad, lk, 0, 'key-padding'],
      [shared, 0, lk, 'shared'],
    ];
    for (const [mask, mbs, mqs, mlabel] of masks) {
      for (const [causal, off] of [[false, 0], [true, 0], [true, -2], [true, 3], [true, lk - lq]] as const) {
        for (const uniform of [false, true]) {
          const label = `maskedSoftmax ${batch}x${heads}x${lq}x${lk} mask=${mlabel} causal=${causal}/${off} uniform=${uniform}`;
          agree(label, [view(n)], (k, [o]) =>
            k.maskedSoftmax(x, o!, batch, heads, lq, lk, mask, mbs, mqs, causal, off, uniform));
          agree(`${label} in place`, [copy(x)], (k, [o]) =>
            k.maskedSoftmax(o!, o!, batch, heads, lq, lk, mask, mbs, mqs, causal, off, uniform));
          const y = new Float32Array(n);
          ts.maskedSoftmax(x, y, batch, heads, lq, lk, mask, mbs, mqs, causal, off, uniform);
          agree(`${label} backward`, [view(n)], (k, [dx]) =>
            k.maskedSoftmaxBackward(y, dy, dx!, batch, heads, lq, lk, mask, mbs, mqs, causal, off));
        }
      }
    }
  }
});

test('alibiBias and its slopes gradient, including negative query offsets', { skip }, () => {
  for (const [batch, heads, lq, lk] of [[2, 3, 5, 19], [1, 16, 1, 300], [3, 2, 40, 67]] as const) {
    const n = batch * heads * lq * lk;
    const x = randn(n, 5);
    const slopes = randn(heads);
    const dy = randn(n);
    for (const off of [0, lk - lq, -2]) {
      agree(`alibiBias ${batch}x${heads}x${lq}x${lk} off=${off}`, [copy(x)], (k, [o]) => k.alibiBias(o!, batch, heads, lq, lk, slopes, off), 1e-5, 1e-5);
      agree(`alibiBiasBackward ${batch}x${heads}x${lq}x${lk} off=${off}`, [randn(heads)], (k, [ds]) =>
        k.alibiBiasBackward(dy, batch, heads, lq, lk, off, ds!), 1e-4, 1e-4);
    }
  }
});

test('maskedSoftmax: fully masked rows are zeros or uniform, masked entries exactly 0', { skip }, () => {
  const lk = 11;
  const x = randn(2 * lk);
  const mask = new Uint8Array(2 * lk);
  mask[3] = 1; // row 0 sees key 3 only; row 1 sees nothing
  for (const uniform of [false, true]) {
    const out = view(2 * lk);
    nat.maskedSoftmax(x, out, 1, 1, 2, lk, mask, 0, lk, false, 0, uniform);
    for (let j = 0; j < lk; j++) {
      assert.equal(out[j], j === 3 ? 1 : 0);
      assert.equal(out[lk + j], uniform ? Math.fround(1 / lk) : 0);
    }
    const dx = view(2 * lk);
    nat.maskedSoftmaxBackward(out, randn(2 * lk), dx, 1, 1, 2, lk, mask, 0, lk, false, 0);
    for (let j = 0; j < 2 * lk; j++) assert.equal(dx[j], 0, `dx[${j}]`);
  }
});

// ------------------------------------------------------------------ norms
test('layerNorm forward/backward with optional weight/bias, dw/db accumulated', { skip }, () => {
  for (const [rows, cols] of [[1, 1], [3, 7], [17, 64], [9, 333], [200, 333]] as const) {
    const x = randn(rows * cols, 3);
    for (const affine of [true, false]) {
      const w = affine ? randn(cols) : null;
      const b = affine ? randn(cols) : null;
      agree(`layerNorm ${rows}x${cols} affine=${affine}`, [view(rows * cols), view(rows), view(rows)],
        (k, [o, mean, rstd]) => k.layerNorm(x, w, b, o!, mean!, rstd!, rows, cols, 1e-5), 1e-5, 5e-6);
      const mean = new Float32Array(rows), rstd = new Float32Array(rows), tmp = new Float32Array(rows * cols);
      ts.layerNorm(x, w, b, tmp, mean, rstd, rows, cols, 1e-5);
      const dy = randn(rows * cols);
      agree(`layerNormBackward ${rows}x${cols} affine=${affine}`, [view(rows * cols), randn(cols), randn(cols)],
        (k, [dx, dw, db]) => k.layerNormBackward(x, w, mean, rstd, dy, dx!, affine ? dw! : null, affine ? db! : null,
          rows, cols), 1e-4, 1e-5);
    }
  }
});

test('rmsNorm forward/backward, dw accumulated', { skip }, () => {
  for (const [rows, cols] of [[1, 1], [3, 7], [17, 64], [200, 333]] as const) {
    const x = randn(rows * cols, 3);
    for (const affine of [true, false]) {
      const w = affine ? randn(cols) : null;
      agree(`rmsNorm ${rows}x${cols}`, [view(rows * cols), view(rows)],
        (k, [o, rstd]) => k.rmsNorm(x, w, o!, rstd!, rows, cols, 1e-6), 1e-5, 5e-6);
      const rstd = new Float32Array(rows), tmp = new Float32Array(rows * cols);
      ts.rmsNorm(x, w, tmp, rstd, rows, cols, 1e-6);
      const dy = randn(rows * cols);
      agree(`rmsNormBackward ${rows}x${cols} affine=${affine}`, [view(rows * cols), randn(cols)],
        (k, [dx, dw]) => k.rmsNormBackward(x, w, rstd, dy, dx!, affine ? dw! : null, rows, cols), 1e-4, 1e-5);
    }
  }
});

// ------------------------------------------------------------------ elementwise
const ACTS: Activation[] = ['gelu', 'gelu_tanh', 'quick_gelu', 'silu', 'tanh', 'relu', 'sigmoid'];

test('activations and their gradients, all kinds, including in place and tails', { skip }, () => {
  const specials = [0, -0, 1e-4, -1e-4, 0.29, 0.31, -0.3, 5, -5, 12, -12, 30, -30, 88, -88, 100, -100];
  for (const n of [1, 7, 1001, 70001]) {
    const x = view(n, (i) => (i < specials.length ? specials[i]! : (rand() * 2 - 1) * 8));
    const dy = randn(n);
    for (const kind of ACTS) {
      agree(`activation ${kind} n=${n}`, [view(n)], (k, [o]) => k.activation(kind, x, o!, n), 2e-5, 1e-6);
      agree(`activation ${kind} in place n=${n}`, [copy(x)], (k, [o]) => k.activation(kind, o!, o!, n), 2e-5, 1e-6);
      agree(`activationBackward ${kind} n=${n}`, [view(n)], (k, [dx]) => k.activationBackward(kind, x, dy, dx!, n),
        2e-5, 1e-6);
    }
  }
});

test('swiglu forward/backward, in place', { skip }, () => {
  for (const n of [1, 9, 1003, 50001]) {
    const g = randn(n, 6), u = randn(n, 2), dy = randn(n);
    agree(`swiglu n=${n}`, [view(n)], (k, [o]) => k.swiglu(g, u, o!, n), 2e-5, 1e-6);
    agree(`swiglu in place n=${n}`, [copy(u)], (k, [o]) => k.swiglu(g, o!, o!, n), 2e-5, 1e-6);
    agree(`swigluBackward n=${n}`, [view(n), view(n)], (k, [dg, du]) => k.swigluBackward(g, u, dy, dg!, du!, n),
      2e-5, 1e-6);
  }
});

test('crossEntropy forward/backward with ignored rows', { skip }, () => {
  for (const [rows, cols] of [[1, 1], [5, 3], [37, 101], [64, 4096]] as const) {
    const logits = randn(rows * cols, 8);
    const targets = new Int32Array(rows).map(() => Math.floor(rand() * cols));
    if (rows > 2) targets[1] = -100;
    if (rows > 4) targets[rows - 1] = -100;
    agree(`crossEntropy ${rows}x${cols}`, [view(rows), view(rows)], (k, [losses, lse]) =>
      k.crossEntropy(logits, targets, rows, cols, -100, losses!, lse!), 1e-5, 2e-6);
    const losses = new Float32Array(rows), lse = new Float32Array(rows);
    ts.crossEntropy(logits, targets, rows, cols, -100, losses, lse);
    agree(`crossEntropyBackward ${rows}x${cols}`, [view(rows * cols)], (k, [d]) =>
      k.crossEntropyBackward(logits, targets, lse, rows, cols, -100, 1 / rows, d!), 1e-5, 1e-7);
  }
});

test('rope forward/inverse, large positions, in place; inverse undoes forward', { skip }, () => {
  for (const [batch, seq, heads, dim] of [[1, 1, 1, 2], [2, 5, 3, 10], [2, 7, 4, 40], [1, 300, 8, 64]] as const) {
    const n = batch * seq * heads * dim;
    const x = randn(n);
    const positions = new Int32Array(batch * seq).map((_, i) => (i % 3 === 0 ? i : Math.floor(rand() * 5000)));
    if (batch * seq > 3) positions[3] = 100000; // beyond the cached table
    for (const inverse of [false, true]) {
      agree(`rope ${batch}x${seq}x${heads}x${dim} inverse=${inverse}`, [view(n)], (k, [o]) =>
        k.rope(x, o!, batch, seq, heads, dim, positions, 10000, inverse), 1e-5, 2e-6);
      agree(`rope in place inverse=${inverse}`, [copy(x)], (k, [o]) =>
        k.rope(o!, o!, batch, seq, heads, dim, positions, 500000, inverse), 1e-5, 2e-6);
    }
    const y = view(n), back = view(n);
    nat.rope(x, y, batch, seq, heads, dim, positions, 10000, false);
    nat.rope(y, back, batch, seq, heads, dim, positions, 10000, true);
    close(back, x, 'rope roundtrip', 1e-5, 1e-6);
  }
});

test('adamw matches the oracle on param, m and v', { skip }, () => {
  for (const n of [1, 13, 1003, 100003]) {
    const p = randn(n), g = randn(n, 0.1), m = randn(n, 0.01), v = view(n, () => rand() * 1e-3);
    for (const step of [1, 7]) {
      agree(`adamw n=${n} step=${step}`, [p, m, v], (k, [pp, mm, vv]) =>
        k.adamw(pp!, g, mm!, vv!, n, 1e-3, 0.9, 0.999, 1e-8, 0.1, step), 1e-5, 1e-7);
    }
  }
});

test('axpy, mul, add (in place too) and sumSquares', { skip }, () => {
  for (const n of [0, 1, 15, 1003, 100003]) {
    const a = randn(n), b = randn(n);
    agree(`axpy n=${n}`, [b], (k, [y]) => k.axpy(-0.75, a, y!, n));
    agree(`mul n=${n}`, [view(n)], (k, [o]) => k.mul(a, b, o!, n));
    agree(`mul in place n=${n}`, [copy(a)], (k, [o]) => k.mul(o!, b, o!, n));
    agree(`add n=${n}`, [view(n)], (k, [o]) => k.add(a, b, o!, n));
    agree(`add in place n=${n}`, [copy(b)], (k, [o]) => k.add(a, o!, o!, n));
    const s1 = nat.sumSquares(a, n), s2 = ts.sumSquares(a, n);
    assert.ok(Math.abs(s1 - s2) <= 1e-12 * Math.max(1, s2), `sumSquares n=${n}: ${s1} vs ${s2}`);
  }
});

// ------------------------------------------------------------------ argument checks
test('bad sizes throw NativeKernelArgumentError naming the kernel instead of reading out of bounds', { skip }, () => {
  const small = new Float32Array(10);
  const expectArgError = (fn: () => void, kernel: string): void => {
    assert.throws(fn, (err: unknown) =>
      err instanceof NativeKernelArgumentError && err.message.includes(kernel), `${kernel} should throw`);
  };
  expectArgError(() => nat.gemm(false, false, 4, 4, 4, 1, small, new Float32Array(16), 0, new Float32Array(16)), 'gemm');
  expectArgError(() => nat.gemm(false, false, 2, 2, 2, 1, new Float32Array(4), new Float32Array(4), 0,
    new Float32Array(8), { count: 3, strideA: 0, strideB: 0, strideC: 4 }), 'gemm');
  const f16 = new Float32Array(16);
  // a leading dimension shorter than its row, and a buffer too short for (rows − 1)·ld + row
  expectArgError(() => loadNativeAddon().gemmLd(false, false, 4, 4, 4, 1, f16, 3, f16, 4, 0, f16, 4), 'gemmLd');
  expectArgError(() => loadNativeAddon().gemmLd(true, false, 4, 4, 4, 1, f16, 5, f16, 4, 0, f16, 4), 'gemmLd');
  expectArgError(() => nat.softmax(small, small, 3, 4), 'softmax');
  expectArgError(() => nat.maskedSoftmax(new Float32Array(24), new Float32Array(24), 2, 1, 3, 4,
    new Uint8Array(11), 6, 2, false, 0, false), 'maskedSoftmax');
  expectArgError(() => nat.layerNorm(small, new Float32Array(3), null, small, new Float32Array(2),
    new Float32Array(2), 2, 5, 1e-5), 'layerNorm');
  expectArgError(() => nat.rope(new Float32Array(6), new Float32Array(6), 1, 1, 2, 3, new Int32Array(1), 1e4, false),
    'rope');
  expectArgError(() => nat.crossEntropy(small, new Int32Array(1), 2, 5, -100, new Float32Array(2),
    new Float32Array(2)), 'crossEntropy');
  expectArgError(() => nat.adamw(small, small, small, small, 11, 1e-3, 0.9, 0.999, 1e-8, 0, 1), 'adamw');
  expectArgError(() => nat.softmax(new Float64Array(12) as unknown as Float32Array, small, 1, 1), 'softmax');
  expectArgError(() => nat.softmax(small, small, -1, 2), 'softmax');
  expectArgError(() => nat.softmax(small, small, 1.5, 2), 'softmax');
  expectArgError(() => nat.softmax(small, small, NaN, 2), 'softmax');
  expectArgError(() => nat.gemm(false, false, 2 ** 40, 2 ** 40, 2 ** 40, 1, small, small, 0, small), 'gemm');
  expectArgError(() => nat.axpy(1, small, small, 2 ** 53), 'axpy');
  expectArgError(() => nat.activation('swish' as Activation, small, small, 10), 'activation');
  expectArgError(() => nat.packedLinear(small, { kind: 'bf16', rows: 4, cols: 4, bits: new Uint16Array(15) }, small, 1, 0),
    'packedLinear');
  expectArgError(() => nat.packedLinear(new Float32Array(4), { kind: 'int8', rows: 2, cols: 4, qs: new Int8Array(8),
    scales: new Float32Array(1) }, small, 1, 0), 'packedLinear');
  expectArgError(() => nat.packedLinear(new Float32Array(4), { kind: 'bf16', rows: 2, cols: 4, bits: new Uint16Array(8) },
    small, 1, 0.5), 'packedLinear');
});

test('backend description names the GEMM library and thread count', { skip }, () => {
  assert.equal(nat.name, 'native');
  assert.match(nat.description, /^native \((OpenBLAS|built-in GEMM)[^,]*, \d+ threads/);
});

test('the addon keeps freed memory in the process (glibc) and says so in info() and the description', { skip }, () => {
  const heap = loadNativeAddon().info().heap;
  assert.ok(typeof heap === 'string' && heap.length > 0);
  if (process.report.getReport && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime) {
    assert.match(heap, /^freed memory kept/);
  }
  assert.ok(nat.description.includes(heap), nat.description);
});

// ------------------------------------------------------------------ backend selection
/** Runs getKernels() in a fresh process (the choice is once per process) and returns its output. */
function selectIn(env: Record<string, string | undefined>): { status: number | null; stdout: string; stderr: string } {
  const index = fileURLToPath(new URL('../src/engine/kernels/index.ts', import.meta.url));
  const code = `const m = await import(${JSON.stringify(index)}); const k = m.getKernels(); m.getKernels(); ` +
    'process.stdout.write(k.name);';
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    env: { ...process.env, ...env }, encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('getKernels: env override, default choice, one log line, bad values rejected', () => {
  const forcedTs = selectIn({ FLAMINGO_KERNELS: 'typescript' });
  assert.equal(forcedTs.stdout, 'typescript');
  assert.equal(forcedTs.stderr.match(/flamingo-ts: kernels = /g)?.length, 1, forcedTs.stderr);
  assert.match(forcedTs.stderr, /forced by FLAMINGO_KERNELS/);

  const dflt = selectIn({ FLAMINGO_KERNELS: undefined });
  assert.equal(dflt.stdout, maybeNative ? 'native' : 'typescript');
  assert.equal(dflt.stderr.match(/flamingo-ts: kernels = /g)?.length, 1, dflt.stderr);
  if (!maybeNative) assert.match(dflt.stderr, /native addon unavailable/);

  const forcedNative = selectIn({ FLAMINGO_KERNELS: 'native' });
  if (maybeNative) assert.equal(forcedNative.stdout, 'native');
  else assert.notEqual(forcedNative.status, 0, 'forcing an unavailable native backend must fail');

  const bogus = selectIn({ FLAMINGO_KERNELS: 'gpu' });
  assert.notEqual(bogus.status, 0);
  assert.match(bogus.stderr, /FLAMINGO_KERNELS must be 'native' or 'typescript', got 'gpu'/);
});

test('swapMiddleAxes (the head split/merge copy) agrees with the TypeScript kernel', { skip }, () => {
  for (const [B, A, C, D] of [[1, 1, 1, 1], [2, 3, 5, 7], [4, 65, 3, 64], [3, 8, 128, 32], [1, 0, 4, 2]] as const) {
    const x = randn(B * A * C * D);
    agree(`swapMiddleAxes ${B}x${A}x${C}x${D}`, [view(B * A * C * D, () => NaN)], (k, [o]) => k.swapMiddleAxes(x, o!, B, A, C, D), 0, 0);
  }
  assert.throws(() => nat.swapMiddleAxes(new Float32Array(5), new Float32Array(6), 1, 2, 3, 1),
    (err: unknown) => err instanceof NativeKernelArgumentError && err.message.includes('swapMiddleAxes'));
});

test('poolStats counts jobs handed to the pool (a large product) and not a tiny kernel call', { skip }, () => {
  const a = loadNativeAddon();
  assert.equal(typeof a.poolStats, 'function');
  const n = 512;
  const x = new Float32Array(n * n).fill(0.5);
  const c = new Float32Array(n * n);
  const s0 = a.poolStats!();
  nat.add(x.subarray(0, 8), x.subarray(0, 8), c.subarray(0, 8), 8); // one chunk: no job
  const s1 = a.poolStats!();
  assert.equal(s1.dispatched, s0.dispatched);
  nat.gemm(false, false, n, n, n, 1, x, x, 0, c);
  const s2 = a.poolStats!();
  if (a.info().threads > 1) assert.ok(s2.dispatched > s1.dispatched, `dispatched ${s1.dispatched} → ${s2.dispatched}`);
  assert.ok(s2.dispatched + s2.inline >= s1.dispatched + s1.inline);
});
