#include "gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "gemm_avx512.h"
#include "pool.h"
#include "quant.h"
#include "simd.h"

#ifdef FLAMINGO_OPENBLAS
#include <cblas.h>
#endif

namespace flamingo {
namespace {

// ---------------------------------------------------------------- scaling C by beta
// beta = 0 must ignore C's old contents (even NaN), so it is a store, not a multiply.
void scale_c(float* c, int64_t count, float beta) {
  if (beta == 1.0f) return;
  if (beta == 0.0f) {
    std::memset(c, 0, sizeof(float) * count);
  } else {
    for (int64_t i = 0; i < count; i++) c[i] *= beta;
  }
}

// ---------------------------------------------------------------- built-in blocked GEMM
// Goto-style: for each K slab, pack op(A) into MR-row panels and op(B) into NR-column panels
// (zero-padded), then a 6×16 register-tile micro-kernel accumulates into C. Tiles of C are
// distributed over the pool; every tile writes a disjoint block of C.
constexpr int MR = 6, NR = 16;
constexpr int64_t KC = 256, MC = 96, NC = 1024;

struct Packed {
  float* p = nullptr;
  explicit Packed(size_t n) {
    p = static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64 + 64));
  }
  ~Packed() { std::free(p); }
};

// A panel: for each row-panel ip (MR rows), layout [p][r] for p in [0,kc).
void pack_a(bool tA, int64_t m, int64_t k, const float* a, int64_t p0, int64_t kc, float* dst) {
  int64_t panels = (m + MR - 1) / MR;
  parallel_for(panels, 8, [&](int64_t b, int64_t e) {
    for (int64_t ip = b; ip < e; ip++) {
      float* d = dst + ip * MR * kc;
      int64_t i0 = ip * MR;
      for (int64_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR; r++) {
          int64_t i = i0 + r;
          d[p * MR + r] = i < m ? (tA ? a[(p0 + p) * m + i] : a[i * k + p0 + p]) : 0.0f;
        }
      }
    }
  });
}

// B panel: for each column-panel jp (NR cols), layout [p][c].
void pack_b(bool tB, int64_t n, int64_t k, const float* b, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc, float* dst) {
  int64_t panels = (nc + NR - 1) / NR;
  parallel_for(panels, 8, [&](int64_t pb, int64_t pe) {
    for (int64_t jp = pb; jp < pe; jp++) {
      float* d = dst + jp * NR * kc;
      for (int64_t p = 0; p < kc; p++) {
        for (int cc = 0; cc < NR; cc++) {
          int64_t j = j0 + jp * NR + cc;
          d[p * NR + cc] = j < j0 + nc ? (tB ? b[j * k + p0 + p] : b[(p0 + p) * n + j]) : 0.0f;
        }
      }
    }
  });
}

// acc(MR×NR) = Ap · Bp over kc, then C[0:mr, 0:nr] += alpha · acc.
void micro(int64_t kc, const float* ap, const float* bp, float alpha, float* c, int64_t ldc, int mr, int nr) {
  V acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = vzero();
  for (int64_t p = 0; p < kc; p++) {
    V b0 = vload(bp + p * NR), b1 = vload(bp + p * NR + 8);
    for (int r = 0; r < MR; r++) {
      V av = vset(ap[p * MR + r]);
      acc[r][0] = vfma(av, b0, acc[r][0]);
      acc[r][1] = vfma(av, b1, acc[r][1]);
    }
  }
  V va = vset(alpha);
  if (mr == MR && nr == NR) {
    for (int r = 0; r < MR; r++) {
      float* cr = c + r * ldc;
      vstore(cr, vfma(acc[r][0], va, vload(cr)));
      vstore(cr + 8, vfma(acc[r][1], va, vload(cr + 8)));
    }
    return;
  }
  float tmp[NR];
  for (int r = 0; r < mr; r++) {
    vstore(tmp, acc[r][0] * va);
    vstore(tmp + 8, acc[r][1] * va);
    float* cr = c + r * ldc;
    for (int cc = 0; cc < nr; cc++) cr[cc] += tmp[cc];
  }
}

void builtin_one(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 const float* b, float beta, float* c) {
  scale_c(c, m * n, beta);
  if (k == 0 || alpha == 0.0f) return;
  int64_t mpan = (m + MR - 1) / MR;
  Packed pa(static_cast<size_t>(mpan * MR * std::min(k, KC)));
  Packed pb(static_cast<size_t>((std::min(n, NC) + NR - 1) / NR * NR * std::min(k, KC)));
  for (int64_t j0 = 0; j0 < n; j0 += NC) {
    int64_t nc = std::min(NC, n - j0);
    int64_t npan = (nc + NR - 1) / NR;
    for (int64_t p0 = 0; p0 < k; p0 += KC) {
      int64_t kc = std::min(KC, k - p0);
      pack_b(tB, n, k, b, p0, kc, j0, nc, pb.p);
      pack_a(tA, m, k, a, p0, kc, pa.p);
      // Tiles: MC rows × all nc columns; with few row blocks, split columns too.
      int64_t mblocks = (m + MC - 1) / MC;
      int64_t nsplit = mblocks >= 2 * pool_threads() ? 1 : std::min<int64_t>(npan, 4);
      int64_t pans_per = (npan + nsplit - 1) / nsplit;
      parallel_for(mblocks * nsplit, 1, [&](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; t++) {
          int64_t mb = t / nsplit, ns = t % nsplit;
          int64_t i0 = mb * MC, i1 = std::min(m, i0 + MC);
          int64_t jp0 = ns * pans_per, jp1 = std::min(npan, jp0 + pans_per);
          for (int64_t jp = jp0; jp < jp1; jp++) {
            int nr = static_cast<int>(std::min<int64_t>(NR, nc - jp * NR));
            const float* bpan = pb.p + jp * NR * kc;
            for (int64_t i = i0; i < i1; i += MR) {
              int mr = static_cast<int>(std::min<int64_t>(MR, m - i));
              micro(kc, pa.p + (i / MR) * MR * kc, bpan, alpha, c + i * n + j0 + jp * NR, n, mr, nr);
            }
          }
        }
      });
    }
  }
}

// ---------------------------------------------------------------- skinny products (few rows)
// m ≤ SKINNY_M (decode steps, small batches): packing B would copy all of it for one pass, so B
// is streamed once, in place, updating every output row per B row/column. Threads split n.
constexpr int64_t SKINNY_M = 8;

void skinny(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
            float beta, float* c) {
  std::vector<float> ap;  // alpha · op(A) with rows contiguous, unless that is A itself
  const float* A = a;
  if (tA || alpha != 1.0f) {
    ap.resize(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m; i++)
      for (int64_t p = 0; p < k; p++) ap[i * k + p] = alpha * (tA ? a[p * m + i] : a[i * k + p]);
    A = ap.data();
  }
  if (tB) {  // C[i,j] = A_i · B_j (B rows are contiguous); 4 B rows per pass share each A load
    auto store = [&](int64_t i, int64_t j, float sum) {
      float* cij = c + i * n + j;
      *cij = beta == 0.0f ? sum : sum + beta * *cij;
    };
    parallel_for((n + 3) / 4, std::max<int64_t>(1, 4096 / std::max<int64_t>(k, 1)), [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; q++) {
        const int64_t j = q * 4;
        if (j + 4 <= n) {
          const float *b0 = b + j * k, *b1 = b0 + k, *b2 = b1 + k, *b3 = b2 + k;
          for (int64_t i = 0; i < m; i++) {
            const float* ai = A + i * k;
            V s0 = vzero(), s1 = vzero(), s2 = vzero(), s3 = vzero();
            int64_t p = 0;
            for (; p + 8 <= k; p += 8) {
              V av = vload(ai + p);
              s0 = vfma(av, vload(b0 + p), s0);
              s1 = vfma(av, vload(b1 + p), s1);
              s2 = vfma(av, vload(b2 + p), s2);
              s3 = vfma(av, vload(b3 + p), s3);
            }
            float r0 = hsum(s0), r1 = hsum(s1), r2 = hsum(s2), r3 = hsum(s3);
            for (; p < k; p++) {
              r0 += ai[p] * b0[p];
              r1 += ai[p] * b1[p];
              r2 += ai[p] * b2[p];
              r3 += ai[p] * b3[p];
            }
            store(i, j, r0);
            store(i, j + 1, r1);
            store(i, j + 2, r2);
            store(i, j + 3, r3);
          }
        } else {
          for (int64_t jj = j; jj < n; jj++) {
            const float* bj = b + jj * k;
            for (int64_t i = 0; i < m; i++) {
              const float* ai = A + i * k;
              V acc = vzero();
              int64_t p = 0;
              for (; p + 8 <= k; p += 8) acc = vfma(vload(ai + p), vload(bj + p), acc);
              float sum = hsum(acc);
              for (; p < k; p++) sum += ai[p] * bj[p];
              store(i, jj, sum);
            }
          }
        }
      }
    });
  } else {  // C[i, j0:j1] += Σ_p A[i,p] · B[p, j0:j1], column blocks kept in L1
    constexpr int64_t JB = 256;
    const int64_t blocks = (n + JB - 1) / JB;
    parallel_for(blocks, std::max<int64_t>(1, 16384 / std::max<int64_t>(k * JB / 64, 1)), [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t j0 = blk * JB, w = std::min(JB, n - j0);
        for (int64_t i = 0; i < m; i++) scale_c(c + i * n + j0, w, beta);
        for (int64_t p = 0; p < k; p++) {
          const float* bp = b + p * n + j0;
          for (int64_t i = 0; i < m; i++) {
            const V av = vset(A[i * k + p]);
            const float as = A[i * k + p];
            float* ci = c + i * n + j0;
            int64_t j = 0;
            for (; j + 8 <= w; j += 8) vstore(ci + j, vfma(av, vload(bp + j), vload(ci + j)));
            for (; j < w; j++) ci[j] += as * bp[j];
          }
        }
      }
    });
  }
}

#ifdef FLAMINGO_OPENBLAS
// OpenBLAS runs single-threaded; large products are split over our pool instead. OpenBLAS's own
// worker threads spin (sched_yield) for a long while after every call, which on a 2-core machine
// takes a core from the JS thread and from our pool between products; our workers block.

// One product (or a block of one) on the calling thread, with explicit leading dimensions.
void blas_block(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  // Matrix-vector products (m = 1, e.g. one decode step, or n = 1) as sgemv: GEMM's packing would
  // copy the whole matrix for a single pass over it. The vector operand is contiguous either way.
  if (m == 1 || n == 1) {
    // sgemv scales y by beta even when beta = 0 (0 · NaN = NaN): clear it instead. y is contiguous
    // (m = 1: one row of C; n = 1: one column with ldc = 1).
    const int64_t len = m == 1 ? n : m;
    if (beta == 0.0f) {
      for (int64_t i = 0; i < len; i++) c[m == 1 ? i : i * ldc] = 0.0f;
    }
    const int incy = m == 1 ? 1 : static_cast<int>(ldc);
    if (m == 1) {  // x = op(A) (length k), y = op(B)ᵀ x
      const int incx = tA ? static_cast<int>(lda) : 1;
      if (tB) cblas_sgemv(CblasRowMajor, CblasNoTrans, in, ik, alpha, b, static_cast<int>(ldb), a, incx, beta, c, incy);
      else cblas_sgemv(CblasRowMajor, CblasTrans, ik, in, alpha, b, static_cast<int>(ldb), a, incx, beta, c, incy);
    } else {  // n = 1: x = op(B) (length k), y = op(A) x
      const int incx = tB ? 1 : static_cast<int>(ldb);
      if (tA) cblas_sgemv(CblasRowMajor, CblasTrans, ik, im, alpha, a, static_cast<int>(lda), b, incx, beta, c, incy);
      else cblas_sgemv(CblasRowMajor, CblasNoTrans, im, ik, alpha, a, static_cast<int>(lda), b, incx, beta, c, incy);
    }
    return;
  }
  // BLAS semantics: with beta = 0, C is not read (OpenBLAS zero-fills it), so NaN in C is fine.
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, im, in, ik, alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Below this many multiply-adds a product stays on one thread (a pool dispatch costs a few µs).
constexpr int64_t SPLIT_MACS = int64_t{1} << 20;

// One product: split along its larger output dimension into one block per pool thread.
void blas_one_ld(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int threads = pool_threads();
  if (threads <= 1 || m * n * k < SPLIT_MACS || (m < 32 && n < 32)) {
    blas_block(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool byRows = m >= n;
  const int64_t dim = byRows ? m : n;
  // blocks a multiple of 16 (the micro-kernels' widths), one per thread
  const int64_t step = ((dim + threads - 1) / threads + 15) / 16 * 16;
  const int64_t parts = (dim + step - 1) / step;
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t lo = p * step, len = std::min(dim, lo + step) - lo;
      if (byRows) {
        blas_block(tA, tB, len, n, k, alpha, tA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
      } else {
        blas_block(tA, tB, m, len, k, alpha, a, lda, tB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
      }
    }
  });
}

void blas_one(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
              const float* b, float beta, float* c) {
  blas_one_ld(tA, tB, m, n, k, alpha, a, tA ? m : k, b, tB ? k : n, beta, c, n);
}
#endif

// Below this many multiply-adds per product, library call overhead dominates.
constexpr int64_t SMALL_MACS = 32 * 32 * 32;
// Batched products up to this size are spread over the pool one product per thread (per-head
// attention GEMMs of small models); above it, each product is threaded on its own.
constexpr int64_t BATCH_PARALLEL_MACS = 256 * 256 * 64;
constexpr int64_t BATCH_EVEN_MACS = int64_t{512} * 512 * 512;

// Which GEMM runs the products that are not tiny, skinny (≤ 8 rows) or matrix-vector: the
// project's AVX-512 kernel (gemm_avx512.cc) when the CPU has AVX-512 — per core 1.7–1.9× the
// OpenBLAS Haswell kernels that OPENBLAS_CORETYPE pins on Zen 5 — unless FLAMINGO_GEMM=openblas
// asks for the previous path (OpenBLAS, or the built-in AVX2 GEMM in a build without it). Other
// values never reach here: the loader (src/engine/kernels/native.ts, checkKernelEnv) refuses
// them, naming the allowed ones, before it loads the addon.
bool avx512_active() {
  static const bool yes = [] {
    const char* env = std::getenv("FLAMINGO_GEMM");
    if (env && std::strcmp(env, "openblas") == 0) return false;
    return avx512_gemm_available();
  }();
  return yes;
}

// One contiguous product on the calling thread (batch items spread over the pool).
void avx512_one(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
                float beta, float* c) {
  sgemm_avx512_st(tA, tB, m, n, k, alpha, a, tA ? m : k, b, tB ? k : n, beta, c, n);
}

#ifndef FLAMINGO_OPENBLAS
// Explicit leading dimensions without OpenBLAS or AVX-512: the built-in GEMM on contiguous copies.
void builtin_ld(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  auto dense = [](const float* src, int64_t rows, int64_t cols, int64_t ld) {
    std::vector<float> d(static_cast<size_t>(rows * cols));
    for (int64_t i = 0; i < rows; i++) std::memcpy(&d[i * cols], src + i * ld, sizeof(float) * cols);
    return d;
  };
  const std::vector<float> ac = dense(a, tA ? k : m, tA ? m : k, lda), bc = dense(b, tB ? n : k, tB ? k : n, ldb);
  std::vector<float> t(static_cast<size_t>(m * n));
  builtin_one(tA, tB, m, n, k, alpha, ac.data(), bc.data(), 0.0f, t.data());
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) c[i * ldc + j] = t[i * n + j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
}
#endif

}  // namespace

bool gemm_uses_avx512() { return avx512_active(); }

void sgemm_ld(bool threaded, bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
              int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (avx512_active() && m > 1 && n > 1) {
    if (threaded) sgemm_avx512(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else sgemm_avx512_st(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#ifdef FLAMINGO_OPENBLAS
  if (k == 0) {  // BLAS leaves C unscaled for k = 0 in some versions; C = beta·C (beta = 0: zeros)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  if (threaded) blas_one_ld(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else blas_block(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  (void)threaded;  // the built-in GEMM threads itself (inline inside a pool job)
  builtin_ld(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

// Every product on one thread (nested parallel_for calls run inline), the batch spread over the
// pool: for many small products this beats splitting each one.
template <class One>
void batch_parallel(const GemmArgs& g, int64_t macs, One one) {
  parallel_for(g.count, std::max<int64_t>(1, 524288 / std::max<int64_t>(macs, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; i++) {
      one(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a + i * g.strideA, g.b + i * g.strideB, g.beta,
          g.c + i * g.strideC);
    }
  });
}

void gemm_small(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  batch_parallel(g, g.m * g.n * g.k, builtin_one);
}

void gemm_builtin(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  for (int64_t i = 0; i < g.count; i++) {
    builtin_one(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a + i * g.strideA, g.b + i * g.strideB, g.beta,
                g.c + i * g.strideC);
  }
}

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const int64_t macs = g.m * g.n * g.k;
  // Tiny products: library call overhead dominates; the packed micro-kernel is faster. With a
  // few rows (decode-step attention: one query per head) packing costs more than the product, so
  // those stream B directly.
  if (macs <= SMALL_MACS) {
    if (g.m <= SKINNY_M) batch_parallel(g, macs, skinny);
    else batch_parallel(g, macs, builtin_one);
    return;
  }
  // x · Wᵀ with a few rows (decode steps' linear layers): the streaming register kernel of
  // quant.cc, which reads W once at memory speed on every pool thread.
  if (g.count == 1 && !g.transA && g.transB && g.m <= GEMV_MAX_ROWS && g.alpha == 1.0f &&
      (g.beta == 0.0f || g.beta == 1.0f)) {
    gemv_f32(g.a, g.b, g.n, g.k, g.c, g.m, g.beta == 1.0f);
    return;
  }
  if (g.m <= SKINNY_M && g.k > 0 && (!have_blas() || g.m > 1)) {
    for (int64_t i = 0; i < g.count; i++) {
      skinny(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a + i * g.strideA, g.b + i * g.strideB, g.beta,
             g.c + i * g.strideC);
    }
    return;
  }
  // Larger products are spread too when the batch divides evenly over the threads (no idle
  // thread at the end), which saves OpenBLAS's per-call thread synchronisation.
  const int threads = pool_threads();
  const bool spreadBatch = g.count > 1 && threads > 1 &&
                           (macs <= BATCH_PARALLEL_MACS || (g.count % threads == 0 && macs <= BATCH_EVEN_MACS));
  if (avx512_active() && g.m > 1 && g.n > 1) {
    if (spreadBatch) {
      batch_parallel(g, macs, avx512_one);
      return;
    }
    for (int64_t i = 0; i < g.count; i++) {
      sgemm_avx512(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a + i * g.strideA, g.transA ? g.m : g.k,
                   g.b + i * g.strideB, g.transB ? g.k : g.n, g.beta, g.c + i * g.strideC, g.n);
    }
    return;
  }
#ifdef FLAMINGO_OPENBLAS
  if (spreadBatch) {
    // each product on one thread (blas_one's own split runs inline inside a pool job)
    batch_parallel(g, macs, blas_one);
    return;
  }
  for (int64_t i = 0; i < g.count; i++) {
    blas_one(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a + i * g.strideA, g.b + i * g.strideB, g.beta,
             g.c + i * g.strideC);
  }
#else
  if (spreadBatch) batch_parallel(g, macs, builtin_one);
  else gemm_builtin(g);
#endif
}

bool have_blas() {
#ifdef FLAMINGO_OPENBLAS
  return true;
#else
  return false;
#endif
}

std::string blas_description() {
  std::string gemm;
  if (avx512_active()) {
    gemm = " + own AVX-512 sgemm " + std::to_string(avx512_gemm_mr()) + "x" + std::to_string(avx512_gemm_nr());
  } else if (avx512_gemm_available()) {
    gemm = " (own AVX-512 sgemm off: FLAMINGO_GEMM=openblas)";
  }
  return blas_library() + gemm;
}

std::string blas_library() {
#ifdef FLAMINGO_OPENBLAS
  // openblas_get_config() reads like "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
  std::string cfg = openblas_get_config();
  std::string desc = "OpenBLAS";
  if (cfg.rfind("OpenBLAS ", 0) == 0) {
    size_t sp = cfg.find(' ', 9);
    desc = cfg.substr(0, sp);
  }
  return desc + " " + openblas_get_corename();
#else
  return std::string("built-in GEMM (") + FLAMINGO_SIMD_NAME + ")";
#endif
}

// Products are threaded by our pool (blas_one splits them); OpenBLAS itself stays single-threaded.
int blas_threads() { return pool_threads(); }

void blas_single_threaded() {
#ifdef FLAMINGO_OPENBLAS
  openblas_set_num_threads(1);
#endif
}

double bench_direct_gemm(int64_t n, int iters, const float* a, const float* b, float* c) {
#ifdef FLAMINGO_OPENBLAS
  // the reference: OpenBLAS with its own threads, as a program calling it directly would run it
  openblas_set_num_threads(pool_threads());
#endif
  auto t0 = std::chrono::steady_clock::now();
  for (int it = 0; it < iters; it++) {
#ifdef FLAMINGO_OPENBLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(n),
                static_cast<int>(n), 1.0f, a, static_cast<int>(n), b, static_cast<int>(n), 0.0f, c,
                static_cast<int>(n));
#else
    builtin_one(false, false, n, n, n, 1.0f, a, b, 0.0f, c);
#endif
  }
  auto t1 = std::chrono::steady_clock::now();
#ifdef FLAMINGO_OPENBLAS
  openblas_set_num_threads(1);
#endif
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace flamingo
