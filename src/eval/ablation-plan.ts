/**
 * An ablation file (docs/ABLATIONS.md) resolved into a plan: the base training config, the shared model
 * directory, the budget, the evaluation and the variants, each variant's training config being the base
 * with its `set` keys deep-merged and validated like any training config.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ConfigError, rejectUnknownKeys } from '../model/config.ts';
import { deepMerge, resolveTrainConfig, type TrainConfig } from '../train/config.ts';
import { FlamingoError } from '../errors.ts';
import { BUILTIN_TASKS, type BuiltinTaskName } from './suite/index.ts';

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
  /**
   * Training seeds: the variant trains once per seed and its row is the mean over them (a difference smaller
   * than the spread between seeds is not a finding). Default: the seed of its config alone.
   */
  seeds: number[];
}

/** One training of a variant: with one of its seeds, in its own directory under variants/. */
export interface AblationRun {
  seed: number;
  /** `<id>` for the seed the variant's config has anyway (so adding seeds keeps an earlier run), else `<id>-seed-<n>`. */
  dir: string;
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

const FILE_KEYS = ['description', 'base', 'components', 'steps', 'eval', 'quick', 'seeds', 'variants'];
const EVAL_KEYS = ['seed', 'items', 'tasks'];
const QUICK_KEYS = ['steps', 'items'];
const VARIANT_KEYS = ['name', 'id', 'paper', 'set', 'seeds'];

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function bad(where: string, detail: string): never {
  throw new ConfigError(`ablation file: ${where} ${detail}`);
}

function seedList(where: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0) bad(where, `must be a non-empty list of seeds, got ${JSON.stringify(v)}`);
  v.forEach((x, i) => { if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) bad(`${where}[${i}]`, `must be an integer ≥ 0, got ${JSON.stringify(x)}`); });
  if (new Set(v).size !== v.length) bad(where, `lists a seed twice: ${JSON.stringify(v)}`);
  return v as number[];
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
  const fileSeeds = raw.seeds === undefined ? null : seedList('seeds', raw.seeds);
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
    if (v.seeds !== undefined && 'seed' in set) bad(`${w}.seeds`, 'and set.seed both choose the seed; keep one');
    // [] stands for "the config's own seed", filled in below once the base config is read
    const seeds = v.seeds !== undefined ? seedList(`${w}.seeds`, v.seeds) : 'seed' in set ? [] : (fileSeeds ?? []);
    return { name: v.name, id, ...(typeof v.paper === 'string' ? { paper: v.paper } : {}), set, seeds };
  });
  const plan: AblationPlan = {
    ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
    base: resolve(baseDir, raw.base), components: resolve(baseDir, raw.components), steps,
    eval: { seed: ev.seed, items, tasks: ev.tasks as BuiltinTaskName[] }, variants, quick,
  };
  // every variant's config must be valid before anything runs
  for (const v of plan.variants) {
    const own = variantConfig(plan, v).seed;
    if (v.seeds.length === 0) v.seeds = [own];
    for (const seed of v.seeds) variantConfig(plan, v, seed);
  }
  const dirs = new Map<string, string>();
  for (const v of plan.variants) {
    for (const r of ablationRuns(plan, v)) {
      if (dirs.has(r.dir)) bad('variants', `"${v.name}" with seed ${r.seed} would train in variants/${r.dir}, as "${dirs.get(r.dir)}" does; give one an id`);
      dirs.set(r.dir, v.name);
    }
  }
  return plan;
}

/** The trainings of a variant, one per seed. */
export function ablationRuns(plan: AblationPlan, v: AblationVariant): AblationRun[] {
  const own = variantConfig(plan, v).seed;
  return v.seeds.map((seed) => ({ seed, dir: seed === own ? v.id : `${v.id}-seed-${seed}` }));
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

/** A variant's resolved training config, with `seed` when given (errors name the variant and the field). */
export function variantConfig(plan: AblationPlan, v: AblationVariant, seed?: number): TrainConfig {
  try {
    return resolveTrainConfig(deepMerge(baselineConfig(plan), seed === undefined ? v.set : deepMerge(v.set, { seed })));
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`ablation variant "${v.name}": ${e.message}`);
    throw e;
  }
}
