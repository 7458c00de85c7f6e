/**
 * The vision-to-LM connector (paper §3.3, Table 3 (vi)): what turns a media item's ViT tokens into the n visual
 * tokens the gated cross-attention reads. `perceiver` is the Perceiver Resampler (resampler.ts, the paper's
 * choice); the ablation's alternatives, with the same depth, widths, frame / media-time embeddings and output
 * shape (B, T, n, D):
 *   transformer  — pre-norm self-attention + feed-forward layers over the F·v features of each media item,
 *   mlp          — the same per-token feed-forward layers without attention,
 * each followed by average pooling of the F·v tokens into n contiguous windows (adaptive average pooling; a
 * window repeats a token when F·v < n) and a final LayerNorm. They are mounted at `perceiver.*` like the
 * resampler, so the rest of the model does not care which one it has.
 */
import { Tensor, ShapeError, fmtShape } from '../engine/tensor.ts';
import { add, attention, matmul, permute, reshape, slice } from '../engine/index.ts';
import { addTimeEmbeddings, newTimeEmbeddings } from './time-embeddings.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm, Linear } from '../nn/layers.ts';
import type { ResamplerConfig, VisionConnectorKind } from './config.ts';
import { mergeHeads, splitHeads } from './heads.ts';
import { FeedForward, PerceiverResampler } from './resampler.ts';

/** Anything at `perceiver.*`: (B, T, F, v, D) features → (B, T, n, D) visual tokens. */
export interface VisionConnector extends Module {
  readonly config: ResamplerConfig;
  forward(x: Tensor): Tensor;
}

class SelfAttention extends Module {
  readonly norm: LayerNorm;
  readonly to_qkv: Linear;
  readonly to_out: Linear;
  readonly inner: number;
  constructor(readonly cfg: ResamplerConfig, rng: Rng) {
    super();
    this.inner = cfg.heads * cfg.dim_head;
    this.norm = this.child('norm', new LayerNorm(cfg.dim, cfg.ln_eps));
    this.to_qkv = this.child('to_qkv', new Linear(cfg.dim, 3 * this.inner, rng, false));
    this.to_out = this.child('to_out', new Linear(this.inner, cfg.dim, rng, false));
  }

  /** x: (M, S, D) → (M, S, D), bidirectional over the S tokens of each media item. */
  forward(x: Tensor): Tensor {
    const qkv = this.to_qkv.forward(this.norm.forward(x));
    const h = this.cfg.heads;
    const part = (i: number) => splitHeads(slice(qkv, 2, i * this.inner, (i + 1) * this.inner), h);
    return this.to_out.forward(mergeHeads(attention(part(0), part(1), part(2), { scale: this.cfg.dim_head ** -0.5 })));
  }
}

class TokenLayer extends Module {
  readonly attn: SelfAttention | null;
  readonly ff: FeedForward;
  constructor(cfg: ResamplerConfig, rng: Rng, withAttention: boolean) {
    super();
    this.attn = withAttention ? this.child('attn', new SelfAttention(cfg, rng)) : null;
    this.ff = this.child('ff', new FeedForward(cfg.dim, cfg.ff_mult, cfg.ln_eps, rng));
  }
}

/**
 * (S, n) averaging matrix of adaptive average pooling (PyTorch's adaptive_avg_pool1d windows):
 * output i averages tokens [⌊i·S/n⌋, ⌈(i+1)·S/n⌉).
 */
export function poolingMatrix(S: number, n: number): Tensor {
  const p = new Float32Array(S * n);
  for (let i = 0; i < n; i++) {
    const lo = Math.floor((i * S) / n);
    const hi = Math.ceil(((i + 1) * S) / n);
    for (let s = lo; s < hi; s++) p[s * n + i] = 1 / (hi - lo);
  }
  return new Tensor(p, [S, n]);
}

/** The Transformer and MLP connectors of the ablation (see the file comment). */
export class TokenConnector extends Module implements VisionConnector {
  readonly frame_embs: Tensor | null;
  readonly media_time_embs: Tensor | null;
  readonly layers: TokenLayer[];
  readonly norm: LayerNorm;

  constructor(readonly config: ResamplerConfig, readonly kind: 'transformer' | 'mlp', rng: Rng) {
    super();
    const { dim } = config;
    const time = newTimeEmbeddings(config, rng);
    this.frame_embs = time.frame_embs && this.param('frame_embs', time.frame_embs);
    this.media_time_embs = time.media_time_embs && this.param('media_time_embs', time.media_time_embs);
    this.layers = this.childList('layers', Array.from({ length: config.depth }, () => new TokenLayer(config, rng, kind === 'transformer')));
    this.norm = this.child('norm', new LayerNorm(dim, config.ln_eps));
  }

  forward(x: Tensor): Tensor {
    const cfg = this.config;
    if (x.ndim !== 5 || x.shape[4] !== cfg.dim) {
      throw new ShapeError(`${this.kind}_connector`, `expected features (B, T, F, v, ${cfg.dim}), got ${fmtShape(x.shape)}`);
    }
    const [B, T, F, v, D] = x.shape as [number, number, number, number, number];
    const feats = addTimeEmbeddings(`${this.kind}_connector`, x, this);
    const S = F * v;
    let h = reshape(feats, [B * T, S, D]);
    for (const layer of this.layers) {
      if (layer.attn) h = add(h, layer.attn.forward(h));
      h = add(h, layer.ff.forward(h));
    }
    // (M, S, D)ᵀ · (S, n) = (M, D, n) → (M, n, D)
    const pooled = permute(matmul(h, poolingMatrix(S, cfg.num_latents), true), [0, 2, 1]);
    return reshape(this.norm.forward(pooled), [B, T, cfg.num_latents, D]);
  }
}

export function createConnector(config: ResamplerConfig, rng: Rng): VisionConnector {
  const kind: VisionConnectorKind = config.connector ?? 'perceiver';
  return kind === 'perceiver' ? new PerceiverResampler(config, rng) : new TokenConnector(config, kind, rng);
}
