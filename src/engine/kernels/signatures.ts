/**
 * The one declaration of every kernel's signature. Adding a kernel means: an entry here, its
 * TypeScript oracle (a function in `ts/`, dispatched from `ts.ts`), its C++ body in `native/src/`,
 * and `npm run gen:kernels`.
 *
 * From this table derive:
 * - the `Kernels` type (`types.ts`), by mapping each argument's `type` to a TypeScript type;
 * - the native addon's argument unpacking and checks (`native/src/bindings.gen.inc`) and the
 *   thin TypeScript binding over the addon (`native-bindings.gen.ts`), and the TypeScript kernels'
 *   argument checks (`ts-checks.gen.ts`: the same sizes and conditions), all written by
 *   `tools/gen-kernel-bindings.ts` and checked in; `test/kernel-signatures.test.ts` fails when
 *   they are out of date.
 *
 * Argument types. Buffers: `f32` Float32Array, `i32` Int32Array, `u16` Uint16Array, `i8` Int8Array,
 * a trailing `?` allows null. Numbers: `dim` (non-negative integer ≤ 2^40, C++ int64), `int`
 * (integer, int64), `float` (C++ float), `double`; `bool`. Structured (lowered to several native
 * arguments by the binding, so no object is read across the N-API boundary):
 * `act` (an Activation name → its code), `packed` (a PackedWeight → kind, data, scales, rows, cols),
 * `batch?` (an optional trailing GemmBatch → count, strideA, strideB, strideC; absent = 1, 0, 0, 0).
 *
 * `len` is the minimum element count of a buffer, a C++ expression over the other arguments
 * (evaluated in double, so products never overflow; `w.rows` / `w.cols` name a packed weight's
 * shape; `q8_blocks(c)` is the int8 scale blocks per row); `when` guards it. A nullable buffer is
 * only checked when present. `checks` are further C++ conditions with the error they raise (`f64(x)`
 * is x as a double, for products that could overflow int64). `call`
 * replaces the default native call `snake_name(arg, …)` (a C++ expression over the arguments).
 *
 * Conventions (all kernels):
 * - Buffers are row-major, contiguous, float32 unless said otherwise. A buffer argument may be a
 *   `subarray` view; kernels honour its byteOffset.
 * - "rows × cols" kernels treat the buffer as `rows` rows of `cols` contiguous elements.
 * - Output buffers may alias their input where noted ("in place allowed").
 * - Gradient outputs named `d…` are WRITTEN (overwritten) unless documented as accumulated (+=).
 */

export type ArgType =
  | 'f32' | 'f32?' | 'i32' | 'u8?' | 'u16' | 'i8'
  | 'dim' | 'int' | 'float' | 'double' | 'bool'
  | 'act' | 'packed' | 'batch?';

export interface ArgSpec {
  readonly name: string;
  readonly type: ArgType;
  readonly len?: string;
  readonly when?: string;
}

export interface KernelSpec {
  readonly args: readonly ArgSpec[];
  readonly returns?: 'number';
  readonly checks?: ReadonlyArray<readonly [condition: string, message: string]>;
  readonly call?: string;
}

const buf = <T extends ArgType>(type: T) => <N extends string>(name: N, len: string, when?: string) =>
  ({ name, type, len, ...(when === undefined ? {} : { when }) }) as const;
const scalar = <T extends ArgType>(type: T) => <N extends string>(name: N) => ({ name, type }) as const;
const f32 = buf('f32');
const f32opt = buf('f32?');
const i32 = buf('i32');
const u8opt = buf('u8?');
const u16 = buf('u16');
const i8 = buf('i8');
const dim = scalar('dim');
const int = scalar('int');
const float = scalar('float');
const double = scalar('double');
const bool = scalar('bool');
const act = scalar('act');
const packed = scalar('packed');
const batch = scalar('batch?');

const ROWS_COLS = 'rows * cols';
const CNT = 'batch * heads * lq * lk';
const COLS_POSITIVE = ['cols > 0 || rows == 0', 'cols must be > 0'] as const;
/** The visible-key mask of the attention softmax (see maskedSoftmax). */
const MASK_ARGS = [
  dim('batch'), dim('heads'), dim('lq'), dim('lk'),
  u8opt('mask', '(batch - 1) * maskBatchStride + (lq - 1) * maskQStride + lk', 'batch > 0 && lq > 0 && lk > 0'),
  dim('maskBatchStride'), dim('maskQStride'), bool('causal'), int('causalOffset'),
] as const;
const MASK_SPEC = 'MaskSpec{batch, heads, lq, lk, mask, maskBatchStride, maskQStride, causal, causalOffset}';
const GEMM_ARGS = [
  bool('transA'), bool('transB'), dim('m'), dim('n'), dim('k'), float('alpha'),
  f32('a', '(count - 1) * strideA + m * k', 'count > 0'), f32('b', '(count - 1) * strideB + k * n', 'count > 0'),
  float('beta'), f32('c', '(count - 1) * strideC + m * n', 'count > 0'), batch('batch'),
] as const;
const GEMM_CHECKS = [['count <= 1 || f64(strideC) >= f64(m) * f64(n)', 'batch.strideC is smaller than m*n (outputs would overlap)']] as const;
const gemmCall = (fn: string): string =>
  `if (count > 0) ${fn}(GemmArgs{transA, transB, m, n, k, alpha, beta, a, b, c, count, strideA, strideB, strideC})`;

/** The kernels every backend implements (`Kernels`). */
export const KERNEL_SIGNATURES = {
  /**
   * C = alpha · op(A) · op(B) + beta · C, row-major. op(A) is m×k, op(B) is k×n, C is m×n.
   * A is stored m×k (k×m when transA), B is stored k×n (n×k when transB); no padding
   * (lda = transA ? m : k, ldb = transB ? k : n, ldc = n). beta = 0 must ignore C's old
   * contents (even NaN). `batch`: `count` independent products; matrix i of A starts at
   * i*strideA (stride 0 broadcasts), likewise B and C.
   */
  gemm: { args: GEMM_ARGS, checks: GEMM_CHECKS, call: gemmCall('gemm') },

  /** out[r,:] = softmax(x[r,:]) (numerically stable, max-subtracted). In place allowed. */
  softmax: { args: [f32('x', ROWS_COLS), f32('out', ROWS_COLS), dim('rows'), dim('cols')] },
  /** dx = y ⊙ (dy − Σ(dy ⊙ y)) per row. */
  softmaxBackward: {
    args: [f32('y', ROWS_COLS), f32('dy', ROWS_COLS), f32('dx', ROWS_COLS), dim('rows'), dim('cols')],
  },
  /** out[r,:] = x[r,:] − logsumexp(x[r,:]). In place allowed. */
  logSoftmax: { args: [f32('x', ROWS_COLS), f32('out', ROWS_COLS), dim('rows'), dim('cols')] },
  /** y = logSoftmax output. dx = dy − exp(y) · Σ dy per row. */
  logSoftmaxBackward: {
    args: [f32('y', ROWS_COLS), f32('dy', ROWS_COLS), f32('dx', ROWS_COLS), dim('rows'), dim('cols')],
  },

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
  maskedSoftmax: {
    args: [f32('x', CNT), f32('out', CNT), ...MASK_ARGS, bool('uniformIfFullyMasked')],
    call: `masked_softmax(x, out, ${MASK_SPEC}, uniformIfFullyMasked)`,
  },
  /**
   * Backward of maskedSoftmax: dx = y ⊙ (dy − Σ(dy ⊙ y)) on visible entries, 0 on masked entries
   * and on every entry of a fully masked row (masked scores are constants; they get no gradient).
   * In place (dx === dy) allowed.
   */
  maskedSoftmaxBackward: {
    args: [f32('y', CNT), f32('dy', CNT), f32('dx', CNT), ...MASK_ARGS],
    call: `masked_softmax_backward(y, dy, dx, ${MASK_SPEC})`,
  },

  /**
   * ALiBi position bias, in place on scores laid out (batch, heads, lq, lk):
   *   x[b,h,i,j] += slopes[h] · (j − (i + qOffset))
   * (query i sits at absolute position i + qOffset, e.g. after a KV cache of qOffset keys).
   */
  alibiBias: {
    args: [f32('x', CNT), dim('batch'), dim('heads'), dim('lq'), dim('lk'), f32('slopes', 'heads'), int('qOffset')],
  },
  /** Gradient of alibiBias with respect to the slopes: dslopes[h] += Σ_{b,i,j} dx[b,h,i,j] · (j − (i + qOffset)). */
  alibiBiasBackward: {
    args: [f32('dx', CNT), dim('batch'), dim('heads'), dim('lq'), dim('lk'), int('qOffset'), f32('dslopes', 'heads')],
  },

  /**
   * LayerNorm over the last axis: out = (x − mean) · rstd · w + b (w, b optional → 1, 0).
   * Saves per-row mean and rstd = 1/sqrt(var + eps) (biased variance) for backward.
   */
  layerNorm: {
    args: [
      f32('x', ROWS_COLS), f32opt('w', 'cols'), f32opt('b', 'cols'), f32('out', ROWS_COLS),
      f32('mean', 'rows'), f32('rstd', 'rows'), dim('rows'), dim('cols'), float('eps'),
    ],
    checks: [COLS_POSITIVE],
  },
  /** dx written; dw, db ACCUMULATED (+=) when non-null. */
  layerNormBackward: {
    args: [
      f32('x', ROWS_COLS), f32opt('w', 'cols'), f32('mean', 'rows'), f32('rstd', 'rows'), f32('dy', ROWS_COLS),
      f32('dx', ROWS_COLS), f32opt('dw', 'cols'), f32opt('db', 'cols'), dim('rows'), dim('cols'),
    ],
    checks: [COLS_POSITIVE],
  },

  /** RMSNorm: out = w ⊙ x · rstd, rstd = 1/sqrt(mean(x²) + eps) saved per row. w optional → 1. */
  rmsNorm: {
    args: [
      f32('x', ROWS_COLS), f32opt('w', 'cols'), f32('out', ROWS_COLS), f32('rstd', 'rows'),
      dim('rows'), dim('cols'), float('eps'),
    ],
    checks: [COLS_POSITIVE],
  },
  /** dx written; dw ACCUMULATED (+=) when non-null. */
  rmsNormBackward: {
    args: [
      f32('x', ROWS_COLS), f32opt('w', 'cols'), f32('rstd', 'rows'), f32('dy', ROWS_COLS),
      f32('dx', ROWS_COLS), f32opt('dw', 'cols'), dim('rows'), dim('cols'),
    ],
    checks: [COLS_POSITIVE],
  },

  /**
   * Elementwise activation, n elements. gelu = exact erf GELU; gelu_tanh = tanh approximation;
   * quick_gelu = x·σ(1.702x); silu = x·σ(x). In place allowed.
   */
  activation: { args: [act('kind'), f32('x', 'n'), f32('out', 'n'), dim('n')] },
  /** dx = dy ⊙ f'(x) (x is the activation's INPUT). */
  activationBackward: { args: [act('kind'), f32('x', 'n'), f32('dy', 'n'), f32('dx', 'n'), dim('n')] },

  /** Fused SwiGLU gate: out = silu(gate) ⊙ up, n elements (LLaMA MLP). In place into out allowed. */
  swiglu: { args: [f32('gate', 'n'), f32('up', 'n'), f32('out', 'n'), dim('n')] },
  /** dgate, dup written. */
  swigluBackward: {
    args: [f32('gate', 'n'), f32('up', 'n'), f32('dy', 'n'), f32('dgate', 'n'), f32('dup', 'n'), dim('n')],
  },

  /**
   * Cross-entropy per row: losses[r] = logsumexp(logits[r]) − logits[r, t] with t = targets[r],
   * or 0 when t === ignoreIndex. lse[r] saved for backward. Targets outside [0, cols) other than
   * ignoreIndex are the caller's error (checked before the call).
   */
  crossEntropy: {
    args: [
      f32('logits', ROWS_COLS), i32('targets', 'rows'), dim('rows'), dim('cols'), int('ignoreIndex'),
      f32('losses', 'rows'), f32('lse', 'rows'),
    ],
    checks: [COLS_POSITIVE],
  },
  /** dlogits[r] = scale · (softmax(logits[r]) − onehot(t)); 0 for ignored rows. Written. */
  crossEntropyBackward: {
    args: [
      f32('logits', ROWS_COLS), i32('targets', 'rows'), f32('lse', 'rows'), dim('rows'), dim('cols'),
      int('ignoreIndex'), float('scale'), f32('dlogits', ROWS_COLS),
    ],
  },

  /**
   * Rotary position embedding (Hugging Face LLaMA layout, rotate_half) on x laid out
   * (batch, seq, heads, dim); positions is (batch, seq). inv_freq_i = theta^(−2i/dim),
   * angle = pos · inv_freq_i for i < dim/2, repeated for the second half.
   * out = x·cos + rotate_half(x)·sin; inverse = true applies the transpose rotation
   * (x·cos − rotate_half(x)·sin), which is the backward. In place allowed.
   */
  rope: {
    args: [
      f32('x', 'batch * seq * heads * dim'), f32('out', 'batch * seq * heads * dim'), dim('batch'), dim('seq'),
      dim('heads'), dim('dim'), i32('positions', 'batch * seq'), double('theta'), bool('inverse'),
    ],
    checks: [['dim % 2 == 0', 'dim must be even']],
  },

  /**
   * AdamW (decoupled weight decay, PyTorch semantics), in place on param, m, v:
   * p −= lr·wd·p; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
   * p −= lr · (m / (1−β1^step)) / (sqrt(v / (1−β2^step)) + eps). step is 1-based.
   */
  adamw: {
    args: [
      f32('param', 'n'), f32('grad', 'n'), f32('m', 'n'), f32('v', 'n'), dim('n'), float('lr'), float('beta1'),
      float('beta2'), float('eps'), float('weightDecay'), double('step'),
    ],
    checks: [['step >= 1', 'step is 1-based']],
  },

  /**
   * out (B, C, A, D) = x (B, A, C, D) with the middle axes swapped: the attention head split and merge.
   * Rows of D elements are copied whole. No aliasing.
   */
  swapMiddleAxes: { args: [f32('x', 'B * A * C * D'), f32('out', 'B * A * C * D'), dim('B'), dim('A'), dim('C'), dim('D')] },

  /**
   * out (rows × W.rows) = x (rows × W.cols) · dequant(W)ᵀ (+ out when beta = 1), W a packed
   * (bf16 / int8) weight read directly — never expanded to a float32 copy of the matrix. beta is 0
   * or 1 (1: out holds the bias rows). The result equals the float32 product with the dequantised
   * weight up to summation order.
   */
  packedLinear: {
    args: [f32('x', 'rows * w.cols'), packed('w'), f32('out', 'rows * w.rows'), dim('rows'), double('beta')],
    checks: [['beta == 0 || beta == 1', 'beta must be 0 or 1']],
    call: 'packed_linear(x, w, out, rows, beta == 1)',
  },
  /** dx (rows × W.cols) = g (rows × W.rows) · dequant(W); dx written. */
  packedLinearBackward: { args: [f32('g', 'rows * w.rows'), packed('w'), f32('dx', 'rows * w.cols'), dim('rows')] },

  /** bits[i] = bfloat16(src[i]), round to nearest even (quant.ts). */
  quantizeBf16: { args: [f32('src', 'n'), u16('bits', 'n'), dim('n')] },
  /** Q8_0-style int8 blocks of 32 along each row (quant.ts); throws on a non-finite weight. */
  quantizeInt8: {
    args: [f32('src', ROWS_COLS), i8('qs', ROWS_COLS), f32('scales', 'rows * q8_blocks(cols)'), dim('rows'), dim('cols')],
    call: 'if (!quantize_int8(src, qs, scales, rows, cols)) in.fail("cannot quantise a non-finite weight")',
  },

  /** y += alpha · x (n elements). */
  axpy: { args: [float('alpha'), f32('x', 'n'), f32('y', 'n'), dim('n')] },
  /** out = a ⊙ b (n elements). In place allowed. */
  mul: { args: [f32('a', 'n'), f32('b', 'n'), f32('out', 'n'), dim('n')] },
  /** out = a + b (n elements). In place allowed. */
  add: { args: [f32('a', 'n'), f32('b', 'n'), f32('out', 'n'), dim('n')] },
  /** Σ x² in float64 accumulation (gradient clipping). */
  sumSquares: { args: [f32('x', 'n'), dim('n')], returns: 'number' },
} as const satisfies Record<string, KernelSpec>;

/** Native-only entry points (tests and benches reach them through `loadNativeAddon()`). */
export const NATIVE_ONLY_SIGNATURES = {
  /** Always the built-in blocked GEMM, even when OpenBLAS is linked (tests the fallback path). */
  gemmBuiltin: { args: GEMM_ARGS, checks: GEMM_CHECKS, call: gemmCall('gemm_builtin') },
  /** Always the direct small-matrix kernel. */
  gemmSmall: { args: GEMM_ARGS, checks: GEMM_CHECKS, call: gemmCall('gemm_small') },
  /**
   * C = alpha · op(A) · op(B) + beta · C with explicit leading dimensions (BLAS semantics, row-major:
   * row i of stored A starts at i*lda, likewise B and C), through the engine's GEMM choice (the
   * AVX-512 GEMM when the CPU has it, unless FLAMINGO_GEMM=openblas), threaded over the pool.
   */
  gemmLd: {
    args: [
      bool('transA'), bool('transB'), dim('m'), dim('n'), dim('k'), float('alpha'),
      f32('a', '((transA ? k : m) - 1) * lda + (transA ? m : k)', 'm > 0 && k > 0'), dim('lda'),
      f32('b', '((transB ? n : k) - 1) * ldb + (transB ? k : n)', 'n > 0 && k > 0'), dim('ldb'),
      float('beta'), f32('c', '(m - 1) * ldc + n', 'm > 0 && n > 0'), dim('ldc'),
    ],
    checks: [
      ['lda >= (transA ? m : k) && ldb >= (transB ? k : n) && ldc >= n', 'a leading dimension is shorter than its row'],
    ],
    call: 'sgemm_ld(true, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)',
  },
} as const satisfies Record<string, KernelSpec>;

/** The activation codes of the native addon (`Act` in native/src/kernels.h). */
export const ACTIVATION_CODES = {
  gelu: 0, gelu_tanh: 1, quick_gelu: 2, silu: 3, tanh: 4, relu: 5, sigmoid: 6,
} as const;
