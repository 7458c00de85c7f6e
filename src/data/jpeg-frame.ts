/**
 * The structures the JPEG decoder's stages share (one frame component, the decoded pixels) and its error.
 */
import { FlamingoError } from '../errors.ts';

/** Malformed JPEG data; jpeg.ts reports it as an ImageDecodeError naming the file. */
export class JpegFormatError extends FlamingoError {}

export interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Blocks per line / column covering the component's MCU-padded area. */
  bw: number;
  bh: number;
  /** Sample width / height of the component (libjpeg's downsampled_width / height). */
  w: number;
  h_: number;
  coefs: Int16Array;
  quant: Uint16Array | null;
  dcPred: number;
  dcTable: number;
  acTable: number;
}

export interface JpegPixels {
  width: number;
  height: number;
  /** 1 (gray), 3 (RGB) or 4 (CMYK as Pillow holds it). */
  channels: 1 | 3 | 4;
  data: Uint8Array;
}
