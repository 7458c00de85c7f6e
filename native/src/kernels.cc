#include "kernels.h"

#include <cstring>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "pool.h"
#include "simd.h"

namespace flamingo {
namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();
// Elements per parallel chunk: below this, waking a worker (~10 µs) costs more than it saves.
constexpr int64_t GRAIN_ELEMS = 32768;

inline int64_t row_grain(int64_t cols, int64_t factor = 1) {
  return std::max<int64_t>(1, GRAIN_ELEMS / (std::max<int64_t>(cols, 1) * factor));
}

// Partial vectors for row tails: pad lanes past `rem` with `pad`, write back only `rem` lanes.
inline V load_tail(const float* p, int64_t rem, float pad) {
  alignas(32) float t[8];
  for (int i = 0; i < 8; i++) t[i] = i < rem ? p[i] : pad;
  return vload(t);
}
inline void store_tail(float* p, V v, int64_t rem) {
  alignas(32) float t[8];
  vstore(t, v);
  for (int i = 0; i < rem; i++) p[i] = t[i];
}
inline V mask_tail(const uint8_t* p, int64_t rem) {
  uint8_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < rem; i++) t[i] = p[i];
  return vmask_u8(t);
}

inline float row_max(const float* x, int64_t n) {
  V m = vset(NEG_INF);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = vmax(m, vload(x + i));
  if (i < n) m = vmax(m, load_tail(x + i, n - i, NEG_INF));
  return hmax(m);
}

// Σ exp(x − mx), optionally storing the exponentials.
inline float exp_sum(const float* x, float* out, int64_t n, float mx) {
  V vm = vset(mx), s = vzero();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    V e = vexp(vload(x + i) - vm);
    if (out) vstore(out + i, e);
    s = s + e;
  }
  if (i < n) {
    V e = vexp(load_tail(x + i, n - i, NEG_INF) - vm);
    if (out) store_tail(out + i, e, n - i);
    s = s + e;
  }
  return hsum(s);
}

inline void scale_row(float* x, int64_t n, float f) {
  V vf = vset(f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vstore(x + i, vload(x + i) * vf);
  for (; i < n; i++) x[i] *= f;
}

inline float dot_row(const float* a, const float* b, int64_t n) {
  V s = vzero();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) s = vfma(vload(a + i), vload(b + i), s);
  float r = hsum(s);
  for (; i < n; i++) r += a[i] * b[i];
  return r;
}

inline float sum_row(const float* a, int64_t n) {
  V s = vzero();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) s = s + vload(a + i);
  float r = hsum(s);
  for (; i < n; i++) r += a[i];
  return r;
}

// Elementwise driver: f(const V* in, V* out) on NIN inputs / NOUT outputs, tails zero-padded.
// Each output lane depends only on the same lane of the inputs, so in-place aliasing is safe.
template <int NIN, int NOUT, class F>
void elementwise(int64_t n, const float* const (&in)[NIN], float* const (&out)[NOUT], F f) {
  parallel_for(n, GRAIN_ELEMS, [&](int64_t b, int64_t e) {
    V vi[NIN], vo[NOUT];
    int64_t i = b;
    for (; i + 8 <= e; i += 8) {
      for (int k = 0; k < NIN; k++) vi[k] = vload(in[k] + i);
      f(vi, vo);
      for (int k = 0; k < NOUT; k++) vstore(out[k] + i, vo[k]);
    }
    if (i < e) {
      for (int k = 0; k < NIN; k++) vi[k] = load_tail(in[k] + i, e - i, 0.0f);
      f(vi, vo);
      for (int k = 0; k < NOUT; k++) store_tail(out[k] + i, vo[k], e - i);
    }
  });
}

// Splits rows into at most pool_threads() contiguous parts, each accumulating its own copy of
// the parameter gradients (part 0 straight into the destination), then reduces. Keeps dw/db
// accumulation race-free without atomics.
template <class F>
void rows_with_partials(int64_t rows, int64_t cols, int nacc, float* const* dst, F f) {
  int64_t grain = row_grain(cols, 2);
  int64_t parts = std::min<int64_t>(pool_threads(), std::max<int64_t>(1, rows / grain));
  if (parts <= 1) {
    f(int64_t{0}, rows, dst);
    return;
  }
  std::vector<float> scratch(static_cast<size_t>((parts - 1) * nacc * cols), 0.0f);
  parallel_for(parts, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; p++) {
      float* acc[2] = {nullptr, nullptr};
      for (int k = 0; k < nacc; k++) {
        acc[k] = dst[k] == nullptr ? nullptr
                 : p == 0          ? dst[k]
                                   : scratch.data() + ((p - 1) * nacc + k) * cols;
      }
      f(rows * p / parts, rows * (p + 1) / parts, acc);
    }
  });
  for (int k = 0; k < nacc; k++) {
    if (!dst[k]) continue;
    for (int64_t p = 1; p < parts; p++) {
      const float* s = scratch.data() + ((p - 1) * nacc + k) * cols;
      for (int64_t j = 0; j < cols; j++) dst[k][j] += s[j];
    }
  }
}

// ---------------------------------------------------------------- activations
constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float GELU_C = 0.044715f;
constexpr float INV_SQRT_2PI = 0.3989422804014327f;

template <Act K>
inline V act_fwd(V x) {
  if constexpr (K == Act::Gelu) return x * vnormcdf(x);
  if constexpr (K == Act::GeluTanh) {
    // ½(1 + tanh u) = σ(2u): no cancellation on the negative side.
    V u = vset(SQRT_2_OVER_PI) * vfma(vset(GELU_C) * x, x * x, x);
    return x * vsigmoid(u + u);
  }
  if constexpr (K == Act::QuickGelu) return x * vsigmoid(vset(1.702f) * x);
  if constexpr (K == Act::Silu) return x * vsigmoid(x);
  if constexpr (K == Act::Tanh) return vtanh(x);
  if constexpr (K == Act::Relu) return vmax(vzero(), x);
  if constexpr (K == Act::Sigmoid) return vsigmoid(x);
  return x;
}

template <Act K>
inline V act_grad(V x) {  // f'(x)
  const V one = vset(1.0f);
  if constexpr (K == Act::Gelu) {
    V pdf = vset(INV_SQRT_2PI) * vexp(vset(-0.5f) * x * x);
    return vfma(x, pdf, vnormcdf(x));
  }
  if constexpr (K == Act::GeluTanh) {
    // f = x·σ(2u) → f' = σ(2u) + x · 2σ(2u)(1 − σ(2u)) · u'
    V x2 = x * x;
    V u = vset(SQRT_2_OVER_PI) * vfma(vset(GELU_C) * x, x2, x);
    V du = vset(SQRT_2_OVER_PI) * vfma(vset(3.0f * GELU_C), x2, one);
    V s, sm;
    vsigmoid2(u + u, s, sm);
    return vfma(vset(2.0f) * x * s * sm, du, s);
  }
  if constexpr (K == Act::QuickGelu) {
    V s, sm;
    vsigmoid2(vset(1.702f) * x, s, sm);
    return vfma(vset(1.702f) * x, s * sm, s);
  }
  if constexpr (K == Act::Silu) {
    V s, sm;
    vsigmoid2(x, s, sm);
    return vfma(x, s * sm, s);
  }
  if constexpr (K == Act::Tanh) {
    // 1 − tanh² = sech² = 4e/(1+e)², e = e^{−2|x|}: no cancellation for large |x|.
    V e = vexp(vset(-2.0f) * vabs(x));
    V d = one + e;
    return vset(4.0f) * e / (d * d);
  }
  if constexpr (K == Act::Relu) return vand(vgt(x, vzero()), one);
  if constexpr (K == Act::Sigmoid) {
    V s, sm;
    vsigmoid2(x, s, sm);
    return s * sm;
  }
  return one;
}

template <Act K>
void act_fwd_run(const float* x, float* out, int64_t n) {
  elementwise<1, 1>(n, {x}, {out}, [](const V* i, V* o) { o[0] = act_fwd<K>(i[0]); });
}
template <Act K>
void act_bwd_run(const float* x, const float* dy, float* dx, int64_t n) {
  elementwise<2, 1>(n, {x, dy}, {dx}, [](const V* i, V* o) { o[0] = i[1] * act_grad<K>(i[0]); });
}

// ---------------------------------------------------------------- masked softmax helpers
struct RowView {
  const uint8_t* mask;  // null → no mask
  int64_t end;          // keys [end, lk) are causally hidden
  int64_t visible;
};

inline RowView row_view(const MaskSpec& s, int64_t r) {
  int64_t i = r % s.lq;
  int64_t b = r / (s.heads * s.lq);
  RowView v;
  v.end = s.lk;
  if (s.causal) v.end = std::max<int64_t>(0, std::min<int64_t>(s.lk, i + s.causalOffset + 1));
  v.mask = s.mask ? s.mask + b * s.maskBatchStride + i * s.maskQStride : nullptr;
  if (v.mask) {
    int64_t c = 0;
    for (int64_t j = 0; j < v.end; j++) c += v.mask[j] != 0;
    v.visible = c;
  } else {
    v.visible = v.end;
  }
  return v;
}

// ---------------------------------------------------------------- rope tables
// cos/sin of pos·θ^(−2i/d), computed in double (angles reach thousands of radians, where float
// angles would lose ~1e-4) and cached per (θ, d) up to a position bound, since every layer of a
// forward pass asks for the same table. One cache per calling thread; workers only read it.
struct RopeTable {
  double theta = 0;
  int64_t dim = 0;
  int64_t npos = 0;
  std::vector<float> cs;  // [pos][half] cos then [pos][half] sin, interleaved per position

  void ensure(double th, int64_t d, int64_t maxPos) {
    if (th != theta || d != dim) {
      theta = th;
      dim = d;
      npos = 0;
      cs.clear();
    }
    if (maxPos < npos) return;
    int64_t half = d / 2;
    int64_t newN = std::max<int64_t>(maxPos + 1, npos * 2);
    cs.resize(static_cast<size_t>(newN * 2 * half));
    for (int64_t p = npos; p < newN; p++) fill(p, cs.data() + p * 2 * half);
    npos = newN;
  }
  void fill(int64_t pos, float* dst) const {
    int64_t half = dim / 2;
    for (int64_t i = 0; i < half; i++) {
      double ang = static_cast<double>(pos) * std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
      dst[i] = static_cast<float>(std::cos(ang));
      dst[half + i] = static_cast<float>(std::sin(ang));
    }
  }
};
constexpr int64_t ROPE_TABLE_MAX_POS = 1 << 16;
thread_local RopeTable rope_table;

}  // namespace

// ================================================================ softmax family
void softmax(const float* x, float* out, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* orow = out + r * cols;
      float s = exp_sum(xr, orow, cols, row_max(xr, cols));
      scale_row(orow, cols, 1.0f / s);
    }
  });
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      V d = vset(dot_row(yr, gr, cols));
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) vstore(dr + j, vload(yr + j) * (vload(gr + j) - d));
      if (j < cols) store_tail(dr + j, load_tail(yr + j, cols - j, 0) * (load_tail(gr + j, cols - j, 0) - d), cols - j);
    }
  });
}

void log_softmax(const float* x, float* out, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* orow = out + r * cols;
      float mx = row_max(xr, cols);
      float lse = mx + std::log(exp_sum(xr, nullptr, cols, mx));
      V vl = vset(lse);
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) vstore(orow + j, vload(xr + j) - vl);
      for (; j < cols; j++) orow[j] = xr[j] - lse;
    }
  });
}

void log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      V s = vset(sum_row(gr, cols));
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) vstore(dr + j, vfnma(vexp(vload(yr + j)), s, vload(gr + j)));
      if (j < cols) {
        V e = vexp(load_tail(yr + j, cols - j, 0));
        store_tail(dr + j, vfnma(e, s, load_tail(gr + j, cols - j, 0)), cols - j);
      }
    }
  });
}

void alibi_bias(float* x, int64_t batch, int64_t heads, int64_t lq, int64_t lk, const float* slopes, int64_t qOffset) {
  const int64_t rows = batch * heads * lq;
  parallel_for(rows, row_grain(lk), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t i = r % lq, h = (r / lq) % heads;
      const float sl = slopes[h];
      // The distance is computed in integers and converted once: exact for any realistic length.
      const int64_t base = -(i + qOffset);
      float* xr = x + r * lk;
      for (int64_t j = 0; j < lk; j++) xr[j] += sl * static_cast<float>(base + j);
    }
  });
}

void alibi_bias_backward(const float* dx, int64_t batch, int64_t heads, int64_t lq, int64_t lk, int64_t qOffset,
                         float* dslopes) {
  // One head per task: the heads' sums are independent, so no reduction across threads is needed.
  parallel_for(heads, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; h++) {
      double acc = 0;
      for (int64_t b = 0; b < batch; b++) {
        for (int64_t i = 0; i < lq; i++) {
          const float* dr = dx + ((b * heads + h) * lq + i) * lk;
          const int64_t base = -(i + qOffset);
          for (int64_t j = 0; j < lk; j++) acc += static_cast<double>(dr[j]) * static_cast<double>(base + j);
        }
      }
      dslopes[h] += static_cast<float>(acc);
    }
  });
}

void masked_softmax(const float* x, float* out, const MaskSpec& s, bool uniformIfFullyMasked) {
  const int64_t rows = s.batch * s.heads * s.lq, lk = s.lk;
  parallel_for(rows, row_grain(lk), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * lk;
      float* orow = out + r * lk;
      RowView v = row_view(s, r);
      if (v.visible == 0) {
        std::fill(orow, orow + lk, uniformIfFullyMasked ? 1.0f / static_cast<float>(lk) : 0.0f);
        continue;
      }
      const int64_t end = v.end;
      // Pass 1: max over visible keys (hidden lanes read as −inf).
      V m = vset(NEG_INF), ninf = vset(NEG_INF);
      int64_t j = 0;
      for (; j + 8 <= end; j += 8) {
        V xv = vload(xr + j);
        if (v.mask) xv = vselect(vmask_u8(v.mask + j), xv, ninf);
        m = vmax(m, xv);
      }
      if (j < end) {
        V xv = load_tail(xr + j, end - j, NEG_INF);
        if (v.mask) xv = vselect(mask_tail(v.mask + j, end - j), xv, ninf);
        m = vmax(m, xv);
      }
      V vm = vset(hmax(m));
      // Pass 2: exponentials, exactly 0 on hidden keys.
      V sum = vzero();
      for (j = 0; j + 8 <= end; j += 8) {
        V e = vexp(vload(xr + j) - vm);
        if (v.mask) e = vand(vmask_u8(v.mask + j), e);
        vstore(orow + j, e);
        sum = sum + e;
      }
      if (j < end) {
        V e = vexp(load_tail(xr + j, end - j, NEG_INF) - vm);
        if (v.mask) e = vand(mask_tail(v.mask + j, end - j), e);
        store_tail(orow + j, e, end - j);
        sum = sum + e;
      }
      scale_row(orow, end, 1.0f / hsum(sum));
      std::fill(orow + end, orow + lk, 0.0f);
    }
  });
}

void masked_softmax_backward(const float* y, const float* dy, float* dx, const MaskSpec& s) {
  const int64_t rows = s.batch * s.heads * s.lq, lk = s.lk;
  parallel_for(rows, row_grain(lk), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * lk;
      const float* gr = dy + r * lk;
      float* dr = dx + r * lk;
      RowView v = row_view(s, r);
      if (v.visible == 0) {
        std::fill(dr, dr + lk, 0.0f);
        continue;
      }
      const int64_t end = v.end;
      V acc = vzero();
      int64_t j = 0;
      for (; j + 8 <= end; j += 8) {
        V p = vload(yr + j) * vload(gr + j);
        if (v.mask) p = vand(vmask_u8(v.mask + j), p);
        acc = acc + p;
      }
      if (j < end) {
        V p = load_tail(yr + j, end - j, 0) * load_tail(gr + j, end - j, 0);
        if (v.mask) p = vand(mask_tail(v.mask + j, end - j), p);
        acc = acc + p;
      }
      V d = vset(hsum(acc));
      for (j = 0; j + 8 <= end; j += 8) {
        V g = vload(yr + j) * (vload(gr + j) - d);
        if (v.mask) g = vand(vmask_u8(v.mask + j), g);
        vstore(dr + j, g);
      }
      if (j < end) {
        V g = load_tail(yr + j, end - j, 0) * (load_tail(gr + j, end - j, 0) - d);
        if (v.mask) g = vand(mask_tail(v.mask + j, end - j), g);
        store_tail(dr + j, g, end - j);
      }
      std::fill(dr + end, dr + lk, 0.0f);
    }
  });
}

// ================================================================ norms
void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* orow = out + r * cols;
      const float mu = sum_row(xr, cols) / static_cast<float>(cols);
      V vmu = vset(mu), acc = vzero();
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) {
        V d = vload(xr + j) - vmu;
        acc = vfma(d, d, acc);
      }
      float var = hsum(acc);
      for (; j < cols; j++) var += (xr[j] - mu) * (xr[j] - mu);
      const float rs = 1.0f / std::sqrt(var / static_cast<float>(cols) + eps);
      mean[r] = mu;
      rstd[r] = rs;
      V vrs = vset(rs);
      for (j = 0; j + 8 <= cols; j += 8) {
        V y = (vload(xr + j) - vmu) * vrs;
        if (w) y = y * vload(w + j);
        if (b) y = y + vload(b + j);
        vstore(orow + j, y);
      }
      for (; j < cols; j++) {
        float y = (xr[j] - mu) * rs;
        if (w) y *= w[j];
        if (b) y += b[j];
        orow[j] = y;
      }
    }
  });
}

void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, int64_t rows, int64_t cols) {
  float* dst[2] = {dw, db};
  rows_with_partials(rows, cols, 2, dst, [&](int64_t r0, int64_t r1, float* const* acc) {
    float* adw = acc[0];
    float* adb = acc[1];
    const float invn = 1.0f / static_cast<float>(cols);
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      const V vmu = vset(mean[r]), vrs = vset(rstd[r]);
      // Pass 1: Σg, Σg·x̂ (g = dy·w) and the parameter-gradient accumulation.
      V sg = vzero(), sgx = vzero();
      int64_t j = 0;
      auto body = [&](V xv, V gv, V wv, int64_t jj, int64_t rem) {
        V xh = (xv - vmu) * vrs;
        V g = gv * wv;
        sg = sg + g;
        sgx = vfma(g, xh, sgx);
        if (adw) {
          if (rem == 8) vstore(adw + jj, vfma(gv, xh, vload(adw + jj)));
          else store_tail(adw + jj, vfma(gv, xh, load_tail(adw + jj, rem, 0)), rem);
        }
        if (adb) {
          if (rem == 8) vstore(adb + jj, vload(adb + jj) + gv);
          else store_tail(adb + jj, load_tail(adb + jj, rem, 0) + gv, rem);
        }
      };
      for (; j + 8 <= cols; j += 8) body(vload(xr + j), vload(gr + j), w ? vload(w + j) : vset(1.0f), j, 8);
      if (j < cols) {
        int64_t rem = cols - j;
        body(load_tail(xr + j, rem, 0), load_tail(gr + j, rem, 0), w ? load_tail(w + j, rem, 0) : vset(1.0f), j, rem);
      }
      const V mg = vset(hsum(sg) * invn), mgx = vset(hsum(sgx) * invn);
      // Pass 2: dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)).
      for (j = 0; j + 8 <= cols; j += 8) {
        V xh = (vload(xr + j) - vmu) * vrs;
        V g = w ? vload(gr + j) * vload(w + j) : vload(gr + j);
        vstore(dr + j, vrs * vfnma(xh, mgx, g - mg));
      }
      if (j < cols) {
        int64_t rem = cols - j;
        V xh = (load_tail(xr + j, rem, 0) - vmu) * vrs;
        V g = load_tail(gr + j, rem, 0);
        if (w) g = g * load_tail(w + j, rem, 0);
        store_tail(dr + j, vrs * vfnma(xh, mgx, g - mg), rem);
      }
    }
  });
}

void rms_norm(const float* x, const float* w, float* out, float* rstd, int64_t rows, int64_t cols, float eps) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      float* orow = out + r * cols;
      const float rs = 1.0f / std::sqrt(dot_row(xr, xr, cols) / static_cast<float>(cols) + eps);
      rstd[r] = rs;
      V vrs = vset(rs);
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) {
        V y = vload(xr + j) * vrs;
        if (w) y = y * vload(w + j);
        vstore(orow + j, y);
      }
      for (; j < cols; j++) orow[j] = (w ? w[j] : 1.0f) * (xr[j] * rs);
    }
  });
}

void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t cols) {
  float* dst[1] = {dw};
  rows_with_partials(rows, cols, 1, dst, [&](int64_t r0, int64_t r1, float* const* acc) {
    float* adw = acc[0];
    const float invn = 1.0f / static_cast<float>(cols);
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      const float* gr = dy + r * cols;
      float* dr = dx + r * cols;
      const float rs = rstd[r];
      const V vrs = vset(rs);
      // Pass 1: Σ g·x (g = dy·w) and dw += dy·x·rstd.
      V sgx = vzero();
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) {
        V xv = vload(xr + j), gv = vload(gr + j);
        sgx = vfma(w ? gv * vload(w + j) : gv, xv, sgx);
        if (adw) vstore(adw + j, vfma(gv, xv * vrs, vload(adw + j)));
      }
      float s = hsum(sgx);
      for (; j < cols; j++) {
        s += (w ? gr[j] * w[j] : gr[j]) * xr[j];
        if (adw) adw[j] += gr[j] * xr[j] * rs;
      }
      // Pass 2: dx = rstd · g − x · rstd³ · mean(g·x).
      const V c = vset(rs * rs * rs * s * invn);
      for (j = 0; j + 8 <= cols; j += 8) {
        V g = w ? vload(gr + j) * vload(w + j) : vload(gr + j);
        vstore(dr + j, vfnma(vload(xr + j), c, vrs * g));
      }
      const float cs = rs * rs * rs * s * invn;
      for (; j < cols; j++) dr[j] = rs * (w ? gr[j] * w[j] : gr[j]) - xr[j] * cs;
    }
  });
}

// ================================================================ elementwise
void activation(Act kind, const float* x, float* out, int64_t n) {
  switch (kind) {
    case Act::Gelu: return act_fwd_run<Act::Gelu>(x, out, n);
    case Act::GeluTanh: return act_fwd_run<Act::GeluTanh>(x, out, n);
    case Act::QuickGelu: return act_fwd_run<Act::QuickGelu>(x, out, n);
    case Act::Silu: return act_fwd_run<Act::Silu>(x, out, n);
    case Act::Tanh: return act_fwd_run<Act::Tanh>(x, out, n);
    case Act::Relu: return act_fwd_run<Act::Relu>(x, out, n);
    case Act::Sigmoid: return act_fwd_run<Act::Sigmoid>(x, out, n);
  }
}

void activation_backward(Act kind, const float* x, const float* dy, float* dx, int64_t n) {
  switch (kind) {
    case Act::Gelu: return act_bwd_run<Act::Gelu>(x, dy, dx, n);
    case Act::GeluTanh: return act_bwd_run<Act::GeluTanh>(x, dy, dx, n);
    case Act::QuickGelu: return act_bwd_run<Act::QuickGelu>(x, dy, dx, n);
    case Act::Silu: return act_bwd_run<Act::Silu>(x, dy, dx, n);
    case Act::Tanh: return act_bwd_run<Act::Tanh>(x, dy, dx, n);
    case Act::Relu: return act_bwd_run<Act::Relu>(x, dy, dx, n);
    case Act::Sigmoid: return act_bwd_run<Act::Sigmoid>(x, dy, dx, n);
  }
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  elementwise<2, 1>(n, {gate, up}, {out}, [](const V* i, V* o) { o[0] = i[0] * vsigmoid(i[0]) * i[1]; });
}

void swiglu_backward(const float* gate, const float* up, const float* dy, float* dgate, float* dup, int64_t n) {
  elementwise<3, 2>(n, {gate, up, dy}, {dgate, dup}, [](const V* i, V* o) {
    V g = i[0], u = i[1], d = i[2];
    V s, sm;
    vsigmoid2(g, s, sm);
    V silu = g * s;
    V dsilu = s * vfma(g, sm, vset(1.0f));
    o[0] = d * u * dsilu;
    o[1] = d * silu;
  });
}

// ================================================================ cross-entropy
void cross_entropy(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, int32_t ignoreIndex,
                   float* losses, float* lse) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = logits + r * cols;
      float mx = row_max(xr, cols);
      float l = mx + std::log(exp_sum(xr, nullptr, cols, mx));
      lse[r] = l;
      int32_t t = targets[r];
      if (t == ignoreIndex) losses[r] = 0.0f;
      else if (t < 0 || t >= cols) losses[r] = std::numeric_limits<float>::quiet_NaN();  // never read out of bounds
      else losses[r] = l - xr[t];
    }
  });
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t rows,
                            int64_t cols, int32_t ignoreIndex, float scale, float* dlogits) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = logits + r * cols;
      float* dr = dlogits + r * cols;
      int32_t t = targets[r];
      if (t == ignoreIndex) {
        std::fill(dr, dr + cols, 0.0f);
        continue;
      }
      V vl = vset(lse[r]), vs = vset(scale);
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) vstore(dr + j, vexp(vload(xr + j) - vl) * vs);
      if (j < cols) store_tail(dr + j, vexp(load_tail(xr + j, cols - j, 0) - vl) * vs, cols - j);
      if (t >= 0 && t < cols) dr[t] -= scale;
    }
  });
}

// ================================================================ rope
void rope(const float* x, float* out, int64_t batch, int64_t seq, int64_t heads, int64_t dim,
          const int32_t* positions, double theta, bool inverse) {
  const int64_t half = dim / 2, tokens = batch * seq;
  int64_t maxPos = -1;
  bool allCached = true;
  for (int64_t t = 0; t < tokens; t++) {
    maxPos = std::max<int64_t>(maxPos, positions[t]);
    if (positions[t] < 0) allCached = false;
  }
  if (maxPos >= ROPE_TABLE_MAX_POS) allCached = false;
  const float* table = nullptr;
  if (allCached && tokens > 0) {
    rope_table.ensure(theta, dim, maxPos);
    table = rope_table.cs.data();
  }
  const float sgn = inverse ? -1.0f : 1.0f;
  parallel_for(tokens, std::max<int64_t>(1, GRAIN_ELEMS / std::max<int64_t>(1, heads * dim)), [&](int64_t t0, int64_t t1) {
    std::vector<float> local(table ? 0 : static_cast<size_t>(2 * half));
    RopeTable direct;
    direct.theta = theta;
    direct.dim = dim;
    for (int64_t t = t0; t < t1; t++) {
      const float* cs;
      if (table) {
        cs = table + static_cast<int64_t>(positions[t]) * 2 * half;
      } else {
        direct.fill(positions[t], local.data());
        cs = local.data();
      }
      const float* cosv = cs;
      const float* sinv = cs + half;
      for (int64_t h = 0; h < heads; h++) {
        const float* xr = x + (t * heads + h) * dim;
        float* orow = out + (t * heads + h) * dim;
        const V vs = vset(sgn);
        int64_t i = 0;
        for (; i + 8 <= half; i += 8) {
          V x1 = vload(xr + i), x2 = vload(xr + half + i);
          V c = vload(cosv + i), s = vload(sinv + i) * vs;
          vstore(orow + i, vfnma(x2, s, x1 * c));     // x1·cos − x2·sin
          vstore(orow + half + i, vfma(x1, s, x2 * c));  // x2·cos + x1·sin
        }
        for (; i < half; i++) {
          float x1 = xr[i], x2 = xr[half + i], c = cosv[i], s = sinv[i] * sgn;
          orow[i] = x1 * c - x2 * s;
          orow[half + i] = x2 * c + x1 * s;
        }
      }
    }
  });
}

// ================================================================ optimiser and BLAS-1
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weightDecay, double step) {
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), step));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), step));
  const V decay = vset(1.0f - lr * weightDecay), b1 = vset(beta1), b2 = vset(beta2);
  const V c1 = vset(1.0f - beta1), c2 = vset(1.0f - beta2), step_size = vset(lr / bc1);
  const V inv_sqrt_bc2 = vset(1.0f / std::sqrt(bc2)), veps = vset(eps);
  elementwise<4, 3>(n, {param, grad, m, v}, {param, m, v}, [&](const V* i, V* o) {
    V p = i[0] * decay, g = i[1];
    V mm = vfma(b1, i[2], c1 * g);
    V vv = vfma(b2, i[3], c2 * g * g);
    V denom = vfma(vsqrt(vv), inv_sqrt_bc2, veps);
    o[0] = vfnma(step_size, mm / denom, p);
    o[1] = mm;
    o[2] = vv;
  });
}

void swap_middle_axes(const float* x, float* out, int64_t B, int64_t A, int64_t C, int64_t D) {
  const int64_t rows = B * C;  // output rows of A·D floats
  if (rows == 0 || A == 0 || D == 0) return;
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(A * D, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / C, c = r % C;
      float* dst = out + r * A * D;
      const float* src = x + (b * A * C + c) * D;
      for (int64_t a = 0; a < A; a++) std::memcpy(dst + a * D, src + a * C * D, sizeof(float) * D);
    }
  });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const V a = vset(alpha);
  elementwise<2, 1>(n, {x, y}, {y}, [&](const V* i, V* o) { o[0] = vfma(a, i[0], i[1]); });
}

void mul(const float* a, const float* b, float* out, int64_t n) {
  elementwise<2, 1>(n, {a, b}, {out}, [](const V* i, V* o) { o[0] = i[0] * i[1]; });
}

void add(const float* a, const float* b, float* out, int64_t n) {
  elementwise<2, 1>(n, {a, b}, {out}, [](const V* i, V* o) { o[0] = i[0] + i[1]; });
}

double sum_squares(const float* x, int64_t n) {
  const int64_t parts = std::min<int64_t>(pool_threads(), std::max<int64_t>(1, n / (GRAIN_ELEMS * 4)));
  std::vector<double> partial(static_cast<size_t>(parts), 0.0);
  parallel_for(parts, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; p++) {
      const int64_t b = n * p / parts, e = n * (p + 1) / parts;
      int64_t i = b;
      double s = 0.0;
#if defined(__AVX2__) && defined(__FMA__)
      __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
      for (; i + 8 <= e; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        acc0 = _mm256_fmadd_pd(lo, lo, acc0);
        acc1 = _mm256_fmadd_pd(hi, hi, acc1);
      }
      alignas(32) double t[4];
      _mm256_store_pd(t, _mm256_add_pd(acc0, acc1));
      s = (t[0] + t[1]) + (t[2] + t[3]);
#endif
      for (; i < e; i++) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
      partial[static_cast<size_t>(p)] = s;
    }
  });
  double s = 0.0;
  for (double v : partial) s += v;
  return s;
}

}  // namespace flamingo
