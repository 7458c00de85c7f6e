// GEMM entry points. Row-major, no padding: lda = transA ? m : k, ldb = transB ? k : n, ldc = n.
#pragma once
#include <cstdint>
#include <string>

namespace flamingo {

struct GemmArgs {
  bool transA, transB;
  int64_t m, n, k;
  float alpha, beta;
  const float* a;
  const float* b;
  float* c;
  int64_t count = 1, strideA = 0, strideB = 0, strideC = 0;
};

// Dispatches: tiny batched products → direct small kernel over the pool; else OpenBLAS when
// linked, else the built-in blocked GEMM.
void gemm(const GemmArgs& g);
// Always the built-in blocked GEMM (exposed for tests of the non-BLAS path).
void gemm_builtin(const GemmArgs& g);
// Always the direct small kernel.
void gemm_small(const GemmArgs& g);

// C (m×n, ldc) = alpha·op(A)·op(B) + beta·C with explicit leading dimensions (as BLAS, row-major):
// the AVX-512 GEMM when active, else OpenBLAS (or the built-in GEMM). threaded: split over the
// pool (false inside pool jobs, e.g. the packed prefill's tiles). beta = 0 never reads C.
void sgemm_ld(bool threaded, bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
              int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// Whether gemm()/sgemm_ld() run the AVX-512 GEMM (CPU check; FLAMINGO_GEMM=openblas turns it off).
bool gemm_uses_avx512();

bool have_blas();
// e.g. "OpenBLAS 0.3.21 Haswell + own AVX-512 sgemm 14x32" or "built-in GEMM (avx2+fma)"
std::string blas_description();
std::string blas_library();  // without the AVX-512 GEMM note
int blas_threads();
// OpenBLAS stays single-threaded: our pool threads its products (blas_one splits them).
void blas_single_threaded();
// Times `iters` calls of the BLAS sgemm (or built-in) on n×n buffers straight from C++.
double bench_direct_gemm(int64_t n, int iters, const float* a, const float* b, float* c);

}  // namespace flamingo
