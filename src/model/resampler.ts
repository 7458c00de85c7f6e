/**
 * Perceiver Resampler (paper §2.1, Fig. 4; OpenFlamingo PerceiverResampler layout).
 *
 * Input X_f: (B, T, F, v, D) visual features (T media, F frames, v tokens each).
 *   X_f += frame_embs[:F]                       (video: learned time embedding per frame)
 *   X_f  = flatten(F·v);  X_f += media_time_embs[:T]
 *   X    = latents broadcast to (B, T, n, D)    (n learned latent queries, 64 in the paper)
 *   per layer:  KV = [norm_media(X_f); norm_latents(X)],  Q = norm_latents(X)
 *               X += to_out(softmax(Q Kᵀ / √d_head) V)   (keys/values = features ++ latents)
 *               X += FF(X),  FF = LayerNorm → Linear → GELU → Linear (no biases)
 *   output = norm(X): (B, T, n, D) visual tokens, each media resampled independently.
 */
import { Tensor, zeros, ShapeError, fmtShape } from '../engine/tensor.ts';
import { add, attention, concat, gelu, reshape, broadcastTo, slice } from '../engine/index.ts';
import { addTimeEmbeddings, newTimeEmbeddings } from './time-embeddings.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm, Linear } from '../nn/layers.ts';
import type { ResamplerConfig } from './config.ts';
import { mergeHeads, splitHeads } from './heads.ts';

/** LayerNorm → Linear(no bias) → GELU → Linear(no bias), named like nn.Sequential (0, 1, 3). */
export class FeedForward extends Module {
  readonly norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, mult: number, eps: number, rng: Rng) {
    super();
    this.norm = this.child('0', new LayerNorm(dim, eps));
    this.fc1 = this.child('1', new Linear(dim, dim * mult, rng, false));
    this.fc2 = this.child('3', new Linear(dim * mult, dim, rng, false));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(gelu(this.fc1.forward(this.norm.forward(x))));
  }
}

class PerceiverAttention extends Module {
  readonly norm_media: LayerNorm;
  readonly norm_latents: LayerNorm;
  readonly to_q: Linear;
  readonly to_kv: Linear;
  readonly to_out: Linear;
  readonly inner: number;
  constructor(readonly cfg: ResamplerConfig, rng: Rng) {
    super();
    this.inner = cfg.heads * cfg.dim_head;
    this.norm_media = this.child('norm_media', new LayerNorm(cfg.dim, cfg.ln_eps));
    this.norm_latents = this.child('norm_latents', new LayerNorm(cfg.dim, cfg.ln_eps));
    this.to_q = this.child('to_q', new Linear(cfg.dim, this.inner, rng, false));
    this.to_kv = this.child('to_kv', new Linear(cfg.dim, 2 * this.inner, rng, false));
    this.to_out = this.child('to_out', new Linear(this.inner, cfg.dim, rng, false));
  }

  /** x: (M, S, D) features, latents: (M, n, D), M = B·T media. */
  forward(x: Tensor, latents: Tensor): Tensor {
    const xn = this.norm_media.forward(x);
    const ln = this.norm_latents.forward(latents);
    const q = splitHeads(this.to_q.forward(ln), this.cfg.heads);
    const kv = this.to_kv.forward(concat([xn, ln], 1)); // K in the first `inner` columns, V after
    const k = splitHeads(slice(kv, 2, 0, this.inner), this.cfg.heads);
    const v = splitHeads(slice(kv, 2, this.inner, 2 * this.inner), this.cfg.heads);
    return this.to_out.forward(mergeHeads(attention(q, k, v, { scale: this.cfg.dim_head ** -0.5 })));
  }
}

class ResamplerLayer extends Module {
  readonly attn: PerceiverAttention;
  readonly ff: FeedForward;
  constructor(cfg: ResamplerConfig, rng: Rng) {
    super();
    this.attn = this.child('0', new PerceiverAttention(cfg, rng));
    this.ff = this.child('1', new FeedForward(cfg.dim, cfg.ff_mult, cfg.ln_eps, rng));
  }
}

export class PerceiverResampler extends Module {
  readonly latents: Tensor;
  readonly frame_embs: Tensor | null;
  readonly media_time_embs: Tensor | null;
  readonly layers: ResamplerLayer[];
  readonly norm: LayerNorm;

  constructor(readonly config: ResamplerConfig, rng: Rng) {
    super();
    const { dim, num_latents } = config;
    const lat = zeros([num_latents, dim]);
    rng.fillNormal(lat.f32, 0, 1);
    this.latents = this.param('latents', lat);
    const time = newTimeEmbeddings(config, rng);
    this.frame_embs = time.frame_embs && this.param('frame_embs', time.frame_embs);
    this.media_time_embs = time.media_time_embs && this.param('media_time_embs', time.media_time_embs);
    this.layers = this.childList('layers', Array.from({ length: config.depth }, () => new ResamplerLayer(config, rng)));
    this.norm = this.child('norm', new LayerNorm(dim, config.ln_eps));
  }

  /** x: (B, T, F, v, D) → (B, T, n, D). */
  forward(x: Tensor): Tensor {
    const cfg = this.config;
    if (x.ndim !== 5 || x.shape[4] !== cfg.dim) {
      throw new ShapeError('perceiver_resampler', `expected features (B, T, F, v, ${cfg.dim}), got ${fmtShape(x.shape)}`);
    }
    const [B, T, F, v, D] = x.shape as [number, number, number, number, number];
    const feats = addTimeEmbeddings('perceiver_resampler', x, this);
    const M = B * T;
    const flat = reshape(feats, [M, F * v, D]);
    let lat = broadcastTo(reshape(this.latents, [1, cfg.num_latents, D]), [M, cfg.num_latents, D]);
    for (const layer of this.layers) {
      lat = add(lat, layer.attn.forward(flat, lat));
      lat = add(lat, layer.ff.forward(lat));
    }
    return reshape(this.norm.forward(lat), [B, T, cfg.num_latents, D]);
  }
}
