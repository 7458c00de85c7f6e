/**
 * Normalisation over the last axis: LayerNorm (with or without affine/bias) and RMSNorm (LLaMA).
 * The kernels save per-row statistics so backward does not recompute them.
 */
import { Tensor, ShapeError, emptyF32, fmtShape } from '../tensor.ts';
import { accumulateGrad, record, writableGrad } from '../autograd.ts';
import { backend } from '../backend.ts';

function checkParam(op: string, x: Tensor, p: Tensor | null, what: string): void {
  if (p !== null && (p.ndim !== 1 || p.shape[0] !== x.dim(-1))) {
    throw new ShapeError(op, `${what} ${fmtShape(p.shape)} does not match the last axis of input ${fmtShape(x.shape)}`);
  }
}

function paramGrad(t: Tensor | null): Float32Array | null {
  if (t === null || !t.requiresGrad) return null;
  return writableGrad(t).buf; // the kernel accumulates into it
}

export function layerNorm(x: Tensor, w: Tensor | null, b: Tensor | null, eps = 1e-5): Tensor {
  checkParam('layer_norm', x, w, 'weight');
  checkParam('layer_norm', x, b, 'bias');
  const cols = x.dim(-1);
  const rows = x.size / cols;
  const X = x.f32;
  const out = emptyF32(x.size);
  const meanBuf = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  const W = w ? w.f32 : null;
  backend().layerNorm(X, W, b ? b.f32 : null, out, meanBuf, rstd, rows, cols, eps);
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return record(new Tensor(out, x.shape), 'layer_norm', inputs, (g) => {
    const dx = emptyF32(x.size);
    backend().layerNormBackward(X, W, meanBuf, rstd, g, dx, paramGrad(w), paramGrad(b), rows, cols);
    accumulateGrad(x, dx);
  });
}

export function rmsNorm(x: Tensor, w: Tensor | null, eps = 1e-6): Tensor {
  checkParam('rms_norm', x, w, 'weight');
  const cols = x.dim(-1);
  const rows = x.size / cols;
  const X = x.f32;
  const out = emptyF32(x.size);
  const rstd = new Float32Array(rows);
  const W = w ? w.f32 : null;
  backend().rmsNorm(X, W, out, rstd, rows, cols, eps);
  return record(new Tensor(out, x.shape), 'rms_norm', w ? [x, w] : [x], (g) => {
    const dx = emptyF32(x.size);
    backend().rmsNormBackward(X, W, rstd, g, dx, paramGrad(w), rows, cols);
    accumulateGrad(x, dx);
  });
}
