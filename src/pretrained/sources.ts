/** The layouts `loadPretrained` can read, tried in this order when no source is named. */
import { modelDirSource } from './model-dir.ts';
import { releaseSource } from './release.ts';
import type { PretrainedSource } from './types.ts';

export const SOURCES: readonly PretrainedSource[] = [modelDirSource, releaseSource];
