/**
 * CLIP (open_clip's CLIP layout): the vision tower (`visual.*`, the ViT Flamingo keeps frozen) and a text
 * tower (`token_embedding`, `positional_embedding`, causal `transformer.resblocks.*` — the same block as the
 * ViT's —, `ln_final`, `text_projection`) with a learnable temperature `logit_scale`. Trained by the
 * contrastive stage (src/train/clip.ts has the loss); `visual.*` loads straight into Flamingo's vision_encoder.
 */
import { Tensor, zeros, fromArray, intTensor } from '../engine/tensor.ts';
import { add, embedding, indexSelect, matmul, reshape, slice } from '../engine/index.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm } from '../nn/layers.ts';
import { VisionTransformer } from './vit.ts';
import type { VisionConfig } from './config.ts';
import { ConfigError } from './config-error.ts';
import { FlamingoInputError } from './flamingo.ts';
import { ResidualAttentionBlock, type BlockConfig } from './transformer.ts';

export interface TextEncoderConfig {
  vocab_size: number;
  /** Longest token sequence (positions); texts are cut to this, end-of-text included. */
  context_length: number;
  width: number;
  layers: number;
  heads: number;
  mlp_ratio: number;
  /** Joint embedding size; must equal the vision tower's output_dim. */
  output_dim: number;
}

export const LOGIT_SCALE_INIT = Math.log(1 / 0.07);
export const LOGIT_SCALE_MAX = Math.log(100);

/** The CLIP model: vision and text towers at the root of open_clip's names. */
export class ClipModel extends Module {
  readonly visual: VisionTransformer;
  readonly token_embedding: Tensor;
  readonly positional_embedding: Tensor;
  readonly blocks: ResidualAttentionBlock[];
  readonly ln_final: LayerNorm;
  readonly text_projection: Tensor;
  readonly logit_scale: Tensor;

  constructor(readonly vision: VisionConfig, readonly text: TextEncoderConfig, rng: Rng) {
    super();
    if (vision.output_dim !== text.output_dim) {
      throw new ConfigError(`contrastive: vision output_dim ${vision.output_dim} differs from text output_dim ${text.output_dim}`);
    }
    this.visual = this.child('visual', new VisionTransformer(vision, rng.fork('visual')));
    const trng = rng.fork('text');
    const W = text.width;
    this.token_embedding = this.param('token_embedding.weight', zeros([text.vocab_size, W]));
    trng.fillNormal(this.token_embedding.f32, 0, 0.02);
    this.positional_embedding = this.param('positional_embedding', zeros([text.context_length, W]));
    trng.fillNormal(this.positional_embedding.f32, 0, 0.01);
    // Causal, as in CLIP: with right padding the end-of-text token never sees a pad, so no key mask is needed.
    const block: BlockConfig = { width: W, heads: text.heads, hidden: Math.round(W * text.mlp_ratio), act: 'gelu', lnEps: 1e-5, causal: true };
    this.blocks = this.childList('transformer.resblocks', Array.from({ length: text.layers }, () => new ResidualAttentionBlock(block, trng)));
    this.ln_final = this.child('ln_final', new LayerNorm(W));
    this.text_projection = this.param('text_projection', zeros([W, text.output_dim]));
    trng.fillNormal(this.text_projection.f32, 0, W ** -0.5);
    this.logit_scale = this.param('logit_scale', fromArray([LOGIT_SCALE_INIT], [1]));
  }

  /** ids int32 (B, L) right-padded; lengths[b] = real tokens of row b (its last one is end-of-text). → (B, D). */
  encodeText(ids: Tensor, lengths: number[]): Tensor {
    const [B, L] = ids.shape as [number, number];
    if (L > this.text.context_length) throw new FlamingoInputError(`contrastive: text of ${L} tokens exceeds context_length ${this.text.context_length}`);
    let x = add(embedding(this.token_embedding, ids), slice(this.positional_embedding, 0, 0, L));
    for (const b of this.blocks) x = b.forward(x);
    const eot = intTensor(lengths.map((n, b) => b * L + n - 1), [B]);
    const pooled = this.ln_final.forward(indexSelect(reshape(x, [B * L, this.text.width]), 0, eot));
    return matmul(pooled, this.text_projection);
  }

  encodeImage(pixels: Tensor): Tensor {
    return this.visual.forward(pixels).pooled;
  }

  /** Keep the temperature in range after each update (open_clip clamps logit_scale to [0, ln 100]). */
  clampLogitScale(): void {
    const d = this.logit_scale.f32;
    d[0] = Math.min(LOGIT_SCALE_MAX, Math.max(0, d[0]!));
  }
}
