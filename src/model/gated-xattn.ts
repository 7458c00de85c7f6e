/**
 * GATED XATTN-DENSE block (paper §2.2, Fig. 4) with image-causal masking (§2.3), OpenFlamingo layout.
 *
 *   y = x + tanh(α_attn) · to_out(softmax(Q Kᵀ/√d + mask) V),  Q = to_q(LN(x)), [K;V] = to_kv(media)
 *   y = y + tanh(α_ff) · FF(y)
 * α_attn = α_ff = 0 at initialisation, so the frozen LM is unchanged at the start of training.
 *
 * Masking: text_time(t) = number of <image> tokens at or before position t. Media j (1-based) is
 * visible iff text_time == j (only the most recent image, the paper's choice) or text_time ≥ j
 * (all previous images, the ablation). Tokens before any image see no media: their attention output
 * is zero when attending only to the immediate image; with all-previous media every key is masked
 * alike and the softmax is uniform (OpenFlamingo's behaviour, reproduced for parity).
 * With `useCachedMedia` (generation after the prompt), every position takes text_time = the row's
 * total media count, i.e. attends to the last image of its prompt.
 */
import { Tensor, emptyF32, full, ShapeError, fmtShape } from '../engine/tensor.ts';
import { needsGrad, record } from '../engine/autograd.ts';
import { add, attention, mul, reshape, slice, tanh } from '../engine/index.ts';
import type { AttentionMask } from '../engine/ops/attention.ts';
import type { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { LayerNorm, Linear } from '../nn/layers.ts';
import type { XAttnConfig } from './config.ts';
import { mergeHeads, splitHeads } from './heads.ts';
import { FeedForward } from './resampler.ts';

/**
 * The per-row media counter used by the mask: text_time[b, t] (int32, (B, L)).
 * mediaLocations: (B, L) nonzero where the token is <image>.
 */
export function textTime(mediaLocations: Int32Array | Uint8Array, B: number, L: number, useCachedMedia: boolean, outLen = L): Int32Array {
  const tt = new Int32Array(B * outLen);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let t = 0; t < L; t++) {
      if (mediaLocations[b * L + t]) c++;
      if (!useCachedMedia) tt[b * outLen + t] = c;
    }
    if (useCachedMedia) tt.fill(c, b * outLen, (b + 1) * outLen);
  }
  return tt;
}

/** Boolean (B, Lq, T·n) visibility mask from text_time. */
export function mediaMask(tt: Int32Array, B: number, Lq: number, T: number, n: number, onlyImmediate: boolean): AttentionMask {
  const Lk = T * n;
  const data = new Uint8Array(B * Lq * Lk);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Lq; t++) {
      const time = tt[b * Lq + t]!;
      const row = (b * Lq + t) * Lk;
      for (let j = 0; j < T; j++) {
        const visible = onlyImmediate ? time === j + 1 : time >= j + 1;
        if (visible) data.fill(1, row + j * n, row + (j + 1) * n);
      }
    }
  }
  return { data, batchStride: Lq * Lk, qStride: Lk };
}

/** Media keys/values of one cross-attention layer, valid for `media`. */
export interface MediaKV {
  media: Tensor;
  k: Tensor;
  v: Tensor;
}

/**
 * What one gated block did at each query position, recorded only when asked (see ForwardOptions.onXAttn):
 * the attention mass each media item received and how much the gated cross-attention moved the token.
 */
export interface XAttnTrace {
  /** Index of the LM layer this block sits before. */
  layer: number;
  batch: number;
  /** Query positions of this call. */
  length: number;
  /** Media items T. */
  media: number;
  /** tanh(α_attn) and tanh(α_ff): how far the block is opened (0 at initialisation). */
  attnGate: number;
  ffGate: number;
  /**
   * (B, L, T): softmax mass on each media item's n visual tokens, averaged over heads. A row sums to 1
   * (all zeros when the position sees no media under image-causal masking).
   */
  mediaWeights: Float32Array;
  /** (B, L): ‖tanh(α_attn)·xattn(x)‖ / ‖x‖ per position — the images' share of the change to the residual stream. */
  strength: Float32Array;
}

/**
 * Attention probabilities aggregated per media item: (B, Lq, T), averaged over heads. Mirrors the
 * masking and the fully-masked rule of `attention` so the numbers are the weights the block used.
 */
export function mediaAttentionWeights(q: Tensor, k: Tensor, mask: AttentionMask, T: number, n: number, scale: number, uniformIfFullyMasked: boolean): Float32Array {
  const [B, H, Lq, D] = q.shape as [number, number, number, number];
  const Lk = T * n;
  const Q = q.f32;
  const K = k.f32;
  const out = new Float32Array(B * Lq * T);
  const s = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const qb = ((b * H + h) * Lq) * D;
      const kb = ((b * H + h) * Lk) * D;
      for (let t = 0; t < Lq; t++) {
        const mrow = b * mask.batchStride + t * mask.qStride;
        let m = -Infinity;
        let any = false;
        for (let j = 0; j < Lk; j++) {
          if (!mask.data[mrow + j]) { s[j] = -Infinity; continue; }
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[qb + t * D + d]! * K[kb + j * D + d]!;
          s[j] = dot * scale;
          any = true;
          if (s[j]! > m) m = s[j]!;
        }
        const o = (b * Lq + t) * T;
        if (!any) {
          if (uniformIfFullyMasked) for (let j = 0; j < T; j++) out[o + j]! += 1 / T / H;
          continue;
        }
        let z = 0;
        for (let j = 0; j < Lk; j++) if (s[j] !== -Infinity) { s[j] = Math.exp(s[j]! - m); z += s[j]!; } else s[j] = 0;
        for (let j = 0; j < Lk; j++) out[o + Math.floor(j / n)]! += s[j]! / z / H;
      }
    }
  }
  return out;
}

/** ‖a_row‖ / ‖x_row‖ for each of the B·L rows of two (B, L, dim) tensors, times `gain`. */
function rowNormRatio(a: Tensor, x: Tensor, gain: number): Float32Array {
  const dim = x.shape[2]!;
  const rows = x.size / dim;
  const out = new Float32Array(rows);
  const A = a.f32;
  const X = x.f32;
  for (let r = 0; r < rows; r++) {
    let na = 0;
    let nx = 0;
    for (let d = 0; d < dim; d++) { na += A[r * dim + d]! ** 2; nx += X[r * dim + d]! ** 2; }
    out[r] = nx > 0 ? (Math.abs(gain) * Math.sqrt(na)) / Math.sqrt(nx) : 0;
  }
  return out;
}

export class MaskedCrossAttention extends Module {
  readonly norm: LayerNorm;
  readonly to_q: Linear;
  readonly to_kv: Linear;
  readonly to_out: Linear;
  readonly inner: number;
  constructor(readonly cfg: XAttnConfig, rng: Rng) {
    super();
    this.inner = cfg.heads * cfg.dim_head;
    this.norm = this.child('norm', new LayerNorm(cfg.dim, cfg.ln_eps));
    this.to_q = this.child('to_q', new Linear(cfg.dim, this.inner, rng, false));
    this.to_kv = this.child('to_kv', new Linear(cfg.dim_visual, 2 * this.inner, rng, false));
    this.to_out = this.child('to_out', new Linear(this.inner, cfg.dim, rng, false));
  }

  /** Keys and values of the media, (B, heads, T·n, dim_head) each. */
  mediaKV(media: Tensor): MediaKV {
    const [B, T, n, Dv] = media.shape as [number, number, number, number];
    const kv = this.to_kv.forward(reshape(media, [B, T * n, Dv]));
    return {
      media,
      k: splitHeads(slice(kv, 2, 0, this.inner), this.cfg.heads),
      v: splitHeads(slice(kv, 2, this.inner, 2 * this.inner), this.cfg.heads),
    };
  }

  /**
   * x: (B, L, dim); media: (B, T, n, dim_visual); tt: text_time (B, L). `cached` holds this block's
   * media keys/values from an earlier call on the same media (generation computes them once).
   * `onWeights` (opt-in, inference-time inspection) receives the per-media attention weights (B, L, T).
   */
  forward(x: Tensor, media: Tensor, tt: Int32Array, cached: MediaKV | null = null, onWeights?: (w: Float32Array) => void): Tensor {
    const [B, L] = x.shape as [number, number];
    const [, T, n] = media.shape as [number, number, number, number];
    const q = splitHeads(this.to_q.forward(this.norm.forward(x)), this.cfg.heads);
    const { k, v } = cached && cached.media === media ? cached : this.mediaKV(media);
    const onlyImmediate = this.cfg.only_attend_immediate_media;
    const mask = mediaMask(tt, B, L, T, n, onlyImmediate);
    const scale = this.cfg.dim_head ** -0.5;
    const o = attention(q, k, v, { mask, scale, uniformIfFullyMasked: !onlyImmediate });
    if (onWeights) onWeights(mediaAttentionWeights(q, k, mask, T, n, scale, !onlyImmediate));
    return this.to_out.forward(mergeHeads(o));
  }
}

export class GatedCrossAttentionBlock extends Module {
  readonly attn: MaskedCrossAttention;
  /** α of the tanh gates; null with `gating: 'none'` (the residual is added ungated). */
  readonly attn_gate: Tensor | null;
  readonly ff: FeedForward;
  readonly ff_gate: Tensor | null;
  constructor(readonly config: XAttnConfig, rng: Rng) {
    super();
    const gated = (config.gating ?? 'tanh') === 'tanh';
    // tanh(0) = 0: identity at init (paper); a non-zero gate_init is the ablation
    const gate = () => full([1], config.gate_init ?? 0);
    this.attn = this.child('attn', new MaskedCrossAttention(config, rng));
    this.attn_gate = gated ? this.param('attn_gate', gate()) : null;
    this.ff = this.child('ff', new FeedForward(config.dim, config.ff_mult, config.ln_eps, rng));
    this.ff_gate = gated ? this.param('ff_gate', gate()) : null;
  }

  /** tanh(α_attn) and tanh(α_ff); 1 for an ungated block. */
  gateValues(): { attn: number; ff: number } {
    return { attn: this.attn_gate ? Math.tanh(this.attn_gate.f32[0]!) : 1, ff: this.ff_gate ? Math.tanh(this.ff_gate.f32[0]!) : 1 };
  }

  private gated(x: Tensor, gate: Tensor | null): Tensor {
    return gate ? mul(x, tanh(gate)) : x;
  }

  /**
   * x + tanh(α)·a. Without a graph to record (generation) in one pass and one output instead of
   * three ops and three outputs per residual; each element is still the float32 product rounded,
   * then the float32 sum rounded (exact in float64 before fround), so results are identical.
   */
  private residual(x: Tensor, a: Tensor, gate: Tensor | null): Tensor {
    if (!gate || needsGrad(x, a, gate)) return add(x, this.gated(a, gate));
    if (a.ndim !== x.ndim || a.shape.some((d, i) => d !== x.shape[i]) || x.dtype !== 'float32' || a.dtype !== 'float32') {
      return add(x, this.gated(a, gate));
    }
    const t = tanh(gate).f32[0]!;
    const X = x.f32;
    const A = a.f32;
    const out = emptyF32(x.size);
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(X[i]! + Math.fround(A[i]! * t));
    // recorded for the profiler only: needsGrad was false, so no node (and no backward) is kept
    return record(new Tensor(out, x.shape), 'gated_residual', [x, a, gate], () => {});
  }

  /**
   * x: (B, L, dim); media: (B, T, n, dim_visual); tt: text_time for x's positions (see textTime).
   * `trace` (opt-in; nothing is computed for it otherwise) receives what the block did, see XAttnTrace.
   */
  forward(x: Tensor, media: Tensor, tt: Int32Array, cached: MediaKV | null = null, trace?: (t: Omit<XAttnTrace, 'layer'>) => void): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.config.dim) throw new ShapeError('gated_xattn', `expected x (B, L, ${this.config.dim}), got ${fmtShape(x.shape)}`);
    if (media.ndim !== 4 || media.shape[0] !== x.shape[0] || media.shape[3] !== this.config.dim_visual) {
      throw new ShapeError('gated_xattn', `expected media (${x.shape[0]}, T, n, ${this.config.dim_visual}), got ${fmtShape(media.shape)}`);
    }
    if (tt.length !== x.shape[0]! * x.shape[1]!) throw new ShapeError('gated_xattn', `text_time has ${tt.length} entries for x ${fmtShape(x.shape)}`);
    if (!trace) {
      const y = this.residual(x, this.attn.forward(x, media, tt, cached), this.attn_gate);
      return this.residual(y, this.ff.forward(y), this.ff_gate);
    }
    let weights: Float32Array | null = null;
    const a = this.attn.forward(x, media, tt, cached, (w) => { weights = w; });
    const g = this.gateValues();
    const y = add(x, this.gated(a, this.attn_gate));
    const [B, L] = x.shape as [number, number];
    trace({
      batch: B, length: L, media: media.shape[1]!, attnGate: g.attn, ffGate: g.ff,
      mediaWeights: weights!, strength: rowNormRatio(a, x, g.attn),
    });
    return add(y, this.gated(this.ff.forward(y), this.ff_gate));
  }
}
