/**
 * Checkpoints by OpenFlamingo names: reading weights (safetensors, or PyTorch zip .pt/.bin),
 * mapping the alias names real OpenFlamingo checkpoints contain onto the canonical ones, loading
 * into a model with one clear report of missing / unexpected / mis-shaped tensors, and saving a
 * model directory (weights.safetensors + config.json) atomically.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsReader, readSafetensors } from './safetensors-read.ts';
import { writeSafetensors } from './safetensors-write.ts';
import { type TensorToWrite } from './safetensors.ts';
import { readTorchCheckpoint } from './torch-pickle.ts';
import { torchTensorToFloat32 } from './torch-storage.ts';
import { type LoadReport, StateDictError, formatLoadReport } from '../nn/module.ts';
import { Flamingo } from '../model/flamingo.ts';
import { validateFlamingoConfig, type FlamingoConfig } from '../model/config.ts';
import { checkModelSize } from '../model/size.ts';
import { type PackedWeight, type WeightDType, allocPacked, blocksPerRow, dequantizeRow, parseWeightDType } from '../engine/quant.ts';
import { linearWeightNames, packRowsInto, storedDType } from '../nn/quantize.ts';
import { FlamingoError } from '../errors.ts';

export interface WeightEntry {
  shape: readonly number[];
  data: Float32Array;
}

export class CheckpointError extends FlamingoError {}

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
 * Canonical name for a checkpoint key. Real OpenFlamingo checkpoints hold each LM block under
 * FlamingoLayer aliases: `lang_encoder.<layers>.{i}.gated_cross_attn_layer.*` (the gated block
 * before layer i), `lang_encoder.<layers>.{i}.decoder_layer.*` and `lang_encoder.old_decoder_blocks.{i}.*`
 * (the decoder layer itself), where `<layers>` is the LM family's layer prefix (`model.layers`,
 * `transformer.blocks`, `gpt_neox.layers`).
 */
export function canonicalName(name: string, layersPrefix = 'model.layers'): string {
  const lp = layersPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let m = new RegExp(`^lang_encoder\\.${lp}\\.(\\d+)\\.gated_cross_attn_layer\\.(.*)$`).exec(name);
  if (m) return `lang_encoder.gated_cross_attn_layers.${m[1]}.${m[2]}`;
  m = new RegExp(`^lang_encoder\\.${lp}\\.(\\d+)\\.decoder_layer\\.(.*)$`).exec(name);
  if (m) return `lang_encoder.${layersPrefix}.${m[1]}.${m[2]}`;
  m = /^lang_encoder\.old_decoder_blocks\.(\d+)\.(.*)$/.exec(name);
  if (m) return `lang_encoder.${layersPrefix}.${m[1]}.${m[2]}`;
  return name;
}

/** Map a raw state dict to canonical names; aliases of the same tensor must agree in shape. */
export function canonicalize(raw: Map<string, WeightEntry>, prefix = '', layersPrefix = 'model.layers'): Map<string, WeightEntry> {
  const out = new Map<string, WeightEntry>();
  for (const [name0, w] of raw) {
    if (prefix && !name0.startsWith(prefix)) continue;
    const name = canonicalName(prefix ? name0.slice(prefix.length) : name0, layersPrefix);
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

/**
 * Load a checkpoint into a Flamingo (a tied model ignores a stored lm_head.weight); one report of
 * every mismatch. Safetensors files are read tensor by tensor into the parameters' own storage
 * (packing frozen linear weights when `dtype` asks for it); PyTorch files are read whole.
 */
export function loadFlamingoWeights(model: Flamingo, path: string, strict = true, dtype?: WeightDType): LoadReport {
  if (!/\.(pt|pth|bin|ckpt)$/i.test(path)) {
    if (!existsSync(path)) throw new CheckpointError(`checkpoint file not found: ${path}`);
    return streamSafetensorsInto(model, path, strict, dtype);
  }
  const w = canonicalize(readWeights(path));
  if (model.config.lm.tie_word_embeddings) w.delete('lang_encoder.lm_head.weight');
  try {
    const report = model.loadStateDict(w, { strict });
    if (dtype) quantizeAfterLoad(model, dtype);
    return report;
  } catch (e) {
    if (e instanceof StateDictError) throw new CheckpointError(`${path}: ${e.message}`);
    throw e;
  }
}

function quantizeAfterLoad(model: Flamingo, dtype: WeightDType): void {
  if (dtype === 'fp32') return;
  const names = linearWeightNames(model);
  for (const [name, t] of model.namedParameters()) {
    if (!names.has(name) || t.requiresGrad || t.packed) continue;
    const p = allocPacked(t.shape[0]!, t.shape[1]!, dtype);
    packRowsInto(p, 0, t.f32, t.shape[0]!);
    t.pack(p);
  }
}

/**
 * Naming of packed weights in safetensors files: a bf16 weight is an ordinary `BF16` tensor under
 * its own name; an int8 weight is an `I8` tensor (out, in) under its own name plus its scales, an
 * `F32` tensor (out, ceil(in / 32)) named `<name>.q8_scales` (one per block of 32 input weights,
 * w ≈ q · scale). The metadata records `weight_dtype` (fp32 | bf16 | int8) and `q8_block` (32).
 */
export const Q8_SCALES_SUFFIX = '.q8_scales';

/** Rows of float32 read or converted at a time while packing (16 MB). */
const CHUNK_FLOATS = 1 << 22;

function streamSafetensorsInto(model: Flamingo, path: string, strict: boolean, dtype: WeightDType | undefined): LoadReport {
  let r: SafetensorsReader;
  try {
    r = SafetensorsReader.open(path);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  }
  try {
    // canonical name → stored name (aliases must agree in shape; scales belong to their weight)
    const stored = new Map<string, string>();
    for (const e of r.entries()) {
      if (e.name.endsWith(Q8_SCALES_SUFFIX) && r.has(e.name.slice(0, -Q8_SCALES_SUFFIX.length))) continue;
      const name = canonicalName(e.name);
      const prev = stored.get(name);
      if (prev !== undefined) {
        const ps = r.entry(prev).shape;
        const same = ps.length === e.shape.length && ps.every((d, i) => d === e.shape[i]);
        if (!same) throw new CheckpointError(`'${e.name}' is an alias of '${name}' but has shape [${e.shape}] instead of [${ps}]`);
        continue;
      }
      stored.set(name, e.name);
    }
    if (model.config.lm.tie_word_embeddings) stored.delete('lang_encoder.lm_head.weight');
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    const own = model.namedParameters();
    const ownNames = new Set(own.map(([n]) => n));
    for (const [name, t] of own) {
      const src = stored.get(name);
      if (src === undefined) { report.missing.push(name); continue; }
      const shape = r.entry(src).shape;
      if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) report.mismatched.push({ name, expected: t.shape, got: shape });
    }
    for (const name of stored.keys()) if (!ownNames.has(name)) report.unexpected.push(name);
    if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
      throw new CheckpointError(`${path}: ${formatLoadReport(report)}`);
    }
    const fileDType = r.metadata.weight_dtype;
    const asStored: WeightDType = fileDType === 'bf16' || fileDType === 'int8' ? fileDType : 'fp32';
    const want = dtype ?? asStored;
    const packable = linearWeightNames(model);
    const bad = new Set(report.mismatched.map((m) => m.name));
    const chunk = new Float32Array(CHUNK_FLOATS);
    for (const [name, t] of own) {
      const src = stored.get(name);
      if (src === undefined || bad.has(name)) continue;
      const kind: WeightDType = t.packed ? t.packed.kind : packable.has(name) && !t.requiresGrad ? want : 'fp32';
      try {
        if (kind === 'fp32') readFloat32Param(r, src, t.f32);
        else {
          const p = readPacked(r, src, t.shape[0]!, t.shape[1]!, kind, chunk);
          if (t.packed) replacePacked(t.packed, p);
          else t.pack(p);
        }
      } catch (e) {
        if (e instanceof CheckpointError) throw e;
        throw new CheckpointError(`${path}: '${src}': ${(e as Error).message}`);
      }
    }
    return report;
  } finally {
    r.close();
  }
}

/** Copies packed storage of the same kind and shape into an existing packed weight. */
function replacePacked(dst: PackedWeight, src: PackedWeight): void {
  if (dst.kind === 'bf16' && src.kind === 'bf16') dst.bits.set(src.bits);
  else if (dst.kind === 'int8' && src.kind === 'int8') {
    dst.qs.set(src.qs);
    dst.scales.set(src.scales);
  }
}

/** A float32 parameter from any stored type (int8 weights are dequantised). */
function readFloat32Param(r: SafetensorsReader, name: string, out: Float32Array): void {
  const e = r.entry(name);
  if (e.dtype !== 'I8') { r.readFloat32(name, out); return; }
  const [rows, cols] = e.shape as [number, number];
  const p = readInt8(r, name, rows, cols);
  for (let i = 0; i < rows; i++) dequantizeRow(p, i, out.subarray(i * cols, (i + 1) * cols));
}

function readInt8(r: SafetensorsReader, name: string, rows: number, cols: number): PackedWeight & { kind: 'int8' } {
  const sname = name + Q8_SCALES_SUFFIX;
  if (!r.has(sname)) throw new CheckpointError(`${r.path}: '${name}' is int8 but '${sname}' is missing`);
  const se = r.entry(sname);
  const nb = blocksPerRow(cols);
  if (se.dtype !== 'F32' || se.shape.length !== 2 || se.shape[0] !== rows || se.shape[1] !== nb) {
    throw new CheckpointError(`${r.path}: '${sname}' must be F32 [${rows}, ${nb}] (one scale per block of 32), got ${se.dtype} [${se.shape}]`);
  }
  const p = allocPacked(rows, cols, 'int8') as PackedWeight & { kind: 'int8' };
  r.readInto(name, p.qs);
  r.readInto(sname, p.scales);
  return p;
}

/** Packed storage for a weight, read directly when stored in that type, else converted row chunk by row chunk. */
function readPacked(r: SafetensorsReader, name: string, rows: number, cols: number, kind: 'bf16' | 'int8', chunk: Float32Array): PackedWeight {
  const e = r.entry(name);
  if (kind === 'int8' && e.dtype === 'I8') return readInt8(r, name, rows, cols);
  if (e.dtype === 'I8') throw new CheckpointError(`${r.path}: '${name}' is stored as int8; load it as int8 or fp32 (converting int8 to bf16 would round twice)`);
  const p = allocPacked(rows, cols, kind);
  if (kind === 'bf16' && e.dtype === 'BF16' && p.kind === 'bf16') {
    r.readInto(name, p.bits);
    return p;
  }
  const step = Math.max(1, Math.floor(chunk.length / Math.max(cols, 1)));
  const big = step * cols > chunk.length ? new Float32Array(step * cols) : chunk;
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const buf = big.subarray(0, n * cols);
    r.readFloat32(name, buf, r0 * cols);
    packRowsInto(p, r0, buf, n);
  }
  return p;
}

function atomicWriteText(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, file);
}

/**
 * Save `config.json` + `weights.safetensors` into dir (each written atomically). Packed weights are
 * written as stored (BF16, or I8 + `.q8_scales`, see Q8_SCALES_SUFFIX), so a quantised model
 * reloads without re-quantising.
 */
export function saveFlamingo(model: Flamingo, dir: string, metadata: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of model.namedParameters()) {
    const p = t.packed;
    if (!p) tensors[name] = { dtype: 'F32', shape: [...t.shape], data: t.f32 };
    else if (p.kind === 'bf16') tensors[name] = { dtype: 'BF16', shape: [p.rows, p.cols], data: p.bits };
    else {
      tensors[name] = { dtype: 'I8', shape: [p.rows, p.cols], data: p.qs };
      tensors[name + Q8_SCALES_SUFFIX] = { dtype: 'F32', shape: [p.rows, blocksPerRow(p.cols)], data: p.scales };
    }
  }
  const dt = storedDType(model);
  const quant: Record<string, string> = dt === 'int8' ? { weight_dtype: dt, q8_block: '32' } : { weight_dtype: dt };
  writeSafetensors(join(dir, 'weights.safetensors'), tensors, { format: 'flamingo-ts', ...quant, ...metadata });
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

export interface LoadFlamingoOptions {
  /**
   * Storage of the linear weights: 'fp32', 'bf16' or 'int8' (packed at load time, tensor by tensor,
   * from F32 / F16 / BF16 files; int8 files load as int8 or fp32). Default: as the file was saved
   * (its `weight_dtype` metadata), else fp32.
   */
  dtype?: WeightDType;
  /**
   * With a packed dtype: keep the resampler and gated blocks trainable (float32) and pack only the
   * frozen ViT and LM weights. Default false: the model is loaded for inference (every part frozen,
   * every linear weight packed).
   */
  train?: boolean;
}

/**
 * Build a Flamingo from a directory written by saveFlamingo (or config.json + an OpenFlamingo
 * checkpoint). The model is built as a skeleton and each tensor read into its final storage, so
 * loading needs about the final model's memory (not the float32 model's, nor the file's on top).
 */
export function loadFlamingo(dir: string, weightsFile = 'weights.safetensors', opts: LoadFlamingoOptions = {}): Flamingo {
  const dtype = opts.dtype === undefined ? undefined : parseWeightDType(opts.dtype, 'dtype');
  const config = readFlamingoConfig(dir);
  const weights = join(dir, weightsFile);
  // Both checked before the model is built: a config far larger than its weights is refused without allocating.
  if (!existsSync(weights)) throw new CheckpointError(`checkpoint file not found: ${weights}`);
  const fileDType = dtype ?? storedWeightDType(weights);
  checkModelSize(config, {
    weights: { bytes: statSync(weights).size, file: weights },
    source: join(dir, 'config.json'),
    bytesPerParameter: BYTES_PER_PARAMETER[fileDType],
  });
  const model = new Flamingo(config, 0, { init: false });
  if (fileDType !== 'fp32' && !opts.train) model.setTrainingMode('none');
  loadFlamingoWeights(model, weights, true, fileDType);
  return model;
}

/** Fewest bytes a parameter takes once loaded in each dtype (embeddings and norms stay float32, so a lower bound). */
const BYTES_PER_PARAMETER: Record<WeightDType, number> = { fp32: 4, bf16: 2, int8: 1.125 };

/** The `weight_dtype` a safetensors file was saved with (fp32 for other files). */
export function storedWeightDType(path: string): WeightDType {
  if (/\.(pt|pth|bin|ckpt)$/i.test(path) || !existsSync(path)) return 'fp32';
  try {
    const r = SafetensorsReader.open(path);
    const d = r.metadata.weight_dtype;
    r.close();
    return d === 'bf16' || d === 'int8' ? d : 'fp32';
  } catch {
    return 'fp32'; // the load that follows reports the file's problem
  }
}

export { formatLoadReport };
