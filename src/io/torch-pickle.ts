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
 * becomes an inert placeholder); nothing is ever executed. A small file must not make us allocate without bound,
 * so reading runs under global budgets (`TorchBudgets`): bytes materialised beyond the file (inflated entries and
 * strided / stride-0 copies, summed over all tensors), values created by the pickle (MARKs included), nesting depth
 * (open MARKs and the finished object graph, which is walked iteratively; cycles are refused) and the inflated-to-
 * compressed ratio of zip entries. Each exceeded budget is a TorchCheckpointError naming the file and the budget.
 * The legacy (pre-1.6, non-zip) format and TorchScript archives are refused.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { halfBitsToFloat32Array } from './half-float.ts';
import { readFailure, readFileOnce } from './file-io.ts';
import type { SafeDType, TensorData } from './safetensors.ts';
import { FlamingoError } from '../errors.ts';

export class TorchCheckpointError extends FlamingoError {
  readonly file: string;

  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`torch checkpoint ${file}: ${message}`, options);
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

/** Thrown by readZipDirectory when the central directory starts before the window held in memory. */
class ZipWindowTooSmall extends Error {
  constructor(readonly need: number) { super(`zip directory starts at ${need}`); }
}

/**
 * Parse the central directory. `buf` holds the bytes [base, base + buf.length) of a file of `total`
 * bytes that ends with the window (base 0 = the whole file).
 */
function readZipDirectory(file: string, buf: Buffer, base = 0, total = buf.length): Map<string, ZipEntry> {
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

function zipEntryData(file: string, buf: Buffer, e: ZipEntry, verifyCrc: boolean, budget: Budget): Buffer {
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
  /** Absent for a lazily indexed checkpoint: the bytes stay in the file at `fileOffset`. */
  data?: TensorData;
  fileOffset?: number;
}

/**
 * A tensor of a lazily indexed checkpoint: where its elements are in the file (storage `fileOffset`,
 * element `offset`, `strides`), read on demand with readTorchTensorInto.
 */
export class TorchTensorRef {
  constructor(
    readonly file: string, readonly dtype: SafeDType, readonly shape: number[], readonly strides: number[],
    readonly offset: number, readonly storageKey: string, readonly storageNumel: number, readonly fileOffset: number,
  ) {}

  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
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
 * Limits on what a checkpoint may make us build. The defaults are far above what torch.save writes for real models
 * (multi-GB OpenFlamingo releases: stored, uncompressed storages viewed in place, a few thousand pickle values,
 * nesting depth < 10) and far below what would exhaust memory.
 */
export interface TorchBudgets {
  /**
   * Bytes allocated beyond the file buffer, summed over the whole checkpoint: inflated (deflate) zip entries,
   * misaligned storages copied, and strided or stride-0 tensors materialised as contiguous copies.
   * Default 128 MiB + 2 x the file size.
   */
  maxMaterializedBytes?: number;
  /** Values the pickle may create (containers, strings, numbers, globals, call results, MARKs). Default 500,000
   * (a state dict needs ~20 per tensor; each value costs up to ~300 bytes of JS heap). */
  maxObjects?: number;
  /** Open MARKs at once, and nesting depth of the unpickled object. Default 1000. */
  maxDepth?: number;
  /** Inflated / compressed size of a deflated zip entry (entries under 16 MiB inflated are exempt). Default 64. */
  maxCompressionRatio?: number;
  /**
   * Size of data.pkl. References (memo puts, DUP, APPEND of an existing value) create no new value but still cost
   * memory per opcode, so the pickle itself is bounded. Default 16 MiB (a 1000-tensor state dict pickles to ~200 KB).
   */
  maxPickleBytes?: number;
}

export const DEFAULT_TORCH_BUDGETS = {
  baseMaterializedBytes: 128 * 1024 * 1024,
  maxObjects: 500_000,
  maxDepth: 1000,
  maxCompressionRatio: 64,
  maxPickleBytes: 16 * 1024 * 1024,
} as const;

/** Deflated entries that inflate to less than this are never refused for their ratio (zeros compress ~1000:1). */
const RATIO_EXEMPT_BYTES = 16 * 1024 * 1024;

interface Budget {
  file: string;
  maxBytes: number;
  bytes: number;
  maxObjects: number;
  maxDepth: number;
  maxRatio: number;
  maxPickle: number;
}

function makeBudget(file: string, fileBytes: number, b: TorchBudgets = {}): Budget {
  const check = (name: string, v: number | undefined, min: number): void => {
    if (v !== undefined && !(typeof v === 'number' && v >= min && !Number.isNaN(v))) {
      throw new TypeError(`readTorchObject: budgets.${name} must be a number >= ${min}, got ${String(v)}`);
    }
  };
  check('maxMaterializedBytes', b.maxMaterializedBytes, 0);
  check('maxObjects', b.maxObjects, 1);
  check('maxDepth', b.maxDepth, 1);
  check('maxCompressionRatio', b.maxCompressionRatio, 1);
  check('maxPickleBytes', b.maxPickleBytes, 1);
  return {
    file,
    maxBytes: b.maxMaterializedBytes ?? DEFAULT_TORCH_BUDGETS.baseMaterializedBytes + 2 * fileBytes,
    bytes: 0,
    maxObjects: b.maxObjects ?? DEFAULT_TORCH_BUDGETS.maxObjects,
    maxDepth: b.maxDepth ?? DEFAULT_TORCH_BUDGETS.maxDepth,
    maxRatio: b.maxCompressionRatio ?? DEFAULT_TORCH_BUDGETS.maxCompressionRatio,
    maxPickle: b.maxPickleBytes ?? DEFAULT_TORCH_BUDGETS.maxPickleBytes,
  };
}

/** Reserve `n` bytes of the materialisation budget before allocating them. */
function spend(budget: Budget, n: number, what: string): void {
  if (budget.bytes + n > budget.maxBytes) {
    throw new TorchCheckpointError(budget.file, `${what} would bring the bytes materialised to ${budget.bytes + n}, over the `
      + `budget of ${budget.maxBytes} (budgets.maxMaterializedBytes; a small file asking for this much is malformed)`);
  }
  budget.bytes += n;
}

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
function rebuildTensor(budget: Budget, storage: unknown, offset: unknown, size: unknown, stride: unknown): Tensor | TorchTensorRef {
  const { file } = budget;
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
  if (numel > 0) {
    let maxIndex = off;
    for (let k = 0; k < shape.length; k++) maxIndex += (shape[k]! - 1) * strides[k]!;
    if (maxIndex >= st.numel) {
      fail(`size [${shape.join(', ')}] stride [${strides.join(', ')}] offset ${off} reaches element ${maxIndex} `
        + `of storage '${st.key}' which has ${st.numel}`);
    }
  }
  if (st.data === undefined) return new TorchTensorRef(file, st.dtype, shape.slice(), strides.slice(), off, st.key, st.numel, st.fileOffset!);
  if (numel === 0) return new Tensor(st.dtype, shape.slice(), new ARRAY_FOR[st.dtype](0));
  let contiguous = true;
  for (let k = shape.length - 1, expect = 1; k >= 0; k--) {
    if (shape[k] !== 1 && strides[k] !== expect) { contiguous = false; break; }
    expect *= shape[k]!;
  }
  const data = st.data;
  if (contiguous) return new Tensor(st.dtype, shape.slice(), data.subarray(off, off + numel));
  // Counted over all tensors: twelve stride-0 expansions of one element must not add up to gigabytes.
  spend(budget, numel * ITEM[st.dtype], `materialising tensor of size [${shape.join(', ')}] stride [${strides.join(', ')}] `
    + `from storage '${st.key}' of ${st.numel} elements`);
  // Strided (e.g. a saved transpose): gather in C order with an odometer over the multi-index.
  const src = data as unknown as { [i: number]: number | bigint };
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

function makeGlobals(budget: Budget): Map<string, PyCallable | StorageType> {
  const { file } = budget;
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
    return rebuildTensor(budget, a[0], a[1], a[2], a[3]);
  });
  add('torch._utils._rebuild_tensor', (a) => {
    if (a.length !== 4) throw new TorchCheckpointError(file, `_rebuild_tensor needs 4 arguments, got ${a.length}`);
    return rebuildTensor(budget, a[0], a[1], a[2], a[3]);
  });
  add('torch._utils._rebuild_parameter', (a) => {
    if (!(a[0] instanceof Tensor) && !(a[0] instanceof TorchTensorRef)) throw new TorchCheckpointError(file, `_rebuild_parameter: expected a tensor, got ${describe(a[0])}`);
    return a[0];
  });
  for (const [name, dtype] of Object.entries(STORAGE_TYPES)) g.set(`torch.${name}`, new StorageType(`torch.${name}`, dtype));
  return g;
}

interface PickleContext {
  file: string;
  budget: Budget;
  allowUnknownGlobals: boolean;
  loadStorage(type: StorageType, key: string, numel: number): Storage;
}

/** Opcodes that only move, memoise or mutate existing values (everything else creates one, MARK included). */
const NON_CREATING_OPS = new Set([
  0x80, 0x95, 0x2e, // PROTO, FRAME, STOP
  0x71, 0x72, 0x94, 0x70, 0x68, 0x6a, 0x67, // BINPUT, LONG_BINPUT, MEMOIZE, PUT, BINGET, LONG_BINGET, GET
  0x30, 0x31, 0x32, // POP, POP_MARK, DUP
  0x61, 0x65, 0x73, 0x75, 0x62, // APPEND, APPENDS, SETITEM, SETITEMS, BUILD
]);

/** Containers whose children the graph walk visits (tensors, storages and scalars are leaves). */
function children(v: unknown): unknown[] | undefined {
  if (v instanceof PyDict) {
    const out: unknown[] = [];
    for (const [k, x] of v) out.push(k, x);
    if (v.attrs !== undefined) out.push(v.attrs);
    return out;
  }
  if (Array.isArray(v)) return v;
  if (v instanceof PyOpaque) return [v.args, v.state];
  return undefined;
}

/**
 * Walk the unpickled object iteratively (no JS recursion, so no stack overflow) and refuse a container that
 * contains itself or a longest path of containers over maxDepth (shared values included, so a caller's recursive
 * walk is bounded by maxDepth too). Each container is visited once.
 */
function checkGraph(file: string, root: unknown, maxDepth: number): void {
  const height = new Map<unknown, number>(); // finished containers: longest chain of containers below, itself included
  const onPath = new Set<unknown>();
  const path: { node: unknown; kids: unknown[]; next: number; height: number }[] = [];
  const tooDeep = (): never => {
    throw new TorchCheckpointError(file, `data.pkl: objects nested deeper than ${maxDepth} levels (budgets.maxDepth)`);
  };
  // Visit v as a child of the top frame: either fold in its known height or descend into it.
  const visit = (v: unknown): void => {
    const kids = children(v);
    if (kids === undefined) return;
    const h = height.get(v);
    if (h !== undefined) {
      const parent = path[path.length - 1];
      if (parent && h + 1 > parent.height) parent.height = h + 1;
      if (path.length + h > maxDepth) tooDeep();
      return;
    }
    if (onPath.has(v)) throw new TorchCheckpointError(file, `data.pkl: ${describe(v)} contains itself (a reference cycle); refusing it`);
    if (path.length >= maxDepth) tooDeep();
    onPath.add(v);
    path.push({ node: v, kids, next: 0, height: 1 });
  };
  visit(root);
  while (path.length > 0) {
    const top = path[path.length - 1]!;
    if (top.next < top.kids.length) {
      visit(top.kids[top.next++]);
      continue;
    }
    path.pop();
    onPath.delete(top.node);
    height.set(top.node, top.height);
    const parent = path[path.length - 1];
    if (parent && top.height + 1 > parent.height) parent.height = top.height + 1;
  }
}

/** Interpret a pickle (protocols 0-5 binary subset used by torch.save). Never executes anything. */
function unpickle(data: Uint8Array, ctx: PickleContext): unknown {
  const { file, budget } = ctx;
  const globals = makeGlobals(budget);
  let objects = 0;
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
    if (!NON_CREATING_OPS.has(op) && ++objects > budget.maxObjects) {
      fail(`more than ${budget.maxObjects} pickle values (budgets.maxObjects); refusing to build them`);
    }
    switch (op) {
      case 0x80: { const proto = u8(); if (proto > 5) fail(`unsupported pickle protocol ${proto}`); break; } // PROTO
      case 0x95: u64n(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        if (stack.length !== 1 || metastack.length !== 0) fail(`STOP with ${stack.length} items on the stack`);
        checkGraph(file, stack[0], budget.maxDepth);
        return stack[0];
      }
      case 0x28: { // MARK
        if (metastack.length >= budget.maxDepth) fail(`more than ${budget.maxDepth} nested MARKs (budgets.maxDepth)`);
        metastack.push(stack);
        stack = [];
        break;
      }
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
  /** Limits on bytes, values, depth and compression ratio (see TorchBudgets for the defaults). */
  budgets?: TorchBudgets;
}

/** Unpickle the object stored in a torch zip checkpoint (dicts are PyDict, tensors TorchTensor, tuples/lists arrays). */
export function readTorchObject(file: string, options: TorchReadOptions = {}): unknown {
  let buf: Buffer;
  try {
    buf = readFileOnce(file);
  } catch (err) {
    throw new TorchCheckpointError(file, `cannot read: ${readFailure(err)}`, { cause: err });
  }
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1]! <= 5) {
    throw new TorchCheckpointError(file, 'legacy (pre-1.6, non-zip) torch.save format is not supported; re-save with a current PyTorch');
  }
  if (buf.length < 4 || buf.readUInt32LE(0) !== SIG_LOCAL) throw new TorchCheckpointError(file, 'not a zip file (torch.save zip format expected)');
  const verifyCrc = options.verifyCrc ?? true;
  const budget = makeBudget(file, buf.length, options.budgets);
  const entries = readZipDirectory(file, buf);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    const hint = [...entries.keys()].some((n) => n.endsWith('/constants.pkl')) ? ' (TorchScript archives are not supported)' : '';
    throw new TorchCheckpointError(file, `expected exactly one '<archive>/data.pkl', found ${pkls.length}${hint}`);
  }
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = zipEntryData(file, buf, byteorder, verifyCrc, budget).toString('latin1').trim();
    if (order !== 'little') throw new TorchCheckpointError(file, `byteorder '${order}' is not supported`);
  }
  const storages = new Map<string, Storage>();
  const ctx: PickleContext = {
    file,
    budget,
    allowUnknownGlobals: options.allowUnknownGlobals ?? false,
    loadStorage(type, key, numel) {
      const cached = storages.get(key);
      if (cached) {
        if (cached.dtype !== type.dtype) throw new TorchCheckpointError(file, `storage '${key}' used as both ${cached.dtype} and ${type.dtype}`);
        return cached;
      }
      const e = entries.get(`${prefix}data/${key}`);
      if (!e) throw new TorchCheckpointError(file, `storage record '${prefix}data/${key}' is missing`);
      const raw = zipEntryData(file, buf, e, verifyCrc, budget);
      const item = ITEM[type.dtype];
      if (raw.length !== numel * item) {
        throw new TorchCheckpointError(file, `storage '${key}' (${type.qualname}) has ${raw.length} bytes, expected ${numel} x ${item}`);
      }
      const Ctor = ARRAY_FOR[type.dtype];
      if (raw.byteOffset % item !== 0) spend(budget, raw.length, `copying misaligned storage '${key}'`);
      const data = raw.byteOffset % item === 0
        ? new Ctor(raw.buffer, raw.byteOffset, numel)
        : new Ctor(new Uint8Array(raw).buffer, 0, numel); // misaligned: copy this storage only
      const st: Storage = { kind: 'storage', key, dtype: type.dtype, numel, data };
      storages.set(key, st);
      return st;
    },
  };
  const pkl = entries.get(pkls[0]!)!;
  if (pkl.size > budget.maxPickle) {
    throw new TorchCheckpointError(file, `'${pkl.name}' is ${pkl.size} bytes, over the budget of ${budget.maxPickle} (budgets.maxPickleBytes)`);
  }
  return unpickle(zipEntryData(file, buf, pkl, verifyCrc, budget), ctx);
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
  // Iterative, and bounded: the graph is acyclic and at most maxDepth deep (checked when unpickling), but shared
  // dicts could still multiply the names (a diamond at every level), so the names produced are counted too.
  const out = new Map<string, TorchTensor>();
  const maxNames = options.budgets?.maxObjects ?? DEFAULT_TORCH_BUDGETS.maxObjects;
  let names = 0;
  const todo: [Iterator<[unknown, unknown]>, string][] = [[(root as PyDict).entries(), '']];
  while (todo.length > 0) {
    const [it, prefix] = todo[todo.length - 1]!;
    const r = it.next();
    if (r.done) { todo.pop(); continue; }
    const [k, v] = r.value;
    if (typeof k !== 'string' && typeof k !== 'number') continue;
    if (++names > maxNames) throw new TorchCheckpointError(file, `more than ${maxNames} names in the state dict (budgets.maxObjects)`);
    const name = `${prefix}${k}`;
    if (v instanceof Tensor) out.set(name, v);
    else if (v instanceof PyDict) todo.push([v.entries(), `${name}.`]);
  }
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

// ---------------------------------------------------------------------------------------------------------------
// Lazy index: tensor metadata only, bytes read on demand (loading a model without a second copy).

function readAt(fd: number, file: string, pos: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let off = 0;
  while (off < len) {
    const got = fs.readSync(fd, b, off, len - off, pos + off);
    if (got === 0) throw new TorchCheckpointError(file, `unexpected end of file at byte ${pos + off} (truncated?)`);
    off += got;
  }
  return b;
}

/** Absolute file offset of a stored zip entry's data (its local header is read from the file). */
function entryDataStart(fd: number, file: string, e: ZipEntry): number {
  const h = readAt(fd, file, e.localOffset, 30);
  if (h.readUInt32LE(0) !== SIG_LOCAL) throw new TorchCheckpointError(file, `zip entry '${e.name}': local header missing`);
  return e.localOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
}

/**
 * Index the tensors of a torch zip checkpoint without reading their bytes: name -> TorchTensorRef. The
 * pickle is read and interpreted as by readTorchCheckpoint (same flattening of nested dicts).
 */
export function indexTorchCheckpoint(file: string): Map<string, TorchTensorRef> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new TorchCheckpointError(file, `cannot open: ${(err as Error).message}`, { cause: err });
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 22) throw new TorchCheckpointError(file, `file is ${size} bytes: not a zip archive (truncated?)`);
    const head = readAt(fd, file, 0, 4);
    if (head[0] === 0x80 && head[1]! <= 5) throw new TorchCheckpointError(file, 'legacy (pre-1.6, non-zip) torch.save format is not supported; re-save with a current PyTorch');
    if (head.readUInt32LE(0) !== SIG_LOCAL) throw new TorchCheckpointError(file, 'not a zip file (torch.save zip format expected)');
    let base = Math.max(0, size - (1 << 20));
    let entries: Map<string, ZipEntry>;
    for (;;) {
      try {
        entries = readZipDirectory(file, readAt(fd, file, base, size - base), base, size);
        break;
      } catch (e) {
        if (!(e instanceof ZipWindowTooSmall) || e.need >= base) throw e;
        base = e.need;
      }
    }
    const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length !== 1) throw new TorchCheckpointError(file, `expected exactly one '<archive>/data.pkl', found ${pkls.length}`);
    const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
    const pklEntry = entries.get(pkls[0]!)!;
    const pklStart = entryDataStart(fd, file, pklEntry);
    const pklBuf = readAt(fd, file, pklStart, pklEntry.compressedSize);
    // zipEntryData wants the local header in front: rebuild a tiny view with it
    const pklData = pklEntry.method === 0 ? pklBuf : zipEntryData(file, Buffer.concat([readAt(fd, file, pklEntry.localOffset, pklStart - pklEntry.localOffset), pklBuf]), { ...pklEntry, localOffset: 0 }, true, makeBudget(file, size));
    const storages = new Map<string, Storage>();
    // budgets bound what the pickle may materialise; tensors here are references, read later
    const budget = makeBudget(file, size);
    const ctx: PickleContext = {
      file,
      budget,
      allowUnknownGlobals: false,
      loadStorage(type, key, numel) {
        const cached = storages.get(key);
        if (cached) return cached;
        const e = entries.get(`${prefix}data/${key}`);
        if (!e) throw new TorchCheckpointError(file, `storage record '${prefix}data/${key}' is missing`);
        if (e.method !== 0) throw new TorchCheckpointError(file, `storage '${key}' is compressed; torch.save stores storages uncompressed`);
        const item = ITEM[type.dtype];
        if (e.size !== numel * item) throw new TorchCheckpointError(file, `storage '${key}' (${type.qualname}) has ${e.size} bytes, expected ${numel} x ${item}`);
        const start = entryDataStart(fd, file, e);
        if (start + e.size > size) throw new TorchCheckpointError(file, `storage '${key}' [${start}, +${e.size}) runs past the end of the ${size}-byte file (truncated?)`);
        const st: Storage = { kind: 'storage', key, dtype: type.dtype, numel, fileOffset: start };
        storages.set(key, st);
        return st;
      },
    };
    let root = unpickle(pklData, ctx);
    if (!(root instanceof PyDict)) throw new TorchCheckpointError(file, `top-level object is ${describe(root)}, expected a dict / state_dict`);
    for (const key of ['state_dict', 'model_state_dict']) {
      const inner = root.get(key);
      if (inner instanceof PyDict) { root = inner; break; }
    }
    const out = new Map<string, TorchTensorRef>();
    const walk = (d: PyDict, pre: string): void => {
      for (const [k, v] of d) {
        if (typeof k !== 'string' && typeof k !== 'number') continue;
        const name = `${pre}${k}`;
        if (v instanceof TorchTensorRef) out.set(name, v);
        else if (v instanceof PyDict) walk(v, `${name}.`);
      }
    };
    walk(root as PyDict, '');
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
