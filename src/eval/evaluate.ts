/**
 * A full evaluation of one dataset: for every (shots, seed) run a trial, write its results file in
 * the official format, score it with the `flamingo score` code, then write summary.json and the
 * score-vs-shots picture. Reusable by `flamingo eval` and by built-in suites.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Rng } from '../engine/rng.ts';
import type { EvalDataset, EvalItem, SkippedItem } from './datasets/types.ts';
import { MediaEncoder, MediaError } from './media.ts';
import { type DemoMode, type EvalContext, type GenerationSettings, type TextCodec, runTrial } from './tasks.ts';
import { type RicesIndex, type SelectionMethod, loadOrComputeRicesIndex, querySet, ricesCacheKey } from './selection.ts';
import { metricName, scoreResultsFile } from './scoring.ts';
import { type EvalSummary, type ShotSummary, type TrialRecord, scoreVsShotsSvg, summarizeShots, writeSummary } from './report.ts';
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

export function evaluateDataset(model: Flamingo, codec: TextCodec, dataset: EvalDataset, opts: EvaluateOptions): EvaluateOutput {
  const log = opts.onLog ?? (() => {});
  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const media = new MediaEncoder(model);
  const ctx: EvalContext = { model, codec, media };
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

  let rices: { index: RicesIndex; queryFeature: (it: EvalItem) => Float32Array } | undefined;
  if (opts.selection === 'rices') {
    const keys = support.map((s) => s.media.key);
    const key = ricesCacheKey(model, dataset.name, keys);
    const cacheDir = opts.cacheDir ?? join(outDir, 'cache');
    const r = loadOrComputeRicesIndex(cacheDir, key, keys, () => media.embed(support.map((s) => s.media), opts.batchSize));
    log(`RICES: ${r.fromCache ? 'loaded' : 'computed'} ${r.index.size} support features (${r.file})`);
    const qf = new Map<string, Float32Array>();
    const feats = media.embed(queries.map((q) => q.media), opts.batchSize);
    queries.forEach((q, i) => qf.set(q.media.key, feats[i]!));
    rices = { index: r.index, queryFeature: (it) => qf.get(it.media.key)! };
  }

  const scoring = dataset.scoring(outDir, queries);
  const total = opts.shots.length * opts.seeds.length * queries.length;
  let done = 0;
  const t0 = performance.now();
  const perShot: ShotSummary[] = [];
  const resultsFiles: string[] = [];
  for (const shots of opts.shots) {
    const trials: TrialRecord[] = [];
    for (const seed of opts.seeds) {
      const label = `${shots}-shot seed ${seed}`;
      const out = runTrial(ctx, dataset.kind, support, queries, {
        shots, seed, selection: opts.selection, batchSize: opts.batchSize, querySetSize: opts.querySetSize,
        generation: opts.generation, rices, demoMode: opts.demoMode,
        onProgress: (d) => opts.onProgress?.(done + d, total, label),
      });
      done += queries.length;
      const file = join(outDir, resultsFileName(dataset.name, shots, seed, opts.selection));
      writeFileSync(file, `${JSON.stringify(out.results, null, 2)}\n`);
      resultsFiles.push(file);
      const score = scoreResultsFile(scoring, file);
      log(`${dataset.name} ${label}: ${score.metric} ${score.value.toFixed(2)} (${out.itemsPerS.toFixed(2)} items/s)`);
      trials.push({ seed, score: score.value, details: score.details, resultsFile: file, items: queries.length, seconds: out.seconds, itemsPerS: out.itemsPerS });
    }
    perShot.push(summarizeShots(shots, trials));
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary: EvalSummary = {
    task: dataset.kind,
    dataset: dataset.name,
    metric: metricName(scoring.task),
    selection: opts.selection,
    model: opts.modelName ?? '',
    items: queries.length,
    skipped: skipped.length,
    settings: {
      shots: opts.shots, seeds: opts.seeds, batch_size: opts.batchSize, query_set_size: opts.querySetSize ?? 2048,
      max_items: opts.maxItems ?? null, generation: opts.generation ?? {}, demo_mode: opts.demoMode ?? 'per-query', scoring, skipped_items: skipped,
      media_encoded: media.stats.encoded, media_cache_hits: media.stats.hits,
    },
    results: perShot,
    seconds,
    itemsPerS: done / Math.max(seconds, 1e-9),
  };
  const summaryFile = join(outDir, 'summary.json');
  writeSummary(summaryFile, summary);
  const pictureFile = join(outDir, 'score_vs_shots.svg');
  writeFileSync(pictureFile, scoreVsShotsSvg(summary));
  return { summary, summaryFile, pictureFile, resultsFiles };
}
