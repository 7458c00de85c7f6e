/**
 * Generation options and model sizes from careless or hostile input (issue 19, items 6-7), checked in the library
 * so every caller gets them: generate() names the bad option; a config whose size cannot fit the machine or its
 * weights is refused before anything is allocated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Flamingo } from '../src/model/flamingo.ts';
import { ConfigError, validateFlamingoConfig, type FlamingoConfig, type LMConfig } from '../src/model/config.ts';
import { checkModelSize, modelSize, MAX_TENSOR_ELEMENTS } from '../src/model/size.ts';
import { generate, type GenerationConfig } from '../src/model/generate.ts';
import { GenerationOptionError, MAX_BEAMS, MAX_NEW_TOKENS_UNBOUNDED, validateGenerationConfig } from '../src/model/generation-options.ts';
import { intTensor } from '../src/engine/tensor.ts';
import { REPO } from './helpers/child-usage.ts';

type LlamaFlamingoConfig = FlamingoConfig & { lm: LMConfig };
const bundled = (): LlamaFlamingoConfig => JSON.parse(readFileSync(join(REPO, 'models/flamingo-fmnist/config.json'), 'utf8')) as LlamaFlamingoConfig;

test('modelSize is a tight lower bound of the parameters the model really allocates', () => {
  const variants: [string, (c: LlamaFlamingoConfig) => void][] = [
    ['bundled', () => {}],
    ['grouped-query, untied, gated every 2nd layer', (c) => { c.lm.num_key_value_heads = 2; c.lm.tie_word_embeddings = false; c.flamingo.cross_attn_every_n_layers = 2; }],
    ['wide MLPs, media embeddings', (c) => { c.lm.intermediate_size = 512; c.vision.mlp_ratio = 4; c.resampler.max_num_media = 4; c.xattn.ff_mult = 4; }],
  ];
  for (const [name, edit] of variants) {
    const cfg = bundled();
    edit(cfg);
    const actual = new Flamingo(validateFlamingoConfig(cfg)).numParameters();
    const bound = modelSize(cfg).parameters;
    assert.ok(bound <= actual && bound >= 0.97 * actual, `${name}: bound ${bound} vs actual ${actual}`);
  }
});

test('implausible configs are refused before allocation, naming the fields', () => {
  const layers = bundled();
  layers.lm.num_layers = 1e6;
  assert.throws(() => new Flamingo(layers), (e: Error) => e instanceof ConfigError
    && /at least \d\.\d+e\+11 parameters .* more than this machine's .* GiB \(largest part: lm, lm\.num_layers 1000000/.test(e.message));
  const mlp = bundled();
  mlp.lm.intermediate_size = 2 ** 23;
  assert.throws(() => new Flamingo(mlp), /lm\.intermediate_size 8388608/);
  const hidden = bundled();
  hidden.lm.hidden_size = 1e9;
  hidden.xattn.dim = 1e9;
  assert.throws(() => new Flamingo(hidden), new RegExp(`would have \\d\\.\\d+e\\+\\d+ elements, over the ${MAX_TENSOR_ELEMENTS} a single tensor can hold \\(.*lm\\.hidden_size 1000000000`));
  // Fits the machine, but not the weights it is to be loaded with.
  const wide = bundled();
  wide.lm.intermediate_size = 65536;
  assert.throws(() => checkModelSize(wide, { weights: { bytes: 5_729_000, file: 'w.safetensors' }, source: 'cfg.json' }),
    /ConfigError: cfg\.json: the config describes at least 1\.\d+e\+8 parameters but w\.safetensors holds only 5729000 bytes: config and weights do not match/);
  assert.doesNotThrow(() => checkModelSize(bundled(), { weights: { bytes: 5_729_000, file: 'w.safetensors' } }));
  const eos = bundled();
  eos.flamingo.eos_token_id = 99999;
  assert.throws(() => validateFlamingoConfig(eos), /flamingo\.eos_token_id must be a token id in \[0, 1024\), got 99999/);
});

test('every generation option is validated with a message naming it', () => {
  const limits = { vocabSize: 1024, maxPositions: 512 };
  const bad: [Partial<GenerationConfig>, RegExp][] = [
    [{ maxNewTokens: 2.5 }, /maxNewTokens must be an integer in \[1, \d+\], got 2\.5/],
    [{ maxNewTokens: 0 }, /maxNewTokens must be an integer in \[1, \d+\], got 0/],
    [{ numBeams: 1e6 }, new RegExp(`numBeams must be an integer in \\[1, ${MAX_BEAMS}\\], got 1000000`)],
    [{ numBeams: 2.5 }, /numBeams must be an integer/],
    [{ temperature: -1 }, /temperature must be a finite number ≥ 0, got -1/],
    [{ temperature: NaN }, /temperature must be a finite number ≥ 0, got NaN/],
    [{ topP: 5 }, /topP must be a number in \(0, 1\], got 5/],
    [{ topP: 0 }, /topP must be a number in \(0, 1\], got 0/],
    [{ topK: -3 }, /topK must be an integer in \[0, /],
    [{ topK: 1.5 }, /topK must be an integer/],
    [{ seed: -1 }, /seed must be an integer/],
    [{ lengthPenalty: Infinity }, /lengthPenalty must be a finite number/],
    [{ strategy: 'nucleus' as 'sample' }, /strategy must be 'greedy', 'beam' or 'sample', got 'nucleus'/],
    [{ stopTokens: [5, 1024] }, /stopTokens\[1\] must be a token id in \[0, 1023\] \(the model's vocabulary\), got 1024/],
    [{ stopTokens: [-1] }, /stopTokens\[0\] must be a token id/],
    [{ stopAtEoc: 'no' as unknown as boolean }, /stopAtEoc must be true or false/],
    [{ max_new_tokens: 3 } as Partial<GenerationConfig>, /unknown generation option 'max_new_tokens'/],
  ];
  for (const [opts, re] of bad) {
    const cfg = { maxNewTokens: 4, ...opts } as GenerationConfig;
    assert.throws(() => validateGenerationConfig(cfg, limits), (e: Error) => e instanceof GenerationOptionError && re.test(e.message), JSON.stringify(opts));
  }
  assert.doesNotThrow(() => validateGenerationConfig({ maxNewTokens: 512, strategy: 'sample', temperature: 0, topK: 0, topP: 1, seed: 7, stopTokens: [0, 1023] }, limits));
  assert.doesNotThrow(() => validateGenerationConfig({ maxNewTokens: 20, numBeams: MAX_BEAMS, lengthPenalty: -0.5 }, limits));
  // Without a model bound on positions, the count itself is bounded.
  assert.throws(() => validateGenerationConfig({ maxNewTokens: 1e6 }, { vocabSize: 1024 }), new RegExp(`maxNewTokens must be an integer in \\[1, ${MAX_NEW_TOKENS_UNBOUNDED}\\], got 1000000`));
});

test('generate() itself refuses bad options and out-of-vocabulary prompt ids before running the model', () => {
  const model = new Flamingo(validateFlamingoConfig(bundled()));
  const prompt = { inputIds: intTensor([2, 3, 4], [1, 3]) };
  assert.throws(() => generate(model, prompt, { maxNewTokens: 3, numBeams: 2.5 }), GenerationOptionError);
  assert.throws(() => generate(model, prompt, { maxNewTokens: 1e6 }), /prompt of 3 tokens \+ 1000000 new tokens exceeds the model's 512 positions/);
  assert.throws(() => generate(model, prompt, { maxNewTokens: 3, stopTokens: [4096] }), /stopTokens\[0\] must be a token id in \[0, 1023\]/);
  assert.throws(() => generate(model, { inputIds: intTensor([2, 5000], [1, 2]) }, { maxNewTokens: 3 }), /prompt token id 5000 at position 1 is outside the model's vocabulary \[0, 1024\)/);
  assert.equal(generate(model, prompt, { maxNewTokens: 3, stopAtEoc: false }).generated[0]!.length, 3);
});
