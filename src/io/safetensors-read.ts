/**
 * Reading safetensors files: `readSafetensors` holds the whole file in one Buffer (F32/I32/… views into it are
 * zero-copy when aligned, so the returned arrays alias the file buffer); `SafetensorsReader` keeps only the
 * header and reads each tensor with positioned reads into the caller's buffer. Policy in safetensors.ts.
 */
import * as fs from 'node:fs';
import { IO_CHUNK, readFailure, readFileOnce } from './file-io.ts';
import { halfBitsToFloat32Array } from './half-float.ts';
import {
  ITEM_SIZE, LITTLE_ENDIAN_HOST, SafetensorsError, headerLength, parseHeader, parseHeaderJson,
  type ParsedEntry, type SafetensorsFile, type TensorEntry,
} from './safetensors.ts';

/** Parse a safetensors file already held in memory. `file` is only used in error messages. */
export function parseSafetensors(buf: Buffer, file = '<buffer>'): SafetensorsFile {
  const headerLen = headerLength(file, buf, buf.length);
  const json = parseHeaderJson(file, buf.subarray(8, 8 + headerLen));
  const dataStart = 8 + headerLen;
  const { metadata, entries } = parseHeader(file, json, buf.length - dataStart, dataStart);
  return new LoadedSafetensors(file, buf, metadata, entries);
}

/** Read a safetensors file (the whole file, once, into one Buffer). */
export function readSafetensors(file: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileOnce(file);
  } catch (err) {
    throw new SafetensorsError(file, `cannot read: ${readFailure(err)}`, undefined, { cause: err });
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
      const prefix = Buffer.alloc(8);
      if (size >= 8) fs.readSync(fd, prefix, 0, 8, 0);
      const headerLen = headerLength(file, prefix, size);
      const hb = Buffer.alloc(headerLen);
      fs.readSync(fd, hb, 0, headerLen, 8);
      const json = parseHeaderJson(file, hb);
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
      const got = fs.readSync(this.fd, bytes, done, Math.min(len - done, IO_CHUNK), e.start + offset + done);
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
