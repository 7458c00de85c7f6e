/** Helpers shared by the loaders: JSON field access with file-naming errors, media refs, skip bookkeeping. */
import { existsSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadImage } from '../../data/image.ts';
import { VIDEO_EXTENSIONS, decodeVideoSync, isVideoFile, listFrameFiles, sampleFrames } from '../../data/video.ts';
import { FormatError, readJsonFile } from '../formats.ts';
import { EvalDatasetError, type Id, type LoadOptions, type MediaRef, type SkippedItem } from './types.ts';

export type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parse a JSON file, turning the formats module's errors into DatasetErrors (same message). */
export function readJson(file: string): unknown {
  try {
    return readJsonFile(file);
  } catch (e) {
    if (e instanceof FormatError) throw new EvalDatasetError(file, e.message.slice(file.length + 2));
    throw e;
  }
}

export function field<T>(file: string, where: string, o: Obj, name: string, check: (v: unknown) => v is T, what: string): T {
  const v = o[name];
  if (!check(v)) throw new EvalDatasetError(file, `${where}: field "${name}" must be ${what}, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
  return v;
}

export const isString = (v: unknown): v is string => typeof v === 'string';
export const isId = (v: unknown): v is Id => (typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && v.length > 0);
export const isArray = (v: unknown): v is unknown[] => Array.isArray(v);

/** A still image on disk. */
export function imageRef(file: string): MediaRef {
  return { key: `img:${file}`, files: [file], load: () => [loadImage(file)] };
}

/**
 * A video stored as a folder of frame images: `frames` frames taken evenly across the clip (all of
 * them when the folder holds fewer). The key includes the frame count because it changes the pixels.
 */
export function frameFolderRef(dir: string, frames: number): MediaRef {
  return {
    key: `video:${dir}#${frames}`,
    files: [dir],
    load: () => sampleFrames(listFrameFiles(dir), { maxFrames: frames }).map((f) => loadImage(f)),
  };
}

/**
 * A video file decoded by ffmpeg: `frames` frames sampled evenly over the clip (data/ffmpeg.ts). The
 * key includes the frame count because it changes the pixels.
 */
export function videoFileRef(file: string, frames: number): MediaRef {
  return { key: `video:${file}#${frames}`, files: [file], load: () => decodeVideoSync(file, { frames }) };
}

/**
 * A video named `name` under `dir`: the folder dir/name (frame images), or the file dir/name when it
 * has a video extension, or the first of dir/name.{mp4,webm,avi,gif,…} that exists. When none exists,
 * the folder is the reference (its absence is reported as missing media).
 */
export function videoRef(dir: string, name: string, frames: number): MediaRef {
  const base = join(dir, name);
  if (existsSync(base) && statSync(base).isDirectory()) return frameFolderRef(base, frames);
  if (isVideoFile(base)) return videoFileRef(base, frames);
  for (const ext of VIDEO_EXTENSIONS) if (existsSync(base + ext)) return videoFileRef(base + ext, frames);
  return frameFolderRef(base, frames);
}

/** Media check at load time: every file exists (image or video file) or is a non-empty folder (frames). */
export function missingReason(ref: MediaRef): { file: string; reason: string } | null {
  for (const f of ref.files) {
    if (!existsSync(f)) return { file: f, reason: 'file not found' };
    if (ref.key.startsWith('video:') && !isVideoFile(f)) {
      if (!statSync(f).isDirectory()) return { file: f, reason: 'not a folder of frames' };
      try {
        listFrameFiles(f);
      } catch (e) {
        return { file: f, reason: (e as Error).message };
      }
    } else if (!statSync(f).isFile()) {
      return { file: f, reason: 'not a file' };
    }
  }
  return null;
}

/**
 * Keep the items whose media exist. A missing file is an error naming it, or with skipInvalid the
 * item is dropped and recorded.
 */
/**
 * The query and support splits of a dataset whose splits are one file each (`read` reads one), query first,
 * with their media checked: items whose media is missing are skipped (or fail) as checkMedia says.
 */
export function readCheckedSplits<T extends { id: Id; media: MediaRef }>(
  opts: LoadOptions & { query: string; support: string }, read: (file: string) => T[],
): { query: T[]; support: T[]; skipped: SkippedItem[] } {
  const skipped: SkippedItem[] = [];
  const query = checkMedia(read(opts.query), 'query', opts, skipped, opts.query);
  const support = checkMedia(read(opts.support), 'support', opts, skipped, opts.support);
  return { query, support, skipped };
}

export function checkMedia<T extends { id: Id; media: MediaRef }>(
  items: T[], split: 'support' | 'query', opts: LoadOptions, skipped: SkippedItem[], source: string,
): T[] {
  const kept: T[] = [];
  for (const it of items) {
    const bad = missingReason(it.media);
    if (!bad) {
      kept.push(it);
      continue;
    }
    if (!opts.skipInvalid) {
      throw new EvalDatasetError(bad.file, `${bad.reason} (media of ${split} item ${JSON.stringify(it.id)} listed in ${source}; pass --skip-invalid to skip such items)`);
    }
    skipped.push({ split, id: it.id, file: bad.file, reason: bad.reason });
  }
  return kept;
}

/** Python-style %-format for image file names: %d, %0Nd, %s (e.g. COCO_val2014_%012d.jpg). */
export function formatPattern(pattern: string, id: Id): string {
  let used = false;
  const out = pattern.replace(/%(0?)(\d*)([ds%])/g, (_m, zero: string, width: string, conv: string) => {
    if (conv === '%') return '%';
    used = true;
    if (conv === 'd') {
      const n = typeof id === 'number' ? id : Number(id);
      if (!Number.isInteger(n)) throw new EvalDatasetError(pattern, `image id ${JSON.stringify(id)} is not an integer but the pattern uses %d`);
      const s = String(Math.abs(n));
      const w = width ? Number(width) : 0;
      return (n < 0 ? '-' : '') + s.padStart(Math.max(0, w - (n < 0 ? 1 : 0)), zero ? '0' : ' ');
    }
    return String(id).padStart(width ? Number(width) : 0, ' ');
  });
  if (!used) throw new EvalDatasetError(pattern, 'image name pattern has no %d or %s placeholder');
  return out;
}

export function writeJson(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(value)}\n`);
}
