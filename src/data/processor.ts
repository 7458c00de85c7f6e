/**
 * The front door from (text with <image> markers, images) to model inputs, like OpenFlamingo's
 * tokenizer + image_processor pair: tokenise, left-pad a batch (generation appends on the right),
 * build the attention mask, preprocess images into vision_x (B, T_img, F=1, 3, H, W).
 * The number of images of each sample must equal its number of <image> markers.
 */
import { Tensor } from '../engine/tensor.ts';
import type { BpeTokenizer } from './tokenizer.ts';
import { type RgbImage } from './image.ts';
import { preprocessClip, preprocessImage, type NormalizeOptions } from './image-tensor.ts';
import type { PreprocessConfig } from '../model/preprocess-config.ts';
import { FlamingoError } from '../errors.ts';

export class ProcessorError extends FlamingoError {}

export interface ProcessorConfig {
  imageSize: number;
  /** The model's image preprocessing (its config's `preprocess`); when absent, the legacy CLIP transform with `normalize`. */
  preprocess?: PreprocessConfig;
  normalize?: NormalizeOptions;
  /** 'left' for generation/scoring (default), 'right' for training. */
  padding?: 'left' | 'right';
  /** Reject samples longer than this many tokens. */
  maxLength?: number;
}

export interface BatchEncoding {
  inputIds: Tensor;
  attentionMask: Tensor;
  /** (B, T_max, 1, 3, S, S); slots past a sample's image count are zero filler. Null when no sample has images. */
  visionX: Tensor | null;
  /** Token count of each sample before padding. */
  lengths: number[];
}

export class FlamingoProcessor {
  constructor(readonly tokenizer: BpeTokenizer, readonly config: ProcessorConfig) {}

  /** Pixels (3, S, S) for one image (CLIP resize + center crop + normalise, as the model's config says). */
  preprocessImage(img: RgbImage): Float32Array {
    if (this.config.preprocess) return preprocessImage(img, this.config.imageSize, this.config.preprocess);
    return preprocessClip(img, this.config.imageSize, this.config.normalize);
  }

  encodeText(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** Encode a batch of interleaved samples. images[b] are the images of sample b in order. */
  encode(texts: string[], images: RgbImage[][] | null = null, opts: { padding?: 'left' | 'right' } = {}): BatchEncoding {
    const ids = texts.map((t) => this.encodeText(t));
    const pixels = images ? images.map((imgs) => imgs.map((im) => this.preprocessImage(im))) : null;
    return this.collate(ids, pixels, opts.padding ?? this.config.padding ?? 'left');
  }

  /** Pad token ids and stack preprocessed images (each (3, S, S)) into a batch. */
  collate(ids: number[][], pixels: Float32Array[][] | null, padding: 'left' | 'right' = 'left'): BatchEncoding {
    if (ids.length === 0) throw new ProcessorError('empty batch');
    if (pixels && pixels.length !== ids.length) throw new ProcessorError(`${ids.length} texts but ${pixels.length} image lists`);
    const mid = this.tokenizer.imageTokenId;
    const pad = this.tokenizer.padTokenId;
    const S = this.config.imageSize;
    const per = 3 * S * S;
    ids.forEach((row, b) => {
      const n = row.filter((t) => t === mid).length;
      const m = pixels ? pixels[b]!.length : 0;
      if (n !== m) throw new ProcessorError(`sample ${b} has ${n} <image> marker(s) but ${m} image(s)`);
      if (this.config.maxLength !== undefined && row.length > this.config.maxLength) {
        throw new ProcessorError(`sample ${b} has ${row.length} tokens, more than the maximum ${this.config.maxLength}`);
      }
      if (row.length === 0) throw new ProcessorError(`sample ${b} is empty`);
    });
    const B = ids.length;
    const L = Math.max(...ids.map((r) => r.length));
    const inputIds = new Int32Array(B * L).fill(pad);
    const mask = new Int32Array(B * L);
    ids.forEach((row, b) => {
      const off = padding === 'left' ? L - row.length : 0;
      inputIds.set(row, b * L + off);
      mask.fill(1, b * L + off, b * L + off + row.length);
    });
    let visionX: Tensor | null = null;
    const T = pixels ? Math.max(0, ...pixels.map((p) => p.length)) : 0;
    if (pixels && T > 0) {
      const data = new Float32Array(B * T * per);
      pixels.forEach((imgs, b) => imgs.forEach((px, t) => {
        if (px.length !== per) throw new ProcessorError(`image ${t} of sample ${b} has ${px.length} values, expected 3×${S}×${S}`);
        data.set(px, (b * T + t) * per);
      }));
      visionX = new Tensor(data, [B, T, 1, 3, S, S]);
    }
    return { inputIds: new Tensor(inputIds, [B, L]), attentionMask: new Tensor(mask, [B, L]), visionX, lengths: ids.map((r) => r.length) };
  }

  decode(ids: number[], skipSpecial = true): string {
    return this.tokenizer.decode(ids, { skipSpecial });
  }
}
