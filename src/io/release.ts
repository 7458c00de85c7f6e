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
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Tensor } from '../engine/tensor.ts';
import { gatedLayerIndices, validateFlamingoConfig, type AnyLMConfig, type FlamingoConfig, type FlamingoTokensConfig } from '../model/config.ts';
import { Flamingo } from '../model/flamingo.ts';
import { OPEN_CLIP_EVAL_PREPROCESS } from '../model/preprocess-config.ts';
import { checkModelSize } from '../model/size.ts';
import { lmFamilies } from '../model/lm/index.ts';
import { canonicalName } from './checkpoint.ts';
import { openTensorSource, type TensorSource } from './tensor-source.ts';

import { ReleaseLoadError, gatedIndices, openFlamingoTokenizerInfo, readLMDir, resamplerConfig, sidecarOverrides, visionConfig, type ReleaseConfigOverrides, type ReleaseFiles, type TokenizerInfo } from './release-files.ts';

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
