import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PRESETS, getPreset, countParameters } from '../src/model/presets.ts';
import { validateFlamingoConfig, ConfigError } from '../src/model/config.ts';
import { Flamingo } from '../src/model/flamingo.ts';

test('every preset is a valid, JSON-serialisable config', () => {
  for (const [name, p] of Object.entries(PRESETS)) {
    const c = validateFlamingoConfig(JSON.parse(JSON.stringify(p.config)));
    assert.equal(c.lm.hidden_size, c.xattn.dim, name);
    assert.ok(p.description.length > 10);
  }
});

test('analytic parameter count equals the built model', () => {
  const cfg = getPreset('tiny-test');
  assert.equal(countParameters(cfg), new Flamingo(cfg).numParameters());
});

test('release presets: families, every-n and OpenFlamingo token ids', () => {
  const expect: Record<string, [string, number, number, number, number, number]> = {
    // family, every, eoc, media, pad, vocab rows
    'openflamingo-3b-vitl-mpt1b': ['mosaic_gpt', 1, 50277, 50278, 50279, 50280],
    'openflamingo-3b-vitl-mpt1b-langinstruct': ['mosaic_gpt', 1, 50277, 50278, 50279, 50280],
    'openflamingo-4b-vitl-rpj3b': ['gpt_neox', 2, 50277, 50278, 50279, 50280],
    'openflamingo-4b-vitl-rpj3b-langinstruct': ['gpt_neox', 2, 50277, 50278, 50279, 50280],
    'openflamingo-9b-vitl-mpt7b': ['mpt', 4, 50277, 50278, 50279, 50280],
    'openflamingo-9b': ['llama', 4, 32000, 32001, 32002, 32003],
  };
  for (const [n, [fam, every, eoc, media, pad, rows]] of Object.entries(expect)) {
    const c = getPreset(n);
    assert.deepEqual([c.lm.family, c.flamingo.cross_attn_every_n_layers, c.flamingo.eoc_token_id, c.flamingo.media_token_id, c.flamingo.pad_token_id, c.lm.vocab_size], [fam, every, eoc, media, pad, rows], n);
    assert.equal(c.vision.ln_post_on_tokens, false, n);
    assert.equal(c.vision.width, 1024, n);
  }
  // no preset name suggests a release that its LM family cannot load
  for (const n of Object.keys(PRESETS)) if (n.startsWith('openflamingo')) assert.ok(n in expect, n);
});

test('published sizes are in the right range', () => {
  const b = (n: string) => countParameters(getPreset(n)) / 1e9;
  for (const [n, lo, hi] of [['openflamingo-3b-vitl-mpt1b', 2.5, 3.4], ['openflamingo-4b-vitl-rpj3b', 3.0, 4.5], ['openflamingo-9b-vitl-mpt7b', 8, 9.5], ['openflamingo-9b', 8, 9.5], ['llama-standin-3b', 2.5, 3.8], ['llama-standin-9b', 8, 10.5]] as const) {
    assert.ok(b(n) > lo && b(n) < hi, `${n}: ${b(n)}`);
  }
  assert.ok(b('flamingo-80b') > 70 && b('flamingo-80b') < 95, `80B: ${b('flamingo-80b')}`);
});

test('invalid configs name the field', () => {
  const c = getPreset('tiny-test') as unknown as Record<string, Record<string, unknown>>;
  c.lm!.num_heads = 5;
  assert.throws(() => validateFlamingoConfig(c), (e: unknown) => e instanceof ConfigError && /lm.hidden_size 32 is not divisible by num_heads 5/.test(e.message));
  const d = getPreset('tiny-test') as unknown as Record<string, Record<string, unknown>>;
  d.flamingo!.media_token_id = 1000;
  assert.throws(() => validateFlamingoConfig(d), /flamingo.media_token_id must be a token id in \[0, 100\)/);
  const f = getPreset('tiny-test') as unknown as Record<string, Record<string, unknown>>;
  f.vision!.tokens_include_cls = 'yes';
  assert.throws(() => validateFlamingoConfig(f), /vision.tokens_include_cls must be a boolean/);
  const e = getPreset('tiny-test') as unknown as Record<string, Record<string, unknown>>;
  e.vision!.act = 'relu';
  assert.throws(() => validateFlamingoConfig(e), /vision.act must be 'quick_gelu' or 'gelu'/);
  assert.throws(() => getPreset('nope'), /unknown preset 'nope'/);
});
