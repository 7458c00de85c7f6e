/**
 * Loading a released OpenFlamingo model from its three sources as they are downloaded, assembled as
 * OpenFlamingo's `create_model_and_transforms` + `load_state_dict(checkpoint, strict=False)` do:
 *
 *   1. open_clip weight file (full CLIP state dict): `visual.*` → `vision_encoder.*`; the text tower
 *      is ignored.
 *   2. Hugging Face LM directory (config.json + model.safetensors | pytorch_model.bin | shards with an
 *      *.index.json): its tensors under `lang_encoder.`, input (and untied output) embedding cut to
 *      the tokenizer's length (resize_token_embeddings); non-parameter buffers ignored.
 *   3. OpenFlamingo checkpoint (.pt or .safetensors): perceiver, gated blocks under FlamingoLayer names,
 *      the trained embeddings; it overrides 2 where both have a tensor.
 *
 * Every name and shape is checked before any weight is read; problems come back as one error listing
 * the missing / unexpected / mis-shaped tensors with their files. Weights are then read one tensor at
 * a time straight into the model's parameters (no second copy), through one per-tensor hook.
 */
import { type WeightDType } from '../engine/quant.ts';
import { packingLoadHook } from '../nn/quantize.ts';
import { FlamingoError } from '../errors.ts';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Tensor } from '../engine/tensor.ts';
import {
  gatedLayerIndices, validateFlamingoConfig, type AnyLMConfig, type FlamingoConfig, type FlamingoTokensConfig,
  type ResamplerConfig, type VisionConfig, type XAttnConfig,
} from '../model/config.ts';
import { Flamingo } from '../model/flamingo.ts';
import { OPEN_CLIP_EVAL_PREPROCESS, type PreprocessConfig } from '../model/preprocess-config.ts';
import { checkModelSize } from '../model/size.ts';
import { familyForModelType, lmFamilies, type LMFamily } from '../model/lm/index.ts';
import { canonicalName } from './checkpoint.ts';
import { openTensorSource, type TensorSource } from './tensor-source.ts';

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

/** Least bytes a parameter takes in memory in each storage type (the packed linear weights' share; the rest is fp32). */
const BYTES_PER_WEIGHT: Record<WeightDType, number> = { fp32: 4, bf16: 2, int8: 1.125 };

/**
 * Per-tensor load hook: fill `param` (C order) from its source. `read(dest, offset)` reads source
 * elements [offset, offset + dest.length) as float32 into dest; `available` elements exist (fewer
 * than param.size only for an embedding whose LM file has fewer rows than the tokenizer: the rest
 * keep their initial values). The default reads straight into param's float32 storage; a
 * low-precision loader converts here, chunk by chunk, instead.
 */
export type TensorLoadHook = (name: string, param: Tensor, read: (dest: Float32Array, offset?: number) => void, available: number) => void;

export interface ReleaseLoadOptions extends ReleaseConfigOverrides {
  onTensor?: TensorLoadHook;
  /** Storage of the linear weights (bf16 / int8 packed as they are read; default fp32). Ignored with onTensor. */
  dtype?: WeightDType;
  /** Progress / provenance lines (which files, how many tensors). */
  log?: (line: string) => void;
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
function visionConfig(clip: TensorSource, configFile: string | null): VisionConfig {
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

function resamplerConfig(ck: TensorSource, dim: number): ResamplerConfig {
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
function gatedIndices(ck: TensorSource, prefix: string): number[] {
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
function sidecarOverrides(checkpoint: string, log: (s: string) => void): ReleaseConfigOverrides {
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

interface PlanEntry {
  source: TensorSource;
  name: string;
}

/** Build the Flamingo config and the model, check every name and shape, then read the weights. */
export function loadRelease(files: ReleaseFiles, opts0: ReleaseLoadOptions = {}): { model: Flamingo; config: FlamingoConfig; tokenizer: TokenizerInfo | null } {
  const log = opts0.log ?? ((): void => {});
  const opts = { ...sidecarOverrides(files.checkpoint, log), ...opts0 };
  const lm = readLMDir(files);
  const sources: TensorSource[] = [];
  const open = (f: string): TensorSource => {
    const s = openTensorSource(f);
    sources.push(s);
    return s;
  };
  try {
    const clip = open(files.openClip);
    const lmSources = lm.weights.map(open);
    const ck = open(files.checkpoint);
    const family = lm.family;
    const embName = `lang_encoder.${family.inputEmbedding}`;
    const ckEmb = ck.info(embName);
    if (!ckEmb) {
      const other = lmFamilies().find((f) => f !== family && ck.info(`lang_encoder.${f.inputEmbedding}`));
      throw new ReleaseLoadError(`${files.checkpoint}: no '${embName}'`
        + (other ? `: it is a checkpoint for a ${other.name} language model, but ${lm.configFile} describes ${family.name}` : ': not an OpenFlamingo checkpoint for this language model'));
    }
    const tok = openFlamingoTokenizerInfo(files.lmDir);
    const tokenizerLen = opts.flamingo?.tokenizer_len ?? ckEmb.shape[0]!;
    if (ckEmb.shape[0] !== tokenizerLen) {
      throw new ReleaseLoadError(`${files.checkpoint}: '${embName}' has ${ckEmb.shape[0]} rows but tokenizer_len is ${tokenizerLen}`);
    }
    if (tok && tok.length !== tokenizerLen) {
      throw new ReleaseLoadError(`${tok.file}: the tokenizer has ${tok.length} entries with OpenFlamingo's tokens, but ${files.checkpoint} `
        + `was trained with ${tokenizerLen} (tokenizer of another model?)`);
    }
    const lmCfg = family.fromHF(lm.hf, lm.configFile, tokenizerLen) as AnyLMConfig;
    const clipCfgFile = files.openClipConfig !== undefined ? files.openClipConfig
      : [join(dirname(files.openClip), 'open_clip_config.json')].find((p) => existsSync(p)) ?? null;
    const vision = opts.vision ?? visionConfig(clip, clipCfgFile);
    const latents = ck.info('perceiver.latents');
    if (!opts.resampler && latents && latents.shape[1] !== vision.width) {
      throw new ReleaseLoadError(`${files.openClip}: the vision encoder is ${vision.width} wide but ${files.checkpoint}'s resampler takes `
        + `${latents.shape[1]}-dimensional features (open_clip model of another size than the checkpoint's?)`);
    }
    const resampler = opts.resampler ?? resamplerConfig(ck, vision.width);
    const gated = gatedIndices(ck, family.layersPrefix);
    if (gated.length === 0) throw new ReleaseLoadError(`${files.checkpoint}: no gated cross-attention blocks under 'lang_encoder.${family.layersPrefix}.{i}.gated_cross_attn_layer'`);
    const every = opts.flamingo?.cross_attn_every_n_layers ?? gated[0]! + 1;
    const want = gatedLayerIndices(lmCfg.num_layers, every);
    if (want.length !== gated.length || want.some((x, i) => x !== gated[i])) {
      throw new ReleaseLoadError(`${files.checkpoint}: gated cross-attention blocks before layers [${gated.join(', ')}] do not match `
        + `cross_attn_every_n_layers ${every} of a ${lmCfg.num_layers}-layer LM (${lm.configFile}); checkpoint of another release?`);
    }
    let xattn = opts.xattn;
    if (!xattn) {
      const q = ck.info(`lang_encoder.gated_cross_attn_layers.${gated[0]}.attn.to_q.weight`)
        ?? ck.info(`lang_encoder.${family.layersPrefix}.${gated[0]}.gated_cross_attn_layer.attn.to_q.weight`);
      const ff = ck.info(`lang_encoder.${family.layersPrefix}.${gated[0]}.gated_cross_attn_layer.ff.1.weight`)
        ?? ck.info(`lang_encoder.gated_cross_attn_layers.${gated[0]}.ff.1.weight`);
      if (!q || !ff) throw new ReleaseLoadError(`${files.checkpoint}: gated block ${gated[0]} lacks attn.to_q / ff.1 weights`);
      const inner = q.shape[0]!;
      const dh = inner % 64 === 0 ? 64 : inner;
      xattn = { dim: lmCfg.hidden_size, dim_visual: resampler.dim, dim_head: dh, heads: inner / dh, ff_mult: ff.shape[0]! / lmCfg.hidden_size, only_attend_immediate_media: true, ln_eps: 1e-5 };
    }
    const tokens: FlamingoTokensConfig = opts.flamingo
      ? { cross_attn_every_n_layers: every, media_token_id: opts.flamingo.media_token_id, eoc_token_id: opts.flamingo.eoc_token_id, pad_token_id: opts.flamingo.pad_token_id }
      : tok
        ? { cross_attn_every_n_layers: every, media_token_id: tok.media, eoc_token_id: tok.eoc, pad_token_id: tok.pad }
        // without tokenizer files: the GPT-NeoX layout (no pad token, three added ids at the end)
        : { cross_attn_every_n_layers: every, eoc_token_id: tokenizerLen - 3, media_token_id: tokenizerLen - 2, pad_token_id: tokenizerLen - 1 };
    // the released models were evaluated with open_clip's transform on the image as opened
    const config = validateFlamingoConfig({ vision, resampler, xattn, lm: lmCfg, flamingo: tokens, preprocess: opts.preprocess ?? OPEN_CLIP_EVAL_PREPROCESS });
    // Before anything is allocated: a config the files cannot hold, or one this machine cannot, is refused here.
    const fileBytes = sources.reduce((a, s) => a + statSync(s.file).size, 0);
    checkModelSize(config, {
      bytesPerParameter: BYTES_PER_WEIGHT[opts.dtype ?? 'fp32'], source: `${files.lmDir} + ${files.checkpoint}`,
      weights: { bytes: fileBytes, file: 'the release\'s weight files' },
    });
    log(`release: ${family.name} LM (${lm.configFile}), tokenizer_len ${tokenizerLen}, xattn before layers [${gated.join(', ')}]`);

    // a skeleton: every parameter is overwritten below (or the load fails before any is read)
    const model = new Flamingo(config, 0, { init: false });
    model.setTrainingMode('none');
    const params = new Map(model.namedParameters());
    const plan = new Map<string, PlanEntry>();
    const unexpected: string[] = [];
    const mismatched: string[] = [];
    const resized = new Set([embName, ...(family.outputEmbedding(lmCfg) ? [`lang_encoder.${family.outputEmbedding(lmCfg)}`] : [])]);
    const consider = (src: TensorSource, srcName: string, target: string): void => {
      const p = params.get(target);
      if (!p) { unexpected.push(`${src.file}: ${srcName}`); return; }
      const got = src.info(srcName)!.shape;
      const okRows = resized.has(target) && got.length === 2 && got[1] === p.shape[1];
      const same = got.length === p.shape.length && got.every((d, i) => d === p.shape[i]);
      if (!same && !okRows) { mismatched.push(`${src.file}: ${srcName} is [${got.join(', ')}], the model needs [${p.shape.join(', ')}]`); return; }
      plan.set(target, { source: src, name: srcName });
    };
    let visual = 0;
    for (const n of clip.names()) {
      if (!n.startsWith('visual.')) continue; // the text tower
      visual++;
      consider(clip, n, `vision_encoder.${n.slice('visual.'.length)}`);
    }
    if (visual === 0) throw new ReleaseLoadError(`${files.openClip}: no visual.* tensors: not an open_clip CLIP state dict`);
    for (const src of lmSources) {
      for (const n of src.names()) {
        if (family.isBuffer(n)) continue;
        if (lmCfg.tie_word_embeddings && (n === 'lm_head.weight' || n === 'embed_out.weight')) continue;
        consider(src, n, `lang_encoder.${n}`);
      }
    }
    for (const n of ck.names()) {
      const c = canonicalName(n, family.layersPrefix);
      if (c.startsWith(`lang_encoder.${family.layersPrefix}.`) && family.isBuffer(c)) continue;
      consider(ck, n, c);
    }
    const missing = [...params.keys()].filter((n) => !plan.has(n));
    if (missing.length + unexpected.length + mismatched.length > 0) {
      const list = (title: string, xs: string[]): string => (xs.length ? `\n  ${title} (${xs.length}): ${xs.slice(0, 12).join('; ')}${xs.length > 12 ? '; …' : ''}` : '');
      throw new ReleaseLoadError(`the three sources do not assemble into this model (${files.openClip}, ${files.lmDir}, ${files.checkpoint}):`
        + list('missing', missing) + list('unexpected', unexpected) + list('mis-shaped', mismatched));
    }

    const hook: TensorLoadHook = opts.onTensor
      ?? (opts.dtype && opts.dtype !== 'fp32' ? packingLoadHook(model, opts.dtype) : ((_n, param, read, available) => read(param.f32.subarray(0, available))));
    for (const [target, { source, name }] of plan) {
      const p = params.get(target)!;
      const available = Math.min(p.size, source.info(name)!.shape.reduce((a, b) => a * b, 1));
      hook(target, p, (dest, offset = 0) => source.readInto(name, dest, offset), available);
    }
    log(`release: ${plan.size} tensors from ${sources.length} files`);
    return { model, config, tokenizer: tok };
  } finally {
    for (const s of sources) s.close();
  }
}
