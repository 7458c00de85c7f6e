/** LM construction through the family registry (registry.ts): config.family → implementation. */
import type { Rng } from '../../engine/rng.ts';
import type { LMConfigBase } from '../config.ts';
import { getLMFamily } from './registry.ts';
import type { DecoderLM } from './types.ts';

export function createLanguageModel(cfg: LMConfigBase, rng: Rng): DecoderLM {
  return getLMFamily(cfg.family).create(cfg, rng);
}

export { getLMFamily, lmFamilies, familyForModelType } from './registry.ts';
export type { LMFamily } from './family.ts';
export type { DecoderLM, KVCache, LayerContext } from './types.ts';
export { CachedKV } from './kv-cache.ts';
