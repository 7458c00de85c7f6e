/**
 * A released OpenFlamingo as downloaded: the open_clip weight file, the Hugging Face LM directory and
 * OpenFlamingo's checkpoint (io/release.ts assembles them). The location is either those three paths
 * ({ openClip, lm, checkpoint }) or a directory holding them in `flamingo export`'s layout
 * (clip/open_clip_*, lm/config.json, openflamingo/checkpoint.*).
 *
 * The tokenizer is the LM directory's tokenizer.json with OpenFlamingo's tokens added as
 * `create_model_and_transforms` adds them (<|endofchunk|>, <image>, and <PAD> when there is no pad
 * token); its ids must be the model's.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizerDir } from '../data/tokenizer-files.ts';
import { loadRelease } from '../io/release.ts';
import { ReleaseLoadError, type ReleaseFiles } from '../io/release-files.ts';
import type { Flamingo } from '../model/flamingo.ts';
import type { BpeTokenizer } from '../data/tokenizer.ts';
import type { PretrainedLocation, PretrainedSource, ReleaseLocation } from './types.ts';

const CLIP_NAMES = ['open_clip_pytorch_model.bin', 'open_clip_model.safetensors', 'open_clip_pytorch_model.safetensors'];
const CHECKPOINT_NAMES = ['checkpoint.pt', 'checkpoint.safetensors'];

/** The first of `names` present in `dir`, else null. */
function firstIn(dir: string, names: readonly string[]): string | null {
  for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  return null;
}

/** `flamingo export`'s directory layout → the three paths; a reason when the directory is not one. */
function exportedLayout(dir: string): ReleaseFiles | string {
  const clip = existsSync(join(dir, 'clip')) ? firstIn(join(dir, 'clip'), CLIP_NAMES) : null;
  const ck = existsSync(join(dir, 'openflamingo')) ? firstIn(join(dir, 'openflamingo'), CHECKPOINT_NAMES) : null;
  const lm = join(dir, 'lm');
  const missing = [
    ...(clip ? [] : [`clip/${CLIP_NAMES[0]}`]), ...(existsSync(join(lm, 'config.json')) ? [] : ['lm/config.json']),
    ...(ck ? [] : [`openflamingo/${CHECKPOINT_NAMES[0]}`]),
  ];
  if (missing.length > 0) return `has no ${missing.join(', ')}`;
  return { openClip: clip!, lmDir: lm, checkpoint: ck! };
}

export function isReleaseLocation(x: PretrainedLocation): x is ReleaseLocation {
  return typeof x === 'object' && x !== null;
}

/** The three files of a location, or why it is not a release. */
export function releaseFilesOf(location: PretrainedLocation): ReleaseFiles | string {
  if (isReleaseLocation(location)) {
    const problems: string[] = [];
    const file = (p: unknown, what: string): void => {
      if (typeof p !== 'string' || p === '') problems.push(`${what} must be a path`);
      else if (!existsSync(p)) problems.push(`${what} ${p} does not exist`);
    };
    file(location.openClip, 'openClip');
    file(location.lm, 'lm');
    file(location.checkpoint, 'checkpoint');
    if (problems.length === 0 && !statSync(location.lm).isDirectory()) problems.push(`lm ${location.lm} is not a directory (the Hugging Face LM directory)`);
    if (problems.length > 0) return problems.join('; ');
    return { openClip: location.openClip, lmDir: location.lm, checkpoint: location.checkpoint };
  }
  return exportedLayout(location);
}

/** The LM directory's tokenizer with OpenFlamingo's tokens, checked against the model's token ids. */
export function releaseTokenizer(lmDir: string, model: Flamingo): BpeTokenizer {
  if (!existsSync(join(lmDir, 'tokenizer.json'))) {
    throw new ReleaseLoadError(`${lmDir}: no tokenizer.json (the language model's tokenizer is needed to run the model)`);
  }
  const { tokenizer } = loadTokenizerDir(lmDir, { openFlamingo: true });
  const f = model.config.flamingo;
  const got = { '<image>': tokenizer.imageTokenId, '<|endofchunk|>': tokenizer.eocTokenId };
  if (got['<image>'] !== f.media_token_id || got['<|endofchunk|>'] !== f.eoc_token_id) {
    throw new ReleaseLoadError(`${join(lmDir, 'tokenizer.json')}: with OpenFlamingo's tokens, <image> / <|endofchunk|> are ${got['<image>']} / `
      + `${got['<|endofchunk|>']} but the model uses ${f.media_token_id} / ${f.eoc_token_id} (tokenizer of another model?)`);
  }
  return tokenizer;
}

export const releaseSource: PretrainedSource = {
  name: 'openflamingo-release',
  describe: "an OpenFlamingo release ({ openClip, lm, checkpoint } files, or flamingo export's clip/ lm/ openflamingo/ directory)",
  check(location) {
    const r = releaseFilesOf(location);
    return typeof r === 'string' ? r : null;
  },
  load(location, options) {
    const files = releaseFilesOf(location);
    if (typeof files === 'string') throw new ReleaseLoadError(`${JSON.stringify(location)}: ${files}`);
    const { model } = loadRelease(files, { dtype: options.dtype, log: options.log });
    return { model, tokenizer: releaseTokenizer(files.lmDir, model) };
  },
};
