/**
 * Sharded evaluation: `--shard i/n` evaluates the i-th of n deterministic slices of a run's queries and
 * writes shard.json; merging the n shard folders (src/eval/merge.ts) gives the results files and scores
 * a single run gives. Slices are made of whole batches, so every batch — its padding, its shared
 * demonstrations in per-batch mode, its RICES feature chunk — is the one a single run computes.
 * Distribution is left to the cluster's scheduler (a Kubernetes Indexed Job, a Slurm job array).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Id, ScoringSpec } from './datasets/types.ts';
import type { MediaStats } from './media.ts';
import type { RunHeader, TrialRun } from './evaluate.ts';
import { FlamingoError } from '../errors.ts';

export class ShardError extends FlamingoError {
  constructor(message: string) {
    super(message);
  }
}

/** Slice `index` (0-based, as JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID with --array=0-N) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** Parse "i/n" (0 ≤ i < n). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new ShardError(`--shard must look like i/n (e.g. 0/8), got '${text}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new ShardError(`--shard ${text}: the number of shards must be at least 1`);
  if (index >= count) throw new ShardError(`--shard ${text}: the index is 0-based and must be below ${count}`);
  return { index, count };
}

/** Query positions [start, end) of a shard: batches split as evenly as possible, in order. */
export function shardRange(items: number, batchSize: number, shard: Shard): { start: number; end: number } {
  const batches = Math.ceil(items / batchSize);
  const b0 = Math.floor((shard.index * batches) / shard.count);
  const b1 = Math.floor(((shard.index + 1) * batches) / shard.count);
  return { start: Math.min(items, b0 * batchSize), end: Math.min(items, b1 * batchSize) };
}

export const MANIFEST = 'shard.json';
const FORMAT = 'flamingo-eval-shard/1';

export interface ShardManifest {
  format: typeof FORMAT;
  shard: Shard;
  range: { start: number; end: number };
  header: RunHeader;
  /** Scoring files written into the shard folder, by spec key, relative to it (copied when merging). */
  localScoringFiles: Record<string, string>;
  /** sha256 of the evaluated query ids, in order: shards of one run agree on it. */
  queries: string;
  trials: TrialRun[];
  seconds: number;
  media: MediaStats;
}

export function queryDigest(ids: readonly Id[]): string {
  return createHash('sha256').update(JSON.stringify(ids)).digest('hex');
}

export function writeShardManifest(outDir: string, m: { shard: Shard; range: { start: number; end: number }; header: RunHeader; queryIds: readonly Id[]; trials: TrialRun[]; seconds: number; media: MediaStats }): string {
  const local: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.header.scoring)) {
    if (k === 'task' || typeof v !== 'string') continue;
    const rel = relative(outDir, v);
    if (!rel.startsWith('..') && !isAbsolute(rel)) local[k] = rel;
  }
  const manifest: ShardManifest = {
    format: FORMAT, shard: m.shard, range: m.range, header: m.header, localScoringFiles: local, queries: queryDigest(m.queryIds),
    trials: m.trials, seconds: m.seconds, media: m.media,
  };
  const file = join(outDir, MANIFEST);
  writeFileSync(file, `${JSON.stringify(manifest)}\n`);
  return file;
}

export function readShardManifest(dir: string): ShardManifest {
  const file = join(resolve(dir), MANIFEST);
  if (!existsSync(file)) throw new ShardError(`${dir}: no ${MANIFEST} (not the output folder of a --shard run, or the shard has not finished)`);
  let m: ShardManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as ShardManifest;
  } catch (e) {
    throw new ShardError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (m.format !== FORMAT) throw new ShardError(`${file}: format ${JSON.stringify(m.format)}, expected ${FORMAT}`);
  return m;
}

/** The scoring spec with the shard-local files re-pointed into `dir`. */
export function localizeScoring(spec: ScoringSpec, local: Record<string, string>, dir: string): ScoringSpec {
  const out: Record<string, string> = { ...(spec as unknown as Record<string, string>) };
  for (const [k, rel] of Object.entries(local)) out[k] = join(dir, rel);
  return out as unknown as ScoringSpec;
}
