/**
 * Released OpenFlamingo models: the LM families (ALiBi slope rules, KV-cache and left-padding
 * invariance, HF names, parameter counts), the real-layout parity cases on both kernel sets, the
 * three-source loader's errors for wrong or mixed-up files, and the stop_at_eoc comparison rule.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from '../src/engine/index.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Rng } from '../src/engine/rng.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import { fixedInputLogits } from './helpers/tiny-flamingo.ts';
import type { FlamingoConfig, HFLMConfig } from '../src/model/config.ts';
import { getLMFamily } from '../src/model/lm/index.ts';
import { mptAlibiSlopes } from '../src/model/lm/mpt.ts';
import { mosaicGptAlibiSlopes } from '../src/model/lm/mosaic_gpt.ts';
import { countParameters } from '../src/model/presets.ts';
import { runParityCase } from '../src/io/parity.ts';
import { loadRelease } from '../src/io/release.ts';
import { openFlamingoTokenizerInfo, type ReleaseFiles } from '../src/io/release-files.ts';
import { exportRelease } from '../src/io/release-export.ts';
import { loadFlamingo } from '../src/io/checkpoint.ts';
import { readSafetensors } from '../src/io/safetensors-read.ts';
import { writeSafetensors } from '../src/io/safetensors-write.ts';
import { parityCaseTests } from './helpers/parity.ts';

const REAL = new URL('./fixtures/shared/parity-real/', import.meta.url).pathname;
const TOKENIZERS = new URL('./fixtures/shared/tokenizers/', import.meta.url).pathname;

describe('real-layout parity cases (parity-real)', () => {
  parityCaseTests(REAL, 6);
});

describe('ALiBi slopes', () => {
  test('both rules agree for powers of two; MPT interleaves otherwise', () => {
    assert.deepEqual([...mptAlibiSlopes(8, 8)], [...mosaicGptAlibiSlopes(8, 8)]);
    assert.deepEqual([...mosaicGptAlibiSlopes(4, 8)], [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]);
    // n = 6: N = 8 slopes 2^-1 … 2^-8, odd-indexed first then even-indexed, first 6
    assert.deepEqual([...mptAlibiSlopes(6, 8)], [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
    assert.deepEqual([...mosaicGptAlibiSlopes(6, 8)].map((x) => Math.fround(x)), [1, 2, 3, 4, 5, 6].map((h) => Math.fround(2 ** (-8 * h / 6))));
  });
});

const VISION = { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 8, act: 'quick_gelu' as const, ln_eps: 1e-5, ln_post_on_tokens: true };
const RESAMPLER = { dim: 16, depth: 1, dim_head: 8, heads: 2, num_latents: 4, max_num_media: null, max_num_frames: null, ff_mult: 2, ln_eps: 1e-5 };

function tinyConfig(lm: HFLMConfig, every: number): FlamingoConfig {
  return {
    vision: VISION, resampler: RESAMPLER,
    xattn: { dim: lm.hidden_size, dim_visual: 16, dim_head: 8, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
    lm, flamingo: { cross_attn_every_n_layers: every, eoc_token_id: 37, media_token_id: 38, pad_token_id: 39 },
  };
}

const FAMILY_VARIANTS: [string, string, Record<string, unknown>][] = [
  ['mosaic_gpt', 'qk_ln, clip_qkv, biases, 3 heads, logit_scale', { model_type: 'mosaic_gpt', d_model: 24, n_heads: 3, n_layers: 3, mlp_ratio: 2, max_seq_len: 64, vocab_size: 48, alibi: true, alibi_bias_max: 8, attn_qk_ln: true, attn_clip_qkv: 0.5, no_bias: false, logit_scale: 'inv_sqrt_d_model', softmax_scale: null }],
  ['mpt', 'no bias, 6 heads (interleaved slopes), softmax_scale', { model_type: 'mpt', d_model: 24, n_heads: 6, n_layers: 4, expansion_ratio: 3, max_seq_len: 64, vocab_size: 48, no_bias: true, norm_type: 'low_precision_layernorm', learned_pos_emb: true, attn_config: { alibi: true, alibi_bias_max: 4, qk_ln: false, clip_qkv: null, softmax_scale: 0.3, attn_type: 'multihead_attention', prefix_lm: false } }],
  ['gpt_neox', 'partial rotary, parallel residual', { model_type: 'gpt_neox', hidden_size: 32, num_attention_heads: 2, num_hidden_layers: 2, intermediate_size: 40, hidden_act: 'gelu', rotary_pct: 0.25, rotary_emb_base: 10000, use_parallel_residual: true, layer_norm_eps: 1e-5, max_position_embeddings: 64, tie_word_embeddings: false, vocab_size: 48 }],
  ['gpt_neox', 'full rotary, sequential residual, tied', { model_type: 'gpt_neox', hidden_size: 24, num_attention_heads: 3, num_hidden_layers: 2, intermediate_size: 40, hidden_act: 'gelu', rotary_pct: 1.0, rotary_emb_base: 500, use_parallel_residual: false, layer_norm_eps: 1e-5, max_position_embeddings: 64, tie_word_embeddings: true, vocab_size: 40 }],
];

describe('LM families on random weights', () => {
  for (const [family, what, hf] of FAMILY_VARIANTS) {
    test(`${family} (${what}): KV cache = full forward, left padding changes nothing, analytic parameter count`, () => {
      const lm = getLMFamily(family).fromHF(hf, 'test config.json', 40) as HFLMConfig;
      const cfg = tinyConfig(lm, 2);
      const model = new Flamingo(cfg, 3);
      for (const g of model.lang_encoder.gated.values()) { g.attn_gate!.f32[0] = 0.6; g.ff_gate!.f32[0] = -0.4; }
      assert.equal(countParameters(cfg), model.numParameters());
      const rng = new Rng(11);
      const vx = E.zeros([1, 1, 1, 3, 16, 16]);
      rng.fillNormal(vx.f32);
      const media = model.encodeVision(vx);
      const ids = [5, 38, 7, 9, 11, 13];
      const full = E.noGrad(() => model.forward({ inputIds: new Tensor(Int32Array.from(ids), [1, 6]), media })).f32;
      // prefix then one token at a time through the KV cache
      const state = model.newState(1);
      E.noGrad(() => model.forward({ inputIds: new Tensor(Int32Array.from(ids.slice(0, 3)), [1, 3]), media, state }));
      const V = 40;
      for (let t = 3; t < 6; t++) {
        const step = E.noGrad(() => model.forward({ inputIds: new Tensor(Int32Array.from([ids[t]!]), [1, 1]), state })).f32;
        for (let j = 0; j < V; j++) assert.ok(Math.abs(step[j]! - full[t * V + j]!) < 1e-4, `${family} step ${t} logit ${j}: ${step[j]} vs ${full[t * V + j]}`);
      }
      // left padding with two pad tokens
      const padded = E.noGrad(() => model.forward({
        inputIds: new Tensor(Int32Array.from([39, 39, ...ids]), [1, 8]), attentionMask: new Tensor(Int32Array.from([0, 0, 1, 1, 1, 1, 1, 1]), [1, 8]), media,
      })).f32;
      for (let i = 0; i < 6 * V; i++) assert.ok(Math.abs(padded[2 * V + i]! - full[i]!) < 1e-4, `${family} padded logit ${i}`);
    });
  }

  test('HF state-dict names of each family', () => {
    const names = (family: string, hf: Record<string, unknown>): string[] =>
      new Flamingo(tinyConfig(getLMFamily(family).fromHF(hf, 'c', 40) as HFLMConfig, 2), 0, { init: false }).namedParameters().map(([n]) => n).filter((n) => n.startsWith('lang_encoder.') && !n.includes('gated'));
    const m = names('mosaic_gpt', FAMILY_VARIANTS[0]![2]);
    for (const n of ['transformer.wte.weight', 'transformer.blocks.0.ln_1.bias', 'transformer.blocks.0.attn.Wqkv.bias', 'transformer.blocks.0.attn.q_ln.weight', 'transformer.blocks.2.mlp.mlp_down.weight', 'transformer.ln_f.bias']) assert.ok(m.includes(`lang_encoder.${n}`), n);
    const p = names('mpt', FAMILY_VARIANTS[1]![2]);
    for (const n of ['transformer.blocks.3.norm_1.weight', 'transformer.blocks.0.ffn.up_proj.weight', 'transformer.norm_f.weight']) assert.ok(p.includes(`lang_encoder.${n}`), n);
    assert.ok(!p.some((n) => n.endsWith('.bias')), 'no_bias removes every bias, LayerNorms included');
    const x = names('gpt_neox', FAMILY_VARIANTS[2]![2]);
    for (const n of ['gpt_neox.embed_in.weight', 'gpt_neox.layers.1.attention.query_key_value.bias', 'gpt_neox.layers.0.mlp.dense_4h_to_h.weight', 'gpt_neox.final_layer_norm.weight', 'embed_out.weight']) assert.ok(x.includes(`lang_encoder.${n}`), n);
  });

  test('unsupported HF options are refused naming the file and field', () => {
    const bad = (family: string, hf: Record<string, unknown>, re: RegExp): void => {
      assert.throws(() => getLMFamily(family).fromHF(hf, 'lm/config.json', 40), re);
    };
    bad('mosaic_gpt', { ...FAMILY_VARIANTS[0]![2], alibi: false }, /lm\/config.json: 'alibi' is false/);
    bad('mpt', { ...FAMILY_VARIANTS[1]![2], attn_config: { alibi: true, attn_type: 'grouped_query_attention' } }, /attn_type 'grouped_query_attention'/);
    bad('gpt_neox', { ...FAMILY_VARIANTS[2]![2], rotary_pct: 0.2 }, /= 3 must be even/);
    bad('gpt_neox', { ...FAMILY_VARIANTS[2]![2], hidden_size: 25 }, /hidden_size 25 is not divisible/);
  });
});

function caseFiles(dir: string): ReleaseFiles {
  const c = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { files: { open_clip: { weights: string }; lm: { weights: string[]; index: string | null }; openflamingo_checkpoint: string } };
  return {
    openClip: join(dir, c.files.open_clip.weights), lmDir: join(dir, 'lm'), checkpoint: join(dir, c.files.openflamingo_checkpoint),
    lmWeights: c.files.lm.weights.map((w) => join(dir, w)), lmIndex: c.files.lm.index ? join(dir, c.files.lm.index) : null,
  };
}

describe('three-source loader: wrong or mixed-up files', () => {
  test('loads a release from its files alone (config derived from them)', () => {
    const { model, config } = loadRelease(caseFiles(join(REAL, 'gpt_neox_flamingo_logits')));
    assert.equal(config.lm.family, 'gpt_neox');
    assert.equal(config.flamingo.cross_attn_every_n_layers, 2);
    assert.equal(config.lm.vocab_size, 300);
    assert.deepEqual([config.resampler.depth, config.resampler.num_latents, config.xattn.heads * config.xattn.dim_head], [2, 6, 32]);
    assert.equal(config.vision.ln_post_on_tokens, false, 'released checkpoints: tokens before ln_post');
    assert.ok(model.numParameters() > 0);
  });

  test('checkpoint for another LM family', () => {
    const f = caseFiles(join(REAL, 'gpt_neox_flamingo_logits'));
    f.checkpoint = caseFiles(join(REAL, 'mosaic_gpt_flamingo_logits')).checkpoint;
    assert.throws(() => loadRelease(f), /checkpoint\.pt: no 'lang_encoder\.gpt_neox\.embed_in\.weight': it is a checkpoint for a (mosaic_gpt|mpt) language model, but .*config\.json describes gpt_neox/);
  });

  test('checkpoint of another release of the same family (other every-n / depth)', () => {
    const f = caseFiles(join(REAL, 'mosaic_gpt_flamingo_logits'));
    f.checkpoint = caseFiles(join(REAL, 'mpt_flamingo_logits')).checkpoint;
    assert.throws(() => loadRelease(f), /checkpoint\.pt: gated cross-attention blocks before layers \[3\] do not match cross_attn_every_n_layers 4 of a 3-layer LM/);
  });

  test('LM directory of another family than the checkpoint', () => {
    const f = caseFiles(join(REAL, 'mpt_flamingo_generate'));
    const neox = caseFiles(join(REAL, 'gpt_neox_flamingo_generate'));
    f.lmDir = neox.lmDir;
    f.lmWeights = neox.lmWeights;
    assert.throws(() => loadRelease(f), /checkpoint\.safetensors: no 'lang_encoder\.gpt_neox\.embed_in\.weight': it is a checkpoint for a (mosaic_gpt|mpt) language model/);
  });

  test('truncated shard and truncated safetensors name the file', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'release-'));
    try {
      cpSync(join(REAL, 'mpt_flamingo_logits'), join(tmp, 'c'), { recursive: true });
      const shard = join(tmp, 'c', 'lm', 'pytorch_model-00002-of-00002.bin');
      truncateSync(shard, Math.floor(statSync(shard).size / 2));
      assert.throws(() => loadRelease(caseFiles(join(tmp, 'c'))), (e: unknown) => e instanceof Error && e.message.includes('pytorch_model-00002-of-00002.bin'));
      cpSync(join(REAL, 'mosaic_gpt_flamingo_generate'), join(tmp, 'd'), { recursive: true });
      const st = join(tmp, 'd', 'lm', 'model.safetensors');
      truncateSync(st, statSync(st).size - 100);
      assert.throws(() => loadRelease(caseFiles(join(tmp, 'd'))), /model\.safetensors.*truncated/);
      const idx = join(tmp, 'c', 'lm', 'pytorch_model.bin.index.json');
      writeFileSync(idx, JSON.stringify({ weight_map: { 'transformer.wte.weight': 'pytorch_model-00003-of-00003.bin' } }));
      assert.throws(() => loadRelease({ ...caseFiles(join(tmp, 'c')), lmWeights: undefined, lmIndex: undefined }), /index\.json: shard pytorch_model-00003-of-00003\.bin is missing/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('tokenizer of another size than the checkpoint', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'release-'));
    try {
      cpSync(join(REAL, 'gpt_neox_flamingo_logits'), join(tmp, 'c'), { recursive: true });
      for (const n of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) cpSync(join(TOKENIZERS, 'gpt-neox-20b', n), join(tmp, 'c', 'lm', n));
      assert.throws(() => loadRelease(caseFiles(join(tmp, 'c'))), /tokenizer\.json: the tokenizer has 50280 entries with OpenFlamingo's tokens, but .*checkpoint\.pt was trained with 300/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('OpenFlamingo token ids from a tokenizer directory, with and without the added tokens', () => {
    for (const d of ['gpt-neox-20b', 'gpt-neox-20b-openflamingo']) {
      const t = openFlamingoTokenizerInfo(join(TOKENIZERS, d))!;
      assert.deepEqual([t.length, t.eoc, t.media, t.pad], [50280, 50277, 50278, 50279], d);
    }
  });

  test('a mis-shaped tensor is reported with its file, before any weight is read', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'release-'));
    try {
      cpSync(join(REAL, 'mosaic_gpt_flamingo_generate'), join(tmp, 'c'), { recursive: true });
      const file = join(tmp, 'c', 'openflamingo', 'checkpoint.safetensors');
      const f = readSafetensors(file);
      const out: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      for (const e of f.entries()) out[e.name] = { dtype: 'F32', shape: [...e.shape], data: f.float32(e.name) };
      const k = 'lang_encoder.transformer.blocks.1.gated_cross_attn_layer.ff.3.weight';
      out[k] = { dtype: 'F32', shape: [out[k]!.shape[0]!, out[k]!.shape[1]! - 1], data: new Float32Array(out[k]!.shape[0]! * (out[k]!.shape[1]! - 1)) };
      out['lang_encoder.extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
      writeSafetensors(file, out);
      assert.throws(() => loadRelease(caseFiles(join(tmp, 'c'))), (e: unknown) => e instanceof Error
        && /unexpected \(1\): .*checkpoint\.safetensors: lang_encoder\.extra\.weight/.test(e.message)
        && /mis-shaped \(1\): .*blocks\.1\.gated_cross_attn_layer\.ff\.3\.weight is \[\d+, \d+\]/.test(e.message)
        && /missing \(0\)/.test(e.message) === false);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

test('stop_at_eoc: step_logits are compared only for rows still generating', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'release-'));
  try {
    const dir = join(tmp, 'c');
    cpSync(join(REAL, 'gpt_neox_flamingo_generate'), dir, { recursive: true });
    const c = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { config: { flamingo: { eoc_token_id: number; pad_token_id: number }; generation: { stop_at_eoc: boolean } } };
    const exp = readSafetensors(join(dir, 'expected.safetensors'));
    const gen = exp.int32('generated_ids');
    const [B, S] = exp.shape('generated_ids') as [number, number];
    // pick a row r and step K whose token no other row and no earlier step produces: call it eoc, so row r stops after K
    let r = -1;
    let K = -1;
    for (let b = 0; b < B && r < 0; b++) {
      for (let k = 1; k < S - 2 && r < 0; k++) {
        const t = gen[b * S + k]!;
        const before = [...gen.subarray(b * S, b * S + k)].includes(t);
        const elsewhere = [...gen].some((x, i) => x === t && Math.floor(i / S) !== b);
        if (!before && !elsewhere) { r = b; K = k; }
      }
    }
    assert.ok(r >= 0, 'fixture has a token only one row produces');
    c.config.flamingo.eoc_token_id = gen[r * S + K]!;
    c.config.generation.stop_at_eoc = true;
    writeFileSync(join(dir, 'case.json'), JSON.stringify(c));
    const pad = c.config.flamingo.pad_token_id;
    const newGen = Int32Array.from(gen);
    for (let k = K + 1; k < S; k++) newGen[r * S + k] = pad;
    const P = exp.shape('sequences')[1]! - S;
    const seq = Int32Array.from(exp.int32('sequences'));
    for (let k = K + 1; k < S; k++) seq[r * (P + S) + P + k] = pad;
    const step = Float32Array.from(exp.float32('step_logits'));
    const V = exp.shape('step_logits')[2]!;
    for (let k = K + 1; k < S; k++) step.fill(0, (r * S + k) * V, (r * S + k + 1) * V); // row r after it stopped: not compared
    const i64 = (a: Int32Array): BigInt64Array => BigInt64Array.from([...a].map(BigInt));
    writeSafetensors(join(dir, 'expected.safetensors'), {
      generated_ids: { dtype: 'I64', shape: [B, S], data: i64(newGen) },
      sequences: { dtype: 'I64', shape: exp.shape('sequences') as number[], data: i64(seq) },
      step_logits: { dtype: 'F32', shape: exp.shape('step_logits') as number[], data: step },
      media: { dtype: 'F32', shape: exp.shape('media') as number[], data: exp.float32('media') },
    });
    const res = runParityCase(dir);
    assert.ok(res.pass, JSON.stringify(res));
    // the same stored zeros at a step where row r was still generating do fail
    step.fill(0, (r * S + K) * V, (r * S + K + 1) * V);
    writeSafetensors(join(dir, 'expected.safetensors'), {
      generated_ids: { dtype: 'I64', shape: [B, S], data: i64(newGen) },
      sequences: { dtype: 'I64', shape: exp.shape('sequences') as number[], data: i64(seq) },
      step_logits: { dtype: 'F32', shape: exp.shape('step_logits') as number[], data: step },
      media: { dtype: 'F32', shape: exp.shape('media') as number[], data: exp.float32('media') },
    });
    assert.equal(runParityCase(dir).pass, false);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

describe('export and convert round trips', () => {
  const logitsOf = fixedInputLogits;
  for (const c of ['mosaic_gpt_flamingo_logits', 'mpt_flamingo_logits', 'gpt_neox_flamingo_generate']) {
    test(`${c}: release → export → release, and → convert → model directory: identical logits`, async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'release-rt-'));
      try {
        const { model } = loadRelease(caseFiles(join(REAL, c)));
        const want = logitsOf(model);
        const r = exportRelease(model, join(tmp, 'exported'));
        const again = loadRelease({ openClip: r.openClip, lmDir: r.lmDir, checkpoint: r.checkpoint });
        // the exported HF config.json describes the resized embeddings (vocab_size = tokenizer_len rows)
        const lmOf = (x: FlamingoConfig): unknown => ({ ...x, lm: { ...x.lm, hf: { ...(x.lm as HFLMConfig).hf, vocab_size: x.lm.vocab_size } } });
        assert.deepEqual(lmOf(again.config), lmOf(model.config));
        assert.equal((again.config.lm as HFLMConfig).hf.vocab_size, model.config.lm.vocab_size);
        assert.deepEqual(logitsOf(again.model), want);
        const f = caseFiles(join(REAL, c));
        const { run } = await import('../src/cli/convert.ts');
        const code = await run(['--open-clip', f.openClip, '--lm', f.lmDir, '--checkpoint', f.checkpoint, '--out', join(tmp, 'model')]);
        assert.equal(code, 0);
        assert.deepEqual(logitsOf(loadFlamingo(join(tmp, 'model'))), want);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
});
