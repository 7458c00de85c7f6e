/**
 * `flamingo ablate`: the paper's ablations (§3.3, Table 3) at small scale. An ablation file names a base training
 * config (its stage (c) is the recipe), the model directory whose frozen ViT, LM and tokenizer every variant
 * shares, the budget, the evaluation, and the variants: each is the base config with a few keys changed
 * (`set`, deep-merged, then validated like any training config). Every variant trains stage (c) with the same
 * seed, data and budget, is evaluated with the built-in suite, and becomes one row of the table, the first
 * (the baseline) being what the others are compared with. See docs/ABLATIONS.md.
 *
 * A variant with several `seeds` trains once per seed and its row is the mean over them, with each seed's
 * scores beside it (AblationRow.seeds).
 *
 * Output directory: ablation.json (the resolved plan), variants/<id>/ and variants/<id>-seed-<n>/ (one per
 * training: the stage's checkpoints, metrics.jsonl, model/, result.json once done), table.txt, table.json,
 * loss.svg. A training with a result.json made from the same config is not redone on --resume; an unfinished
 * one continues from its last checkpoint.
 */
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadPretrained, readModelMeta } from '../pretrained/index.ts';
import { saveFlamingo } from '../io/checkpoint.ts';
import { configHash } from '../train/config.ts';
import { trainFlamingo, type Weights } from '../train/stages.ts';
import { atomicWrite } from '../train/checkpoint.ts';
import { MetricsLog, type StepMetrics } from '../train/metrics.ts';
import { formatDuration } from '../io/progress.ts';
import { runSuite, type SuiteReport } from './suite/index.ts';
import { tokenizerCodec } from './tasks.ts';

import { AblationError, ablationRuns, variantConfig, type AblationEval, type AblationPlan } from './ablation-plan.ts';
import { ablationTable, lossCurvesSvg, meanOverSeeds, metricsOf, round, type AblationRow, type SeedRow } from './ablation-report.ts';

/** variants/<dir>/result.json: one training of a variant (one seed). */
interface VariantResult extends SeedRow {
  variant: string;
  id: string;
  config_hash: string;
  eval: AblationEval;
  suite: SuiteReport;
}

export interface AblateOptions {
  outDir: string;
  resume?: boolean;
  /** Training progress bars (stderr). */
  progress?: boolean;
  log?: (line: string) => void;
  /** Stop after this many variants have finished in this call, as if killed (tests). */
  stopAfterVariants?: number;
  /** Passed to the stage as its stopAfter (tests: a kill in the middle of a variant's training). */
  stopAfterSteps?: number;
}

export interface AblateResult {
  rows: AblationRow[];
  /** False when stopped early (stopAfter…); the table then holds the finished variants. */
  complete: boolean;
  table: string;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Train and evaluate every variant of `plan` (see the file comment); writes the table, JSON and picture as it goes. */
export function runAblation(plan: AblationPlan, opts: AblateOptions): AblateResult {
  const out = opts.outDir;
  const log = opts.log ?? ((l: string) => process.stderr.write(`[ablate] ${l}\n`));
  const planFile = join(out, 'ablation.json');
  const stored = readJson<{ variants: { id: string; config_hash: string }[] }>(planFile);
  if (existsSync(planFile) && !opts.resume) throw new AblationError(`${out} already holds an ablation run; pass --resume to continue it or choose a new --out`);
  mkdirSync(out, { recursive: true });
  atomicWrite(planFile, `${JSON.stringify({ ...plan, variants: plan.variants.map((v) => ({ ...v, runs: ablationRuns(plan, v).map((r) => ({ ...r, config_hash: configHash(variantConfig(plan, v, r.seed), 'flamingo') })) })) }, null, 2)}\n`);
  if (stored) log(`resuming ${out} (${stored.variants.length} variants planned before)`);

  // the frozen components, loaded once and shared by every variant
  const comp = loadPretrained(plan.components);
  const meta = readModelMeta(plan.components);
  const weights = (entries: [string, { shape: readonly number[]; f32: Float32Array }][]): Weights => new Map(entries.map(([n, t]) => [n, { shape: t.shape, data: t.f32 }]));
  const vision = weights(comp.model.vision_encoder.namedParameters());
  const lm = weights(comp.model.lang_encoder.lm.namedParameters());
  log(`components ${plan.components}: ViT ${(comp.model.vision_encoder.numParameters() / 1e6).toFixed(2)}M, LM ${(comp.model.lang_encoder.lm.numParameters() / 1e6).toFixed(2)}M parameters, frozen and shared`);

  const rows: AblationRow[] = [];
  const curves: { name: string; metrics: StepMetrics[] }[] = [];
  const t0 = performance.now();
  let ranHere = 0;
  let wallHere = 0;
  let complete = true;
  const seedsNote = plan.variants.some((v) => v.seeds.length > 1) ? ', rows with several training seeds show their mean' : '';
  const title = `flamingo ablate: ${plan.variants.length} variants, ${plan.steps} steps${plan.quick ? ' (--quick)' : ''}, eval seed ${plan.eval.seed}, ${plan.eval.items} items${seedsNote}`;
  const writeOutputs = (): string => {
    const table = ablationTable(rows, title);
    atomicWrite(join(out, 'table.txt'), table);
    atomicWrite(join(out, 'table.json'), `${JSON.stringify({ rows }, null, 2)}\n`);
    atomicWrite(join(out, 'loss.svg'), lossCurvesSvg(curves, `training loss of stage (c) per variant (${plan.steps} steps)`));
    return table;
  };

  const runs = plan.variants.map((v) => ablationRuns(plan, v));
  const totalRuns = runs.reduce((a, r) => a + r.length, 0);
  let runIndex = 0;
  variants: for (const [i, v] of plan.variants.entries()) {
    const perSeed: SeedRow[] = [];
    let firstCurve: StepMetrics[] | null = null;
    for (const run of runs[i]!) {
      runIndex++;
      const dir = join(out, 'variants', run.dir);
      const resultFile = join(dir, 'result.json');
      const done = readJson<VariantResult>(resultFile);
      const cfg = variantConfig(plan, v, run.seed);
      const hash = configHash(cfg, 'flamingo');
      const label = `${runIndex}/${totalRuns} ${v.name}${runs[i]!.length > 1 ? ` (seed ${run.seed})` : ''}`;
      if (done && done.config_hash === hash && JSON.stringify(done.eval) === JSON.stringify(plan.eval)) {
        log(`${label}: done before (${formatDuration(done.wall_s)}), not redone`);
        perSeed.push({ seed: run.seed, metrics: done.metrics, wall_s: done.wall_s });
        firstCurve ??= new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl')).read();
        continue;
      }
      if (done) throw new AblationError(`${resultFile} was made with a different config or evaluation than variant "${v.name}" with seed ${run.seed} has now; use a new --out`);
      if (opts.stopAfterVariants !== undefined && ranHere >= opts.stopAfterVariants) {
        complete = false;
        break variants;
      }
      const remaining = totalRuns - runIndex + 1;
      const eta = ranHere > 0 ? `, ETA ${formatDuration((wallHere / ranHere) * remaining)}` : '';
      log(`${label}: training ${plan.steps} steps${Object.keys(v.set).length ? ` with ${JSON.stringify(v.set)}` : ' (baseline)'}, seed ${run.seed} (elapsed ${formatDuration((performance.now() - t0) / 1000)}${eta})`);
      const tv = performance.now();
      // wall time of a resumed run counts what earlier attempts spent on its finished steps
      const earlier = new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl'));
      const trained = trainFlamingo(cfg, {
        outDir: dir, tokenizer: comp.tokenizer, vision, lm, resume: existsSync(join(dir, 'flamingo')), progress: opts.progress ?? true,
        baseDir: dirname(plan.base), log, stopAfter: opts.stopAfterSteps,
      });
      if (!trained.complete) {
        complete = false;
        log(`${v.name}: stopped at step ${trained.loop.step} (resume with --resume)`);
        break variants;
      }
      const lossLog = earlier.read();
      const model = trained.model;
      model.setTrainingMode('none');
      const modelDir = join(dir, 'model');
      saveFlamingo(model, modelDir, { seed: String(cfg.seed), ablation_variant: v.name });
      cpSync(join(plan.components, 'tokenizer.json'), join(modelDir, 'tokenizer.json'));
      if (existsSync(join(plan.components, 'meta.json'))) cpSync(join(plan.components, 'meta.json'), join(modelDir, 'meta.json'));
      log(`${v.name}: evaluating (${plan.eval.tasks.join(', ')}, ${plan.eval.items} items per shot count)`);
      const { report } = runSuite(model, comp.processor, tokenizerCodec(comp.tokenizer), run.dir, {
        quick: plan.quick, seed: plan.eval.seed, items: plan.eval.items, tasks: plan.eval.tasks, bindingInventories: ['generator'],
        classes: meta ? { seen: meta.seen_classes, heldout: meta.heldout_classes } : null, onLog: (l) => log(`  ${l}`),
      });
      const trainedMs = lossLog.reduce((a, x) => a + x.step_ms, 0);
      const wall = round((trainedMs + (performance.now() - tv) - sumStepMsSince(lossLog, trained.loop.resumedFrom)) / 1000, 1);
      const seedRow: SeedRow = { seed: run.seed, metrics: metricsOf(report, lossLog), wall_s: wall };
      const result: VariantResult = { variant: v.name, ...seedRow, id: run.dir, config_hash: hash, eval: plan.eval, suite: report };
      atomicWrite(resultFile, `${JSON.stringify(result, null, 2)}\n`);
      perSeed.push(seedRow);
      firstCurve ??= lossLog;
      ranHere++;
      wallHere += (performance.now() - tv) / 1000;
      log(`${label}: done in ${formatDuration(wall)} (mean score ${seedRow.metrics.mean ?? 'n/a'})`);
    }
    rows.push(meanOverSeeds(v.name, perSeed));
    curves.push({ name: v.name, metrics: firstCurve ?? [] });
    writeOutputs();
  }
  const table = writeOutputs();
  return { rows, complete, table };
}

/** Step time of the steps this call trained (already inside the measured wall time). */
function sumStepMsSince(metrics: StepMetrics[], from: number): number {
  return metrics.filter((m) => m.step > from).reduce((a, m) => a + m.step_ms, 0);
}
