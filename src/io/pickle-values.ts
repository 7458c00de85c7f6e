/**
 * The values a torch.save pickle unpickles to: Python dicts, allow-listed callables, inert placeholders for other
 * globals, storage types and storages, and tensors (in memory, or references into the file for a lazy index).
 */
import type { SafeDType, TensorData } from './safetensors.ts';

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

/** A Python dict / OrderedDict. `attrs` receives BUILD state (e.g. a state_dict's `_metadata`). */
export class PyDict extends Map<unknown, unknown> {
  attrs: unknown = undefined;
}

export class PyCallable {
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

export class StorageType {
  constructor(readonly qualname: string, readonly dtype: SafeDType) {}
}

export interface Storage {
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

/** A tensor whose bytes are in memory (a view of its storage, or a contiguous copy). */
export class LoadedTensor implements TorchTensor {
  constructor(readonly dtype: SafeDType, readonly shape: number[], readonly data: TensorData) {}
}

export function isStorage(v: unknown): v is Storage {
  return typeof v === 'object' && v !== null && (v as Storage).kind === 'storage';
}

/** A pickle value in an error message. */
export function describe(v: unknown): string {
  if (v instanceof PyCallable || v instanceof StorageType || v instanceof PyOpaque) return v.qualname;
  if (v instanceof PyDict) return `dict(${v.size} items)`;
  if (v instanceof LoadedTensor) return `tensor(${v.dtype}, [${v.shape.join(', ')}])`;
  if (isStorage(v)) return `storage(${v.dtype}, key ${v.key})`;
  if (Array.isArray(v)) return `tuple/list of ${v.length}`;
  if (typeof v === 'bigint') return `${v}`;
  return JSON.stringify(v) ?? String(v);
}
