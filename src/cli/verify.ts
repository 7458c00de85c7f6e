/**
 * `flamingo verify <fixture-dir>... [--json]`: runs every parity case found under the given
 * directories; prints kind, max abs error and pass/fail per case; exit 1 if any case fails.
 */
import { findCases, runParityCase } from '../io/parity.ts';

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const dirs = args.filter((a) => !a.startsWith('--'));
  if (dirs.length === 0) {
    process.stderr.write('usage: flamingo verify <fixture-dir>... [--json]\n');
    return 2;
  }
  let cases: string[];
  try {
    cases = findCases(dirs);
  } catch (e) {
    process.stderr.write(`flamingo verify: ${(e as Error).message}\n`);
    return 2;
  }
  if (cases.length === 0) {
    process.stderr.write(`flamingo verify: no case.json found under ${dirs.join(', ')}\n`);
    return 1;
  }
  let failed = 0;
  for (const dir of cases) {
    const r = runParityCase(dir);
    if (!r.pass) failed++;
    if (json) {
      process.stdout.write(JSON.stringify({
        case: r.case, dir: r.dir, kind: r.kind, pass: r.pass,
        max_abs_error: Number.isFinite(r.maxAbsError) ? r.maxAbsError : null,
        outputs: r.outputs.map((o) => ({ name: o.name, pass: o.pass, max_abs_error: Number.isFinite(o.maxAbsError) ? o.maxAbsError : null, ...(o.mismatches !== undefined ? { mismatches: o.mismatches } : {}) })),
        ...(r.error ? { error: r.error } : {}),
      }) + '\n');
    } else {
      const err = Number.isFinite(r.maxAbsError) ? r.maxAbsError.toExponential(2) : 'n/a';
      process.stdout.write(`${r.pass ? 'PASS' : 'FAIL'}  ${r.case.padEnd(24)} ${r.kind.padEnd(18)} max_abs_err=${err}${r.error ? `  error: ${r.error}` : ''}\n`);
      if (!r.pass) for (const o of r.outputs.filter((x) => !x.pass)) process.stdout.write(`      ${o.name}: max_abs_err=${o.maxAbsError}${o.mismatches !== undefined ? ` mismatches=${o.mismatches}` : ''}\n`);
    }
  }
  if (!json) process.stdout.write(`${cases.length - failed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}
