/**
 * The Flamingo model: parity with the reference fixtures (on both kernel sets, and with the alias
 * names real OpenFlamingo checkpoints use), the paper's invariants (tanh(0) gates leave the LM
 * unchanged, image-causal masking), KV-cache equivalence, left-padding invariance, generation and
 * scoring, input validation and checkpoint round trips.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, cpSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from '../src/engine/index.ts';
import { Tensor, intTensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { Flamingo, FlamingoInputError } from '../src/model/flamingo.ts';
import { generate } from '../src/model/generate.ts';
import { scoreContinuations } from '../src/model/score.ts';
import { GatedCrossAttentionBlock, textTime } from '../src/model/gated-xattn.ts';
import { runParityCase } from '../src/io/parity.ts';
import { readSafetensors } from '../src/io/safetensors-read.ts';
import { writeSafetensors } from '../src/io/safetensors-write.ts';
import { saveFlamingo, loadFlamingo, CheckpointError, loadFlamingoWeights } from '../src/io/checkpoint.ts';
import { EOC, IMG, TINY, openGates, pixels } from './helpers/tiny-flamingo.ts';
import { parityCaseTests } from './helpers/parity.ts';

const PARITY = new URL('./fixtures/shared/parity/', import.meta.url).pathname;


describe('parity with the reference fixtures', () => {
  parityCaseTests(PARITY, 7);

  test('OpenFlamingo alias names (FlamingoLayer duplicates) load to the same result', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-alias-'));
    cpSync(join(PARITY, 'flamingo_logits'), dir, { recursive: true });
    const f = readSafetensors(join(dir, 'weights.safetensors'));
    const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const e of f.entries()) {
      const data = f.float32(e.name).slice();
      let m = /^lang_encoder\.gated_cross_attn_layers\.(\d+)\.(.*)$/.exec(e.name);
      if (m) { out[`lang_encoder.model.layers.${m[1]}.gated_cross_attn_layer.${m[2]}`] = { dtype: 'F32', shape: e.shape, data }; continue; }
      m = /^lang_encoder\.model\.layers\.(\d+)\.(.*)$/.exec(e.name);
      if (m) {
        // real checkpoints hold the decoder block twice: under decoder_layer and old_decoder_blocks
        out[`lang_encoder.model.layers.${m[1]}.decoder_layer.${m[2]}`] = { dtype: 'F32', shape: e.shape, data };
        out[`lang_encoder.old_decoder_blocks.${m[1]}.${m[2]}`] = { dtype: 'F32', shape: e.shape, data };
        continue;
      }
      out[e.name] = { dtype: 'F32', shape: e.shape, data };
    }
    writeSafetensors(join(dir, 'weights.safetensors'), out);
    const r = runParityCase(dir);
    assert.ok(r.pass, r.error ?? JSON.stringify(r.outputs));
  });

  test('a wrong expected value fails the case (the check can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-bad-'));
    cpSync(join(PARITY, 'resampler_image'), dir, { recursive: true });
    const f = readSafetensors(join(dir, 'expected.safetensors'));
    const o = f.float32('output').slice();
    o[5]! += 0.01;
    writeSafetensors(join(dir, 'expected.safetensors'), { output: { dtype: 'F32', shape: f.shape('output'), data: o } });
    const r = runParityCase(dir);
    assert.equal(r.pass, false);
    assert.ok(r.maxAbsError > 0.009);
  });
});

describe('paper invariants', () => {
  test('gates at tanh(0) = 0 leave the frozen LM unchanged, with or without images', () => {
    const m = new Flamingo(TINY, 1);
    const ids = intTensor([5, IMG, 7, 8, IMG, 9, EOC], [1, 7]);
    const withImages = m.forward({ inputIds: ids, visionX: pixels(new Rng(2), 1, 2) }).f32;
    const textOnly = m.forward({ inputIds: ids }).f32;
    assert.deepEqual([...withImages], [...textOnly]);
    openGates(m);
    const opened = m.forward({ inputIds: ids, visionX: pixels(new Rng(2), 1, 2) }).f32;
    assert.ok(opened.some((v, i) => Math.abs(v - textOnly[i]!) > 1e-4), 'opening the gates must let images change the logits');
  });

  test('image-causal masking: text attends only to the most recent preceding image', () => {
    const rng = new Rng(3);
    const cfg = { ...TINY.xattn };
    const block = new GatedCrossAttentionBlock(cfg, rng);
    block.attn_gate!.f32[0] = 1;
    block.ff_gate!.f32[0] = 0;
    const x = E.zeros([1, 6, 24]);
    rng.fillNormal(x.f32);
    const loc = Int32Array.from([0, 1, 0, 0, 1, 0]); // text, img1, text, text, img2, text
    const tt = textTime(loc, 1, 6, false);
    assert.deepEqual([...tt], [0, 1, 1, 1, 2, 2]);
    const media = E.zeros([1, 2, 4, 16]);
    rng.fillNormal(media.f32);
    const y1 = block.forward(x, media, tt).f32;
    const media2 = new Tensor(media.f32.slice(), media.shape);
    for (let i = 0; i < 4 * 16; i++) media2.f32[i]! += 1; // change image 1 only
    const y2 = block.forward(x, media2, tt).f32;
    const D = 24;
    const changed = (t: number) => y1.subarray(t * D, (t + 1) * D).some((v, j) => Math.abs(v - y2[t * D + j]!) > 1e-6);
    assert.equal(changed(0), false, 'before any image: no visual input');
    assert.ok(changed(1) && changed(2) && changed(3), 'positions after image 1 see image 1');
    assert.equal(changed(4), false, 'after image 2: image 1 is not visible');
    assert.equal(changed(5), false);
    // before any image the attention output is exactly zero: y = x there
    assert.deepEqual([...y1.subarray(0, D)], [...x.f32.subarray(0, D)]);
  });

  test('frozen by default: only resampler, gated blocks and input embeddings are trainable', () => {
    const m = new Flamingo(TINY, 1);
    const names = m.trainableParameters().map(([n]) => n);
    assert.ok(names.every((n) => n.startsWith('perceiver.') || n.startsWith('lang_encoder.gated_cross_attn_layers.') || n === 'lang_encoder.model.embed_tokens.weight'));
    assert.ok(names.includes('lang_encoder.model.embed_tokens.weight'));
    assert.ok(!names.some((n) => n.startsWith('vision_encoder.')));
    // a training step leaves no gradient on frozen weights
    openGates(m);
    const ids = intTensor([IMG, 5, 6, 7, EOC, 3], [1, 6]);
    const logits = m.forward({ inputIds: ids, visionX: pixels(new Rng(4), 1, 1) });
    E.backward(E.crossEntropy(E.reshape(logits, [6, 40]), intTensor([5, 6, 7, EOC, 3, -100])));
    for (const [n, p] of m.namedParameters()) {
      if (p.requiresGrad) assert.ok(p.grad, `${n} should have a gradient`);
      else assert.equal(p.grad, null, `${n} is frozen and must have no gradient`);
    }
  });
});

describe('vision tokens', () => {
  test('tokens_include_cls puts ln_post(class token) first, before the same patch tokens; pooled = tokens[0]·proj', () => {
    const withCls = new Flamingo({ ...TINY, vision: { ...TINY.vision, tokens_include_cls: true } }, 1);
    const plain = new Flamingo(TINY, 1);
    const px = E.reshape(pixels(new Rng(8), 2, 1), [2, 3, 16, 16]);
    const a = withCls.vision_encoder.forward(px);
    const b = plain.vision_encoder.forward(px);
    const P = (16 / 8) ** 2;
    assert.deepEqual(a.tokens.shape, [2, P + 1, 16]);
    assert.deepEqual(b.tokens.shape, [2, P, 16]);
    assert.deepEqual([...E.slice(a.tokens, 1, 1, P + 1).f32], [...b.tokens.f32]);
    const pooled = E.matmul(E.reshape(E.slice(a.tokens, 1, 0, 1), [2, 16]), withCls.vision_encoder.proj);
    for (let i = 0; i < pooled.f32.length; i++) assert.ok(Math.abs(pooled.f32[i]! - a.pooled.f32[i]!) < 1e-5);
    // the resampler takes any number of tokens: the visual features change, their shape does not
    const va = withCls.encodeVision(pixels(new Rng(8), 2, 1));
    const vb = plain.encodeVision(pixels(new Rng(8), 2, 1));
    assert.deepEqual(va.shape, vb.shape);
    assert.ok(va.f32.some((x, i) => Math.abs(x - vb.f32[i]!) > 1e-6), 'the class token reaches the resampler');
    // encodeVisionWithPooled: the same visual tokens, plus the ViT's pooled embedding of every frame
    const both = withCls.encodeVisionWithPooled(pixels(new Rng(8), 2, 1));
    assert.deepEqual([...both.media.f32], [...va.f32]);
    assert.deepEqual([...both.pooled.f32], [...a.pooled.f32]);
  });
});

describe('inference', () => {
  test('KV-cached decoding reproduces the full forward logits', () => {
    const m = new Flamingo(TINY, 5);
    openGates(m);
    const px = pixels(new Rng(6), 2, 2);
    const full = [[0, 0, IMG, 4, 5, IMG, 6, 7, 8, 9], [IMG, 3, 4, 5, 6, IMG, 7, 8, 10, 11]];
    const mask = [[0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]];
    const media = m.encodeVision(px);
    const ref = m.forward({ inputIds: intTensor(full.flat(), [2, 10]), attentionMask: intTensor(mask.flat(), [2, 10]), media }).f32;
    const state = m.newState(2);
    const P = 7;
    const a = m.forward({ inputIds: intTensor(full.flatMap((r) => r.slice(0, P)), [2, P]), attentionMask: intTensor(mask.flatMap((r) => r.slice(0, P)), [2, P]), media, state }).f32;
    const V = 40;
    const near = (x: number, y: number) => Math.abs(x - y) < 1e-4;
    for (let b = 0; b < 2; b++) for (let t = 0; t < P; t++) for (let j = 0; j < V; j++) {
      if (mask[b]![t]) assert.ok(near(a[(b * P + t) * V + j]!, ref[(b * 10 + t) * V + j]!));
    }
    for (let t = P; t < 10; t++) {
      const step = m.forward({ inputIds: intTensor([full[0]![t]!, full[1]![t]!], [2, 1]), state, useCachedMedia: true }).f32;
      for (let b = 0; b < 2; b++) for (let j = 0; j < V; j++) assert.ok(near(step[b * V + j]!, ref[(b * 10 + t) * V + j]!), `step ${t} row ${b}`);
    }
  });

  test('left padding does not change the logits of real tokens', () => {
    const m = new Flamingo(TINY, 7);
    openGates(m);
    const px = pixels(new Rng(8), 1, 1);
    const a = m.forward({ inputIds: intTensor([IMG, 4, 5, 6], [1, 4]), visionX: px }).f32;
    const b = m.forward({ inputIds: intTensor([0, 0, 0, IMG, 4, 5, 6], [1, 7]), attentionMask: intTensor([0, 0, 0, 1, 1, 1, 1], [1, 7]), visionX: px }).f32;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[3 * 40 + i]!) < 1e-4);
    assert.ok(b.every(Number.isFinite), 'padded positions stay finite');
  });

  test('greedy, beam search and sampling; beam search finds at least as likely a sequence', () => {
    const m = new Flamingo(TINY, 9);
    openGates(m);
    const prompt = { inputIds: intTensor([IMG, 4, 5, 6, EOC, IMG, 7], [1, 7]), visionX: pixels(new Rng(10), 1, 2) };
    const greedy = generate(m, prompt, { maxNewTokens: 5, stopAtEoc: false });
    assert.equal(greedy.generated[0]!.length, 5);
    const beam1 = generate(m, prompt, { maxNewTokens: 5, strategy: 'beam', numBeams: 1, stopAtEoc: false, lengthPenalty: 0 });
    assert.deepEqual(beam1.generated, greedy.generated, 'one beam is greedy');
    const beam = generate(m, prompt, { maxNewTokens: 5, strategy: 'beam', numBeams: 4, stopAtEoc: false, lengthPenalty: 0 });
    const lp = (toks: number[]) => scoreContinuations(m, prompt, [toks])[0]!;
    assert.ok(lp(beam.generated[0]!) >= lp(greedy.generated[0]!) - 1e-4);
    const s1 = generate(m, prompt, { maxNewTokens: 6, strategy: 'sample', temperature: 1.5, seed: 3, stopAtEoc: false });
    const s2 = generate(m, prompt, { maxNewTokens: 6, strategy: 'sample', temperature: 1.5, seed: 3, stopAtEoc: false });
    assert.deepEqual(s1.generated, s2.generated, 'sampling is deterministic per seed');
    const k1 = generate(m, prompt, { maxNewTokens: 4, strategy: 'sample', topK: 1, seed: 5, stopAtEoc: false });
    assert.deepEqual(k1.generated[0], greedy.generated[0]!.slice(0, 4), 'top-k = 1 is greedy');
  });

  test('generation stops at <|endofchunk|> and pads finished rows', () => {
    const m = new Flamingo(TINY, 11);
    // force <|endofchunk|> after one token: make the lm_head strongly prefer it
    const head = m.lang_encoder.lm.namedParameters().find(([n]) => n === 'lm_head.weight')![1];
    head.f32.fill(0);
    for (let j = 0; j < 24; j++) head.f32[EOC * 24 + j] = 1;
    const out = generate(m, { inputIds: intTensor([IMG, 4, 5, 0, IMG, 7], [2, 3]), visionX: pixels(new Rng(1), 2, 1) }, { maxNewTokens: 5 });
    assert.ok(out.generated.every((g) => g[g.length - 1] === EOC && g.length <= 5));
  });

  test('scoreContinuations equals the log-likelihood from one full forward', () => {
    const m = new Flamingo(TINY, 12);
    openGates(m);
    const px = pixels(new Rng(13), 1, 1);
    const prompt = [IMG, 4, 5];
    const cand = [6, 7, 8];
    const [s] = scoreContinuations(m, { inputIds: intTensor(prompt, [1, 3]), visionX: px }, [cand]);
    const logits = E.logSoftmax(m.forward({ inputIds: intTensor([...prompt, ...cand], [1, 6]), visionX: px })).f32;
    let ref = 0;
    for (let i = 0; i < 3; i++) ref += logits[(2 + i) * 40 + cand[i]!]!;
    assert.ok(Math.abs(s! - ref) < 1e-3, `${s} vs ${ref}`);
  });
});

describe('input validation (before any compute)', () => {
  const m = new Flamingo(TINY, 1);
  test('more <image> tokens than images', () => {
    assert.throws(() => m.forward({ inputIds: intTensor([IMG, 3, IMG], [1, 3]), visionX: pixels(new Rng(1), 1, 1) }), (e: unknown) => e instanceof FlamingoInputError && /row 0 has 2 <image> tokens but only 1 images/.test(e.message));
  });
  test('unknown token ids', () => {
    assert.throws(() => m.forward({ inputIds: intTensor([3, 40], [1, 2]) }), /token id 40 at row 0, position 1 is outside the vocabulary \[0, 40\)/);
  });
  test('wrong image size', () => {
    assert.throws(() => m.forward({ inputIds: intTensor([IMG], [1, 1]), visionX: E.zeros([1, 1, 1, 3, 32, 32]) }), /vision_x must be \(B, T_img, F, 3, 16, 16\)/);
  });
  test('sequence longer than the model allows', () => {
    assert.throws(() => m.forward({ inputIds: intTensor(new Array(65).fill(3), [1, 65]) }), /65 tokens is longer than the model allows \(64\)/);
    assert.throws(() => generate(m, { inputIds: intTensor(new Array(60).fill(3), [1, 60]) }, { maxNewTokens: 10 }), /exceeds the model's 64 positions/);
  });
});

describe('checkpoints', () => {
  test('save → load round trip gives identical logits', () => {
    const m = new Flamingo(TINY, 21);
    openGates(m, 0.3);
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-ckpt-'));
    saveFlamingo(m, dir);
    const m2 = loadFlamingo(dir);
    const ids = intTensor([IMG, 5, 6], [1, 3]);
    const px = pixels(new Rng(22), 1, 1);
    assert.deepEqual([...m2.forward({ inputIds: ids, visionX: px }).f32], [...m.forward({ inputIds: ids, visionX: px }).f32]);
  });

  test('missing, unexpected and mis-shaped tensors are reported together', () => {
    const m = new Flamingo(TINY, 21);
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-ckpt-bad-'));
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (const [n, t] of m.namedParameters()) tensors[n] = { dtype: 'F32', shape: [...t.shape], data: t.f32 };
    delete tensors['perceiver.latents'];
    tensors['perceiver.norm.weight'] = { dtype: 'F32', shape: [3], data: new Float32Array(3) };
    tensors['something.extra'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
    writeSafetensors(join(dir, 'w.safetensors'), tensors);
    assert.throws(() => loadFlamingoWeights(m, join(dir, 'w.safetensors')), (e: unknown) => e instanceof CheckpointError
      && /missing \(1\): perceiver\.latents/.test(e.message) && /unexpected \(1\): something\.extra/.test(e.message)
      && /shape mismatch perceiver\.norm\.weight: model \[16\], checkpoint \[3\]/.test(e.message));
  });

  test('a corrupt checkpoint file gives a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-ckpt-corrupt-'));
    writeFileSync(join(dir, 'w.safetensors'), Buffer.from([1, 2, 3]));
    assert.throws(() => loadFlamingoWeights(new Flamingo(TINY, 1), join(dir, 'w.safetensors')), /w\.safetensors/);
  });
});
