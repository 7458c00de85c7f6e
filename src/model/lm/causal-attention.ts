/**
 * The part of self-attention every decoder family shares: append this step's keys and values to the
 * layer's KV cache, check the key mask covers every key, and attend causally (query i sees the past
 * keys and its own and earlier positions) over the real tokens. Each family builds q, k, v its own way.
 */
import { ShapeError, type Tensor } from '../../engine/tensor.ts';
import { attention, concat } from '../../engine/index.ts';
import { isGradEnabled } from '../../engine/autograd.ts';
import { CachedKV } from './kv-cache.ts';
import type { LayerContext } from './types.ts';

/**
 * k, v (B, H_kv, L, Dh) → keys and values holding the cached ones through this step along axis 2
 * (the first past + L positions; a cache buffer may have more, which causalAttention leaves out);
 * the cache is updated.
 */
export function appendToCache(ctx: LayerContext, layerIndex: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
  if (!ctx.cache) return [k, v];
  const pk = ctx.cache.keys[layerIndex] ?? null;
  const pv = ctx.cache.values[layerIndex] ?? null;
  const ck = pk ? pk.append(k) : CachedKV.fromTensor(k);
  const cv = pv ? pv.append(v) : CachedKV.fromTensor(v);
  ctx.cache.keys[layerIndex] = ck;
  ctx.cache.values[layerIndex] = cv;
  if (isGradEnabled() && (k.requiresGrad || v.requiresGrad)) {
    // a graph is being recorded: attend over tensors that carry this step's k and v
    return pk && pv ? [concat([pk.toTensor(), k], 2), concat([pv.toTensor(), v], 2)] : [k, v];
  }
  return [ck.buffer, cv.buffer];
}

/** Causal attention of q (B, H, L, Dh) over the first past + L positions of k, v (B, H, ≥ past + L, Dh) under ctx's key mask → (B, H, L, Dh). */
export function causalAttention(
  where: string, q: Tensor, k: Tensor, v: Tensor, ctx: LayerContext, opts: { scale?: number; alibiSlopes?: Tensor | null } = {},
): Tensor {
  const B = q.shape[0]!;
  const Lk = ctx.keyMask.length / B;
  // The mask must cover exactly the past and this step's keys. A cache buffer may hold spare room
  // beyond them (attention stops at keyLength); keys that are not a cache buffer are exactly that long.
  const inCache = ctx.cache !== null && k.shape[2]! > Lk;
  if (!Number.isInteger(Lk) || Lk !== ctx.past + q.shape[2]! || (!inCache && Lk !== k.shape[2]!)) {
    throw new ShapeError(where, `attention mask covers ${ctx.keyMask.length / B} positions per row but keys span ${k.shape[2]} (past ${ctx.past}, queries ${q.shape[2]})`);
  }
  return attention(q, k, v, { mask: { data: ctx.keyMask, batchStride: Lk, qStride: 0 }, causal: true, causalOffset: ctx.past, keyLength: Lk, ...opts });
}
