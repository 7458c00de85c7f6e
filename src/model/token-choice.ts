/**
 * Choosing the next token from one row of logits: greedy (argmax), sampling (temperature, top-k, top-p),
 * and the log-probabilities beam search and scoring read.
 */
import type { Rng } from '../engine/rng.ts';

/** How sampling draws tokens (generate(), BatchDecoder and the pipeline take these as they are). */
export interface SamplingOptions {
  /** Softmax temperature; 0 (or below) is greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the most likely tokens up to this cumulative probability (absent or 1: all). */
  topP?: number;
  /** Seed of the sampling generator (default 0). */
  seed?: number;
}

/** Index of the largest of row[off .. off+V) (the first on ties). */
export function argmax(row: Float32Array, off: number, V: number): number {
  let best = 0;
  let bv = -Infinity;
  for (let j = 0; j < V; j++) {
    const v = row[off + j]!;
    if (v > bv) { bv = v; best = j; }
  }
  return best;
}

/** log softmax of row[off .. off+V) in float64. */
export function logSoftmaxRow(row: Float32Array, off: number, V: number): Float64Array {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, row[off + j]!);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(row[off + j]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let j = 0; j < V; j++) out[j] = row[off + j]! - lse;
  return out;
}

/** A token drawn from row[off .. off+V) at `temperature`, restricted to the top-k / top-p tokens; argmax at temperature 0. */
export function sampleRow(row: Float32Array, off: number, V: number, cfg: SamplingOptions, rng: Rng): number {
  const temp = cfg.temperature ?? 1;
  if (!(temp > 0)) return argmax(row, off, V);
  const idx = Array.from({ length: V }, (_, j) => j);
  idx.sort((a, b) => row[off + b]! - row[off + a]! || a - b);
  let keep = cfg.topK && cfg.topK > 0 ? Math.min(cfg.topK, V) : V;
  const m = row[off + idx[0]!]!;
  const probs = new Float64Array(keep);
  let s = 0;
  for (let i = 0; i < keep; i++) { probs[i] = Math.exp((row[off + idx[i]!]! - m) / temp); s += probs[i]!; }
  if (cfg.topP !== undefined && cfg.topP < 1) {
    let c = 0;
    for (let i = 0; i < keep; i++) {
      c += probs[i]! / s;
      if (c >= cfg.topP) { keep = i + 1; break; }
    }
    s = 0;
    for (let i = 0; i < keep; i++) s += probs[i]!;
  }
  let u = rng.uniform() * s;
  for (let i = 0; i < keep; i++) {
    u -= probs[i]!;
    if (u <= 0) return idx[i]!;
  }
  return idx[keep - 1]!;
}
