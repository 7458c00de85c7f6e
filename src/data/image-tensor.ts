/**
 * From an RGB image to the model's input: a preprocessing config's resize and centre crop (computed for
 * the crop only), then normalisation into a channel-first float array.
 */
import { convertToRgb } from './image-format.ts';
import { resample8, resizeDecoded } from './resample.ts';
import { ImageShapeError, type RgbImage } from './image.ts';
import { centerCrop, resizeBicubic, roundHalfEven, shorterSideSize } from './image-transforms.ts';
import { LEGACY_PREPROCESS, type PreprocessConfig } from '../model/preprocess-config.ts';

export const CLIP_MEAN: readonly [number, number, number] = LEGACY_PREPROCESS.mean;
export const CLIP_STD: readonly [number, number, number] = LEGACY_PREPROCESS.std;

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
