/**
 * safetensors checkpoint reading and writing.
 *
 * Format: 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the data region. The header maps tensor
 * names to {dtype, shape, data_offsets: [begin, end]} (relative to the data region) plus an optional
 * `__metadata__` string map.
 *
 * Reading policy (documented choices):
 * - The file is read once into a single Buffer; F32/I32/… views into it are zero-copy when aligned, so the returned
 *   arrays ALIAS the file buffer (mutating one is visible through later calls for the same tensor).
 * - Gaps between tensors and trailing bytes after the last tensor are TOLERATED (some writers align tensors);
 *   overlapping tensors are REJECTED. Zero-byte tensors never overlap anything.
 * - Duplicate JSON keys are not detected (JSON.parse keeps the last one).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { FlamingoError } from '../errors.ts';

/** dtypes readable and writable here. The first seven are the ones flamingo-ts produces; the rest are read cheaply. */
export type SafeDType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL' | 'F64' | 'I8' | 'I16' | 'U16';

export interface TensorEntry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  byteLength: number;
}

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array
  | Int16Array | Uint16Array;

export interface TensorToWrite {
  dtype: SafeDType;
  shape: number[];
  data: TensorData;
}

export class SafetensorsError extends FlamingoError {
  readonly file: string;
  readonly tensor: string | undefined;

  constructor(file: string, message: string, tensor?: string, options?: { cause?: unknown }) {
    super(`safetensors ${file}${tensor !== undefined ? ` [tensor '${tensor}']` : ''}: ${message}`, options);
    this.file = file;
    this.tensor = tensor;
  }
}

const ITEM_SIZE: Record<SafeDType, number> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, U8: 1, I8: 1, BOOL: 1,
};

/** Largest header accepted; real headers are kilobytes, so anything larger is corruption or an attack. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * Deepest bracket nesting accepted in a header. A valid header nests 3 levels (object, entry, shape array);
 * deeper JSON is malformed, and left unchecked it would overflow the stack of JSON.stringify in error messages.
 */
export const MAX_HEADER_DEPTH = 8;

/** Most JSON values (commas + 1) accepted in a header: a 20k-tensor model needs ~200k; bounds parse memory. */
export const MAX_HEADER_VALUES = 2_000_000;

/**
 * Scan the raw header bytes (strings skipped) for bracket depth and value count before JSON.parse builds anything.
 * Byte-level is safe: UTF-8 continuation bytes never equal the ASCII structural characters.
 */
function checkHeaderShape(file: string, header: Uint8Array): void {
  let depth = 0;
  let values = 1;
  let inString = false;
  for (let i = 0; i < header.length; i++) {
    const c = header[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) { // [ {
      if (++depth > MAX_HEADER_DEPTH) {
        throw new SafetensorsError(file, `header JSON is nested deeper than ${MAX_HEADER_DEPTH} levels at byte ${8 + i} (a valid header nests 3)`);
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && ++values > MAX_HEADER_VALUES) {
      throw new SafetensorsError(file, `header JSON has more than ${MAX_HEADER_VALUES} values (corrupt file?)`);
    }
  }
}

const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ITEM_SIZE, s);
}

// ---------------------------------------------------------------------------------------------------------------
// Half-precision conversions (bit level). The *Bits functions operate on raw IEEE bit patterns so NaN payloads survive;
// the scalar helpers take/return JS numbers.

/** float32 bit pattern -> float16 bit pattern, round to nearest even; overflow -> Inf; NaN stays a (quiet) NaN. */
export function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // |x| < 2^-25: below half the smallest subnormal, rounds to zero
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h; // h may carry into 0x400, which is exactly the smallest normal
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // carry may reach 0x7c00 = Inf, which is correct
  return sign | h;
}

/** float16 bit pattern -> float32 bit pattern (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: normalise the mantissa into a float32 normal.
    let e = -1;
    do { mant <<= 1; e++; } while ((mant & 0x400) === 0);
    return (sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/** float32 bit pattern -> bfloat16 bit pattern, round to nearest even; NaN stays a quiet NaN. */
export function f32BitsToBf16Bits(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32Bits(h: number): number {
  return ((h & 0xffff) << 16) >>> 0;
}

// One-element scratch views used only inside the scalar helpers below (synchronous, never escapes).
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(x: number): number { scratchF32[0] = x; return scratchU32[0]!; }
function bitsF32(b: number): number { scratchU32[0] = b; return scratchF32[0]!; }

/** float16 bits -> number. */
export function f16ToF32(h: number): number { return bitsF32(f16BitsToF32Bits(h)); }
/** number (rounded to float32 first, as a Float32Array would) -> float16 bits. */
export function f32ToF16(x: number): number { return f32BitsToF16Bits(f32Bits(x)); }
/** bfloat16 bits -> number. */
export function bf16ToF32(h: number): number { return bitsF32(bf16BitsToF32Bits(h)); }
/** number (rounded to float32 first) -> bfloat16 bits. */
export function f32ToBf16(x: number): number { return f32BitsToBf16Bits(f32Bits(x)); }

/** Bulk float32 -> float16/bfloat16 bits (bit-level, so NaN payloads are preserved as far as the format allows). */
export function float32ArrayToHalfBits(src: Float32Array, kind: 'F16' | 'BF16'): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  const conv = kind === 'F16' ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < bits.length; i++) out[i] = conv(bits[i]!);
  return out;
}

/** Bulk float16/bfloat16 bits -> float32. */
export function halfBitsToFloat32Array(src: Uint16Array, kind: 'F16' | 'BF16'): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  const conv = kind === 'F16' ? f16BitsToF32Bits : bf16BitsToF32Bits;
  for (let i = 0; i < src.length; i++) bits[i] = conv(src[i]!);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

export interface ParsedEntry extends TensorEntry {
  /** absolute byte offset of the tensor in the file buffer */
  start: number;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  entries(): TensorEntry[];
  has(name: string): boolean;
  entry(name: string): TensorEntry;
  shape(name: string): number[];
  /** F32 (zero-copy view when 4-aligned), F16/BF16/F64 converted to float32. */
  float32(name: string): Float32Array;
  /** I32 (zero-copy view when aligned), I64 narrowed with a range check, U8/BOOL/I8/I16/U16 widened. */
  int32(name: string): Int32Array;
  /** Raw little-endian bytes (zero-copy view). */
  bytes(name: string): Uint8Array;
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Product of dims as a safe integer, or undefined if it would exceed 2^53. */
function safeProduct(dims: number[]): number | undefined {
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

export function parseHeader(file: string, json: unknown, dataLength: number, dataStart: number): {
  metadata: Record<string, string>;
  entries: Map<string, ParsedEntry>;
} {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, `header JSON must be an object, got ${describe(json)}`);
  }
  const metadata: Record<string, string> = {};
  const entries = new Map<string, ParsedEntry>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new SafetensorsError(file, `__metadata__ must be an object of strings, got ${describe(raw)}`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') {
          throw new SafetensorsError(file, `__metadata__ value for key '${k}' must be a string, got ${describe(v)}`);
        }
        // defineProperty so a key named "__proto__" is stored as data rather than changing the prototype
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const fail = (msg: string): never => { throw new SafetensorsError(file, msg, name); };
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`entry must be an object, got ${describe(raw)}`);
    const e = raw as Record<string, unknown>;
    for (const key of ['dtype', 'shape', 'data_offsets']) {
      if (!(key in e)) fail(`entry is missing '${key}'`);
    }
    if (!isSafeDType(e.dtype)) {
      fail(`unknown dtype ${describe(e.dtype)} (supported: ${Object.keys(ITEM_SIZE).join(', ')})`);
    }
    const dtype = e.dtype as SafeDType;
    if (!Array.isArray(e.shape)) fail(`shape must be an array, got ${describe(e.shape)}`);
    const shape = e.shape as unknown[];
    shape.forEach((d, i) => {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(`shape ${describe(shape)} has invalid dimension ${describe(d)} at index ${i} (need a non-negative integer)`);
      }
    });
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2
      || !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      fail(`data_offsets must be [begin, end] non-negative integers, got ${describe(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`data_offsets [${begin}, ${end}]: begin > end`);
    if (end > dataLength) {
      fail(`data_offsets [${begin}, ${end}] exceed the data region of ${dataLength} bytes (file truncated?)`);
    }
    const numel = safeProduct(shape as number[]);
    const expected = numel === undefined ? undefined : numel * ITEM_SIZE[dtype];
    if (expected === undefined || expected !== end - begin) {
      fail(`byte size ${end - begin} (data_offsets [${begin}, ${end}]) does not match shape ${describe(shape)} x `
        + `${ITEM_SIZE[dtype]} bytes (${dtype}) = ${expected ?? 'overflow'}`);
    }
    entries.set(name, { name, dtype, shape: (shape as number[]).slice(), byteLength: end - begin, start: dataStart + begin });
  }
  // Overlap check on non-empty tensors, sorted by start.
  const sorted = [...entries.values()].filter((x) => x.byteLength > 0).sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.start < prev.start + prev.byteLength) {
      throw new SafetensorsError(file, `tensor overlaps '${prev.name}' (data_offsets `
        + `[${prev.start - dataStart}, ${prev.start - dataStart + prev.byteLength}] and `
        + `[${cur.start - dataStart}, ${cur.start - dataStart + cur.byteLength}])`, cur.name);
    }
  }
  return { metadata, entries };
}

/** Parse a safetensors file already held in memory. `file` is only used in error messages. */
export function parseSafetensors(buf: Buffer, file = '<buffer>'): SafetensorsFile {
  if (buf.length < 8) throw new SafetensorsError(file, `file is ${buf.length} bytes, shorter than the 8-byte header length`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
  }
  const headerLen = Number(n);
  if (headerLen > buf.length - 8) {
    throw new SafetensorsError(file, `header length ${headerLen} is larger than the ${buf.length - 8} bytes after it (truncated file?)`);
  }
  checkHeaderShape(file, buf.subarray(8, 8 + headerLen));
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf.subarray(8, 8 + headerLen));
  } catch (err) {
    throw new SafetensorsError(file, 'header is not valid UTF-8', undefined, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message}); starts with ${describe(text.slice(0, 40))}`,
      undefined, { cause: err });
  }
  const dataStart = 8 + headerLen;
  const { metadata, entries } = parseHeader(file, json, buf.length - dataStart, dataStart);
  return new LoadedSafetensors(file, buf, metadata, entries);
}

/** Largest single read/write request; one fs call is limited to 2 GiB. */
const READ_CHUNK = 1 << 30;

/**
 * Read a whole file into one unpooled Buffer (own ArrayBuffer, byteOffset 0, so file alignment is memory alignment).
 * Unlike fs.readFileSync this works past 2 GiB (up to the 4 GiB Buffer limit). Errors are thrown as plain Errors.
 */
export function readFileOnce(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size > bufferConstants.MAX_LENGTH) throw new Error(`file is ${size} bytes, larger than the ${bufferConstants.MAX_LENGTH}-byte Buffer limit`);
    const buf = Buffer.allocUnsafeSlow(size);
    let off = 0;
    while (off < size) {
      const got = fs.readSync(fd, buf, off, Math.min(size - off, READ_CHUNK), off);
      if (got === 0) throw new Error(`file shrank while reading (${off} of ${size} bytes)`);
      off += got;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Read a safetensors file (the whole file, once, into one Buffer). */
export function readSafetensors(file: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileOnce(file);
  } catch (err) {
    throw new SafetensorsError(file, `cannot read: ${(err as Error).message}`, undefined, { cause: err });
  }
  return parseSafetensors(buf, file);
}

class LoadedSafetensors implements SafetensorsFile {
  constructor(
    readonly path: string,
    private readonly buf: Buffer,
    readonly metadata: Record<string, string>,
    private readonly map: Map<string, ParsedEntry>,
  ) {}

  entries(): TensorEntry[] {
    return [...this.map.values()].map(({ name, dtype, shape, byteLength }) => ({ name, dtype, shape: shape.slice(), byteLength }));
  }

  has(name: string): boolean { return this.map.has(name); }

  private get(name: string): ParsedEntry {
    const e = this.map.get(name);
    if (!e) {
      const names = [...this.map.keys()];
      const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? `, … (${names.length} total)` : '');
      throw new SafetensorsError(this.path, `no such tensor (available: ${shown || 'none'})`, name);
    }
    return e;
  }

  entry(name: string): TensorEntry {
    const { dtype, shape, byteLength } = this.get(name);
    return { name, dtype, shape: shape.slice(), byteLength };
  }

  shape(name: string): number[] { return this.get(name).shape.slice(); }

  bytes(name: string): Uint8Array {
    const e = this.get(name);
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset + e.start, e.byteLength);
  }

  /** A typed view of the tensor's bytes if aligned on a little-endian host, else a copy. */
  private typed<T>(e: ParsedEntry, Ctor: { new(b: ArrayBufferLike, o: number, n: number): T; new(n: number): T },
    item: number): T {
    if (!LITTLE_ENDIAN_HOST) throw new SafetensorsError(this.path, 'big-endian hosts are not supported', e.name);
    const abs = this.buf.byteOffset + e.start;
    const n = e.byteLength / item;
    if (abs % item === 0) return new Ctor(this.buf.buffer, abs, n);
    const copy = new Uint8Array(e.byteLength); // misaligned: copy just this tensor
    copy.set(this.buf.subarray(e.start, e.start + e.byteLength));
    return new Ctor(copy.buffer, 0, n);
  }

  float32(name: string): Float32Array {
    const e = this.get(name);
    switch (e.dtype) {
      case 'F32': return this.typed(e, Float32Array, 4);
      case 'F16':
      case 'BF16': return halfBitsToFloat32Array(this.typed(e, Uint16Array, 2), e.dtype);
      case 'F64': return Float32Array.from(this.typed(e, Float64Array, 8));
      default:
        throw new SafetensorsError(this.path, `float32() needs a floating dtype (F32/F16/BF16/F64), tensor is ${e.dtype}; use int32()`, name);
    }
  }

  int32(name: string): Int32Array {
    const e = this.get(name);
    switch (e.dtype) {
      case 'I32': return this.typed(e, Int32Array, 4);
      case 'I64': {
        const n = e.byteLength / 8;
        const out = new Int32Array(n);
        const dv = new DataView(this.buf.buffer, this.buf.byteOffset + e.start, e.byteLength);
        for (let i = 0; i < n; i++) {
          const lo = dv.getUint32(i * 8, true);
          const hi = dv.getInt32(i * 8 + 4, true);
          // Fits in int32 iff the high word is the sign extension of the low word.
          if (hi !== (lo >= 0x80000000 ? -1 : 0)) {
            throw new SafetensorsError(this.path, `I64 value ${dv.getBigInt64(i * 8, true)} at flat index ${i} does not fit in int32`, name);
          }
          out[i] = lo | 0;
        }
        return out;
      }
      case 'U8': case 'BOOL': return Int32Array.from(this.bytes(name));
      case 'I8': return Int32Array.from(this.typed(e, Int8Array, 1));
      case 'I16': return Int32Array.from(this.typed(e, Int16Array, 2));
      case 'U16': return Int32Array.from(this.typed(e, Uint16Array, 2));
      default:
        throw new SafetensorsError(this.path, `int32() needs an integer or bool dtype, tensor is ${e.dtype}; use float32()`, name);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

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

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, Math.min(bytes.length - off, READ_CHUNK));
}

function asBytes(a: TensorData): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Elements converted per chunk, so conversions never need a second full-size copy of a big tensor. */
const CHUNK = 1 << 20;

function writeTensorData(fd: number, dtype: SafeDType, data: TensorData): void {
  if (!LITTLE_ENDIAN_HOST) throw new Error('big-endian hosts are not supported');
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
        throw new Error('tensor data changed type or size during write');
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

/**
 * A safetensors file read tensor by tensor with positioned reads: only the header is held in
 * memory, and each tensor's bytes go straight into the caller's buffer (its final storage, or a
 * small chunk buffer when it is converted on the way). Loading a model this way never holds the
 * whole file beside the model, and works past the 4 GiB Buffer limit.
 */
export class SafetensorsReader {
  private constructor(
    readonly path: string,
    private fd: number | null,
    readonly metadata: Record<string, string>,
    private readonly map: Map<string, ParsedEntry>,
  ) {}

  static open(file: string): SafetensorsReader {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new SafetensorsError(file, `cannot read: ${(err as Error).message}`, undefined, { cause: err });
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
      const headerLen = Number(n);
      if (headerLen > size - 8) throw new SafetensorsError(file, `header length ${headerLen} is larger than the ${size - 8} bytes after it (truncated file?)`);
      const hb = Buffer.alloc(headerLen);
      fs.readSync(fd, hb, 0, headerLen, 8);
      checkHeaderShape(file, hb);
      let json: unknown;
      try {
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(hb));
      } catch (err) {
        throw new SafetensorsError(file, `header is not valid UTF-8 JSON (${(err as Error).message})`, undefined, { cause: err });
      }
      const { metadata, entries } = parseHeader(file, json, size - 8 - headerLen, 8 + headerLen);
      return new SafetensorsReader(file, fd, metadata, entries);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  entries(): TensorEntry[] {
    return [...this.map.values()].map(({ name, dtype, shape, byteLength }) => ({ name, dtype, shape: shape.slice(), byteLength }));
  }

  has(name: string): boolean { return this.map.has(name); }

  entry(name: string): TensorEntry {
    const e = this.map.get(name);
    if (!e) throw new SafetensorsError(this.path, 'no such tensor', name);
    return { name, dtype: e.dtype, shape: e.shape.slice(), byteLength: e.byteLength };
  }

  /** Reads `dst.byteLength` bytes of tensor `name` starting `offset` bytes into it. */
  readInto(name: string, dst: ArrayBufferView, offset = 0): void {
    const e = this.map.get(name);
    if (!e) throw new SafetensorsError(this.path, 'no such tensor', name);
    if (this.fd === null) throw new SafetensorsError(this.path, 'reader is closed', name);
    if (!LITTLE_ENDIAN_HOST) throw new SafetensorsError(this.path, 'big-endian hosts are not supported', name);
    const len = dst.byteLength;
    if (offset < 0 || offset + len > e.byteLength) {
      throw new SafetensorsError(this.path, `read of ${len} bytes at ${offset} is outside the tensor's ${e.byteLength} bytes`, name);
    }
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, len);
    let done = 0;
    while (done < len) {
      const got = fs.readSync(this.fd, bytes, done, Math.min(len - done, READ_CHUNK), e.start + offset + done);
      if (got === 0) throw new SafetensorsError(this.path, `file ended while reading (${done} of ${len} bytes)`, name);
      done += got;
    }
  }

  /**
   * Elements [start, start + out.length) of a floating tensor as float32 (F16/BF16/F64 converted
   * through a chunk of the source width, never a copy of the whole tensor).
   */
  readFloat32(name: string, out: Float32Array, start = 0): void {
    const e = this.entry(name);
    const item = ITEM_SIZE[e.dtype];
    if (e.dtype === 'F32') { this.readInto(name, out, start * 4); return; }
    if (e.dtype !== 'F16' && e.dtype !== 'BF16' && e.dtype !== 'F64') {
      throw new SafetensorsError(this.path, `expected a floating dtype (F32/F16/BF16/F64), tensor is ${e.dtype}`, name);
    }
    const CH = 1 << 18;
    for (let i = 0; i < out.length; i += CH) {
      const n = Math.min(CH, out.length - i);
      if (e.dtype === 'F64') {
        const tmp = new Float64Array(n);
        this.readInto(name, tmp, (start + i) * item);
        for (let j = 0; j < n; j++) out[i + j] = tmp[j]!;
      } else {
        const tmp = new Uint16Array(n);
        this.readInto(name, tmp, (start + i) * item);
        out.set(halfBitsToFloat32Array(tmp, e.dtype), i);
      }
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
