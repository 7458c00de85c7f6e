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

bool have_blas();
std::string blas_description();  // e.g. "OpenBLAS 0.3.21" or "built-in GEMM (avx2+fma)"
int blas_threads();
// OpenBLAS stays single-threaded: our pool threads its products (blas_one splits them).
void blas_single_threaded();
// Times `iters` calls of the BLAS sgemm (or built-in) on n×n buffers straight from C++.
double bench_direct_gemm(int64_t n, int iters, const float* a, const float* b, float* c);

}  // namespace flamingo
