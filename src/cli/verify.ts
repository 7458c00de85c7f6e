/**
 * `flamingo verify <fixture-dir>... [--dtype fp32|bf16|int8] [--json]`: runs every fixture found under the given directories
 * (parity cases, and any other format registered in src/eval/verify/kinds.ts); prints one line per
 * result (with --json: one JSON object per line, each with `pass`); exit 1 if any result fails.
 * With --dtype bf16|int8 the frozen linear weights are packed and each parity case reports
 * `dtype`, `logits_cosine` and `top1_agreement` against the fp32 expectation (the verdict is the
 * cosine target: ≥ 0.9999 bf16, ≥ 0.995 int8).
 */
import { findTargets, runTarget, VerifyPathError, type VerifyResult } from '../eval/verify/index.ts';
import { UsageError } from '../errors.ts';
import { parseOptions } from './args.ts';
import { type WeightDType, parseWeightDType } from '../engine/quant.ts';

const USAGE = 'usage: flamingo verify <fixture-dir>... [--dtype fp32|bf16|int8] [--json]\n';

const num = (x: number | undefined): number | null | undefined => (x === undefined ? undefined : Number.isFinite(x) ? x : null);

function jsonLine(r: VerifyResult): string {
  return JSON.stringify({
    case: r.case, dir: r.dir, kind: r.kind, pass: r.pass,
    ...(r.maxAbsError !== undefined ? { max_abs_error: num(r.maxAbsError) } : {}),
    outputs: r.outputs.map((o) => ({
      name: o.name, pass: o.pass,
      ...(o.maxAbsError !== undefined ? { max_abs_error: num(o.maxAbsError) } : {}),
      ...(o.mismatches !== undefined ? { mismatches: o.mismatches } : {}),
      ...(o.detail !== undefined ? { detail: o.detail } : {}),
    })),
    ...(r.error ? { error: r.error } : {}),
    ...(r.lowPrecision ? {
      dtype: r.lowPrecision.dtype, logits_cosine: num(r.lowPrecision.logitsCosine),
      top1_agreement: r.lowPrecision.top1Agreement, positions: r.lowPrecision.positions,
    } : {}),
  }) + '\n';
}

function textLine(r: VerifyResult): string {
  const err = r.maxAbsError !== undefined && Number.isFinite(r.maxAbsError) ? ` max_abs_err=${r.maxAbsError.toExponential(2)}` : '';
  const lp = r.lowPrecision;
  const acc = lp ? ` ${lp.dtype} cosine=${lp.logitsCosine.toFixed(6)}${lp.top1Agreement !== null ? ` top1=${lp.top1Agreement.toFixed(3)}` : ''}` : '';
  let s = `${r.pass ? 'PASS' : 'FAIL'}  ${r.case.padEnd(28)} ${r.kind.padEnd(18)}${err}${acc}${r.error ? `  error: ${r.error}` : ''}\n`;
  if (!r.pass) {
    for (const o of r.outputs.filter((x) => !x.pass)) {
      s += `      ${o.name}:${o.maxAbsError !== undefined ? ` max_abs_err=${o.maxAbsError}` : ''}${o.mismatches !== undefined ? ` mismatches=${o.mismatches}` : ''}${o.detail ? ` ${o.detail}` : ''}\n`;
    }
  }
  return s;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals: dirs } = parseOptions(args, { json: { type: 'boolean' }, dtype: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const json = values.json === true;
  let dtype: WeightDType | undefined;
  try {
    dtype = values.dtype === undefined ? undefined : parseWeightDType(values.dtype, '--dtype');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (dirs.length === 0) throw new UsageError('give at least one fixture directory');
  const targets = findTargets(dirs);
  if (targets.length === 0) throw new VerifyPathError(dirs.join(', '), 'no fixture found under it');
  let passed = 0;
  let failed = 0;
  for (const t of targets) {
    for (const r of await runTarget(t, dtype && dtype !== 'fp32' ? { dtype } : {})) {
      if (r.pass) passed++; else failed++;
      process.stdout.write(json ? jsonLine(r) : textLine(r));
    }
  }
  if (!json) process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}
