/**
 * PNG decoding into Pillow's modes, with the header checked before anything is allocated.
 *
 * Why not pngjs: it sizes its output from the header and fills it from a short stream without
 * complaint (uninitialised memory), and it converts every file to RGBA, losing the mode that
 * open_clip's resize depends on. Here the zlib stream is inflated with a hard output cap equal to
 * the exact size the header implies, and anything shorter is an error.
 *
 * Sample semantics follow Pillow 9.4: 16-bit samples keep their high byte (RGB, RGBA, LA), 16-bit
 * gray becomes mode "I" with the full value, 2- and 4-bit gray are scaled to 8 bits, 1-bit gray is
 * mode "1" (0 / 255), palette files stay mode "P" with their palette and tRNS alpha.
 */
import { inflateSync } from 'node:zlib';
import {
  ImageDecodeError, ImageTooLargeError, checkDimensions, type DecodedImage, type ImageLimits, type PilMode,
} from './image-format.ts';

export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  interlaced: boolean;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

const u32 = (b: Uint8Array, p: number): number => ((b[p]! << 24) >>> 0) + (b[p + 1]! << 16) + (b[p + 2]! << 8) + b[p + 3]!;

/** Adam7 passes: x0, y0, dx, dy. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] as const;

function passes(h: PngHeader): { w: number; h: number; x0: number; y0: number; dx: number; dy: number }[] {
  if (!h.interlaced) return [{ w: h.width, h: h.height, x0: 0, y0: 0, dx: 1, dy: 1 }];
  return ADAM7.map(([x0, y0, dx, dy]) => ({
    w: Math.max(0, Math.ceil((h.width - x0) / dx)), h: Math.max(0, Math.ceil((h.height - y0) / dy)), x0, y0, dx, dy,
  })).filter((p) => p.w > 0 && p.h > 0);
}

const rowBytes = (width: number, h: PngHeader): number => Math.ceil((width * CHANNELS[h.colorType]! * h.bitDepth) / 8);

/** Bytes the inflated IDAT stream must have exactly. */
export function pngRawSize(h: PngHeader): number {
  return passes(h).reduce((s, p) => s + p.h * (1 + rowBytes(p.w, h)), 0);
}

/** The IHDR chunk's body, checked (colour type, bit depth, methods). */
function parseIhdr(body: Uint8Array, name: string): PngHeader {
  const fail = (detail: string): never => {
    throw new ImageDecodeError(name, detail);
  };
  if (body.length !== 13) fail(`IHDR has ${body.length} bytes, not 13`);
  const h: PngHeader = { width: u32(body, 0), height: u32(body, 4), bitDepth: body[8]!, colorType: body[9]!, interlaced: body[12] === 1 };
  if (!(h.colorType in CHANNELS)) fail(`colour type ${h.colorType} is not a PNG colour type`);
  if (!DEPTHS[h.colorType]!.includes(h.bitDepth)) fail(`bit depth ${h.bitDepth} is invalid for colour type ${h.colorType}`);
  if (body[10] !== 0 || body[11] !== 0 || body[12]! > 1) fail('unknown compression, filter or interlace method');
  return h;
}

/** The header of a PNG file (its first chunk, which must be IHDR), checked as decodePng checks it. */
export function readPngHeader(bytes: Uint8Array, name: string): PngHeader {
  if (bytes.length < 8 || PNG_SIGNATURE.some((v, i) => bytes[i] !== v)) throw new ImageDecodeError(name, 'not a PNG file (bad signature)');
  if (bytes.length < 16) throw new ImageDecodeError(name, 'truncated chunk header at byte 8');
  const len = u32(bytes, 8);
  const type = String.fromCharCode(bytes[12]!, bytes[13]!, bytes[14]!, bytes[15]!);
  if (type !== 'IHDR') throw new ImageDecodeError(name, `first chunk is ${type}, not IHDR`);
  if (len > 0x7fffffff || 16 + len + 4 > bytes.length) throw new ImageDecodeError(name, `chunk IHDR at byte 8 claims ${len} bytes, beyond the end of the file (truncated?)`);
  return parseIhdr(bytes.subarray(16, 16 + len), name);
}

/** Decode a PNG file's default image. `name` is used in errors. */
export function decodePng(bytes: Uint8Array, name: string, limits: ImageLimits): DecodedImage {
  const fail = (detail: string): never => {
    throw new ImageDecodeError(name, detail);
  };
  if (bytes.length < 8 || PNG_SIGNATURE.some((v, i) => bytes[i] !== v)) fail('not a PNG file (bad signature)');
  let pos = 8;
  let header: PngHeader | null = null;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let idatBytes = 0;
  let sawEnd = false;
  while (pos < bytes.length) {
    if (pos + 8 > bytes.length) fail(`truncated chunk header at byte ${pos}`);
    const len = u32(bytes, pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    const start = pos + 8;
    if (len > 0x7fffffff || start + len + 4 > bytes.length) fail(`chunk ${type} at byte ${pos} claims ${len} bytes, beyond the end of the file (truncated?)`);
    const body = bytes.subarray(start, start + len);
    pos = start + len + 4; // CRC not verified: zlib's Adler-32 guards the pixel data
    if (header === null && type !== 'IHDR') fail(`first chunk is ${type}, not IHDR`);
    switch (type) {
      case 'IHDR': {
        if (header) fail('second IHDR chunk');
        header = parseIhdr(body, name);
        checkDimensions(name, 'PNG', header.width, header.height, limits);
        break;
      }
      case 'PLTE':
        if (len % 3 !== 0 || len === 0 || len > 768) fail(`PLTE has ${len} bytes (need 3 per entry, at most 256 entries)`);
        palette = body;
        break;
      case 'tRNS':
        trns = body;
        break;
      case 'acTL': {
        const frames = len >= 4 ? u32(body, 0) : 0;
        if (frames > limits.maxFrames) throw new ImageTooLargeError(name, `animated PNG announces ${frames} frames, more than the limit of ${limits.maxFrames} (maxFrames)`);
        break;
      }
      case 'IDAT':
        idat.push(body);
        idatBytes += len;
        break;
      case 'IEND':
        sawEnd = true;
        break;
      default:
        // Unknown critical chunks (upper-case first letter) change the meaning of the data.
        if (type.charCodeAt(0) < 97 && !['fcTL', 'fdAT'].includes(type)) fail(`unknown critical chunk ${type}`);
    }
    if (sawEnd) break;
  }
  if (!header) return fail('no IHDR chunk');
  const h = header;
  if (h.colorType === 3 && !palette) fail('palette image without a PLTE chunk');
  if (idatBytes === 0) fail('no image data (IDAT) (truncated?)');
  const expected = pngRawSize(h);
  let raw: Buffer;
  try {
    // The cap makes a deflate bomb fail after `expected + 1` bytes instead of growing without bound.
    raw = inflateSync(idat.length === 1 ? idat[0]! : Buffer.concat(idat, idatBytes), { maxOutputLength: expected + 1 });
  } catch (e) {
    const msg = (e as Error).message;
    if (/larger than|maxOutputLength|RangeError/i.test(msg) || (e as Error).name === 'RangeError') {
      return fail(`image data inflates to more than the ${expected} bytes its ${h.width}x${h.height} header implies`);
    }
    return fail(`image data is corrupt or truncated (zlib: ${msg})`);
  }
  if (raw.length < expected) fail(`image data is truncated: ${raw.length} of ${expected} bytes after decompression`);
  if (raw.length > expected) fail(`image data has more bytes than its ${h.width}x${h.height} header implies`);
  return toPillow(h, raw, palette, trns, name);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undo the per-row filters of one pass in place; returns rows as subarrays of `raw`. */
function unfilter(raw: Uint8Array, offset: number, w: number, rows: number, h: PngHeader, name: string): Uint8Array[] {
  const rb = rowBytes(w, h);
  const bpp = Math.max(1, (CHANNELS[h.colorType]! * h.bitDepth) >> 3);
  const out: Uint8Array[] = [];
  let prev: Uint8Array | null = null;
  for (let y = 0; y < rows; y++) {
    const start = offset + y * (rb + 1);
    const filter = raw[start]!;
    const row = raw.subarray(start + 1, start + 1 + rb);
    switch (filter) {
      case 0: break;
      case 1: for (let i = bpp; i < rb; i++) row[i] = (row[i]! + row[i - bpp]!) & 255; break;
      case 2: if (prev) for (let i = 0; i < rb; i++) row[i] = (row[i]! + prev[i]!) & 255; break;
      case 3:
        for (let i = 0; i < rb; i++) {
          const left = i >= bpp ? row[i - bpp]! : 0;
          const up = prev ? prev[i]! : 0;
          row[i] = (row[i]! + ((left + up) >> 1)) & 255;
        }
        break;
      case 4:
        for (let i = 0; i < rb; i++) {
          const left = i >= bpp ? row[i - bpp]! : 0;
          const up = prev ? prev[i]! : 0;
          const ul = prev && i >= bpp ? prev[i - bpp]! : 0;
          row[i] = (row[i]! + paeth(left, up, ul)) & 255;
        }
        break;
      default:
        throw new ImageDecodeError(name, `row ${y} has unknown filter type ${filter}`);
    }
    out.push(row);
    prev = row;
  }
  return out;
}

function pillowMode(h: PngHeader): PilMode {
  switch (h.colorType) {
    case 0: return h.bitDepth === 1 ? '1' : h.bitDepth === 16 ? 'I' : 'L';
    case 2: return 'RGB';
    case 3: return 'P';
    case 4: return 'LA';
    default: return 'RGBA';
  }
}

function toPillow(h: PngHeader, raw: Uint8Array, plte: Uint8Array | null, trns: Uint8Array | null, name: string): DecodedImage {
  const mode = pillowMode(h);
  const ch = CHANNELS[h.colorType]!;
  const n = h.width * h.height;
  const data = mode === 'I' ? new Int32Array(n) : new Uint8Array(n * ch);
  const depth = h.bitDepth;
  // Sub-byte gray is scaled to 8 bits (Pillow's "L;2" and "L;4" unpackers); "1" becomes 0 / 255; palette indices stay.
  const scale = h.colorType === 0 ? (depth === 1 ? 255 : depth === 2 ? 85 : depth === 4 ? 17 : 1) : 1;
  let offset = 0;
  for (const p of passes(h)) {
    const rows = unfilter(raw, offset, p.w, p.h, h, name);
    offset += p.h * (1 + rowBytes(p.w, h));
    for (let ry = 0; ry < p.h; ry++) {
      const row = rows[ry]!;
      const y = p.y0 + ry * p.dy;
      for (let rx = 0; rx < p.w; rx++) {
        const o = (y * h.width + p.x0 + rx * p.dx) * ch;
        if (depth === 16) {
          for (let c = 0; c < ch; c++) {
            const hi = row[(rx * ch + c) * 2]!;
            data[o + c] = mode === 'I' ? (hi << 8) | row[(rx * ch + c) * 2 + 1]! : hi;
          }
        } else if (depth === 8) {
          for (let c = 0; c < ch; c++) data[o + c] = row[rx * ch + c]!;
        } else {
          const bit = rx * depth;
          const v = (row[bit >> 3]! >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
          data[o] = v * scale;
        }
      }
    }
  }
  const img: DecodedImage = { format: 'PNG', mode, width: h.width, height: h.height, data };
  if (mode === 'P') {
    const pal = new Uint8Array(768);
    for (let i = 0; i < 256; i++) pal[3 * i] = pal[3 * i + 1] = pal[3 * i + 2] = i; // Pillow's default ramp
    pal.set(plte!);
    img.palette = pal;
    if (trns) {
      const a = new Uint8Array(256).fill(255);
      a.set(trns.subarray(0, 256));
      img.paletteAlpha = a;
    }
  } else if (trns && (h.colorType === 0 || h.colorType === 2)) {
    const k = h.colorType === 0 ? 1 : 3;
    if (trns.length >= 2 * k) {
      const vals: number[] = [];
      for (let c = 0; c < k; c++) {
        const v = (trns[2 * c]! << 8) | trns[2 * c + 1]!;
        // Keys are compared with the samples as stored here: 8-bit samples, high bytes of 16-bit RGB, full "I" values.
        vals.push(depth === 16 && mode !== 'I' ? v >> 8 : depth < 8 ? v * scale : v);
      }
      img.transparentColor = vals;
    }
  }
  return img;
}
