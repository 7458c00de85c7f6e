/**
 * CLIP-style Vision Transformer with open_clip's VisionTransformer layout (the frozen vision encoder;
 * paper §2.1 uses NFNet-F6, OpenFlamingo uses CLIP ViT-L/14, which this reproduces).
 *
 *   x = conv1(pixels) (no bias) → patches, row-major;  x = [cls; x] + pos;  x = ln_pre(x)
 *   per block:  x += out_proj(MHA(ln_1(x)));  x += c_proj(act(c_fc(ln_2(x))))
 *   pooled = ln_post(x)[:, 0] · proj;  tokens = ln_post(x)[:, 1:]  (or x[:, 1:] when !ln_post_on_tokens;
 *   [:, 0:], class token first, when tokens_include_cls)
 */
import { Tensor, disposeTensor, zeros, ShapeError, fmtShape } from '../engine/tensor.ts';
import { add, concat, matmul, patchEmbed, reshape, slice, broadcastTo } from '../engine/index.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm } from '../nn/layers.ts';
import type { VisionConfig } from './config.ts';
import { ResidualAttentionBlock, type BlockConfig } from './transformer.ts';

export interface VisionOutput {
  /** (N, grid², width): patch tokens fed to the Perceiver Resampler ((N, 1 + grid², width) with the class token). */
  tokens: Tensor;
  /** (N, output_dim): CLS after ln_post, projected (contrastive embedding, RICES retrieval). */
  pooled: Tensor;
}

export class VisionTransformer extends Module {
  readonly conv1: Tensor;
  readonly class_embedding: Tensor;
  readonly positional_embedding: Tensor;
  readonly ln_pre: LayerNorm;
  readonly blocks: ResidualAttentionBlock[];
  readonly ln_post: LayerNorm;
  readonly proj: Tensor;
  readonly grid: number;

  constructor(readonly config: VisionConfig, rng: Rng) {
    super();
    const { width, patch_size: p, image_size } = config;
    this.grid = image_size / p;
    const scale = width ** -0.5;
    const c = zeros([width, 3, p, p]);
    const fanIn = 3 * p * p;
    rng.fillUniform(c.f32, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
    this.conv1 = this.param('conv1.weight', c);
    const cls = zeros([width]);
    rng.fillNormal(cls.f32, 0, scale);
    this.class_embedding = this.param('class_embedding', cls);
    const pos = zeros([this.grid * this.grid + 1, width]);
    rng.fillNormal(pos.f32, 0, scale);
    this.positional_embedding = this.param('positional_embedding', pos);
    this.ln_pre = this.child('ln_pre', new LayerNorm(width, config.ln_eps));
    const block: BlockConfig = {
      width, heads: config.heads, hidden: Math.floor(width * config.mlp_ratio), act: config.act, lnEps: config.ln_eps, causal: false,
    };
    this.blocks = this.childList('transformer.resblocks', Array.from({ length: config.layers }, () => new ResidualAttentionBlock(block, rng)));
    this.ln_post = this.child('ln_post', new LayerNorm(width, config.ln_eps));
    const proj = zeros([width, config.output_dim]);
    rng.fillNormal(proj.f32, 0, scale);
    this.proj = this.param('proj', proj);
  }

  /** pixels: (N, 3, image_size, image_size), normalised. */
  forward(pixels: Tensor): VisionOutput {
    const cfg = this.config;
    if (pixels.ndim !== 4 || pixels.shape[1] !== 3 || pixels.shape[2] !== cfg.image_size || pixels.shape[3] !== cfg.image_size) {
      throw new ShapeError('vision_encoder', `expected pixels (N, 3, ${cfg.image_size}, ${cfg.image_size}), got ${fmtShape(pixels.shape)}`);
    }
    const N = pixels.shape[0]!;
    const patches = patchEmbed(pixels, this.conv1); // (N, P, width)
    const cls = broadcastTo(reshape(this.class_embedding, [1, 1, cfg.width]), [N, 1, cfg.width]);
    let x = add(concat([cls, patches], 1), this.positional_embedding);
    x = this.ln_pre.forward(x);
    for (const b of this.blocks) {
      const y = b.forward(x);
      disposeTensor(x); // the previous block's output (or ln_pre's): read by this block only
      x = y;
    }
    const L = x.shape[1]!;
    const normed = this.ln_post.forward(x);
    const pooled = matmul(reshape(slice(normed, 1, 0, 1), [N, cfg.width]), this.proj);
    const tokens = slice(cfg.ln_post_on_tokens ? normed : x, 1, cfg.tokens_include_cls ? 0 : 1, L);
    return { tokens, pooled };
  }
}
