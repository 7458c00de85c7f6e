/**
 * JPEG decoding: the markers up to the frame header are read here first (size, components) so that
 * oversized files are refused before anything is allocated; jpeg-decode.ts then decodes the pixels
 * as libjpeg-turbo does by default (what Pillow returns). EXIF orientation is not applied, as
 * `Image.open` does not.
 */
import { ImageDecodeError, checkDimensions, type DecodedImage, type ImageLimits } from './image-format.ts';
import { decodeJpegExact } from './jpeg-decode.ts';
import { JpegFormatError, type JpegPixels } from './jpeg-frame.ts';

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

/** Decode a JPEG into mode "L", "RGB" or "CMYK" (Adobe polarity), exactly as Pillow (libjpeg-turbo defaults). */
export function decodeJpeg(bytes: Uint8Array, name: string, limits: ImageLimits): DecodedImage {
  const h = readJpegHeader(bytes, name);
  checkDimensions(name, 'JPEG', h.width, h.height, limits);
  let px: JpegPixels;
  try {
    px = decodeJpegExact(bytes, limits.maxPixels);
  } catch (e) {
    if (e instanceof JpegFormatError) throw new ImageDecodeError(name, e.message);
    throw e;
  }
  const mode = px.channels === 1 ? 'L' : px.channels === 3 ? 'RGB' : 'CMYK';
  return { format: 'JPEG', mode, width: px.width, height: px.height, data: px.data };
}
