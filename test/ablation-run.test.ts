/**
 * `flamingo ablate` (src/eval/ablation.ts): the ablation file is validated with errors naming the path, the
 * shipped configs/ablations.json's baseline is the bundled recipe, and a tiny run is reproducible, resumable
 * (finished variants are not redone, a variant killed mid-training continues) and writes its table, JSON and
 * loss picture.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { docPlainText, syntheticText } from '../src/data/datasets/index.ts';
import { saveFlamingo } from '../src/io/checkpoint.ts';
import { ConfigError } from '../src/model/config.ts';
import { resolveTrainConfig, deepMerge } from '../src/train/config.ts';
import { buildFlamingo } from '../src/train/stages.ts';
import { baselineConfig, resolveAblationPlan, variantConfig } from '../src/eval/ablation-plan.ts';
import { runAblation } from '../src/eval/ablation.ts';
import { ablationTable, meanOverSeeds } from '../src/eval/ablation-report.ts';

const CONFIGS = fileURLToPath(new URL('../configs/', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'flamingo-ablate-'));

describe('the ablation file', () => {
  const file = JSON.parse(readFileSync(join(CONFIGS, 'ablations.json'), 'utf8')) as Record<string, unknown>;

  test("configs/ablations.json: the baseline is configs/bundled.json's stage (c) with only the components and the budget replaced", () => {
    const plan = resolveAblationPlan(file, CONFIGS);
    const bundledRaw = JSON.parse(readFileSync(join(CONFIGS, 'bundled.json'), 'utf8'));
    const bundled = resolveTrainConfig(bundledRaw);
    const base = variantConfig(plan, plan.variants[0]!);
    assert.deepEqual(base.model, bundled.model);
    assert.equal(base.seed, bundled.seed);
    const { vision_weights: _v, lm_weights: _l, init_weights: _i, steps, ...recipe } = bundled.stages.flamingo;
    const { steps: ourSteps, ...ours } = base.stages.flamingo;
    assert.deepEqual(ours, recipe);
    assert.equal(ourSteps, plan.steps);
    assert.ok(steps >= plan.steps);
    assert.equal(base.tokenizer.path, '../models/flamingo-fmnist/tokenizer.json'); // relative: the hash is the same in any checkout
    assert.equal(base.stages.contrastive.enabled, false);
    assert.equal(base.stages.lm.enabled, false);
  });

  test('every variant differs from the baseline in its own keys only', () => {
    const plan = resolveAblationPlan(file, CONFIGS);
    const base = variantConfig(plan, plan.variants[0]!);
    for (const v of plan.variants.slice(1)) {
      assert.deepEqual(variantConfig(plan, v), resolveTrainConfig(deepMerge(baselineConfig(plan), v.set)));
      assert.notDeepEqual(variantConfig(plan, v), base, v.name);
      assert.deepEqual(deepMerge(base, v.set), variantConfig(plan, v), v.name);
    }
    assert.ok(plan.variants.length >= 11);
  });

  test('--quick takes the quick budget', () => {
    const plan = resolveAblationPlan(file, CONFIGS, true);
    assert.equal(plan.steps, (file.quick as { steps: number }).steps);
    assert.equal(plan.eval.items, (file.quick as { items: number }).items);
    assert.ok(variantConfig(plan, plan.variants[0]!).stages.flamingo.optim.warmup_steps < plan.steps);
  });

  test('errors name the path', () => {
    const bad = (patch: Record<string, unknown>, re: RegExp) => assert.throws(() => resolveAblationPlan({ ...file, ...patch }, CONFIGS), (e: Error) => e instanceof ConfigError && re.test(e.message), String(re));
    bad({ stepz: 3 }, /ablation file: stepz: unknown key/);
    bad({ steps: 0 }, /ablation file: steps must be an integer ≥ 1/);
    bad({ eval: { seed: 0, items: 2, tasks: ['vqa', 'coco'] } }, /eval\.tasks\[1\] must be one of/);
    bad({ eval: { seed: 0, items: 2, tasks: ['vqa'], shots: 3 } }, /eval\.shots: unknown key/);
    bad({ variants: [{ name: 'baseline', set: { seed: 3 } }] }, /variants\[0\]\.set must be empty/);
    bad({ variants: [{ name: 'baseline' }, { name: 'x', set: { model: { resampler: { conector: 'mlp' } } } }] }, /ablation variant "x": train config: model\.resampler\.conector: unknown key/);
    bad({ variants: [{ name: 'baseline' }, { name: 'x', set: { model: { resampler: { connector: 'qformer' } } } }] }, /ablation variant "x": .*resampler\.connector must be one of/);
    bad({ variants: [{ name: 'baseline' }, { name: 'Baseline' }] }, /variants\[1\]\.id "baseline" is used twice/);
    bad({ variants: [{ name: 'baseline', colour: 1 }] }, /variants\[0\]\.colour: unknown key/);
  });
});

describe('a tiny ablation run', () => {
  // Components: a tiny Flamingo with its tokenizer and class split, as a model directory.
  const root = tmp();
  const s = syntheticText({ world: { imageSize: 16, supersample: 1 } }).open(2);
  const tok = BpeTokenizer.train(Array.from({ length: 30 }, () => docPlainText(s.next())), { vocabSize: 300 });
  const model = {
    vision: { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 16 },
    lm: { hidden_size: 16, intermediate_size: 32, num_layers: 2, num_heads: 2, num_key_value_heads: 2, max_position_embeddings: 512 },
    resampler: { depth: 1, dim_head: 8, heads: 2, num_latents: 2, ff_mult: 2 },
    xattn: { dim_head: 8, heads: 2, ff_mult: 2 },
  };
  const base = {
    seed: 3, model,
    stages: {
      contrastive: { enabled: false }, lm: { enabled: false },
      flamingo: {
        steps: 3, checkpoint_every: 1, log_every: 1, optim: { lr: 0.01, warmup_steps: 1 },
        datasets: [
          { name: 'pairs', source: { type: 'synthetic-pairs' }, batch_size: 2, max_images: 1, max_tokens: 24 },
          { name: 'qa', source: { type: 'synthetic-pairs', text: 'qa' }, batch_size: 2, max_images: 1, max_tokens: 24 },
        ],
      },
    },
  };
  const components = join(root, 'components');
  const comp = buildFlamingo(resolveTrainConfig({ ...base, tokenizer: { vocab_size: 300, corpus: [{ source: { type: 'synthetic-text' }, docs: 1 }] } }), tok);
  comp.setTrainingMode('none');
  saveFlamingo(comp, components);
  writeFileSync(join(components, 'tokenizer.json'), JSON.stringify(tok.toHuggingFace()));
  writeFileSync(join(components, 'meta.json'), JSON.stringify({ seen_classes: [0, 1], heldout_classes: [2, 3] }));
  mkdirSync(join(root, 'configs'));
  writeFileSync(join(root, 'configs', 'base.json'), JSON.stringify(base));
  const file = {
    base: 'base.json', components: '../components', steps: 3,
    eval: { seed: 0, items: 2, tasks: ['captioning', 'vqa'] },
    variants: [
      { name: 'baseline' },
      { name: 'connector: mlp', set: { model: { resampler: { connector: 'mlp' } } } },
      { name: 'round robin', set: { stages: { flamingo: { mixture: 'round_robin' } } } },
    ],
  };
  const plan = resolveAblationPlan(file, join(root, 'configs'), false);
  const quiet = { progress: false, log: () => {} };
  const strip = (rows: { variant: string; metrics: object }[]) => rows.map((r) => ({ variant: r.variant, metrics: r.metrics }));

  const first = tmp();
  const full = runAblation(plan, { outDir: first, ...quiet });

  test('one row per variant, baseline first, scores of the asked tasks and the training loss; files written', () => {
    assert.equal(full.complete, true);
    assert.deepEqual(full.rows.map((r) => r.variant), ['baseline', 'connector: mlp', 'round robin']);
    for (const r of full.rows) {
      assert.deepEqual(Object.keys(r.metrics).sort(), ['captioning/0', 'captioning/4', 'captioning/8', 'mean', 'train_loss', 'vqa/0', 'vqa/4', 'vqa/8']);
      assert.ok(typeof r.metrics.train_loss === 'number' && r.metrics.train_loss > 0);
      assert.ok(r.wall_s > 0);
    }
    // the variants trained differently
    assert.notEqual(full.rows[0]!.metrics.train_loss, full.rows[1]!.metrics.train_loss);
    assert.notEqual(full.rows[0]!.metrics.train_loss, full.rows[2]!.metrics.train_loss);
    assert.deepEqual(JSON.parse(readFileSync(join(first, 'table.json'), 'utf8')), { rows: full.rows });
    assert.match(readFileSync(join(first, 'table.txt'), 'utf8'), /^baseline .*\nconnector: mlp .*[+-]/m);
    const svg = readFileSync(join(first, 'loss.svg'), 'utf8');
    assert.equal((svg.match(/<polyline/g) ?? []).length, 3);
    for (const name of ['baseline', 'connector: mlp', 'round robin']) assert.ok(svg.includes(`>${name}</text>`), name);
    const ticks = [...svg.matchAll(/text-anchor="middle">(\d+)<\/text>/g)].map((x) => x[1]);
    assert.deepEqual(ticks, [...new Set(ticks)]);
    assert.ok(existsSync(join(first, 'variants', 'connector-mlp', 'model', 'weights.safetensors')));
  });

  test('the same file and seeds give the same table', () => {
    const again = runAblation(plan, { outDir: tmp(), ...quiet });
    assert.deepEqual(strip(again.rows), strip(full.rows));
  });

  test('an existing run needs --resume; resuming after a kill finishes it without redoing finished variants', () => {
    assert.throws(() => runAblation(plan, { outDir: first, ...quiet }), /already holds an ablation run; pass --resume/);
    const dir = tmp();
    const one = runAblation(plan, { outDir: dir, ...quiet, stopAfterVariants: 1 });
    assert.equal(one.complete, false);
    assert.equal(one.rows.length, 1);
    const doneAt = statSync(join(dir, 'variants', 'baseline', 'result.json')).mtimeMs;
    // killed in the middle of the second variant's training
    const killed = runAblation(plan, { outDir: dir, ...quiet, resume: true, stopAfterSteps: 2 });
    assert.equal(killed.complete, false);
    const lines: string[] = [];
    const rest = runAblation(plan, { outDir: dir, progress: false, log: (l) => lines.push(l), resume: true });
    assert.equal(rest.complete, true);
    assert.equal(statSync(join(dir, 'variants', 'baseline', 'result.json')).mtimeMs, doneAt);
    assert.ok(lines.some((l) => /1\/3 baseline: done before/.test(l)));
    assert.ok(lines.some((l) => /resuming from checkpoint step 2/.test(l)));
    assert.deepEqual(strip(rest.rows), strip(full.rows));
  });

  test('the table shows the baseline and the others as differences', () => {
    const t = ablationTable([
      { variant: 'baseline', metrics: { 'vqa/0': 40, mean: 40, train_loss: 2 }, wall_s: 60, seeds: [0] },
      { variant: 'other', metrics: { 'vqa/0': 35.5, mean: 35.5, train_loss: 2.25 }, wall_s: 90, seeds: [0] },
    ], 'title');
    assert.match(t, /baseline\s+40\.0\s+40\.0\s+2\.000\s+1:00/);
    assert.match(t, /other\s+-4\.5\s+-4\.5\s+\+0\.250\s+1:30/);
    assert.doesNotMatch(t, /by training seed/);
  });

  test('with several seeds the table lists each seed, the spread and the difference with its standard error', () => {
    const rows = [
      meanOverSeeds('baseline', [{ seed: 0, metrics: { mean: 40, train_loss: 2 }, wall_s: 60 }, { seed: 1, metrics: { mean: 44, train_loss: 2.5 }, wall_s: 30 }]),
      meanOverSeeds('other', [{ seed: 0, metrics: { mean: 30, train_loss: 2 }, wall_s: 60 }, { seed: 1, metrics: { mean: 36, train_loss: null }, wall_s: 30 }]),
    ];
    assert.deepEqual(rows[0]!.metrics, { mean: 42, train_loss: 2.25 });
    assert.deepEqual(rows[1]!.metrics, { mean: 33, train_loss: null });
    assert.equal(rows[0]!.wall_s, 90);
    const t = ablationTable(rows, 'title');
    assert.match(t, /baseline\s+42\.0\s+2\.250\s+1:30/);
    assert.match(t, /other\s+-9\.0\s+n\/a/);
    // sd: baseline sqrt(8) = 2.83, other sqrt(18) = 4.24; se of the difference sqrt(8/2 + 18/2) = 3.61
    assert.match(t, /baseline\s+seed 0: 40\.0, seed 1: 44\.0\s+->\s+42\.0 ± 2\.8 \(n=2\)\n/);
    assert.match(t, /other\s+seed 0: 30\.0, seed 1: 36\.0\s+->\s+33\.0 ± 4\.2 \(n=2\), -9\.0 ± 3\.6 against the baseline/);
  });

  test('seeds: a variant trains once per seed (its own seed in variants/<id>, so an earlier run is kept) and its row is their mean', () => {
    const seeded = resolveAblationPlan({ ...file, variants: [{ name: 'baseline', seeds: [3, 4] }, { ...file.variants[1]!, seeds: [3, 4] }] }, join(root, 'configs'), false);
    assert.deepEqual(seeded.variants.map((v) => v.seeds), [[3, 4], [3, 4]]);
    assert.equal(variantConfig(seeded, seeded.variants[0]!, 4).seed, 4);
    assert.deepEqual({ ...variantConfig(seeded, seeded.variants[1]!, 4), seed: 3 }, variantConfig(plan, plan.variants[1]!));
    // add seeds to a finished single-seed run: the seed-3 trainings are reused
    const dir = tmp();
    runAblation({ ...plan, variants: plan.variants.slice(0, 2) }, { outDir: dir, ...quiet });
    const lines: string[] = [];
    const r = runAblation(seeded, { outDir: dir, progress: false, log: (l) => lines.push(l), resume: true });
    assert.ok(lines.some((l) => /1\/4 baseline \(seed 3\): done before/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /2\/4 baseline \(seed 4\): training/.test(l)));
    assert.ok(existsSync(join(dir, 'variants', 'baseline-seed-4', 'result.json')));
    assert.ok(existsSync(join(dir, 'variants', 'connector-mlp-seed-4', 'model', 'weights.safetensors')));
    for (const [i, row] of r.rows.entries()) {
      assert.deepEqual(row.seeds, [3, 4]);
      const [a, b] = row.per_seed!;
      assert.deepEqual(a!.metrics, full.rows[i]!.metrics); // seed 3 is the single-seed run
      assert.notEqual(a!.metrics.train_loss, b!.metrics.train_loss); // seed 4 trained on other data from another init
      assert.equal(row.metrics.train_loss, Number(((a!.metrics.train_loss! + b!.metrics.train_loss!) / 2).toFixed(4)));
      assert.equal(row.metrics.mean, Number(((a!.metrics.mean! + b!.metrics.mean!) / 2).toFixed(2)));
    }
    assert.match(r.table, /mean score by training seed:\nbaseline\s+seed 3: /);
  });

  test('seeds are checked', () => {
    const bad = (patch: Record<string, unknown>, re: RegExp) => assert.throws(() => resolveAblationPlan({ ...file, ...patch }, join(root, 'configs')), (e: Error) => e instanceof ConfigError && re.test(e.message), String(re));
    bad({ seeds: [] }, /ablation file: seeds must be a non-empty list of seeds/);
    bad({ seeds: [1, 1] }, /seeds lists a seed twice/);
    bad({ variants: [{ name: 'baseline', seeds: [0, -1] }] }, /variants\[0\]\.seeds\[1\] must be an integer ≥ 0/);
    bad({ variants: [{ name: 'baseline' }, { name: 'x', set: { seed: 4 }, seeds: [4, 5] }] }, /variants\[1\]\.seeds and set\.seed both choose the seed/);
    bad({ variants: [{ name: 'baseline', seeds: [3, 5] }, { name: 'x', id: 'baseline-seed-5' }] }, /would train in variants\/baseline-seed-5/);
    // the file's seeds are every variant's default
    const p = resolveAblationPlan({ ...file, seeds: [1, 2] }, join(root, 'configs'));
    assert.deepEqual(p.variants.map((v) => v.seeds), [[1, 2], [1, 2], [1, 2]]);
  });
});
