/**
 * This project's model directory (what `flamingo train` writes to <run>/model and saveFlamingo saves):
 * config.json (FlamingoConfig) + weights.safetensors + tokenizer.json (Hugging Face format).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFlamingo } from '../io/checkpoint.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { PretrainedError, type PretrainedSource } from './types.ts';

export const MODEL_DIR_FILES = ['config.json', 'weights.safetensors', 'tokenizer.json'] as const;

export const modelDirSource: PretrainedSource = {
  name: 'flamingo-ts',
  describe: 'a flamingo-ts model directory (config.json + weights.safetensors + tokenizer.json)',
  check(dir) {
    if (typeof dir !== 'string') return 'is three release files, not a model directory';
    const missing = MODEL_DIR_FILES.filter((f) => !existsSync(join(dir, f)));
    return missing.length === 0 ? null : `has no ${missing.join(', ')}`;
  },
  load(dir, options) {
    if (typeof dir !== 'string') throw new PretrainedError('a flamingo-ts model directory is one path');
    const tokenizer = BpeTokenizer.fromHuggingFace(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    return { model: loadFlamingo(dir, 'weights.safetensors', { dtype: options.dtype }), tokenizer };
  },
};
