/**
 * What every DecoderLM family does the same way around its own blocks: the checks before running
 * layer i, an empty KV cache with one slot per layer, and a fresh untied output head.
 */
import { Tensor, ShapeError, fmtShape, zeros } from '../../engine/tensor.ts';
import type { Rng } from '../../engine/rng.ts';
import type { KVCache } from './types.ts';
import type { CachedKV } from './kv-cache.ts';

/** Block i of `layers`, once `x` is (B, L, hidden); errors name the family (`label`). */
export function layerAt<T>(label: string, layers: readonly T[], i: number, x: Tensor, hidden: number): T {
  const l = layers[i];
  if (!l) throw new ShapeError(label, `layer ${i} out of range (${layers.length} layers)`);
  if (x.ndim !== 3 || x.shape[2] !== hidden) throw new ShapeError(label, `hidden states ${fmtShape(x.shape)} do not end in ${hidden}`);
  return l;
}

/** A KV cache with no past keys or values for each of `numLayers` layers. */
export function emptyCache(numLayers: number): KVCache {
  return { keys: new Array<CachedKV | null>(numLayers).fill(null), values: new Array<CachedKV | null>(numLayers).fill(null) };
}

/** An untied (vocab, hidden) output projection, N(0, 0.02) as the families' reference initialisation. */
export function untiedHeadWeight(vocab: number, hidden: number, rng: Rng): Tensor {
  const w = zeros([vocab, hidden]);
  rng.fillNormal(w.f32, 0, 0.02);
  return w;
}
