/**
 * The reverse of the release loader: a Flamingo written as the three sources PyTorch OpenFlamingo
 * loads, so a model moves between this CPU implementation and a GPU cluster.
 *
 *   clip/open_clip_model.safetensors   `visual.*` (open_clip names) + clip/open_clip_config.json
 *   lm/config.json + lm/model.safetensors   the LM under its Hugging Face names (embeddings with
 *                                      tokenizer_len rows; config vocab_size says so) + tokenizer files
 *   openflamingo/checkpoint.safetensors perceiver, gated blocks under FlamingoLayer names
 *                                      (`lang_encoder.<layers>.{i}.gated_cross_attn_layer.*`), the
 *                                      embeddings, and `vision_encoder.*` (so load_state_dict(strict=False)
 *                                      restores the vision weights whatever open_clip loaded)
 *
 * Tensors are written from the model's own buffers (no copies).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Flamingo } from '../model/flamingo.ts';
import { getLMFamily } from '../model/lm/index.ts';
import { writeSafetensors, type TensorToWrite } from './safetensors.ts';
import type { TokenizerInfo } from './release.ts';
import { FlamingoError } from '../errors.ts';

export class ReleaseExportError extends FlamingoError {}

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

export interface ExportedRelease {
  openClip: string;
  openClipConfig: string;
  lmDir: string;
  checkpoint: string;
}

export function exportRelease(model: Flamingo, outDir: string, opts: { tokenizerDir?: string | null } = {}): ExportedRelease {
  const cfg = model.config;
  // OpenFlamingo has only the Perceiver Resampler and tanh-gated blocks: an ablation model has no such release
  if ((cfg.resampler.connector ?? 'perceiver') !== 'perceiver' || (cfg.xattn.gating ?? 'tanh') !== 'tanh') {
    throw new ReleaseExportError(`export: OpenFlamingo has no ${cfg.resampler.connector !== undefined && cfg.resampler.connector !== 'perceiver' ? `'${cfg.resampler.connector}' connector` : 'ungated cross-attention'}; this model cannot be exported`);
  }
  const family = getLMFamily(cfg.lm.family);
  const clip: Record<string, TensorToWrite> = {};
  const lm: Record<string, TensorToWrite> = {};
  const ck: Record<string, TensorToWrite> = {};
  const put = (dst: Record<string, TensorToWrite>, name: string, t: { shape: readonly number[]; f32: Float32Array }): void => {
    dst[name] = { dtype: 'F32', shape: [...t.shape], data: t.f32 };
  };
  const input = `lang_encoder.${family.inputEmbedding}`;
  const outName = family.outputEmbedding(cfg.lm);
  const output = outName ? `lang_encoder.${outName}` : null;
  for (const [name, t] of model.namedParameters()) {
    if (name.startsWith('vision_encoder.')) {
      put(clip, `visual.${name.slice('vision_encoder.'.length)}`, t);
      put(ck, name, t);
    } else if (name.startsWith('perceiver.')) {
      put(ck, name, t);
    } else if (name.startsWith('lang_encoder.gated_cross_attn_layers.')) {
      const m = /^lang_encoder\.gated_cross_attn_layers\.(\d+)\.(.*)$/.exec(name)!;
      put(ck, `lang_encoder.${family.layersPrefix}.${m[1]}.gated_cross_attn_layer.${m[2]}`, t);
    } else if (name.startsWith('lang_encoder.')) {
      put(lm, name.slice('lang_encoder.'.length), t);
      // OpenFlamingo's checkpoints keep the trained input embedding and anything named "embed"
      if (name === input || name === output) put(ck, name, t);
    } else {
      throw new Error(`export: parameter '${name}' belongs to no OpenFlamingo source`);
    }
  }
  const clipDir = join(outDir, 'clip');
  const lmDir = join(outDir, 'lm');
  const ofDir = join(outDir, 'openflamingo');
  for (const d of [clipDir, lmDir, ofDir]) mkdirSync(d, { recursive: true });
  const v = cfg.vision;
  const openClip = join(clipDir, 'open_clip_model.safetensors');
  writeSafetensors(openClip, clip, { format: 'pt' });
  const openClipConfig = join(clipDir, 'open_clip_config.json');
  writeFileSync(openClipConfig, JSON.stringify({
    model_cfg: {
      embed_dim: v.output_dim, quick_gelu: v.act === 'quick_gelu',
      vision_cfg: { image_size: v.image_size, layers: v.layers, width: v.width, patch_size: v.patch_size, head_width: v.width / v.heads, mlp_ratio: v.mlp_ratio },
    },
    preprocess_cfg: { mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] },
  }, null, 2) + '\n');
  writeFileSync(join(lmDir, 'config.json'), JSON.stringify(family.toHF(cfg.lm), null, 2) + '\n');
  writeSafetensors(join(lmDir, 'model.safetensors'), lm, { format: 'pt' });
  if (opts.tokenizerDir) for (const f of TOKENIZER_FILES) if (existsSync(join(opts.tokenizerDir, f))) copyFileSync(join(opts.tokenizerDir, f), join(lmDir, f));
  const checkpoint = join(ofDir, 'checkpoint.safetensors');
  writeSafetensors(checkpoint, ck, { format: 'pt' });
  return { openClip, openClipConfig, lmDir, checkpoint };
}

/**
 * tokenizer.json with OpenFlamingo's tokens as `save_pretrained` writes them after
 * create_model_and_transforms: each missing one appended to added_tokens (special, not normalized).
 */
export function tokenizerJsonWithOpenFlamingoTokens(file: string, info: TokenizerInfo): string {
  const tok = JSON.parse(readFileSync(file, 'utf8')) as { added_tokens?: { id: number; content: string }[] };
  const added = tok.added_tokens ?? [];
  const have = new Set(added.map((a) => a.content));
  const want: [string, number][] = [['<|endofchunk|>', info.eoc], ['<image>', info.media], ['<PAD>', info.pad]];
  for (const [content, id] of want) {
    if (have.has(content) || added.some((a) => a.id === id)) continue;
    added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true } as { id: number; content: string });
  }
  tok.added_tokens = added;
  return JSON.stringify(tok);
}
