/**
 * The argument checks of the TypeScript kernels. The checks of each kernel are generated from the
 * signature table (`ts-checks.gen.ts`, written by `npm run gen:kernels`); these are the helpers they
 * call, with messages that name the kernel and the sizes.
 */
import { FlamingoError } from '../../../errors.ts';
import { type PackedWeight, blocksPerRow } from '../../quant.ts';

/** Misuse of a kernel (buffer too small, bad dimension): names the kernel and the sizes. */
export class TsKernelError extends FlamingoError {
  constructor(kernel: string, message: string) {
    super(`kernels/ts ${kernel}: ${message}`);
  }
}

/** `buf` holds at least `size` elements. */
export function need(kernel: string, name: string, buf: ArrayLike<number>, size: number): void {
  if (buf.length < size) {
    throw new TsKernelError(kernel, `buffer '${name}' has ${buf.length} elements, needs ${size}`);
  }
}

/** A dimension: a non-negative integer. */
export function dim(kernel: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new TsKernelError(kernel, `${name} must be a non-negative integer, got ${v}`);
}

/** An integer argument (may be negative). */
export function integer(kernel: string, name: string, v: number): void {
  if (!Number.isInteger(v)) throw new TsKernelError(kernel, `${name} must be an integer, got ${v}`);
}

/** A packed weight's shape is made of dimensions and its buffers hold what the shape says. */
export function needPacked(kernel: string, name: string, w: PackedWeight): void {
  dim(kernel, `${name}.rows`, w.rows);
  dim(kernel, `${name}.cols`, w.cols);
  if (w.kind === 'bf16') need(kernel, `${name}.bits`, w.bits, w.rows * w.cols);
  else {
    need(kernel, `${name}.qs`, w.qs, w.rows * w.cols);
    need(kernel, `${name}.scales`, w.scales, w.rows * blocksPerRow(w.cols));
  }
}

/** A further condition of the signature table failed. */
export function fail(kernel: string, message: string): never {
  throw new TsKernelError(kernel, message);
}
