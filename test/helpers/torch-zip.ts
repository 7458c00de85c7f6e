/**
 * Assemble torch.save-style zip checkpoints byte by byte (no PyTorch here): `<archive>/data.pkl`, storages under
 * `<archive>/data/<key>` 64-byte aligned by a padding extra field, `<archive>/byteorder`. Entries can be deflated
 * and their declared inflated size overridden, to build hostile files.
 */
import * as zlib from 'node:zlib';

export interface TorchZipOptions {
  /** Deflate these entries (by name relative to the archive folder: 'data.pkl', 'data/0'). */
  deflate?: string[];
  /** Entry content already deflated elsewhere: name -> [raw deflate stream, inflated size]. */
  predeflated?: Record<string, [Buffer, number]>;
}

export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array> = {}, o: TorchZipOptions = {}): Buffer {
  const files: [string, Uint8Array | undefined][] = [
    ['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from('little')],
    ...Object.entries(storages).map(([k, v]): [string, Uint8Array] => [`archive/data/${k}`, v]),
    ...Object.keys(o.predeflated ?? {}).map((k): [string, undefined] => [`archive/${k}`, undefined]),
  ];
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const [name, content] of files) {
    const rel = name.slice('archive/'.length);
    const pre = o.predeflated?.[rel];
    const deflate = pre !== undefined || (o.deflate ?? []).includes(rel);
    const body = pre ? pre[0] : deflate ? zlib.deflateRawSync(content!) : Buffer.from(content!);
    const size = pre ? pre[1] : content!.length;
    const crc = pre ? 0 : zlib.crc32(content!) >>> 0;
    const nameB = Buffer.from(name, 'utf8');
    const padLen = ((-(off + 30 + nameB.length + 4)) % 64 + 64) % 64;
    const extra = Buffer.alloc(4 + padLen);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(padLen, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(nameB.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(deflate ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(body.length, 20);
    c.writeUInt32LE(size, 24);
    c.writeUInt16LE(nameB.length, 28);
    c.writeUInt32LE(off, 42);
    chunks.push(local, nameB, extra, body);
    central.push(c, nameB);
    off += local.length + nameB.length + extra.length + body.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(off, 16);
  return Buffer.concat([...chunks, cd, eocd]);
}

/** Minimal protocol-2 pickle writer: raw opcodes plus the few composite shapes the tests need. */
export class PickleBytes {
  private parts: Buffer[] = [];
  raw(...b: number[]): this { this.parts.push(Buffer.from(b)); return this; }
  repeat(bytes: number[], n: number): this {
    const unit = Buffer.from(bytes);
    const out = Buffer.alloc(unit.length * n);
    for (let i = 0; i < n; i++) unit.copy(out, i * unit.length);
    this.parts.push(out);
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    this.parts.push(Buffer.from([0x58]), n, b); // BINUNICODE
    return this;
  }
  int(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.parts.push(Buffer.from([0x4a]), b); // BININT
    return this;
  }
  global(module: string, name: string): this { this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'latin1')); return this; }
  /** `_rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())` */
  tensor(key: string, numel: number, size: number[], stride: number[], storageType = 'FloatStorage'): this {
    this.global('torch._utils', '_rebuild_tensor_v2').raw(0x28); // MARK (args)
    this.raw(0x28).str('storage').global('torch', storageType).str(key).str('cpu').int(numel).raw(0x74, 0x51); // TUPLE, BINPERSID
    this.int(0).raw(0x28);
    for (const d of size) this.int(d);
    this.raw(0x74, 0x28);
    for (const s of stride) this.int(s);
    this.raw(0x74, 0x89).global('collections', 'OrderedDict').raw(0x29, 0x52); // NEWFALSE, OrderedDict()
    return this.raw(0x74, 0x52); // TUPLE, REDUCE
  }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}
