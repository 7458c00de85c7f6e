/**
 * Reading request bodies field by field: each check names the field it refuses, so every malformed
 * request gets a 400 saying what was wrong.
 */
import { RequestFieldError, LimitError } from './errors.ts';

export type Body = Record<string, unknown>;

export function asObject(v: unknown, param: string): Body {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RequestFieldError(param, 'must be a JSON object');
  return v as Body;
}

/** Refuse keys outside `known`; `unsupported` keys get a message saying they are not implemented. */
export function checkKeys(body: Body, known: readonly string[], where: string, unsupported: readonly string[] = []): void {
  for (const k of Object.keys(body)) {
    if (unsupported.includes(k)) throw new RequestFieldError(where ? `${where}.${k}` : k, 'is not supported by this server');
    if (!known.includes(k)) throw new RequestFieldError(where ? `${where}.${k}` : k, `unknown field (known: ${known.join(', ')})`);
  }
}

interface NumSpec { int?: boolean; min?: number; max?: number; exclusiveMin?: boolean; limit?: boolean }

/** A number field, or `dflt` when absent or null; `limit` marks a server limit (reported as such). */
export function num(body: Body, key: string, dflt: number, spec?: NumSpec): number;
export function num(body: Body, key: string, dflt: undefined, spec?: NumSpec): number | undefined;
export function num(body: Body, key: string, dflt: number | undefined, spec: NumSpec = {}): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RequestFieldError(key, `must be a number, got ${JSON.stringify(v)}`);
  if (spec.int && !Number.isInteger(v)) throw new RequestFieldError(key, `must be an integer, got ${v}`);
  if (spec.min !== undefined && (spec.exclusiveMin ? v <= spec.min : v < spec.min)) throw new RequestFieldError(key, `must be ${spec.exclusiveMin ? '>' : '≥'} ${spec.min}, got ${v}`);
  if (spec.max !== undefined && v > spec.max) {
    if (spec.limit) throw new LimitError(key, `${key}: ${v} is more than this server's limit of ${spec.max}`);
    throw new RequestFieldError(key, `must be ≤ ${spec.max}, got ${v}`);
  }
  return v;
}

export function bool(body: Body, key: string, dflt: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new RequestFieldError(key, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function str(body: Body, key: string): string {
  const v = body[key];
  if (typeof v !== 'string') throw new RequestFieldError(key, v === undefined ? 'is required' : `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** OpenAI's `stop`: a string or up to 4 strings. */
export function stopStrings(body: Body, key = 'stop'): string[] {
  const v = body[key];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s.length === 0 || s.length > 64)) {
    throw new RequestFieldError(key, 'must be a non-empty string or a list of up to 4 non-empty strings (≤ 64 characters each)');
  }
  return list as string[];
}
