/**
 * Which Kernels the ops call. Chosen once per process by `getKernels()` (which logs the choice);
 * tests switch explicitly with `withBackend` to run the same op on both kernel sets.
 */
import type { Kernels } from './kernels/types.ts';
import { getKernels } from './kernels/index.ts';

let current: Kernels | null = null;

export function backend(): Kernels {
  if (current === null) current = getKernels();
  return current;
}

/** Run fn with the given kernels active (restored afterwards, also on throw). */
export function withBackend<T>(k: Kernels, fn: () => T): T {
  const prev = current;
  current = k;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** Set the active kernels for the rest of the process. */
export function setBackend(k: Kernels): void {
  current = k;
}
