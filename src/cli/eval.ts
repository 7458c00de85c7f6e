/**
 * `flamingo eval`: few-shot evaluation of a model directory on an official-format dataset
 * (OpenFlamingo protocol), or `--suite builtin` (src/cli/eval-suite.ts).
 * Exit codes: 0 success, 1 data/model error, 2 usage error.
 */
import { basename, dirname, resolve } from 'node:path';
import { loadPretrained } from '../pretrained/index.ts';
import { TASKS, type TaskName, loadTaskData } from '../eval/data-args.ts';
import { evaluateDataset, evaluateShard, type EvaluateOutput } from '../eval/evaluate.ts';
import { mergeShards } from '../eval/merge.ts';
import { parseShard, type Shard } from '../eval/shard.ts';
import { tokenizerCodec } from '../eval/tasks.ts';
import { runBuiltinSuite } from './eval-suite.ts';
import { framesForModel } from '../data/video.ts';
import { UsageError } from '../errors.ts';
import { RELEASE_OPTIONS, modelLocation } from './model-sources.ts';
import { choiceArg, dtypeArg, intArg, intListArg, numberArg, parseOptions } from './args.ts';
import { logWeights, storedDType } from '../nn/quantize.ts';
import { ProgressBar, formatRate } from '../io/progress.ts';

const USAGE = `usage: flamingo eval (--model <dir> | --open-clip FILE --lm DIR --checkpoint FILE) --task <task> --data <dir | key=path ...> --out <dir> [options]
       flamingo eval merge <shard dir>... --out <dir> [--quiet] [--json]
       flamingo eval --suite builtin [suite options]

  --model <dir>        config.json + weights.safetensors (saveFlamingo) + tokenizer.json (Hugging Face format)
  --open-clip <file> --lm <dir> --checkpoint <file>
                       a released OpenFlamingo's three files as downloaded, instead of --model
  --task <task>        ${TASKS.join(' | ')}
  --data <v>           dataset folder with the official file names, and/or key=path entries (repeatable);
                       keys: annotations images (coco, flickr30k) | {train,test}_{questions,annotations,images,pattern}
                       (vqav2 okvqa textvqa vizwiz; pattern like COCO_val2014_%012d.jpg) | train test root images
                       (hateful_memes) | train test videos (msrvtt_qa)
  --shots <list>       comma-separated shot counts (default 0,4,8,16,32); 0 uses two text-only demonstrations
  --seeds <list>       comma-separated trial seeds (default 42)
  --selection <m>      random (default) | rices (nearest support images by vision-encoder embedding)
  --out <dir>          results files (official format, one per shots/seed), summary.json, score_vs_shots.svg
  --max-items <n>      evaluate a fixed random subset of n query items
  --batch-size <n>     queries per forward pass (default 8)
  --query-set-size <n> random demonstrations come from a seeded subset of n support items (default 2048)
  --num-beams <n>      beam search width (default 3)     --max-new-tokens <n>  (default 20 captioning, 5 VQA)
  --length-penalty <x> (default 0, as OpenFlamingo)
  --demo-mode <m>      per-query (default; OpenFlamingo draws demonstrations per query) | per-batch (one random
                       draw per batch: the shared demonstration prefix is prefilled once, much faster)
  --frames <n>         frames per video for msrvtt_qa (default: the model's resampler.max_num_frames, else 8)
  --shard <i/n>        evaluate only slice i (0-based) of n: whole batches of the query list; writes shard.json to --out.
                       \`flamingo eval merge\` on the n folders writes what a single run writes (docs/EVAL.md)
  --skip-invalid       skip (and count) items whose image is missing or unreadable instead of failing
  --cache-dir <dir>    RICES feature cache (default <out>/cache)
  --dtype <t>          fp32 | bf16 | int8: storage of the linear weights (packed at load; default as saved)
  --quiet              no progress bar        --json   print the summary as one JSON line
`;

function printSummary(out: EvaluateOutput, json: boolean): void {
  const s = out.summary;
  if (json) {
    process.stdout.write(`${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))}\n`);
    return;
  }
  const lines = [`${s.dataset} (${s.task}), ${s.items} items, ${s.selection} demonstrations, ${s.metric}:`];
  for (const r of s.results) {
    lines.push(`  ${String(r.shots).padStart(2)} shots  ${r.mean === null ? 'n/a' : r.mean.toFixed(2)} ± ${r.std === null ? 'n/a' : r.std.toFixed(2)}  (${r.trials.map((t) => `seed ${t.seed}: ${t.score.toFixed(2)}`).join(', ')})`);
  }
  lines.push(`  ${s.itemsPerS.toFixed(2)} items/s; skipped ${s.skipped}; summary ${out.summaryFile}; picture ${out.pictureFile}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `flamingo eval merge DIR... --out DIR`: the shards of one run → the files a single run writes. */
async function runMerge(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { out: { type: 'string' }, quiet: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) { process.stdout.write(USAGE); return 0; }
  if (!values.out) throw new UsageError('merge: missing --out');
  if (positionals.length === 0) throw new UsageError('merge: give the shard output folders');
  const out = mergeShards(positionals, values.out, (line) => { if (!values.quiet) process.stderr.write(`${line}\n`); });
  printSummary(out, values.json === true);
  return 0;
}

export async function run(args: string[]): Promise<number> {
  if (args[0] === 'merge') return runMerge(args.slice(1));
  const si = args.indexOf('--suite');
  if (si !== -1) {
    const name = args[si + 1];
    if (name === undefined) throw new UsageError('--suite needs a name (builtin)');
    if (name !== 'builtin') throw new UsageError(`unknown suite '${name}' (available: builtin)`);
    return runBuiltinSuite([...args.slice(0, si), ...args.slice(si + 2)]);
  }
  const { values } = parseOptions(args, {
    ...RELEASE_OPTIONS, model: { type: 'string' }, task: { type: 'string' }, data: { type: 'string', multiple: true },
    shots: { type: 'string' }, seeds: { type: 'string' }, selection: { type: 'string' }, out: { type: 'string' },
    'max-items': { type: 'string' }, 'batch-size': { type: 'string' }, 'query-set-size': { type: 'string' },
    'num-beams': { type: 'string' }, 'max-new-tokens': { type: 'string' }, 'length-penalty': { type: 'string' },
    frames: { type: 'string' }, shard: { type: 'string' }, 'demo-mode': { type: 'string' }, 'skip-invalid': { type: 'boolean' }, 'cache-dir': { type: 'string' },
    dtype: { type: 'string' }, quiet: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const location = modelLocation(values);
  for (const k of ['task', 'out'] as const) if (!values[k]) throw new UsageError(`missing --${k}`);
  if (!values.data || values.data.length === 0) throw new UsageError('missing --data');
  if (!(TASKS as readonly string[]).includes(values.task!)) throw new UsageError(`unknown task '${values.task}' (expected ${TASKS.join(', ')})`);
  const selection = choiceArg('selection', values.selection, ['random', 'rices'] as const) ?? 'random';
  const demoMode = choiceArg('demo-mode', values['demo-mode'], ['per-query', 'per-batch'] as const) ?? 'per-query';
  if (demoMode === 'per-batch' && selection === 'rices') throw new UsageError('--demo-mode per-batch needs --selection random (RICES picks demonstrations per query)');
  let shard: Shard | undefined;
  if (values.shard !== undefined) {
    try {
      shard = parseShard(values.shard);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const generation: Record<string, number> = {};
  const nb = intArg('num-beams', values['num-beams'], { min: 1 });
  const mnt = intArg('max-new-tokens', values['max-new-tokens'], { min: 1 });
  const lp = numberArg('length-penalty', values['length-penalty']);
  if (nb !== undefined) generation.numBeams = nb;
  if (mnt !== undefined) generation.maxNewTokens = mnt;
  if (lp !== undefined) generation.lengthPenalty = lp;
  const cfg = {
    task: values.task as TaskName, data: values.data, out: values.out!,
    shots: intListArg('shots', values.shots) ?? [0, 4, 8, 16, 32], seeds: intListArg('seeds', values.seeds) ?? [42],
    selection, maxItems: intArg('max-items', values['max-items'], { min: 1 }),
    batchSize: intArg('batch-size', values['batch-size'], { min: 1 }) ?? 8, querySetSize: intArg('query-set-size', values['query-set-size'], { min: 1 }),
    frames: intArg('frames', values.frames, { min: 1 }), generation, skipInvalid: values['skip-invalid'] === true,
    demoMode, shard, cacheDir: values['cache-dir'], quiet: values.quiet === true, json: values.json === true,
  };
  const { model, tokenizer } = loadPretrained(location, {
    dtype: dtypeArg(values.dtype), log: typeof location === 'string' || cfg.quiet ? undefined : (s) => process.stderr.write(`${s}\n`),
  });
  if (storedDType(model) !== 'fp32') logWeights(model, 'flamingo eval'); // the default fp32 adds no line
  const dataset = loadTaskData(cfg.task, cfg.data, { skipInvalid: cfg.skipInvalid, frames: cfg.frames ?? framesForModel(model.config.resampler) });
  let bar: ProgressBar | undefined;
  const endBar = (): void => bar?.done();
  const options = {
    shots: cfg.shots, seeds: cfg.seeds, selection: cfg.selection, outDir: cfg.out, batchSize: cfg.batchSize,
    maxItems: cfg.maxItems, querySetSize: cfg.querySetSize, generation: cfg.generation, skipInvalid: cfg.skipInvalid, demoMode: cfg.demoMode,
    cacheDir: cfg.cacheDir, modelName: basename(resolve(typeof location === 'string' ? location : dirname(location.checkpoint))),
    onProgress: (d: number, t: number, label: string) => {
      bar ??= new ProgressBar('eval', t, { enabled: !cfg.quiet });
      bar.update(d, `${formatRate(d / Math.max(bar.elapsed(), 1e-9))} items/s ${label}`);
    },
    onLog: (line: string) => { if (!cfg.quiet) process.stderr.write(`${line}\n`); },
  };
  if (cfg.shard) {
    const r = evaluateShard(model, tokenizerCodec(tokenizer), dataset, { ...options, shard: cfg.shard });
    endBar();
    process.stdout.write(`shard ${cfg.shard.index}/${cfg.shard.count}: ${r.items} queries evaluated; ${r.manifestFile}\n`);
    return 0;
  }
  const out = evaluateDataset(model, tokenizerCodec(tokenizer), dataset, options);
  endBar();
  printSummary(out, cfg.json);
  return 0;
}
