/**
 * Model configuration: plain JSON-serialisable objects whose field names are those of OpenFlamingo /
 * open_clip / Hugging Face (and of the parity fixtures' case.json), validated with clear messages.
 */
import { ConfigError } from './config-error.ts';
import { getLMFamily } from './lm/registry.ts';
import { validatePreprocess, type PreprocessConfig } from './preprocess-config.ts';

export interface VisionConfig {
  image_size: number;
  patch_size: number;
  width: number;
  layers: number;
  heads: number;
  mlp_ratio: number;
  output_dim: number;
  /** 'quick_gelu' (OpenAI CLIP) or 'gelu' (exact erf). */
  act: 'quick_gelu' | 'gelu';
  ln_eps: number;
  /** open_clip ≥ 2.23 applies ln_post to the patch tokens; OpenFlamingo's released checkpoints did not. */
  ln_post_on_tokens: boolean;
  /**
   * Also hand the class token to the resampler, first in the sequence (default false: patch tokens only, as
   * OpenFlamingo). The class token is what contrastive pretraining shapes (pooled = ln_post(cls)·proj); in a
   * small ViT the patch tokens alone separate classes far worse than it does.
   */
  tokens_include_cls?: boolean;
}

/** Vision-to-LM connector (paper Table 3 (vi)); src/model/connectors.ts. */
export type VisionConnectorKind = 'perceiver' | 'transformer' | 'mlp';
export const VISION_CONNECTORS: readonly VisionConnectorKind[] = ['perceiver', 'transformer', 'mlp'];

export interface ResamplerConfig {
  /** Absent or 'perceiver': the Perceiver Resampler. 'transformer' / 'mlp': the paper's ablations (connectors.ts). */
  connector?: VisionConnectorKind;
  dim: number;
  depth: number;
  dim_head: number;
  heads: number;
  num_latents: number;
  /** null: no media-time embedding. */
  max_num_media: number | null;
  /** null: no frame embedding. */
  max_num_frames: number | null;
  ff_mult: number;
  ln_eps: number;
}

export interface XAttnConfig {
  dim: number;
  dim_visual: number;
  dim_head: number;
  heads: number;
  ff_mult: number;
  /** Image-causal masking (paper): attend only to the most recent image. false = all previous images (ablation). */
  only_attend_immediate_media: boolean;
  ln_eps: number;
  /**
   * Absent or 'tanh': y = x + tanh(α)·xattn(x) (paper). 'none': y = x + xattn(x), no gate parameters (Table 3 (iii)
   * ablation: the frozen LM is perturbed from the first step).
   */
  gating?: 'tanh' | 'none';
  /** Initial α of both tanh gates (default 0: the model starts as the frozen LM). Only with tanh gating. */
  gate_init?: number;
}

/** What every LM family's config has (the rest is the family's own; see src/model/lm/). */
export interface LMConfigBase {
  /** LM family (src/model/lm/registry.ts); default 'llama'. */
  family?: string;
  /** Rows of the input embedding: the Flamingo vocabulary (OpenFlamingo: len(tokenizer)). */
  vocab_size: number;
  hidden_size: number;
  num_layers: number;
  tie_word_embeddings: boolean;
  /** Longest sequence the model accepts (prompt + generated). */
  max_position_embeddings?: number;
}

/** LLaMA family (Hugging Face LlamaForCausalLM). */
export interface LMConfig extends LMConfigBase {
  family?: 'llama';
  intermediate_size: number;
  num_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
}

export type AnyLMConfig = LMConfig | HFLMConfig;

/** Families configured by their Hugging Face config.json, kept verbatim under `hf` (its own vocab_size included). */
export interface HFLMConfig extends LMConfigBase {
  family: string;
  hf: Record<string, unknown>;
}

export interface FlamingoTokensConfig {
  cross_attn_every_n_layers: number;
  media_token_id: number;
  eoc_token_id: number;
  pad_token_id: number;
  eos_token_id?: number;
}

export interface FlamingoConfig {
  vision: VisionConfig;
  resampler: ResamplerConfig;
  xattn: XAttnConfig;
  lm: AnyLMConfig;
  flamingo: FlamingoTokensConfig;
  /** Image preprocessing the model was trained with; absent means LEGACY_PREPROCESS. */
  preprocess?: PreprocessConfig;
}

export { ConfigError };

// The keys each section may hold: a typo (or a field of another section) is an error naming its path, never ignored.
export const VISION_KEYS = ['image_size', 'patch_size', 'width', 'layers', 'heads', 'mlp_ratio', 'output_dim', 'act', 'ln_eps', 'ln_post_on_tokens', 'tokens_include_cls'] as const;
export const RESAMPLER_KEYS = ['connector', 'dim', 'depth', 'dim_head', 'heads', 'num_latents', 'max_num_media', 'max_num_frames', 'ff_mult', 'ln_eps'] as const;
export const XATTN_KEYS = ['dim', 'dim_visual', 'dim_head', 'heads', 'ff_mult', 'only_attend_immediate_media', 'ln_eps', 'gating', 'gate_init'] as const;
export const LLAMA_LM_KEYS = [
  'family', 'vocab_size', 'hidden_size', 'num_layers', 'tie_word_embeddings', 'max_position_embeddings',
  'intermediate_size', 'num_heads', 'num_key_value_heads', 'rms_norm_eps', 'rope_theta',
] as const;
export const FLAMINGO_TOKEN_KEYS = ['cross_attn_every_n_layers', 'media_token_id', 'eoc_token_id', 'pad_token_id', 'eos_token_id'] as const;
export const FLAMINGO_CONFIG_KEYS = ['vision', 'resampler', 'xattn', 'lm', 'flamingo', 'preprocess'] as const;

/** Throws `<where>.<key>: unknown key` for the first key of `obj` not in `known`. */
export function rejectUnknownKeys(obj: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw new ConfigError(`${where ? `${where}.` : ''}${k}: unknown key (expected one of ${known.join(', ')})`);
  }
}

function posInt(where: string, obj: Record<string, unknown>, key: string): void {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(`${where}.${key} must be a positive integer, got ${JSON.stringify(v)}`);
}

function posNum(where: string, obj: Record<string, unknown>, key: string): void {
  const v = obj[key];
  if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`${where}.${key} must be a positive number, got ${JSON.stringify(v)}`);
}

function section(cfg: unknown, key: string): Record<string, unknown> {
  if (typeof cfg !== 'object' || cfg === null) throw new ConfigError('config must be an object');
  const s = (cfg as Record<string, unknown>)[key];
  if (typeof s !== 'object' || s === null) throw new ConfigError(`config.${key} is missing`);
  return s as Record<string, unknown>;
}

export function validateVision(v: Record<string, unknown>, where = 'vision'): VisionConfig {
  rejectUnknownKeys(v, VISION_KEYS, where);
  for (const k of ['image_size', 'patch_size', 'width', 'layers', 'heads', 'output_dim']) posInt(where, v, k);
  posNum(where, v, 'mlp_ratio');
  posNum(where, v, 'ln_eps');
  if (v.act !== 'quick_gelu' && v.act !== 'gelu') throw new ConfigError(`${where}.act must be 'quick_gelu' or 'gelu', got ${JSON.stringify(v.act)}`);
  if (typeof v.ln_post_on_tokens !== 'boolean') throw new ConfigError(`${where}.ln_post_on_tokens must be a boolean`);
  if (v.tokens_include_cls !== undefined && typeof v.tokens_include_cls !== 'boolean') throw new ConfigError(`${where}.tokens_include_cls must be a boolean`);
  const c = v as unknown as VisionConfig;
  if (c.image_size % c.patch_size !== 0) throw new ConfigError(`${where}.image_size ${c.image_size} is not divisible by patch_size ${c.patch_size}`);
  if (c.width % c.heads !== 0) throw new ConfigError(`${where}.width ${c.width} is not divisible by heads ${c.heads}`);
  return c;
}

export function validateResampler(v: Record<string, unknown>, where = 'resampler'): ResamplerConfig {
  rejectUnknownKeys(v, RESAMPLER_KEYS, where);
  for (const k of ['dim', 'depth', 'dim_head', 'heads', 'num_latents', 'ff_mult']) posInt(where, v, k);
  posNum(where, v, 'ln_eps');
  for (const k of ['max_num_media', 'max_num_frames']) if (v[k] !== null && v[k] !== undefined) posInt(where, v, k);
  if (v.connector !== undefined && !(VISION_CONNECTORS as readonly unknown[]).includes(v.connector)) {
    throw new ConfigError(`${where}.connector must be one of ${VISION_CONNECTORS.join(', ')}, got ${JSON.stringify(v.connector)}`);
  }
  return { ...(v as unknown as ResamplerConfig), max_num_media: (v.max_num_media as number | null | undefined) ?? null, max_num_frames: (v.max_num_frames as number | null | undefined) ?? null };
}

export function validateXAttn(v: Record<string, unknown>, where = 'xattn'): XAttnConfig {
  rejectUnknownKeys(v, XATTN_KEYS, where);
  for (const k of ['dim', 'dim_visual', 'dim_head', 'heads', 'ff_mult']) posInt(where, v, k);
  posNum(where, v, 'ln_eps');
  if (typeof v.only_attend_immediate_media !== 'boolean') throw new ConfigError(`${where}.only_attend_immediate_media must be a boolean`);
  if (v.gating !== undefined && v.gating !== 'tanh' && v.gating !== 'none') throw new ConfigError(`${where}.gating must be 'tanh' or 'none', got ${JSON.stringify(v.gating)}`);
  if (v.gate_init !== undefined) {
    if (typeof v.gate_init !== 'number' || !Number.isFinite(v.gate_init)) throw new ConfigError(`${where}.gate_init must be a finite number, got ${JSON.stringify(v.gate_init)}`);
    if (v.gating === 'none') throw new ConfigError(`${where}.gate_init is only used with tanh gating (gating is 'none')`);
  }
  return v as unknown as XAttnConfig;
}

/** Validate the `lm` section with its family's rules. */
export function validateAnyLM(v: Record<string, unknown>, where = 'lm'): AnyLMConfig {
  if (v.family !== undefined && typeof v.family !== 'string') throw new ConfigError(`${where}.family must be a string`);
  return getLMFamily(v.family as string | undefined, `${where}.family`).validate(v, where) as AnyLMConfig;
}

/** LLaMA-family `lm` section. */
export function validateLM(v: Record<string, unknown>, where = 'lm'): LMConfig {
  rejectUnknownKeys(v, LLAMA_LM_KEYS, where);
  for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_layers', 'num_heads', 'num_key_value_heads']) posInt(where, v, k);
  posNum(where, v, 'rms_norm_eps');
  posNum(where, v, 'rope_theta');
  const c = v as unknown as LMConfig;
  if (c.family !== undefined && c.family !== 'llama') throw new ConfigError(`${where}.family '${c.family}' is not llama`);
  if (c.hidden_size % c.num_heads !== 0) throw new ConfigError(`${where}.hidden_size ${c.hidden_size} is not divisible by num_heads ${c.num_heads}`);
  if ((c.hidden_size / c.num_heads) % 2 !== 0) throw new ConfigError(`${where}: head dim must be even for rotary embeddings`);
  if (c.num_heads % c.num_key_value_heads !== 0) throw new ConfigError(`${where}.num_heads must be a multiple of num_key_value_heads`);
  if (typeof c.tie_word_embeddings !== 'boolean') throw new ConfigError(`${where}.tie_word_embeddings must be a boolean`);
  if (c.max_position_embeddings !== undefined) posInt(where, v, 'max_position_embeddings');
  return c;
}

/** Validate a whole Flamingo config (throws ConfigError naming the field). */
export function validateFlamingoConfig(cfg: unknown): FlamingoConfig {
  if (typeof cfg === 'object' && cfg !== null) rejectUnknownKeys(cfg, FLAMINGO_CONFIG_KEYS, '');
  const vision = validateVision(section(cfg, 'vision'));
  const resampler = validateResampler(section(cfg, 'resampler'));
  const xattn = validateXAttn(section(cfg, 'xattn'));
  const lm = validateAnyLM(section(cfg, 'lm'));
  const f = section(cfg, 'flamingo');
  rejectUnknownKeys(f, FLAMINGO_TOKEN_KEYS, 'flamingo');
  posInt('flamingo', f, 'cross_attn_every_n_layers');
  for (const k of ['media_token_id', 'eoc_token_id', 'pad_token_id', 'eos_token_id']) {
    const v = f[k];
    if (k === 'eos_token_id' && v === undefined) continue; // optional
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= lm.vocab_size) {
      throw new ConfigError(`flamingo.${k} must be a token id in [0, ${lm.vocab_size}), got ${JSON.stringify(v)}`);
    }
  }
  if (resampler.dim !== vision.width) throw new ConfigError(`resampler.dim ${resampler.dim} must equal vision.width ${vision.width} (the resampler reads ViT tokens)`);
  if (xattn.dim_visual !== resampler.dim) throw new ConfigError(`xattn.dim_visual ${xattn.dim_visual} must equal resampler.dim ${resampler.dim}`);
  if (xattn.dim !== lm.hidden_size) throw new ConfigError(`xattn.dim ${xattn.dim} must equal lm.hidden_size ${lm.hidden_size}`);
  const pre = (cfg as Record<string, unknown>).preprocess;
  return {
    vision, resampler, xattn, lm, flamingo: f as unknown as FlamingoTokensConfig,
    ...(pre !== undefined ? { preprocess: validatePreprocess(pre) } : {}),
  };
}

/** Indices of decoder layers preceded by a gated cross-attention block: (i + 1) % every === 0. */
export function gatedLayerIndices(numLayers: number, every: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < numLayers; i++) if ((i + 1) % every === 0) out.push(i);
  return out;
}
