/**
 * The paper's architecture ablations as model config options (docs/ABLATIONS.md): each option changes what it
 * should (the connector, the gates, the masking, where the gated blocks sit) and nothing else, and the defaults
 * are today's model.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/engine/index.ts';
import { Tensor, intTensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import { ConfigError, validateFlamingoConfig, type FlamingoConfig } from '../src/model/config.ts';
import { PerceiverResampler } from '../src/model/resampler.ts';
import { TokenConnector, poolingMatrix } from '../src/model/connectors.ts';
import { GatedCrossAttentionBlock } from '../src/model/gated-xattn.ts';
import { modelSize } from '../src/model/size.ts';

const TINY: FlamingoConfig = {
  vision: { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 8, act: 'quick_gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
  resampler: { dim: 16, depth: 1, dim_head: 8, heads: 2, num_latents: 2, max_num_media: null, max_num_frames: null, ff_mult: 2, ln_eps: 1e-5 },
  xattn: { dim: 24, dim_visual: 16, dim_head: 8, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
  lm: { vocab_size: 40, hidden_size: 24, intermediate_size: 48, num_layers: 4, num_heads: 3, num_key_value_heads: 3, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 64 },
  flamingo: { cross_attn_every_n_layers: 1, media_token_id: 38, eoc_token_id: 39, pad_token_id: 0 },
};
const IMG = 38;

const withCfg = (patch: { resampler?: object; xattn?: object; flamingo?: object }): FlamingoConfig => ({
  ...TINY,
  resampler: { ...TINY.resampler, ...patch.resampler },
  xattn: { ...TINY.xattn, ...patch.xattn },
  flamingo: { ...TINY.flamingo, ...patch.flamingo },
});

function pixels(seed: number, T: number): Tensor {
  const t = E.zeros([1, T, 1, 3, 16, 16]);
  new Rng(seed).fillNormal(t.f32);
  return t;
}

const params = (m: Flamingo) => new Map(m.namedParameters().map(([n, t]) => [n, t]));
const maxDiff = (a: Tensor, b: Tensor) => a.f32.reduce((m, v, i) => Math.max(m, Math.abs(v - b.f32[i]!)), 0);

/** Names outside `prefixes` are the same set with the same values in both models. */
function sameOutside(a: Flamingo, b: Flamingo, prefix: RegExp): void {
  const pa = [...params(a)].filter(([n]) => !prefix.test(n));
  const pb = params(b);
  assert.deepEqual(pa.map(([n]) => n).sort(), [...pb.keys()].filter((n) => !prefix.test(n)).sort());
  for (const [n, t] of pa) assert.deepEqual(t.f32, pb.get(n)!.f32, n);
}

describe('vision-to-LM connector', () => {
  test('default and explicit perceiver are the same model; the key is not written when absent', () => {
    const a = new Flamingo(TINY, 3);
    const b = new Flamingo(withCfg({ resampler: { connector: 'perceiver' } }), 3);
    assert.ok(a.perceiver instanceof PerceiverResampler);
    assert.equal('connector' in a.config.resampler, false);
    sameOutside(a, b, /^$/);
  });

  for (const kind of ['transformer', 'mlp'] as const) {
    test(`${kind}: only perceiver.* differs; output is (B, T, n, D); text-only logits are unchanged`, () => {
      const base = new Flamingo(TINY, 3);
      const m = new Flamingo(withCfg({ resampler: { connector: kind } }), 3);
      assert.ok(m.perceiver instanceof TokenConnector);
      sameOutside(m, base, /^perceiver\./);
      const names = m.perceiver.namedParameters().map(([n]) => n);
      assert.equal(names.includes('latents'), false);
      assert.equal(names.some((n) => n.includes('attn')), kind === 'transformer');
      const media = m.encodeVision(pixels(1, 3));
      assert.deepEqual(media.shape, [1, 3, TINY.resampler.num_latents, 16]);
      const ids = intTensor([1, 2, 3, 4], [1, 4]);
      assert.deepEqual(m.forward({ inputIds: ids }).f32, base.forward({ inputIds: ids }).f32);
      // the parameter estimate follows the connector (it is a lower bound of the real count)
      assert.ok(modelSize(m.config).parts.resampler <= m.perceiver.numParameters());
    });
  }

  test('mlp works per token: a token changes only its pooling window; the transformer mixes tokens', () => {
    const S = 8;
    const x = E.zeros([1, 1, 1, S, 16]);
    new Rng(5).fillNormal(x.f32);
    const y = new Tensor(x.f32.slice(), x.shape);
    const r = new Rng(6);
    for (let d = 0; d < 16; d++) y.f32[d] = y.f32[d]! + r.normal(); // token 0 (first window of S/n = 4 tokens)
    for (const [kind, mixes] of [['mlp', false], ['transformer', true]] as const) {
      const c = new TokenConnector({ ...TINY.resampler, connector: kind }, kind, new Rng(2));
      const a = E.noGrad(() => c.forward(x));
      const b = E.noGrad(() => c.forward(y));
      const changed = (i: number) => a.f32.slice(i * 16, (i + 1) * 16).some((v, d) => Math.abs(v - b.f32[i * 16 + d]!) > 1e-6);
      assert.equal(changed(0), true, kind);
      assert.equal(changed(1), mixes, kind);
    }
  });

  test('pooling windows are those of adaptive average pooling', () => {
    const p = poolingMatrix(5, 2); // windows [0, 3) and [2, 5)
    assert.deepEqual([...p.f32].map((v) => Number(v.toFixed(4))), [0.3333, 0, 0.3333, 0, 0.3333, 0.3333, 0, 0.3333, 0, 0.3333]);
    const up = poolingMatrix(2, 4); // fewer tokens than outputs: each token is repeated
    assert.deepEqual([...up.f32], [1, 1, 0, 0, 0, 0, 1, 1]);
  });

  test('connector parameters learn', () => {
    const m = new Flamingo(withCfg({ resampler: { connector: 'transformer' } }), 3);
    for (const g of m.lang_encoder.gated.values()) { g.attn_gate!.f32[0] = 0.5; g.ff_gate!.f32[0] = 0.5; }
    const logits = m.forward({ inputIds: intTensor([IMG, 5, 6, 7], [1, 4]), visionX: pixels(1, 1) });
    E.backward(E.crossEntropy(logits, intTensor([5, 6, 7, -100], [1, 4])));
    for (const [n, t] of m.perceiver.namedParameters()) assert.ok(t.grad && t.grad.some((v) => v !== 0), n);
  });

  test('a bad connector is an error naming the field', () => {
    assert.throws(() => validateFlamingoConfig(withCfg({ resampler: { connector: 'qformer' } })), (e: Error) => e instanceof ConfigError && /resampler\.connector must be one of perceiver, transformer, mlp/.test(e.message));
  });
});

describe('gating', () => {
  const media = () => { const t = E.zeros([1, 1, 2, 16]); new Rng(9).fillNormal(t.f32); return t; };
  const x = () => { const t = E.zeros([1, 3, 24]); new Rng(8).fillNormal(t.f32); return t; };
  const tt = Int32Array.from([1, 1, 1]);

  test("'none' has no gate parameters and adds the block's residuals ungated (= tanh gates at 1)", () => {
    const ungated = new GatedCrossAttentionBlock({ ...TINY.xattn, gating: 'none' }, new Rng(4));
    const tanhBlock = new GatedCrossAttentionBlock(TINY.xattn, new Rng(4));
    assert.deepEqual(ungated.namedParameters().map(([n]) => n), tanhBlock.namedParameters().map(([n]) => n).filter((n) => !/_gate$/.test(n)));
    assert.deepEqual(ungated.gateValues(), { attn: 1, ff: 1 });
    tanhBlock.attn_gate!.f32[0] = 20; // tanh(20) = 1 in float32
    tanhBlock.ff_gate!.f32[0] = 20;
    const a = E.noGrad(() => ungated.forward(x(), media(), tt));
    const b = E.noGrad(() => tanhBlock.forward(x(), media(), tt));
    assert.ok(maxDiff(a, b) < 1e-6);
    assert.ok(maxDiff(a, x()) > 1e-3, 'the ungated block changes the LM from the start');
  });

  test('tanh with gate_init: the gates start there, everything else is the default model', () => {
    const base = new Flamingo(TINY, 3);
    const m = new Flamingo(withCfg({ xattn: { gate_init: 0.5 } }), 3);
    sameOutside(m, base, /_gate$/);
    for (const g of m.lang_encoder.gated.values()) assert.deepEqual(g.gateValues(), { attn: Math.tanh(0.5), ff: Math.tanh(0.5) });
    const ids = intTensor([IMG, 5, 6, 7], [1, 4]);
    const lmOnly = base.forward({ inputIds: ids, visionX: pixels(1, 1) });
    assert.ok(maxDiff(m.forward({ inputIds: ids, visionX: pixels(1, 1) }), lmOnly) > 1e-4);
    // the default (alpha = 0) leaves the LM unchanged at init
    assert.deepEqual(lmOnly.f32, base.forward({ inputIds: ids }).f32);
  });

  test('bad gating settings are errors naming the field', () => {
    assert.throws(() => validateFlamingoConfig(withCfg({ xattn: { gating: 'sigmoid' } })), /xattn\.gating must be 'tanh' or 'none'/);
    assert.throws(() => validateFlamingoConfig(withCfg({ xattn: { gating: 'none', gate_init: 1 } })), /xattn\.gate_init is only used with tanh gating/);
    assert.throws(() => validateFlamingoConfig(withCfg({ xattn: { gate_init: 'big' } })), /xattn\.gate_init must be a finite number/);
  });
});

describe('image-causal masking and cross-attention frequency', () => {
  test('only_attend_immediate_media: false lets a token after the second image see the first', () => {
    const ids = intTensor([IMG, 5, IMG, 6, 7], [1, 5]);
    const run = (immediate: boolean, seed: number) => {
      const m = new Flamingo(withCfg({ xattn: { only_attend_immediate_media: immediate, gate_init: 0.7 } }), 3);
      const v = pixels(1, 2);
      const w = pixels(seed, 1);
      v.f32.set(w.f32, 0); // the first image varies with `seed`, the second stays
      // what the first gated block writes (the LM's own self-attention would carry image 1 along anyway)
      let out: Tensor | null = null;
      m.forward({ inputIds: ids, visionX: v, onGated: (layer, input, output) => { if (layer === 0) out = E.sub(output, input); } });
      return out!;
    };
    const last = (t: Tensor) => t.f32.slice(4 * 24, 5 * 24);
    assert.deepEqual(last(run(true, 10)), last(run(true, 11)));
    assert.notDeepEqual(last(run(false, 10)), last(run(false, 11)));
  });

  for (const every of [2, 4]) {
    test(`cross_attn_every_n_layers ${every}: blocks before layers (i + 1) % ${every} == 0 only, nothing else differs`, () => {
      const base = new Flamingo(TINY, 3);
      const m = new Flamingo(withCfg({ flamingo: { cross_attn_every_n_layers: every } }), 3);
      assert.deepEqual([...m.lang_encoder.gated.keys()], every === 2 ? [1, 3] : [3]);
      sameOutside(m, base, /^lang_encoder\.gated_cross_attn_layers\./);
      assert.ok(modelSize(m.config).parts.xattn < modelSize(base.config).parts.xattn);
    });
  }
});
