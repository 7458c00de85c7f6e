/**
 * A full evaluation of one dataset: for every (shots, seed) run a trial, write its results file in
 * the official format, score it with the `flamingo score` code, then write summary.json, scores.json
 * and the score-vs-shots picture. Reusable by `flamingo eval` and by built-in suites. A run can also be
 * split into shards (evaluateShard, one deterministic slice each) that src/eval/shard.ts merges into
 * the same files a single run writes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Rng } from '../engine/rng.ts';
import type { EvalDataset, EvalItem, ScoringSpec, SkippedItem } from './datasets/types.ts';
import { MediaEncoder, MediaError, type MediaStats } from './media.ts';
import { type DemoMode, type EvalContext, type GenerationSettings, type ResultEntry, type TextCodec, runTrial } from './tasks.ts';
import { type RicesIndex, type SelectionMethod, loadOrComputeRicesIndex, querySet, ricesCacheKey } from './selection.ts';
import { metricName, scoreResultsFile } from './scoring.ts';
import { type EvalSummary, type ShotSummary, type TrialRecord, scoreVsShotsSvg, summarizeShots, writeSummary } from './report.ts';
import { type Shard, shardRange, writeShardManifest } from './shard.ts';
import type { Flamingo } from '../model/flamingo.ts';

export interface EvaluateOptions {
  shots: number[];
  seeds: number[];
  selection: SelectionMethod;
  outDir: string;
  batchSize: number;
  maxItems?: number;
  querySetSize?: number;
  generation?: Partial<GenerationSettings>;
  /** 'per-batch' shares one random draw of demonstrations per batch (prefix KV cache reused). */
  demoMode?: DemoMode;
  /** Decode every media item that can be used first and drop the unreadable ones (counted). */
  skipInvalid?: boolean;
  /** Where RICES support features are cached (default `<outDir>/cache`). */
  cacheDir?: string;
  /** Name recorded in the summary. */
  modelName?: string;
  /** Progress of the whole evaluation: items done / total, and a label of the current trial. */
  onProgress?: (done: number, total: number, label: string) => void;
  onLog?: (line: string) => void;
  /** Evaluate one slice of the queries (evaluateShard). */
  shard?: Shard;
}

export interface EvaluateOutput {
  summary: EvalSummary;
  summaryFile: string;
  pictureFile: string;
  resultsFiles: string[];
}

/** The evaluated subset: `max` items picked with a fixed seed (the same for every trial), in file order. */
export function evalSubset<T>(items: readonly T[], max: number | undefined): T[] {
  if (max === undefined || max >= items.length) return [...items];
  const idx = Array.from({ length: items.length }, (_, i) => i);
  new Rng(0).fork('eval-subset').shuffle(idx);
  return idx.slice(0, max).sort((a, b) => a - b).map((i) => items[i]!);
}

export function resultsFileName(dataset: string, shots: number, seed: number, selection: SelectionMethod): string {
  return `${dataset}_${selection}_${shots}shot_seed${seed}_results.json`;
}

function dropUnreadable(media: MediaEncoder, items: readonly EvalItem[], split: 'support' | 'query', skipped: SkippedItem[]): EvalItem[] {
  const ok: EvalItem[] = [];
  const checked = new Map<string, string | null>();
  for (const it of items) {
    let err = checked.get(it.media.key);
    if (err === undefined) {
      try {
        media.pixels(it.media);
        err = null;
      } catch (e) {
        if (!(e instanceof MediaError)) throw e;
        err = e.message;
      }
      checked.set(it.media.key, err);
    }
    if (err === null) ok.push(it);
    else skipped.push({ split, id: it.id, file: it.media.files[0] ?? it.media.key, reason: err });
  }
  return ok;
}

/** The evaluated queries, usable support items and selection state of a run (or of every shard of it). */
interface Prepared {
  queries: EvalItem[];
  support: EvalItem[];
  skipped: SkippedItem[];
  rices?: { index: RicesIndex; queryFeature: (it: EvalItem) => Float32Array };
  scoring: ScoringSpec;
}

function prepare(_model: Flamingo, dataset: EvalDataset, media: MediaEncoder, opts: EvaluateOptions, outDir: string): Prepared {
  const skipped: SkippedItem[] = [...dataset.skipped];
  let queries = evalSubset(dataset.query, opts.maxItems);
  let support: EvalItem[] = [...dataset.support];
  if (opts.skipInvalid) {
    queries = dropUnreadable(media, queries, 'query', skipped);
    if (opts.selection === 'random') {
      // Only the seeds' query sets can ever be shown; check those.
      const usable = new Set<number>();
      for (const s of opts.seeds) for (const i of querySet(support.length, opts.querySetSize ?? 2048, s)) usable.add(i);
      support = dropUnreadable(media, support.filter((_, i) => usable.has(i)), 'support', skipped);
    } else {
      support = dropUnreadable(media, support, 'support', skipped);
    }
  }
  if (queries.length === 0) throw new MediaError(dataset.name, 'no evaluable items');
  // The scorer's files cover every query, also in a shard (merging re-scores the whole set).
  return { queries, support, skipped, scoring: dataset.scoring(outDir, queries) };
}

function addRices(model: Flamingo, dataset: EvalDataset, media: MediaEncoder, opts: EvaluateOptions, outDir: string, p: Prepared, run: readonly EvalItem[]): void {
  if (opts.selection !== 'rices') return;
  const keys = p.support.map((s) => s.media.key);
  const key = ricesCacheKey(model, dataset.name, keys);
  const cacheDir = opts.cacheDir ?? join(outDir, 'cache');
  const r = loadOrComputeRicesIndex(cacheDir, key, keys, () => media.embed(p.support.map((s) => s.media), opts.batchSize));
  (opts.onLog ?? (() => {}))(`RICES: ${r.fromCache ? 'loaded' : 'computed'} ${r.index.size} support features (${r.file})`);
  const qf = new Map<string, Float32Array>();
  const feats = media.embed(run.map((q) => q.media), opts.batchSize);
  run.forEach((q, i) => qf.set(q.media.key, feats[i]!));
  p.rices = { index: r.index, queryFeature: (it) => qf.get(it.media.key)! };
}

/** One finished trial's output, before scoring. */
export interface TrialRun {
  shots: number;
  seed: number;
  results: ResultEntry[];
  seconds: number;
}

/** Run every (shots, seed) trial over `run` (all queries, or a shard's slice of them). */
function runTrials(ctx: EvalContext, dataset: EvalDataset, p: Prepared, run: readonly EvalItem[], opts: EvaluateOptions): TrialRun[] {
  const total = opts.shots.length * opts.seeds.length * run.length;
  let done = 0;
  const out: TrialRun[] = [];
  for (const shots of opts.shots) {
    for (const seed of opts.seeds) {
      const label = `${shots}-shot seed ${seed}`;
      const r = runTrial(ctx, dataset.kind, p.support, run, {
        shots, seed, selection: opts.selection, batchSize: opts.batchSize, querySetSize: opts.querySetSize,
        generation: opts.generation, rices: p.rices, demoMode: opts.demoMode,
        onProgress: (d) => opts.onProgress?.(done + d, total, label),
      });
      done += run.length;
      out.push({ shots, seed, results: r.results, seconds: r.seconds });
    }
  }
  return out;
}

/** The settings a run's scores depend on (recorded in summary.json and scores.json, checked when merging shards). */
export function runSettings(opts: EvaluateOptions): Record<string, unknown> {
  return {
    shots: opts.shots, seeds: opts.seeds, batch_size: opts.batchSize, query_set_size: opts.querySetSize ?? 2048,
    max_items: opts.maxItems ?? null, generation: opts.generation ?? {}, demo_mode: opts.demoMode ?? 'per-query',
  };
}

/** What finishing a run needs besides its trials: who it was and what was skipped. */
export interface RunHeader {
  task: string;
  dataset: string;
  selection: string;
  model: string;
  items: number;
  skipped: SkippedItem[];
  settings: Record<string, unknown>;
  scoring: ScoringSpec;
}

/**
 * Write each trial's results file, score it, and write summary.json, scores.json and the picture.
 * A single run and a merge of shards both end here, so they write the same files. scores.json holds
 * only what the results determine (no timings, no paths), so equal runs give byte-identical copies.
 */
export function finishRun(outDir: string, h: RunHeader, trials: readonly TrialRun[], extra: { seconds: number; media: MediaStats; log?: (line: string) => void }): EvaluateOutput {
  const log = extra.log ?? (() => {});
  const perShot: ShotSummary[] = [];
  const resultsFiles: string[] = [];
  const shotsList = [...new Set(trials.map((t) => t.shots))];
  for (const shots of shotsList) {
    const records: TrialRecord[] = [];
    for (const t of trials.filter((x) => x.shots === shots)) {
      const file = join(outDir, resultsFileName(h.dataset, t.shots, t.seed, h.selection as SelectionMethod));
      writeFileSync(file, `${JSON.stringify(t.results, null, 2)}\n`);
      resultsFiles.push(file);
      const score = scoreResultsFile(h.scoring, file);
      const ips = t.results.length / Math.max(t.seconds, 1e-9);
      log(`${h.dataset} ${shots}-shot seed ${t.seed}: ${score.metric} ${score.value.toFixed(2)} (${ips.toFixed(2)} items/s)`);
      records.push({ seed: t.seed, score: score.value, details: score.details, resultsFile: file, items: t.results.length, seconds: t.seconds, itemsPerS: ips });
    }
    perShot.push(summarizeShots(shots, records));
  }
  const done = trials.reduce((s, t) => s + t.results.length, 0);
  const summary: EvalSummary = {
    task: h.task,
    dataset: h.dataset,
    metric: metricName(h.scoring.task),
    selection: h.selection,
    model: h.model,
    items: h.items,
    skipped: h.skipped.length,
    settings: { ...h.settings, scoring: h.scoring, skipped_items: h.skipped, media_encoded: extra.media.encoded, media_cache_hits: extra.media.hits },
    results: perShot,
    seconds: extra.seconds,
    itemsPerS: done / Math.max(extra.seconds, 1e-9),
  };
  const summaryFile = join(outDir, 'summary.json');
  writeSummary(summaryFile, summary);
  const scores = {
    task: h.task, dataset: h.dataset, metric: summary.metric, selection: h.selection, model: h.model, items: h.items,
    settings: h.settings,
    skipped_items: h.skipped.map((s) => ({ split: s.split, id: s.id, reason: s.reason })),
    results: perShot.map((r) => ({ shots: r.shots, mean: r.mean, std: r.std, trials: r.trials.map((t) => ({ seed: t.seed, score: t.score, details: t.details, results_file: basename(t.resultsFile) })) })),
  };
  writeFileSync(join(outDir, 'scores.json'), `${JSON.stringify(scores, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  const pictureFile = join(outDir, 'score_vs_shots.svg');
  writeFileSync(pictureFile, scoreVsShotsSvg(summary));
  return { summary, summaryFile, pictureFile, resultsFiles };
}

/** What a full run and a shard share before evaluating: the output folder, the media encoder, the prepared queries. */
function startRun(model: Flamingo, codec: TextCodec, dataset: EvalDataset, opts: EvaluateOptions): { outDir: string; media: MediaEncoder; ctx: EvalContext; p: Prepared } {
  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const media = new MediaEncoder(model);
  const ctx: EvalContext = { model, codec, media };
  return { outDir, media, ctx, p: prepare(model, dataset, media, opts, outDir) };
}

export function evaluateDataset(model: Flamingo, codec: TextCodec, dataset: EvalDataset, opts: EvaluateOptions): EvaluateOutput {
  if (opts.shard) throw new MediaError(dataset.name, 'a shard run writes partial results: use evaluateShard');
  const t0 = performance.now();
  const { outDir, media, ctx, p } = startRun(model, codec, dataset, opts);
  addRices(model, dataset, media, opts, outDir, p, p.queries);
  const trials = runTrials(ctx, dataset, p, p.queries, opts);
  const seconds = (performance.now() - t0) / 1000;
  return finishRun(outDir, header(dataset, opts, p), trials, { seconds, media: media.stats, log: opts.onLog });
}

function header(dataset: EvalDataset, opts: EvaluateOptions, p: Prepared): RunHeader {
  return {
    task: dataset.kind, dataset: dataset.name, selection: opts.selection, model: opts.modelName ?? '', items: p.queries.length,
    skipped: p.skipped, settings: runSettings(opts), scoring: p.scoring,
  };
}

/**
 * One shard of a run (opts.shard): the same preparation as a full run (every query is selected and
 * checked, so all shards agree on the list), then only the shard's whole batches are evaluated. Writes
 * the partial results and shard.json into outDir; `flamingo eval merge` combines the shards.
 */
export function evaluateShard(model: Flamingo, codec: TextCodec, dataset: EvalDataset, opts: EvaluateOptions & { shard: Shard }): { manifestFile: string; items: number } {
  const t0 = performance.now();
  const { outDir, media, ctx, p } = startRun(model, codec, dataset, opts);
  const range = shardRange(p.queries.length, opts.batchSize, opts.shard);
  const run = p.queries.slice(range.start, range.end);
  addRices(model, dataset, media, opts, outDir, p, run);
  const trials = run.length > 0 ? runTrials(ctx, dataset, p, run, opts) : opts.shots.flatMap((shots) => opts.seeds.map((seed) => ({ shots, seed, results: [], seconds: 0 })));
  const seconds = (performance.now() - t0) / 1000;
  const manifestFile = writeShardManifest(outDir, {
    shard: opts.shard, range, header: header(dataset, opts, p), queryIds: p.queries.map((q) => q.id), trials, seconds, media: media.stats,
  });
  return { manifestFile, items: run.length };
}
