/**
 * Storing frozen linear weights as bf16 / int8 (engine/quant.ts formats). Which tensors qualify is
 * declared by the layers themselves (`Module.linearWeights()`: Linear's weight, the ViT's
 * in_proj_weight, an untied LM head): weights only `linear()` reads. Embeddings, norms, gates,
 * convolutions and anything that requires grad stay float32.
 */
import { Tensor } from '../engine/tensor.ts';
import { backend } from '../engine/backend.ts';
import { type PackedWeight, type WeightDType, QuantError, allocPacked, blocksPerRow, packedBytes } from '../engine/quant.ts';
import type { Module } from './module.ts';

export interface QuantizeSummary {
  dtype: WeightDType;
  /** Tensors stored packed. */
  tensors: number;
  /** Their elements. */
  elements: number;
  /** Bytes of all parameters after packing (packed + float32 ones). */
  bytes: number;
}

/** Full names of the subtree's linear-only weights (whether frozen or not). */
export function linearWeightNames(root: Module): Set<string> {
  const out = new Set<string>();
  for (const [prefix, m] of root.namedModules()) for (const n of m.linearWeights()) if (m.ownParameter(n)) out.add(prefix + n);
  return out;
}

/** Packs rows × cols float32 values with the active kernels (native when loaded). */
export function packMatrix(src: Float32Array, rows: number, cols: number, kind: 'bf16' | 'int8'): PackedWeight {
  const p = allocPacked(rows, cols, kind);
  packRowsInto(p, 0, src, rows);
  return p;
}

/** Fills rows [r0, r0 + n) of packed storage from n rows of float32 values (loaders stream by rows). */
export function packRowsInto(p: PackedWeight, r0: number, src: Float32Array, n: number): void {
  const C = p.cols;
  if (p.kind === 'bf16') backend().quantizeBf16(src, p.bits.subarray(r0 * C, (r0 + n) * C), n * C);
  else {
    const nb = blocksPerRow(C);
    backend().quantizeInt8(src, p.qs.subarray(r0 * C, (r0 + n) * C), p.scales.subarray(r0 * nb, (r0 + n) * nb), n, C);
  }
}

/** Bytes of one parameter as stored. */
export function tensorBytes(t: Tensor): number {
  return t.packed ? packedBytes(t.packed) : t.size * 4;
}

/**
 * Packs every frozen linear weight of `root` in place (the tensors keep their identity, so module
 * fields and tied aliases follow). fp32 leaves everything as is. Already packed weights of another
 * type are an error (re-quantising would compound the rounding).
 */
export function quantizeFrozen(root: Module, dtype: WeightDType): QuantizeSummary {
  const names = linearWeightNames(root);
  let tensors = 0;
  let elements = 0;
  if (dtype !== 'fp32') {
    for (const [name, t] of root.namedParameters()) {
      if (!names.has(name) || t.requiresGrad || t.ndim !== 2) continue;
      if (t.packed) {
        if (t.packed.kind !== dtype) throw new QuantError(`${name} is already stored as ${t.packed.kind}; cannot convert it to ${dtype}`);
        continue;
      }
      t.pack(packMatrix(t.f32, t.shape[0]!, t.shape[1]!, dtype));
      tensors++;
      elements += t.size;
    }
  }
  return { dtype, tensors, elements, bytes: modelBytes(root) };
}

/** Bytes of all parameters as stored (tied tensors counted once). */
export function modelBytes(root: Module): number {
  const seen = new Set<Tensor>();
  let s = 0;
  for (const [, t] of root.namedParameters()) {
    if (seen.has(t)) continue;
    seen.add(t);
    s += tensorBytes(t);
  }
  return s;
}

/** The dtype a model's linear weights are stored in ('fp32' when none is packed; 'mixed' if both kinds occur). */
export function storedDType(root: Module): WeightDType | 'mixed' {
  const kinds = new Set<string>();
  for (const [, t] of root.namedParameters()) if (t.packed) kinds.add(t.packed.kind);
  if (kinds.size === 0) return 'fp32';
  if (kinds.size > 1) return 'mixed';
  return [...kinds][0] as WeightDType;
}

/**
 * A per-tensor load hook that packs (the shape of io/release.ts's TensorLoadHook): frozen linear
 * weights are read 16 MB of rows at a time and packed into their final storage; every other tensor
 * is read straight into its float32 storage. The float32 copy of a packed weight never exists.
 */
export function packingLoadHook(
  root: Module, dtype: WeightDType,
): (name: string, param: Tensor, read: (dest: Float32Array, offset?: number) => void, available: number) => void {
  const names = linearWeightNames(root);
  const chunk = new Float32Array(1 << 22);
  return (name, param, read, available) => {
    if (dtype === 'fp32' || !names.has(name) || param.requiresGrad || param.ndim !== 2 || available !== param.size) {
      read(param.f32.subarray(0, available));
      return;
    }
    const [rows, cols] = param.shape as [number, number];
    const p = allocPacked(rows, cols, dtype);
    const step = Math.max(1, Math.floor(chunk.length / Math.max(cols, 1)));
    const buf = step * cols > chunk.length ? new Float32Array(step * cols) : chunk;
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      const dst = buf.subarray(0, n * cols);
      read(dst, r0 * cols);
      packRowsInto(p, r0, dst, n);
    }
    param.pack(p);
  };
}

/** One stderr line saying how the weights are stored (no silent choice of dtype). */
export function logWeights(root: Module, who: string): void {
  process.stderr.write(`${who}: weights ${storedDType(root)} (${(modelBytes(root) / 2 ** 20).toFixed(0)} MB); kernels ${backend().description}\n`);
}
