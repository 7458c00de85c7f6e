/**
 * `flamingo train <config.json> --out DIR [--resume] [--quiet]`: run the training stages of a config
 * (see docs/TRAINING.md) and write a loadable Flamingo model directory to DIR/model.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { resolveTrainConfig } from '../train/config.ts';
import { ConfigError } from '../model/config.ts';
import { trainFromConfig } from '../train/run.ts';
import { describeError, UsageError } from '../errors.ts';
import { parseOptions } from './args.ts';

const USAGE = `usage: flamingo train <config.json> --out DIR [--resume] [--quiet]

  --out DIR    run directory (checkpoints, metrics, loss curves, tokenizer, final model in DIR/model)
  --resume     continue the run in DIR from its newest checkpoint (same config required)
  --quiet      no progress bar
`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, {
    out: { type: 'string' }, resume: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  }, true);
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`one config file expected, got ${positionals.length}: ${positionals.join(' ')}`);
  const config = positionals[0];
  if (config === undefined) throw new UsageError('missing the config file (flamingo train <config.json> --out DIR)');
  if (values.out === undefined) throw new UsageError('missing --out DIR');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(config, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read ${config}: ${describeError(e)}`);
  }
  const cfg = resolveTrainConfig(raw);
  trainFromConfig(cfg, { outDir: resolve(values.out), resume: values.resume === true, progress: values.quiet !== true, baseDir: dirname(resolve(config)) });
  return 0;
}
