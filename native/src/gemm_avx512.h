// The project's AVX-512 single-precision GEMM (BLIS/Goto-style: packed panels of op(A) and op(B),
// cache blocking for the core's L1/L2, a register-blocked micro-kernel). Compiled with per-function
// target attributes, so the addon still loads on CPUs without AVX-512; call it only when
// avx512_gemm_available() is true. Row-major with explicit leading dimensions; alpha/beta as BLAS
// (beta = 0 never reads C, so NaN there is ignored).
#pragma once
#include <cstdint>

namespace flamingo {

// Whether the CPU has what the kernel needs (AVX-512 F/BW/DQ/VL) — a run-time check.
bool avx512_gemm_available();

// C (m×n, ldc) = alpha·op(A)·op(B) + beta·C on the calling thread. op(A) is m×k: A is m×k (lda ≥ k),
// or k×m when tA (lda ≥ m); op(B) is k×n: B is k×n (ldb ≥ n), or n×k when tB (ldb ≥ k).
void sgemm_avx512_st(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                     const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same product split over the project's pool (run inline when called from inside a pool job).
void sgemm_avx512(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

struct PackedW;
// C (m × n, ldc) = A (m × W.cols, lda) · dequant(W[row0 : row0 + n, :])ᵀ + beta·C on the calling
// thread, for a bf16 / int8 W (quant.h): op(B) is dequantised while it is packed, so no float32
// copy of W is written first. Bit-identical to sgemm_avx512_st on the dequantised rows.
void sgemm_avx512_packed_st(int64_t m, int64_t n, const float* a, int64_t lda, const PackedW& w, int64_t row0, float beta,
                            float* c, int64_t ldc);

// The micro-kernel's register tile (rows × columns of C), for the backend description.
int avx512_gemm_mr();
int avx512_gemm_nr();

}  // namespace flamingo
