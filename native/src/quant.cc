#include "quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm.h"
#include "gemm_avx512.h"
#include "pool.h"
#include "scratch.h"
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
// rows per pass (the x loads are shared and NW·R accumulator chains run in parallel), and each
// thread reads one contiguous range of W (and of the scales) front to back.
//
// Software prefetch runs a fixed distance (PF_BYTES) ahead in each of the NW row streams; near the
// end of a row it moves on to the same stream's row of the next group (row v + NW), which is where
// that stream continues. An earlier version prefetched the whole next group (NW rows) at the pace
// of the current one, i.e. NW·inF·bytes ahead: fine for 2048-wide rows, but for the 5632-wide MLP
// down projection that is 22–90 KB in flight next to a 22 KB x, more than L1 holds, so prefetched
// lines were evicted before use and those products streamed at half the speed of the others.
// With AVX-512 (checked at run time) a 32-weight block is two 16-lane converts instead of four
// 8-lane ones; the arithmetic (per-block sums, then × scale for int8) and its order are the same
// in both paths, and float32 weights keep the summation order they always had.
#if defined(__AVX2__) && defined(__FMA__)
static inline __m256 load_bf16x8(const uint16_t* p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline __m256 load_i8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
#endif

static inline float to_f32(float v) { return v; }
static inline float to_f32(uint16_t h) { return bf16_to_f32(h); }
static inline float to_f32(int8_t q) { return static_cast<float>(q); }

// int8 weights carry one scale per block; bf16 and float32 none.
template <class T>
constexpr bool kScaled = std::is_same<T, int8_t>::value;

// Bytes each row stream's prefetch runs ahead of its loads: ~16 lines per stream, so 4 streams keep
// ~64 lines in flight (enough to cover DRAM latency at this bandwidth) while the prefetched data
// plus x stay well inside L1.
constexpr int64_t PF_BYTES = 1024;

// Columns past the last full block (one partial block: the same scale).
template <int R, int NW, class T>
void tail(const T* w, const float* d, int64_t C, int64_t nb, const float* x, int64_t j0, float* acc) {
  if (j0 >= C) return;
  for (int v = 0; v < NW; v++)
    for (int r = 0; r < R; r++) {
      float t = 0;
      for (int64_t j = j0; j < C; j++) t += to_f32(w[v * C + j]) * x[r * C + j];
      acc[r * NW + v] += kScaled<T> ? t * d[v * nb + j0 / Q8_BLOCK] : t;
    }
}

// One prefetcht0. Through inline asm because GCC 12 dropped __builtin_prefetch from the 4-row
// kernels at -O3 (the loop then ran without any software prefetch).
static inline void prefetch_line(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}

// Prefetch for block b of a pass over blocks [b0, b1) of the NW rows at wg (scales dg): each stream
// v at element b·32 + pf of its row, or, past the pass's end, of the same stream's next row (v + NW)
// from b0 on, which is where that stream continues (when `next`: those rows belong to W).
template <int NW, class T>
static inline void prefetch_block(const T* wg, const float* dg, int64_t C, int64_t nb, int64_t b, int64_t b0,
                                  int64_t b1, int64_t pf, bool next) {
  constexpr int64_t BLOCK_BYTES = Q8_BLOCK * static_cast<int64_t>(sizeof(T));
  // int8 blocks are half a line: every other block, so each line is requested once
  if (BLOCK_BYTES < 64 && (b & 1)) return;
  const int64_t p = b * Q8_BLOCK + pf, end = b1 * Q8_BLOCK;
  const bool wrap = p >= end;
  if (wrap && !next) return;
  const int64_t at = wrap ? NW * C + b0 * Q8_BLOCK + (p - end) : p;
  for (int v = 0; v < NW; v++) {
    const char* a = reinterpret_cast<const char*>(wg + v * C + at);
    for (int64_t i = 0; i < BLOCK_BYTES; i += 64) prefetch_line(a + i);
  }
  if (kScaled<T> && (b & 15) == 0) {
    const int64_t pb = b + pf / Q8_BLOCK;
    const int64_t sat = pb >= b1 ? NW * nb + b0 + (pb - b1) : pb;
    for (int v = 0; v < NW; v++) prefetch_line(dg + v * nb + sat);
  }
}

// One pass over blocks [b0, b1) of the NW consecutive rows at wg (length C; scales at dg, nb a row)
// for R rows of x. The lane accumulators start at zero (first) or from `part`, and end in `part`,
// or (last) are summed with the partial last block into acc[r·NW + v]. Passes over K in several
// pieces therefore add the same products in the same order as one pass over the whole row.
// part holds 16 floats per (v, r): part[(v·R + r)·16 + lane].
#if defined(__AVX2__) && defined(__FMA__)
static inline void load4(const float* p, __m256 (&w)[4]) {
  for (int i = 0; i < 4; i++) w[i] = _mm256_loadu_ps(p + 8 * i);
}
static inline void load4(const uint16_t* p, __m256 (&w)[4]) {
  for (int i = 0; i < 4; i++) w[i] = load_bf16x8(p + 8 * i);
}
static inline void load4(const int8_t* p, __m256 (&w)[4]) {
  for (int i = 0; i < 4; i++) w[i] = load_i8x8(p + 8 * i);
}

template <int R, int NW, class T>
void pass_avx2(const T* wg, const float* dg, int64_t C, int64_t nb, const float* x, int64_t b0, int64_t b1, int64_t pf,
               bool next, float* part, bool first, bool last, float* acc) {
  __m256 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(part + (v * R + r) * 16);
  for (int64_t b = b0; b < b1; b++) {
    const int64_t j = b * Q8_BLOCK;
    prefetch_block<NW, T>(wg, dg, C, nb, b, b0, b1, pf, next);
    for (int v = 0; v < NW; v++) {
      __m256 w[4];
      load4(wg + v * C + j, w);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        if (kScaled<T>) {
          __m256 s = _mm256_mul_ps(w[0], _mm256_loadu_ps(xr));
          s = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xr + 8), s);
          s = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xr + 16), s);
          s = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xr + 24), s);
          a[r][v] = _mm256_fmadd_ps(s, _mm256_broadcast_ss(dg + v * nb + b), a[r][v]);
        } else {
          __m256 s = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xr), a[r][v]);
          s = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xr + 8), s);
          s = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xr + 16), s);
          a[r][v] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xr + 24), s);
        }
      }
    }
  }
  if (!last) {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < NW; v++) _mm256_storeu_ps(part + (v * R + r) * 16, a[r][v]);
    return;
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = hsum(V{a[r][v]});
  tail<R, NW, T>(wg, dg, C, nb, x, b1 * Q8_BLOCK, acc);
}

// GCC 12's AVX-512 headers start some conversions from an "undefined" register, which its
// warnings report as uninitialised inside target-attribute functions; the values are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FLAMINGO_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

FLAMINGO_AVX512 static inline void load2(const float* p, __m512& w0, __m512& w1) {
  w0 = _mm512_loadu_ps(p);
  w1 = _mm512_loadu_ps(p + 16);
}
FLAMINGO_AVX512 static inline void load2(const uint16_t* p, __m512& w0, __m512& w1) {
  w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  w1 = _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16))), 16));
}
FLAMINGO_AVX512 static inline void load2(const int8_t* p, __m512& w0, __m512& w1) {
  w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
}

template <int R, int NW, class T>
FLAMINGO_AVX512 void pass_avx512(const T* wg, const float* dg, int64_t C, int64_t nb, const float* x, int64_t b0,
                                 int64_t b1, int64_t pf, bool next, float* part, bool first, bool last, float* acc) {
  __m512 a[R][NW];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) a[r][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(part + (v * R + r) * 16);
  for (int64_t b = b0; b < b1; b++) {
    const int64_t j = b * Q8_BLOCK;
    prefetch_block<NW, T>(wg, dg, C, nb, b, b0, b1, pf, next);
    for (int v = 0; v < NW; v++) {
      __m512 w0, w1;
      load2(wg + v * C + j, w0, w1);
      for (int r = 0; r < R; r++) {
        const float* xr = x + r * C + j;
        if (kScaled<T>) {
          const __m512 s = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(xr)));
          a[r][v] = _mm512_fmadd_ps(s, _mm512_set1_ps(dg[v * nb + b]), a[r][v]);
        } else {
          a[r][v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), a[r][v]));
        }
      }
    }
  }
  if (!last) {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < NW; v++) _mm512_storeu_ps(part + (v * R + r) * 16, a[r][v]);
    return;
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NW; v++) acc[r * NW + v] = _mm512_reduce_add_ps(a[r][v]);
  tail<R, NW, T>(wg, dg, C, nb, x, b1 * Q8_BLOCK, acc);
}
#pragma GCC diagnostic pop
#else
// Without SIMD: one running sum per (v, r) (int8: of per-block sums × scale); part keeps it.
template <int R, int NW, class T>
void pass_avx2(const T* wg, const float* dg, int64_t C, int64_t nb, const float* x, int64_t b0, int64_t b1, int64_t,
               bool, float* part, bool first, bool last, float* acc) {
  float t[R * NW];
  for (int i = 0; i < R * NW; i++) t[i] = first ? 0.0f : part[i * 16];
  for (int64_t b = b0; b < b1; b++)
    for (int v = 0; v < NW; v++)
      for (int r = 0; r < R; r++) {
        float& y = t[r * NW + v];
        if (kScaled<T>) {
          float s = 0;
          for (int64_t j = b * Q8_BLOCK; j < (b + 1) * Q8_BLOCK; j++) s += to_f32(wg[v * C + j]) * x[r * C + j];
          y += s * dg[v * nb + b];
        } else {
          for (int64_t j = b * Q8_BLOCK; j < (b + 1) * Q8_BLOCK; j++) y += to_f32(wg[v * C + j]) * x[r * C + j];
        }
      }
  if (!last) {
    for (int i = 0; i < R * NW; i++) part[i * 16] = t[i];
    return;
  }
  for (int i = 0; i < R * NW; i++) acc[i] = t[i];
  tail<R, NW, T>(wg, dg, C, nb, x, b1 * Q8_BLOCK, acc);
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

// K in pieces: when x (R rows × K floats) is longer than KC_FROM elements it no longer fits in L1
// beside the weight streams, so passes cover pieces of ≤ KC elements of x (8 KB). Measured
// 2026-12-05 on Zen 5 (48 KB L1), 1 × 8192 → 2048: 34 → 66 GB/s (fp32), 23 → 52 GB/s (int8) with
// pieces; 1 × 5632 → 2048 (22 KB of x) is as fast or faster in one pass. FLAMINGO_GEMV_KC=n sets
// the piece length (0: whole rows always).
constexpr int64_t KC_FROM = 6144;
const int64_t g_kc = std::getenv("FLAMINGO_GEMV_KC") ? std::atoll(std::getenv("FLAMINGO_GEMV_KC")) : 2048;

// One pass's lane accumulators per output row and x row, per pool thread (K split in pieces).
thread_local std::vector<float> t_part;

// Output rows [o0, o1) of out (R rows of x, ldo = W.rows) on the calling thread.
template <int R, class T, bool AVX512>
void gemv_range(const T* w, const float* d, int64_t O, int64_t C, const float* x, float* out, int64_t o0, int64_t o1,
                bool accumulate) {
  constexpr int NW = R == 1 ? 4 : 2;
  const int64_t nb = q8_blocks(C), full = C / Q8_BLOCK;
  // prefetch distance in elements, a whole number of blocks
  const int64_t pf = std::max<int64_t>(1, PF_BYTES / (Q8_BLOCK * static_cast<int64_t>(sizeof(T)))) * Q8_BLOCK;
  // K in pieces of ≤ kc elements (equal numbers of blocks), or one pass
  const bool split = g_kc > 0 && R * C > KC_FROM;
  const int64_t maxBlocks = split ? std::max<int64_t>(1, g_kc / R / Q8_BLOCK) : full;
  const int64_t pieces = full <= maxBlocks ? 1 : (full + maxBlocks - 1) / maxBlocks;
  const int64_t per = pieces == 1 ? full : (full + pieces - 1) / pieces;
  float* part = nullptr;
  if (pieces > 1) {
    const size_t want = static_cast<size_t>((o1 - o0) * R * 16);
    if (t_part.size() < want) t_part.resize(want);
    part = t_part.data();
  }
  float acc[R * NW];
  auto store = [&](int64_t o, int nw) {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < nw; v++) {
        float& y = out[r * O + o + v];
        y = accumulate ? y + acc[r * nw + v] : acc[r * nw + v];
      }
  };
  auto pass = [&](auto nwTag, int64_t o, int64_t b0, int64_t b1, bool next) {
    constexpr int N = decltype(nwTag)::value;
    const float* dg = kScaled<T> ? d + o * nb : nullptr;
    float* pg = part ? part + (o - o0) * R * 16 : nullptr;
    const bool first = b0 == 0, last = b1 == full;
#if defined(__AVX2__) && defined(__FMA__)
    if (AVX512) {
      pass_avx512<R, N, T>(w + o * C, dg, C, nb, x, b0, b1, pf, next, pg, first, last, acc);
      if (last) store(o, N);
      return;
    }
#endif
    pass_avx2<R, N, T>(w + o * C, dg, C, nb, x, b0, b1, pf, next, pg, first, last, acc);
    if (last) store(o, N);
  };
  for (int64_t b0 = 0; b0 < full || b0 == 0; b0 += per) {
    const int64_t b1 = std::min(full, b0 + per);
    int64_t o = o0;
    // the next group may belong to the other thread's range: prefetching it is harmless
    for (; o + NW <= o1; o += NW) pass(std::integral_constant<int, NW>{}, o, b0, b1, o + 2 * NW <= O);
    for (; o < o1; o++) pass(std::integral_constant<int, 1>{}, o, b0, b1, o + 2 <= O);
    if (b1 == full) break;
  }
}

template <int R, class T>
void gemv_rows(const T* w, const float* d, int64_t O, int64_t C, const float* x, float* out, int64_t o0, int64_t o1,
               bool accumulate) {
#if defined(__AVX2__) && defined(__FMA__)
  if (use_avx512()) return gemv_range<R, T, true>(w, d, O, C, x, out, o0, o1, accumulate);
#endif
  gemv_range<R, T, false>(w, d, O, C, x, out, o0, o1, accumulate);
}

template <class T>
void gemv_typed(const T* w, const float* d, int64_t O, int64_t C, const float* x, float* out, int64_t rows,
                bool accumulate) {
  // Weight rows are the parallel axis: each thread streams its own contiguous slices of W once.
  // Chunks hold ≥ 64 KB of weights so a pool dispatch is worth it; small matrices stay inline.
  const int64_t rowBytes = C * static_cast<int64_t>(sizeof(T));
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 16) / std::max<int64_t>(rowBytes, 1)) / 4 * 4;
  parallel_for(O, grain, [&](int64_t o0, int64_t o1) {
    switch (rows) {
      case 1: gemv_rows<1, T>(w, d, O, C, x, out, o0, o1, accumulate); break;
      case 2: gemv_rows<2, T>(w, d, O, C, x, out, o0, o1, accumulate); break;
      case 3: gemv_rows<3, T>(w, d, O, C, x, out, o0, o1, accumulate); break;
      default: gemv_rows<4, T>(w, d, O, C, x, out, o0, o1, accumulate); break;
    }
  });
}

void gemv(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  if (w.kind == Packing::F32) return gemv_typed(w.f32, nullptr, w.rows, w.cols, x, out, rows, accumulate);
  if (w.kind == Packing::Bf16) return gemv_typed(w.bits, nullptr, w.rows, w.cols, x, out, rows, accumulate);
  gemv_typed(w.qs, w.scales, w.rows, w.cols, x, out, rows, accumulate);
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

// One panel buffer per thread, reused across calls (≤ max(4 MB, 64 rows × inF floats)).
thread_local Scratch t_panel;

void panel_forward(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  const int64_t C = w.cols, O = w.rows;
  // panel height: fits PANEL_FLOATS, a multiple of 16, and leaves ≥ 2 tiles per pool thread
  int64_t rowsPer = std::min(PANEL_MAX_ROWS, std::max(PANEL_ROWS, PANEL_FLOATS / std::max<int64_t>(C, 1)));
  const int64_t balanced = (O + 2 * pool_threads() - 1) / (2 * pool_threads());
  rowsPer = std::max<int64_t>(16, std::min(rowsPer, (balanced + 15) / 16 * 16));
  const int64_t tiles = (O + rowsPer - 1) / rowsPer;
  if (gemm_uses_avx512()) {
    // The AVX-512 GEMM dequantises W while packing it for its micro-kernel: the float32 panel
    // (written, then read again by the packing) is skipped, a third of the memory traffic per tile.
    parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        const int64_t o0 = t * rowsPer, n = std::min(rowsPer, O - o0);
        if (n > 1) {
          sgemm_avx512_packed_st(rows, n, x, C, w, o0, accumulate ? 1.0f : 0.0f, out + o0, O);
        } else {  // a one-column tile: sgemm_ld's own route, as with panels
          float* panel = t_panel.get(static_cast<size_t>(C));
          dequant_panel(w, o0, n, 0, C, panel);
          tile_gemm(true, rows, n, C, x, C, panel, C, accumulate ? 1.0f : 0.0f, out + o0, O);
        }
      }
    });
    return;
  }
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
