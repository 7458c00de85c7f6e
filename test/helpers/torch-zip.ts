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

/** A torch.save-style checkpoint: `pkl` as data.pkl, `storages` under data/, a byteorder entry. */
export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array> = {}, o: TorchZipOptions = {}): Buffer {
  const files: [string, Uint8Array][] = [
    ['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from('little')],
    ...Object.entries(storages).map(([k, v]): [string, Uint8Array] => [`archive/data/${k}`, v]),
    ...Object.keys(o.predeflated ?? {}).map((k): [string, Uint8Array] => [`archive/${k}`, new Uint8Array(0)]),
  ];
  const predeflated = Object.fromEntries(Object.entries(o.predeflated ?? {}).map(([k, v]) => [`archive/${k}`, v]));
  return buildZip(files, { deflate: (name) => (o.deflate ?? []).includes(name.slice('archive/'.length)), predeflated });
}

export interface ZipOpts {
  /** Deflate the entries this says yes to. */
  deflate?: (name: string) => boolean;
  /** Start every entry's data at 64·k + 1 instead of 64·k (torch's reader must copy, not view). */
  misalign?: boolean;
  /** Write zip64 records (sizes and offsets in the extra field and the zip64 end records). */
  zip64?: boolean;
  /** Entries whose content was deflated elsewhere: full name -> [raw deflate stream, inflated size they declare]. */
  predeflated?: Record<string, [Buffer, number]>;
}

/** A zip of `files` (name, content) laid out like torch.save's writer. */
export function buildZip(files: [string, Uint8Array][], opts: ZipOpts = {}): Buffer {
  const chunks: Buffer[] = [];
  let off = 0;
  const central: Buffer[] = [];
  for (const [name, content] of files) {
    const nameB = Buffer.from(name, 'utf8');
    const pre = opts.predeflated?.[name];
    const method = pre !== undefined || opts.deflate?.(name) ? 8 : 0;
    const body = pre ? pre[0] : method === 8 ? zlib.deflateRawSync(content) : Buffer.from(content);
    const size = pre ? pre[1] : content.length;
    const crc = pre ? 0 : zlib.crc32(content) >>> 0;
    // Pad the local extra field (id 'FB', like torch's writer) so the data starts 64-byte aligned (or at +1).
    const base = off + 30 + nameB.length + 4;
    const want = opts.misalign ? 1 : 0;
    const padLen = (((want - base) % 64) + 64) % 64;
    const extra = Buffer.alloc(4 + padLen);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(padLen, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(nameB.length, 26);
    local.writeUInt16LE(extra.length, 28);
    chunks.push(local, nameB, extra, body);
    const z64 = opts.zip64 === true;
    const cExtra = Buffer.alloc(z64 ? 28 : 0);
    if (z64) {
      cExtra.writeUInt16LE(1, 0);
      cExtra.writeUInt16LE(24, 2);
      cExtra.writeBigUInt64LE(BigInt(size), 4);
      cExtra.writeBigUInt64LE(BigInt(body.length), 12);
      cExtra.writeBigUInt64LE(BigInt(off), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(z64 ? 45 : 20, 4);
    c.writeUInt16LE(z64 ? 45 : 20, 6);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(z64 ? 0xffffffff : body.length, 20);
    c.writeUInt32LE(z64 ? 0xffffffff : size, 24);
    c.writeUInt16LE(nameB.length, 28);
    c.writeUInt16LE(cExtra.length, 30);
    c.writeUInt32LE(z64 ? 0xffffffff : off, 42);
    central.push(c, nameB, cExtra);
    off += local.length + nameB.length + extra.length + body.length;
  }
  const cd = Buffer.concat(central);
  const cdOffset = off;
  const tail: Buffer[] = [cd];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(files.length), 24);
    rec.writeBigUInt64LE(BigInt(files.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cdOffset, 16);
  tail.push(eocd);
  return Buffer.concat([...chunks, ...tail]);
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
