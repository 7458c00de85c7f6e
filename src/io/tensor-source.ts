/**
 * Tensor files read one tensor at a time, straight into the caller's buffer: safetensors and PyTorch
 * zip checkpoints (`.pt`, `.bin`). Only headers (and the pickle) are read up front; a tensor's bytes
 * are read when asked for, so loading a model never holds a second copy of its weights. F16 / BF16 /
 * F64 / integer tensors are converted to float32 in bounded chunks.
 */
import { FlamingoError } from '../errors.ts';
import * as fs from 'node:fs';
import {
  ITEM_SIZE, LITTLE_ENDIAN_HOST, SafetensorsError, headerLength, parseHeader, parseHeaderJson, type SafeDType,
} from './safetensors.ts';
import { halfBitsToFloat32Array } from './half-float.ts';
import { indexTorchCheckpoint } from './torch-pickle.ts';
import { TorchCheckpointError } from './torch-limits.ts';
import type { TorchTensorRef } from './pickle-values.ts';

export interface TensorInfo {
  dtype: SafeDType;
  shape: readonly number[];
}

export interface TensorSource {
  readonly file: string;
  names(): string[];
  info(name: string): TensorInfo | undefined;
  /**
   * Read elements [offset, offset + dest.length) (C order) of tensor `name` as float32 into dest
   * (a part: e.g. the first rows of an embedding being resized, or one chunk of rows).
   */
  readInto(name: string, dest: Float32Array, offset?: number): void;
  close(): void;
}

export class TensorSourceError extends FlamingoError {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
  }
}

/** Elements converted per chunk for non-float32 tensors (bounded scratch memory). */
const CHUNK = 1 << 22;

function readExact(fd: number, file: string, buf: Uint8Array, pos: number): void {
  let off = 0;
  while (off < buf.length) {
    const got = fs.readSync(fd, buf, off, buf.length - off, pos + off);
    if (got === 0) throw new TensorSourceError(file, `unexpected end of file at byte ${pos + off} (truncated?)`);
    off += got;
  }
}

/** Read n contiguous elements of `dtype` at byte `pos` as float32 into dest[0..n). */
function readConverted(fd: number, file: string, dtype: SafeDType, pos: number, dest: Float32Array): void {
  const n = dest.length;
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) {
    readExact(fd, file, new Uint8Array(dest.buffer, dest.byteOffset, n * 4), pos);
    return;
  }
  const item = ITEM_SIZE[dtype];
  const scratch = Buffer.allocUnsafe(Math.min(n, CHUNK) * item);
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    const b = scratch.subarray(0, m * item);
    readExact(fd, file, b, pos + i * item);
    const out = dest.subarray(i, i + m);
    switch (dtype) {
      case 'F16': case 'BF16': {
        const u16 = new Uint16Array(m);
        for (let j = 0; j < m; j++) u16[j] = b.readUInt16LE(2 * j);
        out.set(halfBitsToFloat32Array(u16, dtype));
        break;
      }
      case 'F32': for (let j = 0; j < m; j++) out[j] = b.readFloatLE(4 * j); break;
      case 'F64': for (let j = 0; j < m; j++) out[j] = b.readDoubleLE(8 * j); break;
      case 'I64': for (let j = 0; j < m; j++) out[j] = Number(b.readBigInt64LE(8 * j)); break;
      case 'I32': for (let j = 0; j < m; j++) out[j] = b.readInt32LE(4 * j); break;
      case 'I16': for (let j = 0; j < m; j++) out[j] = b.readInt16LE(2 * j); break;
      case 'U16': for (let j = 0; j < m; j++) out[j] = b.readUInt16LE(2 * j); break;
      case 'I8': for (let j = 0; j < m; j++) out[j] = b.readInt8(j); break;
      case 'U8': case 'BOOL': for (let j = 0; j < m; j++) out[j] = b[j]!; break;
    }
  }
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

class SafetensorsSource implements TensorSource {
  private fd: number | null;
  private readonly entries: Map<string, { dtype: SafeDType; shape: number[]; start: number }>;
  constructor(readonly file: string) {
    try {
      this.fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new TensorSourceError(file, `cannot open: ${(e as Error).message}`);
    }
    try {
      const size = fs.fstatSync(this.fd).size;
      const lenBuf = Buffer.alloc(8);
      if (size >= 8) readExact(this.fd, file, lenBuf, 0);
      const headerLen = headerLength(file, lenBuf, size);
      const hb = Buffer.alloc(headerLen);
      readExact(this.fd, file, hb, 8);
      const json = parseHeaderJson(file, hb);
      const parsed = parseHeader(file, json, size - 8 - headerLen, 8 + headerLen);
      this.entries = new Map([...parsed.entries].map(([k, e]) => [k, { dtype: e.dtype, shape: [...e.shape], start: e.start }]));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  names(): string[] { return [...this.entries.keys()]; }
  info(name: string): TensorInfo | undefined { return this.entries.get(name); }

  readInto(name: string, dest: Float32Array, offset = 0): void {
    const e = this.entries.get(name);
    if (!e) throw new TensorSourceError(this.file, `no tensor '${name}'`);
    if (offset + dest.length > numelOf(e.shape)) throw new TensorSourceError(this.file, `tensor '${name}' has ${numelOf(e.shape)} elements, [${offset}, ${offset + dest.length}) requested`);
    if (this.fd === null) throw new TensorSourceError(this.file, 'already closed');
    readConverted(this.fd, this.file, e.dtype, e.start + offset * ITEM_SIZE[e.dtype], dest);
  }

  close(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
  }
}

class TorchSource implements TensorSource {
  private fd: number | null;
  private readonly refs: Map<string, TorchTensorRef>;
  constructor(readonly file: string) {
    this.refs = indexTorchCheckpoint(file);
    this.fd = fs.openSync(file, 'r');
  }

  names(): string[] { return [...this.refs.keys()]; }
  info(name: string): TensorInfo | undefined { return this.refs.get(name); }

  readInto(name: string, dest: Float32Array, offset = 0): void {
    const r = this.refs.get(name);
    if (!r) throw new TensorSourceError(this.file, `no tensor '${name}'`);
    if (this.fd === null) throw new TensorSourceError(this.file, 'already closed');
    const numel = r.numel;
    if (offset + dest.length > numel) throw new TensorSourceError(this.file, `tensor '${name}' has ${numel} elements, [${offset}, ${offset + dest.length}) requested`);
    if (dest.length === 0) return;
    const item = ITEM_SIZE[r.dtype];
    let contiguous = true;
    for (let k = r.shape.length - 1, expect = 1; k >= 0; k--) {
      if (r.shape[k] !== 1 && r.strides[k] !== expect) { contiguous = false; break; }
      expect *= r.shape[k]!;
    }
    if (contiguous) {
      readConverted(this.fd, this.file, r.dtype, r.fileOffset + (r.offset + offset) * item, dest);
      return;
    }
    // strided (a saved view): read the storage span it covers, then gather in C order
    let maxIndex = r.offset;
    for (let k = 0; k < r.shape.length; k++) maxIndex += (r.shape[k]! - 1) * r.strides[k]!;
    const span = new Float32Array(maxIndex - r.offset + 1);
    readConverted(this.fd, this.file, r.dtype, r.fileOffset + r.offset * item, span);
    const idx = new Array<number>(r.shape.length).fill(0);
    let s = 0;
    for (let j = 0; j < offset + dest.length; j++) {
      if (j >= offset) dest[j - offset] = span[s]!;
      for (let k = r.shape.length - 1; k >= 0; k--) {
        if (++idx[k]! < r.shape[k]!) { s += r.strides[k]!; break; }
        s -= (r.shape[k]! - 1) * r.strides[k]!;
        idx[k] = 0;
      }
    }
  }

  close(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
  }
}

/** Open a tensor file by its contents (zip → PyTorch, else safetensors). Errors name the file. */
export function openTensorSource(file: string): TensorSource {
  if (!fs.existsSync(file)) throw new TensorSourceError(file, 'no such file');
  const fd = fs.openSync(file, 'r');
  const magic = Buffer.alloc(4);
  let got = 0;
  try {
    got = fs.readSync(fd, magic, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  try {
    if (got === 4 && magic.readUInt32LE(0) === 0x04034b50) return new TorchSource(file);
    if (got >= 2 && magic[0] === 0x80 && magic[1]! <= 5) return new TorchSource(file); // legacy pickle: refused with a clear message
    return new SafetensorsSource(file);
  } catch (e) {
    if (e instanceof TensorSourceError) throw e;
    if (e instanceof SafetensorsError || e instanceof TorchCheckpointError) throw new TensorSourceError(file, e.message.replace(`${file}: `, '').replace(/^(safetensors|torch checkpoint) \S+: /, ''));
    throw e;
  }
}
