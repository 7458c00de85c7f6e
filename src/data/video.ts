/**
 * Videos as frame sequences. A video is either a folder of frame images (PNG/JPEG, ordered by file
 * name with numeric runs compared as numbers, so frame2 < frame10) or a video file decoded by the
 * system's ffmpeg (src/data/ffmpeg.ts), frames sampled evenly over the clip.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadImage, type DecodeOptions, type RgbImage } from './image.ts';
import { VideoError, decodeVideoSync, isVideoFile, type VideoLimits } from './ffmpeg.ts';

export { VideoError, findOnPath, isVideoFile, decodeVideo, decodeVideoSync, VIDEO_EXTENSIONS } from './ffmpeg.ts';

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

export interface LoadVideoOptions extends SampleOptions, DecodeOptions, VideoLimits {}

/** Frames of a video when the caller does not say: the paper's 8 (Flamingo samples 8 frames per clip). */
export const DEFAULT_VIDEO_FRAMES = 8;

/**
 * Frames of a video folder or file. A folder keeps every frame, or samples `fps` (with `sourceFps`),
 * then thins evenly to `maxFrames`. A file is sampled by ffmpeg: `maxFrames` (default 8) frames spread
 * evenly over the clip (`fps` does not apply to files).
 */
export function loadVideoFrames(path: string, options: LoadVideoOptions = {}): RgbImage[] {
  if (!existsSync(path)) throw new VideoError(path, 'does not exist');
  if (statSync(path).isDirectory()) {
    const files = sampleFrames(listFrameFiles(path), options);
    return files.map((f) => loadImage(f, options));
  }
  if (options.fps !== undefined) throw new VideoError(path, 'fps applies to frame folders; a video file is sampled evenly to maxFrames frames');
  return decodeVideoSync(path, { ...options, frames: options.maxFrames ?? DEFAULT_VIDEO_FRAMES });
}

/**
 * Frames per video for a model: its resampler's frame-embedding count (max_num_frames; the paper's
 * models sample 8), or DEFAULT_VIDEO_FRAMES when the model has no frame embedding.
 */
export function framesForModel(resampler: { max_num_frames: number | null }): number {
  return resampler.max_num_frames ?? DEFAULT_VIDEO_FRAMES;
}

/**
 * One media item from a path: a video file (by extension, see VIDEO_EXTENSIONS) or a folder of
 * frames gives `frames` frames; any other file is a still image (one frame).
 */
export function loadMedia(path: string, frames: number, limits: VideoLimits = {}): RgbImage[] {
  if (existsSync(path) && statSync(path).isDirectory()) return loadVideoFrames(path, { maxFrames: frames });
  if (isVideoFile(path)) return decodeVideoSync(path, { ...limits, frames });
  return [loadImage(path)];
}
