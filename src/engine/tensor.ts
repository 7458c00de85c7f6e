/**
 * Tensor: a shape, a contiguous row-major buffer, and — when it takes part in autograd — the
 * node that made it. Views (reshape, leading-axis slices) share the buffer; every other op
 * allocates its output. Gradients are plain Float32Arrays of the tensor's size.
 */
import { Buffer } from 'node:buffer';
import { FlamingoError } from '../errors.ts';

import type { PackedWeight } from './quant.ts';
import { releaseF32, takePooled } from './buffer-pool.ts';

/** 'bf16' and 'int8' are packed weight matrices (see quant.ts): only `linear` reads them. */
export type DType = 'float32' | 'int32' | 'bf16' | 'int8';

export type TensorData = Float32Array | Int32Array;

/** A recorded operation: how to push the output's gradient into its inputs. */
export interface GradNode {
  readonly op: string;
  /** The inputs' autograd state (not the tensors: the graph must not keep their data alive). */
  readonly inputs: readonly GradSlot[];
  /** Receives d(loss)/d(output) and accumulates into each input that requires grad (via `accumulateGrad`). */
  backward(gradOut: Float32Array): void;
}

export class ShapeError extends FlamingoError {
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
  }
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Below this many elements clearing costs less than asking for uncleared memory. */
const UNCLEARED_MIN = 4096;

/**
 * A float32 buffer of n elements whose contents are unspecified, for an output that the caller
 * overwrites in full (a kernel's result, a copy). Why: `new Float32Array(n)` clears its memory
 * first, and a training step allocates gigabytes of activations and gradients that are written at
 * once, so the clearing was a second pass over every one of them. Never use it for a buffer that is
 * accumulated into or only partly written.
 */
export function emptyF32(n: number): Float32Array {
  if (n < UNCLEARED_MIN) return new Float32Array(n);
  const pooled = takePooled(n); // a dead buffer of a backward pass (buffer-pool.ts)
  if (pooled !== null) return pooled;
  const b = Buffer.allocUnsafeSlow(n * 4); // its own ArrayBuffer (never the shared pool), offset 0
  return new Float32Array(b.buffer, b.byteOffset, n);
}

/** A zero-filled float32 buffer of n elements (a pooled dead buffer cleared, or new memory). */
export function zerosF32(n: number): Float32Array {
  const pooled = n < UNCLEARED_MIN ? null : takePooled(n);
  return pooled === null ? new Float32Array(n) : pooled.fill(0);
}

/**
 * Model code's statement that t, an intermediate result it made and handed to no one, is dead: inside
 * a pooled no-grad scope (`withBufferPool`, e.g. the frozen vision encoder) its buffer is reused by the
 * next allocation of the same length. A tensor in the graph (requires grad, or a node saved it) is never
 * released, and outside a pool this does nothing, so the call is always safe for a dead intermediate.
 * Never call it on a parameter, a view of a live tensor, or anything returned or stored.
 */
export function disposeTensor(t: Tensor): void {
  if (t.requiresGrad || t.node !== null || t.packed !== null || t.dtype !== 'float32') return;
  releaseF32(t.f32);
}

let nextId = 1;

/**
 * The autograd state of a tensor, apart from its data. Why apart: the graph (nodes' inputs) and the
 * backward closures refer to the inputs they accumulate gradients into; if they held the tensors, every
 * intermediate result of a forward pass would stay alive until backward, including the many that no
 * backward needs (a frozen linear layer's input, the copies around reshapes and head splits). Holding
 * slots, only what a closure captures on purpose stays alive.
 */
export class GradSlot {
  readonly id = nextId++;
  requiresGrad = false;
  /** Accumulated gradient (float32 tensors only). */
  grad: Float32Array | null = null;
  /** `grad` is another node's buffer, adopted read-only (autograd copies on the first write into it). */
  gradBorrowed = false;
  /** The op that produced the tensor; null for leaves and for tensors computed without grad. */
  node: GradNode | null = null;
  constructor(public shape: readonly number[], public size: number) {}
}

export class Tensor {
  readonly shape: readonly number[];
  /** Autograd state, shared by reference with the graph (see GradSlot). */
  readonly slot: GradSlot;
  private _data: TensorData;
  private _packed: PackedWeight | null = null;
  private _dtype: DType;
  private readonly _size: number;
  /** Optional name (parameters carry their state-dict name). */
  name: string | undefined;

  constructor(data: TensorData, shape: readonly number[], requiresGrad = false) {
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new ShapeError('Tensor', `buffer of length ${data.length} does not match shape ${fmtShape(shape)} (${n} elements)`);
    }
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError('Tensor', `invalid dimension ${d} in shape ${fmtShape(shape)}`);
    }
    this._data = data;
    this._size = n;
    this.shape = Object.freeze([...shape]);
    this.slot = new GradSlot(this.shape, n);
    this._dtype = data instanceof Int32Array ? 'int32' : 'float32';
    this.requiresGrad = requiresGrad;
  }

  get id(): number {
    return this.slot.id;
  }

  /** Accumulated gradient (float32 tensors only). */
  get grad(): Float32Array | null {
    return this.slot.grad;
  }

  set grad(g: Float32Array | null) {
    this.slot.grad = g;
  }

  /** `grad` is another node's buffer, adopted read-only (autograd copies on the first write into it). */
  get gradBorrowed(): boolean {
    return this.slot.gradBorrowed;
  }

  set gradBorrowed(v: boolean) {
    this.slot.gradBorrowed = v;
  }

  /** The op that produced this tensor; null for leaves and for tensors computed without grad. */
  get node(): GradNode | null {
    return this.slot.node;
  }

  set node(n: GradNode | null) {
    this.slot.node = n;
  }

  /** A 2-D (out, in) tensor stored packed (bf16 / int8 blocks). */
  static fromPacked(p: PackedWeight): Tensor {
    const t = new Tensor(new Float32Array(0), [0]);
    return t.setPacked(p, [p.rows, p.cols]);
  }

  /** True for parameters being trained and for every tensor computed from one (while grad is enabled). */
  get requiresGrad(): boolean {
    return this.slot.requiresGrad;
  }

  set requiresGrad(v: boolean) {
    if (v && this._dtype !== 'float32') {
      const what = this.name ? `'${this.name}' ` : '';
      throw new ShapeError('Tensor', `${what}is ${this._dtype} ${fmtShape(this.shape)}: only float32 tensors can require grad (quantised weights are frozen; load the model in fp32 to train them)`);
    }
    this.slot.requiresGrad = v;
  }

  get dtype(): DType {
    return this._dtype;
  }

  /** The element buffer; throws for packed tensors (their storage is `packed`). */
  get data(): TensorData {
    if (this._packed) throw new ShapeError('Tensor', `${this.name ?? 'tensor'} ${fmtShape(this.shape)} is stored as ${this._dtype}; read it through linear() or its .packed storage`);
    return this._data;
  }

  /** Packed storage of a bf16 / int8 weight, or null for float32 / int32 tensors. */
  get packed(): PackedWeight | null {
    return this._packed;
  }

  /**
   * Replaces this 2-D float32 tensor's storage by a packed copy, in place, so every holder of the
   * tensor (module fields, the parameter map, tied aliases) sees the new storage. The float32
   * buffer is dropped.
   */
  pack(p: PackedWeight): this {
    if (this.slot.requiresGrad) throw new ShapeError('pack', `${this.name ?? 'tensor'} requires grad; only frozen weights can be packed`);
    if (this.shape.length !== 2 || this.shape[0] !== p.rows || this.shape[1] !== p.cols) {
      throw new ShapeError('pack', `packed ${p.rows}×${p.cols} storage does not fit ${this.name ?? 'tensor'} ${fmtShape(this.shape)}`);
    }
    return this.setPacked(p, this.shape);
  }

  private setPacked(p: PackedWeight, shape: readonly number[]): this {
    (this as { shape: readonly number[] }).shape = Object.freeze([...shape]);
    (this as unknown as { _size: number })._size = p.rows * p.cols;
    this.slot.shape = this.shape;
    this.slot.size = p.rows * p.cols;
    this._packed = p;
    this._dtype = p.kind;
    this._data = new Float32Array(0);
    this.grad = null;
    return this;
  }

  get size(): number {
    return this._size;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** The float32 buffer; throws for int tensors (ops call this to check dtypes). */
  get f32(): Float32Array {
    if (this._packed || !(this._data instanceof Float32Array)) throw new ShapeError('Tensor', `expected a float32 tensor, got ${this._dtype} ${this.name ?? ''}${fmtShape(this.shape)}`);
    return this._data;
  }

  get i32(): Int32Array {
    if (!(this._data instanceof Int32Array)) throw new ShapeError('Tensor', `expected an int32 tensor, got ${this._dtype} ${fmtShape(this.shape)}`);
    return this._data;
  }

  /** Dimension with negative indexing. */
  dim(i: number): number {
    const a = i < 0 ? this.shape.length + i : i;
    const d = this.shape[a];
    if (d === undefined) throw new ShapeError('dim', `axis ${i} out of range for shape ${fmtShape(this.shape)}`);
    return d;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  /** A copy of the value without history. */
  detach(): Tensor {
    if (this._packed) return Tensor.fromPacked(this._packed);
    return new Tensor(this.data, this.shape, false);
  }

  item(): number {
    if (this.size !== 1) throw new ShapeError('item', `tensor of shape ${fmtShape(this.shape)} has ${this.size} elements`);
    return this.data[0]!;
  }

  toString(): string {
    return `Tensor(${this.dtype}, ${fmtShape(this.shape)})`;
  }
}

export function zeros(shape: readonly number[]): Tensor {
  return new Tensor(new Float32Array(shapeSize(shape)), shape);
}

export function ones(shape: readonly number[]): Tensor {
  return new Tensor(new Float32Array(shapeSize(shape)).fill(1), shape);
}

export function full(shape: readonly number[], value: number): Tensor {
  return new Tensor(new Float32Array(shapeSize(shape)).fill(value), shape);
}

export function fromArray(values: ArrayLike<number>, shape?: readonly number[]): Tensor {
  return new Tensor(Float32Array.from(values), shape ?? [values.length]);
}

export function intTensor(values: ArrayLike<number>, shape?: readonly number[]): Tensor {
  return new Tensor(Int32Array.from(values), shape ?? [values.length]);
}
