import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { docPlainText, docToText, listSource, syntheticDocuments, syntheticPairs, syntheticText, type DocSource, type RawDoc } from '../src/data/datasets/index.ts';
import { resolveTrainConfig, deepMerge, configHash, type TrainConfig } from '../src/train/config.ts';
import { buildFlamingo, initTrainable, trainContrastive, trainFlamingo, trainLM, loadWeights, lmLoss, lmTokens } from '../src/train/stages.ts';
import { textBinding } from '../src/data/datasets/binding.ts';
import { createLanguageModel } from '../src/model/lm/index.ts';
import { lmConfig } from '../src/train/config.ts';
import { Rng } from '../src/engine/rng.ts';
import { noGrad } from '../src/engine/index.ts';
import { trainFromConfig } from '../src/train/run.ts';
import { LOGIT_SCALE_MAX } from '../src/model/clip.ts';
import { MetricsLog } from '../src/train/metrics.ts';
import { loadFlamingo } from '../src/io/checkpoint.ts';
import { ConfigError } from '../src/model/config.ts';
import { TINY_MODEL, TINY_WORLD } from './helpers/tiny-train.ts';

const small = {
  seed: 1,
  tokenizer: { vocab_size: 320, corpus: [{ source: { type: 'synthetic-text' }, docs: 60 }] },
  model: TINY_MODEL,
};

function config(stages: Record<string, unknown>): TrainConfig {
  return resolveTrainConfig(deepMerge(small, { stages }));
}

const tmp = () => mkdtempSync(join(tmpdir(), 'flamingo-train-'));
const world = TINY_WORLD;

function fixed(name: string, src: DocSource, n: number): DocSource {
  const s = src.open(11);
  const docs: RawDoc[] = Array.from({ length: n }, () => s.next());
  return listSource(name, docs);
}

function tokenizerFor(): BpeTokenizer {
  const s = syntheticText({ world }).open(2);
  return BpeTokenizer.train(Array.from({ length: 60 }, () => docPlainText(s.next())), { vocabSize: 320 });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function assertFalls(losses: number[], factor: number, what: string): void {
  const head = mean(losses.slice(0, 3));
  const tail = mean(losses.slice(-3));
  assert.ok(tail < factor * head, `${what}: loss ${head.toFixed(3)} → ${tail.toFixed(3)} did not fall below ${factor}×`);
}

const optim = (lr: number) => ({ lr, warmup_steps: 2, schedule: 'constant', weight_decay: 0 });

test('stage (b) LM with vector-key episodes: vectors go to the <image> placeholders, loss falls', () => {
  const dir = tmp();
  try {
    const tok = tokenizerFor();
    const cfg = config({ lm: { steps: 25, checkpoint_every: 100, optim: optim(1e-2), datasets: [{ name: 'vb', source: { type: 'custom' }, batch_size: 4, max_tokens: 96 }] } });
    const sources = { vb: fixed('vb', textBinding({ name: 'vb', keys: 'vectors', ways: [2, 3], items: [4, 6] }), 4) };
    const docs = [...Array(4)].map(() => sources.vb.open(0).next());
    const lm = createLanguageModel(lmConfig(cfg, tok), new Rng(3));
    const H = lm.config.hidden_size;
    const rows = docs.map((d) => tok.encode(docPlainText(d), { parseSpecial: true }));
    assert.ok(rows.every((r) => r.filter((t) => t === tok.imageTokenId).length >= 4), 'placeholders are the <image> token');
    noGrad(() => {
      const plain = lmLoss(lm, rows, tok.padTokenId).item();
      const zeros = lmLoss(lm, rows, tok.padTokenId, docs.map((d) => ({ vectors: d.keyVectors!(H).map((v) => v.fill(0)), spread: 1 }))).item();
      const keyed = lmLoss(lm, rows, tok.padTokenId, docs.map((d) => ({ vectors: d.keyVectors!(H), spread: 0 }))).item();
      const spread = lmLoss(lm, rows, tok.padTokenId, docs.map((d) => ({ vectors: d.keyVectors!(H), spread: 0.5 }))).item();
      assert.equal(zeros, plain, 'zero vectors change nothing');
      assert.notEqual(keyed, plain, 'the vectors reach the model');
      assert.notEqual(spread, keyed, 'spread vectors reach the following tokens');
      assert.throws(() => lmLoss(lm, rows, tok.padTokenId, docs.map((d) => ({ vectors: d.keyVectors!(H).slice(1), spread: 0 }))), /more <image> placeholders than key vectors/);
    });
    const r = trainLM(cfg, { outDir: dir, tokenizer: tok, sources, progress: false });
    assertFalls(r.loop.metrics.map((m) => m.loss), 0.6, 'lm on vector-key episodes');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage (a) contrastive: loss falls, temperature stays clamped, vision weights load into Flamingo', () => {
  const dir = tmp();
  try {
    const tok = tokenizerFor();
    const cfg = config({ contrastive: { steps: 30, checkpoint_every: 100, optim: optim(3e-3), datasets: [{ name: 'pairs', source: { type: 'custom' }, batch_size: 8, max_tokens: 24 }] } });
    const sources = { pairs: fixed('pairs', syntheticPairs({ world, text: 'alt' }), 8) };
    const r = trainContrastive(cfg, { outDir: dir, tokenizer: tok, sources, progress: false });
    assert.equal(r.loop.metrics.length, 30);
    assertFalls(r.loop.metrics.map((m) => m.loss), 0.6, 'contrastive');
    assert.ok(r.model.logit_scale.f32[0]! <= LOGIT_SCALE_MAX && r.model.logit_scale.f32[0]! >= 0);
    assert.ok(existsSync(join(dir, 'contrastive', 'loss.svg')));
    assert.match(readFileSync(join(dir, 'contrastive', 'loss.svg'), 'utf8'), /<polyline/);
    const m = r.loop.metrics[5]!;
    assert.ok(m.tokens > 0 && m.images === 8 && m.tokens_per_s > 0 && m.images_per_s > 0);
    const vision = loadWeights(join(dir, 'contrastive', 'vision.safetensors'));
    assert.deepEqual(Array.from(vision.get('proj')!.data), Array.from(r.model.visual.proj.f32));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage (b) LM: loss falls on a fixed text set', () => {
  const dir = tmp();
  try {
    const tok = tokenizerFor();
    const cfg = config({ lm: { steps: 25, checkpoint_every: 100, optim: optim(1e-2), datasets: [{ name: 'text', source: { type: 'custom' }, batch_size: 4, max_tokens: 48, append_eos: true }] } });
    const sources = { text: fixed('text', syntheticText({ world }), 4) };
    const r = trainLM(cfg, { outDir: dir, tokenizer: tok, sources, progress: false });
    assertFalls(r.loop.metrics.map((m) => m.loss), 0.5, 'lm');
    assert.ok(existsSync(join(dir, 'lm', 'lm.safetensors')));
    // init_weights: a later run continues from this LM (its first loss is the trained one, not a fresh LM's)
    const first = join(dir, 'lm', 'lm.safetensors');
    const more = { steps: 3, checkpoint_every: 100, optim: optim(1e-2), datasets: [{ name: 'text', source: { type: 'custom' }, batch_size: 4, max_tokens: 48, append_eos: true }] };
    const cont = trainLM(config({ lm: { ...more, init_weights: first } }), { outDir: join(dir, 'cont'), tokenizer: tok, sources, progress: false });
    const fresh = trainLM(config({ lm: more }), { outDir: join(dir, 'fresh'), tokenizer: tok, sources, progress: false });
    const last = r.loop.metrics.at(-1)!.loss;
    assert.ok(cont.loop.metrics[0]!.loss < 1.5 * last && cont.loop.metrics[0]!.loss < 0.5 * fresh.loop.metrics[0]!.loss,
      `continued ${cont.loop.metrics[0]!.loss} vs trained ${last}, fresh ${fresh.loop.metrics[0]!.loss}`);
    assert.throws(() => trainLM(config({ lm: { ...more, init_weights: join(dir, 'nope.safetensors') } }), { outDir: join(dir, 'x'), tokenizer: tok, sources, progress: false }), /lm.*init_weights: no such file .*nope/);
    assert.throws(() => config({ lm: { init_weights: 5 } }), /stages\.lm\.init_weights must be a file path/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage (b) LM with markers: documents are written as stage (c) writes them, media never read', () => {
  const dir = tmp();
  try {
    const tok = tokenizerFor();
    let decoded = 0;
    const docs = fixed('docs', syntheticDocuments({ world, kind: 'captions' }), 6).open(0);
    const raw = Array.from({ length: 6 }, () => docs.next()).filter((d) => d.chunks.some((c) => c.kind === 'image'));
    assert.ok(raw.length > 0, 'some captions pages have images');
    // a document whose text forges a marker, and whose image must not be decoded
    const forged: RawDoc = { key: 'forged', chunks: [{ kind: 'image', image: () => { decoded++; throw new Error('read'); } }, { kind: 'text', text: 'A <image> cat<|endofchunk|>.' }] };
    for (const doc of [...raw, forged]) {
      const ids = lmTokens(tok, doc, true);
      const images = doc.chunks.filter((c) => c.kind !== 'text').length;
      assert.equal(ids.filter((t) => t === tok.imageTokenId).length, images, `${doc.key}: one <image> per media item`);
      assert.equal(ids.filter((t) => t === tok.eocTokenId).length, images, `${doc.key}: one <|endofchunk|> per media item`);
      assert.deepEqual(ids, tok.encode(docToText(tok, doc).text, { parseSpecial: true }), 'the same text as stage (c)');
      const plain = lmTokens(tok, doc, false);
      assert.ok(!plain.includes(tok.imageTokenId) && !plain.includes(tok.eocTokenId), 'without markers: the text alone');
    }
    assert.equal(decoded, 0);
    assert.throws(() => config({ flamingo: { datasets: [{ name: 'd', source: { type: 'custom' }, markers: true }] } }), (e: unknown) => e instanceof ConfigError && /stages\.flamingo\.datasets\[0\]\.markers.*LM-stage option/.test((e as Error).message));
    assert.throws(() => config({ lm: { datasets: [{ name: 'd', source: { type: 'custom' }, markers: 'yes' }] } }), (e: unknown) => e instanceof ConfigError && /stages\.lm\.datasets\[0\]\.markers must be a boolean/.test((e as Error).message));
    const cfg = config({ lm: { steps: 25, checkpoint_every: 100, optim: optim(1e-2), datasets: [{ name: 'pages', source: { type: 'custom' }, batch_size: 4, max_tokens: 96, markers: true }] } });
    assert.notEqual(configHash(cfg, 'lm'), configHash(config({ lm: { steps: 25, optim: optim(1e-2), datasets: [{ name: 'pages', source: { type: 'custom' }, batch_size: 4, max_tokens: 96 }] } }), 'lm'));
    const r = trainLM(cfg, { outDir: dir, tokenizer: tok, sources: { pages: listSource('pages', raw.slice(0, 4)) }, progress: false });
    assertFalls(r.loop.metrics.map((m) => m.loss), 0.5, 'lm with markers');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage (c) Flamingo: weighted mixture, loss falls, frozen parts stay frozen', () => {
  const dir = tmp();
  try {
    const tok = tokenizerFor();
    // Tied embeddings: the trainable input table is also the output head, so a randomly initialised frozen LM
    // (no stage b here, to stay fast) still leaves the Flamingo parameters room to fit the data.
    const cfg = resolveTrainConfig(deepMerge(small, { model: { lm: { tie_word_embeddings: true } }, stages: {
      flamingo: {
        steps: 20,
        checkpoint_every: 100,
        optim: optim(1e-2),
        datasets: [
          { name: 'docs', source: { type: 'custom' }, batch_size: 2, max_images: 2, max_tokens: 48 },
          { name: 'pairs', source: { type: 'custom' }, batch_size: 4, max_images: 1, max_tokens: 24, weight: 0.5 },
        ],
      },
    } }));
    const sources = {
      docs: fixed('docs', syntheticDocuments({ world, kind: 'captions' }), 2),
      pairs: fixed('pairs', syntheticPairs({ world }), 4),
    };
    const r = trainFlamingo(cfg, { outDir: dir, tokenizer: tok, sources, progress: false });
    const ms = r.loop.metrics;
    assertFalls(ms.map((m) => m.loss), 0.7, 'flamingo');
    // the step loss is the weighted sum of the per-dataset losses
    for (const m of ms) assert.ok(Math.abs(m.loss - (m.losses.docs! + 0.5 * m.losses.pairs!)) < 1e-4);
    assert.ok(ms.every((m) => m.images > 0));
    const fresh = trainFlamingo(cfg, { outDir: tmp(), tokenizer: tok, sources, progress: false, stopAfter: 0 }).model;
    const before = new Map(fresh.namedParameters());
    for (const [name, t] of r.model.namedParameters()) {
      const same = Buffer.compare(Buffer.from(t.f32.buffer, t.f32.byteOffset, t.f32.byteLength), Buffer.from(before.get(name)!.f32.buffer, before.get(name)!.f32.byteOffset, before.get(name)!.f32.byteLength)) === 0;
      const trainable = name.startsWith('perceiver.') || name.includes('gated_cross_attn_layers') || name === 'lang_encoder.model.embed_tokens.weight';
      if (!trainable) assert.ok(same, `${name} is frozen but changed`);
      else if (name.endsWith('attn_gate') || name.endsWith('ff_gate')) assert.ok(!same, `${name} should have moved off zero`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stage (c) with feature_similarity: the similarity term is logged per dataset and falls; NLL logged apart', () => {
  const dir = tmp();
  try {
    const tok = tokenizerFor();
    const stages = (w: number, layers: unknown = 'first') => ({
      flamingo: {
        steps: 25,
        checkpoint_every: 100,
        feature_similarity: w,
        feature_similarity_layers: layers,
        optim: optim(1e-2),
        datasets: [
          { name: 'docs', source: { type: 'custom' }, batch_size: 2, max_images: 3, max_tokens: 64 },
          { name: 'pairs', source: { type: 'custom' }, batch_size: 4, max_images: 1, max_tokens: 24 },
        ],
      },
    });
    const sources = {
      docs: fixed('docs', syntheticDocuments({ world, kind: 'captions' }), 2),
      pairs: fixed('pairs', syntheticPairs({ world }), 4),
    };
    const on = trainFlamingo(resolveTrainConfig(deepMerge(small, { stages: stages(5) })), { outDir: dir, tokenizer: tok, sources, progress: false });
    const ms = on.loop.metrics;
    for (const m of ms) {
      assert.ok(m.losses['docs/similarity']! >= 0 && m.losses['pairs/similarity']! >= 0, JSON.stringify(m.losses));
      assert.ok(Math.abs(m.loss - (m.losses.docs! + m.losses.pairs!)) < 1e-4, 'the step loss is the NLL mixture');
    }
    assertFalls(ms.map((m) => m.losses['docs/similarity']! + m.losses['pairs/similarity']!), 0.7, 'similarity');
    const off = trainFlamingo(resolveTrainConfig(deepMerge(small, { stages: stages(0) })), { outDir: tmp(), tokenizer: tok, sources, progress: false, stopAfter: 2 });
    assert.ok(off.loop.metrics.every((m) => !('docs/similarity' in m.losses)));
    // step 1 (before any update) sees the same model either way: the visual path through `media` equals vision_x
    assert.ok(Math.abs(off.loop.metrics[0]!.losses.docs! - ms[0]!.losses.docs!) < 1e-4);
    // every block's write: also falls
    const all = trainFlamingo(resolveTrainConfig(deepMerge(small, { stages: stages(5, 'all') })), { outDir: tmp(), tokenizer: tok, sources, progress: false });
    assertFalls(all.loop.metrics.map((m) => m.losses['docs/similarity']! + m.losses['pairs/similarity']!), 0.7, 'similarity (all blocks)');
    assert.throws(() => resolveTrainConfig(deepMerge(small, { stages: stages(-1) })), /stages\.flamingo\.feature_similarity must be a number/);
    assert.throws(() => resolveTrainConfig(deepMerge(small, { stages: stages(1, 'last') })), /feature_similarity_layers must be 'first' or 'all'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a whole run writes a loadable model dir with tokenizer.json; config errors name the field', () => {
  const dir = tmp();
  try {
    const short = (extra: object) => ({ steps: 3, checkpoint_every: 2, optim: optim(1e-3), ...extra });
    const cfg = config({
      contrastive: short({ datasets: [{ name: 'pairs', source: { type: 'synthetic-pairs', world }, batch_size: 4, max_tokens: 24 }] }),
      lm: short({ datasets: [{ name: 'text', source: { type: 'synthetic-text', world }, batch_size: 2, max_tokens: 32 }] }),
      flamingo: short({ datasets: [{ name: 'docs', source: { type: 'synthetic-documents', world }, batch_size: 2, max_images: 2, max_tokens: 48 }] }),
    });
    const r = trainFromConfig(cfg, { outDir: dir, progress: false, log: () => {} });
    assert.deepEqual(Object.keys(r.stages).sort(), ['contrastive', 'flamingo', 'lm']);
    const model = loadFlamingo(r.modelDir);
    const tok = BpeTokenizer.fromHuggingFace(readFileSync(join(r.modelDir, 'tokenizer.json'), 'utf8'));
    assert.equal(model.config.lm.vocab_size, tok.vocabSize);
    assert.equal(model.config.flamingo.media_token_id, tok.imageTokenId);
    // vision encoder = contrastive output, LM = lm output (frozen in stage c)
    const vision = loadWeights(join(dir, 'contrastive', 'vision.safetensors'));
    assert.deepEqual(Array.from(model.vision_encoder.proj.f32), Array.from(vision.get('proj')!.data));
    const lm = loadWeights(join(dir, 'lm', 'lm.safetensors'));
    const q = [...lm.keys()].find((k) => k.includes('q_proj'))!;
    assert.deepEqual(Array.from(model.lang_encoder.lm.stateDict().get(q)!.f32), Array.from(lm.get(q)!.data));
    assert.equal(new MetricsLog(join(dir, 'flamingo', 'metrics.jsonl')).read().length, 3);
    // a second run into the same directory without --resume is refused
    assert.throws(() => trainFromConfig(cfg, { outDir: dir, progress: false, log: () => {} }), /--resume/);
    // a later run can train only stage (c), reusing this run's tokenizer and components
    const only = resolveTrainConfig(deepMerge(small, {
      tokenizer: { path: join(dir, 'tokenizer.json') },
      stages: {
        contrastive: { enabled: false },
        lm: { enabled: false },
        flamingo: short({ vision_weights: join(dir, 'contrastive', 'vision.safetensors'), lm_weights: join(dir, 'lm', 'lm.safetensors'), datasets: [{ name: 'docs', source: { type: 'synthetic-documents', world }, batch_size: 2, max_images: 2, max_tokens: 48 }] }),
      },
    }));
    const r2 = trainFromConfig(only, { outDir: join(dir, 'again'), progress: false, log: () => {} });
    assert.deepEqual(Object.keys(r2.stages), ['flamingo']);
    assert.deepEqual(Array.from(r2.model.vision_encoder.proj.f32), Array.from(vision.get('proj')!.data));
    assert.deepEqual(Array.from(r2.model.lang_encoder.lm.stateDict().get(q)!.f32), Array.from(lm.get(q)!.data));
    assert.equal(r2.tokenizer.vocabSize, tok.vocabSize);
    // init_weights: stage (c) starts its trainable parameters from the first run's model; the frozen parts stay this run's
    const firstWeights = join(r.modelDir, 'weights.safetensors');
    const fresh = buildFlamingo(only, tok, vision, lm);
    initTrainable(fresh, firstWeights);
    const trained = new Map(model.namedParameters());
    const own = fresh.trainableParameters();
    assert.ok(own.some(([n]) => n.startsWith('perceiver.')) && own.some(([n]) => n.includes('gated_cross_attn')));
    for (const [n, t] of own) assert.deepEqual(Array.from(t.f32), Array.from(trained.get(n)!.f32), n);
    assert.deepEqual(Array.from(fresh.vision_encoder.proj.f32), Array.from(vision.get('proj')!.data));
    const phased = resolveTrainConfig(deepMerge(only, { stages: { flamingo: { init_weights: firstWeights } } }));
    const r3 = trainFromConfig(phased, { outDir: join(dir, 'phase2'), progress: false, log: () => {} });
    assert.equal(r3.stages.flamingo!.steps, 3);
    assert.notEqual(configHash(phased, 'flamingo'), configHash(only, 'flamingo'));
    // stage (c) disabled with init_weights: the model keeps that file's resampler and gated blocks
    const kept = trainFromConfig(resolveTrainConfig(deepMerge(phased, { stages: { flamingo: { enabled: false } } })), { outDir: join(dir, 'kept'), progress: false, log: () => {} });
    const keptParams = new Map(kept.model.namedParameters());
    for (const [n] of own) assert.deepEqual(Array.from(keptParams.get(n)!.f32), Array.from(trained.get(n)!.f32), n);
    assert.throws(() => initTrainable(buildFlamingo(only, tok, vision, lm), join(dir, 'nope.safetensors')), /init_weights: no such file .*nope/);
    assert.throws(() => initTrainable(buildFlamingo(only, tok, vision, lm), join(dir, 'lm', 'lm.safetensors')), /does not fit this model: missing \d+ trainable tensor\(s\): perceiver\./);
    assert.throws(() => resolveTrainConfig(deepMerge(only, { stages: { flamingo: { init_weights: 3 } } })), /stages\.flamingo\.init_weights must be a file path/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => config({ lm: { steps: 0 } }), (e: unknown) => e instanceof ConfigError && /stages\.lm\.steps/.test((e as Error).message));
  assert.throws(() => resolveTrainConfig({ stagez: {} }), /stagez/);
  assert.throws(() => config({ flamingo: { lm_weights: 'x.safetensors' } }), /lm_weights.*only used when stages\.lm is disabled/);
  assert.throws(() => config({ flamingo: { datasets: [{ name: 'a', source: { type: 'synthetic-pairs' }, batch_size: -1 }] } }), /datasets\[0\]\.batch_size/);
  // logging cadence does not change the hash; anything that changes results does
  const base = config({});
  assert.equal(configHash(base, 'lm'), configHash(config({ lm: { log_every: 3, checkpoint_every: 7 } }), 'lm'));
  assert.notEqual(configHash(base, 'lm'), configHash(config({ lm: { steps: 99 } }), 'lm'));
  assert.notEqual(configHash(base, 'flamingo'), configHash(config({ contrastive: { steps: 99 } }), 'flamingo'));
  // the LM reads no ViT weights, so a longer contrastive run keeps a finished LM stage
  assert.equal(configHash(base, 'lm'), configHash(config({ contrastive: { steps: 99 } }), 'lm'));
  assert.notEqual(configHash(base, 'flamingo'), configHash(config({ lm: { steps: 99 } }), 'flamingo'));
});

test('flamingo train CLI: usage errors exit 2, bad configs are reported', async () => {
  const { main } = await import('../src/cli/main.ts');
  const { capture } = await import('./eval-helpers.ts');
  const run = (a: string[]): Promise<number> => main(['train', ...a]);
  for (const [args, code, msg] of [
    [[], 2, /missing the config file/], [['cfg.json'], 2, /missing --out/], [['cfg.json', '--out', 'x', '--bogus'], 2, /Unknown option '--bogus'/],
    [['/nonexistent/cfg.json', '--out', 'x'], 1, /cannot read \/nonexistent\/cfg\.json/],
  ] as const) {
    const r = await capture(run, [...args]);
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr, msg);
  }
  const dir = tmp();
  try {
    const f = join(dir, 'bad.json');
    writeFileSync(f, JSON.stringify({ stages: { lm: { optim: { schedule: 'linear' } } } }));
    const r = await capture(run, [f, '--out', join(dir, 'out')]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /stages\.lm\.optim\.schedule/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every configs/*.json is a valid training config', async () => {
  const { readdirSync } = await import('node:fs');
  const dir = join(import.meta.dirname, '..', 'configs');
  // ablations.json is an ablation file (test/ablation-run.test.ts validates it and every variant's training config)
  const files = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'ablations.json');
  assert.ok(files.includes('smoke.json'));
  for (const f of files) {
    const c = resolveTrainConfig(JSON.parse(readFileSync(join(dir, f), 'utf8')));
    for (const s of ['contrastive', 'lm', 'flamingo'] as const) assert.ok(c.stages[s].steps > 0, `${f}: ${s}`);
  }
});

test('progress bar: \\r redraw on a terminal, periodic lines otherwise, ETA from the rate', async () => {
  const { ProgressBar, formatDuration, formatRate } = await import('../src/io/progress.ts');
  const sink = (tty: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY: tty, write: (s: string) => (out.push(s), true) } as unknown as NodeJS.WritableStream };
  };
  const t = sink(true);
  const bar = new ProgressBar('lm', 4, { stream: t.stream });
  for (let i = 1; i <= 4; i++) bar.update(i, `loss ${(2 / i).toFixed(4)} | ${formatRate(1500)} tok/s ${formatRate(20)} img/s`);
  bar.done();
  assert.equal(t.out.length, 5);
  assert.ok(t.out.slice(0, 4).every((l) => l.startsWith('\r') && !l.includes('\n')));
  assert.match(t.out[3]!, /lm 4\/4 \[#{20}\] loss 0\.5000 \| 1\.5k tok\/s 20\.0 img\/s \| .* ETA 0:00/);
  const p = sink(false);
  const bar2 = new ProgressBar('lm', 25, { stream: p.stream, every: 10 });
  for (let i = 1; i <= 25; i++) bar2.update(i, 'loss 1');
  assert.deepEqual(p.out.map((l) => /(\d+)\/25/.exec(l)![1]), ['10', '20', '25']);
  assert.ok(p.out.every((l) => l.endsWith('\n') && !l.includes('img/s')));
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(65), '1:05');
  assert.equal(formatDuration(NaN), '--:--');
});

test('strict configs: a typo in any section of a training or model config is an error naming its path', async () => {
  const { resolveTrainConfig } = await import('../src/train/config.ts');
  const { validateFlamingoConfig } = await import('../src/model/config.ts');
  const train: [unknown, string][] = [
    [{ sede: 1 }, 'sede'],
    [{ tokenizer: { vocab_sise: 300 } }, 'tokenizer.vocab_sise'],
    [{ tokenizer: { corpus: [{ source: { type: 'synthetic-text' }, doc: 3 }] } }, 'tokenizer.corpus[0].doc'],
    [{ model: { vision: { widht: 64 } } }, 'model.vision.widht'],
    [{ model: { text_encoder: { layer: 2 } } }, 'model.text_encoder.layer'],
    [{ model: { lm: { vocab_size: 100 } } }, 'model.lm.vocab_size'],
    [{ model: { resampler: { num_latent: 8 } } }, 'model.resampler.num_latent'],
    [{ model: { xattn: { dim_visual: 64 } } }, 'model.xattn.dim_visual'],
    [{ model: { cross_attn_every: 2 } }, 'model.cross_attn_every'],
    [{ stages: { contrastive: { step: 3 } } }, 'stages.contrastive.step'],
    [{ stages: { flamingo: { optim: { lr_sheduler: 'cosine' } } } }, 'stages.flamingo.optim.lr_sheduler'],
    [{ stages: { lm: { datasets: [{ name: 'a', source: { type: 'synthetic-text' }, batchsize: 2 }] } } }, 'stages.lm.datasets[0].batchsize'],
    [{ stages: { lm: { train_embeddings: true } } }, 'stages.lm.train_embeddings'],
    // a source's keys depend on its type: `labels` belongs to synthetic-pairs, not to fashion-pairs
    [{ stages: { flamingo: { datasets: [{ name: 'b', source: { type: 'fashion-binding', name: 'training' } }] } } }, 'stages.flamingo.datasets[0].source.name'],
    [{ stages: { flamingo: { datasets: [{ name: 'p', source: { type: 'fashion-pairs', labels: 'varied' } }] } } }, 'stages.flamingo.datasets[0].source.labels'],
    [{ stages: { lm: { datasets: [{ name: 'v', source: { type: 'text-binding', vector_noize: 0.9 } }] } } }, 'stages.lm.datasets[0].source.vector_noize'],
    [{ tokenizer: { corpus: [{ source: { type: 'synthetic-text', knd: 'qa' }, docs: 3 }] } }, 'tokenizer.corpus[0].source.knd'],
  ];
  for (const [raw, path] of train) {
    assert.throws(() => resolveTrainConfig(raw), (e: unknown) => e instanceof Error && e.message.includes(`${path}: unknown key`), path);
  }
  const { sourceFromSpec } = await import('../src/data/datasets/spec.ts');
  assert.throws(() => resolveTrainConfig({ stages: { lm: { datasets: [{ name: 'a', source: { type: 'custom', path: 'x' } }] } } }), /stages\.lm\.datasets\[0\]\.source: a custom source takes no keys besides "type"/);
  assert.throws(() => sourceFromSpec('c', { type: 'custom' } as never), /unknown source type "custom"/);
  assert.throws(() => resolveTrainConfig({ stages: { lm: { datasets: [{ name: 'a', source: { type: 'synthetic-txt' } }] } } }), /stages\.lm\.datasets\[0\]\.source\.type: unknown source type "synthetic-txt"/);
  assert.throws(() => sourceFromSpec('pairs', { type: 'synthetic-pairs', label: 'varied' } as never), /pairs.*source\.label: unknown key for a synthetic-pairs source/);
  // every training config the repository ships passes (configs/ablations.json is an ablation file, not one)
  const shipped = readdirSync(join(import.meta.dirname, '..', 'configs')).filter((n) => n.endsWith('.json') && n !== 'ablations.json');
  assert.ok(shipped.includes('bundled-copying.json'));
  for (const f of shipped) resolveTrainConfig(JSON.parse(readFileSync(join(import.meta.dirname, '..', 'configs', f), 'utf8')));
  const model = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'models', 'flamingo-fmnist', 'config.json'), 'utf8'));
  validateFlamingoConfig(model);
  for (const [section, key] of [['vision', 'patchsize'], ['resampler', 'latents'], ['xattn', 'gate'], ['lm', 'rope_thetta'], ['flamingo', 'media_token']] as const) {
    const bad = structuredClone(model);
    bad[section][key] = 1;
    assert.throws(() => validateFlamingoConfig(bad), new RegExp(`${section}\\.${key}: unknown key`));
  }
  assert.throws(() => validateFlamingoConfig({ ...model, generation: {} }), /^ConfigError: generation: unknown key|generation: unknown key/);
});
