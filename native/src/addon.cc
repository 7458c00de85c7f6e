// N-API glue: unpacks JS arguments (TypedArray views are used in place, byteOffset honoured by
// napi_get_typedarray_info), checks every buffer is long enough for the sizes given, and calls the
// kernels. A bad argument throws a JS RangeError/TypeError naming the kernel; it never crashes.
#include <node_api.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "quant.h"
#include "simd.h"

namespace flamingo {
namespace {

struct ArgError : std::exception {
  std::string msg;
  bool type;
  ArgError(std::string m, bool t) : msg(std::move(m)), type(t) {}
  const char* what() const noexcept override { return msg.c_str(); }
};

template <class T>
struct Arr {
  T* p = nullptr;
  int64_t len = 0;
};

template <class T> constexpr napi_typedarray_type kind_of();
template <> constexpr napi_typedarray_type kind_of<float>() { return napi_float32_array; }
template <> constexpr napi_typedarray_type kind_of<int32_t>() { return napi_int32_array; }
template <> constexpr napi_typedarray_type kind_of<uint8_t>() { return napi_uint8_array; }
template <> constexpr napi_typedarray_type kind_of<uint16_t>() { return napi_uint16_array; }
template <> constexpr napi_typedarray_type kind_of<int8_t>() { return napi_int8_array; }
template <class T> constexpr const char* kind_name();
template <> constexpr const char* kind_name<float>() { return "Float32Array"; }
template <> constexpr const char* kind_name<int32_t>() { return "Int32Array"; }
template <> constexpr const char* kind_name<uint8_t>() { return "Uint8Array"; }
template <> constexpr const char* kind_name<uint16_t>() { return "Uint16Array"; }
template <> constexpr const char* kind_name<int8_t>() { return "Int8Array"; }

constexpr int64_t MAX_DIM = int64_t{1} << 40;

class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* kernel) : env_(env), kernel_(kernel) {
    argc_ = kMax;
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) fail("cannot read arguments", true);
  }

  [[noreturn]] void fail(const std::string& what, bool type = false) const {
    throw ArgError(std::string("native kernel ") + kernel_ + ": " + what, type);
  }

  napi_value at(size_t i) const {
    if (i >= argc_) fail("missing argument #" + std::to_string(i), true);
    return argv_[i];
  }

  bool is_null(size_t i) const {
    napi_valuetype t;
    napi_typeof(env_, at(i), &t);
    return t == napi_null || t == napi_undefined;
  }

  template <class T>
  Arr<T> arr(size_t i, const char* name, bool nullable = false) const {
    Arr<T> a;
    if (nullable && is_null(i)) return a;
    bool ok = false;
    napi_is_typedarray(env_, at(i), &ok);
    if (!ok) fail(std::string(name) + " must be a " + kind_name<T>(), true);
    napi_typedarray_type type;
    size_t length;
    void* data;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env_, at(i), &type, &length, &data, &ab, &offset) != napi_ok || type != kind_of<T>())
      fail(std::string(name) + " must be a " + kind_name<T>(), true);
    a.p = static_cast<T*>(data);
    a.len = static_cast<int64_t>(length);
    return a;
  }

  double num(size_t i, const char* name) const {
    double v;
    if (napi_get_value_double(env_, at(i), &v) != napi_ok) fail(std::string(name) + " must be a number", true);
    return v;
  }

  int64_t dim(size_t i, const char* name) const {
    double v = num(i, name);
    if (!(v >= 0 && v <= static_cast<double>(MAX_DIM)) || v != static_cast<double>(static_cast<int64_t>(v)))
      fail(std::string(name) + " must be a non-negative integer, got " + std::to_string(v));
    return static_cast<int64_t>(v);
  }

  int64_t integer(size_t i, const char* name) const {
    double v = num(i, name);
    if (!(v >= -static_cast<double>(MAX_DIM) && v <= static_cast<double>(MAX_DIM)) ||
        v != static_cast<double>(static_cast<int64_t>(v)))
      fail(std::string(name) + " must be an integer, got " + std::to_string(v));
    return static_cast<int64_t>(v);
  }

  bool flag(size_t i, const char* name) const {
    bool v;
    if (napi_get_value_bool(env_, at(i), &v) != napi_ok) fail(std::string(name) + " must be a boolean", true);
    return v;
  }

  // Product of sizes with overflow detection.
  int64_t prod(std::initializer_list<int64_t> xs) const {
    int64_t r = 1;
    for (int64_t x : xs) {
      if (__builtin_mul_overflow(r, x, &r)) fail("size product overflows");
    }
    return r;
  }

  template <class T>
  void need(const Arr<T>& a, const char* name, int64_t want) const {
    if (a.p == nullptr && want == 0) return;
    if (a.len < want)
      fail(std::string(name) + " has " + std::to_string(a.len) + " elements but the sizes need " + std::to_string(want));
  }

  napi_env env() const { return env_; }

 private:
  static constexpr size_t kMax = 16;
  napi_env env_;
  const char* kernel_;
  size_t argc_;
  napi_value argv_[kMax];
};

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

// The JS error class for bad arguments (set once by native.ts via setErrorClass), kept per
// environment so worker threads loading the addon each get their own.
struct InstanceData {
  napi_ref errorClass = nullptr;
};

void throw_arg_error(napi_env env, const ArgError& e) {
  InstanceData* d = nullptr;
  napi_get_instance_data(env, reinterpret_cast<void**>(&d));
  napi_value ctor = nullptr;
  if (d && d->errorClass) napi_get_reference_value(env, d->errorClass, &ctor);
  if (ctor) {
    napi_value msg, err;
    napi_create_string_utf8(env, e.what(), NAPI_AUTO_LENGTH, &msg);
    if (napi_new_instance(env, ctor, 1, &msg, &err) == napi_ok) {
      napi_throw(env, err);
      return;
    }
  }
  if (e.type) napi_throw_type_error(env, "ERR_FLAMINGO_KERNEL_ARGS", e.what());
  else napi_throw_range_error(env, "ERR_FLAMINGO_KERNEL_ARGS", e.what());
}

// Wraps a kernel body so ArgError becomes a JS exception.
template <class F>
napi_value guarded(napi_env env, F&& f) {
  try {
    return f();
  } catch (const ArgError& e) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_arg_error(env, e);
  } catch (const std::exception& e) {
    napi_throw_error(env, "ERR_FLAMINGO_NATIVE", e.what());
  }
  return nullptr;
}

#define KERNEL(fname, label) \
  napi_value fname(napi_env env, napi_callback_info info) { \
    return guarded(env, [&]() -> napi_value { \
      Args A(env, info, label);
#define END_KERNEL \
    }); \
  }

// ---------------------------------------------------------------- gemm
// gemm(transA, transB, m, n, k, alpha, a, b, beta, c, count, strideA, strideB, strideC)
GemmArgs gemm_args(const Args& A) {
  GemmArgs g;
  g.transA = A.flag(0, "transA");
  g.transB = A.flag(1, "transB");
  g.m = A.dim(2, "m");
  g.n = A.dim(3, "n");
  g.k = A.dim(4, "k");
  g.alpha = static_cast<float>(A.num(5, "alpha"));
  auto a = A.arr<float>(6, "a");
  auto b = A.arr<float>(7, "b");
  g.beta = static_cast<float>(A.num(8, "beta"));
  auto c = A.arr<float>(9, "c");
  g.count = A.dim(10, "batch.count");
  g.strideA = A.dim(11, "batch.strideA");
  g.strideB = A.dim(12, "batch.strideB");
  g.strideC = A.dim(13, "batch.strideC");
  if (g.count > 1 && g.strideC < g.m * g.n) A.fail("batch.strideC is smaller than m*n (outputs would overlap)");
  if (g.count > 0) {
    auto span = [&](int64_t stride, int64_t one) { return A.prod({g.count - 1, stride}) + one; };
    A.need(a, "a", span(g.strideA, A.prod({g.m, g.k})));
    A.need(b, "b", span(g.strideB, A.prod({g.k, g.n})));
    A.need(c, "c", span(g.strideC, A.prod({g.m, g.n})));
  }
  g.a = a.p;
  g.b = b.p;
  g.c = c.p;
  return g;
}

KERNEL(Gemm, "gemm")
  GemmArgs g = gemm_args(A);
  if (g.count > 0) gemm(g);
  return undefined(env);
END_KERNEL

KERNEL(GemmBuiltin, "gemmBuiltin")
  GemmArgs g = gemm_args(A);
  if (g.count > 0) gemm_builtin(g);
  return undefined(env);
END_KERNEL

KERNEL(GemmSmall, "gemmSmall")
  GemmArgs g = gemm_args(A);
  if (g.count > 0) gemm_small(g);
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- softmax family
// (x|y, out|dy, [dx], rows, cols)
#define ROWWISE2(fname, label, fn) \
  KERNEL(fname, label) \
    auto x = A.arr<float>(0, "x"); \
    auto out = A.arr<float>(1, "out"); \
    int64_t rows = A.dim(2, "rows"), cols = A.dim(3, "cols"); \
    int64_t n = A.prod({rows, cols}); \
    A.need(x, "x", n); \
    A.need(out, "out", n); \
    fn(x.p, out.p, rows, cols); \
    return undefined(env); \
  END_KERNEL

#define ROWWISE3(fname, label, fn) \
  KERNEL(fname, label) \
    auto y = A.arr<float>(0, "y"); \
    auto dy = A.arr<float>(1, "dy"); \
    auto dx = A.arr<float>(2, "dx"); \
    int64_t rows = A.dim(3, "rows"), cols = A.dim(4, "cols"); \
    int64_t n = A.prod({rows, cols}); \
    A.need(y, "y", n); \
    A.need(dy, "dy", n); \
    A.need(dx, "dx", n); \
    fn(y.p, dy.p, dx.p, rows, cols); \
    return undefined(env); \
  END_KERNEL

ROWWISE2(Softmax, "softmax", softmax)
ROWWISE3(SoftmaxBackward, "softmaxBackward", softmax_backward)
ROWWISE2(LogSoftmax, "logSoftmax", log_softmax)
ROWWISE3(LogSoftmaxBackward, "logSoftmaxBackward", log_softmax_backward)

// Shared tail of the masked-softmax signatures starting at argument `i`:
// batch, heads, lq, lk, mask, maskBatchStride, maskQStride, causal, causalOffset
MaskSpec mask_spec(const Args& A, size_t i) {
  MaskSpec s;
  s.batch = A.dim(i, "batch");
  s.heads = A.dim(i + 1, "heads");
  s.lq = A.dim(i + 2, "lq");
  s.lk = A.dim(i + 3, "lk");
  auto mask = A.arr<uint8_t>(i + 4, "mask", true);
  s.maskBatchStride = A.dim(i + 5, "maskBatchStride");
  s.maskQStride = A.dim(i + 6, "maskQStride");
  s.causal = A.flag(i + 7, "causal");
  s.causalOffset = A.integer(i + 8, "causalOffset");
  s.mask = mask.p;
  if (mask.p && s.batch > 0 && s.lq > 0 && s.lk > 0) {
    int64_t want = A.prod({s.batch - 1, s.maskBatchStride}) + A.prod({s.lq - 1, s.maskQStride}) + s.lk;
    A.need(mask, "mask", want);
  }
  return s;
}

// maskedSoftmax(x, out, batch, heads, lq, lk, mask, mbs, mqs, causal, causalOffset, uniformIfFullyMasked)
KERNEL(MaskedSoftmax, "maskedSoftmax")
  auto x = A.arr<float>(0, "x");
  auto out = A.arr<float>(1, "out");
  MaskSpec s = mask_spec(A, 2);
  bool uniform = A.flag(11, "uniformIfFullyMasked");
  int64_t n = A.prod({s.batch, s.heads, s.lq, s.lk});
  A.need(x, "x", n);
  A.need(out, "out", n);
  masked_softmax(x.p, out.p, s, uniform);
  return undefined(env);
END_KERNEL

// maskedSoftmaxBackward(y, dy, dx, batch, heads, lq, lk, mask, mbs, mqs, causal, causalOffset)
KERNEL(MaskedSoftmaxBackward, "maskedSoftmaxBackward")
  auto y = A.arr<float>(0, "y");
  auto dy = A.arr<float>(1, "dy");
  auto dx = A.arr<float>(2, "dx");
  MaskSpec s = mask_spec(A, 3);
  int64_t n = A.prod({s.batch, s.heads, s.lq, s.lk});
  A.need(y, "y", n);
  A.need(dy, "dy", n);
  A.need(dx, "dx", n);
  masked_softmax_backward(y.p, dy.p, dx.p, s);
  return undefined(env);
END_KERNEL

// alibiBias(x, batch, heads, lq, lk, slopes, qOffset)
KERNEL(AlibiBias, "alibiBias")
  auto x = A.arr<float>(0, "x");
  int64_t batch = A.dim(1, "batch"), heads = A.dim(2, "heads"), lq = A.dim(3, "lq"), lk = A.dim(4, "lk");
  auto slopes = A.arr<float>(5, "slopes");
  int64_t off = A.integer(6, "qOffset");
  A.need(x, "x", A.prod({batch, heads, lq, lk}));
  A.need(slopes, "slopes", heads);
  alibi_bias(x.p, batch, heads, lq, lk, slopes.p, off);
  return undefined(env);
END_KERNEL

// alibiBiasBackward(dx, batch, heads, lq, lk, qOffset, dslopes)
KERNEL(AlibiBiasBackward, "alibiBiasBackward")
  auto dx = A.arr<float>(0, "dx");
  int64_t batch = A.dim(1, "batch"), heads = A.dim(2, "heads"), lq = A.dim(3, "lq"), lk = A.dim(4, "lk");
  int64_t off = A.integer(5, "qOffset");
  auto ds = A.arr<float>(6, "dslopes");
  A.need(dx, "dx", A.prod({batch, heads, lq, lk}));
  A.need(ds, "dslopes", heads);
  alibi_bias_backward(dx.p, batch, heads, lq, lk, off, ds.p);
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- norms
// layerNorm(x, w, b, out, mean, rstd, rows, cols, eps)
KERNEL(LayerNorm, "layerNorm")
  auto x = A.arr<float>(0, "x");
  auto w = A.arr<float>(1, "w", true);
  auto b = A.arr<float>(2, "b", true);
  auto out = A.arr<float>(3, "out");
  auto mean = A.arr<float>(4, "mean");
  auto rstd = A.arr<float>(5, "rstd");
  int64_t rows = A.dim(6, "rows"), cols = A.dim(7, "cols");
  float eps = static_cast<float>(A.num(8, "eps"));
  int64_t n = A.prod({rows, cols});
  A.need(x, "x", n);
  A.need(out, "out", n);
  if (w.p) A.need(w, "w", cols);
  if (b.p) A.need(b, "b", cols);
  A.need(mean, "mean", rows);
  A.need(rstd, "rstd", rows);
  if (cols == 0 && rows > 0) A.fail("cols must be > 0");
  layer_norm(x.p, w.p, b.p, out.p, mean.p, rstd.p, rows, cols, eps);
  return undefined(env);
END_KERNEL

// layerNormBackward(x, w, mean, rstd, dy, dx, dw, db, rows, cols)
KERNEL(LayerNormBackward, "layerNormBackward")
  auto x = A.arr<float>(0, "x");
  auto w = A.arr<float>(1, "w", true);
  auto mean = A.arr<float>(2, "mean");
  auto rstd = A.arr<float>(3, "rstd");
  auto dy = A.arr<float>(4, "dy");
  auto dx = A.arr<float>(5, "dx");
  auto dw = A.arr<float>(6, "dw", true);
  auto db = A.arr<float>(7, "db", true);
  int64_t rows = A.dim(8, "rows"), cols = A.dim(9, "cols");
  int64_t n = A.prod({rows, cols});
  A.need(x, "x", n);
  A.need(dy, "dy", n);
  A.need(dx, "dx", n);
  if (w.p) A.need(w, "w", cols);
  if (dw.p) A.need(dw, "dw", cols);
  if (db.p) A.need(db, "db", cols);
  A.need(mean, "mean", rows);
  A.need(rstd, "rstd", rows);
  if (cols == 0 && rows > 0) A.fail("cols must be > 0");
  layer_norm_backward(x.p, w.p, mean.p, rstd.p, dy.p, dx.p, dw.p, db.p, rows, cols);
  return undefined(env);
END_KERNEL

// rmsNorm(x, w, out, rstd, rows, cols, eps)
KERNEL(RmsNorm, "rmsNorm")
  auto x = A.arr<float>(0, "x");
  auto w = A.arr<float>(1, "w", true);
  auto out = A.arr<float>(2, "out");
  auto rstd = A.arr<float>(3, "rstd");
  int64_t rows = A.dim(4, "rows"), cols = A.dim(5, "cols");
  float eps = static_cast<float>(A.num(6, "eps"));
  int64_t n = A.prod({rows, cols});
  A.need(x, "x", n);
  A.need(out, "out", n);
  if (w.p) A.need(w, "w", cols);
  A.need(rstd, "rstd", rows);
  if (cols == 0 && rows > 0) A.fail("cols must be > 0");
  rms_norm(x.p, w.p, out.p, rstd.p, rows, cols, eps);
  return undefined(env);
END_KERNEL

// rmsNormBackward(x, w, rstd, dy, dx, dw, rows, cols)
KERNEL(RmsNormBackward, "rmsNormBackward")
  auto x = A.arr<float>(0, "x");
  auto w = A.arr<float>(1, "w", true);
  auto rstd = A.arr<float>(2, "rstd");
  auto dy = A.arr<float>(3, "dy");
  auto dx = A.arr<float>(4, "dx");
  auto dw = A.arr<float>(5, "dw", true);
  int64_t rows = A.dim(6, "rows"), cols = A.dim(7, "cols");
  int64_t n = A.prod({rows, cols});
  A.need(x, "x", n);
  A.need(dy, "dy", n);
  A.need(dx, "dx", n);
  if (w.p) A.need(w, "w", cols);
  if (dw.p) A.need(dw, "dw", cols);
  A.need(rstd, "rstd", rows);
  if (cols == 0 && rows > 0) A.fail("cols must be > 0");
  rms_norm_backward(x.p, w.p, rstd.p, dy.p, dx.p, dw.p, rows, cols);
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- elementwise
Act act_kind(const Args& A, size_t i) {
  int64_t k = A.integer(i, "kind");
  if (k < 0 || k > 6) A.fail("unknown activation code " + std::to_string(k));
  return static_cast<Act>(k);
}

// activation(kindCode, x, out, n)
KERNEL(Activation, "activation")
  Act kind = act_kind(A, 0);
  auto x = A.arr<float>(1, "x");
  auto out = A.arr<float>(2, "out");
  int64_t n = A.dim(3, "n");
  A.need(x, "x", n);
  A.need(out, "out", n);
  activation(kind, x.p, out.p, n);
  return undefined(env);
END_KERNEL

// activationBackward(kindCode, x, dy, dx, n)
KERNEL(ActivationBackward, "activationBackward")
  Act kind = act_kind(A, 0);
  auto x = A.arr<float>(1, "x");
  auto dy = A.arr<float>(2, "dy");
  auto dx = A.arr<float>(3, "dx");
  int64_t n = A.dim(4, "n");
  A.need(x, "x", n);
  A.need(dy, "dy", n);
  A.need(dx, "dx", n);
  activation_backward(kind, x.p, dy.p, dx.p, n);
  return undefined(env);
END_KERNEL

// swiglu(gate, up, out, n)
KERNEL(Swiglu, "swiglu")
  auto g = A.arr<float>(0, "gate");
  auto u = A.arr<float>(1, "up");
  auto out = A.arr<float>(2, "out");
  int64_t n = A.dim(3, "n");
  A.need(g, "gate", n);
  A.need(u, "up", n);
  A.need(out, "out", n);
  swiglu(g.p, u.p, out.p, n);
  return undefined(env);
END_KERNEL

// swigluBackward(gate, up, dy, dgate, dup, n)
KERNEL(SwigluBackward, "swigluBackward")
  auto g = A.arr<float>(0, "gate");
  auto u = A.arr<float>(1, "up");
  auto dy = A.arr<float>(2, "dy");
  auto dg = A.arr<float>(3, "dgate");
  auto du = A.arr<float>(4, "dup");
  int64_t n = A.dim(5, "n");
  A.need(g, "gate", n);
  A.need(u, "up", n);
  A.need(dy, "dy", n);
  A.need(dg, "dgate", n);
  A.need(du, "dup", n);
  swiglu_backward(g.p, u.p, dy.p, dg.p, du.p, n);
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- cross-entropy
// crossEntropy(logits, targets, rows, cols, ignoreIndex, losses, lse)
KERNEL(CrossEntropy, "crossEntropy")
  auto logits = A.arr<float>(0, "logits");
  auto targets = A.arr<int32_t>(1, "targets");
  int64_t rows = A.dim(2, "rows"), cols = A.dim(3, "cols");
  int64_t ignore = A.integer(4, "ignoreIndex");
  auto losses = A.arr<float>(5, "losses");
  auto lse = A.arr<float>(6, "lse");
  A.need(logits, "logits", A.prod({rows, cols}));
  A.need(targets, "targets", rows);
  A.need(losses, "losses", rows);
  A.need(lse, "lse", rows);
  if (cols == 0 && rows > 0) A.fail("cols must be > 0");
  cross_entropy(logits.p, targets.p, rows, cols, static_cast<int32_t>(ignore), losses.p, lse.p);
  return undefined(env);
END_KERNEL

// crossEntropyBackward(logits, targets, lse, rows, cols, ignoreIndex, scale, dlogits)
KERNEL(CrossEntropyBackward, "crossEntropyBackward")
  auto logits = A.arr<float>(0, "logits");
  auto targets = A.arr<int32_t>(1, "targets");
  auto lse = A.arr<float>(2, "lse");
  int64_t rows = A.dim(3, "rows"), cols = A.dim(4, "cols");
  int64_t ignore = A.integer(5, "ignoreIndex");
  float scale = static_cast<float>(A.num(6, "scale"));
  auto d = A.arr<float>(7, "dlogits");
  int64_t n = A.prod({rows, cols});
  A.need(logits, "logits", n);
  A.need(d, "dlogits", n);
  A.need(targets, "targets", rows);
  A.need(lse, "lse", rows);
  cross_entropy_backward(logits.p, targets.p, lse.p, rows, cols, static_cast<int32_t>(ignore), scale, d.p);
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- rope
// rope(x, out, batch, seq, heads, dim, positions, theta, inverse)
KERNEL(Rope, "rope")
  auto x = A.arr<float>(0, "x");
  auto out = A.arr<float>(1, "out");
  int64_t batch = A.dim(2, "batch"), seq = A.dim(3, "seq"), heads = A.dim(4, "heads"), dim = A.dim(5, "dim");
  auto pos = A.arr<int32_t>(6, "positions");
  double theta = A.num(7, "theta");
  bool inverse = A.flag(8, "inverse");
  if (dim % 2 != 0) A.fail("dim must be even, got " + std::to_string(dim));
  int64_t n = A.prod({batch, seq, heads, dim});
  A.need(x, "x", n);
  A.need(out, "out", n);
  A.need(pos, "positions", A.prod({batch, seq}));
  rope(x.p, out.p, batch, seq, heads, dim, pos.p, theta, inverse);
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- optimiser, BLAS-1
// adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
KERNEL(AdamW, "adamw")
  auto p = A.arr<float>(0, "param");
  auto g = A.arr<float>(1, "grad");
  auto m = A.arr<float>(2, "m");
  auto v = A.arr<float>(3, "v");
  int64_t n = A.dim(4, "n");
  A.need(p, "param", n);
  A.need(g, "grad", n);
  A.need(m, "m", n);
  A.need(v, "v", n);
  double step = A.num(10, "step");
  if (!(step >= 1)) A.fail("step is 1-based, got " + std::to_string(step));
  adamw(p.p, g.p, m.p, v.p, n, static_cast<float>(A.num(5, "lr")), static_cast<float>(A.num(6, "beta1")),
        static_cast<float>(A.num(7, "beta2")), static_cast<float>(A.num(8, "eps")),
        static_cast<float>(A.num(9, "weightDecay")), step);
  return undefined(env);
END_KERNEL

// swapMiddleAxes(x, out, B, A, C, D)
KERNEL(SwapMiddleAxes, "swapMiddleAxes")
  auto x = A.arr<float>(0, "x");
  auto out = A.arr<float>(1, "out");
  int64_t b = A.dim(2, "B"), a = A.dim(3, "A"), c = A.dim(4, "C"), d = A.dim(5, "D");
  A.need(x, "x", b * a * c * d);
  A.need(out, "out", b * a * c * d);
  swap_middle_axes(x.p, out.p, b, a, c, d);
  return undefined(env);
END_KERNEL

// axpy(alpha, x, y, n)
KERNEL(Axpy, "axpy")
  float alpha = static_cast<float>(A.num(0, "alpha"));
  auto x = A.arr<float>(1, "x");
  auto y = A.arr<float>(2, "y");
  int64_t n = A.dim(3, "n");
  A.need(x, "x", n);
  A.need(y, "y", n);
  axpy(alpha, x.p, y.p, n);
  return undefined(env);
END_KERNEL

#define BINARY(fname, label, fn) \
  KERNEL(fname, label) \
    auto a = A.arr<float>(0, "a"); \
    auto b = A.arr<float>(1, "b"); \
    auto out = A.arr<float>(2, "out"); \
    int64_t n = A.dim(3, "n"); \
    A.need(a, "a", n); \
    A.need(b, "b", n); \
    A.need(out, "out", n); \
    fn(a.p, b.p, out.p, n); \
    return undefined(env); \
  END_KERNEL

BINARY(Mul, "mul", mul)
BINARY(Add, "add", add)

// sumSquares(x, n) → number
KERNEL(SumSquares, "sumSquares")
  auto x = A.arr<float>(0, "x");
  int64_t n = A.dim(1, "n");
  A.need(x, "x", n);
  return number(env, sum_squares(x.p, n));
END_KERNEL

// ---------------------------------------------------------------- packed (bf16 / int8) weights
// Shared head of the packed signatures from argument `i`: kind, w, scales, then outF, inF at `dims`.
PackedW packed_arg(const Args& A, size_t i, size_t dims) {
  PackedW w{};
  int64_t kind = A.integer(i, "kind");
  if (kind != 0 && kind != 1) A.fail("kind must be 0 (bf16) or 1 (int8), got " + std::to_string(kind));
  w.kind = static_cast<Packing>(kind);
  w.rows = A.dim(dims, "outF");
  w.cols = A.dim(dims + 1, "inF");
  int64_t n = A.prod({w.rows, w.cols});
  if (w.kind == Packing::Bf16) {
    auto bits = A.arr<uint16_t>(i + 1, "w (bf16 bits)");
    A.need(bits, "w", n);
    w.bits = bits.p;
  } else {
    auto qs = A.arr<int8_t>(i + 1, "w (int8 values)");
    auto sc = A.arr<float>(i + 2, "scales");
    A.need(qs, "w", n);
    A.need(sc, "scales", A.prod({w.rows, q8_blocks(w.cols)}));
    w.qs = qs.p;
    w.scales = sc.p;
  }
  return w;
}

// packedLinear(kind, w, scales, x, out, outF, inF, rows, beta)
KERNEL(PackedLinear, "packedLinear")
  PackedW w = packed_arg(A, 0, 5);
  auto x = A.arr<float>(3, "x");
  auto out = A.arr<float>(4, "out");
  int64_t rows = A.dim(7, "rows");
  double beta = A.num(8, "beta");
  if (beta != 0 && beta != 1) A.fail("beta must be 0 or 1");
  A.need(x, "x", A.prod({rows, w.cols}));
  A.need(out, "out", A.prod({rows, w.rows}));
  packed_linear(x.p, w, out.p, rows, beta == 1);
  return undefined(env);
END_KERNEL

// packedLinearBackward(kind, w, scales, g, dx, outF, inF, rows)
KERNEL(PackedLinearBackward, "packedLinearBackward")
  PackedW w = packed_arg(A, 0, 5);
  auto g = A.arr<float>(3, "g");
  auto dx = A.arr<float>(4, "dx");
  int64_t rows = A.dim(7, "rows");
  A.need(g, "g", A.prod({rows, w.rows}));
  A.need(dx, "dx", A.prod({rows, w.cols}));
  packed_linear_backward(g.p, w, dx.p, rows);
  return undefined(env);
END_KERNEL

// quantizeBf16(src, bits, n)
KERNEL(QuantizeBf16, "quantizeBf16")
  auto src = A.arr<float>(0, "src");
  auto bits = A.arr<uint16_t>(1, "bits");
  int64_t n = A.dim(2, "n");
  A.need(src, "src", n);
  A.need(bits, "bits", n);
  quantize_bf16(src.p, bits.p, n);
  return undefined(env);
END_KERNEL

// quantizeInt8(src, qs, scales, rows, cols)
KERNEL(QuantizeInt8, "quantizeInt8")
  auto src = A.arr<float>(0, "src");
  auto qs = A.arr<int8_t>(1, "qs");
  auto sc = A.arr<float>(2, "scales");
  int64_t rows = A.dim(3, "rows"), cols = A.dim(4, "cols");
  int64_t n = A.prod({rows, cols});
  A.need(src, "src", n);
  A.need(qs, "qs", n);
  A.need(sc, "scales", A.prod({rows, q8_blocks(cols)}));
  if (!quantize_int8(src.p, qs.p, sc.p, rows, cols)) A.fail("cannot quantise a non-finite weight");
  return undefined(env);
END_KERNEL

// ---------------------------------------------------------------- info, threads, benches
napi_value set_str(napi_env env, napi_value obj, const char* key, const std::string& v) {
  napi_value s;
  napi_create_string_utf8(env, v.c_str(), v.size(), &s);
  napi_set_named_property(env, obj, key, s);
  return obj;
}

KERNEL(Info, "info")
  napi_value o;
  napi_create_object(env, &o);
  set_str(env, o, "blas", blas_description());
  set_str(env, o, "simd", FLAMINGO_SIMD_NAME);
  napi_value b;
  napi_get_boolean(env, have_blas(), &b);
  napi_set_named_property(env, o, "hasBlas", b);
  napi_set_named_property(env, o, "threads", number(env, pool_threads()));
  napi_set_named_property(env, o, "blasThreads", number(env, blas_threads()));
  return o;
END_KERNEL

// setThreads(n): our pool (OpenBLAS stays single-threaded).
KERNEL(SetThreads, "setThreads")
  int64_t n = A.dim(0, "n");
  if (n < 1 || n > 256) A.fail("thread count must be in [1, 256]");
  pool_set_threads(static_cast<int>(n));
  return undefined(env);
END_KERNEL

// benchDirectGemm(n, iters, a, b, c) → seconds for `iters` n×n×n products, timed in C++.
KERNEL(BenchDirectGemm, "benchDirectGemm")
  int64_t n = A.dim(0, "n");
  int64_t iters = A.dim(1, "iters");
  auto a = A.arr<float>(2, "a");
  auto b = A.arr<float>(3, "b");
  auto c = A.arr<float>(4, "c");
  int64_t nn = A.prod({n, n});
  A.need(a, "a", nn);
  A.need(b, "b", nn);
  A.need(c, "c", nn);
  return number(env, bench_direct_gemm(n, static_cast<int>(iters), a.p, b.p, c.p));
END_KERNEL

// setErrorClass(ctor): constructor called as `new ctor(message)` for argument errors.
KERNEL(SetErrorClass, "setErrorClass")
  napi_valuetype t;
  napi_typeof(env, A.at(0), &t);
  if (t != napi_function) A.fail("expected a constructor", true);
  InstanceData* d = nullptr;
  napi_get_instance_data(env, reinterpret_cast<void**>(&d));
  if (!d) A.fail("addon instance data missing");
  if (d->errorClass) napi_delete_reference(env, d->errorClass);
  napi_create_reference(env, A.at(0), 1, &d->errorClass);
  return undefined(env);
END_KERNEL

napi_value Init(napi_env env, napi_value exports) {
  auto* data = new InstanceData();
  napi_set_instance_data(
      env, data,
      [](napi_env e, void* p, void*) {
        auto* d = static_cast<InstanceData*>(p);
        if (d->errorClass) napi_delete_reference(e, d->errorClass);
        delete d;
      },
      nullptr);
  // One thread count for both pools: OpenBLAS's workers and ours never run at the same time
  // (calls are sequential), so matching the core count keeps either from oversubscribing.
  blas_single_threaded();
  struct Entry {
    const char* name;
    napi_callback cb;
  };
  const Entry entries[] = {
      {"gemm", Gemm},
      {"gemmBuiltin", GemmBuiltin},
      {"gemmSmall", GemmSmall},
      {"softmax", Softmax},
      {"softmaxBackward", SoftmaxBackward},
      {"logSoftmax", LogSoftmax},
      {"logSoftmaxBackward", LogSoftmaxBackward},
      {"maskedSoftmax", MaskedSoftmax},
      {"maskedSoftmaxBackward", MaskedSoftmaxBackward},
      {"alibiBias", AlibiBias},
      {"alibiBiasBackward", AlibiBiasBackward},
      {"layerNorm", LayerNorm},
      {"layerNormBackward", LayerNormBackward},
      {"rmsNorm", RmsNorm},
      {"rmsNormBackward", RmsNormBackward},
      {"activation", Activation},
      {"activationBackward", ActivationBackward},
      {"swiglu", Swiglu},
      {"swigluBackward", SwigluBackward},
      {"crossEntropy", CrossEntropy},
      {"crossEntropyBackward", CrossEntropyBackward},
      {"rope", Rope},
      {"adamw", AdamW},
      {"axpy", Axpy},
      {"swapMiddleAxes", SwapMiddleAxes},
      {"mul", Mul},
      {"add", Add},
      {"sumSquares", SumSquares},
      {"packedLinear", PackedLinear},
      {"packedLinearBackward", PackedLinearBackward},
      {"quantizeBf16", QuantizeBf16},
      {"quantizeInt8", QuantizeInt8},
      {"info", Info},
      {"setThreads", SetThreads},
      {"benchDirectGemm", BenchDirectGemm},
      {"setErrorClass", SetErrorClass},
  };
  for (const Entry& e : entries) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.cb, nullptr, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}

}  // namespace
}  // namespace flamingo

NAPI_MODULE(NODE_GYP_MODULE_NAME, flamingo::Init)
