/**
 * Geometric transforms of RGB images, as Pillow and torchvision compute them: resizing (exact Pillow
 * resampling), crops (outside the image is black), the horizontal flip, and the training augmentations
 * (RandomResizedCrop, RandomHorizontalFlip).
 */
import { modeChannels, type DecodedImage } from './image-format.ts';
import { resample8, type ResampleFilter } from './resample.ts';
import { ImageShapeError, makeImage, type RgbImage } from './image.ts';

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

/**
 * Copy the window [left, left + width) × [top, top + height) of an interleaved image with `ch` channels into
 * `out`; parts outside the image stay 0 (black, as torchvision pads).
 */
function cropInto(
  src: ArrayLike<number>, sw: number, sh: number, ch: number, left: number, top: number, width: number, height: number,
  out: Uint8Array | Int32Array,
): void {
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= sh) continue;
    for (let x = 0; x < width; x++) {
      const sx = left + x;
      if (sx < 0 || sx >= sw) continue;
      for (let c = 0; c < ch; c++) out[(y * width + x) * ch + c] = src[(sy * sw + sx) * ch + c]!;
    }
  }
}

/** Crop a rectangle; parts outside the image are filled with black (as torchvision pads). */
export function crop(img: RgbImage, left: number, top: number, width: number, height: number): RgbImage {
  const out = makeImage(width, height);
  cropInto(img.data, img.width, img.height, 3, left, top, width, height, out.data);
  return out;
}

/** Crop a decoded image in its own mode (torchvision's CenterCrop offsets; outside the image is 0). */
export function cropDecoded(img: DecodedImage, left: number, top: number, width: number, height: number): DecodedImage {
  const ch = modeChannels(img.mode);
  const data = new (img.data.constructor as new (n: number) => Uint8Array | Int32Array)(width * height * ch);
  cropInto(img.data, img.width, img.height, ch, left, top, width, height, data);
  return { ...img, width, height, data };
}

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offsets use it). */
export function roundHalfEven(x: number): number {
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
