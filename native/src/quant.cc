#include "quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "pool.h"
#include "simd.h"

#ifdef FLAMINGO_OPENBLAS
#include <cblas.h>
#endif

namespace flamingo {
namespace {

// Output rows per dequantised panel of the prefill path: at least 64, and as many as fit in about
// 4 MB of float32 (at most 512). Each panel is one sgemm call, which re-packs all of x; with 64-row
// panels that re-packing and the dequantisation took ~22% of an openflamingo3b int8 prefill.
constexpr int64_t PANEL_ROWS = 64, PANEL_MAX_ROWS = 512, PANEL_FLOATS = int64_t{1} << 20;

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------- register kernels (decode)
// Decode is bound by reading W once per token, so the kernels are built to stream it: NW weight
// rows per pass (the x loads are shared and NW·R accumulator chains run in parallel), and a
// software prefetch that walks the next group of rows linearly at the pace of the current one.
// Rows o..o+NW−1 are contiguous, so each thread reads one contiguous range of W (and of the
// scales) front to back. With AVX-512 (checked at run time) a 32-weight block is two 16-lane
// converts instead of four 8-lane ones; the arithmetic (per-block sums, then × scale) is the same.
#if defined(__AVX2__) && defined(__FMA__)
static inline __m256 load_bf16x8(const uint16_t* p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline __m256 load_i8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
#endif

// Prefetch `bytes` starting at p (one request per cache line).
static inline void prefetch_span(const void* p, int64_t bytes) {
#if defined(__AVX2__) || defined(__SSE2__)
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
#else
  (void)p;
  (void)bytes;
#endif
}

// Scalar tails (columns past the last full block) and the no-SIMD build.
template <int R, int NW>
void tail_bf16(const uint16_t* w, int64_t C, const float* x, int64_t j0, float* acc) {
  for (int v = 0; v < NW; v++)
    for (int r = 0; r < R; r++) {
      float s = 0;
      for (int64_t j = j0; j < C; j++) s += bf16_to_f32(w[v * C + j]) * x[r * C + j];
      acc[r * NW + v] += s;
    }
}
template <int R, int NW>
void tail_f32(const float* w, int64_t C, const float* x, int64_t j0, float* acc) {
  for (int v = 0; v < NW; v++)
    for (int r = 0; r < R; r++) {
      float s = 0;
      for (int64_t j = j0; j < C; j++) s += w[v * C + j] * x[r * C + j];
      acc[r * NW + v] += s;
    }
}
template <int R, int NW>
void tail_int8(const int8_t* q, const float* d, int64_t C, int64_t nb, const float* x, int64_t j0, float* acc) {
  if (j0 >= C) return;
  for (int v = 0; v < NW; v++)
    for (int r = 0; r < R; r++) {
      float t = 0;
      for (int64_t j = j0; j < C; j++) t += static_cast<float>(q[v * C + j]) * x[r * C + j];
      acc[r * NW + v] += t * d[v * nb + j0 / Q8_BLOCK];
    }
}

// acc[r·NW + v] = x_r · dequant(W row v); w/q point at the first of NW consecutive rows (length C),
// d at its first scale (nb a row). pf: the next group's first row (prefetched), or null.
#if defined(__AVX2__) && defined(__FMA__)
template <int R, int NW>
void group_bf16_avx2(const uint16_t* w, int64_t C, const float* x, float* acc, const uint16_t* pf) {
  __m256 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = _mm256_setzero_ps();
  const int64_t full = C / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int64_t j = b * Q8_BLOCK;
    if (pf) prefetch_span(pf + j * NW, NW * Q8_BLOCK * 2);
    for (int v = 0; v < NW; v++) {
      const uint16_t* wv = w + v * C + j;
      const __m256 w0 = load_bf16x8(wv), w1 = load_bf16x8(wv + 8), w2 = load_bf16x8(wv + 16), w3 = load_bf16x8(wv + 24);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        __m256 s = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr), a[r][v]);
        s = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr + 8), s);
        s = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xr + 16), s);
        a[r][v] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xr + 24), s);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = hsum(V{a[r][v]});
  tail_bf16<R, NW>(w, C, x, full * Q8_BLOCK, acc);
}

template <int R, int NW>
void group_f32_avx2(const float* w, int64_t C, const float* x, float* acc, const float* pf) {
  __m256 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = _mm256_setzero_ps();
  const int64_t full = C / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int64_t j = b * Q8_BLOCK;
    if (pf) prefetch_span(pf + j * NW, NW * Q8_BLOCK * 4);
    for (int v = 0; v < NW; v++) {
      const float* wv = w + v * C + j;
      const __m256 w0 = _mm256_loadu_ps(wv), w1 = _mm256_loadu_ps(wv + 8), w2 = _mm256_loadu_ps(wv + 16),
                   w3 = _mm256_loadu_ps(wv + 24);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        __m256 s = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr), a[r][v]);
        s = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr + 8), s);
        s = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xr + 16), s);
        a[r][v] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xr + 24), s);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = hsum(V{a[r][v]});
  tail_f32<R, NW>(w, C, x, full * Q8_BLOCK, acc);
}

template <int R, int NW>
void group_int8_avx2(const int8_t* q, const float* d, int64_t C, int64_t nb, const float* x, float* acc,
                     const int8_t* pf, const float* pfd) {
  __m256 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = _mm256_setzero_ps();
  const int64_t full = C / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int64_t j = b * Q8_BLOCK;
    if (pf) {
      prefetch_span(pf + j * NW, NW * Q8_BLOCK);
      if ((b & 15) == 0) prefetch_span(pfd + b * NW, NW * 64);
    }
    for (int v = 0; v < NW; v++) {
      const int8_t* qv = q + v * C + j;
      const __m256 w0 = load_i8x8(qv), w1 = load_i8x8(qv + 8), w2 = load_i8x8(qv + 16), w3 = load_i8x8(qv + 24);
      const __m256 dv = _mm256_broadcast_ss(d + v * nb + b);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        __m256 s = _mm256_mul_ps(w0, _mm256_loadu_ps(xr));
        s = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr + 8), s);
        s = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xr + 16), s);
        s = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xr + 24), s);
        a[r][v] = _mm256_fmadd_ps(s, dv, a[r][v]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = hsum(V{a[r][v]});
  tail_int8<R, NW>(q, d, C, nb, x, full * Q8_BLOCK, acc);
}

// GCC 12's AVX-512 headers start some conversions from an "undefined" register, which its
// warnings report as uninitialised inside target-attribute functions; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FLAMINGO_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

template <int R, int NW>
FLAMINGO_AVX512 void group_bf16_avx512(const uint16_t* w, int64_t C, const float* x, float* acc, const uint16_t* pf) {
  __m512 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = _mm512_setzero_ps();
  const int64_t full = C / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int64_t j = b * Q8_BLOCK;
    if (pf) {
      const char* p = reinterpret_cast<const char*>(pf + j * NW);
      for (int i = 0; i < NW * Q8_BLOCK * 2; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
    }
    for (int v = 0; v < NW; v++) {
      const uint16_t* wv = w + v * C + j;
      const __m512 w0 = _mm512_castsi512_ps(_mm512_slli_epi32(
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wv))), 16));
      const __m512 w1 = _mm512_castsi512_ps(_mm512_slli_epi32(
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wv + 16))), 16));
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        a[r][v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a[r][v]));
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = _mm512_reduce_add_ps(a[r][v]);
  tail_bf16<R, NW>(w, C, x, full * Q8_BLOCK, acc);
}

template <int R, int NW>
FLAMINGO_AVX512 void group_f32_avx512(const float* w, int64_t C, const float* x, float* acc, const float* pf) {
  __m512 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = _mm512_setzero_ps();
  const int64_t full = C / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int64_t j = b * Q8_BLOCK;
    if (pf) {
      const char* p = reinterpret_cast<const char*>(pf + j * NW);
      for (int i = 0; i < NW * Q8_BLOCK * 4; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
    }
    for (int v = 0; v < NW; v++) {
      const float* wv = w + v * C + j;
      const __m512 w0 = _mm512_loadu_ps(wv), w1 = _mm512_loadu_ps(wv + 16);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        a[r][v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a[r][v]));
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = _mm512_reduce_add_ps(a[r][v]);
  tail_f32<R, NW>(w, C, x, full * Q8_BLOCK, acc);
}

template <int R, int NW>
FLAMINGO_AVX512 void group_int8_avx512(const int8_t* q, const float* d, int64_t C, int64_t nb, const float* x,
                                       float* acc, const int8_t* pf, const float* pfd) {
  __m512 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = _mm512_setzero_ps();
  const int64_t full = C / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int64_t j = b * Q8_BLOCK;
    if (pf) {
      const char* p = reinterpret_cast<const char*>(pf + j * NW);
      for (int i = 0; i < NW * Q8_BLOCK; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
      if ((b & 15) == 0) {
        const char* ps = reinterpret_cast<const char*>(pfd + b * NW);
        for (int i = 0; i < NW * 64; i += 64) _mm_prefetch(ps + i, _MM_HINT_T0);
      }
    }
    for (int v = 0; v < NW; v++) {
      const int8_t* qv = q + v * C + j;
      const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qv))));
      const __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qv + 16))));
      const __m512 dv = _mm512_set1_ps(d[v * nb + b]);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        const __m512 s = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(xr)));
        a[r][v] = _mm512_fmadd_ps(s, dv, a[r][v]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = _mm512_reduce_add_ps(a[r][v]);
  tail_int8<R, NW>(q, d, C, nb, x, full * Q8_BLOCK, acc);
}
#pragma GCC diagnostic pop
#else
template <int R, int NW>
void group_f32_avx2(const float* w, int64_t C, const float* x, float* acc, const float*) {
  for (int i = 0; i < R * NW; i++) acc[i] = 0;
  tail_f32<R, NW>(w, C, x, 0, acc);
}
template <int R, int NW>
void group_bf16_avx2(const uint16_t* w, int64_t C, const float* x, float* acc, const uint16_t*) {
  for (int i = 0; i < R * NW; i++) acc[i] = 0;
  tail_bf16<R, NW>(w, C, x, 0, acc);
}
template <int R, int NW>
void group_int8_avx2(const int8_t* q, const float* d, int64_t C, int64_t nb, const float* x, float* acc, const int8_t*,
                     const float*) {
  for (int i = 0; i < R * NW; i++) acc[i] = 0;
  for (int64_t j0 = 0; j0 < C; j0 += Q8_BLOCK) {
    float t[R * NW] = {};
    for (int v = 0; v < NW; v++)
      for (int r = 0; r < R; r++)
        for (int64_t j = j0; j < std::min(C, j0 + Q8_BLOCK); j++) t[r * NW + v] += static_cast<float>(q[v * C + j]) * x[r * C + j];
    for (int v = 0; v < NW; v++)
      for (int r = 0; r < R; r++) acc[r * NW + v] += t[r * NW + v] * d[v * nb + j0 / Q8_BLOCK];
  }
}
#endif

// Which instruction set the decode kernels use: AVX-512 when the CPU has it (unless
// FLAMINGO_SIMD=avx2 asks for the AVX2 kernels, e.g. to test them), else AVX2 (or scalar).
bool use_avx512() {
#if defined(__AVX2__) && defined(__FMA__)
  static const bool yes = [] {
    const char* env = std::getenv("FLAMINGO_SIMD");
    if (env && std::strcmp(env, "avx2") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }();
  return yes;
#else
  return false;
#endif
}

template <int R, int NW>
void group(const PackedW& w, int64_t o, const float* x, float* acc, bool prefetchNext) {
  const int64_t C = w.cols, nb = q8_blocks(C);
  if (w.kind == Packing::F32) {
    const float* pf = prefetchNext ? w.f32 + (o + NW) * C : nullptr;
#if defined(__AVX2__) && defined(__FMA__)
    if (use_avx512()) return group_f32_avx512<R, NW>(w.f32 + o * C, C, x, acc, pf);
#endif
    return group_f32_avx2<R, NW>(w.f32 + o * C, C, x, acc, pf);
  }
  if (w.kind == Packing::Bf16) {
    const uint16_t* pf = prefetchNext ? w.bits + (o + NW) * C : nullptr;
#if defined(__AVX2__) && defined(__FMA__)
    if (use_avx512()) return group_bf16_avx512<R, NW>(w.bits + o * C, C, x, acc, pf);
#endif
    return group_bf16_avx2<R, NW>(w.bits + o * C, C, x, acc, pf);
  }
  const int8_t* pf = prefetchNext ? w.qs + (o + NW) * C : nullptr;
  const float* pfd = prefetchNext ? w.scales + (o + NW) * nb : nullptr;
#if defined(__AVX2__) && defined(__FMA__)
  if (use_avx512()) return group_int8_avx512<R, NW>(w.qs + o * C, w.scales + o * nb, C, nb, x, acc, pf, pfd);
#endif
  return group_int8_avx2<R, NW>(w.qs + o * C, w.scales + o * nb, C, nb, x, acc, pf, pfd);
}

template <int R>
void gemv_rows(const float* x, const PackedW& w, float* out, int64_t o0, int64_t o1, bool accumulate) {
  constexpr int NW = R == 1 ? 4 : 2;
  float acc[R * NW];
  auto store = [&](int64_t o, int nw) {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < nw; v++) {
        float& y = out[r * w.rows + o + v];
        y = accumulate ? y + acc[r * nw + v] : acc[r * nw + v];
      }
  };
  int64_t o = o0;
  for (; o + NW <= o1; o += NW) {
    // the next group may belong to the other thread's range: prefetching it is harmless
    group<R, NW>(w, o, x, acc, o + 2 * NW <= w.rows);
    store(o, NW);
  }
  for (; o < o1; o++) {
    group<R, 1>(w, o, x, acc, false);
    store(o, 1);
  }
}

void gemv(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  // Weight rows are the parallel axis: each thread streams its own contiguous slice of W once.
  // Chunks hold ≥ 64 KB of weights so a pool dispatch is worth it; small matrices stay inline.
  const int64_t rowBytes = w.cols * (w.kind == Packing::F32 ? 4 : w.kind == Packing::Bf16 ? 2 : 1);
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 16) / std::max<int64_t>(rowBytes, 1)) / 4 * 4;
  parallel_for(w.rows, grain, [&](int64_t o0, int64_t o1) {
    switch (rows) {
      case 1: gemv_rows<1>(x, w, out, o0, o1, accumulate); break;
      case 2: gemv_rows<2>(x, w, out, o0, o1, accumulate); break;
      case 3: gemv_rows<3>(x, w, out, o0, o1, accumulate); break;
      default: gemv_rows<4>(x, w, out, o0, o1, accumulate); break;
    }
  });
}

// ---------------------------------------------------------------- panels (prefill, backward)
// dst (n × (c1 − c0)) = dequant(W)[r0 : r0 + n, c0 : c1]; c0 is a multiple of Q8_BLOCK.
void dequant_panel(const PackedW& w, int64_t r0, int64_t n, int64_t c0, int64_t c1, float* dst) {
  const int64_t C = w.cols, width = c1 - c0, nb = q8_blocks(C);
  for (int64_t i = 0; i < n; i++) {
    float* d = dst + i * width;
    const int64_t r = r0 + i;
    if (w.kind == Packing::Bf16) {
      const uint16_t* s = w.bits + r * C + c0;
      int64_t j = 0;
#if defined(__AVX2__)
      for (; j + 8 <= width; j += 8) _mm256_storeu_ps(d + j, load_bf16x8(s + j));
#endif
      for (; j < width; j++) d[j] = bf16_to_f32(s[j]);
    } else {
      const int8_t* s = w.qs + r * C + c0;
      const float* sc = w.scales + r * nb + c0 / Q8_BLOCK;
      int64_t j = 0;
#if defined(__AVX2__)
      for (; j + 8 <= width; j += 8) {
        __m256 scale = _mm256_set1_ps(sc[j / Q8_BLOCK]);
        _mm256_storeu_ps(d + j, _mm256_mul_ps(load_i8x8(s + j), scale));
      }
#endif
      for (; j < width; j++) d[j] = static_cast<float>(s[j]) * sc[j / Q8_BLOCK];
    }
  }
}

// C (m × n, ldc) = A (m × k, lda) · op(B) + beta·C on the calling thread, op(B) = Bᵀ (B n × k) when
// transB, else B (k × n); ldb = its row length. The engine's GEMM choice (gemm.cc: the AVX-512 GEMM
// when active, else OpenBLAS or the built-in GEMM).
void tile_gemm(bool transB, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
  sgemm_ld(false, false, transB, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

struct Buffer {
  float* p = nullptr;
  size_t n = 0;
  ~Buffer() { std::free(p); }
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, (want * sizeof(float) + 63) / 64 * 64));
      n = want;
    }
    return p;
  }
};

// One panel buffer per thread, reused across calls (≤ max(4 MB, 64 rows × inF floats)).
thread_local Buffer t_panel;

void panel_forward(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  const int64_t C = w.cols, O = w.rows;
  // panel height: fits PANEL_FLOATS, a multiple of 16, and leaves ≥ 2 tiles per pool thread
  int64_t rowsPer = std::min(PANEL_MAX_ROWS, std::max(PANEL_ROWS, PANEL_FLOATS / std::max<int64_t>(C, 1)));
  const int64_t balanced = (O + 2 * pool_threads() - 1) / (2 * pool_threads());
  rowsPer = std::max<int64_t>(16, std::min(rowsPer, (balanced + 15) / 16 * 16));
  const int64_t tiles = (O + rowsPer - 1) / rowsPer;
  parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    float* panel = t_panel.get(static_cast<size_t>(rowsPer * C));
    for (int64_t t = t0; t < t1; t++) {
      const int64_t o0 = t * rowsPer, n = std::min(rowsPer, O - o0);
      dequant_panel(w, o0, n, 0, C, panel);
      tile_gemm(true, rows, n, C, x, C, panel, C, accumulate ? 1.0f : 0.0f, out + o0, O);
    }
  });
}

}  // namespace

void packed_linear(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  if (rows <= 0 || w.rows <= 0) return;
  if (w.cols == 0) {
    if (!accumulate) std::memset(out, 0, sizeof(float) * rows * w.rows);
    return;
  }
  if (rows <= GEMV_MAX_ROWS) gemv(x, w, out, rows, accumulate);
  else panel_forward(x, w, out, rows, accumulate);
}

bool decode_uses_avx512() { return use_avx512(); }

void gemv_f32(const float* x, const float* w, int64_t outF, int64_t inF, float* out, int64_t rows, bool accumulate) {
  if (rows <= 0 || outF <= 0) return;
  PackedW p{};
  p.kind = Packing::F32;
  p.rows = outF;
  p.cols = inF;
  p.f32 = w;
  gemv(x, p, out, rows, accumulate);
}

void packed_linear_backward(const float* g, const PackedW& w, float* dx, int64_t rows) {
  const int64_t C = w.cols, O = w.rows;
  if (rows <= 0 || C <= 0) return;
  if (O == 0) {
    std::memset(dx, 0, sizeof(float) * rows * C);
    return;
  }
  // column strips of dx (multiples of the block) are independent; W's rows are walked in chunks
  constexpr int64_t STRIP = 256, CHUNK = 256;
  const int64_t strips = (C + STRIP - 1) / STRIP;
  parallel_for(strips, 1, [&](int64_t s0, int64_t s1) {
    float* panel = t_panel.get(static_cast<size_t>(CHUNK * STRIP));
    for (int64_t s = s0; s < s1; s++) {
      const int64_t c0 = s * STRIP, c1 = std::min(C, c0 + STRIP), width = c1 - c0;
      for (int64_t o0 = 0; o0 < O; o0 += CHUNK) {
        const int64_t n = std::min(CHUNK, O - o0);
        dequant_panel(w, o0, n, c0, c1, panel);
        tile_gemm(false, rows, width, n, g + o0, O, panel, width, o0 == 0 ? 0.0f : 1.0f, dx + c0, C);
      }
    }
  });
}

void quantize_bf16(const float* src, uint16_t* bits, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      uint32_t u;
      std::memcpy(&u, src + i, 4);
      if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu) != 0) bits[i] = static_cast<uint16_t>((u >> 16) | 0x40);
      else bits[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
  });
}

bool quantize_int8(const float* src, int8_t* qs, float* scales, int64_t rows, int64_t cols) {
  const int64_t nb = q8_blocks(cols);
  std::atomic<bool> ok{true};
  parallel_for(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      for (int64_t b = 0; b < nb; b++) {
        const int64_t c0 = b * Q8_BLOCK, c1 = std::min(cols, c0 + Q8_BLOCK);
        const float* s = src + r * cols;
        float amax = 0;
        for (int64_t j = c0; j < c1; j++) {
          const float a = std::fabs(s[j]);
          if (a > amax) amax = a;
          else if (a != a) amax = INFINITY;  // NaN: reported like an infinity
        }
        if (!std::isfinite(amax)) {
          ok = false;
          amax = 0;
        }
        // the same arithmetic as quant.ts (double division rounded once to float32)
        const float d = static_cast<float>(static_cast<double>(amax) / 127.0);
        const double inv = d == 0.0f ? 0.0 : 1.0 / static_cast<double>(d);
        for (int64_t j = c0; j < c1; j++) {
          double v = std::round(static_cast<double>(s[j]) * inv);
          qs[r * cols + j] = static_cast<int8_t>(std::max(-127.0, std::min(127.0, v)));
        }
        scales[r * nb + b] = d;
      }
    }
  });
  return ok;
}

}  // namespace flamingo
