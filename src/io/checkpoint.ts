/**
 * Checkpoints by OpenFlamingo names: reading weights (safetensors, or PyTorch zip .pt/.bin),
 * mapping the alias names real OpenFlamingo checkpoints contain onto the canonical ones, loading
 * into a model with one clear report of missing / unexpected / mis-shaped tensors, and saving a
 * model directory (weights.safetensors + config.json) atomically.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from './safetensors.ts';
import { readTorchCheckpoint, torchTensorToFloat32 } from './torch-pickle.ts';
import { type LoadReport, StateDictError, formatLoadReport } from '../nn/module.ts';
import { Flamingo } from '../model/flamingo.ts';
import { validateFlamingoConfig, type FlamingoConfig } from '../model/config.ts';
import { checkModelSize } from '../model/size.ts';

export interface WeightEntry {
  shape: readonly number[];
  data: Float32Array;
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Read every tensor of a checkpoint file as float32 (F16/BF16/F64 converted). */
export function readWeights(path: string): Map<string, WeightEntry> {
  if (!existsSync(path)) throw new CheckpointError(`checkpoint file not found: ${path}`);
  const out = new Map<string, WeightEntry>();
  if (/\.(pt|pth|bin|ckpt)$/i.test(path)) {
    for (const [name, t] of readTorchCheckpoint(path)) {
      out.set(name, { shape: t.shape, data: torchTensorToFloat32(t) });
    }
    return out;
  }
  const f = readSafetensors(path);
  for (const e of f.entries()) {
    if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16' || e.dtype === 'F64') out.set(e.name, { shape: e.shape, data: f.float32(e.name) });
    else out.set(e.name, { shape: e.shape, data: Float32Array.from(f.int32(e.name)) });
  }
  return out;
}

/**
 * Canonical OpenFlamingo name for a checkpoint key. Real checkpoints also hold each LM block under
 * FlamingoLayer aliases; those map onto the canonical names (and duplicates are dropped after a check).
 */
export function canonicalName(name: string): string {
  let m = /^lang_encoder\.model\.layers\.(\d+)\.gated_cross_attn_layer\.(.*)$/.exec(name);
  if (m) return `lang_encoder.gated_cross_attn_layers.${m[1]}.${m[2]}`;
  m = /^lang_encoder\.model\.layers\.(\d+)\.decoder_layer\.(.*)$/.exec(name);
  if (m) return `lang_encoder.model.layers.${m[1]}.${m[2]}`;
  m = /^lang_encoder\.old_decoder_blocks\.(\d+)\.(.*)$/.exec(name);
  if (m) return `lang_encoder.model.layers.${m[1]}.${m[2]}`;
  return name;
}

/** Map a raw state dict to canonical names; aliases of the same tensor must agree in shape. */
export function canonicalize(raw: Map<string, WeightEntry>, prefix = ''): Map<string, WeightEntry> {
  const out = new Map<string, WeightEntry>();
  for (const [name0, w] of raw) {
    if (prefix && !name0.startsWith(prefix)) continue;
    const name = canonicalName(prefix ? name0.slice(prefix.length) : name0);
    const prev = out.get(name);
    if (prev) {
      const same = prev.shape.length === w.shape.length && prev.shape.every((d, i) => d === w.shape[i]);
      if (!same) throw new CheckpointError(`'${name0}' is an alias of '${name}' but has shape [${w.shape}] instead of [${prev.shape}]`);
      continue;
    }
    out.set(name, w);
  }
  return out;
}

/** Load a checkpoint into a Flamingo (a tied model ignores a stored lm_head.weight); one report of every mismatch. */
export function loadFlamingoWeights(model: Flamingo, path: string, strict = true): LoadReport {
  const w = canonicalize(readWeights(path));
  if (model.config.lm.tie_word_embeddings) w.delete('lang_encoder.lm_head.weight');
  try {
    return model.loadStateDict(w, { strict });
  } catch (e) {
    if (e instanceof StateDictError) throw new CheckpointError(`${path}: ${e.message}`);
    throw e;
  }
}

function atomicWriteText(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, file);
}

/** Save `config.json` + `weights.safetensors` into dir (each written atomically). */
export function saveFlamingo(model: Flamingo, dir: string, metadata: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of model.namedParameters()) tensors[name] = { dtype: 'F32', shape: [...t.shape], data: t.f32 };
  writeSafetensors(join(dir, 'weights.safetensors'), tensors, { format: 'flamingo-ts', ...metadata });
  atomicWriteText(join(dir, 'config.json'), JSON.stringify(model.config, null, 2) + '\n');
}

export function readFlamingoConfig(dir: string): FlamingoConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new CheckpointError(`no config.json in ${dir}`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  return validateFlamingoConfig(raw);
}

/** Build a Flamingo from a directory written by saveFlamingo (or config.json + an OpenFlamingo checkpoint). */
export function loadFlamingo(dir: string, weightsFile = 'weights.safetensors'): Flamingo {
  const config = readFlamingoConfig(dir);
  const weights = join(dir, weightsFile);
  // Both checked before the model is built: a config far larger than its weights is refused without allocating.
  if (!existsSync(weights)) throw new CheckpointError(`checkpoint file not found: ${weights}`);
  checkModelSize(config, { weights: { bytes: statSync(weights).size, file: weights }, source: join(dir, 'config.json') });
  const model = new Flamingo(config);
  loadFlamingoWeights(model, weights);
  return model;
}

export { formatLoadReport };
