import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, noGrad } from '../src/engine/index.ts';
import { makeImage, type RgbImage } from '../src/data/image.ts';
import { Rng } from '../src/engine/rng.ts';
import { generate } from '../src/model/generate.ts';
import { scoreContinuations } from '../src/model/score.ts';
import { MediaEncoder, MediaError } from '../src/eval/media.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import { tinyConfig } from './eval-helpers.ts';
import { leftPad, prefillSharedPrefix, rankClasses, rankClassesFrom, runTrial, selectDemos, tokenizerCodec } from '../src/eval/tasks.ts';
import { buildPrompt } from '../src/eval/prompts.ts';
import { nanMeanStd, scoreVsShotsSvg, summarizeShots } from '../src/eval/report.ts';
import type { ClassificationItem, MediaRef, VqaItem } from '../src/eval/datasets/types.ts';
import { tinyModel, tinyTokenizer } from './eval-helpers.ts';

const tok = tinyTokenizer();

function img(seed: number): RgbImage {
  const rng = new Rng(seed);
  const im = makeImage(32, 32);
  for (let i = 0; i < im.data.length; i++) im.data[i] = rng.int(256);
  return im;
}

/** Counts loads so tests can see how often each media was decoded. */
function counted(key: string, frames: RgbImage[], loads: Map<string, number>): MediaRef {
  return { key, files: [], load: () => { loads.set(key, (loads.get(key) ?? 0) + 1); return frames; } };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

for (const maxNumMedia of [null, 4]) {
  test(`media cache matches encodeVision and encodes each image once (max_num_media ${maxNumMedia})`, () => {
    const model = tinyModel(tok, 2, { maxNumMedia });
    const enc = new MediaEncoder(model);
    const loads = new Map<string, number>();
    const refs = [0, 1, 2].map((i) => counted(`k${i}`, [img(i)], loads));
    const rows = [[refs[0]!, refs[1]!, refs[2]!], [refs[2]!, refs[0]!, refs[1]!]];
    const media = enc.encode(rows);
    assert.deepEqual(media.shape, [2, 3, 4, 32]);
    const S = 32;
    const px = new Float32Array(2 * 3 * 3 * S * S);
    rows.forEach((row, b) => row.forEach((r, t) => px.set(enc.pixels(r)[0]!, (b * 3 + t) * 3 * S * S)));
    const direct = noGrad(() => model.encodeVision(new Tensor(px, [2, 3, 1, 3, S, S])));
    assert.ok(maxAbsDiff(media.f32, direct.f32) < 1e-4);
    enc.encode(rows);
    assert.equal(enc.stats.encoded, 3, 'three distinct images encoded once each');
    // 3 loads for encoding + 6 by the test's own pixels() calls
    assert.deepEqual([...loads.values()], [3, 3, 3]);
  });
}

test('video media: F frames per item go through the resampler as one media', () => {
  const model = tinyModel(tok, 2);
  const enc = new MediaEncoder(model);
  const loads = new Map<string, number>();
  const v = counted('v', [img(1), img(2), img(3)], loads);
  const media = enc.encode([[v]]);
  const px = new Float32Array(3 * 3 * 32 * 32);
  enc.pixels(v).forEach((p, f) => px.set(p, f * 3 * 32 * 32));
  const direct = noGrad(() => model.encodeVision(new Tensor(px, [1, 1, 3, 3, 32, 32])));
  assert.ok(maxAbsDiff(media.f32, direct.f32) < 1e-4);
});

test('leftPad puts padding on the left with mask 0', () => {
  const { inputIds, attentionMask } = leftPad([[5, 6, 7], [8]], 2);
  assert.deepEqual([...inputIds.i32], [5, 6, 7, 2, 2, 8]);
  assert.deepEqual([...attentionMask.i32], [1, 1, 1, 0, 0, 1]);
});

test('batched class ranking from one cached prefill equals per-prompt scoreContinuations (length-normalised)', () => {
  const model = tinyModel(tok, 6);
  const enc = new MediaEncoder(model);
  const loads = new Map<string, number>();
  const texts = ["<image>is an image with: 'so true' written on it. Is it hateful? Answer:", "<image>Output:a dog<|endofchunk|><image>is an image with: 'x' written on it. Is it hateful? Answer:"];
  const rows = texts.map((t) => tok.encode(t));
  const mediaRows = [[counted('a', [img(1)], loads)], [counted('b', [img(2)], loads), counted('c', [img(3)], loads)]];
  const classes = ['no', 'yes', ' maybe so'].map((c) => tok.encode(c));
  assert.ok(classes.some((c) => c.length > 1), 'a multi-token class exercises the cached continuation');
  const { inputIds, attentionMask } = leftPad(rows, tok.padTokenId);
  const media = enc.encode(mediaRows);
  const batched = rankClasses(model, { inputIds, attentionMask, media }, classes);
  rows.forEach((r, b) => {
    const single = enc.encode([mediaRows[b]!]);
    const ref = scoreContinuations(model, { inputIds: new Tensor(Int32Array.from(r), [1, r.length]), media: single }, classes);
    ref.forEach((s, c) => assert.ok(Math.abs(batched[b]![c]! - s / classes[c]!.length) < 1e-3, `row ${b} class ${c}: ${batched[b]![c]} vs ${s / classes[c]!.length}`));
  });
});

test('trial: results in query order and official shape; demos independent of batch size', () => {
  const model = tinyModel(tok, 7);
  const mk = (i: number): VqaItem => ({ kind: 'vqa', id: 100 + i, media: { key: `q${i}`, files: [], load: () => [img(i)] }, question: 'What color is it?', answers: ['red'] });
  const support = Array.from({ length: 6 }, (_, i) => mk(i));
  const queries = Array.from({ length: 3 }, (_, i) => mk(10 + i));
  const opts = { shots: 2, seed: 3, selection: 'random' as const, batchSize: 2, generation: { numBeams: 2, maxNewTokens: 3 } };
  assert.deepEqual(selectDemos(support, queries, opts), selectDemos(support, queries, { ...opts, batchSize: 1 }));
  const ctx = { model, codec: tokenizerCodec(tok), media: new MediaEncoder(model) };
  const out = runTrial(ctx, 'vqa', support, queries, opts);
  assert.deepEqual(out.results.map((r) => Object.keys(r)), queries.map(() => ['question_id', 'answer']));
  assert.deepEqual(out.results.map((r) => (r as { question_id: number }).question_id), [110, 111, 112]);
  assert.ok(out.itemsPerS > 0);
  const hm = (i: number): ClassificationItem => ({ kind: 'classification', id: i, media: { key: `h${i}`, files: [], load: () => [img(50 + i)] }, text: 'hi', label: (i % 2) as 0 | 1 });
  const cls = runTrial(ctx, 'classification', [0, 1, 2, 3].map(hm), [4, 5].map(hm), { ...opts, shots: 0 });
  for (const r of cls.results as { id: number; score: number }[]) assert.ok(r.score >= 0 && r.score <= 1);
});

test('report: nanmean/nanstd (ddof 0) and an SVG with one point per shot count', () => {
  assert.deepEqual(nanMeanStd([1, 3, NaN]), { mean: 2, std: 1 });
  assert.deepEqual(nanMeanStd([NaN]), { mean: null, std: null });
  const trial = (seed: number, score: number) => ({ seed, score, details: {}, resultsFile: '', items: 1, seconds: 1, itemsPerS: 1 });
  const results = [summarizeShots(0, [trial(0, 10), trial(1, 12)]), summarizeShots(4, [trial(0, 20), trial(1, 20)]), summarizeShots(8, [trial(0, 30)])];
  assert.equal(results[0]!.mean, 11);
  assert.equal(results[0]!.std, 1);
  const svg = scoreVsShotsSvg({ results, metric: 'CIDEr (x100)', dataset: 'coco', selection: 'random' });
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal((svg.match(/<circle [^>]*r="4"/g) ?? []).length, 3);
  assert.equal((svg.match(/<circle [^>]*r="2"/g) ?? []).length, 5);
  assert.match(svg, /<\/svg>\n$/);
});

test('shared demonstration prefix: one prefill of the prefix gives the same scores and generations as full prompts', () => {
  const model = tinyModel(tok, 8);
  const ctx = { model, codec: tokenizerCodec(tok), media: new MediaEncoder(model) };
  const mk = (i: number, q: string): VqaItem => ({ kind: 'vqa', id: i, media: { key: `s${i}`, files: [], load: () => [img(200 + i)] }, question: q, answers: ['red'] });
  const demos = [mk(0, 'What color is it?'), mk(1, 'Is it sunny?')];
  const queries = [mk(10, 'How many animals are there?'), mk(11, 'What is on the table?'), mk(12, 'Is it?')];
  for (const shots of [0, 2]) {
    const prompts = queries.map((q) => buildPrompt('vqa', shots, demos, q));
    const rows = prompts.map((p) => tok.encode(p.text));
    const prefix = tok.encode(prompts[0]!.text.slice(0, prompts[0]!.prefixLength));
    const nPre = prompts[0]!.media.length - 1;
    const pre = prefillSharedPrefix(ctx, prefix, prompts[0]!.media.slice(0, nPre), rows.map((r) => r.slice(prefix.length)), prompts.map((p) => p.media.slice(nPre)));
    const { inputIds, attentionMask } = leftPad(rows, tok.padTokenId);
    const media = ctx.media.encode(prompts.map((p) => p.media));
    const classes = ['no', 'yes', ' two cats'].map((c) => tok.encode(c));
    const full = rankClasses(model, { inputIds, attentionMask, media }, classes);
    const shared = rankClassesFrom(model, pre, classes);
    full.forEach((row, b) => row.forEach((v, c) => assert.ok(Math.abs(v - shared[b]![c]!) < 1e-3, `${shots} shots row ${b} class ${c}: ${v} vs ${shared[b]![c]}`)));
    const cfg = { maxNewTokens: 4, strategy: 'greedy' as const };
    const a = generate(model, { inputIds, attentionMask, media }, cfg).generated;
    const b = generate(model, { inputIds: pre.inputIds, prefilled: pre }, cfg).generated;
    assert.deepEqual(b, a);
  }
});

test('per-batch demonstrations: one draw per batch, shared by its queries, excluding their media', () => {
  const mk = (i: number): VqaItem => ({ kind: 'vqa', id: i, media: { key: `m${i}`, files: [], load: () => [img(i)] }, question: 'q?', answers: ['a'] });
  const support = Array.from({ length: 12 }, (_, i) => mk(i));
  const queries = [mk(3), mk(4), mk(5), mk(6), mk(7)];
  const d = selectDemos(support, queries, { shots: 4, seed: 1, selection: 'random', batchSize: 2, demoMode: 'per-batch' });
  assert.deepEqual(d[0], d[1]);
  assert.deepEqual(d[2], d[3]);
  assert.equal(d[4]!.length, 4);
  for (let b = 0; b < 5; b++) {
    const batch = queries.slice(b - (b % 2), b - (b % 2) + 2).map((q) => q.media.key);
    assert.ok(d[b]!.every((x) => !batch.includes(x.media.key)));
  }
  const model = tinyModel(tok, 8);
  const ctx = { model, codec: tokenizerCodec(tok), media: new MediaEncoder(model) };
  const opts = { shots: 2, seed: 1, selection: 'random' as const, batchSize: 2, demoMode: 'per-batch' as const, generation: { numBeams: 2, maxNewTokens: 3 } };
  const out = runTrial(ctx, 'vqa', support, queries, opts);
  assert.equal(out.results.length, 5);
});

test('media cache is bounded: least recently used entries are evicted and re-encoded on demand', () => {
  const model = tinyModel(tok, 2);
  const enc = new MediaEncoder(model, 2);
  const loads = new Map<string, number>();
  const [a, b, c] = ['a', 'b', 'c'].map((k, i) => counted(k, [img(i)], loads));
  enc.encode([[a!]]);
  enc.encode([[b!]]);
  enc.encode([[a!]]); // a is now the most recent
  enc.encode([[c!]]); // evicts b
  enc.encode([[a!]]);
  assert.equal(enc.stats.encoded, 3);
  enc.encode([[b!]]);
  assert.equal(enc.stats.encoded, 4);
  assert.deepEqual(Object.fromEntries(loads), { a: 1, b: 2, c: 1 });
});

test('a video with more frames than resampler.max_num_frames is a clear MediaError', () => {
  const cfg = tinyConfig(tok);
  const model = new Flamingo({ ...cfg, resampler: { ...cfg.resampler, max_num_frames: 2 } }, 1);
  const enc = new MediaEncoder(model);
  const v: MediaRef = { key: 'v', files: ['/videos/video7'], load: () => [img(1), img(2), img(3)] };
  assert.throws(() => enc.encode([[v]]), (e: Error) => e instanceof MediaError && /\/videos\/video7: 3 frames.*at most 2.*--frames/.test(e.message));
});
