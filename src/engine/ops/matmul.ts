/**
 * Matrix products: batched matmul with optional transposes, and Linear (x · Wᵀ + b, PyTorch layout).
 * Weight gradients are accumulated straight into `.grad` with beta = 1, so no temporary is made.
 */
import { Tensor, ShapeError, emptyF32, fmtShape, shapeSize } from '../tensor.ts';
import { type GradTarget, accumulateGrad, record, writableGrad } from '../autograd.ts';
import { backend } from '../backend.ts';

/** d(param) += product, computed by gemm into param.grad directly (allocating it on first use). */
function gradBuffer(t: GradTarget): { buf: Float32Array; beta: number } {
  const { buf, fresh } = writableGrad(t);
  return { buf, beta: fresh ? 0 : 1 };
}

/**
 * a: (..., M, K) (or (..., K, M) with transA), b: (..., K, N) (or (..., N, K) with transB).
 * Batch dims must be equal, or b may be 2-D (shared across the batch).
 */
export function matmul(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  if (a.ndim < 2 || b.ndim < 2) throw new ShapeError('matmul', `needs ≥2-D operands, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const A = a.f32;
  const B = b.f32;
  const [ar, ac] = [a.dim(-2), a.dim(-1)];
  const [br, bc] = [b.dim(-2), b.dim(-1)];
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  if (K !== Kb) {
    throw new ShapeError('matmul', `inner dimensions differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} × ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`);
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const shared = batchB.length === 0;
  if (!shared && (batchA.length !== batchB.length || batchA.some((d, i) => d !== batchB[i]))) {
    throw new ShapeError('matmul', `batch dimensions differ: ${fmtShape(a.shape)} × ${fmtShape(b.shape)}`);
  }
  const count = shapeSize(batchA);
  const out = emptyF32(count * M * N);
  const k = backend();
  if (shared && !transA) {
    // one big GEMM over the flattened batch
    k.gemm(false, transB, count * M, N, K, 1, A, B, 0, out);
  } else if (count > 0) {
    k.gemm(transA, transB, M, N, K, 1, A, B, 0, out, { count, strideA: M * K, strideB: shared ? 0 : K * N, strideC: M * N });
  }
  const res = new Tensor(out, [...batchA, M, N]);
  // The closure keeps the slots and only the operands a gradient needs (dA needs B, dB needs A).
  const as = a.slot;
  const bs = b.slot;
  const Ak = b.requiresGrad ? A : null;
  const Bk = a.requiresGrad ? B : null;
  const aSize = a.size;
  const bSize = b.size;
  return record(res, 'matmul', [a, b], (g) => {
    const kk = backend();
    if (as.requiresGrad && Bk !== null) {
      const B = Bk;
      // dA = g · op(B)ᵀ (stored as op(A)'s layout)
      const dA = emptyF32(aSize);
      if (shared && !transA) {
        kk.gemm(false, !transB, count * M, K, N, 1, g, B, 0, dA);
      } else if (!transA) {
        kk.gemm(false, !transB, M, K, N, 1, g, B, 0, dA, { count, strideA: M * N, strideB: shared ? 0 : K * N, strideC: M * K });
      } else {
        // A stored K×M: dA = op(B) · gᵀ
        kk.gemm(transB, true, K, M, N, 1, B, g, 0, dA, { count, strideA: shared ? 0 : K * N, strideB: M * N, strideC: M * K });
      }
      accumulateGrad(as, dA);
    }
    if (bs.requiresGrad && Ak !== null) {
      const A = Ak;
      if (shared && !transA) {
        const { buf, beta } = gradBuffer(bs);
        if (!transB) kk.gemm(true, false, K, N, count * M, 1, A, g, beta, buf);
        else kk.gemm(true, false, N, K, count * M, 1, g, A, beta, buf);
      } else if (shared) {
        // shared B with transposed A: accumulate per batch item
        const { buf, beta } = gradBuffer(bs);
        for (let i = 0; i < count; i++) {
          const Ai = A.subarray(i * M * K, (i + 1) * M * K);
          const gi = g.subarray(i * M * N, (i + 1) * M * N);
          if (!transB) kk.gemm(false, false, K, N, M, 1, Ai, gi, i === 0 ? beta : 1, buf);
          else kk.gemm(true, true, N, K, M, 1, gi, Ai, i === 0 ? beta : 1, buf);
        }
      } else {
        const dB = emptyF32(bSize);
        const batch = { count, strideA: M * K, strideB: M * N, strideC: K * N };
        if (!transB) kk.gemm(!transA, false, K, N, M, 1, A, g, 0, dB, batch);
        else kk.gemm(true, transA, N, K, M, 1, g, A, 0, dB, { count, strideA: M * N, strideB: M * K, strideC: K * N });
        accumulateGrad(bs, dB);
      }
    }
  });
}

/** y = x · Wᵀ + b with W of shape (out, in) as in PyTorch's nn.Linear. */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  if (w.ndim !== 2) throw new ShapeError('linear', `weight must be 2-D (out, in), got ${fmtShape(w.shape)}`);
  const [outF, inF] = [w.shape[0]!, w.shape[1]!];
  if (x.ndim < 1 || x.dim(-1) !== inF) {
    throw new ShapeError('linear', `input ${fmtShape(x.shape)} does not end in in_features=${inF} (weight ${fmtShape(w.shape)})`);
  }
  if (b !== null && (b.ndim !== 1 || b.shape[0] !== outF)) {
    throw new ShapeError('linear', `bias ${fmtShape(b.shape)} does not match out_features=${outF}`);
  }
  if (w.packed) return packedLinear(x, w, b);
  const X = x.f32;
  const W = w.f32;
  const rows = x.size / inF;
  const out = emptyF32(rows * outF);
  const k = backend();
  let beta = 0;
  if (b !== null) {
    const Bv = b.f32;
    for (let r = 0; r < rows; r++) out.set(Bv, r * outF);
    beta = 1;
  }
  if (rows > 0) k.gemm(false, true, rows, outF, inF, 1, X, W, beta, out);
  const res = new Tensor(out, [...x.shape.slice(0, -1), outF]);
  // The input is kept only for the weight gradient: a frozen layer's input can go after forward.
  const xs = x.slot;
  const ws = w.slot;
  const bs = b === null ? null : b.slot;
  const Xk = w.requiresGrad ? X : null;
  return record(res, 'linear', b ? [x, w, b] : [x, w], (g) => {
    const kk = backend();
    if (xs.requiresGrad) {
      const dX = emptyF32(xs.size);
      kk.gemm(false, false, rows, inF, outF, 1, g, W, 0, dX);
      accumulateGrad(xs, dX);
    }
    if (ws.requiresGrad && Xk !== null) {
      const { buf, beta: bt } = gradBuffer(ws);
      kk.gemm(true, false, outF, inF, rows, 1, g, Xk, bt, buf);
    }
    if (bs !== null && bs.requiresGrad) {
      const db = new Float32Array(outF);
      for (let r = 0; r < rows; r++) {
        const o = r * outF;
        for (let j = 0; j < outF; j++) db[j]! += g[o + j]!;
      }
      accumulateGrad(bs, db);
    }
  });
}

/**
 * linear() over a packed (bf16 / int8) frozen weight: the kernel reads the packed blocks directly.
 * The weight never gets a gradient; x does (dx = g · dequant(W)), so layers before a quantised
 * frozen layer still train.
 */
function packedLinear(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const p = w.packed!;
  const X = x.f32;
  const rows = x.size / p.cols;
  const out = emptyF32(rows * p.rows);
  let beta = 0;
  if (b !== null) {
    const Bv = b.f32;
    for (let r = 0; r < rows; r++) out.set(Bv, r * p.rows);
    beta = 1;
  }
  if (rows > 0) backend().packedLinear(X, p, out, rows, beta);
  const res = new Tensor(out, [...x.shape.slice(0, -1), p.rows]);
  const xs = x.slot;
  const bs = b === null ? null : b.slot;
  return record(res, 'linear', b ? [x, w, b] : [x, w], (g) => {
    if (xs.requiresGrad) {
      const dX = emptyF32(xs.size);
      backend().packedLinearBackward(g, p, dX, rows);
      accumulateGrad(xs, dX);
    }
    if (bs !== null && bs.requiresGrad) {
      const db = new Float32Array(p.rows);
      for (let r = 0; r < rows; r++) {
        const o = r * p.rows;
        for (let j = 0; j < p.rows; j++) db[j]! += g[o + j]!;
      }
      accumulateGrad(bs, db);
    }
  });
}
