/**
 * Contrastive vision–text pretraining (paper §A.2.1; CLIP): the ViT's pooled embedding and the text tower's
 * end-of-text embedding (src/model/clip.ts) are L2-normalised and compared with a learnable temperature;
 * the loss is the mean of image→text and text→image cross-entropy over the batch.
 */
import type { Tensor } from '../engine/tensor.ts';
import { intTensor } from '../engine/tensor.ts';
import { add, crossEntropy, exp, log, matmul, mul, scale, sum, transpose, affine } from '../engine/index.ts';

/** x / ‖x‖ along the last axis. */
export function l2normalize(x: Tensor, eps = 1e-12): Tensor {
  const ss = sum(mul(x, x), -1, true);
  return mul(x, exp(scale(log(affine(ss, 1, eps)), -0.5)));
}

/** Symmetric InfoNCE: image i matches text i. Returns the loss and the logits (B, B). */
export function clipLoss(imageEmb: Tensor, textEmb: Tensor, logitScale: Tensor): { loss: Tensor; logits: Tensor } {
  const B = imageEmb.shape[0]!;
  const logits = mul(matmul(l2normalize(imageEmb), l2normalize(textEmb), false, true), exp(logitScale));
  const labels = intTensor(Array.from({ length: B }, (_, i) => i), [B]);
  const loss = scale(add(crossEntropy(logits, labels), crossEntropy(transpose(logits, 0, 1), labels)), 0.5);
  return { loss, logits };
}
