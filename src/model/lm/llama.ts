/**
 * LLaMA-family decoder (Hugging Face LlamaForCausalLM names): RMSNorm, rotary embeddings,
 * SwiGLU MLP, no biases, optional grouped-query attention, KV cache.
 *
 *   h = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
 *   y = h + down_proj(silu(gate_proj(m)) ⊙ up_proj(m)),                  m = post_attention_layernorm(h)
 */
import type { Tensor } from '../../engine/tensor.ts';
import { add, embedding, indexSelect, intTensor, linear, permute, reshape, rope, swiglu } from '../../engine/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { Module } from '../../nn/module.ts';
import { Embedding, Linear, RMSNorm } from '../../nn/layers.ts';
import { validateLM, type LMConfig, type LMConfigBase } from '../config.ts';
import { ConfigError } from '../config-error.ts';
import type { LMFamily } from './family.ts';
import { mergeHeads } from '../heads.ts';
import type { DecoderLM, KVCache, LayerContext } from './types.ts';
import { appendToCache, causalAttention } from './causal-attention.ts';
import { emptyCache, layerAt, untiedHeadWeight } from './decoder-stack.ts';
import { hfNumber as num } from './hf-config.ts';

class LlamaAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly headDim: number;
  constructor(readonly cfg: LMConfig, rng: Rng) {
    super();
    const D = cfg.hidden_size;
    this.headDim = D / cfg.num_heads;
    const kvDim = cfg.num_key_value_heads * this.headDim;
    this.q_proj = this.child('q_proj', new Linear(D, D, rng, false));
    this.k_proj = this.child('k_proj', new Linear(D, kvDim, rng, false));
    this.v_proj = this.child('v_proj', new Linear(D, kvDim, rng, false));
    this.o_proj = this.child('o_proj', new Linear(D, D, rng, false));
  }

  forward(x: Tensor, ctx: LayerContext, layerIndex: number): Tensor {
    const [B, L] = x.shape as [number, number];
    const H = this.cfg.num_heads;
    const Hkv = this.cfg.num_key_value_heads;
    const Dh = this.headDim;
    const theta = this.cfg.rope_theta;
    const q = permute(rope(reshape(this.q_proj.forward(x), [B, L, H, Dh]), ctx.positions, theta), [0, 2, 1, 3]);
    let k = permute(rope(reshape(this.k_proj.forward(x), [B, L, Hkv, Dh]), ctx.positions, theta), [0, 2, 1, 3]);
    let v = permute(reshape(this.v_proj.forward(x), [B, L, Hkv, Dh]), [0, 2, 1, 3]);
    [k, v] = appendToCache(ctx, layerIndex, k, v);
    if (Hkv !== H) {
      // grouped-query attention: each kv head serves H/Hkv query heads
      const rep = intTensor(Array.from({ length: H }, (_, h) => Math.floor(h / (H / Hkv))));
      k = indexSelect(k, 1, rep);
      v = indexSelect(v, 1, rep);
    }
    const o = causalAttention('llama_attention', q, k, v, ctx);
    return this.o_proj.forward(mergeHeads(o));
  }
}

class LlamaMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  constructor(cfg: LMConfig, rng: Rng) {
    super();
    this.gate_proj = this.child('gate_proj', new Linear(cfg.hidden_size, cfg.intermediate_size, rng, false));
    this.up_proj = this.child('up_proj', new Linear(cfg.hidden_size, cfg.intermediate_size, rng, false));
    this.down_proj = this.child('down_proj', new Linear(cfg.intermediate_size, cfg.hidden_size, rng, false));
  }

  forward(x: Tensor): Tensor {
    return this.down_proj.forward(swiglu(this.gate_proj.forward(x), this.up_proj.forward(x)));
  }
}

class LlamaDecoderLayer extends Module {
  readonly input_layernorm: RMSNorm;
  readonly self_attn: LlamaAttention;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: LlamaMLP;
  constructor(cfg: LMConfig, rng: Rng) {
    super();
    this.input_layernorm = this.child('input_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.self_attn = this.child('self_attn', new LlamaAttention(cfg, rng));
    this.post_attention_layernorm = this.child('post_attention_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.mlp = this.child('mlp', new LlamaMLP(cfg, rng));
  }

  forward(x: Tensor, ctx: LayerContext, i: number): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), ctx, i));
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

class LlamaModel extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: LlamaDecoderLayer[];
  readonly norm: RMSNorm;
  constructor(cfg: LMConfig, rng: Rng) {
    super();
    this.embed_tokens = this.child('embed_tokens', new Embedding(cfg.vocab_size, cfg.hidden_size, rng, 0.02));
    this.layers = this.childList('layers', Array.from({ length: cfg.num_layers }, () => new LlamaDecoderLayer(cfg, rng)));
    this.norm = this.child('norm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  }
}

/** LlamaForCausalLM: parameters `model.*` and `lm_head.weight` (absent when tied). */
export class LlamaForCausalLM extends Module implements DecoderLM {
  readonly model: LlamaModel;
  readonly lmHead: Tensor;
  constructor(readonly config: LMConfig, rng: Rng) {
    super();
    this.model = this.child('model', new LlamaModel(config, rng));
    if (config.tie_word_embeddings) {
      this.lmHead = this.model.embed_tokens.weight;
    } else {
      this.lmHead = this.param('lm_head.weight', untiedHeadWeight(config.vocab_size, config.hidden_size, rng));
    }
  }

  /** An untied head is only read by linear(); a tied one is the embedding table (stays float32). */
  override linearWeights(): string[] {
    return this.config.tie_word_embeddings ? [] : ['lm_head.weight'];
  }

  get numLayers(): number { return this.config.num_layers; }
  get hiddenSize(): number { return this.config.hidden_size; }
  get embedWeight(): Tensor { return this.model.embed_tokens.weight; }

  embed(ids: Tensor): Tensor {
    return embedding(this.model.embed_tokens.weight, ids);
  }

  layer(i: number, x: Tensor, ctx: LayerContext): Tensor {
    return layerAt('llama', this.model.layers, i, x, this.config.hidden_size).forward(x, ctx, i);
  }

  head(x: Tensor): Tensor {
    return linear(this.model.norm.forward(x), this.lmHead);
  }

  newCache(): KVCache {
    return emptyCache(this.config.num_layers);
  }
}

export const llamaFamily: LMFamily = {
  name: 'llama',
  hfModelTypes: ['llama'],
  layersPrefix: 'model.layers',
  inputEmbedding: 'model.embed_tokens.weight',
  outputEmbedding: (cfg) => (cfg.tie_word_embeddings ? null : 'lm_head.weight'),
  validate: (raw, where) => validateLM(raw, where),
  fromHF(hf, file, vocabSize) {
    if (hf.model_type !== 'llama') throw new ConfigError(`${file}: model_type '${String(hf.model_type)}' is not llama`);
    const heads = num(hf, file, 'num_attention_heads');
    return validateLM({
      family: 'llama', vocab_size: vocabSize, hidden_size: num(hf, file, 'hidden_size'), intermediate_size: num(hf, file, 'intermediate_size'),
      num_layers: num(hf, file, 'num_hidden_layers'), num_heads: heads, num_key_value_heads: num(hf, file, 'num_key_value_heads', heads),
      rms_norm_eps: num(hf, file, 'rms_norm_eps', 1e-6), rope_theta: num(hf, file, 'rope_theta', 10000),
      tie_word_embeddings: hf.tie_word_embeddings === true, max_position_embeddings: num(hf, file, 'max_position_embeddings', 2048),
    }, file);
  },
  toHF(c0) {
    const c = c0 as LMConfig;
    return {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: c.vocab_size, hidden_size: c.hidden_size,
      intermediate_size: c.intermediate_size, num_hidden_layers: c.num_layers, num_attention_heads: c.num_heads,
      num_key_value_heads: c.num_key_value_heads, rms_norm_eps: c.rms_norm_eps, rope_theta: c.rope_theta, hidden_act: 'silu',
      tie_word_embeddings: c.tie_word_embeddings, max_position_embeddings: c.max_position_embeddings ?? 2048, torch_dtype: 'float32',
    };
  },
  create: (cfg, rng) => new LlamaForCausalLM(cfg as LMConfig, rng),
  countParameters(c0: LMConfigBase) {
    const m = c0 as LMConfig;
    const hd = m.hidden_size / m.num_heads;
    return m.vocab_size * m.hidden_size * (m.tie_word_embeddings ? 1 : 2) + m.hidden_size
      + m.num_layers * (2 * m.hidden_size + 2 * m.hidden_size * m.hidden_size + 2 * m.hidden_size * m.num_key_value_heads * hd + 3 * m.hidden_size * m.intermediate_size);
  },
  isBuffer: (name) => /\.rotary_emb\.inv_freq$/.test(name),
};
