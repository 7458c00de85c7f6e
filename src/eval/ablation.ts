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
import { dirname, join, relative, resolve } from 'node:path';
import { loadPretrained, readModelMeta } from '../pretrained/index.ts';
import { saveFlamingo } from '../io/checkpoint.ts';
import { ConfigError, rejectUnknownKeys } from '../model/config.ts';
import { configHash, deepMerge, resolveTrainConfig, type TrainConfig } from '../train/config.ts';
import { trainFlamingo, type Weights } from '../train/stages.ts';
import { atomicWrite } from '../train/checkpoint.ts';
import { MetricsLog, type StepMetrics } from '../train/metrics.ts';
import { formatDuration } from '../io/progress.ts';
import { FlamingoError } from '../errors.ts';
import { BUILTIN_TASKS, runSuite, type BuiltinTaskName, type SuiteReport } from './suite/index.ts';
import { tokenizerCodec } from './tasks.ts';

export class AblationError extends FlamingoError {}

export interface AblationVariant {
  /** Row label. */
  name: string;
  /** Directory name under variants/ (from the name unless given). */
  id: string;
  /** What the paper's Table 3 calls it, for the docs' comparison. */
  paper?: string;
  /** Training-config keys this variant changes (deep-merged over the base). */
  set: Record<string, unknown>;
}

export interface AblationEval {
  seed: number;
  /** Queries (episodes) per shot count for every task. */
  items: number;
  tasks: BuiltinTaskName[];
}

export interface AblationPlan {
  description?: string;
  /** The base training config file (absolute). */
  base: string;
  /** Model directory with the frozen ViT, LM, tokenizer.json and meta.json (absolute). */
  components: string;
  /** Stage-(c) steps of every variant. */
  steps: number;
  eval: AblationEval;
  variants: AblationVariant[];
  quick: boolean;
}

const FILE_KEYS = ['description', 'base', 'components', 'steps', 'eval', 'quick', 'variants'];
const EVAL_KEYS = ['seed', 'items', 'tasks'];
const QUICK_KEYS = ['steps', 'items'];
const VARIANT_KEYS = ['name', 'id', 'paper', 'set'];

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function bad(where: string, detail: string): never {
  throw new ConfigError(`ablation file: ${where} ${detail}`);
}

function posInt(where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) bad(where, `must be an integer ≥ 1, got ${JSON.stringify(v)}`);
  return v;
}

/** Validate an ablation file (relative paths from `baseDir`); `quick` applies its `quick` budget. */
export function resolveAblationPlan(raw: unknown, baseDir: string, quick = false): AblationPlan {
  if (!isObj(raw)) bad('top level', 'must be a JSON object');
  try {
    rejectUnknownKeys(raw, FILE_KEYS, '');
    if (isObj(raw.eval)) rejectUnknownKeys(raw.eval, EVAL_KEYS, 'eval');
    if (isObj(raw.quick)) rejectUnknownKeys(raw.quick, QUICK_KEYS, 'quick');
    if (Array.isArray(raw.variants)) raw.variants.forEach((v, i) => { if (isObj(v)) rejectUnknownKeys(v, VARIANT_KEYS, `variants[${i}]`); });
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`ablation file: ${e.message}`);
    throw e;
  }
  if (typeof raw.base !== 'string' || raw.base === '') bad('base', 'must be the path of a training config');
  if (typeof raw.components !== 'string' || raw.components === '') bad('components', 'must be the path of a model directory');
  if (!isObj(raw.eval)) bad('eval', 'must be an object { seed, items, tasks }');
  const ev = raw.eval;
  if (typeof ev.seed !== 'number' || !Number.isInteger(ev.seed) || ev.seed < 0) bad('eval.seed', `must be an integer ≥ 0, got ${JSON.stringify(ev.seed)}`);
  if (!Array.isArray(ev.tasks) || ev.tasks.length === 0) bad('eval.tasks', 'must be a non-empty list');
  ev.tasks.forEach((t, i) => { if (!(BUILTIN_TASKS as readonly unknown[]).includes(t)) bad(`eval.tasks[${i}]`, `must be one of ${BUILTIN_TASKS.join(', ')}, got ${JSON.stringify(t)}`); });
  let steps = posInt('steps', raw.steps);
  let items = posInt('eval.items', ev.items);
  if (raw.quick !== undefined && !isObj(raw.quick)) bad('quick', 'must be an object { steps, items }');
  if (quick) {
    if (!isObj(raw.quick)) bad('quick', 'is needed for --quick');
    steps = posInt('quick.steps', raw.quick.steps);
    items = posInt('quick.items', raw.quick.items);
  }
  if (!Array.isArray(raw.variants) || raw.variants.length === 0) bad('variants', 'must be a non-empty list (the baseline first)');
  const ids = new Set<string>();
  const variants = raw.variants.map((v, i): AblationVariant => {
    const w = `variants[${i}]`;
    if (!isObj(v)) bad(w, 'must be an object { name, set }');
    if (typeof v.name !== 'string' || v.name.trim() === '') bad(`${w}.name`, 'must be a non-empty string');
    const id = v.id ?? v.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    if (typeof id !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(id)) bad(`${w}.id`, `must be a directory name of a-z, 0-9, '.', '_', '-', got ${JSON.stringify(id)}`);
    if (ids.has(id)) bad(`${w}.id`, `"${id}" is used twice`);
    ids.add(id);
    if (v.paper !== undefined && typeof v.paper !== 'string') bad(`${w}.paper`, 'must be a string');
    const set = v.set ?? {};
    if (!isObj(set)) bad(`${w}.set`, 'must be an object of training-config keys');
    if (i === 0 && Object.keys(set).length > 0) bad(`${w}.set`, 'must be empty: the first variant is the baseline, the recipe unchanged');
    return { name: v.name, id, ...(typeof v.paper === 'string' ? { paper: v.paper } : {}), set };
  });
  const plan: AblationPlan = {
    ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
    base: resolve(baseDir, raw.base), components: resolve(baseDir, raw.components), steps,
    eval: { seed: ev.seed, items, tasks: ev.tasks as BuiltinTaskName[] }, variants, quick,
  };
  // every variant's config must be valid before anything runs
  for (const v of plan.variants) variantConfig(plan, v);
  return plan;
}

/**
 * The base config as every variant trains it: stage (c) only, on the components' tokenizer, ViT and LM (passed
 * in by the runner, so the paths to an earlier run's files are dropped), from the trainable parts' initialisation
 * (init_weights dropped: a connector or gating variant has other trainable tensors), for `plan.steps` steps.
 */
export function baselineConfig(plan: AblationPlan): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(plan.base, 'utf8'));
  } catch (e) {
    throw new ConfigError(`ablation file: base ${plan.base}: ${(e as Error).message}`);
  }
  if (!isObj(raw)) throw new ConfigError(`ablation file: base ${plan.base} is not a JSON object`);
  const stages = isObj(raw.stages) ? raw.stages : {};
  const { vision_weights: _v, lm_weights: _l, init_weights: _i, ...flamingo } = isObj(stages.flamingo) ? stages.flamingo : {};
  const warmup = isObj(flamingo.optim) && typeof flamingo.optim.warmup_steps === 'number' ? flamingo.optim.warmup_steps : undefined;
  return {
    ...raw,
    // relative to the base config's folder, so the config hash (and --resume) does not depend on the checkout's location
    tokenizer: { path: relative(dirname(plan.base), join(plan.components, 'tokenizer.json')) },
    stages: {
      ...stages,
      contrastive: { ...(isObj(stages.contrastive) ? stages.contrastive : {}), enabled: false },
      lm: { ...(isObj(stages.lm) ? stages.lm : {}), enabled: false },
      flamingo: {
        ...flamingo, steps: plan.steps,
        // a --quick budget shorter than the warm-up would never reach the peak rate
        ...(warmup !== undefined && warmup >= plan.steps ? { optim: { ...(flamingo.optim as object), warmup_steps: Math.max(0, Math.floor(plan.steps / 2)) } } : {}),
      },
    },
  };
}

/** A variant's resolved training config (errors name the variant and the field). */
export function variantConfig(plan: AblationPlan, v: AblationVariant): TrainConfig {
  try {
    return resolveTrainConfig(deepMerge(baselineConfig(plan), v.set));
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`ablation variant "${v.name}": ${e.message}`);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------- results

export interface AblationRow {
  variant: string;
  /** "task/shots" → score (%, CIDEr × 100), plus `train_loss` (mean of the last tenth of the steps) and `mean`. */
  metrics: Record<string, number | null>;
  wall_s: number;
}

interface VariantResult extends AblationRow {
  id: string;
  config_hash: string;
  eval: AblationEval;
  suite: SuiteReport;
}

function metricsOf(suite: SuiteReport, loss: StepMetrics[]): Record<string, number | null> {
  const m: Record<string, number | null> = {};
  const scores: number[] = [];
  for (const t of suite.tasks) {
    for (const [k, v] of Object.entries(t.shots)) {
      m[`${t.task}/${k}`] = v;
      if (v !== null) scores.push(v);
    }
  }
  m.mean = scores.length ? round(scores.reduce((a, b) => a + b, 0) / scores.length) : null;
  const tail = loss.slice(-Math.max(1, Math.floor(loss.length / 10)));
  m.train_loss = tail.length ? round(tail.reduce((a, x) => a + x.loss, 0) / tail.length, 4) : null;
  return m;
}

const round = (x: number, d = 2): number => Number(x.toFixed(d));

/** The text table: one row per variant, the baseline's values and every other row's delta against them. */
export function ablationTable(rows: readonly AblationRow[], title: string): string {
  if (rows.length === 0) return `${title}\n(no variant finished)\n`;
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
  const order = (k: string) => (k === 'mean' ? 1 : k === 'train_loss' ? 2 : 0);
  keys.sort((a, b) => order(a) - order(b));
  const base = rows[0]!;
  const nameW = Math.max(8, ...rows.map((r) => r.variant.length));
  const colW = Math.max(9, ...keys.map((k) => short(k).length));
  const head = ['variant'.padEnd(nameW), ...keys.map((k) => short(k).padStart(colW)), 'wall'.padStart(8)].join(' ');
  const lines = [title, head, '-'.repeat(head.length)];
  rows.forEach((r, i) => {
    const cells = keys.map((k) => {
      const v = r.metrics[k];
      if (v === undefined || v === null) return 'n/a'.padStart(colW);
      if (i === 0) return fmt(v, k).padStart(colW);
      const b = base.metrics[k];
      return (b === undefined || b === null ? 'n/a' : `${v - b >= 0 ? '+' : ''}${fmt(v - b, k)}`).padStart(colW);
    });
    lines.push([r.variant.padEnd(nameW), ...cells, formatDuration(r.wall_s).padStart(8)].join(' '));
  });
  lines.push(`first row: scores (%, CIDEr x100; fast binding: accuracy at 1/3/5 shots per class); other rows: difference from it`);
  return `${lines.join('\n')}\n`;
}

function short(k: string): string {
  return k.replace('fast_binding_seen', 'bind_seen').replace('fast_binding_heldout', 'bind_held').replace('captioning', 'cap');
}

function fmt(v: number, k: string): string {
  return k === 'train_loss' ? v.toFixed(3) : v.toFixed(1);
}

const CURVE_COLOURS = ['#000000', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#aec7e8'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Training loss of every variant against step, one picture (a moving average over `window` steps). */
export function lossCurvesSvg(curves: readonly { name: string; metrics: StepMetrics[] }[], title: string, window = 10): string {
  const W = 820;
  const H = 460;
  const m = { l: 60, r: 230, t: 36, b: 44 };
  const series = curves.map((c) => {
    const pts: [number, number][] = [];
    let acc = 0;
    c.metrics.forEach((x, i) => {
      acc += x.loss;
      if (i >= window) acc -= c.metrics[i - window]!.loss;
      pts.push([x.step, acc / Math.min(i + 1, window)]);
    });
    return { name: c.name, pts: pts.filter(([, y]) => Number.isFinite(y)) };
  });
  const all = series.flatMap((s) => s.pts);
  const x1 = Math.max(1, ...all.map((p) => p[0]));
  const ylo = Math.min(...all.map((p) => p[1]), Infinity);
  const yhi = Math.max(...all.map((p) => p[1]), -Infinity);
  const [y0, y1] = Number.isFinite(ylo) ? [Math.max(0, ylo - 0.05 * (yhi - ylo)), yhi + 0.05 * (yhi - ylo || 1)] : [0, 1];
  const sx = (x: number) => m.l + (x / x1) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="15">${esc(title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 8}" text-anchor="middle">step (loss: weighted sum over the datasets, mean of ${window} steps)</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const y = y0 + ((y1 - y0) * i) / 5;
    out.push(`<line x1="${m.l - 4}" y1="${sy(y).toFixed(1)}" x2="${W - m.r}" y2="${sy(y).toFixed(1)}" stroke="#ddd"/><text x="${m.l - 7}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  // step ticks: whole steps, each once (a short run has fewer than six)
  for (const x of new Set(Array.from({ length: 6 }, (_, i) => Math.round((x1 * i) / 5)))) {
    out.push(`<text x="${sx(x).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${x}</text>`);
  }
  series.forEach((s, i) => {
    const c = CURVE_COLOURS[i % CURVE_COLOURS.length]!;
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="${i === 0 ? 2.2 : 1.3}" points="${s.pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    out.push(`<line x1="${W - m.r + 10}" y1="${m.t + 10 + 18 * i}" x2="${W - m.r + 30}" y2="${m.t + 10 + 18 * i}" stroke="${c}" stroke-width="2"/><text x="${W - m.r + 36}" y="${m.t + 14 + 18 * i}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------- running

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
