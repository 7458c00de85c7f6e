/**
 * Similarity-preserving auxiliary loss (Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation"),
 * used in Flamingo training to keep what the gated cross-attention writes at an `<image>` position as
 * generic as the frozen vision encoder's embedding of that image.
 *
 * Why: fast binding needs the key written for an image to resemble the keys of images of the same concept.
 * Trained on a few classes only, the resampler and cross-attention learn a code for those classes and map
 * unseen ones close together; the contrastive embedding still separates them. Matching the batch's pairwise
 * similarities to the embedding's keeps the code from collapsing, without fixing any particular map.
 *
 *   Ĥ = rownorm(H − mean_rows(H)),  Ê = rownorm(E − mean_rows(E))          (N images in the batch)
 *   L = mean_ij ((Ĥ Ĥᵀ)_ij − (Ê Êᵀ)_ij)²
 *
 * H (N, d) carries gradients; E (N, e) is a constant target (no gradient).
 */
import { Tensor, ShapeError, fmtShape } from '../engine/tensor.ts';
import { matmul, mean, mul, rmsNorm, scale, sub, transpose } from '../engine/index.ts';

/** Centred, unit-norm rows of a constant matrix, as a plain array (N, e). */
function unitRows(e: Float32Array, N: number, D: number): Float32Array {
  const out = new Float32Array(N * D);
  for (let j = 0; j < D; j++) {
    let m = 0;
    for (let i = 0; i < N; i++) m += e[i * D + j]!;
    m /= N;
    for (let i = 0; i < N; i++) out[i * D + j] = e[i * D + j]! - m;
  }
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += out[i * D + j]! ** 2;
    const f = 1 / Math.sqrt(s + 1e-12);
    for (let j = 0; j < D; j++) out[i * D + j]! *= f;
  }
  return out;
}

/** Target Gram matrix ÊÊᵀ (N, N) of the embedding rows. */
export function similarityTarget(embeddings: Float32Array, N: number, D: number): Float32Array {
  if (embeddings.length !== N * D) throw new ShapeError('similarity', `embeddings have ${embeddings.length} values, expected ${N}×${D}`);
  const u = unitRows(embeddings, N, D);
  const g = new Float32Array(N * N);
  for (let a = 0; a < N; a++) {
    for (let b = a; b < N; b++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += u[a * D + j]! * u[b * D + j]!;
      g[a * N + b] = s;
      g[b * N + a] = s;
    }
  }
  return g;
}

/** L = mean((ĤĤᵀ − target)²) for features H (N, d) with gradients; target from similarityTarget. */
export function similarityLoss(features: Tensor, target: Float32Array): Tensor {
  if (features.ndim !== 2) throw new ShapeError('similarity', `features must be (N, d), got ${fmtShape(features.shape)}`);
  const [N, d] = features.shape as [number, number];
  if (target.length !== N * N) throw new ShapeError('similarity', `target must be ${N}×${N}, got ${target.length} values`);
  const centred = sub(features, mean(features, 0, true));
  // rmsNorm divides by sqrt(mean x² + eps), so rows have norm √d: the Gram is divided by d. The eps keeps the
  // gradient bounded while the features are still ~0 (gates start at tanh(0) = 0).
  const unit = rmsNorm(centred, null, 1e-4);
  const gram = scale(matmul(unit, transpose(unit, 0, 1)), 1 / d);
  const diff = sub(gram, new Tensor(target, [N, N]));
  return mean(mul(diff, diff));
}
