/**
 * JPEG decoding: the markers up to the frame header are read here first (size, components,
 * Adobe marker) so that oversized files are refused before jpeg-js allocates; jpeg-js then
 * decodes the pixels.
 *
 * Known deviation from Pillow (libjpeg-turbo): jpeg-js replicates subsampled chroma instead of
 * interpolating it, truncates in its colour conversion and uses another IDCT, so decoded pixels
 * differ by a few levels (measured in test/fixtures/shared/preprocess/README.md), and CMYK files
 * come out as RGB (jpeg-js converts them itself), so their resize runs on RGB.
 */
import jpeg from 'jpeg-js';
import { ImageDecodeError, checkDimensions, type DecodedImage, type ImageLimits } from './image-format.ts';

export interface JpegHeader {
  width: number;
  height: number;
  components: number;
  progressive: boolean;
  adobe: boolean;
}

/** Walk the marker segments up to the first SOF. Throws on anything malformed or missing. */
export function readJpegHeader(bytes: Uint8Array, name: string): JpegHeader {
  const fail = (detail: string): never => {
    throw new ImageDecodeError(name, detail);
  };
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) fail('not a JPEG file (no SOI marker)');
  let pos = 2;
  let adobe = false;
  for (;;) {
    // Fill bytes (0xFF runs) may precede a marker.
    while (pos < bytes.length && bytes[pos] === 0xff && bytes[pos + 1] === 0xff) pos++;
    if (pos + 4 > bytes.length) return fail('truncated before the frame header (no SOF marker)');
    if (bytes[pos] !== 0xff) return fail(`expected a marker at byte ${pos}, found 0x${bytes[pos]!.toString(16)}`);
    const marker = bytes[pos + 1]!;
    const len = (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
    if (len < 2 || pos + 2 + len > bytes.length) return fail(`marker 0xFF${marker.toString(16).toUpperCase()} at byte ${pos} runs past the end of the file (truncated?)`);
    const seg = bytes.subarray(pos + 4, pos + 2 + len);
    if (marker === 0xee && seg.length >= 5 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') adobe = true;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (![0xc0, 0xc1, 0xc2].includes(marker)) fail(`JPEG process SOF${marker - 0xc0} (lossless, hierarchical or arithmetic) is not supported`);
      if (seg.length < 6) fail('frame header too short');
      const header: JpegHeader = {
        height: (seg[1]! << 8) | seg[2]!,
        width: (seg[3]! << 8) | seg[4]!,
        components: seg[5]!,
        progressive: marker === 0xc2,
        adobe,
      };
      if (seg[0] !== 8) fail(`${seg[0]}-bit samples are not supported (8-bit only)`);
      if (header.height === 0) fail('frame height 0 (DNL-defined height) is not supported');
      if (![1, 3, 4].includes(header.components)) fail(`${header.components} colour components are not supported (1, 3 or 4)`);
      return header;
    }
    if (marker === 0xda || marker === 0xd9) fail('scan data before the frame header');
    pos += 2 + len;
  }
}

/** Decode a JPEG into mode "L" (one component) or "RGB" (three, or four converted by jpeg-js). */
export function decodeJpeg(bytes: Uint8Array, name: string, limits: ImageLimits): DecodedImage {
  const h = readJpegHeader(bytes, name);
  checkDimensions(name, 'JPEG', h.width, h.height, limits);
  // libjpeg (hence Pillow) refuses a file that ends before its EOI marker; so do we.
  if (!hasEndMarker(bytes)) throw new ImageDecodeError(name, 'JPEG is truncated (no end-of-image marker)');
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, {
      useTArray: true, formatAsRGBA: false, tolerantDecoding: false,
      maxResolutionInMP: limits.maxPixels / 1e6,
      // Coefficients (2 bytes per sample, per component) plus the output: a generous cap from the checked header.
      maxMemoryUsageInMB: Math.ceil((h.width * h.height * (h.components * 4 + 8)) / 2 ** 20) + 16,
    });
  } catch (e) {
    throw new ImageDecodeError(name, `corrupt, truncated or unsupported JPEG (${(e as Error).message ?? String(e)})`);
  }
  if (img.width !== h.width || img.height !== h.height || img.data.length !== img.width * img.height * 3) {
    throw new ImageDecodeError(name, 'JPEG decoded to an inconsistent buffer');
  }
  if (h.components === 1) {
    const gray = new Uint8Array(img.width * img.height);
    for (let i = 0; i < gray.length; i++) gray[i] = img.data[3 * i]!;
    return { format: 'JPEG', mode: 'L', width: img.width, height: img.height, data: gray };
  }
  return { format: 'JPEG', mode: 'RGB', width: img.width, height: img.height, data: img.data };
}

/** An EOI marker (FF D9) somewhere in the last 64 KiB: encoders may append a little trailing data after it. */
function hasEndMarker(bytes: Uint8Array): boolean {
  const from = Math.max(1, bytes.length - 65536);
  for (let i = bytes.length - 1; i >= from; i--) if (bytes[i] === 0xd9 && bytes[i - 1] === 0xff) return true;
  return false;
}
