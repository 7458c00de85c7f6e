/**
 * Videos as requests carry them: data URLs (`data:video/mp4;base64,…`, webm, avi, quicktime, and
 * image/gif, which is animated). The bytes go to a private temporary file for ffmpeg (mp4 may keep its
 * index at the end, so a pipe is not enough), which samples the model's frame count evenly over the clip,
 * already resized and centre-cropped to the model's image size (src/data/ffmpeg.ts), so a request holds
 * at most frames·S²·3 bytes of pixels. The file is removed whatever happens. Corrupt, too long, too large
 * or too slow videos are 4xx with ffmpeg's reason.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VideoError, decodeVideo } from '../data/ffmpeg.ts';
import { framesForModel } from '../data/video.ts';
import type { ServeContext } from './context.ts';
import { LimitError, RequestFieldError } from './errors.ts';
import { imageFromUrl, type ImageBytes } from './images.ts';
import type { MediaPayload } from './protocol.ts';

/** MIME type → file extension ffmpeg recognises. */
export const VIDEO_TYPES: Record<string, string> = {
  'video/mp4': '.mp4', 'video/webm': '.webm', 'video/x-msvideo': '.avi', 'video/avi': '.avi', 'video/msvideo': '.avi',
  'video/quicktime': '.mov', 'video/x-matroska': '.mkv', 'image/gif': '.gif',
};

/** Longest clip accepted (seconds) and the wall-clock budget for probing + decoding one video (ms). */
export const VIDEO_MAX_SECONDS = 600;
export const VIDEO_TIMEOUT_MS = 30_000;

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

/** MIME type and bytes of a video data URL, or null when the URL is not one (e.g. an image). */
export function videoDataUrl(url: string, param: string, ctx: ServeContext): { ext: string; bytes: Buffer } | null {
  const m = /^data:([^;,]+);base64,/i.exec(url);
  if (!m) return null;
  const ext = VIDEO_TYPES[m[1]!.toLowerCase()];
  if (!ext) return null;
  const b64 = url.slice(m[0].length);
  const limit = ctx.limits.maxRequestBytes;
  if (Math.floor((b64.length * 3) / 4) > limit + 3) throw new LimitError(param, `${param}: video larger than the limit of ${limit} bytes`, 413);
  if (!BASE64.test(b64)) throw new RequestFieldError(param, 'is not valid base64');
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length === 0) throw new RequestFieldError(param, 'the video is empty');
  return { ext, bytes };
}

/** Decode one video to the model's frames; a VideoError becomes a 4xx naming the field. */
export async function decodeVideoPayload(video: { ext: string; bytes: Buffer }, param: string, ctx: ServeContext, signal?: AbortSignal): Promise<MediaPayload> {
  const dir = await mkdtemp(join(tmpdir(), 'flamingo-video-'));
  const file = join(dir, `upload${video.ext}`);
  try {
    await writeFile(file, video.bytes, { mode: 0o600 });
    const size = ctx.config.vision.image_size;
    const frames = await decodeVideo(file, {
      frames: framesForModel(ctx.config.resampler), size, signal,
      maxBytes: ctx.limits.maxRequestBytes, maxPixels: ctx.limits.maxImagePixels, maxSeconds: VIDEO_MAX_SECONDS, timeoutMs: VIDEO_TIMEOUT_MS,
    });
    return { kind: 'video', width: size, height: size, frames: frames.map((f) => f.data) };
  } catch (e) {
    if (!(e instanceof VideoError)) throw e;
    // The message names the temporary file; the client knows the video by its field.
    const detail = e.message.replace(`video ${file}: `, '');
    if (/limit|longer than|more than/.test(detail)) throw new LimitError(param, `${param}: ${detail}`, 413);
    throw new RequestFieldError(param, `video: ${detail}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One media item of a request before decoding: an image (checked) or a video (bytes to decode). */
export type MediaPart = { kind: 'image'; image: ImageBytes } | { kind: 'video'; video: { ext: string; bytes: Buffer }; param: string };

/** A data URL (or bare base64 image) as a media part; `param` names the field in errors. */
export function mediaPart(url: unknown, param: string, ctx: ServeContext): MediaPart {
  if (typeof url !== 'string') throw new RequestFieldError(param, 'must be a string (a data URL of an image or a video)');
  const video = videoDataUrl(url, param, ctx);
  return video ? { kind: 'video', video, param } : { kind: 'image', image: imageFromUrl(url, param, ctx.limits) };
}

/** Worker payloads for the parts, videos decoded one after another. */
export async function decodeMediaParts(parts: readonly MediaPart[], ctx: ServeContext, signal?: AbortSignal): Promise<MediaPayload[]> {
  const out: MediaPayload[] = [];
  for (const p of parts) out.push(p.kind === 'image' ? { kind: 'image', bytes: p.image.bytes } : await decodeVideoPayload(p.video, p.param, ctx, signal));
  return out;
}
