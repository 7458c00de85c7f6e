/**
 * Flamingo (paper §2, Fig. 3): frozen vision encoder → Perceiver Resampler → frozen LM with a
 * GATED XATTN-DENSE block before decoder layer i whenever (i + 1) % cross_attn_every_n_layers == 0.
 * Parameter names follow OpenFlamingo: `vision_encoder.*` (open_clip), `perceiver.*`,
 * `lang_encoder.model.*` / `lang_encoder.lm_head.weight` (HF LLaMA), `lang_encoder.gated_cross_attn_layers.{i}.*`.
 *
 * Trainable by default (paper §3): the resampler, the gated blocks and the LM's input embeddings
 * (for the new <image> / <|endofchunk|> rows); the ViT and the rest of the LM are frozen.
 */
import { Tensor, fmtShape } from '../engine/tensor.ts';
import { noGrad, reshape, isGradEnabled, withBufferPool } from '../engine/index.ts';
import { Rng } from '../engine/rng.ts';
import { Module } from '../nn/module.ts';
import { SkipInitRng } from '../nn/skeleton.ts';
import { type FlamingoConfig, gatedLayerIndices, validateFlamingoConfig } from './config.ts';
import { checkModelSize } from './size.ts';
import { VisionTransformer } from './vit.ts';
import { createConnector, type VisionConnector } from './connectors.ts';
import { GatedCrossAttentionBlock, textTime, type MediaKV, type XAttnTrace } from './gated-xattn.ts';
import { createLanguageModel, type DecoderLM, type KVCache } from './lm/index.ts';
import { FlamingoError } from '../errors.ts';

export class FlamingoInputError extends FlamingoError {}

/** The language side: the LM's own parameters mounted at this level plus the gated blocks. */
export class LanguageEncoder extends Module {
  readonly lm: DecoderLM;
  readonly gated: Map<number, GatedCrossAttentionBlock> = new Map();
  constructor(cfg: FlamingoConfig, rng: Rng) {
    super();
    this.lm = this.mount(createLanguageModel(cfg.lm, rng.fork('lm')));
    const grng = rng.fork('gated');
    for (const i of gatedLayerIndices(cfg.lm.num_layers, cfg.flamingo.cross_attn_every_n_layers)) {
      this.gated.set(i, this.child(`gated_cross_attn_layers.${i}`, new GatedCrossAttentionBlock(cfg.xattn, grng)));
    }
  }
}

/** Conditioning and cache carried across calls during generation (explicit, not hidden module state). */
export interface FlamingoState {
  /** Visual tokens (B, T, n, D) computed once per prompt. */
  media: Tensor | null;
  cache: KVCache;
  /** Attention mask of all positions so far, row-major (B, length). */
  mask: Uint8Array;
  length: number;
  batch: number;
  /** Media tokens seen per row so far. */
  mediaCount: Int32Array;
  /** Per gated layer: keys/values of `media`, computed once (inference only). */
  mediaKV: Map<number, MediaKV>;
}

export interface ForwardOptions {
  /** int32 (B, L). */
  inputIds: Tensor;
  /** int32/uint8 (B, L), 1 = real token (default all ones). */
  attentionMask?: Tensor | null;
  /** Pixels (B, T, F, 3, H, W); encoded here. Mutually exclusive with `media`. */
  visionX?: Tensor | null;
  /** Precomputed visual tokens (B, T, n, D). */
  media?: Tensor | null;
  /** Continue from this state (KV cache); updated in place. */
  state?: FlamingoState | null;
  /** Generated tokens: attend to the last media of the prompt (OpenFlamingo use_cached_media). */
  useCachedMedia?: boolean;
  /** Called with the hidden states (B, L, hidden) going into and coming out of the gated block before LM layer `layer` (training taps). */
  onGated?: (layer: number, input: Tensor, output: Tensor) => void;
  /**
   * Opt-in inspection: called once per gated block with the per-media attention weights, gate values and
   * strength of this call's positions (XAttnTrace). Costs nothing when absent.
   */
  onXAttn?: (trace: XAttnTrace) => void;
}

export class Flamingo extends Module {
  readonly config: FlamingoConfig;
  readonly vision_encoder: VisionTransformer;
  /** The vision-to-LM connector: the Perceiver Resampler unless `resampler.connector` says otherwise. */
  readonly perceiver: VisionConnector;
  readonly lang_encoder: LanguageEncoder;

  /**
   * `init: false` builds a skeleton for a loader: parameters are left zero (norm weights one) and
   * untouched, to be overwritten tensor by tensor (nn/skeleton.ts).
   */
  constructor(config: FlamingoConfig, seed = 0, opts: { init?: boolean } = {}) {
    super();
    this.config = validateFlamingoConfig(config);
    // Before any parameter is allocated. A skeleton is filled by a loader in its own dtype (which checked the size
    // with its bytes per parameter), so here only the least any dtype takes is assumed.
    checkModelSize(this.config, { bytesPerParameter: opts.init === false ? 1 : 4 });
    const rng = opts.init === false ? new SkipInitRng() : new Rng(seed);
    this.vision_encoder = this.child('vision_encoder', new VisionTransformer(this.config.vision, rng.fork('vision')));
    this.perceiver = this.child('perceiver', createConnector(this.config.resampler, rng.fork('perceiver')));
    this.lang_encoder = this.child('lang_encoder', new LanguageEncoder(this.config, rng.fork('lang')));
    this.setTrainingMode('flamingo');
  }

  /**
   * Which parameters learn. 'flamingo' (paper): resampler + gated blocks (+ LM input embeddings when
   * trainEmbeddings; every LM parameter with trainLM, the paper's unfrozen-LM ablation); 'none': everything
   * frozen (inference).
   */
  setTrainingMode(mode: 'flamingo' | 'none', trainEmbeddings = true, trainLM = false): void {
    this.setTrainable(false);
    if (mode === 'none') return;
    this.perceiver.setTrainable(true);
    for (const g of this.lang_encoder.gated.values()) g.setTrainable(true);
    if (trainEmbeddings) this.lang_encoder.lm.embedWeight.requiresGrad = true;
    if (trainLM) this.lang_encoder.lm.setTrainable(true);
  }

  /** Vision encoder (no gradients: it is frozen) + resampler: (B, T, F, 3, H, W) → (B, T, n, D). */
  encodeVision(visionX: Tensor): Tensor {
    return this.encodeVisionWithPooled(visionX).media;
  }

  /** encodeVision, plus the ViT's pooled (contrastive) embeddings (B·T·F, output_dim) of the same frames. */
  encodeVisionWithPooled(visionX: Tensor): { media: Tensor; pooled: Tensor } {
    const v = this.config.vision;
    if (visionX.ndim !== 6 || visionX.shape[3] !== 3 || visionX.shape[4] !== v.image_size || visionX.shape[5] !== v.image_size) {
      throw new FlamingoInputError(`vision_x must be (B, T_img, F, 3, ${v.image_size}, ${v.image_size}), got ${fmtShape(visionX.shape)}`);
    }
    const [B, T, F] = visionX.shape as [number, number, number];
    const { tokens, pooled } = this.runVisionEncoder(reshape(visionX, [B * T * F, 3, v.image_size, v.image_size]));
    const [, P, W] = tokens.shape as [number, number, number];
    return { media: this.perceiver.forward(reshape(tokens, [B, T, F, P, W])), pooled };
  }

  /** ViT patch tokens (N, P, width) for N images, without gradients. */
  encodeImages(pixels: Tensor): Tensor {
    return this.runVisionEncoder(pixels).tokens;
  }

  private runVisionEncoder(pixels: Tensor): { tokens: Tensor; pooled: Tensor } {
    const frozen = !this.vision_encoder.parameters().some((p) => p.requiresGrad);
    // Frozen: no graph, so the encoder's dead intermediates (disposeTensor in transformer.ts) are reused
    // within the pass instead of piling up for the collector (~1.4 GB per bench `small` step).
    return frozen ? noGrad(() => withBufferPool(() => this.vision_encoder.forward(pixels))) : this.vision_encoder.forward(pixels);
  }

  newState(batch: number): FlamingoState {
    return { media: null, cache: this.lang_encoder.lm.newCache(), mask: new Uint8Array(0), length: 0, batch, mediaCount: new Int32Array(batch), mediaKV: new Map() };
  }

  /** Checks that run before any compute (clear messages for bad input). */
  private validate(ids: Int32Array, B: number, L: number, T: number | null, past: number): void {
    const V = this.config.lm.vocab_size;
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new FlamingoInputError(`token id ${t} at row ${Math.floor(i / L)}, position ${i % L} is outside the vocabulary [0, ${V})`);
      }
    }
    const maxLen = this.config.lm.max_position_embeddings;
    if (maxLen !== undefined && past + L > maxLen) {
      throw new FlamingoInputError(`sequence of ${past + L} tokens is longer than the model allows (${maxLen})`);
    }
    if (T !== null) {
      const mid = this.config.flamingo.media_token_id;
      for (let b = 0; b < B; b++) {
        let c = 0;
        for (let t = 0; t < L; t++) if (ids[b * L + t] === mid) c++;
        if (c > T) throw new FlamingoInputError(`row ${b} has ${c} <image> tokens but only ${T} images were given`);
      }
    }
  }

  /**
   * Logits (B, L, vocab) for the given tokens. With a state, continues its KV cache and appends to it.
   * Without media (and no media in the state) the gated blocks are skipped: pure text LM.
   */
  forward(opts: ForwardOptions): Tensor {
    const ids = opts.inputIds;
    if (ids.ndim !== 2 || ids.dtype !== 'int32') throw new FlamingoInputError(`input_ids must be int32 (B, L), got ${ids.dtype} ${fmtShape(ids.shape)}`);
    const [B, L] = ids.shape as [number, number];
    const state = opts.state ?? null;
    if (state && state.batch !== B) throw new FlamingoInputError(`state has batch ${state.batch} but input_ids has ${B} rows`);
    if (opts.visionX && opts.media) throw new FlamingoInputError('give either vision_x or media, not both');
    const T = opts.visionX ? opts.visionX.shape[1]! : opts.media ? opts.media.shape[1]! : state?.media ? state.media.shape[1]! : null;
    const past = state ? state.length : 0;
    this.validate(ids.i32, B, L, T, past);
    if (opts.visionX && opts.visionX.shape[0] !== B) throw new FlamingoInputError(`vision_x has batch ${opts.visionX.shape[0]} but input_ids has ${B} rows`);
    if (opts.media && (opts.media.ndim !== 4 || opts.media.shape[0] !== B)) throw new FlamingoInputError(`media must be (${B}, T, n, D), got ${fmtShape(opts.media.shape)}`);

    // attention mask of the new positions
    const newMask = new Uint8Array(B * L).fill(1);
    if (opts.attentionMask) {
      const m = opts.attentionMask;
      if (m.size !== B * L) throw new FlamingoInputError(`attention_mask ${fmtShape(m.shape)} does not match input_ids ${fmtShape(ids.shape)}`);
      for (let i = 0; i < B * L; i++) newMask[i] = m.data[i] ? 1 : 0;
    }
    const total = past + L;
    const keyMask = new Uint8Array(B * total);
    for (let b = 0; b < B; b++) {
      if (state && past > 0) keyMask.set(state.mask.subarray(b * past, (b + 1) * past), b * total);
      keyMask.set(newMask.subarray(b * L, (b + 1) * L), b * total + past);
    }
    const positions = new Tensor(positionIds(keyMask, B, total, past), [B, L]);

    let media: Tensor | null = opts.media ?? null;
    if (opts.visionX) media = this.encodeVision(opts.visionX);
    if (!media && state?.media) media = state.media;

    // text_time for the new positions
    const mid = this.config.flamingo.media_token_id;
    const I = ids.i32;
    const tt = new Int32Array(B * L);
    if (opts.useCachedMedia) {
      for (let b = 0; b < B; b++) tt.fill(state ? state.mediaCount[b]! : 0, b * L, (b + 1) * L);
    } else {
      const loc = new Uint8Array(B * L);
      for (let i = 0; i < B * L; i++) loc[i] = I[i] === mid ? 1 : 0;
      const local = textTime(loc, B, L, false);
      for (let b = 0; b < B; b++) {
        const base = state ? state.mediaCount[b]! : 0;
        for (let t = 0; t < L; t++) tt[b * L + t] = base + local[b * L + t]!;
      }
    }

    const lm = this.lang_encoder.lm;
    const ctx = { positions, keyMask, past, cache: state ? state.cache : null };
    // media keys/values are reused across generation steps; never while recording a graph
    const kvCache = state && !isGradEnabled() ? state.mediaKV : null;
    let x = lm.embed(ids);
    for (let i = 0; i < lm.numLayers; i++) {
      const g = this.lang_encoder.gated.get(i);
      if (g && media) {
        let kv = kvCache?.get(i) ?? null;
        if (kvCache && (!kv || kv.media !== media)) {
          kv = g.attn.mediaKV(media);
          kvCache.set(i, kv);
        }
        const input = x;
        const onX = opts.onXAttn;
        x = g.forward(x, media, tt, kv, onX ? (t) => onX({ layer: i, ...t }) : undefined);
        opts.onGated?.(i, input, x);
      }
      x = lm.layer(i, x, ctx);
    }
    const logits = lm.head(x);

    if (state) {
      state.mask = keyMask;
      state.length = total;
      if (media) state.media = media;
      if (!opts.useCachedMedia) for (let b = 0; b < B; b++) state.mediaCount[b] = tt[b * L + L - 1] ?? state.mediaCount[b]!;
    }
    return logits;
  }
}

/**
 * Rotary position ids from an attention mask (B, total): cumsum(mask) − 1 clamped at 0, for the
 * positions from `from` on (a KV-cached step passes the cached length). Returns (B, total − from).
 */
export function positionIds(mask: ArrayLike<number>, B: number, total: number, from = 0): Int32Array {
  const L = total - from;
  const pos = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let t = 0; t < total; t++) {
      c += mask[b * total + t] ? 1 : 0;
      if (t >= from) pos[b * L + t - from] = Math.max(0, c - 1);
    }
  }
  return pos;
}
