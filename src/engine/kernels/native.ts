/**
 * Native kernels: the C++ addon in `native/` (N-API, OpenBLAS sgemm when available at build
 * time, AVX2 fused kernels, a small blocking thread pool). Buffers cross the boundary as
 * TypedArray views — never copied; byteOffset is honoured by the addon.
 *
 * Argument checking lives in the addon itself: it already has every buffer's length in hand,
 * so checking there is free, and a wrong length throws a `NativeKernelArgumentError` naming the
 * kernel and the sizes instead of reading out of bounds.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Activation, GemmBatch, Kernels } from './types.ts';
import type { PackedWeight } from '../quant.ts';
import { FlamingoError } from '../../errors.ts';

/** The addon could not be loaded (not built, wrong platform, missing libopenblas …). */
export class NativeKernelsUnavailableError extends FlamingoError {
  constructor(readonly reason: string, options?: { cause?: unknown }) {
    super(`flamingo-ts native kernels unavailable: ${reason}`, options);
  }
}

/** A native kernel was called with sizes its buffers cannot hold, or with a wrong argument type. */
export class NativeKernelArgumentError extends FlamingoError {
  readonly code = 'ERR_FLAMINGO_KERNEL_ARGS';
  constructor(message: string) {
    super(message);
  }
}

export interface NativeInfo {
  /** e.g. "OpenBLAS 0.3.21 Haswell" or "built-in GEMM (avx2+fma)". */
  blas: string;
  hasBlas: boolean;
  /** "avx2+fma" or "scalar". */
  simd: string;
  /** Threads of the addon's pool (including the caller). */
  threads: number;
  blasThreads: number;
}

type F32 = Float32Array;
type GemmFn = (
  transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: F32, b: F32,
  beta: number, c: F32, count: number, strideA: number, strideB: number, strideC: number,
) => void;

/** The raw addon exports (positional arguments, batch flattened). Used by benches and tests. */
export interface NativeAddon {
  gemm: GemmFn;
  /** Always the built-in blocked GEMM, even when OpenBLAS is linked (tests the fallback path). */
  gemmBuiltin: GemmFn;
  /** Always the direct small-matrix kernel. */
  gemmSmall: GemmFn;
  softmax(x: F32, out: F32, rows: number, cols: number): void;
  softmaxBackward(y: F32, dy: F32, dx: F32, rows: number, cols: number): void;
  logSoftmax(x: F32, out: F32, rows: number, cols: number): void;
  logSoftmaxBackward(y: F32, dy: F32, dx: F32, rows: number, cols: number): void;
  maskedSoftmax(
    x: F32, out: F32, batch: number, heads: number, lq: number, lk: number, mask: Uint8Array | null,
    maskBatchStride: number, maskQStride: number, causal: boolean, causalOffset: number, uniform: boolean,
  ): void;
  maskedSoftmaxBackward(
    y: F32, dy: F32, dx: F32, batch: number, heads: number, lq: number, lk: number, mask: Uint8Array | null,
    maskBatchStride: number, maskQStride: number, causal: boolean, causalOffset: number,
  ): void;
  /** Added after the first release of the addon: absent from an addon built before it. */
  alibiBias?(x: F32, batch: number, heads: number, lq: number, lk: number, slopes: F32, qOffset: number): void;
  alibiBiasBackward?(dx: F32, batch: number, heads: number, lq: number, lk: number, qOffset: number, dslopes: F32): void;
  layerNorm(
    x: F32, w: F32 | null, b: F32 | null, out: F32, mean: F32, rstd: F32, rows: number, cols: number, eps: number,
  ): void;
  layerNormBackward(
    x: F32, w: F32 | null, mean: F32, rstd: F32, dy: F32, dx: F32, dw: F32 | null, db: F32 | null,
    rows: number, cols: number,
  ): void;
  rmsNorm(x: F32, w: F32 | null, out: F32, rstd: F32, rows: number, cols: number, eps: number): void;
  rmsNormBackward(
    x: F32, w: F32 | null, rstd: F32, dy: F32, dx: F32, dw: F32 | null, rows: number, cols: number,
  ): void;
  activation(kind: number, x: F32, out: F32, n: number): void;
  activationBackward(kind: number, x: F32, dy: F32, dx: F32, n: number): void;
  swiglu(gate: F32, up: F32, out: F32, n: number): void;
  swigluBackward(gate: F32, up: F32, dy: F32, dgate: F32, dup: F32, n: number): void;
  crossEntropy(
    logits: F32, targets: Int32Array, rows: number, cols: number, ignoreIndex: number, losses: F32, lse: F32,
  ): void;
  crossEntropyBackward(
    logits: F32, targets: Int32Array, lse: F32, rows: number, cols: number, ignoreIndex: number, scale: number,
    dlogits: F32,
  ): void;
  rope(
    x: F32, out: F32, batch: number, seq: number, heads: number, dim: number, positions: Int32Array,
    theta: number, inverse: boolean,
  ): void;
  adamw(
    param: F32, grad: F32, m: F32, v: F32, n: number, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, step: number,
  ): void;
  axpy(alpha: number, x: F32, y: F32, n: number): void;
  swapMiddleAxes(x: F32, out: F32, B: number, A: number, C: number, D: number): void;
  mul(a: F32, b: F32, out: F32, n: number): void;
  add(a: F32, b: F32, out: F32, n: number): void;
  sumSquares(x: F32, n: number): number;
  /** kind 0 = bf16 (w: Uint16Array, scales null), 1 = int8 (w: Int8Array, scales per block of 32). */
  packedLinear(
    kind: number, w: Uint16Array | Int8Array, scales: F32 | null, x: F32, out: F32, outF: number, inF: number,
    rows: number, beta: number,
  ): void;
  packedLinearBackward(
    kind: number, w: Uint16Array | Int8Array, scales: F32 | null, g: F32, dx: F32, outF: number, inF: number,
    rows: number,
  ): void;
  quantizeBf16(src: F32, bits: Uint16Array, n: number): void;
  quantizeInt8(src: F32, qs: Int8Array, scales: F32, rows: number, cols: number): void;
  info(): NativeInfo;
  /** Sets both the addon pool's and OpenBLAS's thread count. */
  setThreads(n: number): void;
  /** Seconds for `iters` n×n×n sgemm calls made straight from C++ on these buffers. */
  benchDirectGemm(n: number, iters: number, a: F32, b: F32, c: F32): number;
  setErrorClass(ctor: new (message: string) => Error): void;
}

/** Where `npm run build:native` puts the addon, relative to this file. */
export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL('../../../native/build/Release/flamingo_native.node', import.meta.url),
);

const ACTIVATION_CODES: Record<Activation, number> = {
  gelu: 0, gelu_tanh: 1, quick_gelu: 2, silu: 3, tanh: 4, relu: 5, sigmoid: 6,
};

let cachedAddon: NativeAddon | null = null;

/** Loads the addon once per process; throws NativeKernelsUnavailableError with the reason. */
export function loadNativeAddon(): NativeAddon {
  if (cachedAddon) return cachedAddon;
  if (process.arch !== 'x64' && process.arch !== 'arm64') {
    throw new NativeKernelsUnavailableError(`unsupported architecture ${process.arch}`);
  }
  if (!existsSync(NATIVE_ADDON_PATH)) {
    throw new NativeKernelsUnavailableError(
      `addon not built (${NATIVE_ADDON_PATH} missing; run \`npm run build:native\`)`,
    );
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new NativeKernelsUnavailableError(`addon failed to load: ${why}`, { cause: err });
  }
  for (const fn of ['gemm', 'maskedSoftmax', 'info', 'setErrorClass'] as const) {
    if (typeof addon[fn] !== 'function') {
      throw new NativeKernelsUnavailableError(`addon at ${NATIVE_ADDON_PATH} is stale (no '${fn}'); rebuild it`);
    }
  }
  addon.setErrorClass(NativeKernelArgumentError);
  cachedAddon = addon;
  return addon;
}

/** Kernels backed by the addon. Throws NativeKernelsUnavailableError if it cannot be loaded. */
export function createNativeKernels(): Kernels {
  const a = loadNativeAddon();
  const info = a.info();
  // an addon built before the packed-weight kernels still serves every float32 kernel
  const packed = typeof a.packedLinear === 'function';
  const needPacked = (): void => {
    if (!packed) throw new NativeKernelsUnavailableError(`addon at ${NATIVE_ADDON_PATH} predates the packed-weight (bf16/int8) kernels; run \`npm run build:native\``);
  };
  const description = `native (${info.blas}, ${info.threads} threads, ${info.simd})`;
  return {
    name: 'native',
    description,
    gemm(transA, transB, m, n, k, alpha, A, B, beta, C, batch?: GemmBatch) {
      if (batch) a.gemm(transA, transB, m, n, k, alpha, A, B, beta, C, batch.count, batch.strideA, batch.strideB, batch.strideC);
      else a.gemm(transA, transB, m, n, k, alpha, A, B, beta, C, 1, 0, 0, 0);
    },
    softmax: (x, out, rows, cols) => a.softmax(x, out, rows, cols),
    softmaxBackward: (y, dy, dx, rows, cols) => a.softmaxBackward(y, dy, dx, rows, cols),
    logSoftmax: (x, out, rows, cols) => a.logSoftmax(x, out, rows, cols),
    logSoftmaxBackward: (y, dy, dx, rows, cols) => a.logSoftmaxBackward(y, dy, dx, rows, cols),
    maskedSoftmax: (x, out, batch, heads, lq, lk, mask, mbs, mqs, causal, off, uniform) =>
      a.maskedSoftmax(x, out, batch, heads, lq, lk, mask, mbs, mqs, causal, off, uniform),
    maskedSoftmaxBackward: (y, dy, dx, batch, heads, lq, lk, mask, mbs, mqs, causal, off) =>
      a.maskedSoftmaxBackward(y, dy, dx, batch, heads, lq, lk, mask, mbs, mqs, causal, off),
    alibiBias(x, batch, heads, lq, lk, slopes, off) {
      if (!a.alibiBias) throw new NativeKernelsUnavailableError(`addon at ${NATIVE_ADDON_PATH} is stale (no 'alibiBias'); rebuild it with npm run build:native`);
      a.alibiBias(x, batch, heads, lq, lk, slopes, off);
    },
    alibiBiasBackward(dx, batch, heads, lq, lk, off, ds) {
      if (!a.alibiBiasBackward) throw new NativeKernelsUnavailableError(`addon at ${NATIVE_ADDON_PATH} is stale (no 'alibiBiasBackward'); rebuild it with npm run build:native`);
      a.alibiBiasBackward(dx, batch, heads, lq, lk, off, ds);
    },
    layerNorm: (x, w, b, out, mean, rstd, rows, cols, eps) => a.layerNorm(x, w, b, out, mean, rstd, rows, cols, eps),
    layerNormBackward: (x, w, mean, rstd, dy, dx, dw, db, rows, cols) =>
      a.layerNormBackward(x, w, mean, rstd, dy, dx, dw, db, rows, cols),
    rmsNorm: (x, w, out, rstd, rows, cols, eps) => a.rmsNorm(x, w, out, rstd, rows, cols, eps),
    rmsNormBackward: (x, w, rstd, dy, dx, dw, rows, cols) => a.rmsNormBackward(x, w, rstd, dy, dx, dw, rows, cols),
    activation(kind, x, out, n) {
      const code = ACTIVATION_CODES[kind];
      if (code === undefined) throw new NativeKernelArgumentError(`native kernel activation: unknown kind '${String(kind)}'`);
      a.activation(code, x, out, n);
    },
    activationBackward(kind, x, dy, dx, n) {
      const code = ACTIVATION_CODES[kind];
      if (code === undefined) {
        throw new NativeKernelArgumentError(`native kernel activationBackward: unknown kind '${String(kind)}'`);
      }
      a.activationBackward(code, x, dy, dx, n);
    },
    swiglu: (gate, up, out, n) => a.swiglu(gate, up, out, n),
    swigluBackward: (gate, up, dy, dgate, dup, n) => a.swigluBackward(gate, up, dy, dgate, dup, n),
    crossEntropy: (logits, targets, rows, cols, ignoreIndex, losses, lse) =>
      a.crossEntropy(logits, targets, rows, cols, ignoreIndex, losses, lse),
    crossEntropyBackward: (logits, targets, lse, rows, cols, ignoreIndex, scale, dlogits) =>
      a.crossEntropyBackward(logits, targets, lse, rows, cols, ignoreIndex, scale, dlogits),
    rope: (x, out, batch, seq, heads, dim, positions, theta, inverse) =>
      a.rope(x, out, batch, seq, heads, dim, positions, theta, inverse),
    adamw: (param, grad, m, v, n, lr, beta1, beta2, eps, wd, step) =>
      a.adamw(param, grad, m, v, n, lr, beta1, beta2, eps, wd, step),
    axpy: (alpha, x, y, n) => a.axpy(alpha, x, y, n),
    swapMiddleAxes: (x, out, B, A, C, D) => a.swapMiddleAxes(x, out, B, A, C, D),
    mul: (x, y, out, n) => a.mul(x, y, out, n),
    add: (x, y, out, n) => a.add(x, y, out, n),
    sumSquares: (x, n) => a.sumSquares(x, n),
    packedLinear(x, w, out, rows, beta) {
      needPacked();
      const [kind, buf, scales] = packedArgs(w);
      a.packedLinear(kind, buf, scales, x, out, w.rows, w.cols, rows, beta);
    },
    quantizeBf16(src, bits, n) {
      needPacked();
      a.quantizeBf16(src, bits, n);
    },
    quantizeInt8(src, qs, scales, rows, cols) {
      needPacked();
      a.quantizeInt8(src, qs, scales, rows, cols);
    },
    packedLinearBackward(g, w, dx, rows) {
      needPacked();
      const [kind, buf, scales] = packedArgs(w);
      a.packedLinearBackward(kind, buf, scales, g, dx, w.rows, w.cols, rows);
    },
  };
}

function packedArgs(w: PackedWeight): [number, Uint16Array | Int8Array, Float32Array | null] {
  return w.kind === 'bf16' ? [0, w.bits, null] : [1, w.qs, w.scales];
}
