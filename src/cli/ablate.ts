/**
 * `flamingo ablate <ablations.json> --out DIR [--resume] [--quick] [--json] [--quiet]`: train and evaluate each
 * variant of an ablation file (src/eval/ablation.ts, docs/ABLATIONS.md) and print the table.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../model/config.ts';
import { resolveAblationPlan } from '../eval/ablation-plan.ts';
import { runAblation } from '../eval/ablation.ts';
import { describeError, UsageError } from '../errors.ts';
import { parseOptions } from './args.ts';

const USAGE = `usage: flamingo ablate <ablations.json> --out DIR [--resume] [--quick] [--json] [--quiet]

  --out DIR    run directory: variants/<id>/ (training, model, result.json), table.txt, table.json, loss.svg
  --resume     continue the run in DIR: finished variants are kept, an unfinished one continues from its checkpoint
  --quick      the file's "quick" budget (a few steps, a few items): checks the whole pipeline in minutes
  --json       print {"rows": [{"variant", "metrics": {...}, "wall_s"}]} instead of the table
  --quiet      no training progress bars (status lines still go to stderr)
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, {
    out: { type: 'string' }, resume: { type: 'boolean' }, quick: { type: 'boolean' }, json: { type: 'boolean' },
    quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, true);
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`one ablation file expected, got ${positionals.length}: ${positionals.join(' ')}`);
  const file = positionals[0];
  if (file === undefined) throw new UsageError('missing the ablation file (flamingo ablate configs/ablations.json --out DIR)');
  if (values.out === undefined) throw new UsageError('missing --out DIR');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${describeError(e)}`);
  }
  const plan = resolveAblationPlan(raw, dirname(resolve(file)), values.quick === true);
  const out = resolve(values.out);
  const r = runAblation(plan, { outDir: out, resume: values.resume === true, progress: values.quiet !== true });
  if (values.json) process.stdout.write(`${JSON.stringify({ rows: r.rows })}\n`);
  else process.stdout.write(`${r.table}table ${join(out, 'table.txt')}; loss curves ${join(out, 'loss.svg')}\n`);
  return 0;
}
