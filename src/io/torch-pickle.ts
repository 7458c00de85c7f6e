/**
 * Read PyTorch zip checkpoints (`torch.save` since 1.6; `.pt`, `.pth`, `pytorch_model.bin`) without Python.
 *
 * Layout: a zip archive whose entries share one top-level folder `<archive>/`: `data.pkl` (the pickled object),
 * `data/<key>` (raw little-endian storage bytes, usually stored uncompressed and 64-byte aligned), optionally
 * `byteorder` and `version`. Tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
 * requires_grad, hooks)` where `storage` comes from a persistent id `('storage', torch.FloatStorage, key, location,
 * numel)`.
 *
 * Safety: the pickle is interpreted by a small VM that knows a fixed allow-list of globals (OrderedDict, tensor
 * rebuild functions, storage types). Any other global is refused with an error (or, with `allowUnknownGlobals`,
 * becomes an inert placeholder); nothing is ever executed.
 * The legacy (pre-1.6, non-zip) format and TorchScript archives are refused.
 */
import * as zlib from 'node:zlib';
import {
  halfBitsToFloat32Array, readFileOnce, type SafeDType, type TensorData,
} from './safetensors.ts';

export class TorchCheckpointError extends Error {
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`torch checkpoint ${file}: ${message}`, options);
    this.name = 'TorchCheckpointError';
    this.file = file;
  }
}

/**
 * A tensor from a checkpoint. `data` uses the natural array for the dtype: F32 Float32Array, F64 Float64Array,
 * F16/BF16 Uint16Array (raw bits), I64 BigInt64Array, I32 Int32Array, I16 Int16Array, I8 Int8Array, U8/BOOL
 * Uint8Array — exactly what `writeSafetensors` accepts, so conversion is lossless. Contiguous tensors are views
 * into the checkpoint buffer (tensors sharing a storage alias each other); strided ones are contiguous copies.
 */
export interface TorchTensor {
  dtype: SafeDType;
  shape: number[];
  data: TensorData;
}

// ---------------------------------------------------------------------------------------------------------------
// Zip central-directory reader (stored and deflate entries, zip64).

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

function u64(file: string, buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchCheckpointError(file, `zip field ${v} too large`);
  return Number(v);
}

function readZipDirectory(file: string, buf: Buffer): Map<string, ZipEntry> {
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
    const rec = u64(file, buf, loc + 8);
    if (rec + 56 > buf.length || buf.readUInt32LE(rec) !== SIG_EOCD64) fail('zip64 end record missing');
    count = u64(file, buf, rec + 32);
    cdSize = u64(file, buf, rec + 40);
    cdOffset = u64(file, buf, rec + 48);
  }
  if (cdOffset + cdSize > buf.length) fail(`central directory [${cdOffset}, +${cdSize}) outside the ${buf.length}-byte file`);
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

function zipEntryData(file: string, buf: Buffer, e: ZipEntry, verifyCrc: boolean): Buffer {
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

// ---------------------------------------------------------------------------------------------------------------
// Pickle VM

/** A Python dict / OrderedDict. `attrs` receives BUILD state (e.g. a state_dict's `_metadata`). */
export class PyDict extends Map<unknown, unknown> {
  attrs: unknown = undefined;
}

class PyCallable {
  constructor(readonly qualname: string, readonly call: (args: unknown[]) => unknown) {}
}

/**
 * Inert stand-in for a global outside the allow-list (only with `allowUnknownGlobals`): calling it just records the
 * arguments and BUILD records the state. Nothing is ever executed.
 */
export class PyOpaque {
  args: unknown[] | undefined = undefined;
  state: unknown = undefined;
  constructor(readonly qualname: string) {}
}

class StorageType {
  constructor(readonly qualname: string, readonly dtype: SafeDType) {}
}

interface Storage {
  kind: 'storage';
  key: string;
  dtype: SafeDType;
  numel: number;
  data: TensorData;
}

class Tensor implements TorchTensor {
  constructor(readonly dtype: SafeDType, readonly shape: number[], readonly data: TensorData) {}
}

const STORAGE_TYPES: Record<string, SafeDType> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
  UntypedStorage: 'U8', // numel is then in bytes
};

/**
 * A strided tensor may legitimately be larger than its storage (stride 0 from `expand`), but a tiny file must not
 * make us allocate gigabytes: refuse to materialise more than this many bytes beyond 16x the storage size.
 */
const MAX_EXPANSION_BYTES = 256 * 1024 * 1024;

const ITEM: Record<SafeDType, number> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, U8: 1, I8: 1, BOOL: 1,
};

type ArrayCtor = {
  new(n: number): TensorData;
  new(b: ArrayBufferLike, off: number, n: number): TensorData;
};

const ARRAY_FOR: Record<SafeDType, ArrayCtor> = {
  F32: Float32Array, F64: Float64Array, F16: Uint16Array, BF16: Uint16Array, U16: Uint16Array, I64: BigInt64Array,
  I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array,
};

function isSafeIntArray(v: unknown, min = 0): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min);
}

function isStorage(v: unknown): v is Storage {
  return typeof v === 'object' && v !== null && (v as Storage).kind === 'storage';
}

function describe(v: unknown): string {
  if (v instanceof PyCallable || v instanceof StorageType || v instanceof PyOpaque) return v.qualname;
  if (v instanceof PyDict) return `dict(${v.size} items)`;
  if (v instanceof Tensor) return `tensor(${v.dtype}, [${v.shape.join(', ')}])`;
  if (isStorage(v)) return `storage(${v.dtype}, key ${v.key})`;
  if (Array.isArray(v)) return `tuple/list of ${v.length}`;
  if (typeof v === 'bigint') return `${v}`;
  return JSON.stringify(v) ?? String(v);
}

/** Build a tensor from a storage: a zero-copy view when the layout is C-contiguous, else a contiguous copy. */
function rebuildTensor(file: string, storage: unknown, offset: unknown, size: unknown, stride: unknown): Tensor {
  const fail = (msg: string): never => { throw new TorchCheckpointError(file, `_rebuild_tensor_v2: ${msg}`); };
  if (!isStorage(storage)) fail(`expected a storage, got ${describe(storage)}`);
  const st = storage as Storage;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) fail(`bad storage offset ${describe(offset)}`);
  if (!isSafeIntArray(size)) fail(`bad size ${describe(size)}`);
  if (!isSafeIntArray(stride) || (stride as number[]).length !== (size as number[]).length) {
    fail(`bad stride ${describe(stride)} for size ${describe(size)}`);
  }
  const shape = size as number[];
  const strides = stride as number[];
  const off = offset as number;
  let numel = 1;
  for (const d of shape) numel *= d;
  if (!Number.isSafeInteger(numel)) fail(`size [${shape.join(', ')}] overflows`);
  if (numel === 0) return new Tensor(st.dtype, shape.slice(), new ARRAY_FOR[st.dtype](0));
  let maxIndex = off;
  for (let k = 0; k < shape.length; k++) maxIndex += (shape[k]! - 1) * strides[k]!;
  if (maxIndex >= st.numel) {
    fail(`size [${shape.join(', ')}] stride [${strides.join(', ')}] offset ${off} reaches element ${maxIndex} `
      + `of storage '${st.key}' which has ${st.numel}`);
  }
  let contiguous = true;
  for (let k = shape.length - 1, expect = 1; k >= 0; k--) {
    if (shape[k] !== 1 && strides[k] !== expect) { contiguous = false; break; }
    expect *= shape[k]!;
  }
  if (contiguous) return new Tensor(st.dtype, shape.slice(), st.data.subarray(off, off + numel));
  const outBytes = numel * ITEM[st.dtype];
  if (outBytes > MAX_EXPANSION_BYTES && outBytes > 16 * st.numel * ITEM[st.dtype]) {
    fail(`refusing to materialise ${outBytes} bytes from storage '${st.key}' of ${st.numel} elements `
      + `(size [${shape.join(', ')}], stride [${strides.join(', ')}])`);
  }
  // Strided (e.g. a saved transpose): gather in C order with an odometer over the multi-index.
  const src = st.data as unknown as { [i: number]: number | bigint };
  const out = new ARRAY_FOR[st.dtype](numel);
  const dst = out as unknown as { [i: number]: number | bigint };
  const idx = new Array<number>(shape.length).fill(0);
  let s = off;
  for (let j = 0; j < numel; j++) {
    dst[j] = src[s]!;
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k]! < shape[k]!) { s += strides[k]!; break; }
      s -= (shape[k]! - 1) * strides[k]!;
      idx[k] = 0;
    }
  }
  return new Tensor(st.dtype, shape.slice(), out);
}

function makeGlobals(file: string): Map<string, PyCallable | StorageType> {
  const g = new Map<string, PyCallable | StorageType>();
  const add = (q: string, fn: (args: unknown[]) => unknown): void => { g.set(q, new PyCallable(q, fn)); };
  add('collections.OrderedDict', (args) => {
    const d = new PyDict();
    if (args.length > 0 && Array.isArray(args[0])) {
      for (const pair of args[0]) if (Array.isArray(pair) && pair.length === 2) d.set(pair[0], pair[1]);
    }
    return d;
  });
  add('torch._utils._rebuild_tensor_v2', (a) => {
    if (a.length < 4) throw new TorchCheckpointError(file, `_rebuild_tensor_v2 needs at least 4 arguments, got ${a.length}`);
    return rebuildTensor(file, a[0], a[1], a[2], a[3]);
  });
  add('torch._utils._rebuild_tensor', (a) => {
    if (a.length !== 4) throw new TorchCheckpointError(file, `_rebuild_tensor needs 4 arguments, got ${a.length}`);
    return rebuildTensor(file, a[0], a[1], a[2], a[3]);
  });
  add('torch._utils._rebuild_parameter', (a) => {
    if (!(a[0] instanceof Tensor)) throw new TorchCheckpointError(file, `_rebuild_parameter: expected a tensor, got ${describe(a[0])}`);
    return a[0];
  });
  for (const [name, dtype] of Object.entries(STORAGE_TYPES)) g.set(`torch.${name}`, new StorageType(`torch.${name}`, dtype));
  return g;
}

interface PickleContext {
  file: string;
  allowUnknownGlobals: boolean;
  loadStorage(type: StorageType, key: string, numel: number): Storage;
}

/** Interpret a pickle (protocols 0-5 binary subset used by torch.save). Never executes anything. */
function unpickle(data: Uint8Array, ctx: PickleContext): unknown {
  const { file } = ctx;
  const globals = makeGlobals(file);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const memo = new Map<number, unknown>();
  const metastack: unknown[][] = [];
  let stack: unknown[] = [];
  let pos = 0;
  let opPos = 0;

  const fail = (msg: string): never => {
    throw new TorchCheckpointError(file, `data.pkl at byte ${opPos}: ${msg}`);
  };
  const need = (n: number): void => { if (pos + n > data.length) fail('unexpected end of pickle'); };
  const u8 = (): number => { need(1); return data[pos++]!; };
  const u16 = (): number => { need(2); const v = dv.getUint16(pos, true); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const i32 = (): number => { need(4); const v = dv.getInt32(pos, true); pos += 4; return v; };
  const u64n = (): number => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.length)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => { need(n); const b = data.subarray(pos, pos + n); pos += n; return b; };
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const str = (n: number): string => {
    try { return utf8.decode(bytes(n)); } catch { return fail('invalid UTF-8 string'); }
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text line');
    const s = Buffer.from(data.buffer, data.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => { if (stack.length === 0) fail('stack underflow'); return stack.pop(); };
  const top = (): unknown => { if (stack.length === 0) fail('stack underflow'); return stack[stack.length - 1]; };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (prev === undefined) fail('MARK missing');
    stack = prev!;
    return items;
  };
  const findGlobal = (module: string, name: string): unknown => {
    const g = globals.get(`${module}.${name}`);
    if (!g && ctx.allowUnknownGlobals) return new PyOpaque(`${module}.${name}`);
    if (!g) fail(`refusing to load global '${module}.${name}' (only tensors, storages and OrderedDict are allowed; `
      + 'allowUnknownGlobals loads such objects as inert placeholders)');
    return g;
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (fn instanceof PyOpaque) {
      const o = new PyOpaque(fn.qualname);
      o.args = Array.isArray(args) ? args : [args];
      return o;
    }
    if (!(fn instanceof PyCallable)) return fail(`cannot call ${describe(fn)}`);
    if (!Array.isArray(args)) return fail(`arguments to ${fn.qualname} must be a tuple, got ${describe(args)}`);
    return fn.call(args);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof PyDict)) fail(`SETITEM(S) on ${describe(target)}`);
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (target as PyDict).set(items[i], items[i + 1]);
  };
  const long = (b: Uint8Array): number | bigint => {
    // Two's complement little-endian of arbitrary length.
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length > 0 && (b[b.length - 1]! & 0x80)) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  for (;;) {
    opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: { const proto = u8(); if (proto > 5) fail(`unsupported pickle protocol ${proto}`); break; } // PROTO
      case 0x95: u64n(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        if (stack.length !== 1 || metastack.length !== 0) fail(`STOP with ${stack.length} items on the stack`);
        return stack[0];
      }
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(bytes(u8()))); break; // LONG1
      case 0x8b: { const n = u32(); if (n > 64) fail(`LONG4 of ${n} bytes`); stack.push(long(bytes(n))); break; }
      case 0x47: { need(8); stack.push(dv.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT (big-endian)
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64n())); break; // BINUNICODE8
      case 0x54: { const n = i32(); if (n < 0) fail('negative BINSTRING length'); stack.push(Buffer.from(bytes(n)).toString('latin1')); break; }
      case 0x55: stack.push(Buffer.from(bytes(u8())).toString('latin1')); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      // Note: `stack.push(popMark())` would push onto the inner stack (the receiver is evaluated first).
      case 0x74: case 0x6c: { const items = popMark(); stack.push(items); break; } // TUPLE, LIST
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) fail('APPEND to a non-list'); (l as unknown[]).push(v); break; }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS to a non-list');
        for (const it of items) (l as unknown[]).push(it);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x63: { const module = line(); const name = line(); stack.push(findGlobal(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(findGlobal(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.attrs = state; // e.g. OrderedDict state_dict carrying `_metadata`
        else if (obj instanceof PyOpaque) obj.state = state;
        else fail(`BUILD on ${describe(obj)} is not supported`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') fail(`unsupported persistent id ${describe(pid)}`);
        const [, type, key, , numel] = pid as unknown[];
        if (!(type instanceof StorageType)) fail(`persistent id storage type ${describe(type)} is not supported`);
        if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
          fail(`malformed storage persistent id ${describe(pid)}`);
        }
        stack.push(ctx.loadStorage(type as StorageType, key as string, numel as number));
        break;
      }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: { const n = Number(line()); if (!Number.isSafeInteger(n)) fail('bad PUT index'); memo.set(n, top()); break; }
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint loading

export interface TorchReadOptions {
  /** Check each zip entry's CRC-32 (default true; costs about a second per GB). */
  verifyCrc?: boolean;
  /**
   * Turn globals outside the allow-list (e.g. `argparse.Namespace`, numpy scalars in a training checkpoint) into
   * inert PyOpaque placeholders instead of failing (default false). They are still never executed.
   */
  allowUnknownGlobals?: boolean;
}

/** Unpickle the object stored in a torch zip checkpoint (dicts are PyDict, tensors TorchTensor, tuples/lists arrays). */
export function readTorchObject(file: string, options: TorchReadOptions = {}): unknown {
  let buf: Buffer;
  try {
    buf = readFileOnce(file);
  } catch (err) {
    throw new TorchCheckpointError(file, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1]! <= 5) {
    throw new TorchCheckpointError(file, 'legacy (pre-1.6, non-zip) torch.save format is not supported; re-save with a current PyTorch');
  }
  if (buf.length < 4 || buf.readUInt32LE(0) !== SIG_LOCAL) throw new TorchCheckpointError(file, 'not a zip file (torch.save zip format expected)');
  const verifyCrc = options.verifyCrc ?? true;
  const entries = readZipDirectory(file, buf);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    const hint = [...entries.keys()].some((n) => n.endsWith('/constants.pkl')) ? ' (TorchScript archives are not supported)' : '';
    throw new TorchCheckpointError(file, `expected exactly one '<archive>/data.pkl', found ${pkls.length}${hint}`);
  }
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = zipEntryData(file, buf, byteorder, verifyCrc).toString('latin1').trim();
    if (order !== 'little') throw new TorchCheckpointError(file, `byteorder '${order}' is not supported`);
  }
  const storages = new Map<string, Storage>();
  const ctx: PickleContext = {
    file,
    allowUnknownGlobals: options.allowUnknownGlobals ?? false,
    loadStorage(type, key, numel) {
      const cached = storages.get(key);
      if (cached) {
        if (cached.dtype !== type.dtype) throw new TorchCheckpointError(file, `storage '${key}' used as both ${cached.dtype} and ${type.dtype}`);
        return cached;
      }
      const e = entries.get(`${prefix}data/${key}`);
      if (!e) throw new TorchCheckpointError(file, `storage record '${prefix}data/${key}' is missing`);
      const raw = zipEntryData(file, buf, e, verifyCrc);
      const item = ITEM[type.dtype];
      if (raw.length !== numel * item) {
        throw new TorchCheckpointError(file, `storage '${key}' (${type.qualname}) has ${raw.length} bytes, expected ${numel} x ${item}`);
      }
      const Ctor = ARRAY_FOR[type.dtype];
      const data = raw.byteOffset % item === 0
        ? new Ctor(raw.buffer, raw.byteOffset, numel)
        : new Ctor(new Uint8Array(raw).buffer, 0, numel); // misaligned: copy this storage only
      const st: Storage = { kind: 'storage', key, dtype: type.dtype, numel, data };
      storages.set(key, st);
      return st;
    },
  };
  return unpickle(zipEntryData(file, buf, entries.get(pkls[0]!)!, verifyCrc), ctx);
}

/**
 * Read the tensors of a torch checkpoint as a flat name -> tensor map. If the top-level dict has a `state_dict` or
 * `model_state_dict` dict, that is used; nested dicts are flattened with dotted names; non-tensor values are skipped.
 */
export function readTorchCheckpoint(file: string, options: TorchReadOptions = {}): Map<string, TorchTensor> {
  let root = readTorchObject(file, options);
  if (!(root instanceof PyDict)) {
    throw new TorchCheckpointError(file, `top-level object is ${describe(root)}, expected a dict / state_dict`);
  }
  for (const key of ['state_dict', 'model_state_dict']) {
    const inner = root.get(key);
    if (inner instanceof PyDict) { root = inner; break; }
  }
  const out = new Map<string, TorchTensor>();
  const walk = (d: PyDict, prefix: string): void => {
    for (const [k, v] of d) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      const name = `${prefix}${k}`;
      if (v instanceof Tensor) out.set(name, v);
      else if (v instanceof PyDict) walk(v, `${name}.`);
    }
  };
  walk(root as PyDict, '');
  return out;
}

/** Convert a floating tensor (F32/F16/BF16/F64) to float32. */
export function torchTensorToFloat32(t: TorchTensor): Float32Array {
  switch (t.dtype) {
    case 'F32': return t.data as Float32Array;
    case 'F16': case 'BF16': return halfBitsToFloat32Array(t.data as Uint16Array, t.dtype);
    case 'F64': return Float32Array.from(t.data as Float64Array);
    default: throw new TypeError(`torchTensorToFloat32: tensor dtype ${t.dtype} is not floating point`);
  }
}

/** Convert an integer/bool tensor to int32, refusing int64 values that do not fit. */
export function torchTensorToInt32(t: TorchTensor): Int32Array {
  if (t.dtype === 'I64') {
    const src = t.data as BigInt64Array;
    const out = new Int32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      if (v > 2147483647n || v < -2147483648n) throw new RangeError(`torchTensorToInt32: value ${v} at flat index ${i} does not fit in int32`);
      out[i] = Number(v);
    }
    return out;
  }
  if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F64') {
    throw new TypeError(`torchTensorToInt32: tensor dtype ${t.dtype} is floating point`);
  }
  return t.data instanceof Int32Array ? t.data : Int32Array.from(t.data as ArrayLike<number>);
}
