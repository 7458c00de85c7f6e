/**
 * GPT-NeoX (transformers GPTNeoXForCausalLM, `model_type` gpt_neox): RedPajama-INCITE-3B (the LM of
 * OpenFlamingo-4B) and Pythia. Config fields: hidden_size, num_attention_heads, num_hidden_layers,
 * intermediate_size, hidden_act, rotary_pct, rotary_emb_base, use_parallel_residual, layer_norm_eps,
 * tie_word_embeddings, max_position_embeddings, attention_bias. Names: gpt_neox.{embed_in,
 * layers.{i}.{input_layernorm, post_attention_layernorm, attention.{query_key_value, dense},
 * mlp.{dense_h_to_4h, dense_4h_to_h}}, final_layer_norm}, embed_out.
 *
 * query_key_value's rows are per head [q | k | v]; rotary on the first int(head_size · rotary_pct)
 * dims of q and k. Layer: parallel  x + attn(ln1(x)) + mlp(ln2(x)),  or sequential.
 */
import type { Tensor } from '../../engine/tensor.ts';
import { activation, add, concat, embedding, linear, permute, reshape, rope, split } from '../../engine/index.ts';
import type { Activation } from '../../engine/kernels/types.ts';
import type { Rng } from '../../engine/rng.ts';
import { Module } from '../../nn/module.ts';
import { Embedding, LayerNorm, Linear } from '../../nn/layers.ts';
import { ConfigError } from '../config-error.ts';
import type { HFLMConfig, LMConfigBase } from '../config.ts';
import { mergeHeads } from '../heads.ts';
import type { LMFamily } from './family.ts';
import { hfBool, hfInt, hfNumber, validateHFLM, type HF } from './hf-config.ts';
import type { DecoderLM, KVCache, LayerContext } from './types.ts';
import { appendToCache, causalAttention } from './causal-attention.ts';
import { emptyCache, layerAt, untiedHeadWeight } from './decoder-stack.ts';

interface NeoXSpec {
  hidden: number;
  heads: number;
  layers: number;
  intermediate: number;
  act: Activation;
  rotaryDims: number;
  rotaryBase: number;
  parallel: boolean;
  eps: number;
  bias: boolean;
  tied: boolean;
}

const ACTS: Record<string, Activation> = { gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_fast: 'gelu_tanh', relu: 'relu', silu: 'silu' };

function spec(hf: HF, file: string): NeoXSpec {
  if (hf.model_type !== undefined && hf.model_type !== 'gpt_neox') throw new ConfigError(`${file}: model_type '${String(hf.model_type)}' is not gpt_neox`);
  const hidden = hfInt(hf, file, 'hidden_size');
  const heads = hfInt(hf, file, 'num_attention_heads');
  if (hidden % heads !== 0) throw new ConfigError(`${file}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  const headSize = hidden / heads;
  const pct = hfNumber(hf, file, 'rotary_pct', 1);
  if (!(pct >= 0 && pct <= 1)) throw new ConfigError(`${file}: rotary_pct ${pct} must be in [0, 1]`);
  const rotaryDims = Math.trunc(headSize * pct);
  if (rotaryDims % 2 !== 0) throw new ConfigError(`${file}: int(head_size ${headSize} · rotary_pct ${pct}) = ${rotaryDims} must be even`);
  const actName = String(hf.hidden_act ?? 'gelu');
  const act = ACTS[actName];
  if (!act) throw new ConfigError(`${file}: hidden_act '${actName}' is not supported (${Object.keys(ACTS).join(', ')})`);
  return {
    hidden, heads, layers: hfInt(hf, file, 'num_hidden_layers'), intermediate: hfInt(hf, file, 'intermediate_size', 4 * hidden), act,
    rotaryDims, rotaryBase: hfNumber(hf, file, 'rotary_emb_base', 10000), parallel: hfBool(hf, file, 'use_parallel_residual', true),
    eps: hfNumber(hf, file, 'layer_norm_eps', 1e-5), bias: hfBool(hf, file, 'attention_bias', true), tied: hfBool(hf, file, 'tie_word_embeddings', false),
  };
}

class NeoXAttention extends Module {
  readonly query_key_value: Linear;
  readonly dense: Linear;
  constructor(readonly s: NeoXSpec, rng: Rng) {
    super();
    this.query_key_value = this.child('query_key_value', new Linear(s.hidden, 3 * s.hidden, rng, s.bias));
    this.dense = this.child('dense', new Linear(s.hidden, s.hidden, rng, s.bias));
  }

  private rotary(x: Tensor, positions: Tensor): Tensor {
    const { rotaryDims: r, rotaryBase } = this.s;
    const Dh = x.shape[3]!;
    if (r === 0) return x;
    if (r === Dh) return rope(x, positions, rotaryBase);
    const [rot, pass] = split(x, [r, Dh - r], -1) as [Tensor, Tensor];
    return concat([rope(rot, positions, rotaryBase), pass], -1);
  }

  forward(x: Tensor, ctx: LayerContext, layerIndex: number): Tensor {
    const [B, L] = x.shape as [number, number];
    const H = this.s.heads;
    const Dh = this.s.hidden / H;
    const qkv = reshape(this.query_key_value.forward(x), [B, L, H, 3 * Dh]);
    const [q0, k0, v0] = split(qkv, [Dh, Dh, Dh], -1) as [Tensor, Tensor, Tensor];
    const q = permute(this.rotary(q0, ctx.positions), [0, 2, 1, 3]);
    let k = permute(this.rotary(k0, ctx.positions), [0, 2, 1, 3]);
    let v = permute(v0, [0, 2, 1, 3]);
    [k, v] = appendToCache(ctx, layerIndex, k, v);
    const o = causalAttention('gpt_neox_attention', q, k, v, ctx);
    return this.dense.forward(mergeHeads(o));
  }
}

class NeoXMLP extends Module {
  readonly dense_h_to_4h: Linear;
  readonly dense_4h_to_h: Linear;
  constructor(readonly s: NeoXSpec, rng: Rng) {
    super();
    this.dense_h_to_4h = this.child('dense_h_to_4h', new Linear(s.hidden, s.intermediate, rng));
    this.dense_4h_to_h = this.child('dense_4h_to_h', new Linear(s.intermediate, s.hidden, rng));
  }

  forward(x: Tensor): Tensor {
    return this.dense_4h_to_h.forward(activation(this.s.act, this.dense_h_to_4h.forward(x)));
  }
}

class NeoXLayer extends Module {
  readonly input_layernorm: LayerNorm;
  readonly post_attention_layernorm: LayerNorm;
  readonly attention: NeoXAttention;
  readonly mlp: NeoXMLP;
  constructor(readonly s: NeoXSpec, rng: Rng) {
    super();
    this.input_layernorm = this.child('input_layernorm', new LayerNorm(s.hidden, s.eps));
    this.post_attention_layernorm = this.child('post_attention_layernorm', new LayerNorm(s.hidden, s.eps));
    this.attention = this.child('attention', new NeoXAttention(s, rng));
    this.mlp = this.child('mlp', new NeoXMLP(s, rng));
  }

  forward(x: Tensor, ctx: LayerContext, i: number): Tensor {
    const a = this.attention.forward(this.input_layernorm.forward(x), ctx, i);
    if (this.s.parallel) return add(add(x, a), this.mlp.forward(this.post_attention_layernorm.forward(x)));
    const h = add(x, a);
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

class NeoXModel extends Module {
  readonly embed_in: Embedding;
  readonly layers: NeoXLayer[];
  readonly final_layer_norm: LayerNorm;
  constructor(s: NeoXSpec, vocab: number, rng: Rng) {
    super();
    this.embed_in = this.child('embed_in', new Embedding(vocab, s.hidden, rng, 0.02));
    this.layers = this.childList('layers', Array.from({ length: s.layers }, () => new NeoXLayer(s, rng)));
    this.final_layer_norm = this.child('final_layer_norm', new LayerNorm(s.hidden, s.eps));
  }
}

export class GPTNeoXForCausalLM extends Module implements DecoderLM {
  readonly gpt_neox: NeoXModel;
  readonly embedOut: Tensor;
  readonly spec: NeoXSpec;
  constructor(readonly config: HFLMConfig, rng: Rng) {
    super();
    this.spec = spec(config.hf, 'lm.hf');
    this.gpt_neox = this.child('gpt_neox', new NeoXModel(this.spec, config.vocab_size, rng));
    if (this.spec.tied) {
      this.embedOut = this.gpt_neox.embed_in.weight;
    } else {
      this.embedOut = this.param('embed_out.weight', untiedHeadWeight(config.vocab_size, this.spec.hidden, rng));
    }
  }

  get numLayers(): number { return this.spec.layers; }
  get hiddenSize(): number { return this.spec.hidden; }
  get embedWeight(): Tensor { return this.gpt_neox.embed_in.weight; }

  embed(ids: Tensor): Tensor {
    return embedding(this.gpt_neox.embed_in.weight, ids);
  }

  layer(i: number, x: Tensor, ctx: LayerContext): Tensor {
    return layerAt('gpt_neox', this.gpt_neox.layers, i, x, this.spec.hidden).forward(x, ctx, i);
  }

  head(x: Tensor): Tensor {
    return linear(this.gpt_neox.final_layer_norm.forward(x), this.embedOut);
  }

  newCache(): KVCache {
    return emptyCache(this.spec.layers);
  }
}

function fromHF(hf: HF, file: string, vocabSize: number): HFLMConfig {
  const s = spec(hf, file);
  return { family: 'gpt_neox', vocab_size: vocabSize, hidden_size: s.hidden, num_layers: s.layers, tie_word_embeddings: s.tied, max_position_embeddings: hfInt(hf, file, 'max_position_embeddings', 2048), hf };
}

export const gptNeoxFamily: LMFamily = {
  name: 'gpt_neox',
  hfModelTypes: ['gpt_neox'],
  layersPrefix: 'gpt_neox.layers',
  inputEmbedding: 'gpt_neox.embed_in.weight',
  outputEmbedding: (c) => (c.tie_word_embeddings ? null : 'embed_out.weight'),
  validate: (raw, where) => validateHFLM(raw, where, 'gpt_neox', fromHF),
  fromHF,
  toHF: (c: LMConfigBase) => ({ ...(c as HFLMConfig).hf, vocab_size: c.vocab_size }),
  create: (c, rng) => new GPTNeoXForCausalLM(c as HFLMConfig, rng),
  countParameters(c: LMConfigBase) {
    const s = spec((c as HFLMConfig).hf, 'lm.hf');
    const D = s.hidden;
    const b = s.bias ? 1 : 0;
    const perLayer = 4 * D + 3 * D * D + 3 * D * b + D * D + D * b + 2 * D * s.intermediate + s.intermediate + D;
    return c.vocab_size * D * (s.tied ? 1 : 2) + s.layers * perLayer + 2 * D;
  },
  // transformers < 4.31 saved these non-parameter buffers (RedPajama-INCITE's pytorch_model.bin has them)
  isBuffer: (name) => /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/.test(name),
};
