/**
 * `flamingo convert --open-clip FILE --lm DIR --checkpoint FILE --out MODEL_DIR [--dtype fp32|bf16|int8]`:
 * a released OpenFlamingo's three sources (as downloaded) → one model directory (config.json,
 * weights.safetensors, tokenizer files with OpenFlamingo's tokens) that `generate --model`, `eval`
 * and the library load. With --dtype bf16 / int8 the frozen linear weights are packed as they are
 * read (never a float32 copy of them) and saved packed (src/io/checkpoint.ts names the format).
 */
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveFlamingo } from '../io/checkpoint.ts';
import { loadRelease } from '../io/release.ts';
import { TOKENIZER_FILES, tokenizerJsonWithOpenFlamingoTokens } from '../io/release-export.ts';
import { modelBytes, storedDType } from '../nn/quantize.ts';
import { UsageError } from '../errors.ts';
import { dtypeArg, parseOptions } from './args.ts';
import { RELEASE_OPTIONS, releaseFiles } from './model-sources.ts';

const USAGE = 'usage: flamingo convert --open-clip FILE --lm DIR --checkpoint FILE --out MODEL_DIR [--dtype fp32|bf16|int8]\n';

export async function run(args: string[]): Promise<number> {
  const { values: v } = parseOptions(args, { ...RELEASE_OPTIONS, out: { type: 'string' }, dtype: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (v.help) { process.stdout.write(USAGE); return 0; }
  const loc = releaseFiles(v);
  if (!loc || !v.out) throw new UsageError('--open-clip, --lm, --checkpoint and --out are required');
  const dtype = dtypeArg(v.dtype);
  const out = v.out;
  const files = { openClip: loc.openClip, lmDir: loc.lm, checkpoint: loc.checkpoint };
  const t0 = Date.now();
  const { model, tokenizer } = loadRelease(files, { dtype, log: (s) => process.stderr.write(`${s}\n`) });
  saveFlamingo(model, out, { source: 'openflamingo-release' });
  if (tokenizer) {
    writeFileSync(join(out, 'tokenizer.json'), tokenizerJsonWithOpenFlamingoTokens(tokenizer.file, tokenizer));
    for (const f of TOKENIZER_FILES.slice(1)) if (existsSync(join(files.lmDir, f))) copyFileSync(join(files.lmDir, f), join(out, f));
  } else {
    process.stderr.write(`flamingo convert: ${files.lmDir} has no tokenizer.json; ${out} has none either (generate needs one)\n`);
  }
  process.stderr.write(`flamingo convert: wrote ${out} (${model.numParameters()} parameters, weights ${storedDType(model)}, `
    + `${(modelBytes(model) / 2 ** 20).toFixed(0)} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  return 0;
}
