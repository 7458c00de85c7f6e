/**
 * `flamingo export MODEL_DIR --out DIR`: a model directory → the three sources PyTorch OpenFlamingo
 * loads, as torch.save files (clip/open_clip_pytorch_model.bin, lm/config.json + lm/pytorch_model.bin
 * + tokenizer files, openflamingo/checkpoint.pt); see src/io/release-export.ts and the README.
 */
import { loadFlamingo } from '../io/checkpoint.ts';
import { exportRelease } from '../io/release-export.ts';
import { parseOptions } from './args.ts';
import { UsageError } from '../errors.ts';

const USAGE = 'usage: flamingo export MODEL_DIR --out DIR\n';

export async function run(args: string[]): Promise<number> {
  const { values: v, positionals } = parseOptions(args, { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (v.help) { process.stdout.write(USAGE); return 0; }
  if (positionals.length !== 1 || !v.out) throw new UsageError(`one MODEL_DIR and --out are required`);
  const dir = positionals[0]!;
  const out = v.out;
  const model = loadFlamingo(dir);
  const r = exportRelease(model, out, { tokenizerDir: dir });
  for (const n of r.notes) process.stderr.write(`flamingo export: note: ${n} (PyTorch OpenFlamingo needs its code changed to load this model)\n`);
  process.stdout.write(`${JSON.stringify(r)}\n`);
  return 0;
}
