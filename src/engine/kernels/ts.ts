/**
 * Pure-TypeScript kernels: the portable implementation of `Kernels` and the oracle the native
 * addon is tested against. Correctness first: reductions accumulate in float64 (JS numbers),
 * transcendental functions are evaluated in float64 and rounded once on store.
 *
 * Hot loops live in top-level functions, one file per kernel family under `ts/` (monomorphic, no
 * allocation); this object only dispatches and owns the scratch buffers of its instance. Argument
 * checks come from the signature table (`ts-checks.gen.ts`), the same checks as the native binding's.
 */
import type { Kernels, KernelMethods } from './types.ts';
import { withTsChecks } from './ts-checks.gen.ts';
import { activationBackwardImpl, activationImpl, swigluBackwardImpl, swigluImpl } from './ts/activation.ts';
import {
  alibiBiasBackwardImpl, alibiBiasImpl, maskedSoftmaxBackwardImpl, maskedSoftmaxImpl, ropeImpl, swapMiddleAxesImpl,
} from './ts/attention.ts';
import { addImpl, adamwImpl, axpyImpl, mulImpl, sumSquaresImpl } from './ts/elementwise.ts';
import {
  gemmOne, newGemmScratch, packedLinearBackwardImpl, packedLinearImpl, quantizeBf16Impl, quantizeInt8Impl,
} from './ts/gemm.ts';
import { layerNormBackwardImpl, layerNormImpl, rmsNormBackwardImpl, rmsNormImpl } from './ts/norm.ts';
import {
  crossEntropyBackwardImpl, crossEntropyImpl, logSoftmaxBackwardRows, logSoftmaxRows, softmaxBackwardRows, softmaxRows,
} from './ts/softmax.ts';

export function createTsKernels(): Kernels {
  const gemmScratch = newGemmScratch();
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

  const methods: KernelMethods = {
    gemm(transA, transB, m, n, k, alpha, a, b, beta, c, batch) {
      const count = batch ? batch.count : 1;
      const sA = batch ? batch.strideA : 0;
      const sB = batch ? batch.strideB : 0;
      const sC = batch ? batch.strideC : m * n;
      for (let i = 0; i < count; i++) {
        gemmOne(transA, transB, m, n, k, alpha, a, i * sA, b, i * sB, beta, c, i * sC, gemmScratch);
      }
    },

    softmax: softmaxRows,
    softmaxBackward: softmaxBackwardRows,
    logSoftmax: logSoftmaxRows,
    logSoftmaxBackward: logSoftmaxBackwardRows,
    maskedSoftmax: maskedSoftmaxImpl,
    maskedSoftmaxBackward: maskedSoftmaxBackwardImpl,
    alibiBias: alibiBiasImpl,
    alibiBiasBackward: alibiBiasBackwardImpl,

    layerNorm: layerNormImpl,
    layerNormBackward(x, w, mean, rstd, dy, dx, dw, db, rows, cols) {
      const [aw, ab] = accumulators(cols);
      layerNormBackwardImpl(x, w, mean, rstd, dy, dx, dw !== null ? aw : null, db !== null ? ab : null, rows, cols);
      if (dw !== null) flush(aw, dw, cols);
      if (db !== null) flush(ab, db, cols);
    },
    rmsNorm: rmsNormImpl,
    rmsNormBackward(x, w, rstd, dy, dx, dw, rows, cols) {
      const [aw] = accumulators(cols);
      rmsNormBackwardImpl(x, w, rstd, dy, dx, dw !== null ? aw : null, rows, cols);
      if (dw !== null) flush(aw, dw, cols);
    },

    activation: activationImpl,
    activationBackward: activationBackwardImpl,
    swiglu: swigluImpl,
    swigluBackward: swigluBackwardImpl,
    crossEntropy: crossEntropyImpl,
    crossEntropyBackward: crossEntropyBackwardImpl,

    rope(x, out, batch, seq, heads, dim, positions, theta, inverse) {
      const half = dim / 2;
      if (ropeInvFreq.length < half) {
        ropeInvFreq = new Float64Array(half);
        ropeCos = new Float32Array(half);
        ropeSin = new Float32Array(half);
      }
      ropeImpl(x, out, batch, seq, heads, dim, positions, theta, inverse, ropeInvFreq, ropeCos, ropeSin);
    },

    adamw: adamwImpl,
    swapMiddleAxes: swapMiddleAxesImpl,
    axpy: axpyImpl,
    mul: mulImpl,
    add: addImpl,
    packedLinear: packedLinearImpl,
    packedLinearBackward: packedLinearBackwardImpl,
    quantizeBf16: quantizeBf16Impl,
    quantizeInt8: quantizeInt8Impl,
    sumSquares: sumSquaresImpl,
  };

  return {
    name: 'typescript',
    description: 'typescript (pure JS, single thread, float64 accumulation)',
    ...withTsChecks(methods),
  };
}
