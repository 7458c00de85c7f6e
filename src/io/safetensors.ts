/**
 * safetensors: the format's types, its error, and the header (length prefix, size limits, JSON checks and
 * parsing into entries) that both readers share. Reading: safetensors-read.ts (a whole file in memory, or
 * tensor by tensor with positioned reads); writing: safetensors-write.ts; float16 / bfloat16 bits: half-float.ts.
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
import * as os from 'node:os';
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

/** Bytes per element of each dtype. */
export const ITEM_SIZE: Record<SafeDType, number> = {
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
export function checkHeaderShape(file: string, header: Uint8Array): void {
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

/** Tensor bytes are little-endian in the file and are viewed, not swapped, in memory. */
export const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

export function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ITEM_SIZE, s);
}

// ---------------------------------------------------------------------------------------------------------------
// The header

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

/** A JSON value shortened for an error message. */
export function describe(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Product of dims as a safe integer, or undefined if it would exceed 2^53. */
export function safeProduct(dims: number[]): number | undefined {
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/** Entries and metadata of a parsed header, each entry checked against the `dataLength` bytes of the data region. */
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


/**
 * The header's byte length from the file's 8-byte prefix, checked against the limit and against the
 * `size` bytes of the whole file.
 */
export function headerLength(file: string, prefix: Buffer, size: number): number {
  if (size < 8) throw new SafetensorsError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
  const n = prefix.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
  }
  const headerLen = Number(n);
  if (headerLen > size - 8) {
    throw new SafetensorsError(file, `header length ${headerLen} is larger than the ${size - 8} bytes after it (truncated file?)`);
  }
  return headerLen;
}

/** The header bytes as JSON: their shape scanned first, then decoded as strict UTF-8 and parsed. */
export function parseHeaderJson(file: string, header: Uint8Array): unknown {
  checkHeaderShape(file, header);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch (err) {
    throw new SafetensorsError(file, 'header is not valid UTF-8', undefined, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message}); starts with ${describe(text.slice(0, 40))}`,
      undefined, { cause: err });
  }
}
