/**
 * Reading fields of a Hugging Face config.json for the LM families, with errors that name the file
 * and the field; and the `lm` section wrapper shared by families configured by their HF file.
 */
import { ConfigError } from '../config-error.ts';
import type { HFLMConfig } from '../config.ts';

export type HF = Record<string, unknown>;

export function hfNumber(hf: HF, file: string, key: string, dflt?: number): number {
  const v = hf[key] === undefined || hf[key] === null ? dflt : hf[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${file}: '${key}' must be a number, got ${JSON.stringify(hf[key])}`);
  return v;
}

export function hfInt(hf: HF, file: string, key: string, dflt?: number): number {
  const v = hfNumber(hf, file, key, dflt);
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${file}: '${key}' must be a positive integer, got ${JSON.stringify(hf[key])}`);
  return v;
}

export function hfBool(hf: HF, file: string, key: string, dflt: boolean): boolean {
  const v = hf[key] === undefined || hf[key] === null ? dflt : hf[key];
  if (typeof v !== 'boolean') throw new ConfigError(`${file}: '${key}' must be true or false, got ${JSON.stringify(hf[key])}`);
  return v;
}

/** A number, or null when absent / null. */
export function hfOptNumber(hf: HF, file: string, key: string): number | null {
  const v = hf[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${file}: '${key}' must be a number or null, got ${JSON.stringify(v)}`);
  return v;
}

export function hfObject(hf: HF, file: string, key: string): HF {
  const v = hf[key];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${file}: '${key}' must be an object, got ${JSON.stringify(v)}`);
  return v as HF;
}

const HF_LM_KEYS = new Set(['family', 'vocab_size', 'hidden_size', 'num_layers', 'tie_word_embeddings', 'max_position_embeddings', 'hf']);

/**
 * Validate an `lm` section of a family configured by its HF config.json: known keys only, and the
 * summary fields must be what the family derives from `hf` (so the two cannot drift apart).
 */
export function validateHFLM(raw: Record<string, unknown>, where: string, family: string,
  derive: (hf: HF, file: string, vocabSize: number) => HFLMConfig): HFLMConfig {
  for (const k of Object.keys(raw)) if (!HF_LM_KEYS.has(k)) throw new ConfigError(`${where}.${k} is not a field of a ${family} lm section (fields: ${[...HF_LM_KEYS].join(', ')})`);
  if (raw.family !== family) throw new ConfigError(`${where}.family must be '${family}'`);
  const hf = raw.hf;
  if (typeof hf !== 'object' || hf === null || Array.isArray(hf)) throw new ConfigError(`${where}.hf must be the language model's Hugging Face config.json object`);
  const v = raw.vocab_size;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(`${where}.vocab_size must be a positive integer, got ${JSON.stringify(v)}`);
  const d = derive(hf as HF, `${where}.hf`, v);
  for (const k of ['hidden_size', 'num_layers', 'tie_word_embeddings', 'max_position_embeddings'] as const) {
    if (raw[k] !== undefined && raw[k] !== d[k]) throw new ConfigError(`${where}.${k} is ${JSON.stringify(raw[k])} but ${where}.hf gives ${JSON.stringify(d[k])}`);
  }
  return d;
}
