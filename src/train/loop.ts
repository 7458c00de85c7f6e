/**
 * The training loop shared by all stages. One step takes one batch from EVERY dataset (paper §3 / OpenFlamingo:
 * a batch per dataset, weighted losses, backward each, gradients accumulate), clips the global gradient norm,
 * makes one AdamW update with the scheduled learning rate, logs metrics and checkpoints.
 * Resuming restores weights, moments, step, rng and data cursors from the newest committed checkpoint, so the
 * continued run does exactly what the uninterrupted one would have done.
 */
import { existsSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../engine/rng.ts';
import { BufferPool, withBufferPool } from '../engine/buffer-pool.ts';
import type { Module } from '../nn/module.ts';
import type { DocSource, DocStream, RawDoc, Cursor } from '../data/datasets/types.ts';
import { subSeed } from '../data/datasets/types.ts';
import { AdamW, clipGradNorm, defaultNoDecay, learningRate } from './optim.ts';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { MetricsLog, writeLossCurve, type StepMetrics } from './metrics.ts';
import { ProgressBar, formatRate } from '../io/progress.ts';
import type { OptimConfig } from './config.ts';
import { FlamingoError } from '../errors.ts';

export class TrainingError extends FlamingoError {
  constructor(stage: string, detail: string) {
    super(`train ${stage}: ${detail}`);
  }
}

export interface LoopDataset {
  name: string;
  source: DocSource;
  batchSize: number;
  weight: number;
}

/** What a stage does with one dataset's batch: compute loss · weight, call backward, report. */
/** One dataset's micro-batch: its NLL (logged per dataset), counts, and auxiliary losses (logged as `{dataset}/{name}`). */
export type MicroStep = (ds: LoopDataset, docs: RawDoc[], rng: Rng) => { loss: number; tokens: number; images: number; aux?: Record<string, number> };

export interface LoopOptions {
  stage: string;
  /** Stage directory: checkpoints, metrics.jsonl, loss.svg. */
  dir: string;
  model: Module;
  datasets: LoopDataset[];
  microStep: MicroStep;
  /** After each optimizer update (e.g. clamp CLIP's temperature). */
  afterUpdate?: () => void;
  steps: number;
  optim: OptimConfig;
  seed: number;
  configHash: string;
  checkpointEvery: number;
  keepCheckpoints: number;
  resume: boolean;
  /** Progress bar on stderr (default true). */
  progress?: boolean;
  logEvery?: number;
  /** Where status lines go (which checkpoint is resumed, which were skipped as damaged); default stderr. */
  log?: (line: string) => void;
  /** Stop (as if killed) once this many steps are complete; a checkpoint is written first. For tests. */
  stopAfter?: number;
  /**
   * 'accumulate' (default; paper): one update per step from the gradients of every dataset's batch. 'round_robin'
   * (Table 3 (ii) ablation): one update per dataset batch, the datasets in turn; a step is still one batch of
   * every dataset, so both see the same data, and the schedule (warm-up included) is stretched over the updates.
   */
  mixture?: 'accumulate' | 'round_robin';
}

export interface LoopResult {
  /** Steps completed (== steps unless stopped early). */
  step: number;
  resumedFrom: number;
  metrics: StepMetrics[];
}

function openStreams(ds: LoopDataset[], seed: number, cursors: Record<string, Cursor>): Map<string, DocStream> {
  return new Map(ds.map((d) => [d.name, d.source.open(subSeed(seed, 'data', d.name), cursors[d.name])]));
}

export function runLoop(o: LoopOptions): LoopResult {
  mkdirSync(o.dir, { recursive: true });
  const params = o.model.trainableParameters();
  if (params.length === 0) throw new TrainingError(o.stage, 'the model has no trainable parameters');
  const opt = new AdamW(params, { lr: o.optim.lr, betas: o.optim.betas, eps: o.optim.eps, weightDecay: o.optim.weight_decay, noDecay: defaultNoDecay,
    lrScale: (name) => (/(^|\.)(attn_gate|ff_gate)$/.test(name) ? o.optim.gate_lr_multiplier ?? 1 : 1),
  });
  const rng = new Rng(o.seed).fork('stage').fork(o.stage);
  const roundRobin = o.mixture === 'round_robin';
  const updatesPerStep = roundRobin ? o.datasets.length : 1;
  let cursors: Record<string, Cursor> = {};
  let start = 0;
  const log = new MetricsLog(join(o.dir, 'metrics.jsonl'));

  const say = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const ck = latestCheckpoint(o.dir, (m) => say(`${o.stage}: ${m}`));
  if (ck && !o.resume) throw new TrainingError(o.stage, `${o.dir} already holds checkpoints; pass --resume to continue or use a new --out`);
  if (ck) {
    if (ck.configHash !== o.configHash) {
      throw new TrainingError(o.stage, `checkpoint step ${ck.step} in ${o.dir} was made with a different config (hash ${ck.configHash}, now ${o.configHash})`);
    }
    loadCheckpoint(o.dir, ck, o.model, opt);
    opt.step = ck.step * updatesPerStep;
    rng.setState(ck.rng);
    say(`${o.stage}: resuming from checkpoint step ${ck.step}`);
    cursors = ck.cursors;
    start = ck.step;
    log.truncate(start);
  } else {
    // a fresh start: forget metrics of any earlier attempt that never checkpointed
    log.truncate(0);
    for (const f of existsSync(o.dir) ? readdirSync(o.dir) : []) if (/^\.?ckpt-/.test(f)) unlinkSync(join(o.dir, f));
  }
  const streams = openStreams(o.datasets, o.seed, cursors);
  const sched = { warmupSteps: o.optim.warmup_steps * updatesPerStep, totalSteps: o.steps * updatesPerStep, kind: o.optim.schedule, minRatio: o.optim.min_lr_ratio };
  const bar = new ProgressBar(o.stage.padEnd(11), o.steps, { startStep: start, enabled: o.progress ?? true, every: o.logEvery ?? 10 });
  const trainable = params.map(([, t]) => t);
  const end = Math.min(o.steps, o.stopAfter ?? Infinity);
  let emaTok = 0;
  let emaImg = 0;

  const checkpoint = (step: number) => {
    saveCheckpoint({
      dir: o.dir,
      model: o.model,
      optimizer: opt,
      keep: o.keepCheckpoints,
      state: {
        stage: o.stage,
        step,
        configHash: o.configHash,
        rng: rng.state(),
        cursors: Object.fromEntries([...streams].map(([n, s]) => [n, s.cursor])),
      },
    });
    writeLossCurve(join(o.dir, 'loss.svg'), log.read(), `${o.stage}: training loss`);
  };

  // One buffer pool for the run: each step's shapes mostly repeat, so the gradients a backward pass
  // frees are reused as the next step's activations instead of new ArrayBuffers (fewer collections).
  const pool = new BufferPool();
  for (let step = start; step < end; step++) {
    pool.nextStep();
    withBufferPool(() => runStep(step), pool);
  }
  function runStep(step: number): void {
    const t0 = performance.now();
    let lr = learningRate(o.optim.lr, step, sched);
    const norms: number[] = [];
    const update = (u: number): void => {
      lr = learningRate(o.optim.lr, u, sched);
      norms.push(o.optim.grad_clip > 0 ? clipGradNorm(trainable, o.optim.grad_clip) : NaN);
      opt.update(lr);
      opt.zeroGrad();
      o.afterUpdate?.();
    };
    let total = 0;
    let tokens = 0;
    let images = 0;
    const losses: Record<string, number> = {};
    for (const d of o.datasets) {
      const stream = streams.get(d.name)!;
      const docs: RawDoc[] = [];
      for (let i = 0; i < d.batchSize; i++) docs.push(stream.next());
      const r = o.microStep(d, docs, rng);
      if (!Number.isFinite(r.loss)) throw new TrainingError(o.stage, `loss of dataset ${d.name} is ${r.loss} at step ${step + 1}`);
      losses[d.name] = r.loss;
      for (const [k, v] of Object.entries(r.aux ?? {})) losses[`${d.name}/${k}`] = v;
      total += d.weight * r.loss;
      tokens += r.tokens;
      images += r.images;
      if (roundRobin) update(step * updatesPerStep + norms.length);
    }
    if (!roundRobin) update(step);
    // round robin: the mean of the step's updates
    const norm = norms.reduce((a, b) => a + b, 0) / norms.length;
    const ms = performance.now() - t0;
    const tps = (tokens * 1000) / ms;
    const ips = (images * 1000) / ms;
    emaTok = step === start ? tps : 0.8 * emaTok + 0.2 * tps;
    emaImg = step === start ? ips : 0.8 * emaImg + 0.2 * ips;
    const m: StepMetrics = { step: step + 1, loss: total, losses, lr, grad_norm: norm, tokens, images, step_ms: ms, tokens_per_s: tps, images_per_s: ips };
    log.append(m);
    bar.update(step + 1, `loss ${total.toFixed(4)} | ${formatRate(emaTok)} tok/s${emaImg > 0 ? ` ${formatRate(emaImg)} img/s` : ''}`);
    if ((step + 1) % o.checkpointEvery === 0 || step + 1 === end) checkpoint(step + 1);
  }
  bar.done();
  return { step: end, resumedFrom: start, metrics: log.read() };
}
