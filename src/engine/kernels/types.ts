/**
 * The kernel interface: every numeric loop the engine runs goes through one of these methods.
 * Two implementations exist: `native` (C++ addon over OpenBLAS, multithreaded) and `typescript`
 * (portable; the oracle in tests). Ops in `src/engine/ops/` never loop over big buffers themselves
 * except for cheap gathers/broadcasts; they call a `Kernels`.
 *
 * Conventions (all kernels):
 * - Buffers are row-major, contiguous, float32 unless said otherwise. A buffer argument may be a
 *   `subarray` view; kernels honour its byteOffset.
 * - "rows × cols" kernels treat the buffer as `rows` rows of `cols` contiguous elements.
 * - Output buffers may alias their input where noted ("in place allowed").
 * - Gradient outputs named `d…` are WRITTEN (overwritten) unless documented as accumulated (+=).
 */

import type { PackedWeight } from '../quant.ts';

export type Activation = 'gelu' | 'gelu_tanh' | 'quick_gelu' | 'silu' | 'tanh' | 'relu' | 'sigmoid';

/** Batched GEMM: `count` independent products; matrix i of A starts at i*strideA (stride 0 broadcasts). */
export interface GemmBatch {
  count: number;
  strideA: number;
  strideB: number;
  strideC: number;
}

export interface Kernels {
  /** 'native' or 'typescript'. */
  readonly name: 'native' | 'typescript';
  /** Human-readable detail, e.g. "native (OpenBLAS 0.3.21, 2 threads)". Logged once at startup. */
  readonly description: string;

  /**
   * C = alpha · op(A) · op(B) + beta · C, row-major. op(A) is m×k, op(B) is k×n, C is m×n.
   * A is stored m×k (k×m when transA), B is stored k×n (n×k when transB); no padding
   * (lda = transA ? m : k, ldb = transB ? k : n, ldc = n). beta = 0 must ignore C's old
   * contents (even NaN).
   */
  gemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number,
    alpha: number, a: Float32Array, b: Float32Array, beta: number, c: Float32Array,
    batch?: GemmBatch,
  ): void;

  /** out[r,:] = softmax(x[r,:]) (numerically stable, max-subtracted). In place allowed. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** dx = y ⊙ (dy − Σ(dy ⊙ y)) per row. */
  softmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void;
  /** out[r,:] = x[r,:] − logsumexp(x[r,:]). In place allowed. */
  logSoftmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** y = logSoftmax output. dx = dy − exp(y) · Σ dy per row. */
  logSoftmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void;

  /**
   * Attention softmax over scores laid out (batch, heads, lq, lk), already scaled.
   * A key j is visible to query i of batch b iff
   *   (mask === null || mask[b*maskBatchStride + i*maskQStride + j] !== 0) and
   *   (!causal || j <= i + causalOffset).
   * The mask is shared by all heads. maskQStride = 0 gives a key-padding mask (batch, lk);
   * maskBatchStride = 0 shares one mask across the batch.
   * Rows with no visible key: all zeros if !uniformIfFullyMasked, else 1/lk everywhere
   * (PyTorch's behaviour after masked_fill(-finfo.max)). Masked entries are exactly 0 otherwise.
   * In place allowed.
   */
  maskedSoftmax(
    x: Float32Array, out: Float32Array, batch: number, heads: number, lq: number, lk: number,
    mask: Uint8Array | null, maskBatchStride: number, maskQStride: number,
    causal: boolean, causalOffset: number, uniformIfFullyMasked: boolean,
  ): void;
  /**
   * Backward of maskedSoftmax: dx = y ⊙ (dy − Σ(dy ⊙ y)) on visible entries, 0 on masked entries
   * and on every entry of a fully masked row (masked scores are constants; they get no gradient).
   * In place (dx === dy) allowed.
   */
  maskedSoftmaxBackward(
    y: Float32Array, dy: Float32Array, dx: Float32Array, batch: number, heads: number, lq: number, lk: number,
    mask: Uint8Array | null, maskBatchStride: number, maskQStride: number,
    causal: boolean, causalOffset: number,
  ): void;

  /**
   * ALiBi position bias, in place on scores laid out (batch, heads, lq, lk):
   *   x[b,h,i,j] += slopes[h] · (j − (i + qOffset))
   * (query i sits at absolute position i + qOffset, e.g. after a KV cache of qOffset keys).
   */
  alibiBias(x: Float32Array, batch: number, heads: number, lq: number, lk: number, slopes: Float32Array, qOffset: number): void;
  /** Gradient of alibiBias with respect to the slopes: dslopes[h] += Σ_{b,i,j} dx[b,h,i,j] · (j − (i + qOffset)). */
  alibiBiasBackward(dx: Float32Array, batch: number, heads: number, lq: number, lk: number, qOffset: number, dslopes: Float32Array): void;

  /**
   * LayerNorm over the last axis: out = (x − mean) · rstd · w + b (w, b optional → 1, 0).
   * Saves per-row mean and rstd = 1/sqrt(var + eps) (biased variance) for backward.
   */
  layerNorm(
    x: Float32Array, w: Float32Array | null, b: Float32Array | null, out: Float32Array,
    mean: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number,
  ): void;
  /** dx written; dw, db ACCUMULATED (+=) when non-null. */
  layerNormBackward(
    x: Float32Array, w: Float32Array | null, mean: Float32Array, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array, dw: Float32Array | null, db: Float32Array | null, rows: number, cols: number,
  ): void;

  /** RMSNorm: out = w ⊙ x · rstd, rstd = 1/sqrt(mean(x²) + eps) saved per row. w optional → 1. */
  rmsNorm(
    x: Float32Array, w: Float32Array | null, out: Float32Array, rstd: Float32Array,
    rows: number, cols: number, eps: number,
  ): void;
  /** dx written; dw ACCUMULATED (+=) when non-null. */
  rmsNormBackward(
    x: Float32Array, w: Float32Array | null, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array, dw: Float32Array | null, rows: number, cols: number,
  ): void;

  /**
   * Elementwise activation, n elements. gelu = exact erf GELU; gelu_tanh = tanh approximation;
   * quick_gelu = x·σ(1.702x); silu = x·σ(x). In place allowed.
   */
  activation(kind: Activation, x: Float32Array, out: Float32Array, n: number): void;
  /** dx = dy ⊙ f'(x) (x is the activation's INPUT). */
  activationBackward(kind: Activation, x: Float32Array, dy: Float32Array, dx: Float32Array, n: number): void;

  /**
   * Fused SwiGLU gate: out = silu(gate) ⊙ up, n elements (LLaMA MLP). In place into out allowed.
   */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /** dgate, dup written. */
  swigluBackward(
    gate: Float32Array, up: Float32Array, dy: Float32Array, dgate: Float32Array, dup: Float32Array, n: number,
  ): void;

  /**
   * Cross-entropy per row: losses[r] = logsumexp(logits[r]) − logits[r, t] with t = targets[r],
   * or 0 when t === ignoreIndex. lse[r] saved for backward. Targets outside [0, cols) other than
   * ignoreIndex are the caller's error (checked before the call).
   */
  crossEntropy(
    logits: Float32Array, targets: Int32Array, rows: number, cols: number, ignoreIndex: number,
    losses: Float32Array, lse: Float32Array,
  ): void;
  /** dlogits[r] = scale · (softmax(logits[r]) − onehot(t)); 0 for ignored rows. Written. */
  crossEntropyBackward(
    logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, cols: number,
    ignoreIndex: number, scale: number, dlogits: Float32Array,
  ): void;

  /**
   * Rotary position embedding (Hugging Face LLaMA layout, rotate_half) on x laid out
   * (batch, seq, heads, dim); positions is (batch, seq). inv_freq_i = theta^(−2i/dim),
   * angle = pos · inv_freq_i for i < dim/2, repeated for the second half.
   * out = x·cos + rotate_half(x)·sin; inverse = true applies the transpose rotation
   * (x·cos − rotate_half(x)·sin), which is the backward. In place allowed.
   */
  rope(
    x: Float32Array, out: Float32Array, batch: number, seq: number, heads: number, dim: number,
    positions: Int32Array, theta: number, inverse: boolean,
  ): void;

  /**
   * AdamW (decoupled weight decay, PyTorch semantics), in place on param, m, v:
   * p −= lr·wd·p; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
   * p −= lr · (m / (1−β1^step)) / (sqrt(v / (1−β2^step)) + eps). step is 1-based.
   */
  adamw(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
  ): void;

  /**
   * out (B, C, A, D) = x (B, A, C, D) with the middle axes swapped: the attention head split and merge.
   * Rows of D elements are copied whole. No aliasing.
   */
  swapMiddleAxes(x: Float32Array, out: Float32Array, B: number, A: number, C: number, D: number): void;

  /**
   * out (rows × W.rows) = x (rows × W.cols) · dequant(W)ᵀ (+ out when beta = 1), W a packed
   * (bf16 / int8) weight read directly — never expanded to a float32 copy of the matrix. beta is 0
   * or 1 (1: out holds the bias rows). The result equals the float32 product with the dequantised
   * weight up to summation order.
   */
  packedLinear(x: Float32Array, w: PackedWeight, out: Float32Array, rows: number, beta: number): void;
  /** dx (rows × W.cols) = g (rows × W.rows) · dequant(W); dx written. */
  packedLinearBackward(g: Float32Array, w: PackedWeight, dx: Float32Array, rows: number): void;

  /** bits[i] = bfloat16(src[i]), round to nearest even (quant.ts). */
  quantizeBf16(src: Float32Array, bits: Uint16Array, n: number): void;
  /** Q8_0-style int8 blocks of 32 along each row (quant.ts); throws on a non-finite weight. */
  quantizeInt8(src: Float32Array, qs: Int8Array, scales: Float32Array, rows: number, cols: number): void;

  /** y += alpha · x (n elements). */
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;
  /** out = a ⊙ b (n elements). In place allowed. */
  mul(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  /** out = a + b (n elements). In place allowed. */
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  /** Σ x² in float64 accumulation (gradient clipping). */
  sumSquares(x: Float32Array, n: number): number;
}
