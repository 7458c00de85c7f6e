/**
 * Tensor: a shape, a contiguous row-major buffer, and — when it takes part in autograd — the
 * node that made it. Views (reshape, leading-axis slices) share the buffer; every other op
 * allocates its output. Gradients are plain Float32Arrays of the tensor's size.
 */

export type DType = 'float32' | 'int32';

export type TensorData = Float32Array | Int32Array;

/** A recorded operation: how to push the output's gradient into its inputs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Receives d(loss)/d(output) and accumulates into each input that requires grad (via `accumulateGrad`). */
  backward(gradOut: Float32Array): void;
}

export class ShapeError extends Error {
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'ShapeError';
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

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly data: TensorData;
  readonly dtype: DType;
  /** True for parameters being trained and for every tensor computed from one (while grad is enabled). */
  requiresGrad: boolean;
  /** Accumulated gradient (float32 tensors only). */
  grad: Float32Array | null = null;
  /** `grad` is another node's buffer, adopted read-only (autograd copies on the first write into it). */
  gradBorrowed = false;
  /** The op that produced this tensor; null for leaves and for tensors computed without grad. */
  node: GradNode | null = null;
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
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = data instanceof Int32Array ? 'int32' : 'float32';
    this.requiresGrad = requiresGrad;
    if (requiresGrad && this.dtype !== 'float32') throw new ShapeError('Tensor', 'only float32 tensors can require grad');
  }

  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** The float32 buffer; throws for int tensors (ops call this to check dtypes). */
  get f32(): Float32Array {
    if (!(this.data instanceof Float32Array)) throw new ShapeError('Tensor', `expected a float32 tensor, got int32 ${fmtShape(this.shape)}`);
    return this.data;
  }

  get i32(): Int32Array {
    if (!(this.data instanceof Int32Array)) throw new ShapeError('Tensor', `expected an int32 tensor, got float32 ${fmtShape(this.shape)}`);
    return this.data;
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
