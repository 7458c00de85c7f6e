/**
 * Native kernels: the C++ addon in `native/` (N-API, OpenBLAS sgemm when available at build
 * time, AVX2 fused kernels, a small blocking thread pool). Buffers cross the boundary as
 * TypedArray views — never copied; byteOffset is honoured by the addon.
 *
 * Argument checking lives in the addon itself: it already has every buffer's length in hand,
 * so checking there is free, and a wrong length throws a `NativeKernelArgumentError` naming the
 * kernel and the sizes instead of reading out of bounds. The checks and the binding are generated
 * from `signatures.ts` (`npm run gen:kernels`).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Activation, Kernels } from './types.ts';
import { ACTIVATION_CODES } from './signatures.ts';
import { bindNativeKernels, NATIVE_KERNEL_NAMES, type NativeAddonKernels } from './native-bindings.gen.ts';
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

/**
 * Values of FLAMINGO_GEMM, which the addon reads (native/src/gemm.cc): `avx512` (the default: the
 * project's AVX-512 GEMM when the CPU has it) or `openblas` (OpenBLAS, or the built-in GEMM).
 */
export const GEMM_CHOICES = ['avx512', 'openblas'] as const;

/**
 * Values of FLAMINGO_SIMD, which the decode kernels read (native/src/quant.cc): `avx512` (the default
 * when the CPU has it) or `avx2` (forces the AVX2 register kernels, e.g. to test them).
 */
export const SIMD_CHOICES = ['avx512', 'avx2'] as const;

/** A FLAMINGO_* kernel variable has a value the addon does not know (it would otherwise ignore it silently). */
export class NativeKernelConfigError extends FlamingoError {
  constructor(readonly variable: string, readonly value: string, readonly allowed: readonly string[]) {
    super(`${variable}=${JSON.stringify(value)} is not a known value; use ${allowed.join(', ')} (or leave it unset)`);
  }
}

/**
 * Throws NativeKernelConfigError when a variable the addon reads at load (FLAMINGO_GEMM, FLAMINGO_SIMD,
 * FLAMINGO_GEMV_KC) holds a value it does not know: a typo must not silently select another kernel.
 */
export function checkKernelEnv(env: NodeJS.ProcessEnv = process.env): void {
  const choice = (name: string, allowed: readonly string[]): void => {
    const v = env[name];
    if (v !== undefined && v !== '' && !allowed.includes(v)) throw new NativeKernelConfigError(name, v, allowed);
  };
  choice('FLAMINGO_GEMM', GEMM_CHOICES);
  choice('FLAMINGO_SIMD', SIMD_CHOICES);
  const kc = env.FLAMINGO_GEMV_KC;
  if (kc !== undefined && kc !== '' && !/^\d{1,9}$/.test(kc)) {
    throw new NativeKernelConfigError('FLAMINGO_GEMV_KC', kc, ['a whole number of floats per piece (0: whole rows)']);
  }
}

export interface NativeInfo {
  /** e.g. "OpenBLAS 0.3.21 Haswell + own AVX-512 sgemm 14x32" or "built-in GEMM (avx2+fma)". */
  blas: string;
  /**
   * Which GEMM runs the engine's products: "avx512" (native/src/gemm_avx512.cc, chosen when the CPU
   * has AVX-512 unless FLAMINGO_GEMM=openblas), "openblas" or "builtin". Absent in older addons.
   */
  gemm?: 'avx512' | 'openblas' | 'builtin';
  hasBlas: boolean;
  /** "avx2+fma" or "scalar", plus ", avx512 decode kernels" when the matrix-vector kernels use AVX-512. */
  simd: string;
  /** Threads of the addon's pool (including the caller). */
  threads: number;
  blasThreads: number;
  /** The process heap policy set when the addon loads (native/src/memory.cc); absent in older addons. */
  heap?: string;
}

/** The raw addon exports: the kernels (positional arguments, generated from signatures.ts) and the rest. */
export interface NativeAddon extends NativeAddonKernels {
  info(): NativeInfo;
  /** Pool counters since load: jobs handed to the workers, and calls run inline on the caller. Absent in older addons. */
  poolStats?(): { dispatched: number; inline: number };
  /** Sets both the addon pool's and OpenBLAS's thread count. */
  setThreads(n: number): void;
  /** Seconds for `iters` n×n×n sgemm calls made straight from C++ on these buffers. */
  benchDirectGemm(n: number, iters: number, a: Float32Array, b: Float32Array, c: Float32Array): number;
  setErrorClass(ctor: new (message: string) => Error): void;
}

/** Where `npm run build:native` puts the addon, relative to this file. */
export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL('../../../native/build/Release/flamingo_native.node', import.meta.url),
);


/** Written by scripts/build-native.cjs when the addon failed to build at `npm install`. */
const NATIVE_BUILD_LOG = fileURLToPath(new URL('../../../native/build-failed.log', import.meta.url));

let cachedAddon: NativeAddon | null = null;

/**
 * Loads the addon once per process; throws NativeKernelsUnavailableError with the reason, or
 * NativeKernelConfigError for an unknown FLAMINGO_GEMM.
 */
export function loadNativeAddon(): NativeAddon {
  if (cachedAddon) return cachedAddon;
  checkKernelEnv(); // before the addon reads them: a typo must not silently select a kernel
  if (process.arch !== 'x64' && process.arch !== 'arm64') {
    throw new NativeKernelsUnavailableError(`unsupported architecture ${process.arch}`);
  }
  if (!existsSync(NATIVE_ADDON_PATH)) {
    const failed = existsSync(NATIVE_BUILD_LOG) ? `; the build at install failed, see ${NATIVE_BUILD_LOG}` : '';
    throw new NativeKernelsUnavailableError(
      `addon not built (${NATIVE_ADDON_PATH} missing${failed}; run \`npm run build:native\`)`,
    );
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new NativeKernelsUnavailableError(`addon failed to load: ${why}`, { cause: err });
  }
  for (const fn of [...NATIVE_KERNEL_NAMES, 'info', 'setErrorClass'] as const) {
    if (typeof addon[fn] !== 'function') {
      throw new NativeKernelsUnavailableError(
        `addon at ${NATIVE_ADDON_PATH} is stale (no '${fn}'); rebuild it with \`npm run build:native\``,
      );
    }
  }
  addon.setErrorClass(NativeKernelArgumentError);
  cachedAddon = addon;
  return addon;
}

/** Kernels backed by the addon. Throws NativeKernelsUnavailableError if it cannot be loaded. */
export function createNativeKernels(): Kernels {
  const addon = loadNativeAddon();
  const info = addon.info();
  return {
    name: 'native',
    description: `native (${info.blas}, ${info.threads} threads, ${info.simd}${info.heap ? `, ${info.heap}` : ''})`,
    ...bindNativeKernels(addon, activationCode),
  };
}

function activationCode(kernel: string, kind: Activation): number {
  const code = ACTIVATION_CODES[kind] as number | undefined;
  if (code === undefined) throw new NativeKernelArgumentError(`native kernel ${kernel}: unknown kind '${String(kind)}'`);
  return code;
}
