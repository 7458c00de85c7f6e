// A tiny 8-lane float vector abstraction. With AVX2+FMA it maps to __m256; otherwise to a plain
// array the compiler may auto-vectorise. Kernels are written once against `V` so both builds share
// one code path (and one set of numerics: exp/tanh/erf approximations live here).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FLAMINGO_SIMD_NAME "avx2+fma"

struct V { __m256 v; };
static inline V vset(float a) { return {_mm256_set1_ps(a)}; }
static inline V vzero() { return {_mm256_setzero_ps()}; }
static inline V vload(const float* p) { return {_mm256_loadu_ps(p)}; }
static inline void vstore(float* p, V a) { _mm256_storeu_ps(p, a.v); }
static inline V operator+(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline V operator-(V a, V b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline V operator*(V a, V b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline V operator/(V a, V b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline V vfma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }   // a*b + c
static inline V vfnma(V a, V b, V c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; } // c - a*b
// max/min put `b` second so a NaN in `b` propagates (x86 returns the second operand on NaN).
static inline V vmax(V a, V b) { return {_mm256_max_ps(a.v, b.v)}; }
static inline V vmin(V a, V b) { return {_mm256_min_ps(a.v, b.v)}; }
static inline V vsqrt(V a) { return {_mm256_sqrt_ps(a.v)}; }
static inline V vabs(V a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
static inline V vlt(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
static inline V vge(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
static inline V vgt(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
static inline V vand(V a, V b) { return {_mm256_and_ps(a.v, b.v)}; }
static inline V vandnot(V m, V a) { return {_mm256_andnot_ps(m.v, a.v)}; } // a & ~m
static inline V vselect(V m, V a, V b) { return {_mm256_blendv_ps(b.v, a.v, m.v)}; } // m ? a : b
static inline float hsum(V a) {
  __m128 lo = _mm256_castps256_ps128(a.v), hi = _mm256_extractf128_ps(a.v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
static inline float hmax(V a) {
  __m128 lo = _mm256_castps256_ps128(a.v), hi = _mm256_extractf128_ps(a.v, 1);
  lo = _mm_max_ps(lo, hi);
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
// Lane mask (all-ones float bits) for 8 bytes of a Uint8 mask: lane i set iff p[i] != 0.
static inline V vmask_u8(const uint8_t* p) {
  __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  __m256i w = _mm256_cvtepu8_epi32(b);
  __m256i eq = _mm256_cmpeq_epi32(w, _mm256_setzero_si256());
  return {_mm256_castsi256_ps(_mm256_xor_si256(eq, _mm256_set1_epi32(-1)))};
}
static inline V vround(V a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// 2^n for integer-valued n in [-126, 127].
static inline V vpow2i(V n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
}
#else
#define FLAMINGO_SIMD_NAME "scalar"
struct V { float f[8]; };
#define VLOOP(expr) V r; for (int i = 0; i < 8; i++) r.f[i] = (expr); return r
static inline V vset(float a) { VLOOP(a); }
static inline V vzero() { VLOOP(0.0f); }
static inline V vload(const float* p) { VLOOP(p[i]); }
static inline void vstore(float* p, V a) { for (int i = 0; i < 8; i++) p[i] = a.f[i]; }
static inline V operator+(V a, V b) { VLOOP(a.f[i] + b.f[i]); }
static inline V operator-(V a, V b) { VLOOP(a.f[i] - b.f[i]); }
static inline V operator*(V a, V b) { VLOOP(a.f[i] * b.f[i]); }
static inline V operator/(V a, V b) { VLOOP(a.f[i] / b.f[i]); }
static inline V vfma(V a, V b, V c) { VLOOP(std::fma(a.f[i], b.f[i], c.f[i])); }
static inline V vfnma(V a, V b, V c) { VLOOP(std::fma(-a.f[i], b.f[i], c.f[i])); }
static inline V vmax(V a, V b) { VLOOP(a.f[i] > b.f[i] ? a.f[i] : b.f[i]); }
static inline V vmin(V a, V b) { VLOOP(a.f[i] < b.f[i] ? a.f[i] : b.f[i]); }
static inline V vsqrt(V a) { VLOOP(std::sqrt(a.f[i])); }
static inline V vabs(V a) { VLOOP(std::fabs(a.f[i])); }
static inline float maskbits(bool c) { uint32_t u = c ? 0xffffffffu : 0u; float f; std::memcpy(&f, &u, 4); return f; }
static inline uint32_t bitsof(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline float frombits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline V vlt(V a, V b) { VLOOP(maskbits(a.f[i] < b.f[i])); }
static inline V vge(V a, V b) { VLOOP(maskbits(a.f[i] >= b.f[i])); }
static inline V vgt(V a, V b) { VLOOP(maskbits(a.f[i] > b.f[i])); }
static inline V vand(V a, V b) { VLOOP(frombits(bitsof(a.f[i]) & bitsof(b.f[i]))); }
static inline V vandnot(V m, V a) { VLOOP(frombits(~bitsof(m.f[i]) & bitsof(a.f[i]))); }
static inline V vselect(V m, V a, V b) { VLOOP(bitsof(m.f[i]) ? a.f[i] : b.f[i]); }
static inline float hsum(V a) { float s = 0; for (int i = 0; i < 8; i++) s += a.f[i]; return s; }
static inline float hmax(V a) { float s = a.f[0]; for (int i = 1; i < 8; i++) s = a.f[i] > s ? a.f[i] : s; return s; }
static inline V vmask_u8(const uint8_t* p) { VLOOP(maskbits(p[i] != 0)); }
static inline V vround(V a) { VLOOP(std::nearbyint(a.f[i])); }
static inline V vpow2i(V n) { VLOOP(std::ldexp(1.0f, static_cast<int>(n.f[i]))); }
#undef VLOOP
#endif

// e^x with ~1 ulp error on the float range: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 Taylor
// polynomial, 2^n by exponent construction. Inputs below ln(FLT_MIN) give exactly 0 (so -inf and
// masked scores vanish); inputs above 88 saturate at e^88 (callers never rely on overflow to inf).
static inline V vexp(V x) {
  const V hi = vset(88.0f), lo = vset(-87.33654475f);
  V underflow = vlt(x, lo);
  x = vmin(hi, x);
  x = vmax(lo, x);
  V n = vround(x * vset(1.44269504088896341f));
  V r = vfnma(n, vset(0.693145751953125f), x);       // ln2 split in hi + lo parts
  r = vfnma(n, vset(1.42860682030941723212e-6f), r);
  V p = vset(1.0f / 720.0f);
  p = vfma(p, r, vset(1.0f / 120.0f));
  p = vfma(p, r, vset(1.0f / 24.0f));
  p = vfma(p, r, vset(1.0f / 6.0f));
  p = vfma(p, r, vset(0.5f));
  p = vfma(p, r, vset(1.0f));
  p = vfma(p, r, vset(1.0f));
  return vandnot(underflow, p * vpow2i(n));
}

static inline V vsigmoid(V x) { return vset(1.0f) / (vset(1.0f) + vexp(vzero() - x)); }
// σ(x) and 1 − σ(x), the latter as e·σ (e = e^{−x}) so it keeps relative accuracy where σ → 1
// (derivatives like σ(1−σ) would otherwise cancel to garbage in the tails).
static inline void vsigmoid2(V x, V& s, V& oneMinusS) {
  V e = vexp(vzero() - x);
  s = vset(1.0f) / (vset(1.0f) + e);
  oneMinusS = e * s;
}

// tanh: odd Taylor series near 0 (where 1 − 2/(e^{2x}+1) would cancel), exp form elsewhere.
static inline V vtanh(V x) {
  V ax = vabs(x);
  V e = vexp(vset(-2.0f) * ax);                           // ≤ 1, no overflow
  V big = (vset(1.0f) - e) / (vset(1.0f) + e);
  V x2 = x * x;
  V p = vset(62.0f / 2835.0f);
  p = vfma(p, x2, vset(-17.0f / 315.0f));
  p = vfma(p, x2, vset(2.0f / 15.0f));
  p = vfma(p, x2, vset(-1.0f / 3.0f));
  V small = vfma(p * x2, x, x);
  V bigSigned = vselect(vlt(x, vzero()), vzero() - big, big);
  return vselect(vlt(ax, vset(0.3f)), small, bigSigned);
}

// erfc(|z|) with ~1.2e-7 relative error (Chebyshev-fitted exponent form, Numerical Recipes §6.2),
// relative accuracy holding into the tail, which keeps GELU accurate for negative inputs.
static inline V verfc_abs(V z) {
  V az = vabs(z);
  V t = vset(1.0f) / vfma(vset(0.5f), az, vset(1.0f));
  V p = vset(0.17087277f);
  p = vfma(p, t, vset(-0.82215223f));
  p = vfma(p, t, vset(1.48851587f));
  p = vfma(p, t, vset(-1.13520398f));
  p = vfma(p, t, vset(0.27886807f));
  p = vfma(p, t, vset(-0.18628806f));
  p = vfma(p, t, vset(0.09678418f));
  p = vfma(p, t, vset(0.37409196f));
  p = vfma(p, t, vset(1.00002368f));
  p = vfma(p, t, vset(-1.26551223f));
  return t * vexp(p - az * az);
}
// Φ(x) = ½(1 + erf(x/√2)), computed from erfc so both tails keep relative accuracy.
static inline V vnormcdf(V x) {
  V c = verfc_abs(x * vset(0.70710678118654752f)) * vset(0.5f);
  return vselect(vlt(x, vzero()), c, vset(1.0f) - c);
}
