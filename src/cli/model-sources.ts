/**
 * Where a command's model comes from: a model directory (`--model DIR`: config.json,
 * weights.safetensors, tokenizer.json) or a released OpenFlamingo's three sources as downloaded
 * (`--open-clip FILE --lm DIR --checkpoint FILE`), whose tokenizer is the LM directory's
 * tokenizer.json with OpenFlamingo's <|endofchunk|>, <image> (and <PAD>) added.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { FlamingoProcessor } from '../data/processor.ts';
import { loadRelease, openFlamingoTokenizerInfo, ReleaseLoadError, type ReleaseFiles } from '../io/release.ts';
import { tokenizerJsonWithOpenFlamingoTokens } from '../io/release-export.ts';
import type { Flamingo } from '../model/flamingo.ts';

export const RELEASE_OPTIONS = {
  'open-clip': { type: 'string' }, lm: { type: 'string' }, checkpoint: { type: 'string' },
} as const;

export interface ReleaseArgs {
  'open-clip'?: string;
  lm?: string;
  checkpoint?: string;
}

/** The three sources from parsed options; null when none is given; an error when only some are. */
export function releaseFiles(v: ReleaseArgs): ReleaseFiles | null {
  const given = [v['open-clip'], v.lm, v.checkpoint].filter((x) => x !== undefined).length;
  if (given === 0) return null;
  if (given < 3) throw new Error('--open-clip, --lm and --checkpoint go together (the three files of a released OpenFlamingo)');
  return { openClip: v['open-clip']!, lmDir: v.lm!, checkpoint: v.checkpoint! };
}

/** The LM directory's tokenizer with OpenFlamingo's tokens, checked against the model's token ids. */
export function releaseTokenizer(lmDir: string, model: Flamingo): BpeTokenizer {
  const info = openFlamingoTokenizerInfo(lmDir);
  if (!info) throw new ReleaseLoadError(`${lmDir}: no tokenizer.json (the language model's tokenizer is needed to run the model)`);
  const pad = info.pad === info.length - 1 && !existsSync(join(lmDir, 'tokenizer_config.json')) ? '<PAD>' : undefined;
  const json = tokenizerJsonWithOpenFlamingoTokens(info.file, info);
  const tok = BpeTokenizer.fromHuggingFace(json, { specialTokens: { image: '<image>', eoc: '<|endofchunk|>', ...(pad ? { pad } : {}), eos: '<|endoftext|>' } });
  const f = model.config.flamingo;
  if (info.media !== f.media_token_id || info.eoc !== f.eoc_token_id) {
    throw new ReleaseLoadError(`${info.file}: <image> / <|endofchunk|> are ${info.media} / ${info.eoc} but the model uses ${f.media_token_id} / ${f.eoc_token_id}`);
  }
  return tok;
}

/** Load a release and its tokenizer (generate / eval with the three sources). */
export function loadReleaseWithTokenizer(files: ReleaseFiles, log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): { model: Flamingo; tokenizer: BpeTokenizer } {
  const { model } = loadRelease(files, { log });
  return { model, tokenizer: releaseTokenizer(files.lmDir, model) };
}

/** loadReleaseWithTokenizer plus the processor sized from the model's config. */
export function loadReleaseWithProcessor(files: ReleaseFiles): { model: Flamingo; processor: FlamingoProcessor } {
  const { model, tokenizer } = loadReleaseWithTokenizer(files);
  model.setTrainingMode('none');
  return { model, processor: new FlamingoProcessor(tokenizer, { imageSize: model.config.vision.image_size, maxLength: model.config.lm.max_position_embeddings }) };
}
