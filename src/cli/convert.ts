/**
 * `flamingo convert --open-clip FILE --lm DIR --checkpoint FILE --out MODEL_DIR`: a released
 * OpenFlamingo's three sources (as downloaded) → one model directory (config.json,
 * weights.safetensors, tokenizer files with OpenFlamingo's tokens) that `generate --model`, `eval`
 * and the library load.
 */
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { saveFlamingo } from '../io/checkpoint.ts';
import { loadRelease } from '../io/release.ts';
import { TOKENIZER_FILES, tokenizerJsonWithOpenFlamingoTokens } from '../io/release-export.ts';
import { RELEASE_OPTIONS, releaseFiles } from './model-sources.ts';

const USAGE = 'usage: flamingo convert --open-clip FILE --lm DIR --checkpoint FILE --out MODEL_DIR\n';

export async function run(args: string[]): Promise<number> {
  let files;
  let out: string;
  try {
    const { values: v } = parseArgs({ args, options: { ...RELEASE_OPTIONS, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    if (v.help) { process.stdout.write(USAGE); return 0; }
    files = releaseFiles(v);
    if (!files || !v.out) throw new Error('--open-clip, --lm, --checkpoint and --out are required');
    out = v.out;
  } catch (e) {
    process.stderr.write(`flamingo convert: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const t0 = Date.now();
  const { model, tokenizer } = loadRelease(files, { log: (s) => process.stderr.write(`${s}\n`) });
  saveFlamingo(model, out, { source: 'openflamingo-release' });
  if (tokenizer) {
    writeFileSync(join(out, 'tokenizer.json'), tokenizerJsonWithOpenFlamingoTokens(tokenizer.file, tokenizer));
    for (const f of TOKENIZER_FILES.slice(1)) if (existsSync(join(files.lmDir, f))) copyFileSync(join(files.lmDir, f), join(out, f));
  } else {
    process.stderr.write(`flamingo convert: ${files.lmDir} has no tokenizer.json; ${out} has none either (generate needs one)\n`);
  }
  process.stderr.write(`flamingo convert: wrote ${out} (${model.numParameters()} parameters, ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  return 0;
}
