/**
 * torch's side of unpickling: the storage types, the allow-listed globals (OrderedDict and the tensor rebuild
 * functions) and how a tensor is rebuilt from its storage (a zero-copy view when C-contiguous, else a copy
 * counted against the budget); conversions of loaded tensors to float32 / int32.
 */
import { halfBitsToFloat32Array } from './half-float.ts';
import { ITEM_SIZE, type SafeDType, type TensorData } from './safetensors.ts';
import { type Budget, TorchCheckpointError, spend } from './torch-limits.ts';
import {
  LoadedTensor, PyCallable, PyDict, StorageType, TorchTensorRef, describe, isStorage, type Storage, type TorchTensor,
} from './pickle-values.ts';

export const STORAGE_TYPES: Record<string, SafeDType> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
  UntypedStorage: 'U8', // numel is then in bytes
};

export type ArrayCtor = {
  new(n: number): TensorData;
  new(b: ArrayBufferLike, off: number, n: number): TensorData;
};

export const ARRAY_FOR: Record<SafeDType, ArrayCtor> = {
  F32: Float32Array, F64: Float64Array, F16: Uint16Array, BF16: Uint16Array, U16: Uint16Array, I64: BigInt64Array,
  I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array,
};

export function isSafeIntArray(v: unknown, min = 0): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min);
}

/** Build a tensor from a storage: a zero-copy view when the layout is C-contiguous, else a contiguous copy. */
export function rebuildTensor(budget: Budget, storage: unknown, offset: unknown, size: unknown, stride: unknown): LoadedTensor | TorchTensorRef {
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
  if (numel === 0) return new LoadedTensor(st.dtype, shape.slice(), new ARRAY_FOR[st.dtype](0));
  let contiguous = true;
  for (let k = shape.length - 1, expect = 1; k >= 0; k--) {
    if (shape[k] !== 1 && strides[k] !== expect) { contiguous = false; break; }
    expect *= shape[k]!;
  }
  const data = st.data;
  if (contiguous) return new LoadedTensor(st.dtype, shape.slice(), data.subarray(off, off + numel));
  // Counted over all tensors: twelve stride-0 expansions of one element must not add up to gigabytes.
  spend(budget, numel * ITEM_SIZE[st.dtype], `materialising tensor of size [${shape.join(', ')}] stride [${strides.join(', ')}] `
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
  return new LoadedTensor(st.dtype, shape.slice(), out);
}

export function makeGlobals(budget: Budget): Map<string, PyCallable | StorageType> {
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
    if (!(a[0] instanceof LoadedTensor) && !(a[0] instanceof TorchTensorRef)) throw new TorchCheckpointError(file, `_rebuild_parameter: expected a tensor, got ${describe(a[0])}`);
    return a[0];
  });
  for (const [name, dtype] of Object.entries(STORAGE_TYPES)) g.set(`torch.${name}`, new StorageType(`torch.${name}`, dtype));
  return g;
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
