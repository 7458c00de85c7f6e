/**
 * Kernel backend selection, once per process.
 *
 *   FLAMINGO_KERNELS=native       native addon or throw (no silent fallback)
 *   FLAMINGO_KERNELS=typescript   pure TypeScript
 *   (unset)                       native if the addon loads, else TypeScript
 *
 * The choice and its reason are logged once to stderr, so a slow run is never a mystery.
 */
import { createNativeKernels, NativeKernelsUnavailableError } from './native.ts';
import { createTsKernels } from './ts.ts';
import type { Kernels } from './types.ts';
import { FlamingoError } from '../../errors.ts';

export type { Kernels } from './types.ts';
export { NativeKernelsUnavailableError, NativeKernelArgumentError, NativeKernelConfigError } from './native.ts';

/** FLAMINGO_KERNELS has a value other than native / typescript. */
export class KernelBackendConfigError extends FlamingoError {
  constructor(value: string) {
    super(`FLAMINGO_KERNELS must be 'native' or 'typescript', got '${value}'`);
  }
}

let tsKernels: Kernels | null = null;
let nativeKernels: Kernels | null = null;
let chosen: Kernels | null = null;

/** The TypeScript kernels (cached). */
export function getTsKernels(): Kernels {
  tsKernels ??= createTsKernels();
  return tsKernels;
}

/** The native kernels (cached); throws NativeKernelsUnavailableError if the addon cannot load. */
export function getNativeKernels(): Kernels {
  nativeKernels ??= createNativeKernels();
  return nativeKernels;
}

/** Native kernels, or null with the reason they are unavailable. */
export function tryNativeKernels(): { kernels: Kernels | null; reason: string } {
  try {
    return { kernels: getNativeKernels(), reason: '' };
  } catch (err) {
    if (err instanceof NativeKernelsUnavailableError) return { kernels: null, reason: err.reason };
    throw err;
  }
}

function announce(message: string): void {
  process.stderr.write(`flamingo-ts: kernels = ${message}\n`);
}

/** The process-wide kernels, chosen on first call (see the module comment). */
export function getKernels(): Kernels {
  if (chosen) return chosen;
  const forced = process.env.FLAMINGO_KERNELS?.trim().toLowerCase() ?? '';
  if (forced === 'native') {
    chosen = getNativeKernels(); // throws with the reason when unavailable
    announce(`${chosen.description} (forced by FLAMINGO_KERNELS)`);
  } else if (forced === 'typescript' || forced === 'ts') {
    chosen = getTsKernels();
    announce(`${chosen.description} (forced by FLAMINGO_KERNELS)`);
  } else if (forced === '') {
    const { kernels, reason } = tryNativeKernels();
    if (kernels) {
      chosen = kernels;
      announce(chosen.description);
    } else {
      chosen = getTsKernels();
      announce(`typescript (native addon unavailable: ${reason})`);
    }
  } else {
    throw new KernelBackendConfigError(forced);
  }
  return chosen;
}
