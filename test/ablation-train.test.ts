/**
 * The paper's training ablations as config options (docs/ABLATIONS.md): the mixture strategy (accumulate vs
 * round robin) and the LM during stage (c) (frozen, fine-tuned, from scratch). Each changes what it should and
 * nothing else; the defaults are today's training.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, zeros } from '../src/engine/tensor.ts';
import { backward, mul, sub, sum } from '../src/engine/index.ts';
import { Module } from '../src/nn/module.ts';
import { listSource, docPlainText, syntheticText, type RawDoc } from '../src/data/datasets/index.ts';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { runLoop, type LoopOptions } from '../src/train/loop.ts';
import { resolveTrainConfig, deepMerge, configHash } from '../src/train/config.ts';
import { buildFlamingo } from '../src/train/stages.ts';
import { ConfigError } from '../src/model/config.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'flamingo-ablation-'));

/** One scalar parameter; each dataset pulls it towards its own target. */
class Scalar extends Module {
  readonly p: Tensor;
  constructor() {
    super();
    this.p = this.param('p', zeros([1]));
  }
}

const docs = (n: number): RawDoc[] => Array.from({ length: n }, (_, i) => ({ key: String(i), chunks: [{ kind: 'text', text: 'x' }] }));
const TARGET: Record<string, number> = { a: 1, b: -3, c: 2 };

function loop(mixture: 'accumulate' | 'round_robin' | undefined, dir: string, extra: Partial<LoopOptions> = {}) {
  const model = new Scalar();
  const seen: { ds: string; p: number }[] = [];
  const r = runLoop({
    stage: 'toy', dir, model, steps: 4, seed: 0, configHash: 'h', checkpointEvery: 2, keepCheckpoints: 2, resume: false, progress: false,
    optim: { lr: 0.1, warmup_steps: 2, schedule: 'cosine', min_lr_ratio: 0.1, weight_decay: 0, betas: [0.9, 0.98], eps: 1e-8, grad_clip: 1 },
    datasets: ['a', 'b', 'c'].map((n) => ({ name: n, source: listSource(n, docs(4)), batchSize: 1, weight: 1 })),
    microStep: (ds) => {
      seen.push({ ds: ds.name, p: model.p.f32[0]! });
      const d = sub(model.p, new Tensor(Float32Array.of(TARGET[ds.name]!), [1]));
      const loss = sum(mul(d, d));
      backward(loss);
      return { loss: loss.item(), tokens: 1, images: 0 };
    },
    ...(mixture ? { mixture } : {}),
    ...extra,
  });
  return { r, p: model.p.f32[0]!, seen };
}

describe('mixture strategy', () => {
  test('accumulate (default): every dataset of a step sees the same weights, one update per step', () => {
    const def = loop(undefined, tmp());
    const acc = loop('accumulate', tmp());
    assert.equal(def.p, acc.p);
    assert.deepEqual(def.seen, acc.seen);
    for (let s = 0; s < 4; s++) assert.equal(new Set(def.seen.slice(3 * s, 3 * s + 3).map((x) => x.p)).size, 1);
    assert.equal(def.r.metrics[0]!.lr, 0.1 * (1 / 2)); // warm-up: step 1 of 2
  });

  test('round_robin: an update after each dataset batch, the same data per step, the schedule stretched', () => {
    const acc = loop('accumulate', tmp());
    const rr = loop('round_robin', tmp());
    assert.deepEqual(rr.seen.map((x) => x.ds), acc.seen.map((x) => x.ds)); // same batches in the same order
    for (let i = 1; i < rr.seen.length; i++) assert.notEqual(rr.seen[i]!.p, rr.seen[i - 1]!.p, `update before batch ${i}`);
    assert.notEqual(rr.p, acc.p);
    // warm-up of 2 steps = 6 updates; step 1 ends with update 3 of them
    assert.ok(Math.abs(rr.r.metrics[0]!.lr - 0.1 * (3 / 6)) < 1e-12);
    assert.equal(rr.r.metrics.length, 4);
  });

  test('round_robin resumes exactly (the optimizer counts its updates, not steps)', () => {
    const whole = loop('round_robin', tmp());
    const dir = tmp();
    loop('round_robin', dir, { stopAfter: 2 });
    const resumed = loop('round_robin', dir, { resume: true });
    assert.equal(resumed.p, whole.p);
  });

  test('the key is validated, and changes the stage hash only when set', () => {
    const base = resolveTrainConfig({});
    const acc = resolveTrainConfig({ stages: { flamingo: { mixture: 'accumulate' } } });
    const rr = resolveTrainConfig({ stages: { flamingo: { mixture: 'round_robin' } } });
    assert.equal(configHash(base, 'lm'), configHash(rr, 'lm'));
    assert.notEqual(configHash(base, 'flamingo'), configHash(rr, 'flamingo'));
    assert.notEqual(configHash(acc, 'flamingo'), configHash(rr, 'flamingo'));
    assert.throws(() => resolveTrainConfig({ stages: { flamingo: { mixture: 'shuffle' } } }), (e: Error) => e instanceof ConfigError && /stages\.flamingo\.mixture must be 'accumulate' or 'round_robin'/.test(e.message));
  });
});

describe('the LM during stage (c)', () => {
  const small = {
    seed: 1,
    tokenizer: { vocab_size: 300, corpus: [{ source: { type: 'synthetic-text' }, docs: 20 }] },
    model: {
      vision: { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 16 },
      lm: { hidden_size: 16, intermediate_size: 32, num_layers: 2, num_heads: 2, num_key_value_heads: 2, max_position_embeddings: 64 },
      resampler: { depth: 1, dim_head: 8, heads: 2, num_latents: 2, ff_mult: 2 },
      xattn: { dim_head: 8, heads: 2, ff_mult: 2 },
    },
  };
  const s = syntheticText({ world: { imageSize: 16, supersample: 1 } }).open(2);
  const tok = BpeTokenizer.train(Array.from({ length: 20 }, () => docPlainText(s.next())), { vocabSize: 300 });
  const build = (lmTraining?: string) => {
    const cfg = resolveTrainConfig(deepMerge(small, { stages: { flamingo: { train_embeddings: false, ...(lmTraining ? { lm_training: lmTraining } : {}) } } }));
    const ref = buildFlamingo(cfg, tok); // the random initialisation
    const pretrained = new Map(ref.lang_encoder.lm.namedParameters().map(([n, t]) => [n, { shape: t.shape, data: t.f32.map((v) => v + 0.5) }]));
    return { model: buildFlamingo(cfg, tok, null, pretrained), ref, pretrained };
  };
  const lmNames = (m: ReturnType<typeof build>['model']) => new Set(m.lang_encoder.lm.namedParameters().map(([n]) => `lang_encoder.${n}`));

  test('frozen (default): pretrained LM loaded, only the connector and gated blocks learn', () => {
    for (const mode of [undefined, 'frozen']) {
      const { model, pretrained } = build(mode);
      const lm = lmNames(model);
      const trainable = model.trainableParameters().map(([n]) => n);
      assert.ok(trainable.length > 0 && trainable.every((n) => !lm.has(n)));
      for (const [n, t] of model.lang_encoder.lm.namedParameters()) assert.deepEqual(t.f32, pretrained.get(n)!.data);
    }
  });

  test('finetune: the pretrained LM is loaded and every LM parameter learns too', () => {
    const frozen = build().model.trainableParameters().map(([n]) => n);
    const { model, pretrained } = build('finetune');
    const lm = lmNames(model);
    const trainable = model.trainableParameters().map(([n]) => n);
    assert.deepEqual(trainable.filter((n) => !lm.has(n)), frozen);
    assert.deepEqual(new Set(trainable.filter((n) => lm.has(n))), lm);
    for (const [n, t] of model.lang_encoder.lm.namedParameters()) assert.deepEqual(t.f32, pretrained.get(n)!.data);
  });

  test('scratch: the LM keeps its random initialisation (pretrained weights not loaded) and learns', () => {
    const { model, ref } = build('scratch');
    const refLM = new Map(ref.lang_encoder.lm.namedParameters());
    for (const [n, t] of model.lang_encoder.lm.namedParameters()) assert.deepEqual(t.f32, refLM.get(n)!.f32, n);
    const lm = lmNames(model);
    assert.deepEqual(new Set(model.trainableParameters().map(([n]) => n).filter((n) => lm.has(n))), lm);
  });

  test('a bad value is an error naming the field', () => {
    assert.throws(() => resolveTrainConfig({ stages: { flamingo: { lm_training: 'thawed' } } }), /stages\.flamingo\.lm_training must be 'frozen', 'finetune' or 'scratch'/);
  });
});
