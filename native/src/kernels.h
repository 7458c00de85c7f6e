// Fused, memory-bound kernels. Semantics match src/engine/kernels/types.ts exactly; argument
// lengths are validated by the caller (addon.cc) before these run.
#pragma once
#include <cstdint>

namespace flamingo {

enum class Act : int { Gelu = 0, GeluTanh = 1, QuickGelu = 2, Silu = 3, Tanh = 4, Relu = 5, Sigmoid = 6 };

void softmax(const float* x, float* out, int64_t rows, int64_t cols);
void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);
void log_softmax(const float* x, float* out, int64_t rows, int64_t cols);
void log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);

struct MaskSpec {
  int64_t batch, heads, lq, lk;
  const uint8_t* mask;  // may be null
  int64_t maskBatchStride, maskQStride;
  bool causal;
  int64_t causalOffset;
};
void masked_softmax(const float* x, float* out, const MaskSpec& s, bool uniformIfFullyMasked);
void masked_softmax_backward(const float* y, const float* dy, float* dx, const MaskSpec& s);

// ALiBi: scores (batch, heads, lq, lk) += slope[h] * (j - (i + qOffset)), in place; and the slopes'
// gradient dslope[h] += sum over b, i, j of dscores * (j - (i + qOffset)).
void alibi_bias(float* x, int64_t batch, int64_t heads, int64_t lq, int64_t lk, const float* slopes, int64_t qOffset);
void alibi_bias_backward(const float* dx, int64_t batch, int64_t heads, int64_t lq, int64_t lk, int64_t qOffset,
                         float* dslopes);

void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps);
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, int64_t rows, int64_t cols);
void rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t cols, float eps);
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t cols);

void activation(Act kind, const float* x, float* out, int64_t n);
void activation_backward(Act kind, const float* x, const float* dy, float* dx, int64_t n);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n);

void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, int32_t ignoreIndex,
                   float* losses, float* lse);
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t rows,
                            int64_t cols, int32_t ignoreIndex, float scale, float* dlogits);

void rope(const float* x, float* out, int64_t batch, int64_t seq, int64_t heads, int64_t dim,
          const int32_t* positions, double theta, bool inverse);

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weightDecay, double step);

void axpy(float alpha, const float* x, float* y, int64_t n);
// out (B, C, A, D) = x (B, A, C, D): whole rows of D floats.
void swap_middle_axes(const float* x, float* out, int64_t B, int64_t A, int64_t C, int64_t D);
void mul(const float* a, const float* b, float* out, int64_t n);
void add(const float* a, const float* b, float* out, int64_t n);
double sum_squares(const float* x, int64_t n);

}  // namespace flamingo
