/**
 * Training checkpoints in a stage directory: `ckpt-00000120.safetensors` (model weights as `model/<name>`,
 * AdamW moments as `optim/<name>.exp_avg|exp_avg_sq`) and `ckpt-00000120.json` (step, rng states, data cursors,
 * config hash, byte size and SHA-256 of the weights file). Both are written atomically (temp file, fsync, rename, fsync of
 * the directory) and the JSON goes last: it is the commit record, so a checkpoint without one never counts.
 * Old checkpoints are pruned only after the new one is committed. Resuming verifies the checksum, so a weights file
 * damaged in place (same size, different bytes) is skipped for the newest intact checkpoint, and the skip is reported.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { readSafetensors } from '../io/safetensors-read.ts';
import { writeSafetensors } from '../io/safetensors-write.ts';
import { type TensorToWrite } from '../io/safetensors.ts';
import type { Module } from '../nn/module.ts';
import type { AdamW } from './optim.ts';
import type { RngState } from '../engine/rng.ts';
import type { Cursor } from '../data/datasets/types.ts';
import { FlamingoError } from '../errors.ts';

export class TrainCheckpointError extends FlamingoError {
  constructor(where: string, detail: string) {
    super(`checkpoint ${where}: ${detail}`);
  }
}

export interface CheckpointState {
  stage: string;
  /** Completed optimizer steps. */
  step: number;
  configHash: string;
  rng: RngState;
  cursors: Record<string, Cursor>;
  /** Size of the weights file, checked on load (a torn file is never trusted). */
  weightsBytes: number;
  /** SHA-256 (hex) of the weights file, checked on resume (records written before it existed lack it). */
  weightsSha256?: string;
  weightsFile: string;
  savedAt: string;
}

const NAME = /^ckpt-(\d{8})\.json$/;
const stem = (step: number) => `ckpt-${String(step).padStart(8, '0')}`;

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  }
}

/** Write text atomically: temp file in the same directory, fsync, rename, fsync the directory. */
export function atomicWrite(file: string, text: string): void {
  const dir = join(file, '..');
  const tmp = join(dir, `.${file.split('/').pop()}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncDir(dir);
}

/** Committed checkpoints of a directory, oldest first. */
export function listCheckpoints(dir: string): { step: number; json: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => NAME.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), json: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** SHA-256 of a file, read in 4 MiB pieces (checkpoints can be larger than one Buffer). */
export function sha256File(file: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * The commit record if it and its weights file are complete, else why not. `verify` also checks the weights'
 * SHA-256 (reads the whole file: done on resume, not on every prune).
 */
function inspect(dir: string, json: string, verify: boolean): CheckpointState | string {
  let st: CheckpointState;
  try {
    st = JSON.parse(readFileSync(json, 'utf8')) as CheckpointState;
  } catch (e) {
    return `commit record ${json} is unreadable (${(e as Error).message})`;
  }
  if (typeof st !== 'object' || st === null || typeof st.weightsFile !== 'string' || typeof st.weightsBytes !== 'number') return `commit record ${json} is malformed`;
  const w = join(dir, st.weightsFile);
  if (!existsSync(w)) return `${w} is missing`;
  const size = statSync(w).size;
  if (size !== st.weightsBytes) return `${w} has ${size} bytes, its commit record says ${st.weightsBytes} (torn write)`;
  if (verify && st.weightsSha256 !== undefined && sha256File(w) !== st.weightsSha256) {
    return `${w} does not match the SHA-256 in its commit record (damaged in place)`;
  }
  return st;
}

function readValid(dir: string, json: string): CheckpointState | null {
  const r = inspect(dir, json, false);
  return typeof r === 'string' ? null : r;
}

/** Committed checkpoints whose weights file is complete (size checked), oldest first. */
export function validCheckpoints(dir: string): CheckpointState[] {
  return listCheckpoints(dir).map((c) => readValid(dir, c.json)).filter((s): s is CheckpointState => s !== null);
}

/**
 * Newest committed checkpoint whose weights file is complete and matches its checksum, or null. Damaged ones are
 * skipped for older ones, each reported through `onSkip` (what is wrong, and the step it falls back past).
 */
export function latestCheckpoint(dir: string, onSkip?: (message: string) => void): CheckpointState | null {
  const all = listCheckpoints(dir);
  for (let i = all.length - 1; i >= 0; i--) {
    const r = inspect(dir, all[i]!.json, true);
    if (typeof r !== 'string') return r;
    onSkip?.(`checkpoint step ${all[i]!.step} skipped: ${r}; ${i > 0 ? 'trying the previous one' : 'no older checkpoint left'}`);
  }
  return null;
}

export interface SaveOptions {
  dir: string;
  model: Module;
  optimizer: AdamW;
  state: Omit<CheckpointState, 'weightsBytes' | 'weightsSha256' | 'weightsFile' | 'savedAt'>;
  keep: number;
}

export function saveCheckpoint(o: SaveOptions): CheckpointState {
  mkdirSync(o.dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of o.model.namedParameters()) tensors[`model/${name}`] = { dtype: 'F32', shape: [...t.shape], data: t.f32 };
  const shapes = new Map(o.model.namedParameters().map(([n, t]) => [n, t.shape]));
  for (const [key, data] of o.optimizer.stateTensors()) {
    const pname = key.replace(/\.exp_avg(_sq)?$/, '');
    tensors[`optim/${key}`] = { dtype: 'F32', shape: [...(shapes.get(pname) ?? [data.length])], data };
  }
  const s = stem(o.state.step);
  const weightsFile = `${s}.safetensors`;
  writeSafetensors(join(o.dir, weightsFile), tensors, { stage: o.state.stage, step: String(o.state.step) });
  const w = join(o.dir, weightsFile);
  // Hashed from the file as written (what a resume will read), before the commit record makes it count.
  const full: CheckpointState = { ...o.state, weightsFile, weightsBytes: statSync(w).size, weightsSha256: sha256File(w), savedAt: new Date().toISOString() };
  atomicWrite(join(o.dir, `${s}.json`), JSON.stringify(full, null, 1) + '\n');
  prune(o.dir, o.keep);
  return full;
}

/**
 * Keep the newest `keep` valid checkpoints. Everything else named ckpt-* goes: older checkpoints (commit record
 * first), damaged ones, weights without a commit record (a killed save) and temp files.
 */
export function prune(dir: string, keep: number): void {
  const valid = validCheckpoints(dir);
  const live = new Set(valid.slice(-Math.max(1, keep)).flatMap((c) => [`${stem(c.step)}.json`, c.weightsFile]));
  const files = readdirSync(dir).filter((f) => /^\.?ckpt-/.test(f) && !live.has(f));
  // records before weights, so an interrupted prune never leaves a record pointing at nothing
  files.sort((x, y) => Number(y.endsWith('.json')) - Number(x.endsWith('.json')));
  for (const f of files) {
    try { unlinkSync(join(dir, f)); } catch { /* already gone */ }
  }
}

/** Restore weights and optimizer moments from a committed checkpoint into live objects. */
export function loadCheckpoint(dir: string, st: CheckpointState, model: Module, optimizer: AdamW): void {
  const file = readSafetensors(join(dir, st.weightsFile));
  const weights = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const moments = new Map<string, Float32Array>();
  for (const entry of file.entries()) {
    const name = entry.name;
    if (name.startsWith('model/')) weights.set(name.slice(6), { shape: entry.shape, data: file.float32(name) });
    else if (name.startsWith('optim/')) moments.set(name.slice(6), file.float32(name));
  }
  try {
    model.loadStateDict(weights);
    optimizer.loadStateTensors(moments, st.step);
  } catch (e) {
    throw new TrainCheckpointError(join(dir, st.weightsFile), (e as Error).message);
  }
}
