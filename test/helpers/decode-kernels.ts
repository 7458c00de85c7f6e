/**
 * Checks of the native decode (matrix-vector) kernels against a float64 reference: packedLinear with
 * 1–4 rows of x over bf16 / int8 weights, and the engine's gemm with ≤ 4 rows of x · Wᵀ over float32
 * weights (which the addon routes to the same kernel). The shapes walk the kernels' edges: row groups
 * of 4 (and 2 for several x rows) with left-over rows, widths below, at and past one 32-weight block,
 * widths whose prefetch runs into the next group's rows, long rows (the MLP down projection's 5632
 * and longer) with a partial last block, and ranges split over the pool.
 *
 * Run as a script (`node --import tsx test/helpers/decode-kernels.ts`) it prints one JSON line
 * {simd, failures, checked}; quant.test.ts runs it in a child with FLAMINGO_SIMD=avx2 so the AVX2
 * kernels are checked on a machine whose default is AVX-512.
 */
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/engine/rng.ts';
import { type PackedWeight, dequantize, quantize } from '../../src/engine/quant.ts';
import type { Kernels } from '../../src/engine/kernels/types.ts';
import { tryNativeKernels } from '../../src/engine/kernels/index.ts';

/** (x rows, out, in) */
export const DECODE_SHAPES: readonly [number, number, number][] = [
  [1, 1, 1], [1, 5, 31], [2, 7, 32], [3, 9, 33], [4, 13, 64], [1, 4, 1000], [1, 9, 1024],
  [2, 11, 1056], [1, 6, 2080], [4, 5, 2049], [1, 37, 5632], [3, 21, 5649], [1, 10, 8192 + 5],
  // enough rows to be split over the pool's threads (≥ 64 KB of weights a chunk), with a ragged end
  [1, 263, 1100], [2, 130, 2048],
];

function randn(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  new Rng(seed).fillNormal(a, 0, scale);
  return a;
}

/** float64 x (rows × cols) · Wᵀ, W (outF × cols) float32 values. */
function reference(x: Float32Array, W: Float32Array, rows: number, outF: number, cols: number): Float64Array {
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += x[r * cols + j]! * W[o * cols + j]!;
      out[r * outF + o] = s;
    }
  }
  return out;
}

/** Largest |got − want| over the largest |want| (the tests' relative error). */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 1e-30;
  let err = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i]! - want[i]!);
    err = Number.isNaN(e) ? Infinity : Math.max(err, e);
  }
  return err / scale;
}

/** Failure messages (empty when every product is within `rel` of the reference) and the number of products checked. */
export function checkDecodeKernels(k: Kernels, rel = 1e-5): { failures: string[]; checked: number } {
  const failures: string[] = [];
  let checked = 0;
  const expect = (what: string, got: ArrayLike<number>, want: ArrayLike<number>): void => {
    checked++;
    const e = relErr(got, want);
    if (!(e <= rel)) failures.push(`${what}: relative error ${e}`);
  };
  for (const [rows, outF, inF] of DECODE_SHAPES) {
    const W = randn(outF * inF, outF * 7 + inF, 0.05);
    const x = randn(rows * inF, rows + inF);
    const bias = randn(rows * outF, 3);
    const label = `${rows}×${inF}→${outF}`;
    for (const kind of ['bf16', 'int8'] as const) {
      const p: PackedWeight = quantize(W, outF, inF, kind);
      const want = reference(x, dequantize(p), rows, outF, inF);
      const out = new Float32Array(rows * outF).fill(NaN); // beta = 0 ignores old contents
      k.packedLinear(x, p, out, rows, 0);
      expect(`${kind} ${label}`, out, want);
      const acc = bias.slice();
      k.packedLinear(x, p, acc, rows, 1);
      expect(`${kind} ${label} accumulate`, acc, want.map((v, i) => v + bias[i]!));
    }
    // float32 weights: x · Wᵀ with ≤ 4 rows goes to the same streaming kernel (past 32³ multiply-adds)
    const want = reference(x, W, rows, outF, inF);
    const out = new Float32Array(rows * outF).fill(NaN);
    k.gemm(false, true, rows, outF, inF, 1, x, W, 0, out);
    expect(`fp32 ${label}`, out, want);
    const acc = bias.slice();
    k.gemm(false, true, rows, outF, inF, 1, x, W, 1, acc);
    expect(`fp32 ${label} accumulate`, acc, want.map((v, i) => v + bias[i]!));
  }
  return { failures, checked };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { kernels, reason } = tryNativeKernels();
  if (!kernels) {
    process.stdout.write(JSON.stringify({ error: `native addon unavailable: ${reason}` }) + '\n');
    process.exit(2);
  }
  const r = checkDecodeKernels(kernels);
  process.stdout.write(JSON.stringify({ simd: kernels.description, ...r }) + '\n');
}
