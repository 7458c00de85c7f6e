/**
 * `flamingo eval merge DIR...`: check that the folders are the n shards of one run (same settings, same
 * query list, every index once), concatenate each trial's results in shard order and finish the run as
 * a single run does (results files, scores, summary.json, scores.json, picture).
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type EvaluateOutput, type TrialRun, finishRun } from './evaluate.ts';
import { ShardError, localizeScoring, readShardManifest, type ShardManifest } from './shard.ts';

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function mergeShards(dirs: readonly string[], outDir: string, log: (line: string) => void = () => {}): EvaluateOutput {
  if (dirs.length === 0) throw new ShardError('merge needs the shard folders');
  const shards = dirs.map((d) => ({ dir: resolve(d), m: readShardManifest(d) }));
  const first = shards[0]!;
  const n = first.m.shard.count;
  const byIndex = new Map<number, { dir: string; m: ShardManifest }>();
  for (const s of shards) {
    const where = `${s.dir} (shard ${s.m.shard.index}/${s.m.shard.count})`;
    if (s.m.shard.count !== n) throw new ShardError(`${where} belongs to a run of ${s.m.shard.count} shards, ${first.dir} to one of ${n}`);
    if (byIndex.has(s.m.shard.index)) throw new ShardError(`shard ${s.m.shard.index} given twice: ${byIndex.get(s.m.shard.index)!.dir} and ${s.dir}`);
    const { scoring: _a, ...h } = s.m.header;
    const { scoring: _b, ...h0 } = first.m.header;
    if (!sameJson(h, h0)) throw new ShardError(`${where} was run with other settings than ${first.dir}: ${JSON.stringify(h)} vs ${JSON.stringify(h0)}`);
    if (s.m.queries !== first.m.queries) throw new ShardError(`${where} evaluated another query list than ${first.dir}`);
    if (!sameJson(s.m.trials.map((t) => [t.shots, t.seed]), first.m.trials.map((t) => [t.shots, t.seed]))) throw new ShardError(`${where} ran other trials than ${first.dir}`);
    byIndex.set(s.m.shard.index, s);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new ShardError(`missing shard(s) ${missing.join(', ')} of ${n}`);
  const ordered = Array.from({ length: n }, (_, i) => byIndex.get(i)!);
  let pos = 0;
  for (const s of ordered) {
    if (s.m.range.start !== pos) throw new ShardError(`${s.dir}: shard ${s.m.shard.index} covers queries from ${s.m.range.start}, expected ${pos}`);
    pos = s.m.range.end;
  }
  if (pos !== first.m.header.items) throw new ShardError(`the shards cover ${pos} of ${first.m.header.items} queries`);

  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  // The scorer's own files (written by every shard for the whole query list) are copied from shard 0.
  const s0 = ordered[0]!;
  for (const rel of Object.values(s0.m.localScoringFiles)) copyFileSync(join(s0.dir, rel), join(out, rel));
  const scoring = localizeScoring(s0.m.header.scoring, s0.m.localScoringFiles, out);
  const trials: TrialRun[] = first.m.trials.map((t, k) => ({
    shots: t.shots, seed: t.seed,
    results: ordered.flatMap((s) => s.m.trials[k]!.results),
    seconds: ordered.reduce((acc, s) => acc + s.m.trials[k]!.seconds, 0),
  }));
  const seconds = ordered.reduce((a, s) => a + s.m.seconds, 0);
  const media = { encoded: ordered.reduce((a, s) => a + s.m.media.encoded, 0), hits: ordered.reduce((a, s) => a + s.m.media.hits, 0) };
  log(`merged ${n} shard(s): ${first.m.header.items} queries, ${trials.length} trial(s)`);
  return finishRun(out, { ...s0.m.header, scoring }, trials, { seconds, media, log });
}
