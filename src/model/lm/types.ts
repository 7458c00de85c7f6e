/**
 * The small interface a decoder-only LM family implements so Flamingo can interleave gated
 * cross-attention blocks between its layers. Adding GPT-2, MPT or GPT-NeoX means adding a file
 * that implements DecoderLM and registering it in `lm/index.ts`.
 */
import type { Tensor } from '../../engine/tensor.ts';
import type { Module } from '../../nn/module.ts';
import type { LMConfigBase } from '../config.ts';
import type { CachedKV } from './kv-cache.ts';

/** Keys and values of past positions, per layer: (B, H_kv, L_past, D) each. */
export interface KVCache {
  keys: (CachedKV | null)[];
  values: (CachedKV | null)[];
}

export interface LayerContext {
  /** int32 (B, L) rotary positions of the current tokens. */
  positions: Tensor;
  /** (B, past + L) 1 = real token, 0 = padding; keys are visible iff 1 and not in the future. */
  keyMask: Uint8Array;
  /** Number of cached positions before the current tokens. */
  past: number;
  /** When given, the layer appends its new keys/values here. */
  cache: KVCache | null;
}

export interface DecoderLM extends Module {
  readonly config: LMConfigBase;
  readonly numLayers: number;
  readonly hiddenSize: number;
  /** The input embedding table (trainable in Flamingo for the new <image>/<|endofchunk|> rows). */
  readonly embedWeight: Tensor;
  embed(ids: Tensor): Tensor;
  layer(i: number, x: Tensor, ctx: LayerContext): Tensor;
  /** Final norm + LM head → logits (…, vocab). */
  head(x: Tensor): Tensor;
  newCache(): KVCache;
}
