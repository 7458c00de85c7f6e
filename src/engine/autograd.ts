/**
 * Reverse-mode autodiff over the graph of GradNodes.
 *
 * An op records a node only when grad is enabled and one of its inputs requires grad, so frozen
 * weights and `noGrad` scopes keep no activations alive. Intermediate gradients are freed as soon
 * as they have been pushed to their inputs; only leaves (parameters) keep `.grad`.
 */
import { type GradNode, GradSlot, Tensor, emptyF32, fmtShape, zerosF32 } from './tensor.ts';
import { backend } from './backend.ts';
import { releaseF32, withBufferPool } from './buffer-pool.ts';
import { activeProfiler } from './profile.ts';
import { FlamingoError, InternalError } from '../errors.ts';

/** backward() called on something it cannot start from (no grad, a non-scalar root without a gradient). */
export class AutogradError extends FlamingoError {}

/** Grad mode is a process-wide switch like PyTorch's; it only ever changes inside noGrad/enableGrad scopes. */
let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the graph (inference, frozen encoders). Works with async fns too. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    const r = fn();
    if (r instanceof Promise) {
      return r.finally(() => { gradEnabled = prev; }) as T;
    }
    gradEnabled = prev;
    return r;
  } catch (e) {
    gradEnabled = prev;
    throw e;
  }
}

/** Whether an op over these inputs must record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Attach a node to `out` when any input requires grad. `backward` receives the output gradient.
 * Returns `out` for chaining.
 */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: (g: Float32Array) => void): Tensor {
  activeProfiler()?.forwardDone(op);
  if (!needsGrad(...inputs)) return out;
  out.requiresGrad = true;
  const node: GradNode = { op, inputs: inputs.map((t) => t.slot), backward };
  out.node = node;
  return out;
}

/** What gradients are accumulated into: a tensor, or its slot (what a backward closure keeps). */
export type GradTarget = Tensor | GradSlot;

/**
 * Add g into t.grad. When `owned` is true and t has no gradient yet, g is adopted without a copy,
 * so the caller must not reuse g. A gradient that is not owned (the output gradient passed through by
 * reshape or add) is borrowed by an intermediate without a copy — backward functions only read their
 * gradient — and copied on the first accumulation into it. Leaves always get a private buffer, since
 * optimizers and clipping write into parameter gradients.
 */
export function accumulateGrad(t: GradTarget, g: Float32Array, owned = true): void {
  if (!t.requiresGrad) return;
  if (g.length !== t.size) {
    throw new InternalError('accumulateGrad', `a backward function produced a gradient of length ${g.length} for a tensor of shape ${fmtShape(t.shape)}`);
  }
  if (t.grad === null) {
    if (owned || t.node !== null) {
      t.grad = g;
      t.gradBorrowed = !owned;
    } else {
      t.grad = g.slice();
    }
  } else if (t.gradBorrowed) {
    const sum = emptyF32(g.length);
    backend().add(t.grad, g, sum, g.length);
    t.grad = sum;
    t.gradBorrowed = false;
    if (owned) releaseF32(g); // summed: the caller gave it up
  } else {
    backend().axpy(1, g, t.grad, g.length);
    if (owned) releaseF32(g);
  }
}

/**
 * t.grad for an op that accumulates into it in place (weight gradients written by a kernel): allocated
 * (zeros) on first use, and copied first when it is borrowed. `fresh` tells that it was just allocated;
 * with `uncleared` a fresh buffer's contents are unspecified and the caller must write all of it.
 */
export function writableGrad(t: GradTarget, uncleared = false): { buf: Float32Array; fresh: boolean } {
  if (t.grad === null) {
    t.grad = uncleared ? emptyF32(t.size) : zerosF32(t.size);
    t.gradBorrowed = false;
    return { buf: t.grad, fresh: true };
  }
  if (t.gradBorrowed) {
    t.grad = t.grad.slice();
    t.gradBorrowed = false;
  }
  return { buf: t.grad, fresh: false };
}

/**
 * Backpropagate from `root`. With no `grad` given, root must be a scalar and d(root)/d(root) = 1.
 * Parameters (leaves) accumulate into `.grad`; the graph is released afterwards unless retainGraph.
 */
export function backward(root: Tensor, grad?: Float32Array, retainGraph = false): void {
  if (!root.requiresGrad) throw new AutogradError('backward: tensor does not require grad (no trainable input, or computed under noGrad)');
  if (grad === undefined) {
    if (root.size !== 1) throw new AutogradError(`backward: root of shape ${fmtShape(root.shape)} is not a scalar; pass a gradient`);
    grad = new Float32Array([1]);
  } else if (grad.length !== root.size) {
    throw new AutogradError(`backward: gradient of length ${grad.length} for a root of shape ${fmtShape(root.shape)}`);
  }
  // Topological order by iterative DFS (graphs can be thousands of nodes deep).
  const order: GradSlot[] = [];
  const visited = new Set<number>();
  const stack: [GradSlot, number][] = [[root.slot, 0]];
  visited.add(root.id);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node ? t.node.inputs : [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const c = inputs[i]!;
      if (c.requiresGrad && !visited.has(c.id)) {
        visited.add(c.id);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  accumulateGrad(root, grad, false);
  if (retainGraph) runBackward(order, true);
  else withBufferPool(() => runBackward(order, false));
}

/** True when some input's gradient is (a view of) buffer b: it borrowed the gradient passed through. */
function sharedWithInputs(b: Float32Array, inputs: readonly GradSlot[]): boolean {
  for (const x of inputs) if (x.grad !== null && x.grad.buffer === b.buffer) return true;
  return false;
}

/** Runs the nodes in reverse topological order (order: inputs before the tensors made from them). */
function runBackward(order: readonly GradSlot[], retainGraph: boolean): void {
  const prof = activeProfiler();
  for (let k = order.length - 1; k >= 0; k--) {
    const t = order[k]!;
    const node = t.node;
    if (!node) continue; // leaf
    const g = t.grad;
    if (g !== null) {
      if (prof) {
        const t0 = performance.now();
        node.backward(g);
        prof.backwardDone(node.op, performance.now() - t0);
      } else {
        node.backward(g);
      }
    }
    if (!retainGraph) {
      // Every consumer of t has run, so t's own gradient is dead unless an input borrowed it.
      if (g !== null && !t.gradBorrowed && !sharedWithInputs(g, node.inputs)) releaseF32(g);
      t.node = null;
      t.grad = null; // intermediate gradient no longer needed
      t.gradBorrowed = false;
    }
  }
}
