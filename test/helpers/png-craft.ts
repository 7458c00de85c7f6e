/** Hand-made PNG files for tests: any colour type and bit depth, and deliberately broken ones. */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function pngChunk(type: string, body: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  out.set(body, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

export const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function ihdr(width: number, height: number, bitDepth: number, colorType: number, interlace = 0): Buffer {
  const b = Buffer.alloc(13);
  b.writeUInt32BE(width, 0);
  b.writeUInt32BE(height, 4);
  b[8] = bitDepth;
  b[9] = colorType;
  b[12] = interlace;
  return pngChunk('IHDR', b);
}

/** A PNG from already-packed rows (each without its filter byte; filter 0 is added). */
export function pngFromRows(width: number, height: number, bitDepth: number, colorType: number, rows: Uint8Array[], extra: Buffer[] = []): Buffer {
  const raw = Buffer.concat(rows.flatMap((r) => [Buffer.from([0]), Buffer.from(r)]));
  return Buffer.concat([PNG_SIG, ihdr(width, height, bitDepth, colorType), ...extra, pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND')]);
}

/** A PNG whose header claims width x height but whose data is whatever `raw` is (deflated). */
export function pngWithRaw(width: number, height: number, bitDepth: number, colorType: number, raw: Uint8Array): Buffer {
  return Buffer.concat([PNG_SIG, ihdr(width, height, bitDepth, colorType), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND')]);
}

/** Baseline JPEG markers up to a frame header claiming width x height (no usable scan). */
export function jpegClaiming(width: number, height: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0, 17, 8, height >> 8, height & 255, width >> 8, width & 255, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  const app0 = Buffer.from([0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);
  const dqt = Buffer.concat([Buffer.from([0xff, 0xdb, 0, 67, 0]), Buffer.alloc(64, 1)]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app0, dqt, sof, Buffer.alloc(560, 0x11), Buffer.from([0xff, 0xd9])]);
}
