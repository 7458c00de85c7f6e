/**
 * Rotary position embedding, patch embedding (convolution with stride = kernel, as a GEMM over
 * im2col patches) and dropout.
 */
import { Tensor, ShapeError, emptyF32, fmtShape } from '../tensor.ts';
import { accumulateGrad, record, writableGrad } from '../autograd.ts';
import { backend } from '../backend.ts';
import type { Rng } from '../rng.ts';

/**
 * RoPE on x (B, L, H, D) at int32 positions (B, L), Hugging Face rotate_half layout.
 * Backward is the inverse rotation.
 */
export function rope(x: Tensor, positions: Tensor, theta: number): Tensor {
  if (x.ndim !== 4) throw new ShapeError('rope', `expects (B, L, H, D), got ${fmtShape(x.shape)}`);
  const [B, L, H, D] = x.shape as [number, number, number, number];
  if (D % 2 !== 0) throw new ShapeError('rope', `head dim ${D} must be even`);
  const P = positions.i32;
  if (P.length !== B * L) throw new ShapeError('rope', `positions ${fmtShape(positions.shape)} do not match (B, L) = (${B}, ${L})`);
  const out = emptyF32(x.size);
  backend().rope(x.f32, out, B, L, H, D, P, theta, false);
  const xs = x.slot; // rope is linear in x: its backward needs no data
  return record(new Tensor(out, x.shape), 'rope', [x], (g) => {
    const d = emptyF32(g.length);
    backend().rope(g, d, B, L, H, D, P, theta, true);
    accumulateGrad(xs, d);
  });
}

/**
 * Copy between images (N, C, H, W) and their non-overlapping p×p patches laid out as rows (N·P, C·p·p)
 * with columns ordered (c, dy, dx) like the conv weight: im2col when toCols, its inverse otherwise
 * (patches do not overlap, so the inverse is a plain copy).
 */
function patchCopy(img: Float32Array, cols: Float32Array, N: number, C: number, H: number, W: number, p: number, toCols: boolean): void {
  const gh = H / p;
  const gw = W / p;
  const K = C * p * p;
  for (let n = 0; n < N; n++) {
    for (let py = 0; py < gh; py++) {
      for (let px = 0; px < gw; px++) {
        let o = (n * gh * gw + py * gw + px) * K;
        for (let c = 0; c < C; c++) {
          const plane = (n * C + c) * H * W;
          for (let dy = 0; dy < p; dy++) {
            const row = plane + (py * p + dy) * W + px * p;
            if (toCols) for (let dx = 0; dx < p; dx++) cols[o++] = img[row + dx]!;
            else for (let dx = 0; dx < p; dx++) img[row + dx] = cols[o++]!;
          }
        }
      }
    }
  }
}

/**
 * Non-overlapping patch embedding: x (N, C, H, W), weight (E, C, p, p), no bias
 * → (N, (H/p)·(W/p), E) with patches in row-major order.
 */
export function patchEmbed(x: Tensor, weight: Tensor): Tensor {
  if (x.ndim !== 4 || weight.ndim !== 4) {
    throw new ShapeError('patch_embed', `expects x (N, C, H, W) and weight (E, C, p, p), got ${fmtShape(x.shape)} and ${fmtShape(weight.shape)}`);
  }
  const [N, C, Hh, Ww] = x.shape as [number, number, number, number];
  const [E, Cw, p, p2] = weight.shape as [number, number, number, number];
  if (Cw !== C || p !== p2 || Hh % p !== 0 || Ww % p !== 0) {
    throw new ShapeError('patch_embed', `input ${fmtShape(x.shape)} incompatible with weight ${fmtShape(weight.shape)} (channels must match, image divisible by patch)`);
  }
  const gh = Hh / p;
  const gw = Ww / p;
  const P = gh * gw;
  const K = C * p * p;
  const cols = emptyF32(N * P * K);
  patchCopy(x.f32, cols, N, C, Hh, Ww, p, true);
  const W = weight.f32;
  const out = emptyF32(N * P * E);
  backend().gemm(false, true, N * P, E, K, 1, cols, W, 0, out);
  return record(new Tensor(out, [N, P, E]), 'patch_embed', [x, weight], (g) => {
    const k = backend();
    if (weight.requiresGrad) {
      const { buf, fresh } = writableGrad(weight);
      k.gemm(true, false, E, K, N * P, 1, g, cols, fresh ? 0 : 1, buf);
    }
    if (x.requiresGrad) {
      const dcols = emptyF32(N * P * K);
      k.gemm(false, false, N * P, K, E, 1, g, W, 0, dcols);
      const dx = emptyF32(x.size);
      patchCopy(dx, dcols, N, C, Hh, Ww, p, false);
      accumulateGrad(x, dx);
    }
  });
}

/** Inverted dropout: zero with probability p, scale survivors by 1/(1-p). Identity when !training or p = 0. */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  if (!training || p === 0) return x;
  if (!(p > 0 && p < 1)) throw new ShapeError('dropout', `probability ${p} must be in [0, 1)`);
  const mask = rng.dropoutMask(x.size, p);
  const s = 1 / (1 - p);
  const X = x.f32;
  const out = emptyF32(X.length);
  for (let i = 0; i < X.length; i++) out[i] = mask[i] ? X[i]! * s : 0;
  return record(new Tensor(out, x.shape), 'dropout', [x], (g) => {
    const d = emptyF32(g.length);
    for (let i = 0; i < g.length; i++) d[i] = mask[i] ? g[i]! * s : 0;
    accumulateGrad(x, d);
  });
}
