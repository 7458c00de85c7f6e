/**
 * Per-op profile of a piece of engine work (the bench's `--profile`): where a training step's time
 * goes, by op kind (forward and backward) and by kernel (GEMM by size class, the elementwise kernels).
 *
 * Off unless a `Profiler` is installed with `withProfiler`, and then only the autograd tape (`record`,
 * `backward`) looks at it: ops are not changed. Forward time of an op is the time
 * since the previous op finished (the ops run one after another on the JS thread), so it includes
 * the model code between two ops; backward time is the op's backward function itself.
 * Kernel times come from `profileKernels`, a wrapper around a `Kernels` that times every call.
 */
import type { GemmBatch, Kernels } from './kernels/types.ts';
import { packedBytes, type PackedWeight } from './quant.ts';

export interface OpTimes {
  forward_ms: number;
  forward_calls: number;
  backward_ms: number;
  backward_calls: number;
}

export interface KernelTimes {
  ms: number;
  calls: number;
  /** GEMM classes only: multiply-adds × 2. */
  gflop?: number;
  /** Packed products only: weight bytes read (decode products are bound by streaming them). */
  gbyte?: number;
}

export type Phase = 'forward' | 'backward' | 'optimizer' | 'other';

export class Profiler {
  readonly ops = new Map<string, OpTimes>();
  /** Kernel name (GEMM split by size class) → times, per phase. */
  readonly kernels = new Map<string, KernelTimes>();
  phase: Phase = 'other';
  private last = performance.now();

  /** Starts a phase; the next op's forward time counts from now. */
  begin(phase: Phase): void {
    this.phase = phase;
    this.last = performance.now();
  }

  private op(name: string): OpTimes {
    let o = this.ops.get(name);
    if (!o) {
      o = { forward_ms: 0, forward_calls: 0, backward_ms: 0, backward_calls: 0 };
      this.ops.set(name, o);
    }
    return o;
  }

  /** An op finished its forward (called by `record`). */
  forwardDone(name: string): void {
    const t = performance.now();
    const o = this.op(name);
    o.forward_ms += t - this.last;
    o.forward_calls++;
    this.last = t;
  }

  backwardDone(name: string, ms: number): void {
    const o = this.op(name);
    o.backward_ms += ms;
    o.backward_calls++;
  }

  kernel(name: string, ms: number, gflop?: number, gbyte?: number): void {
    const key = `${this.phase}/${name}`;
    let k = this.kernels.get(key);
    if (!k) {
      k = { ms: 0, calls: 0, ...(gflop !== undefined ? { gflop: 0 } : {}), ...(gbyte !== undefined ? { gbyte: 0 } : {}) };
      this.kernels.set(key, k);
    }
    k.ms += ms;
    k.calls++;
    if (gflop !== undefined) k.gflop! += gflop;
    if (gbyte !== undefined) k.gbyte = (k.gbyte ?? 0) + gbyte;
  }
}

let active: Profiler | null = null;

/** The installed profiler, or null (the common case: one null check per op). */
export function activeProfiler(): Profiler | null {
  return active;
}

/** Runs fn with p installed (restored afterwards, also on throw). */
export function withProfiler<T>(p: Profiler, fn: () => T): T {
  const prev = active;
  active = p;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/**
 * GEMM size class of one product (per batch item): the dispatch paths differ by size, so their
 * efficiency is reported apart. Bounds in multiply-adds.
 */
export function gemmClass(m: number, n: number, k: number, count: number): string {
  const macs = m * n * k;
  const size = macs <= 32 * 32 * 32 ? 'tiny' : macs < 1 << 20 ? 'small' : macs < 1 << 26 ? 'medium' : 'large';
  return `gemm ${count > 1 ? 'batched ' : ''}${size}`;
}

/** One GEMM's shape as a profile key: `gemm NT 1024x2048x768` (op(A) m×k, op(B) k×n; `x48` = batch count). */
export function gemmShape(tA: boolean, tB: boolean, m: number, n: number, k: number, count: number): string {
  return `gemm ${tA ? 'T' : 'N'}${tB ? 'T' : 'N'} ${m}x${n}x${k}${count > 1 ? `x${count}` : ''}`;
}

/**
 * Profile key of a packed (bf16 / int8) product x · Wᵀ: by storage and path (`gemv`: the ≤ 4-row
 * decode kernels that stream W; `panels`: dequantised panels and the GEMM), or with `shapes` by
 * rows × in → out. GEMV_ROWS mirrors native/src/quant.h's GEMV_MAX_ROWS.
 */
const GEMV_ROWS = 4;
export function packedKey(kernel: string, p: PackedWeight, rows: number, shapes: boolean): string {
  const path = rows <= GEMV_ROWS ? 'gemv' : 'panels';
  return `${kernel} ${p.kind} ${shapes ? `${rows}x${p.cols}->${p.rows}` : path}`;
}

/**
 * A Kernels whose every call is timed into the active profiler (by kernel; GEMM by size class, or
 * by exact shape with `shapes`, to tell which products run below the library's speed).
 */
export function profileKernels(k: Kernels, opts: { shapes?: boolean } = {}): Kernels {
  const key = opts.shapes ? gemmShape : (_tA: boolean, _tB: boolean, m: number, n: number, kk: number, count: number) => gemmClass(m, n, kk, count);
  const wrapped: Record<string, unknown> = { name: k.name, description: k.description };
  for (const key of Object.keys(k) as (keyof Kernels)[]) {
    const f = k[key];
    if (typeof f !== 'function' || key === 'gemm') continue;
    if (key === 'packedLinear' || key === 'packedLinearBackward') {
      // (x, w, out, rows, …): by storage and path, with the weight bytes each call reads
      wrapped[key] = (...args: unknown[]) => {
        const p = active;
        if (!p) return (f as (...a: unknown[]) => unknown)(...args);
        const w = args[1] as PackedWeight;
        const t = performance.now();
        const r = (f as (...a: unknown[]) => unknown)(...args);
        p.kernel(packedKey(key, w, args[3] as number, opts.shapes ?? false), performance.now() - t, undefined, packedBytes(w) / 1e9);
        return r;
      };
      continue;
    }
    wrapped[key] = (...args: unknown[]) => {
      const p = active;
      if (!p) return (f as (...a: unknown[]) => unknown)(...args);
      const t = performance.now();
      const r = (f as (...a: unknown[]) => unknown)(...args);
      p.kernel(key === 'activation' || key === 'activationBackward' ? `${key} ${String(args[0])}` : key, performance.now() - t);
      return r;
    };
  }
  wrapped.gemm = (tA: boolean, tB: boolean, m: number, n: number, kk: number, alpha: number, a: Float32Array, b: Float32Array, beta: number, c: Float32Array, batch?: GemmBatch) => {
    const p = active;
    if (!p) return k.gemm(tA, tB, m, n, kk, alpha, a, b, beta, c, batch);
    const t = performance.now();
    k.gemm(tA, tB, m, n, kk, alpha, a, b, beta, c, batch);
    const count = batch?.count ?? 1;
    p.kernel(key(tA, tB, m, n, kk, count), performance.now() - t, (2 * m * n * kk * count) / 1e9);
  };
  return wrapped as unknown as Kernels;
}
