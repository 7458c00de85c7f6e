/**
 * The kernel interface: the heavy numeric loops of the engine's ops (matrix products, softmaxes, norms,
 * activations, losses, optimiser steps, the head split/merge copy) go through these methods; the
 * cheap ones (axis reductions, scalar maps, gathers) stay in the ops (docs/ARCHITECTURE.md).
 * Two implementations exist: `native` (C++ addon over OpenBLAS, multithreaded) and `typescript`
 * (portable; the oracle in tests). The methods and their documentation are declared once, in
 * `signatures.ts`; `Kernels` is derived from that table.
 */
import type { PackedWeight } from '../quant.ts';
import type { ACTIVATION_CODES, ArgSpec, ArgType, KERNEL_SIGNATURES, KernelSpec } from './signatures.ts';

export type Activation = keyof typeof ACTIVATION_CODES;

/** Batched GEMM: `count` independent products; matrix i of A starts at i*strideA (stride 0 broadcasts). */
export interface GemmBatch {
  count: number;
  strideA: number;
  strideB: number;
  strideC: number;
}

/** The TypeScript type of one argument. */
export type ArgValue<T extends ArgType> =
  T extends 'f32' ? Float32Array
    : T extends 'f32?' ? Float32Array | null
      : T extends 'i32' ? Int32Array
        : T extends 'u8?' ? Uint8Array | null
          : T extends 'u16' ? Uint16Array
            : T extends 'i8' ? Int8Array
              : T extends 'bool' ? boolean
                : T extends 'act' ? Activation
                  : T extends 'packed' ? PackedWeight
                    : T extends 'batch?' ? GemmBatch
                      : number;

/** The parameter list of a kernel: one element per argument, `batch?` an optional last one. */
export type KernelParams<A extends readonly ArgSpec[]> =
  A extends readonly [infer H extends ArgSpec, ...infer R extends readonly ArgSpec[]]
    ? H['type'] extends 'batch?' ? [ArgValue<'batch?'>?] : [ArgValue<H['type']>, ...KernelParams<R>]
    : [];

export type KernelFn<S extends KernelSpec> =
  (...args: KernelParams<S['args']>) => S['returns'] extends 'number' ? number : void;

/** Every kernel of the table as a method. */
export type KernelMethods = { [K in keyof typeof KERNEL_SIGNATURES]: KernelFn<(typeof KERNEL_SIGNATURES)[K]> };

export interface Kernels extends KernelMethods {
  /** 'native' or 'typescript'. */
  readonly name: 'native' | 'typescript';
  /** Human-readable detail, e.g. "native (OpenBLAS 0.3.21, 2 threads)". Logged once at startup. */
  readonly description: string;
}
