/**
 * Writing safetensors files in the reference writer's layout (sorted names, space-padded header), atomically
 * (a temporary file renamed into place after fsync). Tensors are validated before anything is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeAll } from './file-io.ts';
import { float32ArrayToHalfBits } from './half-float.ts';
import {
  ITEM_SIZE, LITTLE_ENDIAN_HOST, SafetensorsError, describe, isSafeDType, safeProduct,
  type SafeDType, type TensorData, type TensorToWrite,
} from './safetensors.ts';

type TypedCtor = abstract new (...args: never[]) => TensorData;

/** Array types accepted per dtype (instanceof, so Buffer counts as a Uint8Array). */
const ACCEPTED: Record<SafeDType, TypedCtor[]> = {
  F32: [Float32Array],
  F16: [Float32Array, Uint16Array],
  BF16: [Float32Array, Uint16Array],
  F64: [Float64Array],
  I64: [BigInt64Array, Int32Array],
  I32: [Int32Array],
  I16: [Int16Array],
  U16: [Uint16Array],
  I8: [Int8Array],
  U8: [Uint8Array],
  BOOL: [Uint8Array],
};

function typeName(d: unknown): string {
  if (d === null || typeof d !== 'object') return typeof d;
  return (d as object).constructor?.name ?? 'object';
}

function compareUtf8(a: string, b: string): number {
  // Rust (the reference writer) orders names by UTF-8 bytes, which differs from JS UTF-16 order for some characters.
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

interface PlannedTensor { name: string; dtype: SafeDType; shape: number[]; byteLength: number }

function validateForWrite(file: string, name: string, t: TensorToWrite): PlannedTensor {
  const fail = (msg: string): never => { throw new SafetensorsError(file, msg, name); };
  if (name === '__metadata__') fail('the name __metadata__ is reserved');
  if (t === null || typeof t !== 'object') fail(`expected {dtype, shape, data}, got ${describe(t)}`);
  if (!isSafeDType(t.dtype)) fail(`unknown dtype ${describe(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`shape must be an array of non-negative integers, got ${describe(t.shape)}`);
  }
  const data = t.data;
  if (!ACCEPTED[t.dtype].some((C) => data instanceof C)) {
    fail(`dtype ${t.dtype} needs data as ${ACCEPTED[t.dtype].map((C) => C.name).join(' or ')}, got ${typeName(data)}`);
  }
  const numel = safeProduct(t.shape);
  if (numel === undefined || numel !== data.length) {
    fail(`shape ${describe(t.shape)} has ${numel ?? 'too many'} elements but data has ${data.length}`);
  }
  if (t.dtype === 'BOOL') {
    const bad = (data as Uint8Array).findIndex((v) => v > 1);
    if (bad >= 0) fail(`BOOL data must be 0 or 1, got ${(data as Uint8Array)[bad]} at flat index ${bad}`);
  }
  return { name, dtype: t.dtype, shape: t.shape.slice(), byteLength: numel! * ITEM_SIZE[t.dtype] };
}

/** Build the header bytes (length prefix + space-padded JSON) in the reference writer's layout. */
function buildHeader(planned: PlannedTensor[], metadata: Record<string, string> | undefined): Buffer {
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  for (const p of planned) {
    parts.push(`${JSON.stringify(p.name)}:{"dtype":"${p.dtype}","shape":${JSON.stringify(p.shape)},`
      + `"data_offsets":[${off},${off + p.byteLength}]}`);
    off += p.byteLength;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

function asBytes(a: TensorData): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Elements converted per chunk, so conversions never need a second full-size copy of a big tensor. */
const CHUNK = 1 << 20;

function writeTensorData(fd: number, dtype: SafeDType, data: TensorData): void {
  if ((dtype === 'F16' || dtype === 'BF16') && data instanceof Float32Array) {
    for (let i = 0; i < data.length; i += CHUNK) {
      writeAll(fd, asBytes(float32ArrayToHalfBits(data.subarray(i, i + CHUNK), dtype)));
    }
  } else if (dtype === 'I64' && data instanceof Int32Array) {
    for (let i = 0; i < data.length; i += CHUNK) {
      const part = data.subarray(i, i + CHUNK);
      // Little-endian int64 = (low word, sign-extension word); avoids a BigInt per element.
      const wide = new Int32Array(part.length * 2);
      for (let j = 0; j < part.length; j++) { wide[2 * j] = part[j]!; wide[2 * j + 1] = part[j]! >> 31; }
      writeAll(fd, asBytes(wide));
    }
  } else {
    writeAll(fd, asBytes(data));
  }
}

/**
 * Write tensors atomically: everything goes to a temp file in the same directory, which is fsynced and then renamed
 * over `file` (and the directory fsynced), so a crash or error never leaves a partial file under the final name and
 * never destroys an existing one. Tensors are stored sorted by name (UTF-8 byte order), packed, C order.
 * Accepted data: F32 Float32Array; F16/BF16 Float32Array (rounded to nearest even) or Uint16Array (raw bits);
 * I64 BigInt64Array or Int32Array (widened); I32 Int32Array; U8/BOOL Uint8Array; F64/I16/U16/I8 their typed arrays.
 */
export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  if (!LITTLE_ENDIAN_HOST) throw new SafetensorsError(file, 'big-endian hosts are not supported');
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(file, `metadata value for '${k}' must be a string, got ${describe(v)}`);
    }
  }
  // Validate everything before touching the filesystem.
  const names = Object.keys(tensors).sort(compareUtf8);
  const planned = names.map((n) => validateForWrite(file, n, tensors[n]!));
  const header = buildHeader(planned, metadata);

  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  let current: string | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    writeAll(fd, header);
    for (const p of planned) {
      current = p.name;
      const t = tensors[p.name]!;
      const data = t.data; // re-read: the object may have changed since validation
      if (!ACCEPTED[p.dtype].some((C) => data instanceof C) || data.length !== p.byteLength / ITEM_SIZE[p.dtype]) {
        throw new SafetensorsError(file, 'tensor data changed type or size during write (after it was validated)', p.name);
      }
      writeTensorData(fd, p.dtype, data);
    }
    current = undefined;
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) { try { fs.closeSync(fd); } catch { /* already failing */ } }
    try { fs.unlinkSync(tmp); } catch { /* may not exist */ }
    if (err instanceof SafetensorsError) throw err;
    throw new SafetensorsError(file, `write failed: ${(err as Error).message}`, current, { cause: err });
  }
  // Persist the rename itself. Some filesystems refuse fsync on directories; the data is already safe then.
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* best effort */ }
}
