/**
 * `flamingo ablate`: the paper's ablations (§3.3, Table 3) at small scale. An ablation file names a base training
 * config (its stage (c) is the recipe), the model directory whose frozen ViT, LM and tokenizer every variant
 * shares, the budget, the evaluation, and the variants: each is the base config with a few keys changed
 * (`set`, deep-merged, then validated like any training config). Every variant trains stage (c) with the same
 * seed, data and budget, is evaluated with the built-in suite, and becomes one row of the table, the first
 * (the baseline) being what the others are compared with. See docs/ABLATIONS.md.
 *
 * Output directory: ablation.json (the resolved plan), variants/<id>/ (the stage's checkpoints, metrics.jsonl,
 * model/, result.json once done), table.txt, table.json, loss.svg. A variant with a result.json made from the
 * same config is not redone on --resume; an unfinished one continues from its last checkpoint.
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

import { AblationError, variantConfig, type AblationEval, type AblationPlan } from './ablation-plan.ts';
import { ablationTable, lossCurvesSvg, metricsOf, round, type AblationRow } from './ablation-report.ts';
interface VariantResult extends AblationRow {
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
  const configs = plan.variants.map((v) => variantConfig(plan, v));
  const hashes = configs.map((c) => configHash(c, 'flamingo'));
  if (existsSync(planFile) && !opts.resume) throw new AblationError(`${out} already holds an ablation run; pass --resume to continue it or choose a new --out`);
  mkdirSync(out, { recursive: true });
  atomicWrite(planFile, `${JSON.stringify({ ...plan, variants: plan.variants.map((v, i) => ({ ...v, config_hash: hashes[i] })) }, null, 2)}\n`);
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
  const title = `flamingo ablate: ${plan.variants.length} variants, ${plan.steps} steps${plan.quick ? ' (--quick)' : ''}, eval seed ${plan.eval.seed}, ${plan.eval.items} items`;
  const writeOutputs = (): string => {
    const table = ablationTable(rows, title);
    atomicWrite(join(out, 'table.txt'), table);
    atomicWrite(join(out, 'table.json'), `${JSON.stringify({ rows }, null, 2)}\n`);
    atomicWrite(join(out, 'loss.svg'), lossCurvesSvg(curves, `training loss of stage (c) per variant (${plan.steps} steps)`));
    return table;
  };

  for (const [i, v] of plan.variants.entries()) {
    const dir = join(out, 'variants', v.id);
    const resultFile = join(dir, 'result.json');
    const done = readJson<VariantResult>(resultFile);
    const cfg = configs[i]!;
    if (done && done.config_hash === hashes[i] && JSON.stringify(done.eval) === JSON.stringify(plan.eval)) {
      log(`${i + 1}/${plan.variants.length} ${v.name}: done before (${formatDuration(done.wall_s)}), not redone`);
      rows.push({ variant: done.variant, metrics: done.metrics, wall_s: done.wall_s });
      curves.push({ name: v.name, metrics: new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl')).read() });
      continue;
    }
    if (done) throw new AblationError(`${resultFile} was made with a different config or evaluation than variant "${v.name}" has now; use a new --out`);
    if (opts.stopAfterVariants !== undefined && ranHere >= opts.stopAfterVariants) {
      complete = false;
      break;
    }
    const remaining = plan.variants.length - i;
    const eta = ranHere > 0 ? `, ETA ${formatDuration((wallHere / ranHere) * remaining)}` : '';
    log(`${i + 1}/${plan.variants.length} ${v.name}: training ${plan.steps} steps${Object.keys(v.set).length ? ` with ${JSON.stringify(v.set)}` : ' (baseline)'} (elapsed ${formatDuration((performance.now() - t0) / 1000)}${eta})`);
    const tv = performance.now();
    // wall time of a resumed variant counts what earlier attempts spent on its finished steps
    const earlier = new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl'));
    const trained = trainFlamingo(cfg, {
      outDir: dir, tokenizer: comp.tokenizer, vision, lm, resume: existsSync(join(dir, 'flamingo')), progress: opts.progress ?? true,
      baseDir: dirname(plan.base), log, stopAfter: opts.stopAfterSteps,
    });
    if (!trained.complete) {
      complete = false;
      log(`${v.name}: stopped at step ${trained.loop.step} (resume with --resume)`);
      break;
    }
    const lossLog = earlier.read();
    const model = trained.model;
    model.setTrainingMode('none');
    const modelDir = join(dir, 'model');
    saveFlamingo(model, modelDir, { seed: String(cfg.seed), ablation_variant: v.name });
    cpSync(join(plan.components, 'tokenizer.json'), join(modelDir, 'tokenizer.json'));
    if (existsSync(join(plan.components, 'meta.json'))) cpSync(join(plan.components, 'meta.json'), join(modelDir, 'meta.json'));
    log(`${v.name}: evaluating (${plan.eval.tasks.join(', ')}, ${plan.eval.items} items per shot count)`);
    const { report } = runSuite(model, comp.processor, tokenizerCodec(comp.tokenizer), v.id, {
      quick: plan.quick, seed: plan.eval.seed, items: plan.eval.items, tasks: plan.eval.tasks, bindingInventories: ['generator'],
      classes: meta ? { seen: meta.seen_classes, heldout: meta.heldout_classes } : null, onLog: (l) => log(`  ${l}`),
    });
    const trainedMs = lossLog.reduce((a, x) => a + x.step_ms, 0);
    const wall = round((trainedMs + (performance.now() - tv) - sumStepMsSince(lossLog, trained.loop.resumedFrom)) / 1000, 1);
    const row: AblationRow = { variant: v.name, metrics: metricsOf(report, lossLog), wall_s: wall };
    const result: VariantResult = { ...row, id: v.id, config_hash: hashes[i]!, eval: plan.eval, suite: report };
    atomicWrite(resultFile, `${JSON.stringify(result, null, 2)}\n`);
    rows.push(row);
    curves.push({ name: v.name, metrics: lossLog });
    ranHere++;
    wallHere += (performance.now() - tv) / 1000;
    writeOutputs();
    log(`${v.name}: done in ${formatDuration(wall)} (mean score ${row.metrics.mean ?? 'n/a'})`);
  }
  const table = writeOutputs();
  return { rows, complete, table };
}

/** Step time of the steps this call trained (already inside the measured wall time). */
function sumStepMsSince(metrics: StepMetrics[], from: number): number {
  return metrics.filter((m) => m.step > from).reduce((a, m) => a + m.step_ms, 0);
}
