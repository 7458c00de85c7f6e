/**
 * The keys (or values) one layer has cached: the first `length` positions of a (B, H, capacity, D)
 * buffer that grows by doubling and is written in place.
 *
 * Why: concatenating the past keys with each step's new ones copied the whole cache of every layer
 * at every decode step (openflamingo3b: ~30 MB a token, and the garbage collector pauses that
 * follow). Here a step writes only its own positions, and attention reads the first `length`
 * positions of each (b, h) slot through the GEMM's batch strides.
 *
 * Views are immutable and may share a buffer: scoring and evaluation branch a state by copying its
 * cache arrays, and each branch then appends. The buffer remembers how many positions have been
 * written (`fill`); a view appends in place only when it ends exactly there, so a second branch
 * from the same prefix copies instead of overwriting the first branch's positions. Positions before
 * a view's length are never written again, so every view stays valid.
 */
import { Tensor, ShapeError, emptyF32, fmtShape } from '../../engine/tensor.ts';

interface Store {
  /** (B, H, capacity, D). */
  readonly data: Tensor;
  /** Positions written in each (b, h) slot, by whichever view wrote last. */
  fill: number;
}

export class CachedKV {
  private constructor(private readonly store: Store, readonly length: number) {}

  /** A cache holding t (B, H, L, D), in a buffer of `capacity` ≥ L positions. */
  static fromTensor(t: Tensor, capacity = t.shape[2]!): CachedKV {
    if (t.ndim !== 4) throw new ShapeError('kv_cache', `expected (B, H, L, D) keys or values, got ${fmtShape(t.shape)}`);
    const [B, H, L, D] = t.shape as [number, number, number, number];
    const store: Store = { data: new Tensor(emptyF32(B * H * Math.max(capacity, L) * D), [B, H, Math.max(capacity, L), D]), fill: 0 };
    writeAt(store, t, 0);
    return new CachedKV(store, L);
  }

  get shape(): readonly [number, number, number, number] {
    const [B, H, , D] = this.store.data.shape as [number, number, number, number];
    return [B, H, this.length, D];
  }

  /** Positions the buffer holds before it must grow. */
  get capacity(): number {
    return this.store.data.shape[2]!;
  }

  /**
   * The (B, H, capacity, D) buffer; its first `length` positions along axis 2 are this cache
   * (attention's `keyLength`). Read-only: later appends write past `length`.
   */
  get buffer(): Tensor {
    return this.store.data;
  }

  /** This cache followed by t (B, H, L, D): in place when this view ends where the buffer's writes end. */
  append(t: Tensor): CachedKV {
    const [B, H, , D] = this.shape;
    if (t.ndim !== 4 || t.shape[0] !== B || t.shape[1] !== H || t.shape[3] !== D) {
      throw new ShapeError('kv_cache', `cannot append ${fmtShape(t.shape)} to a cache of ${fmtShape(this.shape)}`);
    }
    const need = this.length + t.shape[2]!;
    if (this.store.fill === this.length && need <= this.capacity) {
      writeAt(this.store, t, this.length);
      return new CachedKV(this.store, need);
    }
    // grow by doubling, so n single-position appends copy O(n) positions in all
    const grown = CachedKV.fromTensor(this.toTensor(), Math.max(need, 2 * this.capacity));
    writeAt(grown.store, t, this.length);
    return new CachedKV(grown.store, need);
  }

  /** Rows index[r] of the batch, in a buffer of the same capacity (beam search reorders every step). */
  selectRows(index: readonly number[]): CachedKV {
    const [B, H, L, D] = this.shape;
    const cap = this.capacity;
    const src = this.store.data.f32;
    const out = emptyF32(index.length * H * cap * D);
    index.forEach((b, r) => {
      if (!Number.isInteger(b) || b < 0 || b >= B) throw new ShapeError('kv_cache', `row ${b} out of range [0, ${B})`);
      for (let h = 0; h < H; h++) {
        const from = (b * H + h) * cap * D;
        out.set(src.subarray(from, from + L * D), (r * H + h) * cap * D);
      }
    });
    return new CachedKV({ data: new Tensor(out, [index.length, H, cap, D]), fill: L }, L);
  }

  /** A contiguous (B, H, length, D) copy. */
  toTensor(): Tensor {
    const [B, H, L, D] = this.shape;
    const cap = this.capacity;
    const src = this.store.data.f32;
    const out = emptyF32(B * H * L * D);
    for (let bh = 0; bh < B * H; bh++) out.set(src.subarray(bh * cap * D, (bh * cap + L) * D), bh * L * D);
    return new Tensor(out, [B, H, L, D]);
  }
}

/** Writes t (B, H, L, D) at position `at` of every (b, h) slot; the store's writes now end at at + L. */
function writeAt(store: Store, t: Tensor, at: number): void {
  const [B, H, L, D] = t.shape as [number, number, number, number];
  const cap = store.data.shape[2]!;
  const dst = store.data.f32;
  const src = t.f32;
  if (L === cap && at === 0) dst.set(src);
  else for (let bh = 0; bh < B * H; bh++) dst.set(src.subarray(bh * L * D, (bh + 1) * L * D), (bh * cap + at) * D);
  store.fill = at + L;
}
