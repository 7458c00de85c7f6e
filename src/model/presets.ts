/**
 * Configuration presets: tiny sizes for tests and demos, the OpenFlamingo releases, and the paper's
 * Flamingo-3B/9B/80B dimensions (Alayrac et al. 2022, Appendix B, Table 4).
 *
 * Stand-ins, stated plainly:
 * - LM: only the LLaMA family is implemented as a file (src/model/lm/). OpenFlamingo's MPT-1B,
 *   RedPajama-3B (GPT-NeoX) and MPT-7B and the paper's Chinchilla LMs are given as LLaMA-style decoders
 *   of the same width, depth, heads and vocabulary; their intermediate sizes match the original MLPs in
 *   parameter count. Real MPT/NeoX checkpoints need their LM-family file before they load.
 * - Vision (paper presets): NFNet-F6 is not implemented; a CLIP ViT of the resampler's width (1536)
 *   stands in. The paper's feed-forwards use squared ReLU; ours use GELU (OpenFlamingo's choice).
 */
import type { FlamingoConfig, VisionConfig, ResamplerConfig } from './config.ts';

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

function openFlamingo(lm: { hidden: number; layers: number; heads: number; intermediate: number; vocab: number }, every: number): FlamingoConfig {
  return {
    vision: CLIP_VIT_L14,
    resampler: OF_RESAMPLER,
    xattn: { dim: lm.hidden, dim_visual: 1024, dim_head: 64, heads: 8, ff_mult: 4, only_attend_immediate_media: true, ln_eps: 1e-5 },
    lm: {
      family: 'llama', vocab_size: lm.vocab, hidden_size: lm.hidden, intermediate_size: lm.intermediate, num_layers: lm.layers,
      num_heads: lm.heads, num_key_value_heads: lm.heads, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false,
      max_position_embeddings: 2048,
    },
    // OpenFlamingo adds <|endofchunk|> and <image> at the end of the tokenizer's vocabulary
    flamingo: { cross_attn_every_n_layers: every, media_token_id: lm.vocab - 2, eoc_token_id: lm.vocab - 1, pad_token_id: 0 },
  };
}

function paperFlamingo(lm: { hidden: number; layers: number; heads: number }, every: number): FlamingoConfig {
  const vocab = 32000 + 2;
  return {
    vision: { image_size: 288, patch_size: 16, width: 1536, layers: 24, heads: 16, mlp_ratio: 4, output_dim: 1376, act: 'gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
    resampler: { dim: 1536, depth: 6, dim_head: 96, heads: 16, num_latents: 64, max_num_media: null, max_num_frames: 8, ff_mult: 4, ln_eps: 1e-5 },
    xattn: { dim: lm.hidden, dim_visual: 1536, dim_head: lm.hidden / lm.heads, heads: lm.heads, ff_mult: 4, only_attend_immediate_media: true, ln_eps: 1e-5 },
    lm: {
      family: 'llama', vocab_size: vocab, hidden_size: lm.hidden, intermediate_size: Math.round((lm.hidden * 8) / 3 / 64) * 64,
      num_layers: lm.layers, num_heads: lm.heads, num_key_value_heads: lm.heads, rms_norm_eps: 1e-6, rope_theta: 10000,
      tie_word_embeddings: false, max_position_embeddings: 2048,
    },
    flamingo: { cross_attn_every_n_layers: every, media_token_id: vocab - 2, eoc_token_id: vocab - 1, pad_token_id: 0 },
  };
}

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
  'openflamingo-3b': {
    description: 'OpenFlamingo-3B (CLIP ViT-L/14 + MPT-1B, xattn every layer); LM as a LLaMA-style stand-in of MPT-1B\'s sizes.',
    config: openFlamingo({ hidden: 2048, layers: 24, heads: 16, intermediate: 5632, vocab: 50280 }, 1),
  },
  'openflamingo-4b': {
    description: 'OpenFlamingo-4B (CLIP ViT-L/14 + RedPajama-INCITE-3B, xattn every 2 layers); LM as a LLaMA-style stand-in.',
    config: openFlamingo({ hidden: 2560, layers: 32, heads: 32, intermediate: 6912, vocab: 50434 }, 2),
  },
  'openflamingo-9b': {
    description: 'OpenFlamingo-9B (CLIP ViT-L/14 + MPT-7B, xattn every 4 layers); LM as a LLaMA-style stand-in.',
    config: openFlamingo({ hidden: 4096, layers: 32, heads: 32, intermediate: 11008, vocab: 50434 }, 4),
  },
  'openflamingo-9b-v1': {
    description: 'OpenFlamingo v1 9B (CLIP ViT-L/14 + LLaMA-7B, xattn every 4 layers): the LLaMA LM is real, not a stand-in.',
    config: openFlamingo({ hidden: 4096, layers: 32, heads: 32, intermediate: 11008, vocab: 32002 }, 4),
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
  if (!p) throw new Error(`unknown preset '${name}' (available: ${Object.keys(PRESETS).join(', ')})`);
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
  const m = c.lm;
  const hd = m.hidden_size / m.num_heads;
  const lm = m.vocab_size * m.hidden_size * (m.tie_word_embeddings ? 1 : 2) + m.hidden_size
    + m.num_layers * (2 * m.hidden_size + 2 * m.hidden_size * m.hidden_size + 2 * m.hidden_size * m.num_key_value_heads * hd + 3 * m.hidden_size * m.intermediate_size);
  return vit + res + gated + lm;
}
