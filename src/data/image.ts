/**
 * Still images: decode PNG/JPEG (header first, within limits), resize/crop exactly as Pillow does,
 * and turn the result into a normalised CHW float tensor.
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
  ImageDecodeError, ImageTooLargeError, checkDimensions, convertToRgb, modeChannels, resolveLimits,
  type DecodedImage, type ImageLimits,
} from './image-format.ts';
import { decodePng, readPngHeader } from './png.ts';
import { decodeJpeg, readJpegHeader } from './jpeg.ts';
import { resample8, resizeDecoded, type ResampleFilter } from './resample.ts';
import { LEGACY_PREPROCESS, type PreprocessConfig } from '../model/preprocess-config.ts';

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

export const CLIP_MEAN: readonly [number, number, number] = LEGACY_PREPROCESS.mean;
export const CLIP_STD: readonly [number, number, number] = LEGACY_PREPROCESS.std;

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

// ---------------------------------------------------------------------------------------- resize

/** Resize to exactly width x height (Pillow's `Image.resize` on an RGB image, byte for byte). */
export function resize(img: RgbImage, width: number, height: number, filter: ResampleFilter = 'bicubic'): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new ImageShapeError('resize', `target size ${width}x${height} is not positive integers`);
  }
  return { width, height, data: resample8(img.data, img.width, img.height, 3, width, height, filter) };
}

/** torchvision's Resize(int) target: the shorter side becomes `size`, the longer is scaled and truncated. */
export function shorterSideSize(w: number, h: number, size: number): [number, number] {
  if (w <= h) return [size, Math.max(1, Math.trunc((size * h) / w))];
  return [Math.max(1, Math.trunc((size * w) / h)), size];
}

/** torchvision Resize(int): the shorter side becomes `size`, the longer one is scaled and truncated. */
export function resizeShorterSide(img: RgbImage, size: number, filter: ResampleFilter): RgbImage {
  const [w, h] = shorterSideSize(img.width, img.height, size);
  return resize(img, w, h, filter);
}

export const resizeBicubic = (img: RgbImage, size: number): RgbImage => resizeShorterSide(img, size, 'bicubic');
export const resizeBilinear = (img: RgbImage, size: number): RgbImage => resizeShorterSide(img, size, 'bilinear');

// ---------------------------------------------------------------------------------------- crops

/** Crop a rectangle; parts outside the image are filled with black (as torchvision pads). */
export function crop(img: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  const out = makeImage(width, height);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = left + x;
      if (sx < 0 || sx >= img.width) continue;
      const p = (sy * img.width + sx) * 3;
      const q = (y * width + x) * 3;
      out.data[q] = img.data[p]!;
      out.data[q + 1] = img.data[p + 1]!;
      out.data[q + 2] = img.data[p + 2]!;
    }
  }
  return out;
}

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offsets use it). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function centerCrop(img: RgbImage, size: number | { width: number; height: number }): RgbImage {
  const cw = typeof size === 'number' ? size : size.width;
  const ch = typeof size === 'number' ? size : size.height;
  const left = roundHalfEven((img.width - cw) / 2);
  const top = roundHalfEven((img.height - ch) / 2);
  return crop(img, left, top, cw, ch);
}

export function flipHorizontal(img: RgbImage): RgbImage {
  const out = makeImage(img.width, img.height);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const p = (y * img.width + x) * 3;
      const q = (y * img.width + (img.width - 1 - x)) * 3;
      out.data[q] = img.data[p]!;
      out.data[q + 1] = img.data[p + 1]!;
      out.data[q + 2] = img.data[p + 2]!;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------- tensors

export interface NormalizeOptions {
  mean?: readonly number[];
  std?: readonly number[];
}

/** (x / 255 - mean) / std per channel, laid out channel-first: Float32Array of length 3*H*W. */
export function toCHWFloat(img: RgbImage, options: NormalizeOptions = {}): Float32Array {
  const mean = options.mean ?? CLIP_MEAN;
  const std = options.std ?? CLIP_STD;
  if (mean.length !== 3 || std.length !== 3) throw new ImageShapeError('toCHWFloat', 'mean and std need 3 values');
  const hw = img.width * img.height;
  const out = new Float32Array(3 * hw);
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const inv = 1 / std[c]!;
    for (let i = 0; i < hw; i++) out[c * hw + i] = (img.data[3 * i + c]! / 255 - m) * inv;
  }
  return out;
}

/** CLIP eval transform: bicubic shorter side → size, centre crop size×size, normalise. Shape (3, size, size). */
export function preprocessClip(img: RgbImage, size = 224, options: NormalizeOptions = {}): Float32Array {
  return toCHWFloat(centerCrop(resizeBicubic(img, size), size), options);
}

/** Crop a decoded image in its own mode (torchvision's CenterCrop offsets; outside the image is 0). */
export function cropDecoded(img: DecodedImage, left: number, top: number, width: number, height: number): DecodedImage {
  const ch = modeChannels(img.mode);
  const data = new (img.data.constructor as new (n: number) => Uint8Array | Int32Array)(width * height * ch);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = left + x;
      if (sx < 0 || sx >= img.width) continue;
      for (let c = 0; c < ch; c++) data[(y * width + x) * ch + c] = img.data[(sy * img.width + sx) * ch + c]!;
    }
  }
  return { ...img, width, height, data };
}

/**
 * The 8-bit RGB crop (size x size) a preprocessing config produces, before normalisation: the
 * shorter side resized to `size`, then the centre crop. Only the crop is computed (identical to
 * cropping the full resize), so a 1 x 40000 image does not become a 224 x 8960000 one in memory.
 */
export function preprocessToRgb(img: RgbImage, size: number, cfg: PreprocessConfig = LEGACY_PREPROCESS): RgbImage {
  const src = img.source;
  const rgb = cfg.rgb === 'white' ? 'white' : 'pillow';
  const dims = src ?? img;
  const [w, h] = shorterSideSize(dims.width, dims.height, size);
  const region = { left: roundHalfEven((w - size) / 2), top: roundHalfEven((h - size) / 2), width: size, height: size };
  if (src && cfg.order === 'as_opened') {
    return { width: size, height: size, data: convertToRgb(resizeDecoded(src, w, h, cfg.resize, region), rgb) };
  }
  // RGB first. 'white' is what decodeImage returns by default, so the RGB pixels are used as given
  // (the project's own models were trained on exactly these); 'pillow' re-converts the source.
  const base: RgbImage = src && rgb === 'pillow' ? { width: src.width, height: src.height, data: convertToRgb(src, 'pillow') } : img;
  return { width: size, height: size, data: resample8(base.data, base.width, base.height, 3, w, h, cfg.resize, region) };
}

/** A model's image preprocessing (its config's `preprocess`, default LEGACY_PREPROCESS): (3, size, size) floats. */
export function preprocessImage(img: RgbImage, size: number, cfg: PreprocessConfig = LEGACY_PREPROCESS): Float32Array {
  return toCHWFloat(preprocessToRgb(img, size, cfg), { mean: cfg.mean, std: cfg.std });
}

// ---------------------------------------------------------------------------------------- augmentation

export interface RandomResizedCropOptions {
  /** Area fraction range (default [0.08, 1]). */
  scale?: [number, number];
  /** Aspect ratio range (default [3/4, 4/3]), sampled log-uniformly. */
  ratio?: [number, number];
  filter?: ResampleFilter;
}

/**
 * torchvision RandomResizedCrop: up to 10 tries for a box with random area and log-uniform aspect
 * ratio inside the image, else the largest centred box within the ratio range; resized to size×size.
 * `rand` is a uniform [0, 1) source so runs are reproducible.
 */
export function randomResizedCrop(img: RgbImage, size: number, rand: () => number, options: RandomResizedCropOptions = {}): RgbImage {
  const [smin, smax] = options.scale ?? [0.08, 1];
  const [rmin, rmax] = options.ratio ?? [3 / 4, 4 / 3];
  const filter = options.filter ?? 'bilinear';
  const { width: W, height: H } = img;
  const area = W * H;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (smin + (smax - smin) * rand());
    const logRatio = Math.log(rmin) + (Math.log(rmax) - Math.log(rmin)) * rand();
    const ar = Math.exp(logRatio);
    const w = Math.round(Math.sqrt(target * ar));
    const h = Math.round(Math.sqrt(target / ar));
    if (w > 0 && h > 0 && w <= W && h <= H) {
      const top = Math.floor(rand() * (H - h + 1));
      const left = Math.floor(rand() * (W - w + 1));
      return resize(crop(img, left, top, w, h), size, size, filter);
    }
  }
  const inRatio = W / H;
  let w = W;
  let h = H;
  if (inRatio < rmin) h = Math.round(W / rmin);
  else if (inRatio > rmax) w = Math.round(H * rmax);
  return resize(crop(img, Math.floor((W - w) / 2), Math.floor((H - h) / 2), w, h), size, size, filter);
}

export function randomHorizontalFlip(img: RgbImage, rand: () => number, p = 0.5): RgbImage {
  return rand() < p ? flipHorizontal(img) : img;
}
