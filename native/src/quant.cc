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

// Rows of x handled together by the register kernels (decode is 1; beam / small batches up to 4).
constexpr int64_t GEMV_MAX_ROWS = 4;
// Output rows per dequantised panel of the prefill path.
constexpr int64_t PANEL_ROWS = 64;

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------- register kernels (decode)
// acc[r] = Σ_j x[r][j] · w[j] for one weight row, weights widened in registers.
#if defined(__AVX2__) && defined(__FMA__)
static inline __m256 load_bf16x8(const uint16_t* p) {
  __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline __m256 load_i8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

template <int R>
void row_bf16(const uint16_t* w, const float* x, int64_t ldx, int64_t cols, float* acc) {
  __m256 a0[R], a1[R];
  for (int r = 0; r < R; r++) a0[r] = a1[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) {
    __m256 w0 = load_bf16x8(w + j), w1 = load_bf16x8(w + j + 8);
    for (int r = 0; r < R; r++) {
      a0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * ldx + j), a0[r]);
      a1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * ldx + j + 8), a1[r]);
    }
  }
  for (int r = 0; r < R; r++) {
    float s = hsum(V{_mm256_add_ps(a0[r], a1[r])});
    for (int64_t jj = j; jj < cols; jj++) s += bf16_to_f32(w[jj]) * x[r * ldx + jj];
    acc[r] = s;
  }
}

template <int R>
void row_int8(const int8_t* q, const float* d, const float* x, int64_t ldx, int64_t cols, float* acc) {
  __m256 tot[R];
  for (int r = 0; r < R; r++) tot[r] = _mm256_setzero_ps();
  const int64_t full = cols / Q8_BLOCK;
  for (int64_t b = 0; b < full; b++) {
    const int8_t* qb = q + b * Q8_BLOCK;
    __m256 w0 = load_i8x8(qb), w1 = load_i8x8(qb + 8), w2 = load_i8x8(qb + 16), w3 = load_i8x8(qb + 24);
    __m256 db = _mm256_set1_ps(d[b]);
    for (int r = 0; r < R; r++) {
      const float* xb = x + r * ldx + b * Q8_BLOCK;
      __m256 s = _mm256_mul_ps(w0, _mm256_loadu_ps(xb));
      s = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), s);
      s = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), s);
      s = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), s);
      tot[r] = _mm256_fmadd_ps(s, db, tot[r]);
    }
  }
  for (int r = 0; r < R; r++) {
    float s = hsum(V{tot[r]});
    if (full * Q8_BLOCK < cols) {
      float t = 0;
      for (int64_t jj = full * Q8_BLOCK; jj < cols; jj++) t += static_cast<float>(q[jj]) * x[r * ldx + jj];
      s += t * d[full];
    }
    acc[r] = s;
  }
}
#else
template <int R>
void row_bf16(const uint16_t* w, const float* x, int64_t ldx, int64_t cols, float* acc) {
  for (int r = 0; r < R; r++) {
    float s = 0;
    for (int64_t j = 0; j < cols; j++) s += bf16_to_f32(w[j]) * x[r * ldx + j];
    acc[r] = s;
  }
}
template <int R>
void row_int8(const int8_t* q, const float* d, const float* x, int64_t ldx, int64_t cols, float* acc) {
  for (int r = 0; r < R; r++) {
    float s = 0;
    for (int64_t b = 0; b * Q8_BLOCK < cols; b++) {
      float t = 0;
      for (int64_t j = b * Q8_BLOCK; j < std::min(cols, (b + 1) * Q8_BLOCK); j++) t += static_cast<float>(q[j]) * x[r * ldx + j];
      s += t * d[b];
    }
    acc[r] = s;
  }
}
#endif

template <int R>
void gemv_rows(const float* x, const PackedW& w, float* out, int64_t o0, int64_t o1, bool accumulate) {
  const int64_t C = w.cols, nb = q8_blocks(C);
  float acc[R];
  for (int64_t o = o0; o < o1; o++) {
    if (w.kind == Packing::Bf16) row_bf16<R>(w.bits + o * C, x, C, C, acc);
    else row_int8<R>(w.qs + o * C, w.scales + o * nb, x, C, C, acc);
    for (int r = 0; r < R; r++) {
      float& y = out[r * w.rows + o];
      y = accumulate ? y + acc[r] : acc[r];
    }
  }
}

void gemv(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  // weight rows are the parallel axis: each thread streams its own slice of W once
  const int64_t grain = std::max<int64_t>(4, 32768 / std::max<int64_t>(w.cols, 1));
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
// transB, else B (k × n); ldb = its row length.
void tile_gemm(bool transB, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
#ifdef FLAMINGO_OPENBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
#else
  // without BLAS: the built-in blocked GEMM into a contiguous temporary (its pool calls run inline here)
  std::vector<float> t(static_cast<size_t>(m * n));
  std::vector<float> ac(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m; i++) std::memcpy(&ac[i * k], a + i * lda, sizeof(float) * k);
  GemmArgs g{};
  g.transA = false;
  g.transB = transB;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = 1.0f;
  g.beta = 0.0f;
  g.a = ac.data();
  g.b = b;  // panels are contiguous: ldb equals k (transB) or n
  g.c = t.data();
  gemm_builtin(g);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) c[i * ldc + j] = t[i * n + j] + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
#endif
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

// One panel buffer per thread, reused across calls (PANEL_ROWS × inF floats at most: ≤ 3 MB).
thread_local Buffer t_panel;

void panel_forward(const float* x, const PackedW& w, float* out, int64_t rows, bool accumulate) {
  const int64_t C = w.cols, O = w.rows;
  const int64_t tiles = (O + PANEL_ROWS - 1) / PANEL_ROWS;
  parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    float* panel = t_panel.get(static_cast<size_t>(PANEL_ROWS * C));
    for (int64_t t = t0; t < t1; t++) {
      const int64_t o0 = t * PANEL_ROWS, n = std::min(PANEL_ROWS, O - o0);
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
