/**
 * Fused scaled-dot-product attention, one node on the tape:
 *   S = scale · Q Kᵀ,  P = masked_softmax(S),  O = P V
 * backward:
 *   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)) on visible entries,
 *   dQ = scale · dS K,  dK = scale · dSᵀ Q.
 * Only P is kept for backward (no separate score tensor).
 *
 * Optional ALiBi bias (Press et al.; MPT): S[b,h,i,j] += slope_h · (j − (i + causalOffset)) before the
 * softmax. The bias is constant in q, k, v, so their gradients are unchanged; the slopes get
 *   dslope_h = Σ dS[b,h,i,j] · (j − (i + causalOffset)).
 */
import { Tensor, ShapeError, emptyF32, fmtShape } from '../tensor.ts';
import { accumulateGrad, isGradEnabled, record } from '../autograd.ts';
import { backend } from '../backend.ts';
import { releaseF32 } from '../buffer-pool.ts';

/** Boolean visibility mask (1 = may attend), shared by all heads. */
export interface AttentionMask {
  data: Uint8Array;
  /** Elements between consecutive batch items (0 = one mask for the whole batch). */
  batchStride: number;
  /** Elements between consecutive query rows (0 = key-padding mask). */
  qStride: number;
}

export interface AttentionOptions {
  mask?: AttentionMask | null;
  causal?: boolean;
  /** Query i sits at absolute position i + causalOffset (KV cache: the number of cached keys). */
  causalOffset?: number;
  /** Defaults to 1/sqrt(head_dim). */
  scale?: number;
  /** Rows with no visible key: uniform weights (PyTorch masked_fill(-max) behaviour) instead of zeros. */
  uniformIfFullyMasked?: boolean;
  /** ALiBi slopes (H): adds slope_h · (j − (i + causalOffset)) to the scores of head h. */
  alibiSlopes?: Tensor | null;
  /**
   * Attend over the first keyLength positions of k and v only (a KV-cache buffer with room to grow
   * along axis 2). Inference only: throws when a gradient would be needed.
   */
  keyLength?: number;
}

/** q: (B, H, Lq, D), k: (B, H, Lk, D), v: (B, H, Lk, Dv) → (B, H, Lq, Dv). */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new ShapeError('attention', `expects 4-D (B, H, L, D) q, k, v; got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  }
  const [B, H, Lq, D] = q.shape as [number, number, number, number];
  // Ck: positions per (b, h) slot of k and v; Lk ≤ Ck of them are attended to
  const Ck = k.shape[2]!;
  const Lk = opts.keyLength ?? Ck;
  const Dv = v.shape[3]!;
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D || v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== Ck) {
    throw new ShapeError('attention', `incompatible q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  }
  if (!Number.isInteger(Lk) || Lk < 0 || Lk > Ck) throw new ShapeError('attention', `keyLength ${Lk} outside [0, ${Ck}] for k ${fmtShape(k.shape)}`);
  if (Lk !== Ck && isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad)) {
    throw new ShapeError('attention', `keyLength ${Lk} < ${Ck} positions is for inference; it has no gradient`);
  }
  const mask = opts.mask ?? null;
  if (mask) {
    const need = (B - 1) * mask.batchStride + (Lq - 1) * mask.qStride + Lk;
    if (mask.data.length < need) throw new ShapeError('attention', `mask of length ${mask.data.length} too short for B=${B}, Lq=${Lq}, Lk=${Lk}`);
  }
  const causal = opts.causal ?? false;
  const offset = opts.causalOffset ?? 0;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const uniform = opts.uniformIfFullyMasked ?? false;
  const slopes = opts.alibiSlopes ?? null;
  if (slopes && (slopes.ndim !== 1 || slopes.shape[0] !== H)) throw new ShapeError('attention', `alibiSlopes ${fmtShape(slopes.shape)} must be (${H})`);
  const kern = backend();
  const Q = q.f32;
  const K = k.f32;
  const V = v.f32;
  const BH = B * H;
  const P = emptyF32(BH * Lq * Lk);
  kern.gemm(false, true, Lq, Lk, D, scale, Q, K, 0, P, { count: BH, strideA: Lq * D, strideB: Ck * D, strideC: Lq * Lk });
  if (slopes) kern.alibiBias(P, B, H, Lq, Lk, slopes.f32, offset);
  kern.maskedSoftmax(P, P, B, H, Lq, Lk, mask ? mask.data : null, mask ? mask.batchStride : 0, mask ? mask.qStride : 0, causal, offset, uniform);
  const O = emptyF32(BH * Lq * Dv);
  kern.gemm(false, false, Lq, Dv, Lk, 1, P, V, 0, O, { count: BH, strideA: Lq * Lk, strideB: Ck * Dv, strideC: Lq * Dv });
  const qs = q.slot;
  const ks = k.slot;
  const vs = v.slot;
  const ss = slopes === null ? null : slopes.slot;
  const out = record(new Tensor(O, [B, H, Lq, Dv]), 'attention', slopes ? [q, k, v, slopes] : [q, k, v], (g) => {
    const kk = backend();
    if (vs.requiresGrad) {
      const dV = emptyF32(vs.size);
      kk.gemm(true, false, Lk, Dv, Lq, 1, P, g, 0, dV, { count: BH, strideA: Lq * Lk, strideB: Lq * Dv, strideC: Lk * Dv });
      accumulateGrad(vs, dV);
    }
    const slopesGrad = ss !== null && ss.requiresGrad;
    if (!qs.requiresGrad && !ks.requiresGrad && !slopesGrad) {
      releaseF32(P);
      return;
    }
    const dS = emptyF32(BH * Lq * Lk);
    kk.gemm(false, true, Lq, Lk, Dv, 1, g, V, 0, dS, { count: BH, strideA: Lq * Dv, strideB: Lk * Dv, strideC: Lq * Lk });
    kk.maskedSoftmaxBackward(P, dS, dS, B, H, Lq, Lk, mask ? mask.data : null, mask ? mask.batchStride : 0, mask ? mask.qStride : 0, causal, offset);
    if (qs.requiresGrad) {
      const dQ = emptyF32(qs.size);
      kk.gemm(false, false, Lq, D, Lk, scale, dS, K, 0, dQ, { count: BH, strideA: Lq * Lk, strideB: Lk * D, strideC: Lq * D });
      accumulateGrad(qs, dQ);
    }
    if (ks.requiresGrad) {
      const dK = emptyF32(ks.size);
      kk.gemm(true, false, Lk, D, Lq, scale, dS, Q, 0, dK, { count: BH, strideA: Lq * Lk, strideB: Lq * D, strideC: Lk * D });
      accumulateGrad(ks, dK);
    }
    if (slopesGrad) {
      const dSl = new Float32Array(H);
      kk.alibiBiasBackward(dS, B, H, Lq, Lk, offset, dSl);
      accumulateGrad(ss!, dSl);
    }
    // Only this closure holds P, and a backward pass that drops the graph never calls it again.
    releaseF32(P);
    releaseF32(dS);
  });
  if (out.node === null) releaseF32(P); // no backward will read it (inside a pooled no-grad scope: reused)
  return out;
}
