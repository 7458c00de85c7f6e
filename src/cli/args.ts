/**
 * Command-line option helpers shared by every command: parseArgs with usage errors, and typed
 * parsers for option values. Each parser returns undefined for an absent option (so `?? default`
 * reads naturally) and throws a `UsageError` naming the option for a malformed one.
 */
import { parseArgs } from 'node:util';
import { isParseArgsError, UsageError } from '../errors.ts';
import { type WeightDType, WEIGHT_DTYPES, isWeightDType } from '../engine/quant.ts';

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** `node:util` parseArgs, strict, with its errors turned into `UsageError`s. */
export function parseOptions<O extends OptionSpec>(
  args: string[],
  options: O,
  allowPositionals = false,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: boolean }>> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (e) {
    // parseArgs explains some errors over several lines; the CLI reports one.
    if (isParseArgsError(e)) throw new UsageError(e.message.replace(/\s*\n\s*/g, ' '));
    throw e;
  }
}

/** A finite number, optionally within [min, max]. */
export function numberArg(name: string, v: string | undefined, range: { min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  if (range.min !== undefined && n < range.min) throw new UsageError(`--${name} must be ≥ ${range.min}, got '${v}'`);
  if (range.max !== undefined && n > range.max) throw new UsageError(`--${name} must be ≤ ${range.max}, got '${v}'`);
  return n;
}

/** A whole number written in decimal digits (no sign, fraction or exponent), ≥ min (default 0) and ≤ max. */
export function intArg(name: string, v: string | undefined, range: { min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const min = range.min ?? 0;
  const what = min === 1 ? 'a positive integer' : `an integer ≥ ${min}`;
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v)) || Number(v) < min) throw new UsageError(`--${name} must be ${what}, got '${v}'`);
  if (range.max !== undefined && Number(v) > range.max) throw new UsageError(`--${name} must be ≤ ${range.max}, got '${v}'`);
  return Number(v);
}

/** A comma-separated list of non-negative integers ("0,4,8"). */
export function intListArg(name: string, v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (xs.length === 0 || xs.some((s) => !/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)))) {
    throw new UsageError(`--${name} must be a comma-separated list of non-negative integers, got '${v}'`);
  }
  return xs.map(Number);
}

/** One of a fixed set of words. */
export function choiceArg<T extends string>(name: string, v: string | undefined, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be ${choices.join(' or ')}, got '${v}'`);
  return v as T;
}

/** --dtype: storage of the linear weights (fp32 | bf16 | int8; engine/quant.ts). */
export function dtypeArg(v: string | undefined): WeightDType | undefined {
  if (v === undefined) return undefined;
  if (!isWeightDType(v)) throw new UsageError(`--dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got "${v}"`);
  return v;
}
