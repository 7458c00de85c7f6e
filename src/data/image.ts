/**
 * Still images: decode PNG/JPEG (header first, within limits) into RGB images, read image files of bounded
 * size, encode PNG. Resizing and crops: image-transforms.ts; the model's input tensor: image-tensor.ts.
 *
 * `decodeImage` / `loadImage` are the one entry point for image bytes (CLI, evaluation, datasets,
 * the HTTP server's uploads): they refuse files whose header announces more than `ImageLimits`
 * before allocating pixel memory, treat short or truncated data as an error, and read files of
 * bounded size only.
 *
 * The RGB image they return carries the decoded image in its own Pillow mode (`source`), so a
 * model whose preprocessing resizes "as opened" (open_clip in OpenFlamingo's evaluation) can do
 * so. Default RGB conversion ('white') composites transparency onto white, the convention this
 * project's own models were trained with; `{ alpha: 'drop' }` is Pillow's `convert("RGB")`.
 */
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { PNG } from 'pngjs';
import { FlamingoError } from '../errors.ts';
import {
  ImageDecodeError, ImageTooLargeError, checkDimensions, convertToRgb, resolveLimits,
  type DecodedImage, type ImageLimits,
} from './image-format.ts';
import { decodePng, readPngHeader } from './png.ts';
import { decodeJpeg, readJpegHeader } from './jpeg.ts';

export { ImageDecodeError, ImageTooLargeError, ImageLimitError, DEFAULT_IMAGE_LIMITS, convertToRgb } from './image-format.ts';
export type { DecodedImage, ImageLimits, PilMode } from './image-format.ts';
export { resizeDecoded } from './resample.ts';
export type { ResampleFilter } from './resample.ts';

export interface RgbImage {
  width: number;
  height: number;
  /** Row-major, 3 bytes per pixel (R, G, B); length width * height * 3. */
  data: Uint8Array;
  /** The image as decoded from its file, in the file's own mode (absent for generated images). */
  source?: DecodedImage;
}

export type AlphaMode = 'white' | 'drop';

export interface DecodeOptions {
  /** How to remove transparency (default 'white'; 'drop' is Pillow's convert("RGB")). */
  alpha?: AlphaMode;
  /** Size limits checked against the header (defaults: DEFAULT_IMAGE_LIMITS). */
  limits?: Partial<ImageLimits>;
  /** Name used in error messages (default 'image'). */
  name?: string;
}

export class ImageShapeError extends FlamingoError {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
  }
}

export function makeImage(width: number, height: number, data?: Uint8Array): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new ImageShapeError('makeImage', `invalid size ${width}x${height}`);
  }
  const d = data ?? new Uint8Array(width * height * 3);
  if (d.length !== width * height * 3) {
    throw new ImageShapeError('makeImage', `data length ${d.length} != ${width}*${height}*3`);
  }
  return { width, height, data: d };
}

// ---------------------------------------------------------------------------------------- decode

function sniff(b: Uint8Array): 'png' | 'jpeg' | string {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  const head = String.fromCharCode(...b.subarray(0, 12));
  if (head.startsWith('GIF8')) return 'GIF';
  if (head.startsWith('BM')) return 'BMP';
  if (head.startsWith('RIFF') && head.slice(8, 12) === 'WEBP') return 'WebP';
  if (head.startsWith('<svg') || head.startsWith('<?xml')) return 'SVG';
  return 'unknown';
}

function unsupported(name: string, kind: string): ImageDecodeError {
  return new ImageDecodeError(name, kind === 'unknown' ? 'not a PNG or JPEG (unrecognised magic bytes)' : `${kind} is not supported (PNG and JPEG only)`);
}

function splitArgs(nameOrOptions: string | DecodeOptions, options: DecodeOptions): DecodeOptions & { name: string } {
  const o = typeof nameOrOptions === 'string' ? { ...options, name: nameOrOptions } : { ...nameOrOptions, ...options };
  return { ...o, name: o.name ?? 'image' };
}

/**
 * Format and size of PNG or JPEG bytes from the header alone, with the checks `decodeImage` makes
 * before it allocates (byte and pixel limits, a well-formed header, a supported kind): a caller that
 * decodes later (the server, whose worker threads decode) refuses the same inputs with the same errors.
 */
export function readImageHeader(bytes: Uint8Array, nameOrOptions: string | DecodeOptions = {}, options: DecodeOptions = {}): { format: 'PNG' | 'JPEG'; width: number; height: number } {
  const o = splitArgs(nameOrOptions, options);
  const limits = resolveLimits(o.limits);
  if (bytes.length > limits.maxBytes) throw new ImageTooLargeError(o.name, `${bytes.length} bytes, more than the limit of ${limits.maxBytes} (maxBytes)`);
  const kind = sniff(bytes);
  if (kind !== 'png' && kind !== 'jpeg') throw unsupported(o.name, kind);
  const h = kind === 'png' ? readPngHeader(bytes, o.name) : readJpegHeader(bytes, o.name);
  const format = kind === 'png' ? 'PNG' : 'JPEG';
  checkDimensions(o.name, format, h.width, h.height, limits);
  return { format, width: h.width, height: h.height };
}

/**
 * Decode PNG or JPEG bytes (by magic bytes) in the file's own Pillow mode. Every decoder reads the
 * header first and refuses, before allocating, what exceeds `limits`.
 */
export function decodeImageRaw(bytes: Uint8Array, nameOrOptions: string | DecodeOptions = {}, options: DecodeOptions = {}): DecodedImage {
  const o = splitArgs(nameOrOptions, options);
  const limits = resolveLimits(o.limits);
  if (bytes.length > limits.maxBytes) throw new ImageTooLargeError(o.name, `${bytes.length} bytes, more than the limit of ${limits.maxBytes} (maxBytes)`);
  const kind = sniff(bytes);
  if (kind === 'png') return decodePng(bytes, o.name, limits);
  if (kind === 'jpeg') return decodeJpeg(bytes, o.name, limits);
  throw unsupported(o.name, kind);
}

/**
 * Decode PNG or JPEG bytes to 8-bit RGB (the decoded image stays attached as `source`).
 * `decodeImage(bytes, { name, limits, alpha })` or `decodeImage(bytes, name, options)`.
 */
export function decodeImage(bytes: Uint8Array, nameOrOptions: string | DecodeOptions = {}, options: DecodeOptions = {}): RgbImage {
  const o = splitArgs(nameOrOptions, options);
  const source = decodeImageRaw(bytes, o);
  return { width: source.width, height: source.height, data: convertToRgb(source, o.alpha === 'drop' ? 'pillow' : 'white'), source };
}

/**
 * Read an image file without trusting it: its size is checked against `maxBytes` (also for pipes
 * and devices, which are read in chunks up to the limit), and a file whose first bytes are not a
 * PNG or JPEG signature is refused before the rest is read (`/dev/zero` fails at once).
 */
export function readImageFile(path: string, limits: Partial<ImageLimits> = {}): Uint8Array {
  const lim = resolveLimits(limits);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ImageDecodeError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new ImageDecodeError(path, 'is a directory, not an image file');
    if (st.isFile() && st.size > lim.maxBytes) throw new ImageTooLargeError(path, `file is ${st.size} bytes, more than the limit of ${lim.maxBytes} (maxBytes)`);
    const chunks: Buffer[] = [];
    let total = 0;
    const head = Buffer.alloc(16);
    const got = readFull(fd, head, path);
    const kind = sniff(head.subarray(0, got));
    if (kind !== 'png' && kind !== 'jpeg') throw unsupported(path, got === 0 ? 'unknown' : kind);
    chunks.push(head.subarray(0, got));
    total = got;
    for (;;) {
      const want = Math.min(1 << 20, lim.maxBytes + 1 - total);
      if (want <= 0) throw new ImageTooLargeError(path, `more than the limit of ${lim.maxBytes} bytes (maxBytes)`);
      const buf = Buffer.alloc(want);
      const n = readFull(fd, buf, path);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

function readFull(fd: number, buf: Buffer, path: string): number {
  let off = 0;
  while (off < buf.length) {
    let n: number;
    try {
      n = readSync(fd, buf, off, buf.length - off, null);
    } catch (e) {
      throw new ImageDecodeError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (n === 0) break;
    off += n;
  }
  return off;
}

export function loadImage(path: string, options: DecodeOptions = {}): RgbImage {
  return decodeImage(readImageFile(path, options.limits), { ...options, name: path });
}

/** Write an RGB image as an 8-bit RGB PNG. */
export function encodePng(img: RgbImage): Buffer {
  const png = new PNG({ width: img.width, height: img.height });
  const rgba = png.data;
  for (let p = 0, q = 0; q < img.data.length; p += 4, q += 3) {
    rgba[p] = img.data[q]!;
    rgba[p + 1] = img.data[q + 1]!;
    rgba[p + 2] = img.data[q + 2]!;
    rgba[p + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Replicate a single-channel image into RGB. */
export function grayToRgb(gray: Uint8Array, width: number, height: number): RgbImage {
  if (gray.length !== width * height) throw new ImageShapeError('grayToRgb', `${gray.length} bytes for ${width}x${height}`);
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < gray.length; i++) {
    const v = gray[i]!;
    out[3 * i] = v;
    out[3 * i + 1] = v;
    out[3 * i + 2] = v;
  }
  return { width, height, data: out };
}
