/**
 * Tokenizer directories as Hugging Face writes them (`tokenizer.json` + `tokenizer_config.json`),
 * and OpenFlamingo's additions: `create_model_and_transforms` adds `<|endofchunk|>` and `<image>`
 * as additional special tokens and, when the tokenizer has no pad token, `<PAD>` as pad token.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from './tokenizer.ts';
import { TokenizerError } from './tokenizer-error.ts';

export interface TokenizerDirInfo {
  tokenizer: BpeTokenizer;
  /** transformers' `clean_up_tokenization_spaces` for this tokenizer (its 4.x default is true). */
  cleanUpSpaces: boolean;
}

/** A special token of tokenizer_config.json: a string or an AddedToken object. */
function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * Load a tokenizer directory; with `openFlamingo` add OpenFlamingo's tokens (adding them to a
 * directory saved after OpenFlamingo added them changes nothing: same ids 50277..50279 for GPT-NeoX).
 */
export function loadTokenizerDir(dir: string, options: { openFlamingo?: boolean } = {}): TokenizerDirInfo {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) throw new TokenizerError(`${dir} has no tokenizer.json`);
  const cfgFile = join(dir, 'tokenizer_config.json');
  let cfg: Record<string, unknown> = {};
  if (existsSync(cfgFile)) {
    try {
      cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new TokenizerError(`${cfgFile} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const pad = tokenName(cfg.pad_token) ?? (options.openFlamingo ? '<PAD>' : undefined);
  const eos = tokenName(cfg.eos_token);
  const tokenizer = BpeTokenizer.fromHuggingFace(readFileSync(file, 'utf8'), {
    specialTokens: { ...(pad ? { pad } : {}), ...(eos ? { eos } : {}) },
  });
  if (options.openFlamingo) {
    tokenizer.addSpecialTokens(['<|endofchunk|>', '<image>']);
    if (pad) tokenizer.addSpecialTokens([pad]);
  }
  return { tokenizer, cleanUpSpaces: cfg.clean_up_tokenization_spaces !== false };
}
