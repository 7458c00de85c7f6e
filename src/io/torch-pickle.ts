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
 *
 * This file reads whole checkpoints (readTorchObject / readTorchCheckpoint) or indexes them lazily
 * (indexTorchCheckpoint); the zip container is zip-reader.ts, the VM pickle-vm.ts, the values it builds
 * pickle-values.ts, torch's storages and tensor rebuilding torch-storage.ts, the budgets torch-limits.ts.
 */
import * as fs from 'node:fs';
import { readFailure, readFileOnce } from './file-io.ts';
import { ITEM_SIZE } from './safetensors.ts';
import { DEFAULT_TORCH_BUDGETS, TorchCheckpointError, makeBudget, spend, type TorchBudgets } from './torch-limits.ts';
import { SIG_LOCAL, ZipWindowTooSmall, readZipDirectory, zipEntryData, type ZipEntry } from './zip-reader.ts';
import { LoadedTensor, PyDict, TorchTensorRef, describe, type Storage, type TorchTensor } from './pickle-values.ts';
import { ARRAY_FOR } from './torch-storage.ts';
import { unpickle, type PickleContext } from './pickle-vm.ts';

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

/** The first bytes of the file must start a zip archive (not the legacy pickle format). */
function checkZipStart(file: string, head: Buffer): void {
  if (head.length >= 2 && head[0] === 0x80 && head[1]! <= 5) {
    throw new TorchCheckpointError(file, 'legacy (pre-1.6, non-zip) torch.save format is not supported; re-save with a current PyTorch');
  }
  if (head.length < 4 || head.readUInt32LE(0) !== SIG_LOCAL) throw new TorchCheckpointError(file, 'not a zip file (torch.save zip format expected)');
}

/** The archive's one `<archive>/data.pkl` entry and the `<archive>/` prefix of its other entries. */
function findPickle(file: string, entries: Map<string, ZipEntry>): { pkl: ZipEntry; prefix: string } {
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    const hint = [...entries.keys()].some((n) => n.endsWith('/constants.pkl')) ? ' (TorchScript archives are not supported)' : '';
    throw new TorchCheckpointError(file, `expected exactly one '<archive>/data.pkl', found ${pkls.length}${hint}`);
  }
  return { pkl: entries.get(pkls[0]!)!, prefix: pkls[0]!.slice(0, -'data.pkl'.length) };
}

/**
 * The tensors of an unpickled checkpoint as a flat name -> tensor map. If the top-level dict has a `state_dict` or
 * `model_state_dict` dict, that is used; nested dicts are flattened with dotted names; non-tensor values are skipped.
 * Iterative, and bounded: the graph is acyclic and at most maxDepth deep (checked when unpickling), but shared
 * dicts could still multiply the names (a diamond at every level), so the names produced are counted too.
 */
function flattenStateDict<T>(file: string, root: unknown, isTensor: (v: unknown) => v is T, maxNames: number): Map<string, T> {
  if (!(root instanceof PyDict)) {
    throw new TorchCheckpointError(file, `top-level object is ${describe(root)}, expected a dict / state_dict`);
  }
  let dict = root;
  for (const key of ['state_dict', 'model_state_dict']) {
    const inner = dict.get(key);
    if (inner instanceof PyDict) { dict = inner; break; }
  }
  const out = new Map<string, T>();
  let names = 0;
  const todo: [Iterator<[unknown, unknown]>, string][] = [[dict.entries(), '']];
  while (todo.length > 0) {
    const [it, prefix] = todo[todo.length - 1]!;
    const r = it.next();
    if (r.done) { todo.pop(); continue; }
    const [k, v] = r.value;
    if (typeof k !== 'string' && typeof k !== 'number') continue;
    if (++names > maxNames) throw new TorchCheckpointError(file, `more than ${maxNames} names in the state dict (budgets.maxObjects)`);
    const name = `${prefix}${k}`;
    if (isTensor(v)) out.set(name, v);
    else if (v instanceof PyDict) todo.push([v.entries(), `${name}.`]);
  }
  return out;
}

/** Unpickle the object stored in a torch zip checkpoint (dicts are PyDict, tensors TorchTensor, tuples/lists arrays). */
export function readTorchObject(file: string, options: TorchReadOptions = {}): unknown {
  let buf: Buffer;
  try {
    buf = readFileOnce(file);
  } catch (err) {
    throw new TorchCheckpointError(file, `cannot read: ${readFailure(err)}`, { cause: err });
  }
  checkZipStart(file, buf);
  const verifyCrc = options.verifyCrc ?? true;
  const budget = makeBudget(file, buf.length, options.budgets);
  const entries = readZipDirectory(file, buf);
  const { pkl, prefix } = findPickle(file, entries);
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
      const item = ITEM_SIZE[type.dtype];
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
  if (pkl.size > budget.maxPickle) {
    throw new TorchCheckpointError(file, `'${pkl.name}' is ${pkl.size} bytes, over the budget of ${budget.maxPickle} (budgets.maxPickleBytes)`);
  }
  return unpickle(zipEntryData(file, buf, pkl, verifyCrc, budget), ctx);
}

/** Read the tensors of a torch checkpoint as a flat name -> tensor map (see flattenStateDict). */
export function readTorchCheckpoint(file: string, options: TorchReadOptions = {}): Map<string, TorchTensor> {
  const maxNames = options.budgets?.maxObjects ?? DEFAULT_TORCH_BUDGETS.maxObjects;
  return flattenStateDict(file, readTorchObject(file, options), (v): v is LoadedTensor => v instanceof LoadedTensor, maxNames);
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
    checkZipStart(file, readAt(fd, file, 0, 4));
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
    const { pkl: pklEntry, prefix } = findPickle(file, entries);
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
        const item = ITEM_SIZE[type.dtype];
        if (e.size !== numel * item) throw new TorchCheckpointError(file, `storage '${key}' (${type.qualname}) has ${e.size} bytes, expected ${numel} x ${item}`);
        const start = entryDataStart(fd, file, e);
        if (start + e.size > size) throw new TorchCheckpointError(file, `storage '${key}' [${start}, +${e.size}) runs past the end of the ${size}-byte file (truncated?)`);
        const st: Storage = { kind: 'storage', key, dtype: type.dtype, numel, fileOffset: start };
        storages.set(key, st);
        return st;
      },
    };
    const isRef = (v: unknown): v is TorchTensorRef => v instanceof TorchTensorRef;
    return flattenStateDict(file, unpickle(pklData, ctx), isRef, DEFAULT_TORCH_BUDGETS.maxObjects);
  } finally {
    fs.closeSync(fd);
  }
}
