/** LM family registry: config.family → implementation. */
import type { Rng } from '../../engine/rng.ts';
import { ConfigError, type LMConfig } from '../config.ts';
import { LlamaForCausalLM } from './llama.ts';
import type { DecoderLM } from './types.ts';

export function createLanguageModel(cfg: LMConfig, rng: Rng): DecoderLM {
  const family = cfg.family ?? 'llama';
  switch (family) {
    case 'llama':
      return new LlamaForCausalLM(cfg, rng);
    default:
      throw new ConfigError(`unknown LM family '${String(family)}'`);
  }
}

export type { DecoderLM, KVCache, LayerContext } from './types.ts';
