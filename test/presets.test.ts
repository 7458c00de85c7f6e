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

test('published sizes are in the right range', () => {
  const b = (n: string) => countParameters(getPreset(n)) / 1e9;
  assert.ok(b('openflamingo-3b') > 2.5 && b('openflamingo-3b') < 3.8, `3B: ${b('openflamingo-3b')}`);
  assert.ok(b('openflamingo-9b') > 8 && b('openflamingo-9b') < 10.5, `9B: ${b('openflamingo-9b')}`);
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
