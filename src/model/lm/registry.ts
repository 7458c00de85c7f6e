/**
 * The LM families. A family is one file exporting an LMFamily; list it here. A function rather than
 * a constant so the family modules may import config.ts (which uses this registry) without an
 * initialisation-order cycle.
 */
import { ConfigError } from '../config-error.ts';
import type { LMFamily } from './family.ts';
import { llamaFamily } from './llama.ts';
import { mosaicGptFamily } from './mosaic_gpt.ts';
import { mptFamily } from './mpt.ts';
import { gptNeoxFamily } from './gpt_neox.ts';

export function lmFamilies(): readonly LMFamily[] {
  return [llamaFamily, mosaicGptFamily, mptFamily, gptNeoxFamily];
}

/** The family of `lm.family` (default llama). */
export function getLMFamily(name: string | undefined, where = 'lm.family'): LMFamily {
  const n = name ?? 'llama';
  const f = lmFamilies().find((x) => x.name === n);
  if (!f) throw new ConfigError(`${where} '${n}' is not an LM family (available: ${lmFamilies().map((x) => x.name).join(', ')})`);
  return f;
}

/** The family that reads a Hugging Face config.json with this `model_type`, or null. */
export function familyForModelType(modelType: unknown): LMFamily | null {
  return lmFamilies().find((x) => x.hfModelTypes.includes(String(modelType))) ?? null;
}
