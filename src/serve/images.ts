/**
 * Images as requests carry them: data URLs (`data:image/png;base64,…`) or bare base64. Decoded to
 * bytes here and checked against the byte and pixel limits from the header alone (PNG IHDR, JPEG SOFn),
 * so a small file claiming a huge size is refused before anything is decoded; pixel decoding happens
 * in the inference worker.
 */
import { LimitError, RequestFieldError } from './errors.ts';
import type { ServeLimits } from './limits.ts';

export interface ImageBytes {
  bytes: Uint8Array;
  format: 'png' | 'jpeg';
  width: number;
  height: number;
}

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

/** Bytes of a data URL or bare base64 string; `param` names the field in errors. */
export function imageFromUrl(url: unknown, param: string, limits: ServeLimits): ImageBytes {
  if (typeof url !== 'string') throw new RequestFieldError(param, 'must be a string (a data URL with base64 PNG or JPEG)');
  let b64 = url;
  if (url.startsWith('data:')) {
    const comma = url.indexOf(',');
    const head = comma < 0 ? '' : url.slice(5, comma);
    if (comma < 0 || !/;base64$/i.test(head)) throw new RequestFieldError(param, 'data URL must be base64 encoded (data:image/png;base64,…)');
    const mime = head.replace(/;base64$/i, '').toLowerCase();
    if (mime !== '' && mime !== 'image/png' && mime !== 'image/jpeg' && mime !== 'image/jpg') {
      throw new RequestFieldError(param, `unsupported image type '${mime}' (PNG or JPEG)`);
    }
    b64 = url.slice(comma + 1);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new RequestFieldError(param, 'only data URLs are accepted (the server fetches nothing)');
  }
  // 4 base64 characters carry 3 bytes: refuse by length before decoding anything.
  if (Math.floor(b64.length * 3 / 4) > limits.maxImageBytes + 3) {
    throw new LimitError(param, `${param}: image larger than the limit of ${limits.maxImageBytes} bytes`, 413);
  }
  if (!BASE64.test(b64)) throw new RequestFieldError(param, 'is not valid base64');
  const bytes = new Uint8Array(Buffer.from(b64, 'base64'));
  if (bytes.length > limits.maxImageBytes) throw new LimitError(param, `${param}: image of ${bytes.length} bytes is larger than the limit of ${limits.maxImageBytes}`, 413);
  const hdr = imageHeader(bytes);
  if (!hdr) throw new RequestFieldError(param, 'is not a PNG or JPEG image (or its header is corrupt)');
  if (hdr.width * hdr.height > limits.maxImagePixels) {
    throw new LimitError(param, `${param}: image of ${hdr.width}x${hdr.height} pixels is larger than the limit of ${limits.maxImagePixels} pixels`, 413);
  }
  return { bytes, ...hdr };
}

/** Format and size from a PNG or JPEG header, or null when the header is not one of those. */
export function imageHeader(b: Uint8Array): { format: 'png' | 'jpeg'; width: number; height: number } | null {
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[12] === 0x49 && b[13] === 0x48 && b[14] === 0x44 && b[15] === 0x52) {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const width = dv.getUint32(16);
    const height = dv.getUint32(20);
    return width > 0 && height > 0 ? { format: 'png', width, height } : null;
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1]!;
      if (marker === 0xff) { i++; continue; }
      const len = (b[i + 2]! << 8) | b[i + 3]!;
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        const height = (b[i + 5]! << 8) | b[i + 6]!;
        const width = (b[i + 7]! << 8) | b[i + 8]!;
        return width > 0 && height > 0 ? { format: 'jpeg', width, height } : null;
      }
      if (len < 2) return null;
      i += 2 + len;
    }
  }
  return null;
}
