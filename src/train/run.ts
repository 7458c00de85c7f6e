/**
 * A whole training run from a config: tokenizer → (a) contrastive → (b) LM → (c) Flamingo → model directory.
 * Layout of DIR: config.json (resolved), tokenizer.json, contrastive/, lm/, flamingo/ (checkpoints, metrics,
 * loss.svg each), model/ (config.json + weights.safetensors + tokenizer.json: loadable with loadFlamingo).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { docPlainText, sourceFromSpec, subSeed, type DocSource } from '../data/datasets/index.ts';
import { saveFlamingo } from '../io/checkpoint.ts';
import type { Flamingo } from '../model/flamingo.ts';
import { atomicWrite } from './checkpoint.ts';
import { type TrainConfig, type StageName } from './config.ts';
import { TrainingError } from './loop.ts';
import { buildFlamingo, initTrainable, loadWeights, trainContrastive, trainFlamingo, trainLM, type Weights } from './stages.ts';
import type { StepMetrics } from './metrics.ts';

export interface RunOptions {
  outDir: string;
  resume?: boolean;
  progress?: boolean;
  baseDir?: string;
  sources?: Record<string, DocSource>;
  /** Log lines (stage start/end) go here; default stderr. */
  log?: (line: string) => void;
}

export interface StageSummary {
  steps: number;
  firstLoss: number | null;
  finalLoss: number | null;
  tokensPerS: number;
  imagesPerS: number;
}

export interface RunResult {
  modelDir: string;
  model: Flamingo;
  tokenizer: BpeTokenizer;
  stages: Partial<Record<StageName, StageSummary>>;
}

/** Train a BPE tokenizer on the text of the configured corpus (deterministic for the seed). */
export function trainTokenizer(cfg: TrainConfig, baseDir = '.'): BpeTokenizer {
  if (cfg.tokenizer.path) return BpeTokenizer.fromHuggingFace(readFileSync(resolve(baseDir, cfg.tokenizer.path), 'utf8'));
  const texts: string[] = [];
  cfg.tokenizer.corpus.forEach((entry, i) => {
    const stream = sourceFromSpec(`tokenizer-${i}`, entry.source, baseDir).open(subSeed(cfg.seed, 'tokenizer', i));
    for (let k = 0; k < entry.docs; k++) texts.push(docPlainText(stream.next()));
  });
  return BpeTokenizer.train(texts, { vocabSize: cfg.tokenizer.vocab_size });
}

function summarize(metrics: StepMetrics[]): StageSummary {
  const tail = metrics.slice(-Math.max(1, Math.floor(metrics.length / 2)));
  const mean = (f: (m: StepMetrics) => number) => (tail.length ? tail.reduce((a, m) => a + f(m), 0) / tail.length : 0);
  return {
    steps: metrics.length ? metrics[metrics.length - 1]!.step : 0,
    firstLoss: metrics[0]?.loss ?? null,
    finalLoss: metrics[metrics.length - 1]?.loss ?? null,
    tokensPerS: mean((m) => m.tokens_per_s),
    imagesPerS: mean((m) => m.images_per_s),
  };
}

export function trainFromConfig(cfg: TrainConfig, opts: RunOptions): RunResult {
  const out = opts.outDir;
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const resume = opts.resume ?? false;
  const tokFile = join(out, 'tokenizer.json');
  if (!resume && existsSync(tokFile)) throw new TrainingError('run', `${out} already holds a run; pass --resume to continue it or choose a new --out`);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');

  let tok: BpeTokenizer;
  if (existsSync(tokFile)) {
    tok = BpeTokenizer.fromHuggingFace(readFileSync(tokFile, 'utf8'));
  } else {
    const t0 = performance.now();
    tok = trainTokenizer(cfg, opts.baseDir);
    atomicWrite(tokFile, JSON.stringify(tok.toHuggingFace()));
    log(`tokenizer: ${tok.vocabSize} tokens (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const common = { outDir: out, tokenizer: tok, resume, progress: opts.progress, baseDir: opts.baseDir, sources: opts.sources, log };
  const stages: RunResult['stages'] = {};

  let vision: Weights | null = null;
  if (cfg.stages.contrastive.enabled) {
    const r = trainContrastive(cfg, common);
    stages.contrastive = summarize(r.loop.metrics);
    vision = loadWeights(join(out, 'contrastive', 'vision.safetensors'));
  }
  let lm: Weights | null = null;
  if (cfg.stages.lm.enabled) {
    const r = trainLM(cfg, common);
    stages.lm = summarize(r.loop.metrics);
    lm = loadWeights(join(out, 'lm', 'lm.safetensors'));
  }
  // components of an earlier run, for a run that trains only the later stages
  const base = opts.baseDir ?? '.';
  if (cfg.stages.flamingo.vision_weights) vision = loadWeights(resolve(base, cfg.stages.flamingo.vision_weights));
  if (cfg.stages.flamingo.lm_weights) lm = loadWeights(resolve(base, cfg.stages.flamingo.lm_weights));
  let model: Flamingo;
  if (cfg.stages.flamingo.enabled) {
    const r = trainFlamingo(cfg, { ...common, vision, lm });
    stages.flamingo = summarize(r.loop.metrics);
    model = r.model;
  } else {
    model = buildFlamingo(cfg, tok, vision, lm);
    // a run that only retrains a component (e.g. the LM) keeps an earlier run's resampler and gated blocks
    if (cfg.stages.flamingo.init_weights) initTrainable(model, resolve(base, cfg.stages.flamingo.init_weights));
  }
  model.setTrainingMode('none');
  const modelDir = join(out, 'model');
  saveFlamingo(model, modelDir, { seed: String(cfg.seed) });
  atomicWrite(join(modelDir, 'tokenizer.json'), JSON.stringify(tok.toHuggingFace()));
  for (const [name, s] of Object.entries(stages)) {
    log(`${name}: ${s.steps} steps, loss ${s.firstLoss?.toFixed(4)} → ${s.finalLoss?.toFixed(4)}, ${s.tokensPerS.toFixed(0)} tok/s, ${s.imagesPerS.toFixed(1)} img/s`);
  }
  log(`model: ${modelDir}`);
  return { modelDir, model, tokenizer: tok, stages };
}
