/**
 * The learned time embeddings every vision connector adds to its input features before resampling
 * (the Perceiver Resampler and the ablation's Transformer / MLP connectors share them, so the
 * connectors differ only in how they turn the features into n tokens):
 *   frame_embs (max_num_frames, D): one per video frame, added to each frame's v tokens;
 *   media_time_embs (max_num_media, 1, D): one per media item, added after flattening F·v.
 */
import { Tensor, zeros, ShapeError } from '../engine/tensor.ts';
import { add, reshape, slice } from '../engine/index.ts';
import type { Rng } from '../engine/rng.ts';
import type { ResamplerConfig } from './config.ts';

export interface TimeEmbeddings {
  frame_embs: Tensor | null;
  media_time_embs: Tensor | null;
}

/** N(0, 1) initial values of the configured embeddings, frames first (the reference's draw order). */
export function newTimeEmbeddings(config: ResamplerConfig, rng: Rng): TimeEmbeddings {
  const { dim } = config;
  let frame_embs: Tensor | null = null;
  let media_time_embs: Tensor | null = null;
  if (config.max_num_frames !== null) {
    frame_embs = zeros([config.max_num_frames, dim]);
    rng.fillNormal(frame_embs.f32, 0, 1);
  }
  if (config.max_num_media !== null) {
    media_time_embs = zeros([config.max_num_media, 1, dim]);
    rng.fillNormal(media_time_embs.f32, 0, 1);
  }
  return { frame_embs, media_time_embs };
}

/**
 * (B, T, F, v, D) features with the time embeddings added → (B, T, F·v, D). `label` names the
 * connector in the errors for more frames or media than the embeddings cover.
 */
export function addTimeEmbeddings(label: string, x: Tensor, emb: TimeEmbeddings): Tensor {
  const [B, T, F, v, D] = x.shape as [number, number, number, number, number];
  let feats = x;
  if (emb.frame_embs) {
    if (F > emb.frame_embs.shape[0]!) throw new ShapeError(label, `${F} frames exceed max_num_frames ${emb.frame_embs.shape[0]}`);
    // (F, 1, D) broadcast over B, T and tokens
    feats = add(feats, reshape(slice(emb.frame_embs, 0, 0, F), [F, 1, D]));
  }
  feats = reshape(feats, [B, T, F * v, D]);
  if (emb.media_time_embs) {
    if (T > emb.media_time_embs.shape[0]!) throw new ShapeError(label, `${T} media exceed max_num_media ${emb.media_time_embs.shape[0]}`);
    feats = add(feats, slice(emb.media_time_embs, 0, 0, T)); // (T, 1, D)
  }
  return feats;
}
