/**
 * Engine kernel bench: `npm run bench -- engine [--json] [--quick]`.
 *
 * - gemm_gflops: n×n×n sgemm through `Kernels.gemm` called from TypeScript (the engine's path).
 * - gemm_direct_blas_gflops: the same product on the same buffers, timed inside C++ calling
 *   OpenBLAS directly (the ceiling the engine path is compared with).
 * - attention_fwd_bwd_ms: scores GEMM + causal maskedSoftmax + PV GEMM and their backward.
 * - softmax / layernorm throughput for the native and TypeScript kernels.
 * - interference: GEMM time right after fused kernels (and vice versa) vs on its own, to check
 *   that our thread pool and OpenBLAS's do not starve each other.
 * Timings are the best of several rounds (the machine is shared; the minimum is the least noisy).
 */
import { getKernels, getTsKernels, tryNativeKernels } from '../src/engine/kernels/index.ts';
import { loadNativeAddon } from '../src/engine/kernels/native.ts';
import type { Kernels } from '../src/engine/kernels/types.ts';

function randn(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

const now = (): number => performance.now();

/** Best (minimum) wall time in ms of `fn` over `rounds` rounds, after one warm-up call. */
function best(rounds: number, fn: () => void): number {
  fn();
  let b = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    fn();
    b = Math.min(b, now() - t0);
  }
  return b;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface GemmResult { engine: number; direct: number | null; pairedRatio: number | null }

function benchGemm(k: Kernels, n: number, iters: number, rounds: number): GemmResult {
  const a = randn(n * n, 1), b = randn(n * n, 2), c = new Float32Array(n * n);
  const flops = 2 * n * n * n * iters;
  const addon = k.name === 'native' ? loadNativeAddon() : null;
  // Alternate engine and direct rounds so both see the same machine load; besides the best
  // round of each, report the median of per-round ratios (robust when the load drifts).
  let engineMs = Infinity, directMs = Infinity;
  const ratios: number[] = [];
  k.gemm(false, false, n, n, n, 1, a, b, 0, c);
  addon?.benchDirectGemm(n, 1, a, b, c);
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    for (let i = 0; i < iters; i++) k.gemm(false, false, n, n, n, 1, a, b, 0, c);
    const e = now() - t0;
    engineMs = Math.min(engineMs, e);
    if (addon) {
      const d = addon.benchDirectGemm(n, iters, a, b, c) * 1000;
      directMs = Math.min(directMs, d);
      ratios.push(d / e);
    }
  }
  return {
    engine: flops / engineMs / 1e6,
    direct: addon ? flops / directMs / 1e6 : null,
    pairedRatio: addon ? median(ratios) : null,
  };
}

interface AttentionShape { B: number; H: number; L: number; D: number }

function benchAttention(k: Kernels, s: AttentionShape, reps: number): number {
  const { B, H, L, D } = s;
  const bh = B * H;
  const q = randn(bh * L * D, 3), kk = randn(bh * L * D, 4), v = randn(bh * L * D, 5), dout = randn(bh * L * D, 6);
  const scores = new Float32Array(bh * L * L), p = new Float32Array(bh * L * L), dp = new Float32Array(bh * L * L);
  const o = new Float32Array(bh * L * D), dq = new Float32Array(bh * L * D);
  const dk = new Float32Array(bh * L * D), dv = new Float32Array(bh * L * D);
  const scale = 1 / Math.sqrt(D);
  const mat = { count: bh, strideA: L * D, strideB: L * D, strideC: L * L };
  const pv = { count: bh, strideA: L * L, strideB: L * D, strideC: L * D };
  const step = (): void => {
    // forward: S = scale·Q Kᵀ, P = softmax_causal(S), O = P V
    k.gemm(false, true, L, L, D, scale, q, kk, 0, scores, mat);
    k.maskedSoftmax(scores, p, B, H, L, L, null, 0, 0, true, 0, false);
    k.gemm(false, false, L, D, L, 1, p, v, 0, o, pv);
    // backward: dP = dO Vᵀ, dV = Pᵀ dO, dS = softmax'(P, dP), dQ = scale·dS K, dK = scale·dSᵀ Q
    k.gemm(false, true, L, L, D, 1, dout, v, 0, dp, { count: bh, strideA: L * D, strideB: L * D, strideC: L * L });
    k.gemm(true, false, L, D, L, 1, p, dout, 0, dv, pv);
    k.maskedSoftmaxBackward(p, dp, dp, B, H, L, L, null, 0, 0, true, 0);
    k.gemm(false, false, L, D, L, scale, dp, kk, 0, dq, pv);
    k.gemm(true, false, L, D, L, scale, dp, q, 0, dk, pv);
  };
  step();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = now();
    step();
    times.push(now() - t0);
  }
  return median(times);
}

function benchSoftmax(k: Kernels, rows: number, cols: number, rounds: number): number {
  const x = randn(rows * cols, 7), out = new Float32Array(rows * cols);
  const ms = best(rounds, () => k.softmax(x, out, rows, cols));
  return (rows * cols) / ms / 1e3;
}

function benchLayerNorm(k: Kernels, rows: number, cols: number, rounds: number): number {
  const x = randn(rows * cols, 8), out = new Float32Array(rows * cols);
  const w = randn(cols, 9), b = randn(cols, 10), mean = new Float32Array(rows), rstd = new Float32Array(rows);
  const ms = best(rounds, () => k.layerNorm(x, w, b, out, mean, rstd, rows, cols, 1e-5));
  return (rows * cols) / ms / 1e3;
}

/** GEMM 512 alone vs each GEMM preceded by a multithreaded fused kernel, and the reverse. */
function benchInterference(k: Kernels, rounds: number): Record<string, number> {
  const n = 512;
  const a = randn(n * n, 11), b = randn(n * n, 12), c = new Float32Array(n * n);
  const rows = 1024, cols = 512;
  const x = randn(rows * cols, 13), y = new Float32Array(rows * cols);
  const reps = 10;
  const gemmAlone = best(rounds, () => { for (let i = 0; i < reps; i++) k.gemm(false, false, n, n, n, 1, a, b, 0, c); });
  const fusedAlone = best(rounds, () => { for (let i = 0; i < reps; i++) k.softmax(x, y, rows, cols); });
  const mixed = best(rounds, () => {
    for (let i = 0; i < reps; i++) {
      k.softmax(x, y, rows, cols);
      k.gemm(false, false, n, n, n, 1, a, b, 0, c);
    }
  });
  return {
    gemm512_alone_ms: gemmAlone / reps,
    softmax_1024x512_alone_ms: fusedAlone / reps,
    mixed_pair_ms: mixed / reps,
    // 1.0 = no interference: the alternating sequence costs exactly the sum of its parts.
    mixed_over_sum: mixed / (gemmAlone + fusedAlone),
  };
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

export async function run(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const quick = args.includes('--quick');
  const chosen = getKernels();
  const { kernels: native, reason } = tryNativeKernels();
  const ts = getTsKernels();
  const k = native ?? ts;
  const rounds = quick ? 2 : 5;

  const gemm: Record<string, number> = {};
  const direct: Record<string, number> = {};
  const paired: Record<string, number> = {};
  for (const [n, iters] of [[1024, quick ? 3 : 5], [2048, quick ? 1 : 2]] as const) {
    const res = benchGemm(k, n, k.name === 'native' ? iters : 1, k.name === 'native' ? rounds * 2 : 1);
    gemm[String(n)] = r2(res.engine);
    if (res.direct !== null) direct[String(n)] = r2(res.direct);
    if (res.pairedRatio !== null) paired[String(n)] = r2(res.pairedRatio);
  }
  const attention: AttentionShape = { B: 1, H: 8, L: 512, D: 64 };
  const attentionMs = benchAttention(k, attention, quick ? 3 : 9);
  const softmaxShape = { rows: 8 * 512, cols: 512 };
  const lnShape = { rows: 4096, cols: 768 };
  const result = {
    kernel_backend: chosen.name,
    kernel_description: chosen.description,
    measured_backend: k.name,
    native_unavailable_reason: native ? null : reason,
    threads: native ? loadNativeAddon().info().threads : 1,
    blas: native ? loadNativeAddon().info().blas : null,
    gemm_gflops: gemm,
    gemm_direct_blas_gflops: native ? direct : null,
    gemm_engine_over_direct: native
      ? Object.fromEntries(Object.keys(gemm).map((n) => [n, r2(gemm[n]! / direct[n]!)]))
      : null,
    gemm_engine_over_direct_paired_median: native ? paired : null,
    attention_fwd_bwd_ms: r2(attentionMs),
    attention_shape: { ...attention, causal: true, ops: 'QKᵀ, maskedSoftmax, PV + backward (5 batched GEMMs, softmax bwd)' },
    softmax_melem_s: r2(benchSoftmax(k, softmaxShape.rows, softmaxShape.cols, rounds * 4)),
    softmax_shape: softmaxShape,
    layernorm_melem_s: r2(benchLayerNorm(k, lnShape.rows, lnShape.cols, rounds * 4)),
    layernorm_shape: lnShape,
    ts_softmax_melem_s: r2(benchSoftmax(ts, softmaxShape.rows, softmaxShape.cols, 3)),
    ts_layernorm_melem_s: r2(benchLayerNorm(ts, lnShape.rows, lnShape.cols, 3)),
    interference: native ? Object.fromEntries(Object.entries(benchInterference(native, rounds)).map(([a, v]) => [a, Math.round(v * 1000) / 1000])) : null,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const rows: Array<[string, string]> = [
    ['backend (getKernels)', result.kernel_description],
    ['measured backend', `${result.measured_backend}${result.native_unavailable_reason ? ` (${result.native_unavailable_reason})` : ''}`],
    ['threads', String(result.threads)],
  ];
  for (const n of Object.keys(gemm)) {
    const ratio = native ? ` (${result.gemm_engine_over_direct![n]}×; paired median ${paired[n]}×)` : '';
    rows.push([`gemm ${n}³ GFLOP/s`, `${gemm[n]} engine${native ? ` / ${direct[n]} direct${ratio}` : ''}`]);
  }
  rows.push(
    [`attention fwd+bwd ms (B1 H8 L512 D64, causal)`, String(result.attention_fwd_bwd_ms)],
    [`softmax Melem/s (${softmaxShape.rows}×${softmaxShape.cols})`, `${result.softmax_melem_s} (ts ${result.ts_softmax_melem_s})`],
    [`layernorm Melem/s (${lnShape.rows}×${lnShape.cols})`, `${result.layernorm_melem_s} (ts ${result.ts_layernorm_melem_s})`],
  );
  if (result.interference) {
    const f = result.interference;
    rows.push(['gemm512 / softmax / pair ms', `${f.gemm512_alone_ms} / ${f.softmax_1024x512_alone_ms} / ${f.mixed_pair_ms} (pair ÷ sum ${f.mixed_over_sum})`]);
  }
  const w = Math.max(...rows.map(([a]) => a.length));
  process.stdout.write(rows.map(([a, b]) => `${a.padEnd(w)}  ${b}`).join('\n') + '\n');
}
