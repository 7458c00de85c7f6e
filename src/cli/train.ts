/**
 * `flamingo train <config.json> --out DIR [--resume] [--quiet]`: run the training stages of a config
 * (see docs/TRAINING.md) and write a loadable Flamingo model directory to DIR/model.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { resolveTrainConfig } from '../train/config.ts';
import { trainFromConfig } from '../train/run.ts';

const USAGE = `usage: flamingo train <config.json> --out DIR [--resume] [--quiet]

  --out DIR    run directory (checkpoints, metrics, loss curves, tokenizer, final model in DIR/model)
  --resume     continue the run in DIR from its newest checkpoint (same config required)
  --quiet      no progress bar
`;

export async function run(args: string[]): Promise<number> {
  let config: string | undefined;
  let out: string | undefined;
  let resume = false;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--out') out = args[++i];
    else if (a.startsWith('--out=')) out = a.slice(6);
    else if (a === '--resume') resume = true;
    else if (a === '--quiet') quiet = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      return 0;
    } else if (a.startsWith('-')) {
      process.stderr.write(`flamingo train: unknown option ${a}\n${USAGE}`);
      return 2;
    } else if (config === undefined) config = a;
    else {
      process.stderr.write(`flamingo train: unexpected argument ${a}\n${USAGE}`);
      return 2;
    }
  }
  if (!config || !out) {
    process.stderr.write(USAGE);
    return 2;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(config, 'utf8'));
  } catch (e) {
    process.stderr.write(`flamingo train: cannot read ${config}: ${(e as Error).message}\n`);
    return 2;
  }
  const cfg = resolveTrainConfig(raw);
  trainFromConfig(cfg, { outDir: resolve(out), resume, progress: !quiet, baseDir: dirname(resolve(config)) });
  return 0;
}
