/**
 * Video files (mp4, webm, avi, gif, mov, mkv) decoded by the system's ffmpeg into RGB frames.
 *
 * ffprobe reads the size and duration first (so every limit is checked before decoding), then ffmpeg
 * samples F frames evenly over the clip (its fps filter at F/duration frames per second: frame k is
 * the one showing at k·duration/F) and streams them as raw RGB24 over a pipe. Bounded: input bytes,
 * pixels per frame, clip duration, wall time (the process is killed), and output bytes (exactly F
 * frames are read; anything more kills the process). Frames keep their stored orientation
 * (-noautorotate), so their size is the one ffprobe reported.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, extname, join } from 'node:path';
import { makeImage, type RgbImage } from './image.ts';
import { FlamingoError } from '../errors.ts';

export class VideoError extends FlamingoError {
  constructor(readonly file: string, detail: string) {
    super(`video ${file}: ${detail}`);
  }
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

export const VIDEO_EXTENSIONS: readonly string[] = ['.mp4', '.webm', '.avi', '.gif', '.mov', '.mkv', '.m4v'];

/** True when the file name has a video extension (case-insensitive). */
export function isVideoFile(path: string): boolean {
  return VIDEO_EXTENSIONS.includes(extname(path).toLowerCase());
}

export interface VideoLimits {
  /** Largest input file (default 512 MiB). */
  maxBytes?: number;
  /** Largest frame, width·height (default 4096·4096). */
  maxPixels?: number;
  /** Longest clip in seconds (default 3600). */
  maxSeconds?: number;
  /** Wall-clock limit for probing plus decoding, ms (default 60 000). */
  timeoutMs?: number;
}

export interface VideoDecodeOptions extends VideoLimits {
  /** Frames to sample evenly over the clip. */
  frames: number;
  /** Cancels decoding (the ffmpeg process is killed). */
  signal?: AbortSignal;
  /**
   * Have ffmpeg resize (shorter side, bicubic) and centre-crop every frame to size×size, CLIP's geometry,
   * so only model-sized frames cross the pipe (the server: memory per request stays F·size²·3 bytes).
   */
  size?: number;
}

export interface VideoInfo {
  width: number;
  height: number;
  /** Seconds. */
  duration: number;
  codec: string;
}

const DEFAULTS = { maxBytes: 512 * 1024 * 1024, maxPixels: 4096 * 4096, maxSeconds: 3600, timeoutMs: 60_000 } as const;
const STDERR_KEEP = 4096;

function tool(name: 'ffmpeg' | 'ffprobe', path: string): string {
  const p = findOnPath(name);
  if (!p) throw new VideoError(path, `decoding a video file needs ffmpeg on PATH (apt-get install ffmpeg), ${name} not found; scripts/setup.sh installs it`);
  return p;
}

function lastLines(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-3).join(' | ') || 'no message';
}

function checkFile(path: string, maxBytes: number): void {
  if (!existsSync(path)) throw new VideoError(path, 'does not exist');
  const st = statSync(path);
  if (!st.isFile()) throw new VideoError(path, 'is not a file');
  if (st.size === 0) throw new VideoError(path, 'is empty');
  if (st.size > maxBytes) throw new VideoError(path, `is ${st.size} bytes, more than the limit of ${maxBytes}`);
}

const PROBE_ARGS = ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,codec_name,duration:format=duration', '-of', 'json'];

/** Parse ffprobe's JSON and check the limits. */
export function parseProbe(path: string, stdout: string, limits: VideoLimits = {}): VideoInfo {
  let j: { streams?: { width?: number; height?: number; codec_name?: string; duration?: string }[]; format?: { duration?: string } };
  try {
    j = JSON.parse(stdout) as typeof j;
  } catch {
    throw new VideoError(path, 'ffprobe printed no readable description');
  }
  const s = j.streams?.[0];
  if (!s) throw new VideoError(path, 'has no video stream');
  const width = s.width ?? 0;
  const height = s.height ?? 0;
  if (!(width > 0 && height > 0)) throw new VideoError(path, 'video stream has no frame size');
  const maxPixels = limits.maxPixels ?? DEFAULTS.maxPixels;
  if (width * height > maxPixels) throw new VideoError(path, `frames of ${width}×${height} exceed the limit of ${maxPixels} pixels`);
  const duration = Number(s.duration ?? j.format?.duration);
  if (!(duration > 0) || !Number.isFinite(duration)) throw new VideoError(path, 'has no known duration (cannot sample frames evenly)');
  const maxSeconds = limits.maxSeconds ?? DEFAULTS.maxSeconds;
  if (duration > maxSeconds) throw new VideoError(path, `lasts ${duration.toFixed(1)} s, longer than the limit of ${maxSeconds} s`);
  return { width, height, duration, codec: s.codec_name ?? 'unknown' };
}

/** ffmpeg arguments: F frames evenly over the clip as raw RGB24 on stdout. */
export function decodeArgs(path: string, info: VideoInfo, frames: number, size?: number): string[] {
  if (!Number.isInteger(frames) || frames < 1) throw new VideoError(path, `frames must be a positive integer, got ${frames}`);
  if (size !== undefined && !(Number.isInteger(size) && size >= 1)) throw new VideoError(path, `size must be a positive integer, got ${size}`);
  const rate = frames / info.duration;
  let vf = `fps=fps=${rate.toPrecision(12)}`;
  if (size !== undefined) vf += `,scale=${size}:${size}:force_original_aspect_ratio=increase:flags=bicubic,crop=${size}:${size}`;
  return [
    '-nostdin', '-v', 'error', '-noautorotate', '-i', path, '-map', '0:v:0', '-an', '-sn',
    '-vf', vf, '-frames:v', String(frames), '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
  ];
}

/** Width and height of the frames ffmpeg writes. */
function outSize(info: VideoInfo, size?: number): { width: number; height: number } {
  return size === undefined ? { width: info.width, height: info.height } : { width: size, height: size };
}

function framesFrom(path: string, buf: Buffer, dims: { width: number; height: number }): RgbImage[] {
  const per = dims.width * dims.height * 3;
  const n = Math.floor(buf.length / per);
  if (n === 0) throw new VideoError(path, 'ffmpeg decoded no frames');
  return Array.from({ length: n }, (_, k) => makeImage(dims.width, dims.height, new Uint8Array(buf.subarray(k * per, (k + 1) * per))));
}

function syncFailure(path: string, what: string, r: SpawnSyncReturns<Buffer | string>, timeoutMs: number): VideoError {
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ETIMEDOUT' || r.signal === 'SIGKILL') return new VideoError(path, `${what} did not finish within ${timeoutMs} ms`);
  if (code === 'ENOBUFS') return new VideoError(path, `${what} produced more output than expected`);
  if (r.error) return new VideoError(path, `could not run ${what}: ${r.error.message}`);
  return new VideoError(path, `${what} failed (exit ${r.status}): ${lastLines(String(r.stderr))}`);
}

/** Size and duration of a video file (limits checked). */
export function probeVideoSync(path: string, limits: VideoLimits = {}): VideoInfo {
  checkFile(path, limits.maxBytes ?? DEFAULTS.maxBytes);
  const timeoutMs = limits.timeoutMs ?? DEFAULTS.timeoutMs;
  const r = spawnSync(tool('ffprobe', path), [...PROBE_ARGS, path], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 });
  if (r.error || r.status !== 0) {
    if (!r.error && r.status !== null) throw new VideoError(path, `is not a readable video: ${lastLines(r.stderr)}`);
    throw syncFailure(path, 'ffprobe', r, timeoutMs);
  }
  return parseProbe(path, r.stdout, limits);
}

/**
 * Decode `frames` evenly spaced frames, synchronously (for loaders whose media are read synchronously,
 * e.g. the evaluation datasets). Output is bounded by maxBuffer = the expected frame bytes.
 */
export function decodeVideoSync(path: string, opts: VideoDecodeOptions): RgbImage[] {
  const info = probeVideoSync(path, opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.timeoutMs;
  const dims = outSize(info, opts.size);
  const expected = opts.frames * dims.width * dims.height * 3;
  const r = spawnSync(tool('ffmpeg', path), decodeArgs(path, info, opts.frames, opts.size), { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: expected + 1 });
  if (r.error || r.status !== 0) throw syncFailure(path, 'ffmpeg', r, timeoutMs);
  return framesFrom(path, r.stdout, dims);
}

interface Run { stdout: Buffer; stderr: string }

/** Run a tool, keeping at most maxOut bytes of stdout (more kills it), with a deadline and a cancel signal. */
function runBounded(cmd: string, args: string[], path: string, what: string, maxOut: number, deadline: number, signal?: AbortSignal): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    if (signal?.aborted) { reject(new VideoError(path, `${what} cancelled`)); return; }
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = Buffer.alloc(maxOut);
    let used = 0;
    let stderr = '';
    let failure: VideoError | null = null;
    const kill = (err: VideoError): void => {
      if (failure) return;
      failure = err;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(new VideoError(path, `${what} did not finish within the time limit`)), Math.max(0, deadline - Date.now()));
    const onAbort = (): void => kill(new VideoError(path, `${what} cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      if (used + chunk.length > maxOut) { kill(new VideoError(path, `${what} produced more output than expected`)); return; }
      chunk.copy(out, used);
      used += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP); });
    child.on('error', (e) => kill(new VideoError(path, `could not run ${what}: ${e.message}`)));
    child.on('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (failure) reject(failure);
      else if (code !== 0) reject(new VideoError(path, `${what === 'ffprobe' ? 'is not a readable video' : `${what} failed (exit ${code})`}: ${lastLines(stderr)}`));
      else resolvePromise({ stdout: out.subarray(0, used), stderr });
    });
  });
}

/** Size and duration of a video file, asynchronously. */
export async function probeVideo(path: string, limits: VideoLimits & { signal?: AbortSignal } = {}, deadline = Date.now() + (limits.timeoutMs ?? DEFAULTS.timeoutMs)): Promise<VideoInfo> {
  checkFile(path, limits.maxBytes ?? DEFAULTS.maxBytes);
  const r = await runBounded(tool('ffprobe', path), [...PROBE_ARGS, path], path, 'ffprobe', 1 << 20, deadline, limits.signal);
  return parseProbe(path, r.stdout.toString('utf8'), limits);
}

/** Decode `frames` evenly spaced frames, streamed from the ffmpeg process (server, CLI). */
export async function decodeVideo(path: string, opts: VideoDecodeOptions): Promise<RgbImage[]> {
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULTS.timeoutMs);
  const info = await probeVideo(path, opts, deadline);
  const dims = outSize(info, opts.size);
  const expected = opts.frames * dims.width * dims.height * 3;
  const r = await runBounded(tool('ffmpeg', path), decodeArgs(path, info, opts.frames, opts.size), path, 'ffmpeg', expected, deadline, opts.signal);
  return framesFrom(path, r.stdout, dims);
}
