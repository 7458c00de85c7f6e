// Products with packed frozen weights (src/engine/quant.ts): bf16, and int8 in blocks of 32 input
// weights with one float32 scale each (llama.cpp Q8_0 semantics). W is (outF × inF) row-major as
// in nn.Linear. Kernels read the packed storage directly: decode (few rows) converts weights in
// registers; prefill runs the AVX-512 GEMM, which dequantises W while packing it (or, without it,
// dequantises one panel of W per tile into a small per-thread buffer and runs an sgemm on it).
// Argument lengths are validated by the caller (addon.cc).
#pragma once
#include <cstdint>

namespace flamingo {

constexpr int64_t Q8_BLOCK = 32;

enum class Packing : int { Bf16 = 0, Int8 = 1, F32 = 2 };

struct PackedW {
  Packing kind;
  int64_t rows, cols;          // outF, inF
  const uint16_t* bits;        // bf16: rows × cols
  const int8_t* qs;            // int8: rows × cols
  const float* scales;         // int8: rows × ceil(cols / 32)
  const float* f32 = nullptr;  // F32 (only the decode kernel below): rows × cols
};

inline int64_t q8_blocks(int64_t cols) { return (cols + Q8_BLOCK - 1) / Q8_BLOCK; }

// out (rows × W.rows) = x (rows × W.cols) · dequant(W)ᵀ, + out when accumulate.
void packed_linear(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate);
// The same register kernel for a float32 W (outF × inF), rows ≤ 4: the decode steps' linear layers
// (gemm routes x · Wᵀ with few rows here instead of a BLAS gemv).
void gemv_f32(const float* x, const float* w, int64_t outF, int64_t inF, float* out, int64_t rows, bool accumulate);
constexpr int64_t GEMV_MAX_ROWS = 4;
// Whether those register kernels run AVX-512 (CPU check; FLAMINGO_SIMD=avx2 forces AVX2).
bool decode_uses_avx512();
// dx (rows × W.cols) = g (rows × W.rows) · dequant(W).
void packed_linear_backward(const float* g, const PackedW& w, float* dx, int64_t rows);

// Load-time packing (same rounding as quant.ts): bf16 round-to-nearest-even; int8 d = max|w|/127,
// q = round-half-away(w / d). Returns false if a block holds a non-finite value.
void quantize_bf16(const float* src, uint16_t* bits, int64_t n);
bool quantize_int8(const float* src, int8_t* qs, float* scales, int64_t rows, int64_t cols);

}  // namespace flamingo
