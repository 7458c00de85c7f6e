/**
 * Reuse of float32 buffers that a backward pass knows to be dead (consumed intermediate gradients,
 * temporaries of backward functions, activations only a finished node kept).
 *
 * Why: every op output is a fresh ArrayBuffer, and V8 starts a young-generation collection for
 * every ~32 MB of new ArrayBuffer memory, so a training step's collections follow the bytes it
 * allocates; the dead buffers also stay resident until a collection finds them. A backward pass
 * allocates gradients of the same few shapes over and over while it drops gradients of those
 * shapes, so handing the dropped ones to the next allocation of the same length saves both the
 * allocation and the collection work, and lowers the step's peak memory.
 *
 * A pool lives for one `backward()` call that does not retain the graph (`withBufferPool`), or for a
 * whole training run when the loop installs one around each step (`withBufferPool(step, pool)`, then
 * `pool.nextStep()`): a step's shapes repeat, so the gradients backward frees are the buffers the next
 * forward asks for, and the step allocates (and collects) little. Outside a pool, `releaseF32` does
 * nothing and buffers are left to the garbage collector as before. Only whole
 * buffers (offset 0, the ArrayBuffer's full length) are taken, so a view of a larger buffer is never
 * handed out.
 */

/** Buffers shorter than this are left to the collector (the bookkeeping would cost more). */
const POOL_MIN = 4096;

export class BufferPool {
  private free = new Map<number, Float32Array[]>();
  /** The previous step's unused buffers (`nextStep`): still handed out, dropped at the next call. */
  private older = new Map<number, Float32Array[]>();
  /** Buffers in the pool now, to refuse a second release of the same buffer. */
  private readonly held = new Set<ArrayBufferLike>();

  /** A dead buffer of exactly n elements (contents unspecified), or null. */
  take(n: number): Float32Array | null {
    const b = this.free.get(n)?.pop() ?? this.older.get(n)?.pop();
    if (b === undefined) return null;
    this.held.delete(b.buffer);
    return b;
  }

  /** Offers a buffer nothing will read or write again. */
  give(b: Float32Array): void {
    if (b.length < POOL_MIN || b.byteOffset !== 0 || b.byteLength !== b.buffer.byteLength) return;
    if (this.held.has(b.buffer)) return;
    this.held.add(b.buffer);
    let list = this.free.get(b.length);
    if (!list) {
      list = [];
      this.free.set(b.length, list);
    }
    list.push(b);
  }

  /**
   * A step boundary of a pool that outlives one backward pass (a training loop's): what the previous
   * step left unused is dropped to the collector, what this step freed stays for the next one. So the
   * pool holds at most two steps' dead buffers, even when shapes change from step to step.
   */
  nextStep(): void {
    for (const list of this.older.values()) for (const b of list) this.held.delete(b.buffer);
    this.older = this.free;
    this.free = new Map();
  }

  /** Elements held (both generations), for tests and memory accounting. */
  heldElements(): number {
    let n = 0;
    for (const m of [this.free, this.older]) for (const list of m.values()) for (const b of list) n += b.length;
    return n;
  }
}

/** The installed pool (a backward pass's, or a training step's); null outside one (like grad mode, a scoped switch). */
let active: BufferPool | null = null;

/**
 * Runs fn with a pool installed: `pool` when given (a training loop's, kept across steps so the
 * gradients a backward pass frees become the next forward's activations), else the pool already
 * installed (a backward pass or frozen encoder inside a training step shares the step's), else a
 * fresh one that is dropped afterwards with what it holds.
 */
export function withBufferPool<T>(fn: () => T, pool?: BufferPool): T {
  const prev = active;
  active = pool ?? active ?? new BufferPool();
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/** A dead buffer of n elements from the installed pool, or null. */
export function takePooled(n: number): Float32Array | null {
  return active === null ? null : active.take(n);
}

/**
 * Declares b dead: no tensor, closure or caller will touch it again. Inside a backward pass that
 * drops its graph the buffer is reused by a later allocation of the same length; elsewhere this is
 * a no-op. Call it only for buffers the caller alone holds (a backward function's temporaries, or
 * what only its closure captured); `poolActive()` tells whether the graph is being dropped.
 */
export function releaseF32(b: Float32Array): void {
  if (active !== null) active.give(b);
}

/** True while a pool is installed: a backward pass that drops the graph, a pooled no-grad scope, or a training step. */
export function poolActive(): boolean {
  return active !== null;
}
