/**
 * The reverse of the release loader: a Flamingo written as the three sources PyTorch OpenFlamingo
 * loads, so a model moves between this CPU implementation and a GPU cluster. Every weight file is a
 * `torch.save` state dict (io/torch-save.ts), as the released files are:
 *
 *   clip/open_clip_pytorch_model.bin   `visual.*` under open_clip's names + clip/open_clip_config.json
 *   lm/config.json + lm/pytorch_model.bin   the LM under its Hugging Face names (embeddings with
 *                                      tokenizer_len rows; config vocab_size says so) + tokenizer files
 *                                      (tokenizer_config.json names the pad / eos tokens, so
 *                                      OpenFlamingo adds no <PAD> of its own)
 *   openflamingo/checkpoint.pt         perceiver, gated blocks under FlamingoLayer names
 *                                      (`lang_encoder.<layers>.{i}.gated_cross_attn_layer.*`), the
 *                                      embeddings, and `vision_encoder.*`, so
 *                                      `load_state_dict(checkpoint, strict=False)` restores every weight
 *                                      trained or changed here whatever open_clip loaded
 *   openflamingo/flamingo-ts.json      the model's full config (this project's loader reads it, so
 *                                      head counts and conventions OpenFlamingo fixes come back as they were)
 *
 * In PyTorch: `create_model_and_transforms(clip_vision_encoder_path="ViT-L-14",
 * clip_vision_encoder_pretrained="openai", lang_encoder_path="<out>/lm", tokenizer_path="<out>/lm",
 * cross_attn_every_n_layers=N)` then `model.load_state_dict(torch.load("<out>/openflamingo/checkpoint.pt"),
 * strict=False)`. open_clip's own loader wants the text tower too (strict), which a Flamingo does not
 * hold: the clip file is for this project's loader and for tools that read `visual.*`.
 *
 * Tensors are streamed from the model's own buffers; packed (bf16 / int8) weights are dequantised a
 * few rows at a time, never as a whole second copy.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Flamingo } from '../model/flamingo.ts';
import { getLMFamily } from '../model/lm/index.ts';
import { dequantizeRow } from '../engine/quant.ts';
import type { Tensor } from '../engine/tensor.ts';
import { FlamingoError } from '../errors.ts';
import { writeTorchStateDict, type TorchTensorToWrite } from './torch-save.ts';
import { SIDECAR_FILE, type TokenizerInfo } from './release-files.ts';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

export class ReleaseExportError extends FlamingoError {}

export interface ExportedRelease {
  openClip: string;
  openClipConfig: string;
  lmDir: string;
  checkpoint: string;
  /** Where the model departs from what PyTorch OpenFlamingo builds (it would not load there as is). */
  notes: string[];
}

/** OpenFlamingo's fixed choices (create_model_and_transforms): the perceiver and gated blocks it builds. */
function openFlamingoDepartures(cfg: Flamingo['config']): string[] {
  const notes: string[] = [];
  const r = cfg.resampler;
  const x = cfg.xattn;
  const want = (what: string, got: unknown, expect: unknown): void => {
    if (got !== expect) notes.push(`${what} is ${JSON.stringify(got)}; OpenFlamingo builds ${JSON.stringify(expect)}`);
  };
  want('resampler.depth', r.depth, 6);
  want('resampler.num_latents', r.num_latents, 64);
  want('resampler.dim_head', r.dim_head, 64);
  want('resampler.heads', r.heads, 8);
  want('xattn.dim_head', x.dim_head, 64);
  want('xattn.heads', x.heads, 8);
  want('xattn.ff_mult', x.ff_mult, 4);
  want('resampler.ff_mult', r.ff_mult, 4);
  return notes;
}

/** Float32 rows dequantised per chunk when writing a packed weight. */
const ROWS_PER_CHUNK = 256;

/** A parameter as a tensor to write: its float32 buffer, or its packed storage dequantised chunk by chunk. */
function toWrite(t: Tensor): TorchTensorToWrite {
  const p = t.packed;
  if (!p) return { shape: t.shape, data: t.f32 };
  return {
    shape: t.shape,
    data: (emit) => {
      const buf = new Float32Array(Math.min(ROWS_PER_CHUNK, p.rows) * p.cols);
      for (let r0 = 0; r0 < p.rows; r0 += ROWS_PER_CHUNK) {
        const n = Math.min(ROWS_PER_CHUNK, p.rows - r0);
        for (let r = 0; r < n; r++) dequantizeRow(p, r0 + r, buf.subarray(r * p.cols, (r + 1) * p.cols));
        emit(buf.subarray(0, n * p.cols));
      }
    },
  };
}

/**
 * tokenizer_config.json for an exported LM directory whose tokenizer has none: the pad and eos tokens
 * by name (from the model's token ids), as transformers' AutoTokenizer reads them.
 */
function tokenizerConfig(model: Flamingo, tokenizerJson: string): Record<string, unknown> {
  const tok = JSON.parse(readFileSync(tokenizerJson, 'utf8')) as { added_tokens?: { id: number; content: string }[]; model?: { vocab?: Record<string, number> } };
  const byId = new Map<number, string>();
  for (const [t, id] of Object.entries(tok.model?.vocab ?? {})) byId.set(id, t);
  for (const a of tok.added_tokens ?? []) byId.set(a.id, a.content);
  const f = model.config.flamingo as { pad_token_id: number; eos_token_id?: number };
  const out: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast' };
  const pad = byId.get(f.pad_token_id);
  if (pad !== undefined) out.pad_token = pad;
  const eos = f.eos_token_id !== undefined ? byId.get(f.eos_token_id) : undefined;
  if (eos !== undefined) out.eos_token = eos;
  return out;
}

export interface ExportOptions {
  /** Tokenizer files to put in the LM directory (a model directory holding tokenizer.json). */
  tokenizerDir?: string | null;
  /** The values written for a parameter (default: its own, packed ones dequantised); benchmarks write synthetic ones. */
  tensorData?: (name: string, t: Tensor) => TorchTensorToWrite;
}

export function exportRelease(model: Flamingo, outDir: string, opts: ExportOptions = {}): ExportedRelease {
  const cfg = model.config;
  // OpenFlamingo has only the Perceiver Resampler and tanh-gated blocks: an ablation model has no such release
  if ((cfg.resampler.connector ?? 'perceiver') !== 'perceiver' || (cfg.xattn.gating ?? 'tanh') !== 'tanh') {
    throw new ReleaseExportError(`export: OpenFlamingo has no ${cfg.resampler.connector !== undefined && cfg.resampler.connector !== 'perceiver' ? `'${cfg.resampler.connector}' connector` : 'ungated cross-attention'}; this model cannot be exported`);
  }
  const family = getLMFamily(cfg.lm.family);
  const clip: [string, TorchTensorToWrite][] = [];
  const lm: [string, TorchTensorToWrite][] = [];
  const ck: [string, TorchTensorToWrite][] = [];
  const input = `lang_encoder.${family.inputEmbedding}`;
  const outName = family.outputEmbedding(cfg.lm);
  const output = outName ? `lang_encoder.${outName}` : null;
  for (const [name, t] of model.namedParameters()) {
    const w = opts.tensorData ? opts.tensorData(name, t) : toWrite(t);
    if (name.startsWith('vision_encoder.')) {
      clip.push([`visual.${name.slice('vision_encoder.'.length)}`, w]);
      ck.push([name, w]);
    } else if (name.startsWith('perceiver.')) {
      ck.push([name, w]);
    } else if (name.startsWith('lang_encoder.gated_cross_attn_layers.')) {
      const m = /^lang_encoder\.gated_cross_attn_layers\.(\d+)\.(.*)$/.exec(name)!;
      ck.push([`lang_encoder.${family.layersPrefix}.${m[1]}.gated_cross_attn_layer.${m[2]}`, w]);
    } else if (name.startsWith('lang_encoder.')) {
      lm.push([name.slice('lang_encoder.'.length), w]);
      // OpenFlamingo's checkpoints keep the trained input embedding and anything named "embed"
      if (name === input || name === output) ck.push([name, w]);
    } else {
      throw new ReleaseExportError(`export: parameter '${name}' belongs to no OpenFlamingo source`);
    }
  }
  const clipDir = join(outDir, 'clip');
  const lmDir = join(outDir, 'lm');
  const ofDir = join(outDir, 'openflamingo');
  for (const d of [clipDir, lmDir, ofDir]) mkdirSync(d, { recursive: true });
  const v = cfg.vision;
  const openClip = join(clipDir, 'open_clip_pytorch_model.bin');
  writeTorchStateDict(openClip, clip);
  const openClipConfig = join(clipDir, 'open_clip_config.json');
  writeFileSync(openClipConfig, JSON.stringify({
    model_cfg: {
      embed_dim: v.output_dim, quick_gelu: v.act === 'quick_gelu',
      vision_cfg: { image_size: v.image_size, layers: v.layers, width: v.width, patch_size: v.patch_size, head_width: v.width / v.heads, mlp_ratio: v.mlp_ratio },
    },
    preprocess_cfg: { mean: cfg.preprocess?.mean ?? [0.48145466, 0.4578275, 0.40821073], std: cfg.preprocess?.std ?? [0.26862954, 0.26130258, 0.27577711] },
  }, null, 2) + '\n');
  writeFileSync(join(lmDir, 'config.json'), JSON.stringify(family.toHF(cfg.lm), null, 2) + '\n');
  writeTorchStateDict(join(lmDir, 'pytorch_model.bin'), lm);
  const td = opts.tokenizerDir;
  if (td && existsSync(join(td, 'tokenizer.json'))) {
    for (const f of TOKENIZER_FILES) if (existsSync(join(td, f))) copyFileSync(join(td, f), join(lmDir, f));
    if (!existsSync(join(td, 'tokenizer_config.json'))) {
      writeFileSync(join(lmDir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig(model, join(td, 'tokenizer.json')), null, 2) + '\n');
    }
  }
  const checkpoint = join(ofDir, 'checkpoint.pt');
  writeTorchStateDict(checkpoint, ck);
  // the full config, for this project's loader (OpenFlamingo ignores the file)
  writeFileSync(join(ofDir, SIDECAR_FILE), JSON.stringify(cfg, null, 2) + '\n');
  return { openClip, openClipConfig, lmDir, checkpoint, notes: openFlamingoDepartures(cfg) };
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
