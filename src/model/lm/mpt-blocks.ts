/**
 * The decoder shared by the two MPT code bases (MosaicGPT, the April-2023 Hugging Face export of
 * mosaicml/examples, and llm-foundry's MPT); they differ only in names and config fields, which
 * their family files (mosaic_gpt.ts, mpt.ts) supply.
 *
 *   qkv = Wqkv(ln_1(x)) (clamped to ±clip_qkv), q | k | v = its three d_model column blocks,
 *   q, k = q_ln(q), k_ln(k) (qk_ln), scores = q·k · scale + ALiBi, x += out_proj(attn)
 *   x += down(gelu(up(ln_2(x))));  logits = ln_f(x) @ wteᵀ (· logit_scale)
 */
import { Tensor } from '../../engine/tensor.ts';
import { activation, add, clamp, embedding, linear, scale as scaleOp, split } from '../../engine/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { Module } from '../../nn/module.ts';
import { Embedding, LayerNorm, Linear } from '../../nn/layers.ts';
import type { HFLMConfig, LMConfigBase } from '../config.ts';
import type { LMFamily } from './family.ts';
import { hfInt, validateHFLM, type HF } from './hf-config.ts';
import { mergeHeads, splitHeads } from '../heads.ts';
import type { DecoderLM, KVCache, LayerContext } from './types.ts';
import { appendToCache, causalAttention } from './causal-attention.ts';
import { emptyCache, layerAt } from './decoder-stack.ts';

export interface MPTNames {
  ln1: string;
  ln2: string;
  mlp: string;
  up: string;
  down: string;
  lnF: string;
}

export interface MPTSpec {
  d_model: number;
  n_heads: number;
  n_layers: number;
  ffn_hidden: number;
  no_bias: boolean;
  qk_ln: boolean;
  clip_qkv: number | null;
  /** null: (d_model / n_heads)^-0.5. */
  softmax_scale: number | null;
  /** null: none. */
  logit_scale: number | null;
  slopes: Float32Array;
  ln_eps: number;
}

class MPTAttention extends Module {
  readonly Wqkv: Linear;
  readonly q_ln: LayerNorm | null = null;
  readonly k_ln: LayerNorm | null = null;
  readonly out_proj: Linear;
  constructor(readonly s: MPTSpec, readonly slopes: Tensor, rng: Rng) {
    super();
    const D = s.d_model;
    this.Wqkv = this.child('Wqkv', new Linear(D, 3 * D, rng, !s.no_bias));
    if (s.qk_ln) {
      this.q_ln = this.child('q_ln', new LayerNorm(D, s.ln_eps, !s.no_bias));
      this.k_ln = this.child('k_ln', new LayerNorm(D, s.ln_eps, !s.no_bias));
    }
    this.out_proj = this.child('out_proj', new Linear(D, D, rng, !s.no_bias));
  }

  forward(x: Tensor, ctx: LayerContext, layerIndex: number): Tensor {
    const { d_model: D, n_heads: H } = this.s;
    let qkv = this.Wqkv.forward(x);
    if (this.s.clip_qkv !== null) qkv = clamp(qkv, -this.s.clip_qkv, this.s.clip_qkv);
    let [q, k, v] = split(qkv, [D, D, D], -1) as [Tensor, Tensor, Tensor];
    if (this.q_ln && this.k_ln) {
      q = this.q_ln.forward(q);
      k = this.k_ln.forward(k);
    }
    q = splitHeads(q, H);
    k = splitHeads(k, H);
    v = splitHeads(v, H);
    [k, v] = appendToCache(ctx, layerIndex, k, v);
    const o = causalAttention('mpt_attention', q, k, v, ctx, { scale: this.s.softmax_scale ?? 1 / Math.sqrt(D / H), alibiSlopes: this.slopes });
    return this.out_proj.forward(mergeHeads(o));
  }
}

class MPTMLP extends Module {
  readonly up: Linear;
  readonly down: Linear;
  constructor(s: MPTSpec, names: MPTNames, rng: Rng) {
    super();
    this.up = this.child(names.up, new Linear(s.d_model, s.ffn_hidden, rng, !s.no_bias));
    this.down = this.child(names.down, new Linear(s.ffn_hidden, s.d_model, rng, !s.no_bias));
  }

  forward(x: Tensor): Tensor {
    return this.down.forward(activation('gelu', this.up.forward(x)));
  }
}

class MPTBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MPTAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MPTMLP;
  constructor(s: MPTSpec, names: MPTNames, slopes: Tensor, rng: Rng) {
    super();
    this.ln1 = this.child(names.ln1, new LayerNorm(s.d_model, s.ln_eps, !s.no_bias));
    this.attn = this.child('attn', new MPTAttention(s, slopes, rng));
    this.ln2 = this.child(names.ln2, new LayerNorm(s.d_model, s.ln_eps, !s.no_bias));
    this.mlp = this.child(names.mlp, new MPTMLP(s, names, rng));
  }

  forward(x: Tensor, ctx: LayerContext, i: number): Tensor {
    const h = add(x, this.attn.forward(this.ln1.forward(x), ctx, i));
    return add(h, this.mlp.forward(this.ln2.forward(h)));
  }
}

class MPTTransformer extends Module {
  readonly wte: Embedding;
  readonly blocks: MPTBlock[];
  readonly lnF: LayerNorm;
  constructor(s: MPTSpec, names: MPTNames, vocab: number, slopes: Tensor, rng: Rng) {
    super();
    this.wte = this.child('wte', new Embedding(vocab, s.d_model, rng, 0.02));
    this.blocks = this.childList('blocks', Array.from({ length: s.n_layers }, () => new MPTBlock(s, names, slopes, rng)));
    this.lnF = this.child(names.lnF, new LayerNorm(s.d_model, s.ln_eps, !s.no_bias));
  }
}

/** MosaicGPT / MPTForCausalLM: parameters `transformer.*`; the output projection is wte (tied). */
export class MPTCausalLM extends Module implements DecoderLM {
  readonly transformer: MPTTransformer;
  readonly slopes: Tensor;
  constructor(readonly config: HFLMConfig, readonly spec: MPTSpec, names: MPTNames, rng: Rng, private readonly label: string) {
    super();
    // a constant of the architecture, not a parameter: not registered, never trained
    this.slopes = new Tensor(spec.slopes, [spec.n_heads]);
    this.transformer = this.child('transformer', new MPTTransformer(spec, names, config.vocab_size, this.slopes, rng));
  }

  get numLayers(): number { return this.spec.n_layers; }
  get hiddenSize(): number { return this.spec.d_model; }
  get embedWeight(): Tensor { return this.transformer.wte.weight; }

  embed(ids: Tensor): Tensor {
    return embedding(this.transformer.wte.weight, ids);
  }

  layer(i: number, x: Tensor, ctx: LayerContext): Tensor {
    return layerAt(this.label, this.transformer.blocks, i, x, this.spec.d_model).forward(x, ctx, i);
  }

  head(x: Tensor): Tensor {
    const logits = linear(this.transformer.lnF.forward(x), this.transformer.wte.weight);
    return this.spec.logit_scale === null ? logits : scaleOp(logits, this.spec.logit_scale);
  }

  newCache(): KVCache {
    return emptyCache(this.spec.n_layers);
  }
}

/** Parameters of an MPT decoder with `vocab` embedding rows. */
export function countMPTParameters(s: MPTSpec, vocab: number): number {
  const D = s.d_model;
  const b = s.no_bias ? 0 : 1;
  const ln = D * (1 + b);
  const perLayer = 2 * ln + (s.qk_ln ? 2 * ln : 0) + 3 * D * D + 3 * D * b + D * D + D * b + 2 * D * s.ffn_hidden + s.ffn_hidden * b + D * b;
  return vocab * D + s.n_layers * perLayer + ln;
}

/**
 * The LM family of one MPT code base: `spec` reads its config.json fields, `names` are its parameter
 * names; everything else (config summary, parameter count, the decoder) is shared.
 */
export function mptLikeFamily(name: 'mpt' | 'mosaic_gpt', spec: (hf: HF, file: string) => MPTSpec, names: MPTNames): LMFamily {
  const fromHF = (hf: HF, file: string, vocabSize: number): HFLMConfig => {
    const s = spec(hf, file);
    return { family: name, vocab_size: vocabSize, hidden_size: s.d_model, num_layers: s.n_layers, tie_word_embeddings: true, max_position_embeddings: hfInt(hf, file, 'max_seq_len', 2048), hf };
  };
  return {
    name,
    hfModelTypes: [name],
    layersPrefix: 'transformer.blocks',
    inputEmbedding: 'transformer.wte.weight',
    outputEmbedding: () => null,
    validate: (raw, where) => validateHFLM(raw, where, name, fromHF),
    fromHF,
    toHF: (c: LMConfigBase) => ({ ...(c as HFLMConfig).hf, vocab_size: c.vocab_size }),
    create: (c, rng) => new MPTCausalLM(c as HFLMConfig, spec((c as HFLMConfig).hf, 'lm.hf'), names, rng, name),
    countParameters: (c) => countMPTParameters(spec((c as HFLMConfig).hf, 'lm.hf'), c.vocab_size),
    isBuffer: () => false,
  };
}
