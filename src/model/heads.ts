/** Multi-head layout helpers: (B, L, H·D) ⇄ (B, H, L, D). */
import { Tensor } from '../engine/tensor.ts';
import { reshape, permute } from '../engine/index.ts';

export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, L, W] = x.shape as [number, number, number];
  return permute(reshape(x, [B, L, heads, W / heads]), [0, 2, 1, 3]);
}

export function mergeHeads(x: Tensor): Tensor {
  const [B, H, L, D] = x.shape as [number, number, number, number];
  return reshape(permute(x, [0, 2, 1, 3]), [B, L, H * D]);
}
