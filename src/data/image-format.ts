/**
 * Decoded images as Pillow holds them: a mode ("L", "RGB", "P", …), interleaved samples, and the
 * limits every decoder checks against the header before it allocates anything.
 *
 * Keeping the file's own mode (instead of converting to RGB at once) is what lets preprocessing
 * resize an image the way open_clip does when it is handed `Image.open(f)` unconverted.
 */
import { FlamingoError, UsageError } from '../errors.ts';

/** Pillow modes the decoders produce. "I" holds 16-bit grayscale PNG samples (Pillow 9.4 opens them as 32-bit "I"). */
export type PilMode = '1' | 'L' | 'LA' | 'P' | 'RGB' | 'RGBA' | 'CMYK' | 'I';

export interface DecodedImage {
  format: 'PNG' | 'JPEG';
  mode: PilMode;
  width: number;
  height: number;
  /** Row-major, channels interleaved (see `modeChannels`); Int32Array only for mode "I". */
  data: Uint8Array | Int32Array;
  /** Mode "P": 256 RGB entries (entries the file does not define are Pillow's gray ramp). */
  palette?: Uint8Array;
  /** Mode "P" with tRNS: alpha per palette entry (256 values, 255 where undefined). */
  paletteAlpha?: Uint8Array;
  /** Modes "L", "RGB", "I" with tRNS: the sample value(s) that mean fully transparent. */
  transparentColor?: number[];
}

export function modeChannels(mode: PilMode): number {
  switch (mode) {
    case 'RGB': return 3;
    case 'RGBA':
    case 'CMYK': return 4;
    case 'LA': return 2;
    default: return 1;
  }
}

/** What a decoder may allocate for one image. Checked from the header, before decoding. */
export interface ImageLimits {
  /** Width x height (default 40 M pixels: a 48 MP photo is refused, a 12 MP one is not). */
  maxPixels: number;
  /** Size of the encoded file (default 64 MiB). */
  maxBytes: number;
  /** Frames an animated file may announce (default 1000; only the first frame is decoded). */
  maxFrames: number;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxPixels: 40_000_000,
  maxBytes: 64 * 1024 * 1024,
  maxFrames: 1000,
});

/** Fill in defaults and reject nonsense (limits come from users and configs). */
export function resolveLimits(limits: Partial<ImageLimits> = {}): ImageLimits {
  const out = { ...DEFAULT_IMAGE_LIMITS, ...limits };
  for (const key of ['maxPixels', 'maxBytes', 'maxFrames'] as const) {
    const v = out[key];
    if (!Number.isSafeInteger(v) || v <= 0) throw new ImageLimitError(`image limit ${key} must be a positive integer, got ${String(v)}`);
  }
  return out;
}

export class ImageDecodeError extends FlamingoError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`cannot decode image ${file}: ${detail}`);
  }
}

/** A header announces more than the limits allow; raised before any pixel memory is allocated. */
export class ImageTooLargeError extends ImageDecodeError {
  constructor(file: string, detail: string) {
    super(file, detail);
  }
}

/** An image limit given by the caller is not a positive integer. */
export class ImageLimitError extends UsageError {}

/** Header check shared by the decoders: dimensions positive and within the pixel limit. */
export function checkDimensions(file: string, kind: string, width: number, height: number, limits: ImageLimits): void {
  if (!(width > 0) || !(height > 0)) throw new ImageDecodeError(file, `${kind} header gives an empty size ${width}x${height}`);
  if (width * height > limits.maxPixels) {
    throw new ImageTooLargeError(file, `${kind} header claims ${width}x${height} = ${width * height} pixels, more than the limit of ${limits.maxPixels} (maxPixels)`);
  }
}

const muldiv255 = (a: number, b: number): number => {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
};

export type RgbConversion = 'pillow' | 'white';

/**
 * To 8-bit RGB. 'pillow' is `Image.convert("RGB")`: alpha and tRNS dropped (never composited),
 * palette looked up, CMYK by Pillow's integer rule, "I" clipped to [0, 255]. 'white' is this
 * project's own convention for its models: transparency composited onto white, and 16-bit gray
 * reduced to its high byte (a cut-out on white is what a person sees).
 */
export function convertToRgb(img: DecodedImage, how: RgbConversion = 'pillow'): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  const d = img.data;
  const alpha = how === 'white' ? new Uint8Array(n).fill(255) : null;
  switch (img.mode) {
    case 'RGB':
      out.set(d as Uint8Array);
      if (alpha && img.transparentColor) {
        const [r, g, b] = img.transparentColor;
        for (let i = 0; i < n; i++) if (d[3 * i] === r && d[3 * i + 1] === g && d[3 * i + 2] === b) alpha[i] = 0;
      }
      break;
    case 'RGBA':
      for (let i = 0; i < n; i++) {
        out[3 * i] = d[4 * i]!;
        out[3 * i + 1] = d[4 * i + 1]!;
        out[3 * i + 2] = d[4 * i + 2]!;
        if (alpha) alpha[i] = d[4 * i + 3]!;
      }
      break;
    case 'L':
    case '1':
    case 'LA':
    case 'I': {
      const step = img.mode === 'LA' ? 2 : 1;
      const key = img.transparentColor?.[0];
      for (let i = 0; i < n; i++) {
        const raw = d[step * i]!;
        let v: number;
        if (img.mode === 'I') v = how === 'white' ? raw >> 8 : raw <= 0 ? 0 : raw >= 255 ? 255 : raw;
        else v = raw;
        out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v;
        if (alpha) {
          if (img.mode === 'LA') alpha[i] = d[2 * i + 1]!;
          else if (key !== undefined && raw === key) alpha[i] = 0;
        }
      }
      break;
    }
    case 'P': {
      const pal = img.palette!;
      for (let i = 0; i < n; i++) {
        const k = d[i]!;
        out[3 * i] = pal[3 * k]!;
        out[3 * i + 1] = pal[3 * k + 1]!;
        out[3 * i + 2] = pal[3 * k + 2]!;
        if (alpha && img.paletteAlpha) alpha[i] = img.paletteAlpha[k]!;
      }
      break;
    }
    case 'CMYK':
      for (let i = 0; i < n; i++) {
        const nk = 255 - d[4 * i + 3]!;
        for (let c = 0; c < 3; c++) out[3 * i + c] = nk - muldiv255(d[4 * i + c]!, nk);
      }
      break;
  }
  if (alpha) {
    for (let i = 0; i < n; i++) {
      const a = alpha[i]!;
      if (a === 255) continue;
      const bg = 255 * (255 - a);
      for (let c = 0; c < 3; c++) out[3 * i + c] = Math.round((out[3 * i + c]! * a + bg) / 255);
    }
  }
  return out;
}
