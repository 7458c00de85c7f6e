/**
 * `npm run bench -- train [--json] [--size small|tiny] [--steps 8]`
 *
 * Training throughput of each stage (contrastive ViT, LM, Flamingo) on synthetic data, measured through the
 * real stage code (data generation, tokenisation, collation, forward, backward, clipping, AdamW, metrics;
 * checkpointing only at the end). `small` is the smoke-test scale; `tiny` uses the model widths of
 * bench/configs/configs.json (a copy of ../shared/bench/configs.json) "tiny". The first step of each stage is warm-up and not counted.
 * Prints one JSON object {bench, size, kernels, stages: {name: {tokens_per_s, images_per_s, step_ms, ...}}}.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { backend } from '../src/engine/backend.ts';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { docPlainText, syntheticText } from '../src/data/datasets/index.ts';
import { deepMerge, resolveTrainConfig, type TrainConfig } from '../src/train/config.ts';
import { trainContrastive, trainFlamingo, trainLM } from '../src/train/stages.ts';
import type { StepMetrics } from '../src/train/metrics.ts';

const SHARED = fileURLToPath(new URL('./configs/configs.json', import.meta.url));

function sizeConfig(size: string, steps: number): TrainConfig {
  const every = { steps, checkpoint_every: steps, optim: { lr: 1e-3, warmup_steps: 1 } };
  const world = { imageSize: 32, supersample: 1 };
  const stages = {
    contrastive: { ...every, datasets: [{ name: 'pairs', source: { type: 'synthetic-pairs', world }, batch_size: 16, max_tokens: 32 }] },
    lm: { ...every, datasets: [{ name: 'text', source: { type: 'synthetic-text', world }, batch_size: 8, max_tokens: 128, append_eos: true }] },
    flamingo: {
      ...every,
      datasets: [
        { name: 'interleaved', source: { type: 'synthetic-documents', world }, batch_size: 4, max_images: 5, max_tokens: 128 },
        { name: 'pairs', source: { type: 'synthetic-pairs', world }, batch_size: 8, max_images: 1, max_tokens: 32 },
      ],
    },
  };
  if (size === 'small') return resolveTrainConfig({ stages, tokenizer: { vocab_size: 512 } });
  if (size !== 'tiny') throw new Error(`bench train: unknown --size ${size} (small | tiny)`);
  const t = JSON.parse(readFileSync(SHARED, 'utf8')).configs.tiny;
  const world64 = { imageSize: t.vision.image_size, supersample: 1 };
  const model = {
    vision: t.vision,
    text_encoder: { context_length: 32, width: t.vision.width, layers: 2, heads: t.vision.heads, mlp_ratio: 4 },
    lm: { ...t.lm, vocab_size: undefined, max_position_embeddings: 512 },
    resampler: { ...t.resampler, dim: undefined },
    xattn: { ...t.xattn, dim: undefined, dim_visual: undefined },
    cross_attn_every_n_layers: t.flamingo.cross_attn_every_n_layers,
  };
  const s64 = JSON.parse(JSON.stringify(stages).replaceAll('"imageSize":32', `"imageSize":${world64.imageSize}`));
  return resolveTrainConfig(deepMerge({ model, tokenizer: { vocab_size: 1024 } }, { stages: s64 }));
}

function summarize(ms: StepMetrics[], batchSizes: number[]) {
  const timed = ms.slice(1);
  const secs = timed.reduce((a, m) => a + m.step_ms, 0) / 1000;
  const sorted = timed.map((m) => m.step_ms).sort((a, b) => a - b);
  return {
    steps_timed: timed.length,
    batch: batchSizes,
    tokens_per_s: +(timed.reduce((a, m) => a + m.tokens, 0) / secs).toFixed(1),
    images_per_s: +(timed.reduce((a, m) => a + m.images, 0) / secs).toFixed(2),
    step_ms_median: +(sorted[Math.floor(sorted.length / 2)] ?? NaN).toFixed(1),
    final_loss: +(ms[ms.length - 1]?.loss ?? NaN).toFixed(4),
  };
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, size: { type: 'string', default: 'small' }, steps: { type: 'string', default: '8' } } });
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 2) throw new Error('bench train: --steps must be an integer ≥ 2');
  const cfg = sizeConfig(values.size!, steps);
  const s = syntheticText({ world: { imageSize: 32, supersample: 1 } }).open(1);
  const tok = BpeTokenizer.train(Array.from({ length: 200 }, () => docPlainText(s.next())), { vocabSize: cfg.tokenizer.vocab_size });
  const dir = mkdtempSync(join(tmpdir(), 'flamingo-bench-train-'));
  const out: Record<string, unknown> = { bench: 'train', size: values.size, kernels: backend().name, steps };
  try {
    const common = { outDir: dir, tokenizer: tok, progress: !values.json };
    const bs = (n: keyof TrainConfig['stages']) => cfg.stages[n].datasets.map((d) => d.batch_size);
    const stages: Record<string, unknown> = {};
    stages.contrastive = summarize(trainContrastive(cfg, common).loop.metrics, bs('contrastive'));
    stages.lm = summarize(trainLM(cfg, common).loop.metrics, bs('lm'));
    stages.flamingo = summarize(trainFlamingo(cfg, common).loop.metrics, bs('flamingo'));
    out.stages = stages;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
  else process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}
