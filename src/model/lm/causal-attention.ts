/**
 * The part of self-attention every decoder family shares: append this step's keys and values to the
 * layer's KV cache, check the key mask covers every key, and attend causally (query i sees the past
 * keys and its own and earlier positions) over the real tokens. Each family builds q, k, v its own way.
 */
import { ShapeError, type Tensor } from '../../engine/tensor.ts';
import { attention, concat } from '../../engine/index.ts';
import type { LayerContext } from './types.ts';

/** k, v (B, H_kv, L, Dh) → the cached keys and values through this step; the cache is updated. */
export function appendToCache(ctx: LayerContext, layerIndex: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
  if (!ctx.cache) return [k, v];
  const pk = ctx.cache.keys[layerIndex];
  const pv = ctx.cache.values[layerIndex];
  if (pk && pv) {
    k = concat([pk, k], 2);
    v = concat([pv, v], 2);
  }
  ctx.cache.keys[layerIndex] = k;
  ctx.cache.values[layerIndex] = v;
  return [k, v];
}

/** Causal attention of q (B, H, L, Dh) over k, v (B, H, past + L, Dh) under ctx's key mask → (B, H, L, Dh). */
export function causalAttention(
  where: string, q: Tensor, k: Tensor, v: Tensor, ctx: LayerContext, opts: { scale?: number; alibiSlopes?: Tensor | null } = {},
): Tensor {
  const B = q.shape[0]!;
  const Lk = k.shape[2]!;
  if (ctx.keyMask.length !== B * Lk) throw new ShapeError(where, `attention mask covers ${ctx.keyMask.length / B} positions per row but keys span ${Lk}`);
  return attention(q, k, v, { mask: { data: ctx.keyMask, batchStride: Lk, qStride: 0 }, causal: true, causalOffset: ctx.past, ...opts });
}
