/**
 * Contrastive vision–text pretraining (paper §A.2.1; CLIP): the ViT's pooled embedding and a small text
 * transformer's end-of-text embedding are L2-normalised and compared with a learnable temperature;
 * the loss is the mean of image→text and text→image cross-entropy over the batch. Names follow open_clip
 * (`visual.*`, `transformer.resblocks.*`, `token_embedding`, `ln_final`, `text_projection`, `logit_scale`),
 * so `visual.*` loads straight into Flamingo's `vision_encoder`.
 */
import { Tensor, zeros, fromArray, intTensor } from '../engine/tensor.ts';
import {
  activation, add, attention, crossEntropy, embedding, exp, indexSelect, log, matmul, mul, reshape, scale, slice, sum, transpose, affine,
} from '../engine/index.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm, Linear } from '../nn/layers.ts';
import { VisionTransformer } from '../model/vit.ts';
import type { VisionConfig } from '../model/config.ts';
import { mergeHeads, splitHeads } from '../model/heads.ts';

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

class TextBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly in_proj: Linear;
  readonly out_proj: Linear;
  readonly ln_2: LayerNorm;
  readonly c_fc: Linear;
  readonly c_proj: Linear;
  constructor(readonly cfg: TextEncoderConfig, rng: Rng) {
    super();
    const W = cfg.width;
    const hidden = Math.round(W * cfg.mlp_ratio);
    this.ln_1 = this.child('ln_1', new LayerNorm(W));
    this.in_proj = this.child('attn.in_proj', new Linear(W, 3 * W, rng));
    this.out_proj = this.child('attn.out_proj', new Linear(W, W, rng));
    this.ln_2 = this.child('ln_2', new LayerNorm(W));
    this.c_fc = this.child('mlp.c_fc', new Linear(W, hidden, rng));
    this.c_proj = this.child('mlp.c_proj', new Linear(hidden, W, rng));
  }

  forward(x: Tensor): Tensor {
    const W = this.cfg.width;
    const qkv = this.in_proj.forward(this.ln_1.forward(x));
    const q = splitHeads(slice(qkv, 2, 0, W), this.cfg.heads);
    const k = splitHeads(slice(qkv, 2, W, 2 * W), this.cfg.heads);
    const v = splitHeads(slice(qkv, 2, 2 * W, 3 * W), this.cfg.heads);
    // Causal, as in CLIP: with right padding the end-of-text token never sees a pad, so no key mask is needed.
    const h = add(x, this.out_proj.forward(mergeHeads(attention(q, k, v, { causal: true }))));
    return add(h, this.c_proj.forward(activation('gelu', this.c_fc.forward(this.ln_2.forward(h)))));
  }
}

/** The CLIP text tower, at the root of a ClipModel's names (open_clip layout). */
export class ClipModel extends Module {
  readonly visual: VisionTransformer;
  readonly token_embedding: Tensor;
  readonly positional_embedding: Tensor;
  readonly blocks: TextBlock[];
  readonly ln_final: LayerNorm;
  readonly text_projection: Tensor;
  readonly logit_scale: Tensor;

  constructor(readonly vision: VisionConfig, readonly text: TextEncoderConfig, rng: Rng) {
    super();
    if (vision.output_dim !== text.output_dim) {
      throw new Error(`contrastive: vision output_dim ${vision.output_dim} differs from text output_dim ${text.output_dim}`);
    }
    this.visual = this.child('visual', new VisionTransformer(vision, rng.fork('visual')));
    const trng = rng.fork('text');
    const W = text.width;
    this.token_embedding = this.param('token_embedding.weight', zeros([text.vocab_size, W]));
    trng.fillNormal(this.token_embedding.f32, 0, 0.02);
    this.positional_embedding = this.param('positional_embedding', zeros([text.context_length, W]));
    trng.fillNormal(this.positional_embedding.f32, 0, 0.01);
    this.blocks = this.childList('transformer.resblocks', Array.from({ length: text.layers }, () => new TextBlock(text, trng)));
    this.ln_final = this.child('ln_final', new LayerNorm(W));
    this.text_projection = this.param('text_projection', zeros([W, text.output_dim]));
    trng.fillNormal(this.text_projection.f32, 0, W ** -0.5);
    this.logit_scale = this.param('logit_scale', fromArray([LOGIT_SCALE_INIT], [1]));
  }

  /** ids int32 (B, L) right-padded; lengths[b] = real tokens of row b (its last one is end-of-text). → (B, D). */
  encodeText(ids: Tensor, lengths: number[]): Tensor {
    const [B, L] = ids.shape as [number, number];
    if (L > this.text.context_length) throw new Error(`contrastive: text of ${L} tokens exceeds context_length ${this.text.context_length}`);
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

/** x / ‖x‖ along the last axis. */
export function l2normalize(x: Tensor, eps = 1e-12): Tensor {
  const ss = sum(mul(x, x), -1, true);
  return mul(x, exp(scale(log(affine(ss, 1, eps)), -0.5)));
}

/** Symmetric InfoNCE: image i matches text i. Returns the loss and the logits (B, B). */
export function clipLoss(imageEmb: Tensor, textEmb: Tensor, logitScale: Tensor): { loss: Tensor; logits: Tensor } {
  const B = imageEmb.shape[0]!;
  const logits = mul(matmul(l2normalize(imageEmb), l2normalize(textEmb), false, true), exp(logitScale));
  const labels = intTensor(Array.from({ length: B }, (_, i) => i), [B]);
  const loss = scale(add(crossEntropy(logits, labels), crossEntropy(transpose(logits, 0, 1), labels)), 0.5);
  return { loss, logits };
}

/** The vision tower's weights with `visual.` stripped (what Flamingo's vision_encoder loads). */
export function visionStateDict(model: ClipModel): Map<string, { shape: readonly number[]; data: Float32Array }> {
  const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, t] of model.visual.namedParameters()) out.set(name, { shape: t.shape, data: t.f32 });
  return out;
}
