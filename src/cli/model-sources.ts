/**
 * Where a command's model comes from: a model directory (`--model DIR`: config.json,
 * weights.safetensors, tokenizer.json; or a release in `flamingo export`'s layout) or a released
 * OpenFlamingo's three sources as downloaded (`--open-clip FILE --lm DIR --checkpoint FILE`). Both
 * load through `loadPretrained` (src/pretrained/release.ts reads the release and its tokenizer).
 */
import { UsageError } from '../errors.ts';
import type { ReleaseLocation } from '../pretrained/types.ts';

export const RELEASE_OPTIONS = {
  'open-clip': { type: 'string' }, lm: { type: 'string' }, checkpoint: { type: 'string' },
} as const;

export interface ReleaseArgs {
  'open-clip'?: string;
  lm?: string;
  checkpoint?: string;
}

/** The three sources from parsed options; null when none is given; a usage error when only some are. */
export function releaseFiles(v: ReleaseArgs): ReleaseLocation | null {
  const given = [v['open-clip'], v.lm, v.checkpoint].filter((x) => x !== undefined).length;
  if (given === 0) return null;
  if (given < 3) throw new UsageError('--open-clip, --lm and --checkpoint go together (the three files of a released OpenFlamingo)');
  return { openClip: v['open-clip']!, lm: v.lm!, checkpoint: v.checkpoint! };
}

/** `--model DIR` or the three release files (exactly one of them), as a loadPretrained location. */
export function modelLocation(v: ReleaseArgs & { model?: string }): string | ReleaseLocation {
  const files = releaseFiles(v);
  if (files && v.model !== undefined) throw new UsageError('give --model DIR or the three release files, not both');
  if (!files && v.model === undefined) throw new UsageError('--model DIR (or --open-clip FILE --lm DIR --checkpoint FILE) is required');
  return files ?? v.model!;
}
