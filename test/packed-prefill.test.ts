/**
 * The packed prefill path with the AVX-512 GEMM dequantises W while packing it (no float32 panel);
 * its products must be bit-identical to the same GEMM on the dequantised weight, which is what the
 * panel path computed. Shapes cover k not a multiple of 8 or 32, several K slabs (k > 192), several
 * tiles, and a two-column last tile. (A one-column tile keeps the panel route.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/engine/rng.ts';
import { tryNativeKernels } from '../src/engine/kernels/index.ts';
import { loadNativeAddon } from '../src/engine/kernels/native.ts';
import { dequantize, quantize } from '../src/engine/quant.ts';

const nat = tryNativeKernels().kernels;
const skip = nat === null || loadNativeAddon().info().gemm !== 'avx512' ? 'needs the native AVX-512 GEMM' : false;

function randn(n: number, seed: number, std = 1): Float32Array {
  const a = new Float32Array(n);
  new Rng(seed).fillNormal(a, 0, std);
  return a;
}

test('packed prefill products equal the AVX-512 GEMM on the dequantised weight exactly', { skip }, () => {
  const k = nat!;
  for (const kind of ['bf16', 'int8'] as const) {
    for (const [rows, outF, inF] of [[5, 34, 45], [9, 200, 70], [17, 129, 400], [40, 1025, 96], [128, 64, 2048]] as const) {
      const p = quantize(randn(outF * inF, outF + inF, 0.05), outF, inF, kind);
      const x = randn(rows * inF, rows);
      const want = new Float32Array(rows * outF);
      // sgemm_ld, the route the panel path took (the engine's gemm sends ≤ 8 rows elsewhere)
      loadNativeAddon().gemmLd(false, true, rows, outF, inF, 1, x, inF, dequantize(p), inF, 0, want, outF);
      const got = new Float32Array(rows * outF).fill(NaN);
      k.packedLinear(x, p, got, rows, 0);
      assert.deepEqual(got, want, `${kind} ${rows}×${inF}→${outF}`);
      const acc = randn(rows * outF, 5);
      const accWant = acc.slice();
      loadNativeAddon().gemmLd(false, true, rows, outF, inF, 1, x, inF, dequantize(p), inF, 1, accWant, outF);
      k.packedLinear(x, p, acc, rows, 1);
      assert.deepEqual(acc, accWant, `${kind} accumulate ${rows}×${inF}→${outF}`);
    }
  }
});
