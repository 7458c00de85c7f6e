/**
 * What a released OpenFlamingo's files say about the model before any weight is read: the LM directory
 * (family, Hugging Face config, weight files), OpenFlamingo's tokenizer additions, the vision and resampler
 * configs inferred from tensor names and shapes, the gated layers present, and the sidecar of overrides
 * `flamingo export` writes. release.ts assembles and loads the model from them.
 */
import { FlamingoError } from '../errors.ts';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { validateFlamingoConfig, type FlamingoConfig, type FlamingoTokensConfig, type ResamplerConfig, type VisionConfig, type XAttnConfig } from '../model/config.ts';
import { type PreprocessConfig } from '../model/preprocess-config.ts';
import { familyForModelType, lmFamilies, type LMFamily } from '../model/lm/index.ts';
import { canonicalName } from './checkpoint.ts';
import { type TensorSource } from './tensor-source.ts';

export class ReleaseLoadError extends FlamingoError {
  constructor(message: string) {
    super(message);
  }
}

/** Where the three sources are. LM files default to what the directory holds. */
export interface ReleaseFiles {
  /** open_clip weights (`open_clip_pytorch_model.bin` / `.safetensors`). */
  openClip: string;
  /** open_clip hub config (`open_clip_config.json`); default: next to the weights, if present. */
  openClipConfig?: string | null;
  /** Hugging Face LM directory. */
  lmDir: string;
  /** Explicit LM weight files (default: found in lmDir). */
  lmWeights?: string[];
  /** Explicit shard index (default: found in lmDir). */
  lmIndex?: string | null;
  /** OpenFlamingo `checkpoint.pt` or `.safetensors`. */
  checkpoint: string;
}

/** Parts of the Flamingo config the caller fixes (a fixture's case.json, a preset); the rest comes from the files. */
export interface ReleaseConfigOverrides {
  vision?: VisionConfig;
  resampler?: ResamplerConfig;
  xattn?: XAttnConfig;
  flamingo?: FlamingoTokensConfig & { tokenizer_len?: number };
  /** Image preprocessing (default: open_clip's evaluation transform, which the released models were evaluated with). */
  preprocess?: PreprocessConfig;
}

export interface TokenizerInfo {
  file: string;
  /** len(tokenizer) after OpenFlamingo added its tokens. */
  length: number;
  eoc: number;
  media: number;
  pad: number;
}

function readJson(file: string, what: string): Record<string, unknown> {
  if (!existsSync(file)) throw new ReleaseLoadError(`${file}: not found (${what})`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ReleaseLoadError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ReleaseLoadError(`${file}: expected a JSON object (${what})`);
  return v as Record<string, unknown>;
}

/** The LM directory's family, HF config and weight files. */
export function readLMDir(files: ReleaseFiles): { family: LMFamily; hf: Record<string, unknown>; configFile: string; weights: string[]; index: string | null } {
  const configFile = join(files.lmDir, 'config.json');
  const hf = readJson(configFile, 'Hugging Face language-model config');
  const family = familyForModelType(hf.model_type);
  if (!family) {
    throw new ReleaseLoadError(`${configFile}: model_type '${String(hf.model_type)}' is not a supported language-model family `
      + `(${lmFamilies().flatMap((f) => f.hfModelTypes).join(', ')})`);
  }
  let index = files.lmIndex ?? null;
  let weights = files.lmWeights ?? null;
  if (!weights) {
    if (index === null) {
      for (const n of ['model.safetensors.index.json', 'pytorch_model.bin.index.json']) {
        if (existsSync(join(files.lmDir, n))) { index = join(files.lmDir, n); break; }
      }
    }
    if (index === null) {
      const single = ['model.safetensors', 'pytorch_model.bin'].map((n) => join(files.lmDir, n)).find((p) => existsSync(p));
      if (!single) throw new ReleaseLoadError(`${files.lmDir}: no model.safetensors, pytorch_model.bin or *.index.json with shards`);
      weights = [single];
    }
  }
  if (index !== null) {
    const idx = readJson(index, 'shard index');
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null) throw new ReleaseLoadError(`${index}: no weight_map`);
    const shardNames = [...new Set(Object.values(wm as Record<string, unknown>).map(String))].sort();
    const fromIndex = shardNames.map((n) => join(dirname(index!), n));
    for (const f of fromIndex) if (!existsSync(f)) throw new ReleaseLoadError(`${index}: shard ${basename(f)} is missing`);
    weights = weights ?? fromIndex;
  }
  return { family, hf, configFile, weights: weights!, index };
}

/**
 * The tokenizer in the LM directory (tokenizer.json + tokenizer_config.json / special_tokens_map.json)
 * after OpenFlamingo's additions: <|endofchunk|>, <image>, and <PAD> when it has no pad token. Null
 * when the directory has no tokenizer.json.
 */
export function openFlamingoTokenizerInfo(dir: string): TokenizerInfo | null {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) return null;
  const tok = readJson(file, 'tokenizer');
  const ids = new Map<string, number>();
  let max = -1;
  const vocab = (tok.model as Record<string, unknown> | undefined)?.vocab;
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [t, id] of Object.entries(vocab as Record<string, number>)) { ids.set(t, id); max = Math.max(max, id); }
  }
  for (const a of (tok.added_tokens as { id: number; content: string }[] | undefined) ?? []) { ids.set(a.content, a.id); max = Math.max(max, a.id); }
  if (max < 0) throw new ReleaseLoadError(`${file}: no vocabulary`);
  let padName: string | null = null;
  for (const n of ['tokenizer_config.json', 'special_tokens_map.json']) {
    const p = join(dir, n);
    if (!existsSync(p)) continue;
    const pt = readJson(p, 'tokenizer config').pad_token;
    if (typeof pt === 'string') padName = pt;
    else if (pt && typeof pt === 'object' && typeof (pt as { content?: unknown }).content === 'string') padName = (pt as { content: string }).content;
    if (padName !== null) break;
  }
  let next = max + 1;
  const add = (t: string): number => {
    const have = ids.get(t);
    if (have !== undefined) return have;
    ids.set(t, next);
    return next++;
  };
  const eoc = add('<|endofchunk|>');
  const media = add('<image>');
  const pad = padName !== null && ids.has(padName) ? ids.get(padName)! : add('<PAD>');
  return { file, length: next, eoc, media, pad };
}

/** Vision config from open_clip's hub config (model_cfg.vision_cfg) or, without one, from the weight shapes. */
export function visionConfig(clip: TensorSource, configFile: string | null): VisionConfig {
  const shape = (n: string): readonly number[] => {
    const i = clip.info(`visual.${n}`);
    if (!i) throw new ReleaseLoadError(`${clip.file}: no 'visual.${n}': not an open_clip CLIP state dict`);
    return i.shape;
  };
  const conv = shape('conv1.weight');
  const width = conv[0]!;
  const patch = conv[2]!;
  const grid = Math.round(Math.sqrt(shape('positional_embedding')[0]! - 1));
  let layers = 0;
  while (clip.info(`visual.transformer.resblocks.${layers}.ln_1.weight`)) layers++;
  const mlp = shape('transformer.resblocks.0.mlp.c_fc.weight')[0]!;
  let heads = width / 64;
  let act: 'quick_gelu' | 'gelu' = 'quick_gelu';
  if (configFile) {
    const c = readJson(configFile, 'open_clip config');
    const m = (c.model_cfg ?? c) as Record<string, unknown>;
    const v = (m.vision_cfg ?? {}) as Record<string, unknown>;
    if (typeof v.head_width === 'number') heads = width / v.head_width;
    act = m.quick_gelu === true ? 'quick_gelu' : 'gelu';
    for (const [k, want] of [['width', width], ['layers', layers], ['patch_size', patch], ['image_size', grid * patch]] as const) {
      if (v[k] !== undefined && v[k] !== want) throw new ReleaseLoadError(`${configFile}: vision_cfg.${k} is ${JSON.stringify(v[k])} but ${clip.file} has ${want}`);
    }
  }
  if (!Number.isInteger(heads)) throw new ReleaseLoadError(`${clip.file}: cannot tell the ViT's head count (width ${width}); give open_clip_config.json`);
  return {
    image_size: grid * patch, patch_size: patch, width, layers, heads, mlp_ratio: mlp / width, output_dim: shape('proj')[1]!, act, ln_eps: 1e-5,
    // the released checkpoints were trained with open_clip < 2.23: patch tokens before ln_post
    ln_post_on_tokens: false,
  };
}

export function resamplerConfig(ck: TensorSource, dim: number): ResamplerConfig {
  const info = (n: string): readonly number[] => {
    const i = ck.info(`perceiver.${n}`);
    if (!i) throw new ReleaseLoadError(`${ck.file}: no 'perceiver.${n}': not an OpenFlamingo checkpoint`);
    return i.shape;
  };
  let depth = 0;
  while (ck.info(`perceiver.layers.${depth}.0.to_q.weight`)) depth++;
  const inner = info('layers.0.0.to_q.weight')[0]!;
  const dimHead = inner % 64 === 0 ? 64 : inner;
  return {
    dim, depth, dim_head: dimHead, heads: inner / dimHead, num_latents: info('latents')[0]!,
    max_num_media: ck.info('perceiver.media_time_embs')?.shape[0] ?? null, max_num_frames: ck.info('perceiver.frame_embs')?.shape[0] ?? null,
    ff_mult: info('layers.0.1.1.weight')[0]! / dim, ln_eps: 1e-5,
  };
}

/** Gated layers present in the checkpoint (canonical indices). */
export function gatedIndices(ck: TensorSource, prefix: string): number[] {
  const s = new Set<number>();
  for (const n of ck.names()) {
    const m = /^lang_encoder\.gated_cross_attn_layers\.(\d+)\./.exec(canonicalName(n, prefix));
    if (m) s.add(Number(m[1]));
  }
  return [...s].sort((a, b) => a - b);
}

/** Written by `flamingo export` next to the checkpoint: the full config of a model made here. */
export const SIDECAR_FILE = 'flamingo-ts.json';

/**
 * The parts of the config a release's files cannot say and a model exported from here may not share
 * with OpenFlamingo's fixed choices (head counts of the resampler and gated blocks, the vision-token
 * convention, the preprocessing): read from the sidecar next to the checkpoint when there is one.
 */
export function sidecarOverrides(checkpoint: string, log: (s: string) => void): ReleaseConfigOverrides {
  const file = join(dirname(checkpoint), SIDECAR_FILE);
  if (!existsSync(file)) return {};
  const raw = readJson(file, 'flamingo-ts config written by flamingo export');
  let cfg: FlamingoConfig;
  try {
    cfg = validateFlamingoConfig(raw);
  } catch (e) {
    throw new ReleaseLoadError(`${file}: ${(e as Error).message}`);
  }
  log(`release: vision, resampler, cross-attention and preprocessing settings from ${file}`);
  return { vision: cfg.vision, resampler: cfg.resampler, xattn: cfg.xattn, ...(cfg.preprocess ? { preprocess: cfg.preprocess } : {}) };
}
