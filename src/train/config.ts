/**
 * Training configuration: plain JSON, merged over DEFAULT_TRAIN_CONFIG (objects merge, arrays replace) and
 * validated with messages that name the field. Vocabulary size and special-token ids come from the tokenizer;
 * derived widths (resampler.dim = vision.width, xattn.dim = lm.hidden_size, …) are filled in here.
 */
import { validatePreprocess, type PreprocessConfig } from '../model/preprocess-config.ts';
import { createHash } from 'node:crypto';
import {
  ConfigError, rejectUnknownKeys, validateFlamingoConfig, validateLM, validateResampler, validateVision, validateXAttn,
  LLAMA_LM_KEYS, RESAMPLER_KEYS, VISION_KEYS, XATTN_KEYS,
  type FlamingoConfig, type LMConfig, type ResamplerConfig, type VisionConfig, type XAttnConfig,
} from '../model/config.ts';
import { sourceSpecProblem, type SourceSpec } from '../data/datasets/spec.ts';
import type { BpeTokenizer } from '../data/tokenizer.ts';
import type { TextEncoderConfig } from '../model/clip.ts';

export interface OptimConfig {
  lr: number;
  warmup_steps: number;
  schedule: 'constant' | 'cosine';
  /** Cosine floor as a fraction of lr. */
  min_lr_ratio: number;
  weight_decay: number;
  betas: [number, number];
  eps: number;
  /** Global gradient-norm clip (0 = off). */
  grad_clip: number;
  /** Learning-rate multiplier for the tanh gates (attn_gate, ff_gate) of the gated cross-attention blocks (default 1). */
  gate_lr_multiplier?: number;
}

export interface DatasetConfig {
  name: string;
  source: SourceSpec;
  batch_size: number;
  /** Weight of this dataset's loss in the step's sum (paper: λ_m). */
  weight: number;
  /** Media items per sample (paper: 5 for M3W). */
  max_images: number;
  /** Tokens per sample (paper: 256 for M3W, 32 for pairs); the CLIP text tower also caps at its context. */
  max_tokens: number;
  /** Frames per video item (videos are thinned/padded to this). */
  video_frames?: number;
  append_eos: boolean;
  /**
   * LM stage only: write each document as stage (c) does, `<image>` for every media item and `<|endofchunk|>`
   * closing its text (the media are not read), so the frozen LM has seen the layout of interleaved pages and
   * few-shot prompts. Default: the text alone.
   */
  markers?: boolean;
}

export interface StageConfig {
  enabled: boolean;
  steps: number;
  optim: OptimConfig;
  datasets: DatasetConfig[];
  /** Progress lines (non-terminal) every this many steps. */
  log_every: number;
  checkpoint_every: number;
  keep_checkpoints: number;
  /**
   * How a step uses the datasets (src/train/loop.ts): 'accumulate' (default; paper: every dataset's weighted
   * gradients, one update) or 'round_robin' (one update per dataset batch, in turn; same data per step).
   */
  mixture?: 'accumulate' | 'round_robin';
}

export interface LMStageConfig extends StageConfig {
  /**
   * An lm.safetensors of an earlier run (LM names) that this stage continues from instead of a fresh
   * initialisation: a later run can teach a finished LM something more (e.g. copying names of any form) on
   * a mixture that keeps what it knew.
   */
  init_weights?: string;
}

export interface FlamingoStageConfig extends StageConfig {
  /** Train the LM's input embeddings too (OpenFlamingo: yes, for the new <image>/<|endofchunk|> rows). */
  train_embeddings: boolean;
  /** With stage (a) disabled: a vision.safetensors of an earlier run to load into the vision encoder. */
  vision_weights?: string;
  /** With stage (b) disabled: an lm.safetensors of an earlier run to load into the LM. */
  lm_weights?: string;
  /**
   * A Flamingo weights file (a model directory's weights.safetensors, or an OpenFlamingo checkpoint) whose
   * stage-(c) parameters (resampler, gated blocks, and embeddings when train_embeddings) start this stage,
   * e.g. to train a curriculum in phases. The frozen ViT and LM still come from (a)/(b) or the files above.
   */
  init_weights?: string;
  /**
   * Weight of the similarity-preserving loss (src/train/similarity.ts) between what the gated cross-attention
   * writes at `<image>` positions and the frozen ViT's pooled embeddings of those images (default 0: off).
   */
  feature_similarity?: number;
  /**
   * Where the similarity term applies: to what the first gated block adds at `<image>` (its output minus its
   * input; `first`, the default) or what every gated block adds there, averaged over the blocks (`all`).
   */
  feature_similarity_layers?: 'first' | 'all';
  /**
   * The LM during this stage (paper Table 3 (viii)): 'frozen' (default; paper), 'finetune' (every LM parameter
   * learns, from the pretrained weights) or 'scratch' (every LM parameter learns from a random initialisation;
   * pretrained LM weights are not loaded).
   */
  lm_training?: 'frozen' | 'finetune' | 'scratch';
}

export interface ModelSpec {
  vision: VisionConfig;
  text_encoder: Omit<TextEncoderConfig, 'vocab_size' | 'output_dim'>;
  lm: Omit<LMConfig, 'vocab_size'>;
  resampler: Omit<ResamplerConfig, 'dim'>;
  xattn: Omit<XAttnConfig, 'dim' | 'dim_visual'>;
  cross_attn_every_n_layers: number;
  /** Image preprocessing written into the model's config (absent: the legacy transform). Training always converts to RGB first. */
  preprocess?: PreprocessConfig;
}

export interface TokenizerSpec {
  /** Use this tokenizer.json instead of training one. */
  path?: string;
  vocab_size: number;
  /** Documents to learn merges from: `docs` documents of each source (their text only). */
  corpus: { source: SourceSpec; docs: number }[];
}

export interface TrainConfig {
  seed: number;
  tokenizer: TokenizerSpec;
  model: ModelSpec;
  stages: { contrastive: StageConfig; lm: LMStageConfig; flamingo: FlamingoStageConfig };
}

export const STAGES = ['contrastive', 'lm', 'flamingo'] as const;
export type StageName = (typeof STAGES)[number];

const OPTIM: OptimConfig = { lr: 1e-3, warmup_steps: 10, schedule: 'cosine', min_lr_ratio: 0.1, weight_decay: 0.01, betas: [0.9, 0.98], eps: 1e-8, grad_clip: 1.0 };
const STAGE: Omit<StageConfig, 'datasets'> = { enabled: true, steps: 100, optim: OPTIM, log_every: 10, checkpoint_every: 50, keep_checkpoints: 2 };
export const DATASET_DEFAULTS: Omit<DatasetConfig, 'name' | 'source'> = { batch_size: 8, weight: 1, max_images: 5, max_tokens: 256, append_eos: false };

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  seed: 0,
  tokenizer: {
    vocab_size: 1024,
    corpus: [{ source: { type: 'synthetic-text' }, docs: 400 }],
  },
  model: {
    vision: { image_size: 32, patch_size: 8, width: 64, layers: 2, heads: 2, mlp_ratio: 4, output_dim: 64, act: 'gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
    text_encoder: { context_length: 32, width: 64, layers: 2, heads: 2, mlp_ratio: 4 },
    lm: { hidden_size: 64, intermediate_size: 172, num_layers: 2, num_heads: 2, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 512 },
    resampler: { depth: 1, dim_head: 32, heads: 2, num_latents: 8, max_num_media: null, max_num_frames: 8, ff_mult: 2, ln_eps: 1e-5 },
    xattn: { dim_head: 32, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
    cross_attn_every_n_layers: 1,
  },
  stages: {
    contrastive: { ...STAGE, datasets: [{ ...DATASET_DEFAULTS, name: 'pairs', source: { type: 'synthetic-pairs' }, batch_size: 16, max_images: 1, max_tokens: 32 }] },
    lm: { ...STAGE, datasets: [{ ...DATASET_DEFAULTS, name: 'text', source: { type: 'synthetic-text' }, max_tokens: 128, max_images: 0 }] },
    flamingo: {
      ...STAGE,
      train_embeddings: true,
      datasets: [
        { ...DATASET_DEFAULTS, name: 'interleaved', source: { type: 'synthetic-documents' }, batch_size: 4, max_tokens: 128 },
        { ...DATASET_DEFAULTS, name: 'pairs', source: { type: 'synthetic-pairs' }, batch_size: 8, max_images: 1, max_tokens: 32 },
      ],
    },
  },
};

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Objects merge key by key; arrays and scalars replace. */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isObj(base) || !isObj(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge((base as Record<string, unknown>)[k], v) : v;
  return out as T;
}

function fail(field: string, detail: string): never {
  throw new ConfigError(`train config: ${field} ${detail}`);
}
function posInt(field: string, v: unknown, min = 1): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(field, `must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
}
function num(field: string, v: unknown, lo: number, hi = Infinity): void {
  if (typeof v !== 'number' || !(v >= lo && v <= hi)) fail(field, `must be a number in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
}

function validateStage(name: string, s: StageConfig): StageConfig {
  const w = `stages.${name}`;
  if (typeof s.enabled !== 'boolean') fail(`${w}.enabled`, 'must be a boolean');
  posInt(`${w}.steps`, s.steps);
  posInt(`${w}.log_every`, s.log_every);
  posInt(`${w}.checkpoint_every`, s.checkpoint_every);
  posInt(`${w}.keep_checkpoints`, s.keep_checkpoints);
  if (s.mixture !== undefined && s.mixture !== 'accumulate' && s.mixture !== 'round_robin') fail(`${w}.mixture`, `must be 'accumulate' or 'round_robin', got ${JSON.stringify(s.mixture)}`);
  const o = s.optim;
  num(`${w}.optim.lr`, o.lr, 0, 10);
  posInt(`${w}.optim.warmup_steps`, o.warmup_steps, 0);
  if (o.schedule !== 'constant' && o.schedule !== 'cosine') fail(`${w}.optim.schedule`, `must be 'constant' or 'cosine', got ${JSON.stringify(o.schedule)}`);
  num(`${w}.optim.min_lr_ratio`, o.min_lr_ratio, 0, 1);
  num(`${w}.optim.weight_decay`, o.weight_decay, 0, 10);
  if (!Array.isArray(o.betas) || o.betas.length !== 2) fail(`${w}.optim.betas`, 'must be [beta1, beta2]');
  num(`${w}.optim.betas[0]`, o.betas[0], 0, 0.999999);
  num(`${w}.optim.betas[1]`, o.betas[1], 0, 0.999999);
  num(`${w}.optim.eps`, o.eps, 0, 1);
  num(`${w}.optim.grad_clip`, o.grad_clip, 0);
  if (o.gate_lr_multiplier !== undefined) num(`${w}.optim.gate_lr_multiplier`, o.gate_lr_multiplier, 0, 1000);
  if (!Array.isArray(s.datasets) || s.datasets.length === 0) fail(`${w}.datasets`, 'must be a non-empty list');
  const names = new Set<string>();
  const datasets = s.datasets.map((d0, i) => {
    const d = deepMerge(DATASET_DEFAULTS as DatasetConfig, d0);
    const dw = `${w}.datasets[${i}]`;
    if (typeof d.name !== 'string' || d.name === '') fail(`${dw}.name`, 'must be a non-empty string');
    if (names.has(d.name)) fail(`${dw}.name`, `"${d.name}" is used twice`);
    names.add(d.name);
    const problem = sourceSpecProblem(d.source, `${dw}.source`, { custom: true });
    if (problem) throw new ConfigError(`train config: ${problem}`);
    posInt(`${dw}.batch_size`, d.batch_size);
    num(`${dw}.weight`, d.weight, 0);
    posInt(`${dw}.max_images`, d.max_images, 0);
    posInt(`${dw}.max_tokens`, d.max_tokens, 2);
    if (d.video_frames !== undefined) posInt(`${dw}.video_frames`, d.video_frames);
    if (typeof d.append_eos !== 'boolean') fail(`${dw}.append_eos`, 'must be a boolean');
    if (d.markers !== undefined) {
      if (typeof d.markers !== 'boolean') fail(`${dw}.markers`, 'must be a boolean');
      if (name !== 'lm') fail(`${dw}.markers`, 'is an LM-stage option (stage (c) always writes the markers; stage (a) reads plain captions)');
    }
    return d;
  });
  return { ...s, datasets };
}

/**
 * The keys a training config may hold, section by section: a string list is an object's keys, `{ each }` a list
 * of such objects, and a key mapped to null holds a value checked elsewhere (dataset sources by their type).
 */
type KeySchema = { [key: string]: KeySchema | { each: KeySchema } | null };
const without = (keys: readonly string[], ...drop: string[]): KeySchema => Object.fromEntries(keys.filter((k) => !drop.includes(k)).map((k) => [k, null]));
const OPTIM_SCHEMA = without(['lr', 'warmup_steps', 'schedule', 'min_lr_ratio', 'weight_decay', 'betas', 'eps', 'grad_clip', 'gate_lr_multiplier']);
const DATASET_SCHEMA = without(['name', 'source', 'batch_size', 'weight', 'max_images', 'max_tokens', 'video_frames', 'append_eos', 'markers']);
const STAGE_SCHEMA: KeySchema = {
  ...without(['enabled', 'steps', 'log_every', 'checkpoint_every', 'keep_checkpoints', 'mixture']), optim: OPTIM_SCHEMA, datasets: { each: DATASET_SCHEMA },
};
const TRAIN_SCHEMA: KeySchema = {
  seed: null, description: null,
  tokenizer: { path: null, vocab_size: null, corpus: { each: { source: null, docs: null } } },
  model: {
    vision: without(VISION_KEYS),
    text_encoder: without(['context_length', 'width', 'layers', 'heads', 'mlp_ratio']),
    // vocab_size comes from the tokenizer; dim, dim_visual from the vision and LM widths
    lm: without(LLAMA_LM_KEYS, 'vocab_size'),
    resampler: without(RESAMPLER_KEYS, 'dim'),
    xattn: without(XATTN_KEYS, 'dim', 'dim_visual'),
    cross_attn_every_n_layers: null,
  },
  stages: {
    contrastive: STAGE_SCHEMA,
    lm: { ...STAGE_SCHEMA, init_weights: null },
    flamingo: { ...STAGE_SCHEMA, ...without(['train_embeddings', 'vision_weights', 'lm_weights', 'init_weights', 'feature_similarity', 'feature_similarity_layers', 'lm_training']) },
  },
};

/** Every key of `raw` must be in `schema`, at every depth; the error names the path (`stages.lm.optim.lr_sheduler: unknown key`). */
function checkKeys(raw: unknown, schema: KeySchema, where: string): void {
  if (!isObj(raw)) return; // a wrong type is reported by the field's own check
  rejectUnknownKeys(raw, Object.keys(schema), where);
  for (const [k, sub] of Object.entries(schema)) {
    const v = raw[k];
    if (sub === null || v === undefined) continue;
    const path = where ? `${where}.${k}` : k;
    if ('each' in sub) {
      const each = sub.each as KeySchema;
      if (Array.isArray(v)) v.forEach((item, i) => checkKeys(item, each, `${path}[${i}]`));
    } else {
      checkKeys(v, sub, path);
    }
  }
}

/** Merge over the defaults and validate everything that does not depend on the tokenizer. */
export function resolveTrainConfig(raw: unknown): TrainConfig {
  if (!isObj(raw)) throw new ConfigError('train config: top level must be a JSON object');
  if (isObj(raw.stages)) for (const k of Object.keys(raw.stages)) if (!(STAGES as readonly string[]).includes(k)) fail(`stages.${k}`, `is not a stage (${STAGES.join(', ')})`);
  try {
    checkKeys(raw, TRAIN_SCHEMA, '');
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`train config: ${e.message}`);
    throw e;
  }
  const c = deepMerge(DEFAULT_TRAIN_CONFIG, raw);
  if (typeof c.seed !== 'number' || !Number.isFinite(c.seed)) fail('seed', 'must be a number');
  if (c.tokenizer.path === undefined) {
    posInt('tokenizer.vocab_size', c.tokenizer.vocab_size, 261);
    if (!Array.isArray(c.tokenizer.corpus) || c.tokenizer.corpus.length === 0) fail('tokenizer.corpus', 'must list at least one source');
    c.tokenizer.corpus.forEach((e, i) => {
      posInt(`tokenizer.corpus[${i}].docs`, e.docs);
      const problem = sourceSpecProblem(e.source, `tokenizer.corpus[${i}].source`);
      if (problem) throw new ConfigError(`train config: ${problem}`);
    });
  }
  validateVision(c.model.vision as unknown as Record<string, unknown>, 'model.vision');
  const te = c.model.text_encoder;
  for (const k of ['context_length', 'width', 'layers', 'heads'] as const) posInt(`model.text_encoder.${k}`, te[k]);
  num('model.text_encoder.mlp_ratio', te.mlp_ratio, 0.01);
  if (te.width % te.heads !== 0) fail('model.text_encoder.width', `${te.width} is not divisible by heads ${te.heads}`);
  validateLM({ ...c.model.lm, vocab_size: 1 } as unknown as Record<string, unknown>, 'model.lm');
  posInt('model.cross_attn_every_n_layers', c.model.cross_attn_every_n_layers);
  // checked here too (not only when the model is built) so a bad ablation value fails before any training
  validateResampler({ ...c.model.resampler, dim: c.model.vision.width } as unknown as Record<string, unknown>, 'model.resampler');
  validateXAttn({ ...c.model.xattn, dim: c.model.lm.hidden_size, dim_visual: c.model.vision.width } as unknown as Record<string, unknown>, 'model.xattn');
  if (c.model.preprocess !== undefined) c.model.preprocess = validatePreprocess(c.model.preprocess, 'model.preprocess');
  for (const s of STAGES) c.stages[s] = validateStage(s, c.stages[s]) as never;
  if (typeof c.stages.flamingo.train_embeddings !== 'boolean') fail('stages.flamingo.train_embeddings', 'must be a boolean');
  for (const k of ['vision_weights', 'lm_weights', 'init_weights'] as const) {
    const v = c.stages.flamingo[k];
    if (v !== undefined && (typeof v !== 'string' || v === '')) fail(`stages.flamingo.${k}`, 'must be a file path');
  }
  const lmInit = c.stages.lm.init_weights;
  if (lmInit !== undefined && (typeof lmInit !== 'string' || lmInit === '')) fail('stages.lm.init_weights', 'must be a file path');
  if (c.stages.flamingo.feature_similarity !== undefined) num('stages.flamingo.feature_similarity', c.stages.flamingo.feature_similarity, 0, 1000);
  const fsl = c.stages.flamingo.feature_similarity_layers;
  if (fsl !== undefined && fsl !== 'first' && fsl !== 'all') fail('stages.flamingo.feature_similarity_layers', `must be 'first' or 'all', got ${JSON.stringify(fsl)}`);
  const lmt = c.stages.flamingo.lm_training;
  if (lmt !== undefined && lmt !== 'frozen' && lmt !== 'finetune' && lmt !== 'scratch') fail('stages.flamingo.lm_training', `must be 'frozen', 'finetune' or 'scratch', got ${JSON.stringify(lmt)}`);
  if (c.stages.contrastive.enabled && c.stages.flamingo.vision_weights) fail('stages.flamingo.vision_weights', 'is only used when stages.contrastive is disabled');
  if (c.stages.lm.enabled && c.stages.flamingo.lm_weights) fail('stages.flamingo.lm_weights', 'is only used when stages.lm is disabled');
  // The resampler's learned media-time / frame embeddings bound how many images and frames a sample may have.
  const { max_num_media: maxMedia, max_num_frames: maxFrames } = c.model.resampler;
  c.stages.flamingo.datasets.forEach((d, i) => {
    if (maxMedia !== null && d.max_images > maxMedia) fail(`stages.flamingo.datasets[${i}].max_images`, `${d.max_images} exceeds model.resampler.max_num_media ${maxMedia}`);
    if (maxFrames !== null && (d.video_frames ?? 1) > maxFrames) fail(`stages.flamingo.datasets[${i}].video_frames`, `${d.video_frames} exceeds model.resampler.max_num_frames ${maxFrames}`);
  });
  return c;
}

export function textEncoderConfig(c: TrainConfig, tok: BpeTokenizer): TextEncoderConfig {
  return { ...c.model.text_encoder, vocab_size: tok.vocabSize, output_dim: c.model.vision.output_dim };
}

export function lmConfig(c: TrainConfig, tok: BpeTokenizer): LMConfig {
  return validateLM({ ...c.model.lm, vocab_size: tok.vocabSize } as unknown as Record<string, unknown>, 'model.lm');
}

/** The full Flamingo config for a training config and tokenizer. */
export function flamingoConfig(c: TrainConfig, tok: BpeTokenizer): FlamingoConfig {
  const m = c.model;
  return validateFlamingoConfig({
    vision: m.vision,
    resampler: { ...m.resampler, dim: m.vision.width },
    xattn: { ...m.xattn, dim: m.lm.hidden_size, dim_visual: m.vision.width },
    lm: lmConfig(c, tok),
    flamingo: {
      cross_attn_every_n_layers: m.cross_attn_every_n_layers,
      media_token_id: tok.imageTokenId,
      eoc_token_id: tok.eocTokenId,
      pad_token_id: tok.padTokenId,
      eos_token_id: tok.eosTokenId,
    },
    ...(m.preprocess ? { preprocess: m.preprocess } : {}),
  });
}

function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (isObj(x)) return `{${Object.keys(x).sort().map((k) => `${JSON.stringify(k)}:${canonical(x[k])}`).join(',')}}`;
  return JSON.stringify(x) ?? 'null';
}

const STAGE_INPUTS: Record<StageName, readonly StageName[]> = { contrastive: [], lm: [], flamingo: ['contrastive', 'lm'] };

/** Hash of everything that affects a stage's results (logging and checkpoint cadence excluded). */
export function configHash(c: TrainConfig, stage: StageName): string {
  const { log_every: _l, checkpoint_every: _c, keep_checkpoints: _k, ...s } = c.stages[stage];
  const stages: Record<string, unknown> = {};
  // a stage depends on the stages whose weights it starts from: contrastive and LM pretraining are
  // independent (a longer ViT run keeps a finished LM), Flamingo training freezes both
  for (const n of STAGE_INPUTS[stage]) {
    const { log_every: _a, checkpoint_every: _b, keep_checkpoints: _d, ...p } = c.stages[n];
    stages[n] = p;
  }
  stages[stage] = s;
  return createHash('sha256').update(canonical({ seed: c.seed, tokenizer: c.tokenizer, model: c.model, stages })).digest('hex').slice(0, 16);
}
