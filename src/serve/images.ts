/**
 * Images as requests carry them: data URLs (`data:image/png;base64,…`) or bare base64. Decoded to
 * bytes here and checked from the header alone by the project's decoder (data/image.ts readImageHeader:
 * PNG IHDR, JPEG SOFn, the byte and pixel limits), so a small file claiming a huge size is refused
 * before anything is decoded; pixel decoding happens in the inference worker, under the same limits.
 */
import { ImageDecodeError, ImageTooLargeError, readImageHeader } from '../data/image.ts';
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
  // The decoder's own header checks and limits (the worker decodes with these limits too): the server
  // and the CLI refuse the same inputs with the same reasons.
  let hdr: { format: 'PNG' | 'JPEG'; width: number; height: number };
  try {
    hdr = readImageHeader(bytes, { name: param, limits: { maxBytes: limits.maxImageBytes, maxPixels: limits.maxImagePixels } });
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^cannot decode image [^:]*: /, '') : String(e);
    if (e instanceof ImageTooLargeError) throw new LimitError(param, `${param}: ${why}`, 413);
    if (e instanceof ImageDecodeError) throw new RequestFieldError(param, `is not a readable image: ${why}`);
    throw e;
  }
  return { bytes, format: hdr.format === 'PNG' ? 'png' : 'jpeg', width: hdr.width, height: hdr.height };
}
