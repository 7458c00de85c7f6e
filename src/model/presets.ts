/**
 * Configuration presets: tiny sizes for tests and demos, the released OpenFlamingo models (exact
 * dimensions, LM family, token ids), LLaMA-style stand-ins of their sizes, and the paper's
 * Flamingo-3B/9B/80B dimensions (Alayrac et al. 2022, Appendix B, Table 4).
 *
 * The release presets describe the architecture only; the weights come from the release's three
 * sources (`flamingo convert`, or `--open-clip/--lm/--checkpoint`, see the README). Their LM
 * sections hold the language model's Hugging Face config.json as published.
 *
 * Stand-ins, stated plainly:
 * - `llama-standin-*`: LLaMA-family decoders of the widths, depths and head counts of the
 *   OpenFlamingo LMs (MLP widths chosen to match their parameter counts); for benchmarks and
 *   experiments, they load no released weights.
 * - Vision (paper presets): NFNet-F6 is not implemented; a CLIP ViT of the resampler's width (1536)
 *   stands in. The paper's feed-forwards use squared ReLU; ours use GELU (OpenFlamingo's choice).
 */
import { OPEN_CLIP_EVAL_PREPROCESS } from './preprocess-config.ts';
import type { AnyLMConfig, FlamingoConfig, HFLMConfig, LMConfig, VisionConfig, ResamplerConfig } from './config.ts';
import { getLMFamily } from './lm/registry.ts';
import { ConfigError } from './config-error.ts';

export interface Preset {
  description: string;
  config: FlamingoConfig;
}

const CLIP_VIT_L14: VisionConfig = {
  image_size: 224, patch_size: 14, width: 1024, layers: 24, heads: 16, mlp_ratio: 4, output_dim: 768,
  act: 'quick_gelu', ln_eps: 1e-5,
  // OpenFlamingo's checkpoints were trained with open_clip < 2.23: tokens taken before ln_post
  ln_post_on_tokens: false,
};

const OF_RESAMPLER: ResamplerConfig = {
  dim: 1024, depth: 6, dim_head: 64, heads: 8, num_latents: 64, max_num_media: null, max_num_frames: null, ff_mult: 4, ln_eps: 1e-5,
};

/** OpenFlamingo's token ids for a base tokenizer of `base` entries without a pad token: <|endofchunk|>, <image>, <PAD>. */
function ofTokens(base: number, every: number): FlamingoConfig['flamingo'] {
  return { cross_attn_every_n_layers: every, eoc_token_id: base, media_token_id: base + 1, pad_token_id: base + 2 };
}

function openFlamingoRelease(lm: AnyLMConfig, every: number, base: number): FlamingoConfig {
  return {
    vision: CLIP_VIT_L14,
    resampler: OF_RESAMPLER,
    xattn: { dim: lm.hidden_size, dim_visual: 1024, dim_head: 64, heads: 8, ff_mult: 4, only_attend_immediate_media: true, ln_eps: 1e-5 },
    lm,
    flamingo: ofTokens(base, every),
    // open_clip's validation transform as OpenFlamingo's evaluation applies it (resize in the file's own mode).
    preprocess: { ...OPEN_CLIP_EVAL_PREPROCESS, mean: [...OPEN_CLIP_EVAL_PREPROCESS.mean], std: [...OPEN_CLIP_EVAL_PREPROCESS.std] },
  };
}

/** The `lm` section of an HF-configured family from its published config.json, resized to `vocab` rows. */
function hfLM(family: string, hf: Record<string, unknown>, vocab: number): HFLMConfig {
  return getLMFamily(family).fromHF(hf, `${family} preset`, vocab) as HFLMConfig;
}

/** GPT-NeoX-20B tokenizer: 50277 entries; OpenFlamingo adds three (tokenizer_len 50280). */
const NEOX_TOKENIZER = 50277;

/** anas-awadalla/mpt-1b-redpajama-200b (and -dolly) config.json, as published (April 2023 MosaicGPT). */
const MPT_1B_REDPAJAMA: Record<string, unknown> = {
  architectures: ['MosaicGPT'], model_type: 'mosaic_gpt', d_model: 2048, n_heads: 16, n_layers: 24, mlp_ratio: 4, max_seq_len: 2048,
  vocab_size: 50432, alibi: true, alibi_bias_max: 8, attn_qk_ln: true, attn_clip_qkv: null, attn_impl: 'torch', attn_pdrop: 0,
  attn_uses_sequence_id: false, softmax_scale: null, logit_scale: null, no_bias: true, low_precision_layernorm: true, prefix_lm: false,
  emb_pdrop: 0, resid_pdrop: 0, embedding_fraction: 1.0, init_device: 'cpu', tokenizer_name: 'EleutherAI/gpt-neox-20b', use_cache: false,
  auto_map: { AutoConfig: 'configuration_mosaic_gpt.MosaicGPTConfig', AutoModelForCausalLM: 'mosaic_gpt.MosaicGPT' },
};

/** anas-awadalla/mpt-7b config.json (llm-foundry MPT). */
const MPT_7B: Record<string, unknown> = {
  architectures: ['MPTForCausalLM'], model_type: 'mpt', d_model: 4096, n_heads: 32, n_layers: 32, expansion_ratio: 4, max_seq_len: 2048,
  vocab_size: 50432, no_bias: true, norm_type: 'low_precision_layernorm', logit_scale: null, learned_pos_emb: true, emb_pdrop: 0,
  resid_pdrop: 0, embedding_fraction: 1.0, init_device: 'cpu', use_cache: false, verbose: 0,
  attn_config: {
    alibi: true, alibi_bias_max: 8, attn_impl: 'torch', attn_pdrop: 0, attn_type: 'multihead_attention', attn_uses_sequence_id: false,
    clip_qkv: null, prefix_lm: false, qk_ln: false, softmax_scale: null,
  },
  auto_map: { AutoConfig: 'configuration_mpt.MPTConfig', AutoModelForCausalLM: 'modeling_mpt.MPTForCausalLM' },
};

/** togethercomputer/RedPajama-INCITE-Base-3B-v1 (and -Instruct-3B-v1) config.json. */
const REDPAJAMA_3B: Record<string, unknown> = {
  architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox', hidden_size: 2560, num_attention_heads: 32, num_hidden_layers: 32,
  intermediate_size: 10240, hidden_act: 'gelu', rotary_pct: 1.0, rotary_emb_base: 10000, use_parallel_residual: false,
  layer_norm_eps: 1e-5, max_position_embeddings: 2048, vocab_size: 50432, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 0,
  initializer_range: 0.02, use_cache: true, torch_dtype: 'float16',
};

/** LLaMA-7B (OpenFlamingo v1): tokenizer of 32000 entries + <|endofchunk|>, <image>, <PAD>. */
const LLAMA_7B: LMConfig = {
  family: 'llama', vocab_size: 32003, hidden_size: 4096, intermediate_size: 11008, num_layers: 32, num_heads: 32, num_key_value_heads: 32,
  rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 2048,
};

/** A LLaMA decoder of the given sizes (multi-head attention, untied head, 2048 positions). */
function llamaLM(lm: { hidden: number; layers: number; heads: number; intermediate: number; vocab: number }): LMConfig {
  return {
    family: 'llama', vocab_size: lm.vocab, hidden_size: lm.hidden, intermediate_size: lm.intermediate, num_layers: lm.layers,
    num_heads: lm.heads, num_key_value_heads: lm.heads, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false,
    max_position_embeddings: 2048,
  };
}

function llamaStandin(lm: { hidden: number; layers: number; heads: number; intermediate: number; vocab: number }, every: number): FlamingoConfig {
  return openFlamingoRelease(llamaLM(lm), every, lm.vocab - 3);
}

function paperFlamingo(lm: { hidden: number; layers: number; heads: number }, every: number): FlamingoConfig {
  const vocab = 32000 + 2;
  return {
    vision: { image_size: 288, patch_size: 16, width: 1536, layers: 24, heads: 16, mlp_ratio: 4, output_dim: 1376, act: 'gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
    resampler: { dim: 1536, depth: 6, dim_head: 96, heads: 16, num_latents: 64, max_num_media: null, max_num_frames: 8, ff_mult: 4, ln_eps: 1e-5 },
    xattn: { dim: lm.hidden, dim_visual: 1536, dim_head: lm.hidden / lm.heads, heads: lm.heads, ff_mult: 4, only_attend_immediate_media: true, ln_eps: 1e-5 },
    lm: llamaLM({ ...lm, intermediate: Math.round((lm.hidden * 8) / 3 / 64) * 64, vocab }),
    flamingo: { cross_attn_every_n_layers: every, media_token_id: vocab - 2, eoc_token_id: vocab - 1, pad_token_id: 0 },
  };
}

// The instruction-tuned releases share the architecture of their base release (only the LM weights differ).
const OPENFLAMINGO_3B = openFlamingoRelease(hfLM('mosaic_gpt', MPT_1B_REDPAJAMA, NEOX_TOKENIZER + 3), 1, NEOX_TOKENIZER);
const OPENFLAMINGO_4B = openFlamingoRelease(hfLM('gpt_neox', REDPAJAMA_3B, NEOX_TOKENIZER + 3), 2, NEOX_TOKENIZER);

export const PRESETS: Record<string, Preset> = {
  'tiny-test': {
    description: 'Tiny random model for tests (32 px images, 2-layer LM).',
    config: {
      vision: { image_size: 32, patch_size: 8, width: 32, layers: 2, heads: 4, mlp_ratio: 4, output_dim: 16, act: 'quick_gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
      resampler: { dim: 32, depth: 2, dim_head: 8, heads: 4, num_latents: 8, max_num_media: null, max_num_frames: null, ff_mult: 2, ln_eps: 1e-5 },
      xattn: { dim: 32, dim_visual: 32, dim_head: 8, heads: 4, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
      lm: { family: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_layers: 4, num_heads: 4, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 512 },
      flamingo: { cross_attn_every_n_layers: 2, media_token_id: 97, eoc_token_id: 98, pad_token_id: 0 },
    },
  },
  'openflamingo-3b-vitl-mpt1b': {
    description: 'OpenFlamingo-3B (openflamingo/OpenFlamingo-3B-vitl-mpt1b): CLIP ViT-L/14 + MosaicGPT mpt-1b-redpajama-200b, xattn before every layer.',
    config: OPENFLAMINGO_3B,
  },
  'openflamingo-3b-vitl-mpt1b-langinstruct': {
    description: 'OpenFlamingo-3B-Instruct (openflamingo/OpenFlamingo-3B-vitl-mpt1b-langinstruct): as OpenFlamingo-3B with mpt-1b-redpajama-200b-dolly.',
    config: OPENFLAMINGO_3B,
  },
  'openflamingo-4b-vitl-rpj3b': {
    description: 'OpenFlamingo-4B (openflamingo/OpenFlamingo-4B-vitl-rpj3b): CLIP ViT-L/14 + GPT-NeoX RedPajama-INCITE-Base-3B-v1, xattn every 2 layers.',
    config: OPENFLAMINGO_4B,
  },
  'openflamingo-4b-vitl-rpj3b-langinstruct': {
    description: 'OpenFlamingo-4B-Instruct (openflamingo/OpenFlamingo-4B-vitl-rpj3b-langinstruct): as OpenFlamingo-4B with RedPajama-INCITE-Instruct-3B-v1.',
    config: OPENFLAMINGO_4B,
  },
  'openflamingo-9b-vitl-mpt7b': {
    description: 'OpenFlamingo-9B (openflamingo/OpenFlamingo-9B-vitl-mpt7b): CLIP ViT-L/14 + llm-foundry MPT-7B, xattn every 4 layers.',
    config: openFlamingoRelease(hfLM('mpt', MPT_7B, NEOX_TOKENIZER + 3), 4, NEOX_TOKENIZER),
  },
  'openflamingo-9b': {
    description: 'OpenFlamingo v1 9B (openflamingo/OpenFlamingo-9B, deprecated): CLIP ViT-L/14 + LLaMA-7B, xattn every 4 layers.',
    config: openFlamingoRelease(LLAMA_7B, 4, 32000),
  },
  'llama-standin-3b': {
    description: 'LLaMA-style decoder of MPT-1B\'s width, depth and heads in the OpenFlamingo-3B layout (no released weights load into it).',
    config: llamaStandin({ hidden: 2048, layers: 24, heads: 16, intermediate: 5632, vocab: 50280 }, 1),
  },
  'llama-standin-4b': {
    description: 'LLaMA-style decoder of RedPajama-3B\'s sizes in the OpenFlamingo-4B layout (no released weights load into it).',
    config: llamaStandin({ hidden: 2560, layers: 32, heads: 32, intermediate: 6912, vocab: 50280 }, 2),
  },
  'llama-standin-9b': {
    description: 'LLaMA-style decoder of MPT-7B\'s sizes in the OpenFlamingo-9B layout (no released weights load into it).',
    config: llamaStandin({ hidden: 4096, layers: 32, heads: 32, intermediate: 11008, vocab: 50280 }, 4),
  },
  'flamingo-3b': {
    description: 'Paper Flamingo-3B dimensions: 1.4B frozen LM (24 layers, width 2048), GATED XATTN-DENSE before every layer; NFNet-F6 replaced by a CLIP ViT stand-in.',
    config: paperFlamingo({ hidden: 2048, layers: 24, heads: 16 }, 1),
  },
  'flamingo-9b': {
    description: 'Paper Flamingo-9B dimensions: 7B frozen LM (40 layers, width 4096), GATED XATTN-DENSE every 4th layer; CLIP ViT stand-in for NFNet-F6.',
    config: paperFlamingo({ hidden: 4096, layers: 40, heads: 32 }, 4),
  },
  'flamingo-80b': {
    description: 'Paper Flamingo-80B dimensions: 70B frozen LM (80 layers, width 8192), GATED XATTN-DENSE every 7th layer; CLIP ViT stand-in for NFNet-F6.',
    config: paperFlamingo({ hidden: 8192, layers: 80, heads: 64 }, 7),
  },
};

export function getPreset(name: string): FlamingoConfig {
  const p = PRESETS[name];
  if (!p) throw new ConfigError(`unknown preset '${name}' (available: ${Object.keys(PRESETS).join(', ')})`);
  return structuredClone(p.config);
}

/** Parameter count of a config without building it (for the larger presets). */
export function countParameters(c: FlamingoConfig): number {
  const v = c.vision;
  const P = (v.image_size / v.patch_size) ** 2;
  const hid = Math.floor(v.width * v.mlp_ratio);
  const vit = 3 * v.patch_size ** 2 * v.width + v.width + (P + 1) * v.width + 4 * v.width
    + v.layers * (4 * v.width + 3 * v.width * v.width + 3 * v.width + v.width * v.width + v.width + 2 * v.width * hid + hid + v.width)
    + v.width * v.output_dim;
  const r = c.resampler;
  const ri = r.heads * r.dim_head;
  const res = r.num_latents * r.dim + (r.max_num_frames ?? 0) * r.dim + (r.max_num_media ?? 0) * r.dim
    + r.depth * (4 * r.dim + r.dim * ri * 3 + ri * r.dim + 2 * r.dim + 2 * r.dim * r.dim * r.ff_mult) + 2 * r.dim;
  const x = c.xattn;
  const xi = x.heads * x.dim_head;
  const nG = Math.floor(c.lm.num_layers / c.flamingo.cross_attn_every_n_layers);
  const gated = nG * (2 * x.dim + x.dim * xi + 2 * x.dim_visual * xi + xi * x.dim + 1 + 2 * x.dim + 2 * x.dim * x.dim * x.ff_mult + 1);
  const lm = getLMFamily(c.lm.family).countParameters(c.lm);
  return vit + res + gated + lm;
}
