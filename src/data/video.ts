/**
 * Videos as frame sequences. A video is either a folder of frame images (PNG/JPEG, ordered by file
 * name with numeric runs compared as numbers, so frame2 < frame10) or, when `ffmpeg` is on PATH, a
 * video file that ffmpeg decodes to PNG frames in a temporary folder.
 */
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { loadImage, type DecodeOptions, type RgbImage } from './image.ts';

export class VideoError extends Error {
  constructor(path: string, detail: string) {
    super(`video ${path}: ${detail}`);
    this.name = 'VideoError';
  }
}

export interface SampleOptions {
  /** Target frames per second; omit to keep every frame. */
  fps?: number;
  /** Frame rate of the input sequence (needed with `fps`; folders have no rate of their own). */
  sourceFps?: number;
  /** Upper bound on frames returned; when exceeded, frames are taken evenly across the clip. */
  maxFrames?: number;
}

/**
 * Pick frames at `fps` from a sequence recorded at `sourceFps` (frame k/fps seconds in, i.e. index
 * floor(k * sourceFps / fps)), then thin evenly to `maxFrames`. Always keeps the first frame.
 */
export function sampleFrames<T>(frames: readonly T[], options: SampleOptions = {}): T[] {
  const { fps, sourceFps, maxFrames } = options;
  let picked: T[] = frames.slice();
  if (fps !== undefined) {
    if (!(fps > 0)) throw new RangeError(`sampleFrames: fps must be > 0, got ${fps}`);
    if (sourceFps === undefined || !(sourceFps > 0)) throw new RangeError('sampleFrames: fps needs a positive sourceFps');
    const step = sourceFps / fps;
    picked = [];
    for (let k = 0; ; k++) {
      // The epsilon stops 3 * (30/10) = 8.999… from landing one frame early.
      const idx = Math.floor(k * step + 1e-9);
      if (idx >= frames.length) break;
      picked.push(frames[idx]!);
    }
  }
  if (maxFrames !== undefined) {
    if (!Number.isInteger(maxFrames) || maxFrames < 1) throw new RangeError(`sampleFrames: maxFrames must be a positive integer, got ${maxFrames}`);
    if (picked.length > maxFrames) {
      const n = picked.length;
      picked = Array.from({ length: maxFrames }, (_, i) => picked[Math.floor((i * n) / maxFrames)]!);
    }
  }
  return picked;
}

const FRAME_EXT = /\.(png|jpe?g)$/i;
const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'variant' });

/** Image files of a frame folder, sorted by name (numeric-aware). */
export function listFrameFiles(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new VideoError(dir, 'is not a folder');
  const files = readdirSync(dir).filter((f) => FRAME_EXT.test(f)).sort(collator.compare);
  if (files.length === 0) throw new VideoError(dir, 'folder holds no .png/.jpg frames');
  return files.map((f) => join(dir, f));
}

/** Absolute path of an executable on PATH, or null. */
export function findOnPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}

export interface LoadVideoOptions extends SampleOptions, DecodeOptions {}

/**
 * Frames of a video folder or file. For a file, ffmpeg resamples to `fps` itself (default: the
 * file's own rate) and `maxFrames` then thins evenly; for a folder, `sourceFps` must be given with `fps`.
 */
export function loadVideoFrames(path: string, options: LoadVideoOptions = {}): RgbImage[] {
  if (!existsSync(path)) throw new VideoError(path, 'does not exist');
  if (statSync(path).isDirectory()) {
    const files = sampleFrames(listFrameFiles(path), options);
    return files.map((f) => loadImage(f, options));
  }
  const ffmpeg = findOnPath('ffmpeg');
  if (!ffmpeg) {
    throw new VideoError(path, 'decoding a video file needs ffmpeg on PATH (apt-get install ffmpeg), or pass a folder of frame images');
  }
  const dir = mkdtempSync(join(tmpdir(), 'flamingo-frames-'));
  try {
    const args = ['-nostdin', '-v', 'error', '-i', path];
    if (options.fps !== undefined) args.push('-vf', `fps=${options.fps}`);
    args.push('-f', 'image2', join(dir, 'frame_%06d.png'));
    const r = spawnSync(ffmpeg, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    if (r.error) throw new VideoError(path, `could not run ffmpeg: ${r.error.message}`);
    if (r.status !== 0) throw new VideoError(path, `ffmpeg exited with ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const files = sampleFrames(listFrameFiles(dir), { maxFrames: options.maxFrames });
    return files.map((f) => loadImage(f, options));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
