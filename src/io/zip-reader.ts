/**
 * The zip container of torch.save files: the central directory (stored and deflate entries, zip64) and each
 * entry's data (inflated under the budgets, CRC-checked), from a buffer holding the file or its last window.
 */
import * as zlib from 'node:zlib';
import { type Budget, RATIO_EXEMPT_BYTES, TorchCheckpointError, spend } from './torch-limits.ts';

export interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

export const SIG_EOCD = 0x06054b50;
export const SIG_EOCD64 = 0x06064b50;
export const SIG_EOCD64_LOCATOR = 0x07064b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_LOCAL = 0x04034b50;

export function u64(file: string, buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchCheckpointError(file, `zip field ${v} too large`);
  return Number(v);
}

/** Thrown by readZipDirectory when the central directory starts before the window held in memory. */
export class ZipWindowTooSmall extends Error {
  constructor(readonly need: number) { super(`zip directory starts at ${need}`); }
}

/**
 * Parse the central directory. `buf` holds the bytes [base, base + buf.length) of a file of `total`
 * bytes that ends with the window (base 0 = the whole file).
 */
export function readZipDirectory(file: string, buf: Buffer, base = 0, total = buf.length): Map<string, ZipEntry> {
  const fail = (msg: string): never => { throw new TorchCheckpointError(file, `bad zip: ${msg}`); };
  // The end-of-central-directory record sits at the end, followed by a comment of at most 65535 bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === SIG_EOCD) { eocd = i; break; }
  }
  if (eocd < 0) fail('end of central directory not found');
  let count = buf.readUInt16LE(eocd + 10);
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== SIG_EOCD64_LOCATOR) fail('zip64 locator missing');
    const recAbs = u64(file, buf, loc + 8);
    if (recAbs < base && recAbs >= 0) throw new ZipWindowTooSmall(recAbs);
    const rec = recAbs - base;
    if (rec + 56 > buf.length || buf.readUInt32LE(rec) !== SIG_EOCD64) fail('zip64 end record missing');
    count = u64(file, buf, rec + 32);
    cdSize = u64(file, buf, rec + 40);
    cdOffset = u64(file, buf, rec + 48);
  }
  if (cdOffset + cdSize > total) fail(`central directory [${cdOffset}, +${cdSize}) outside the ${total}-byte file (truncated?)`);
  if (cdOffset < base) throw new ZipWindowTooSmall(cdOffset);
  cdOffset -= base;
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdOffset + cdSize || buf.readUInt32LE(p) !== SIG_CENTRAL) fail(`central directory entry ${i} is corrupt`);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdOffset + cdSize) fail(`central directory entry ${i} overruns the directory`);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    if (flags & 1) fail(`entry '${name}' is encrypted`);
    // zip64 extra field (id 1) holds the 64-bit values for whichever fields are saturated, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = buf.readUInt16LE(x);
      const len = buf.readUInt16LE(x + 2);
      if (id === 1) {
        let q = x + 4;
        const next = (): number => {
          if (q + 8 > x + 4 + len) fail(`entry '${name}' has a short zip64 field`);
          const v = u64(file, buf, q);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localOffset === 0xffffffff) localOffset = next();
      }
      x += 4 + len;
    }
    entries.set(name, { name, method, crc, compressedSize, size, localOffset });
    p = end;
  }
  return entries;
}

export function zipEntryData(file: string, buf: Buffer, e: ZipEntry, verifyCrc: boolean, budget: Budget): Buffer {
  const fail = (msg: string): never => { throw new TorchCheckpointError(file, `zip entry '${e.name}': ${msg}`); };
  const lo = e.localOffset;
  if (lo + 30 > buf.length || buf.readUInt32LE(lo) !== SIG_LOCAL) fail('local header missing');
  // The local extra field can differ from the central one (torch pads it to align the data), so read it here.
  const start = lo + 30 + buf.readUInt16LE(lo + 26) + buf.readUInt16LE(lo + 28);
  if (start + e.compressedSize > buf.length) fail(`data [${start}, +${e.compressedSize}) runs past the end of the file`);
  const raw = buf.subarray(start, start + e.compressedSize);
  let data: Buffer;
  if (e.method === 0) {
    if (e.compressedSize !== e.size) fail(`stored entry has compressed size ${e.compressedSize} != size ${e.size}`);
    data = raw;
  } else if (e.method === 8) {
    // Refuse from the declared sizes, before inflating; inflation is capped at the declared size.
    if (e.size > RATIO_EXEMPT_BYTES && e.size > budget.maxRatio * Math.max(1, e.compressedSize)) {
      fail(`declares ${e.size} bytes inflated from ${e.compressedSize} (ratio ${(e.size / Math.max(1, e.compressedSize)).toFixed(0)}, `
        + `budget ${budget.maxRatio}: budgets.maxCompressionRatio); refusing a decompression bomb`);
    }
    spend(budget, e.size, `inflating zip entry '${e.name}'`);
    try {
      data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      throw new TorchCheckpointError(file, `zip entry '${e.name}': inflate failed: ${(err as Error).message}`, { cause: err });
    }
    if (data.length !== e.size) fail(`inflated to ${data.length} bytes, expected ${e.size}`);
  } else {
    return fail(`unsupported compression method ${e.method}`);
  }
  const crc32 = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (verifyCrc && crc32 && (crc32(data) >>> 0) !== e.crc) fail('CRC mismatch (corrupt file)');
  return data;
}
