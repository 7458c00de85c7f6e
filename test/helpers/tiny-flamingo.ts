/**
 * The tiny Flamingo the model tests share: 16 px images, one ViT / resampler layer, a 2-layer LLaMA
 * LM of width 24 (3 heads) with cross-attention before every layer; token 38 is <image>, 39 <|endofchunk|>.
 * Tests that need other sizes spread it and override a section.
 */
import * as E from '../../src/engine/index.ts';
import { Tensor } from '../../src/engine/tensor.ts';
import { Rng } from '../../src/engine/rng.ts';
import type { Flamingo } from '../../src/model/flamingo.ts';
import type { FlamingoConfig } from '../../src/model/config.ts';

export const TINY: FlamingoConfig = {
  vision: { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 8, act: 'quick_gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
  resampler: { dim: 16, depth: 1, dim_head: 8, heads: 2, num_latents: 4, max_num_media: null, max_num_frames: null, ff_mult: 2, ln_eps: 1e-5 },
  xattn: { dim: 24, dim_visual: 16, dim_head: 8, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
  lm: { vocab_size: 40, hidden_size: 24, intermediate_size: 48, num_layers: 2, num_heads: 3, num_key_value_heads: 3, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 64 },
  flamingo: { cross_attn_every_n_layers: 1, media_token_id: 38, eoc_token_id: 39, pad_token_id: 0 },
};
export const IMG = 38;
export const EOC = 39;

/** Random normalised pixels (B, T media, 1 frame, 3, side, side). */
export function pixels(rng: Rng, B: number, T: number, side = 16): Tensor {
  const t = E.zeros([B, T, 1, 3, side, side]);
  rng.fillNormal(t.f32);
  return t;
}

/** Non-zero gates so the visual path matters (tanh(0) = 0 would leave the LM alone). */
export function openGates(m: Flamingo, v = 0.7): void {
  for (const g of m.lang_encoder.gated.values()) { g.attn_gate!.f32[0] = v; g.ff_gate!.f32[0] = -v; }
}

/**
 * Logits of a model on fixed inputs (two random images, seven tokens around two <image>s): the same
 * for every copy of a model, so two copies compare with one deepEqual.
 */
export function fixedInputLogits(model: Flamingo): Float32Array {
  const rng = new Rng(5);
  const vx = pixels(rng, 1, 2, model.config.vision.image_size);
  const m = model.config.flamingo.media_token_id;
  return E.noGrad(() => model.forward({ inputIds: new Tensor(Int32Array.from([5, m, 7, 9, m, 11, 13]), [1, 7]), visionX: vx })).f32;
}
