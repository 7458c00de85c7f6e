/**
 * In-context example selection.
 * - random: per query, k distinct support items drawn with an Rng forked from (seed, query id), so the
 *   choice does not depend on batch size or order; the query's own media is never a demonstration.
 * - RICES (Yang et al. 2022, used by Flamingo/OpenFlamingo): the k support items whose vision
 *   embeddings (pooled CLIP output, L2-normalised) have the highest cosine similarity with the query's,
 *   ordered least → most similar so the most similar demonstration sits next to the query.
 * Support features are computed once and cached on disk (safetensors) under a key derived from the
 * vision-encoder weights and the support media, so a changed model or dataset never reuses stale ones.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../engine/rng.ts';
import { readSafetensors } from '../io/safetensors-read.ts';
import { writeSafetensors } from '../io/safetensors-write.ts';
import type { Flamingo } from '../model/flamingo.ts';
import type { EvalItem } from './datasets/types.ts';
import { FlamingoError } from '../errors.ts';

export type SelectionMethod = 'random' | 'rices';

export class SelectionError extends FlamingoError {}

/** Indices of `k` support items for one query; items sharing the query's media key are excluded. */
export function randomDemos(support: readonly EvalItem[], k: number, seed: number, query: EvalItem): number[] {
  const rng = new Rng(seed).fork(`demos:${typeof query.id}:${String(query.id)}`);
  return sampleExcluding(support, k, rng, new Set([query.media.key]));
}

/**
 * One draw of `k` demonstrations shared by a whole batch of queries (their prompts then share a
 * prefix whose KV cache is computed once). None of the batch's own media is used.
 */
export function randomBatchDemos(support: readonly EvalItem[], k: number, seed: number, batch: readonly EvalItem[]): number[] {
  const rng = new Rng(seed).fork(`batch-demos:${batch.map((q) => `${typeof q.id}:${String(q.id)}`).join('|')}`);
  return sampleExcluding(support, k, rng, new Set(batch.map((q) => q.media.key)));
}

function sampleExcluding(support: readonly EvalItem[], k: number, rng: Rng, exclude: ReadonlySet<string>): number[] {
  const allowed: number[] = [];
  support.forEach((s, i) => { if (!exclude.has(s.media.key)) allowed.push(i); });
  if (allowed.length < k) throw new SelectionError(`need ${k} demonstrations but the support set has only ${allowed.length} usable items`);
  // Partial Fisher–Yates: the first k positions are a uniform k-subset in random order.
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(allowed.length - i);
    const t = allowed[i]!;
    allowed[i] = allowed[j]!;
    allowed[j] = t;
  }
  return allowed.slice(0, k);
}

/** Seeded subset of the support pool (OpenFlamingo's query_set_size: demonstrations come from here). */
export function querySet(n: number, size: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  if (size >= n) return idx;
  new Rng(seed).fork('query-set').shuffle(idx);
  return idx.slice(0, size).sort((a, b) => a - b);
}

/** Nearest-neighbour index over L2-normalised support features. */
export class RicesIndex {
  constructor(readonly features: Float32Array, readonly dim: number, readonly keys: readonly string[]) {
    if (features.length !== dim * keys.length) throw new SelectionError(`RICES features hold ${features.length} values for ${keys.length} items of dim ${dim}`);
  }

  get size(): number {
    return this.keys.length;
  }

  /** Cosine similarity of a normalised query feature with every support item. */
  similarities(query: Float32Array): Float64Array {
    if (query.length !== this.dim) throw new SelectionError(`query feature has dim ${query.length}, index has ${this.dim}`);
    const sims = new Float64Array(this.size);
    for (let i = 0; i < this.size; i++) {
      let s = 0;
      const o = i * this.dim;
      for (let j = 0; j < this.dim; j++) s += query[j]! * this.features[o + j]!;
      sims[i] = s;
    }
    return sims;
  }

  /**
   * The k most similar items, returned least similar first (most similar LAST, next to the query).
   * Ties keep the lower index as the more similar; `excludeKey` drops the query's own media.
   */
  find(query: Float32Array, k: number, excludeKey?: string): number[] {
    const sims = this.similarities(query);
    const order = Array.from({ length: this.size }, (_, i) => i).filter((i) => this.keys[i] !== excludeKey);
    if (order.length < k) throw new SelectionError(`need ${k} demonstrations but the support set has only ${order.length} usable items`);
    order.sort((a, b) => sims[b]! - sims[a]! || a - b);
    return order.slice(0, k).reverse();
  }
}

/** Key for the on-disk feature cache: vision-encoder weights + image size + the support media keys. */
export function ricesCacheKey(model: Flamingo, datasetName: string, supportKeys: readonly string[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(model.config.vision));
  for (const [name, p] of model.vision_encoder.namedParameters()) {
    h.update(name);
    h.update(new Uint8Array(p.f32.buffer, p.f32.byteOffset, p.f32.byteLength));
  }
  const modelHash = h.digest('hex').slice(0, 16);
  const d = createHash('sha256');
  for (const k of supportKeys) d.update(`${k}\n`);
  return `rices-${datasetName}-${modelHash}-${d.digest('hex').slice(0, 16)}`;
}

export interface RicesCacheResult {
  readonly index: RicesIndex;
  readonly file: string;
  /** True when the features were read from disk rather than computed. */
  readonly fromCache: boolean;
}

/**
 * Support features from `<cacheDir>/<key>.safetensors`, or computed with `compute` and written there.
 * The file also records the item keys, checked on load.
 */
export function loadOrComputeRicesIndex(
  cacheDir: string, key: string, supportKeys: readonly string[], compute: () => Float32Array[],
): RicesCacheResult {
  const file = join(cacheDir, `${key}.safetensors`);
  if (existsSync(file)) {
    const f = readSafetensors(file);
    const keys = JSON.parse(f.metadata?.keys ?? '[]') as string[];
    const e = f.entries().find((x) => x.name === 'features');
    if (e && keys.length === supportKeys.length && keys.every((k, i) => k === supportKeys[i])) {
      return { index: new RicesIndex(f.float32('features'), e.shape[1]!, keys), file, fromCache: true };
    }
  }
  const feats = compute();
  const dim = feats[0]?.length ?? 0;
  const flat = new Float32Array(feats.length * dim);
  feats.forEach((v, i) => flat.set(v, i * dim));
  mkdirSync(cacheDir, { recursive: true });
  writeSafetensors(file, { features: { dtype: 'F32', shape: [feats.length, dim], data: flat } }, { keys: JSON.stringify(supportKeys), format: 'flamingo-ts-rices' });
  return { index: new RicesIndex(flat, dim, supportKeys), file, fromCache: false };
}
