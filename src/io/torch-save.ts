/**
 * Write a state dict as `torch.save` does (the zip format PyTorch reads since 1.6), so PyTorch
 * OpenFlamingo, open_clip and transformers load files written here with `torch.load`:
 *
 *   archive/data.pkl   pickle (protocol 2) of an OrderedDict name → tensor, each tensor
 *                      `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`
 *                      with the storage a persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)
 *   archive/byteorder  "little"
 *   archive/data/<key> the tensor's float32 bytes, little-endian, C order, 64-byte aligned
 *   archive/version    "3"
 *
 * Only float32 tensors are written (what the exported sources hold). Entries are stored, not
 * compressed; a tensor's bytes are streamed from its producer in chunks (a packed weight is
 * dequantised a few rows at a time), and the CRC is patched into its local header afterwards, so no
 * second copy of the model is made. Files and entries over 4 GiB use zip64 records
 * (`zip64Above` lowers that bound, so tests exercise those records on small files).
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { FlamingoError } from '../errors.ts';

export class TorchSaveError extends FlamingoError {}

/** One tensor to write: its float32 values in C order, given whole or produced in chunks. */
export interface TorchTensorToWrite {
  shape: readonly number[];
  /** The values, or a producer that calls `emit` with consecutive chunks totalling prod(shape) values. */
  data: Float32Array | ((emit: (chunk: Float32Array) => void) => void);
}

// ------------------------------------------------------------------------------ pickle (protocol 2)

class Pickler {
  private readonly parts: Buffer[] = [];
  op(...b: number[]): this { this.parts.push(Buffer.from(b)); return this; }
  global(module: string, name: string): this { this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'utf8')); return this; }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.parts.push(h, b);
    return this;
  }
  int(n: number): this {
    if (!Number.isSafeInteger(n)) throw new TorchSaveError(`cannot pickle ${n} as an integer`);
    if (n >= 0 && n < 256) return this.op(0x4b, n); // BININT1
    if (n >= -(2 ** 31) && n < 2 ** 31) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT
      b.writeInt32LE(n, 1);
      this.parts.push(b);
      return this;
    }
    // LONG1: little-endian two's complement, 8 bytes suffice for any safe integer
    const b = Buffer.alloc(10);
    b[0] = 0x8a;
    b[1] = 8;
    b.writeBigInt64LE(BigInt(n), 2);
    this.parts.push(b);
    return this;
  }
  tuple(xs: readonly number[]): this {
    if (xs.length === 0) return this.op(0x29); // EMPTY_TUPLE
    this.op(0x28); // MARK
    for (const x of xs) this.int(x);
    return this.op(0x74); // TUPLE
  }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

/** The pickle of an OrderedDict of float32 tensors, tensor i in storage key `i`. */
export function statePickle(tensors: readonly [string, readonly number[]][]): Buffer {
  const p = new Pickler();
  p.op(0x80, 2); // PROTO 2
  p.global('collections', 'OrderedDict').op(0x29, 0x52); // OrderedDict()
  p.op(0x28); // MARK for SETITEMS
  tensors.forEach(([name, shape], i) => {
    const numel = shape.reduce((a, b) => a * b, 1);
    const stride = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.op(0x28); // MARK: the argument tuple
    p.op(0x28).str('storage').global('torch', 'FloatStorage').str(String(i)).str('cpu').int(numel).op(0x74).op(0x51); // BINPERSID
    p.int(0).tuple(shape).tuple(stride).op(0x89); // offset, size, stride, requires_grad=False
    p.global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks
    p.op(0x74, 0x52); // TUPLE, REDUCE
  });
  p.op(0x75, 0x2e); // SETITEMS, STOP
  return p.bytes();
}

// ------------------------------------------------------------------------------ zip (stored entries, zip64)

const U32_MAX = 0xffffffff;
const ALIGN = 64;

interface Written {
  name: Buffer;
  /** Sizes in a zip64 field (any entry whose size or offset passes the bound: miniz, torch's reader, expects both sizes there then). */
  z64: boolean;
  crc: number;
  size: number;
  offset: number;
}

class ZipWriter {
  private pos = 0;
  private readonly entries: Written[] = [];
  /** Sizes and offsets from this value up use zip64 records (U32_MAX; lower only to test them on small files). */
  constructor(private readonly fd: number, private readonly file: string, private readonly limit = U32_MAX) {}

  private write(b: Uint8Array): void {
    let off = 0;
    while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off, this.pos + off);
    this.pos += b.length;
  }

  /** An entry of known size whose bytes `produce` emits; the CRC is patched in afterwards. */
  entry(name: string, size: number, produce: (emit: (b: Uint8Array) => void) => void): void {
    const nameB = Buffer.from(name, 'utf8');
    const offset = this.pos;
    const big = size >= this.limit || offset >= this.limit;
    const z64 = big ? 20 : 0; // zip64 extra: id, len, uncompressed, compressed
    // pad with an extra field so the data starts on a 64-byte boundary (as torch.save does, for mmap)
    const pad = (ALIGN - ((offset + 30 + nameB.length + z64 + 4) % ALIGN)) % ALIGN;
    const h = Buffer.alloc(30 + nameB.length + z64 + 4 + pad);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(big ? 45 : 20, 4);
    h.writeUInt16LE(0, 8); // stored
    h.writeUInt32LE(0, 14); // crc: patched below
    h.writeUInt32LE(big ? U32_MAX : size, 18);
    h.writeUInt32LE(big ? U32_MAX : size, 22);
    h.writeUInt16LE(nameB.length, 26);
    h.writeUInt16LE(z64 + 4 + pad, 28);
    nameB.copy(h, 30);
    let x = 30 + nameB.length;
    if (big) {
      h.writeUInt16LE(1, x);
      h.writeUInt16LE(16, x + 2);
      h.writeBigUInt64LE(BigInt(size), x + 4);
      h.writeBigUInt64LE(BigInt(size), x + 12);
      x += 20;
    }
    h.writeUInt16LE(0x4246, x); // torch's padding field id ("FB")
    h.writeUInt16LE(pad, x + 2);
    this.write(h);
    let crc = 0;
    let n = 0;
    produce((b) => {
      crc = zlib.crc32(b, crc);
      n += b.length;
      this.write(b);
    });
    if (n !== size) throw new TorchSaveError(`${this.file}: entry ${name} produced ${n} bytes, ${size} declared`);
    const c = Buffer.alloc(4);
    c.writeUInt32LE(crc >>> 0, 0);
    fs.writeSync(this.fd, c, 0, 4, offset + 14);
    this.entries.push({ name: nameB, z64: big, crc: crc >>> 0, size, offset });
  }

  finish(): void {
    const cdStart = this.pos;
    for (const e of this.entries) {
      const bigSize = e.z64;
      const bigOff = e.offset >= this.limit;
      const extraLen = (bigSize ? 16 : 0) + (bigOff ? 8 : 0);
      const c = Buffer.alloc(46 + e.name.length + (extraLen ? 4 + extraLen : 0));
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE(extraLen ? 45 : 20, 4);
      c.writeUInt16LE(extraLen ? 45 : 20, 6);
      c.writeUInt16LE(0, 10);
      c.writeUInt32LE(e.crc, 16);
      c.writeUInt32LE(bigSize ? U32_MAX : e.size, 20);
      c.writeUInt32LE(bigSize ? U32_MAX : e.size, 24);
      c.writeUInt16LE(e.name.length, 28);
      c.writeUInt16LE(extraLen ? 4 + extraLen : 0, 30);
      c.writeUInt32LE(bigOff ? U32_MAX : e.offset, 42);
      e.name.copy(c, 46);
      if (extraLen) {
        let x = 46 + e.name.length;
        c.writeUInt16LE(1, x);
        c.writeUInt16LE(extraLen, x + 2);
        x += 4;
        if (bigSize) { c.writeBigUInt64LE(BigInt(e.size), x); c.writeBigUInt64LE(BigInt(e.size), x + 8); x += 16; }
        if (bigOff) c.writeBigUInt64LE(BigInt(e.offset), x);
      }
      this.write(c);
    }
    const cdSize = this.pos - cdStart;
    const n = this.entries.length;
    const z64 = cdStart >= this.limit || cdSize >= this.limit || n >= 0xffff;
    if (z64) {
      const rec = Buffer.alloc(56);
      const recAt = this.pos;
      rec.writeUInt32LE(0x06064b50, 0);
      rec.writeBigUInt64LE(44n, 4);
      rec.writeUInt16LE(45, 12);
      rec.writeUInt16LE(45, 14);
      rec.writeBigUInt64LE(BigInt(n), 24);
      rec.writeBigUInt64LE(BigInt(n), 32);
      rec.writeBigUInt64LE(BigInt(cdSize), 40);
      rec.writeBigUInt64LE(BigInt(cdStart), 48);
      const loc = Buffer.alloc(20);
      loc.writeUInt32LE(0x07064b50, 0);
      loc.writeBigUInt64LE(BigInt(recAt), 8);
      loc.writeUInt32LE(1, 16);
      this.write(rec);
      this.write(loc);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(z64 ? 0xffff : n, 8);
    end.writeUInt16LE(z64 ? 0xffff : n, 10);
    end.writeUInt32LE(z64 ? U32_MAX : cdSize, 12);
    end.writeUInt32LE(z64 ? U32_MAX : cdStart, 16);
    this.write(end);
  }
}

/** Bytes of a float32 chunk as written (little-endian, as on every platform Node runs on here). */
function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Write `tensors` (in this order) as a torch.save file. Written to `<file>.tmp` and renamed, so a
 * failed export never leaves a half-written file under the final name.
 */
export function writeTorchStateDict(
  file: string, tensors: Record<string, TorchTensorToWrite> | [string, TorchTensorToWrite][], options: { zip64Above?: number } = {},
): void {
  const list = Array.isArray(tensors) ? tensors : Object.entries(tensors);
  for (const [name, t] of list) {
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new TorchSaveError(`${file}: tensor '${name}' has an invalid shape [${t.shape.join(', ')}]`);
    if (t.data instanceof Float32Array && t.data.length !== t.shape.reduce((a, b) => a * b, 1)) {
      throw new TorchSaveError(`${file}: tensor '${name}' has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    }
  }
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new TorchSaveError('writing torch files needs a little-endian machine');
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const z = new ZipWriter(fd, file, options.zip64Above ?? U32_MAX);
    const pkl = statePickle(list.map(([n, t]) => [n, t.shape]));
    z.entry('archive/data.pkl', pkl.length, (emit) => emit(pkl));
    z.entry('archive/byteorder', 6, (emit) => emit(Buffer.from('little')));
    list.forEach(([name, t], i) => {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      z.entry(`archive/data/${i}`, numel * 4, (emit) => {
        if (t.data instanceof Float32Array) { emit(f32Bytes(t.data)); return; }
        let got = 0;
        t.data((chunk) => {
          got += chunk.length;
          if (got > numel) throw new TorchSaveError(`${file}: tensor '${name}' produced more than its ${numel} values`);
          emit(f32Bytes(chunk));
        });
      });
    });
    z.entry('archive/version', 2, (emit) => emit(Buffer.from('3\n')));
    z.finish();
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}
