/** Shared by the eval tests: a tiny random-weight Flamingo + a tiny tokenizer trained here, saved as a model dir. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from '../src/data/tokenizer.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import type { FlamingoConfig } from '../src/model/config.ts';
import { saveFlamingo } from '../src/io/checkpoint.ts';

export const FIXTURES = new URL('./fixtures/eval/', import.meta.url).pathname;

const CORPUS = [
  '<image>Output:a dog on grass<|endofchunk|>', '<image>Output:two cats sleeping.<|endofchunk|>',
  '<image>Question:What color is it? Short answer:red<|endofchunk|>', 'How many animals are there? 2 yes no food',
  "<image>is an image with: 'look at this' written on it. Is it hateful? Answer:no<|endofchunk|>",
  'a red bus, a man riding a bike, a plate of food, a boat on water, what is happening',
];

export function tinyTokenizer(): BpeTokenizer {
  return BpeTokenizer.train(Array.from({ length: 4 }, () => CORPUS).flat(), { vocabSize: 300 });
}

export function tinyConfig(tok: BpeTokenizer, overrides: { maxNumMedia?: number | null } = {}): FlamingoConfig {
  return {
    vision: { image_size: 32, patch_size: 8, width: 32, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 16, act: 'gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
    resampler: { dim: 32, depth: 1, dim_head: 16, heads: 2, num_latents: 4, max_num_media: overrides.maxNumMedia ?? null, max_num_frames: 4, ff_mult: 2, ln_eps: 1e-5 },
    xattn: { dim: 32, dim_visual: 32, dim_head: 16, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
    lm: {
      vocab_size: tok.vocabSize, hidden_size: 32, intermediate_size: 64, num_layers: 2, num_heads: 2, num_key_value_heads: 2,
      rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false,
    },
    flamingo: { cross_attn_every_n_layers: 1, media_token_id: tok.imageTokenId, eoc_token_id: tok.eocTokenId, pad_token_id: tok.padTokenId },
  };
}

/**
 * A model whose gates are opened (random weights start with tanh(0) = 0 gates, which would make the
 * images invisible to the LM) so outputs depend on the pixels.
 */
export function tinyModel(tok: BpeTokenizer, seed = 1, overrides: { maxNumMedia?: number | null } = {}): Flamingo {
  const model = new Flamingo(tinyConfig(tok, overrides), seed);
  for (const [name, p] of model.namedParameters()) if (/gate$/.test(name)) p.f32.fill(1);
  model.setTrainingMode('none');
  return model;
}

/** Save model + tokenizer.json into dir; returns dir. */
export function saveModelDir(dir: string, tok: BpeTokenizer, model: Flamingo): string {
  mkdirSync(dir, { recursive: true });
  saveFlamingo(model, dir);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok.toHuggingFace()));
  return dir;
}

export interface Captured { code: number; stdout: string; stderr: string }

/** Run a CLI `run(args)` with its text output on stdout/stderr captured. */
export async function capture(run: (a: string[]) => Promise<number>, args: string[]): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  // The test runner's own reporter writes binary chunks to stdout; let those through.
  process.stdout.write = ((c: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof c !== 'string') return (out as (...a: unknown[]) => boolean).call(process.stdout, c, ...rest);
    stdout += c;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => { stderr += String(c); return true; }) as typeof process.stderr.write;
  try {
    return { code: await run(args), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}
