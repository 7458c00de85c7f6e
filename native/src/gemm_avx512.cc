#include "gemm_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "pool.h"
#include "quant.h"
#include "scratch.h"

// Every function touching AVX-512 carries the target attribute below (none of this file is built
// with -mavx512f), so the rest of the addon — and the inline functions of the headers above,
// which the linker may share with other files — stays AVX2, and the addon loads on AVX2-only CPUs.
// Only the run-time check in avx512_gemm_available() decides whether these functions run.
#define F512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx2")))

// GCC 12's AVX-512 headers start some intrinsics from an "undefined" register, which its warnings
// report as uninitialised inside target-attribute functions; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace flamingo {
namespace {

// ---------------------------------------------------------------- tile and cache blocking
// Register tile MR × NR = 14 × 32: 28 zmm accumulators + 2 for the B row (32 registers). Per k
// step the kernel loads 2 vectors of B and broadcasts 14 values of A (folded into the FMAs as
// {1to16} memory operands) for 28 FMAs, so the two FMA pipes, not the load ports, are the limit.
// 8 × 48 and 6 × 64 (24 accumulators) measured slower on Zen 5 (README, 2026-12-05).
constexpr int MR = 14, NV = 2, NR = 16 * NV;
// KC: a B micro-panel (KC × NR floats = 24 KB) and an A micro-panel (14 × KC = 10.5 KB) share the
// 48 KB L1. MC: the packed A block (MC × KC = 336 × 192 floats = 252 KB) stays in the 1 MB L2.
// NC: the packed B block (KC × NC = 3 MB) lives in L3.
constexpr int64_t KC = 192, MC = 336, NC = 4096;

// Packing buffers per thread, reused across calls (≈ 250 KB for A, ≤ 3 MB for B).
thread_local Scratch t_pack_a, t_pack_b;

// ---------------------------------------------------------------- packing
// dst[p·R + r] = src[p·ld + r] for r < valid, 0 for valid ≤ r < R (p < kc): rows of the source are
// the k index (op(A) = Aᵀ stored k×m, or op(B) = B stored k×n).
template <int R>
F512 void pack_copy(const float* src, int64_t ld, int valid, int64_t kc, float* dst) {
  constexpr int VR = (R + 15) / 16;
  __mmask16 mask[VR];
  for (int v = 0; v < VR; v++) {
    const int lanes = std::max(0, std::min(16, valid - 16 * v));
    mask[v] = static_cast<__mmask16>((1u << lanes) - 1u);
  }
  if (R % 16 == 0) {
    for (int64_t p = 0; p < kc; p++) {
      const float* s = src + p * ld;
      float* d = dst + p * R;
      for (int v = 0; v < VR; v++) _mm512_storeu_ps(d + 16 * v, _mm512_maskz_loadu_ps(mask[v], s + 16 * v));
    }
  } else {
    for (int64_t p = 0; p < kc; p++) {
      const float* s = src + p * ld;
      float* d = dst + p * R;
      for (int r = 0; r < R; r++) d[r] = r < valid ? s[r] : 0.0f;
    }
  }
}

// 8×8 transpose of eight 8-float rows (in place).
F512 inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// dst[p·R + r] = src[r·ld + p] for r < valid, 0 for valid ≤ r < R (p < kc): rows of the source are
// the panel's rows (op(A) = A stored m×k, or op(B) = Bᵀ stored n×k). Blocks of 8 rows × 8 k are
// transposed in registers; rows past `valid` read as zeros.
template <int R>
F512 void pack_transpose(const float* src, int64_t ld, int valid, int64_t kc, float* dst) {
  const int64_t k8 = kc / 8 * 8;
  for (int g = 0; g < R; g += 8) {
    const int rows = std::min(8, R - g);  // rows of this group inside the panel
    const __mmask8 store = static_cast<__mmask8>((1u << rows) - 1u);
    const float* s[8];
    for (int r = 0; r < 8; r++) s[r] = g + r < valid ? src + (g + r) * ld : nullptr;
    for (int64_t p = 0; p < k8; p += 8) {
      __m256 x[8];
      for (int r = 0; r < 8; r++) x[r] = s[r] ? _mm256_loadu_ps(s[r] + p) : _mm256_setzero_ps();
      transpose8(x);
      for (int q = 0; q < 8; q++) _mm256_mask_storeu_ps(dst + (p + q) * R + g, store, x[q]);
    }
    for (int64_t p = k8; p < kc; p++)
      for (int r = 0; r < rows; r++) dst[p * R + g + r] = s[r] ? s[r][p] : 0.0f;
  }
}

// Packs op(A)[i0 : i0+mc, p0 : p0+kc] into MR-row panels (each kc × MR, zero-padded).
F512 void pack_a(bool tA, const float* a, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  for (int64_t i = 0; i < mc; i += MR) {
    const int valid = static_cast<int>(std::min<int64_t>(MR, mc - i));
    float* d = dst + (i / MR) * MR * kc;
    if (tA) pack_copy<MR>(a + p0 * lda + i0 + i, lda, valid, kc, d);
    else pack_transpose<MR>(a + (i0 + i) * lda + p0, lda, valid, kc, d);
  }
}

// Packs op(B)[p0 : p0+kc, j0 : j0+nc] into NR-column panels (each kc × NR, zero-padded).
F512 void pack_b(bool tB, const float* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t j = 0; j < nc; j += NR) {
    const int valid = static_cast<int>(std::min<int64_t>(NR, nc - j));
    float* d = dst + (j / NR) * NR * kc;
    if (tB) pack_transpose<NR>(b + (j0 + j) * ldb + p0, ldb, valid, kc, d);
    else pack_copy<NR>(b + p0 * ldb + j0 + j, ldb, valid, kc, d);
  }
}

// Eight weights of a packed row as floats: bf16 is a shift; int8 is float(q) · the scale of their
// 32-weight block (p is a multiple of 8, so the eight share one block). The same arithmetic as the
// dequantised panels (quant.cc dequant_panel), so products are unchanged.
F512 inline __m256 load_packed8(const PackedW& w, int64_t row, int64_t p) {
  if (w.kind == Packing::Bf16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.bits + row * w.cols + p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.qs + row * w.cols + p));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)),
                       _mm256_set1_ps(w.scales[row * q8_blocks(w.cols) + p / Q8_BLOCK]));
}

inline float packed_at(const PackedW& w, int64_t row, int64_t p) {
  if (w.kind == Packing::Bf16) {
    const uint32_t u = static_cast<uint32_t>(w.bits[row * w.cols + p]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  return static_cast<float>(w.qs[row * w.cols + p]) * w.scales[row * q8_blocks(w.cols) + p / Q8_BLOCK];
}

// pack_transpose with the rows read from a packed weight: dst[p·R + r] = dequant(W)[row0 + r, p0 + p].
template <int R>
F512 void pack_transpose_packed(const PackedW& w, int64_t row0, int valid, int64_t p0, int64_t kc, float* dst) {
  const int64_t k8 = kc / 8 * 8;
  for (int g = 0; g < R; g += 8) {
    const int rows = std::min(8, R - g);
    const __mmask8 store = static_cast<__mmask8>((1u << rows) - 1u);
    for (int64_t p = 0; p < k8; p += 8) {
      __m256 x[8];
      for (int r = 0; r < 8; r++) x[r] = g + r < valid ? load_packed8(w, row0 + g + r, p0 + p) : _mm256_setzero_ps();
      transpose8(x);
      for (int q = 0; q < 8; q++) _mm256_mask_storeu_ps(dst + (p + q) * R + g, store, x[q]);
    }
    for (int64_t p = k8; p < kc; p++)
      for (int r = 0; r < rows; r++) dst[p * R + g + r] = g + r < valid ? packed_at(w, row0 + g + r, p0 + p) : 0.0f;
  }
}

// pack_b for op(B) = dequant(W)[j0 : j0 + nc, p0 : p0 + kc]ᵀ.
F512 void pack_b_packed(const PackedW& w, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t j = 0; j < nc; j += NR) {
    const int valid = static_cast<int>(std::min<int64_t>(NR, nc - j));
    pack_transpose_packed<NR>(w, j0 + j, valid, p0, kc, dst + (j / NR) * NR * kc);
  }
}

// ---------------------------------------------------------------- micro-kernel
// C[0:mr, 0:nr] = alpha · Ap·Bp + beta · C (beta = 0: C not read), Ap kc × MR, Bp kc × NR packed.
F512 void micro(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, float alpha,
                float beta, int mr, int nr) {
  __m512 acc[MR][NV];
#pragma GCC unroll 14
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(bp + v * 16);
#pragma GCC unroll 14
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    ap += MR;
    bp += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  __mmask16 mask[NV];
  for (int v = 0; v < NV; v++) {
    const int lanes = std::max(0, std::min(16, nr - 16 * v));
    mask[v] = static_cast<__mmask16>((1u << lanes) - 1u);
  }
  const int rows = std::min(mr, MR);
#pragma GCC unroll 14
  for (int r = 0; r < MR; r++) {
    if (r >= rows) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      __m512 out;
      if (beta == 0.0f) out = _mm512_mul_ps(acc[r][v], va);
      else if (beta == 1.0f) out = _mm512_fmadd_ps(acc[r][v], va, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v));
      else out = _mm512_fmadd_ps(acc[r][v], va, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v)));
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], out);
    }
  }
}

// wp: op(B) is dequant(*wp)ᵀ, rows from b_row0 (b, ldb and tB unused), dequantised while packing.
F512 void blocked(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc, const PackedW* wp = nullptr,
                  int64_t b_row0 = 0) {
  const int64_t kcMax = std::min(k, KC);
  const int64_t ncMax = std::min(n, NC);
  float* pa = t_pack_a.get(static_cast<size_t>((std::min(m, MC) + MR - 1) / MR * MR * kcMax));
  float* pb = t_pack_b.get(static_cast<size_t>((ncMax + NR - 1) / NR * NR * kcMax));
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const float bt = pc == 0 ? beta : 1.0f;  // beta applies once, on the first K slab
      if (wp) pack_b_packed(*wp, pc, kc, b_row0 + jc, nc, pb);
      else pack_b(tB, b, ldb, pc, kc, jc, nc, pb);
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = std::min(MC, m - ic);
        pack_a(tA, a, lda, ic, mc, pc, kc, pa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          const float* bpan = pb + (jr / NR) * NR * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            micro(kc, pa + (ir / MR) * MR * kc, bpan, c + (ic + ir) * ldc + jc + jr, ldc, alpha, bt, mr, nr);
          }
        }
      }
    }
  }
}

}  // namespace

#pragma GCC diagnostic pop

bool avx512_gemm_available() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }();
  return yes;
}

int avx512_gemm_mr() { return MR; }
int avx512_gemm_nr() { return NR; }

void sgemm_avx512_st(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                     const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    // C = beta · C; beta = 0 is a store (ignores NaN in C)
    if (beta == 1.0f) return;
    for (int64_t i = 0; i < m; i++) {
      float* ci = c + i * ldc;
      if (beta == 0.0f) std::memset(ci, 0, sizeof(float) * n);
      else for (int64_t j = 0; j < n; j++) ci[j] *= beta;
    }
    return;
  }
  blocked(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgemm_avx512_packed_st(int64_t m, int64_t n, const float* a, int64_t lda, const PackedW& w, int64_t row0, float beta,
                            float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (w.cols <= 0) {
    sgemm_avx512_st(false, true, m, n, 0, 1.0f, a, lda, nullptr, 0, beta, c, ldc);
    return;
  }
  blocked(false, true, m, n, w.cols, 1.0f, a, lda, nullptr, 0, beta, c, ldc, &w, row0);
}

// Below this many multiply-adds a product stays on the calling thread (a pool hand-out costs µs).
constexpr int64_t SPLIT_MACS = int64_t{1} << 20;

void sgemm_avx512(bool tA, bool tB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int threads = pool_threads();
  if (threads <= 1 || m * n * k < SPLIT_MACS || (m <= MR && n <= NR)) {
    sgemm_avx512_st(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // C is cut into blocks along one dimension, each a whole single-threaded product with its own
  // packing. Splitting rows re-packs all of op(B) in every block, splitting columns all of op(A):
  // cut the dimension whose operand is cheaper to repeat, unless it is too short to share.
  const int64_t rowPanels = (m + MR - 1) / MR, colPanels = (n + NR - 1) / NR;
  bool byRows = m >= n;
  if (byRows && rowPanels < threads) byRows = false;
  if (!byRows && colPanels < threads) byRows = true;
  const int64_t panels = byRows ? rowPanels : colPanels, unit = byRows ? MR : NR;
  const int64_t dim = byRows ? m : n;
  // Up to 4 blocks per thread, handed out one at a time: on a shared host a thread that loses its
  // core for a while then does fewer blocks instead of holding up the product. A block of ≥ 128
  // rows/columns re-packs the repeated operand at < 1% of its multiply-adds.
  const int64_t minPanels = (128 + unit - 1) / unit;
  const int64_t blocks = std::max<int64_t>(threads, std::min<int64_t>(4 * threads, panels / minPanels));
  const int64_t per = (panels + blocks - 1) / blocks * unit;
  const int64_t parts = (dim + per - 1) / per;
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t lo = p * per, len = std::min(dim, lo + per) - lo;
      if (byRows) {
        sgemm_avx512_st(tA, tB, len, n, k, alpha, tA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc);
      } else {
        sgemm_avx512_st(tA, tB, m, len, k, alpha, a, lda, tB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
      }
    }
  });
}

}  // namespace flamingo
