/**
 * Opt-in recording of what the gated cross-attention blocks do (per-media attention weights, gate
 * values, strength) during forward passes and generation.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Tensor, intTensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { Flamingo, FlamingoInputError } from '../src/model/flamingo.ts';
import { generate, type TokenEvent } from '../src/model/generate.ts';
import { mediaAttentionWeights, mediaMask, textTime, type XAttnTrace } from '../src/model/gated-xattn.ts';
import { EOC, IMG, TINY, pixels } from './helpers/tiny-flamingo.ts';

function model(onlyImmediate: boolean, seed = 1): Flamingo {
  const m = new Flamingo({ ...TINY, xattn: { ...TINY.xattn, only_attend_immediate_media: onlyImmediate } }, seed);
  let v = 0.5;
  for (const g of m.lang_encoder.gated.values()) { g.attn_gate!.f32[0] = v; g.ff_gate!.f32[0] = -v; v += 0.3; }
  return m;
}

const near = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol;

describe('per-media attention weights', () => {
  for (const onlyImmediate of [true, false]) {
    test(`equal the engine's attention applied to media-indicator values (only_immediate=${onlyImmediate})`, () => {
      const rng = new Rng(4);
      const [B, H, L, D, T, n] = [2, 3, 5, 4, 3, 2];
      const q = E.zeros([B, H, L, D]);
      const k = E.zeros([B, H, T * n, D]);
      rng.fillNormal(q.f32);
      rng.fillNormal(k.f32);
      const loc = Int32Array.from([0, 1, 0, 1, 0, 1, 0, 0, 1, 1]);
      const tt = textTime(loc, B, L, false);
      const mask = mediaMask(tt, B, L, T, n, onlyImmediate);
      const w = mediaAttentionWeights(q, k, mask, T, n, 0.5, !onlyImmediate);
      // v[b, h, j, m] = 1 when key j belongs to media m: the attention output is the mass per media.
      const v = E.zeros([B, H, T * n, T]);
      for (let bh = 0; bh < B * H; bh++) for (let j = 0; j < T * n; j++) v.f32[(bh * T * n + j) * T + Math.floor(j / n)] = 1;
      const o = E.attention(q, k, v, { mask, scale: 0.5, uniformIfFullyMasked: !onlyImmediate }).f32;
      for (let b = 0; b < B; b++) for (let t = 0; t < L; t++) for (let m = 0; m < T; m++) {
        let mean = 0;
        for (let h = 0; h < H; h++) mean += o[((b * H + h) * L + t) * T + m]! / H;
        assert.ok(near(w[(b * L + t) * T + m]!, mean), `b${b} t${t} m${m}: ${w[(b * L + t) * T + m]} vs ${mean}`);
      }
    });
  }
});

describe('recording during forward and generation', () => {
  const prompt = () => ({ inputIds: intTensor([5, IMG, 4, 6, EOC, IMG, 7, 8], [1, 8]), visionX: pixels(new Rng(10), 1, 2) });

  test('image-causal masking shows in the recorded weights; gates are tanh(α)', () => {
    const m = model(true);
    const out = generate(m, prompt(), { maxNewTokens: 3, stopAtEoc: false, recordAttention: true });
    const a = out.attention!;
    assert.deepEqual(a.layers, [0, 1]);
    const gates = [...m.lang_encoder.gated.values()];
    a.attnGates.forEach((g, i) => assert.ok(near(g, Math.tanh(gates[i]!.attn_gate!.f32[0]!))));
    a.ffGates.forEach((g, i) => assert.ok(near(g, Math.tanh(gates[i]!.ff_gate!.f32[0]!))));
    assert.equal(a.media, 2);
    const p = a.prompt[0]!;
    assert.equal(p.length, 8);
    for (const layer of [0, 1]) {
      assert.deepEqual(p[0]!.weights[layer], [0, 0], 'before any image nothing is seen');
      assert.equal(p[0]!.strength[layer], 0);
      for (const t of [1, 2, 3, 4]) { assert.ok(near(p[t]!.weights[layer]![0]!, 1)); assert.equal(p[t]!.weights[layer]![1], 0); }
      for (const t of [5, 6, 7]) { assert.equal(p[t]!.weights[layer]![0], 0); assert.ok(near(p[t]!.weights[layer]![1]!, 1)); }
    }
    assert.equal(a.generated[0]!.length, 3);
    // The first token is chosen from the last prompt position's logits.
    assert.deepEqual(a.generated[0]![0], p[7]);
    for (const g of a.generated[0]!) for (const layer of [0, 1]) assert.ok(near(g.weights[layer]![1]!, 1), 'generated tokens attend to the last image');
  });

  test('with all previous media visible the weights spread over both images and sum to 1', () => {
    const out = generate(model(false), prompt(), { maxNewTokens: 3, stopAtEoc: false, recordAttention: true });
    for (const g of out.attention!.generated[0]!) {
      for (const w of g.weights) {
        assert.ok(near(w[0]! + w[1]!, 1));
        assert.ok(w[0]! > 0 && w[1]! > 0);
      }
    }
  });

  test('strength is ‖tanh(α_attn)·xattn(x)‖ / ‖x‖ at the gated block', () => {
    const m = model(true);
    for (const g of m.lang_encoder.gated.values()) g.ff_gate!.f32[0] = 0; // block output − input = gated attention alone
    const taps = new Map<number, { input: Tensor; output: Tensor }>();
    const traces: XAttnTrace[] = [];
    const p = prompt();
    m.forward({ ...p, onGated: (layer, input, output) => taps.set(layer, { input, output }), onXAttn: (t) => traces.push(t) });
    assert.equal(traces.length, 2);
    for (const tr of traces) {
      const { input, output } = taps.get(tr.layer)!;
      const dim = 24;
      for (let t = 0; t < 8; t++) {
        let nd = 0;
        let nx = 0;
        for (let d = 0; d < dim; d++) { nd += (output.f32[t * dim + d]! - input.f32[t * dim + d]!) ** 2; nx += input.f32[t * dim + d]! ** 2; }
        assert.ok(near(tr.strength[t]!, Math.sqrt(nd / nx), 1e-4), `layer ${tr.layer} position ${t}`);
      }
    }
  });

  test('recording changes nothing in the output, and off means no trace', () => {
    const m = model(true);
    const plain = generate(m, prompt(), { maxNewTokens: 4, stopAtEoc: false, strategy: 'sample', temperature: 1.3, seed: 2 });
    const rec = generate(m, prompt(), { maxNewTokens: 4, stopAtEoc: false, strategy: 'sample', temperature: 1.3, seed: 2, recordAttention: true });
    assert.deepEqual(rec.generated, plain.generated);
    assert.equal(plain.attention, undefined);
    let calls = 0;
    m.forward({ ...prompt() });
    m.forward({ ...prompt(), onXAttn: () => { calls++; } });
    assert.equal(calls, 2, 'one trace per gated block');
  });

  test('onToken streams every token in order with its attention (batch of 2)', () => {
    const m = model(true);
    const events: TokenEvent[] = [];
    const out = generate(m, { inputIds: intTensor([IMG, 4, 5, IMG, 6, 7], [2, 3]), visionX: pixels(new Rng(3), 2, 1) }, {
      maxNewTokens: 4, stopAtEoc: false, recordAttention: true, onToken: (e) => events.push(e),
    });
    for (const row of [0, 1]) {
      const mine = events.filter((e) => e.row === row);
      assert.deepEqual(mine.map((e) => e.token), out.generated[row]);
      assert.deepEqual(mine.map((e) => e.step), out.generated[row]!.map((_, i) => i));
      assert.deepEqual(mine.map((e) => e.attention), out.attention!.generated[row]);
    }
  });

  test('clear errors: beam search, prompts without images', () => {
    const m = model(true);
    assert.throws(() => generate(m, prompt(), { maxNewTokens: 2, numBeams: 2, recordAttention: true }), FlamingoInputError);
    assert.throws(() => generate(m, { inputIds: intTensor([4, 5, 6], [1, 3]) }, { maxNewTokens: 2, recordAttention: true }), /no images/);
  });
});
