// N-API glue: unpacks JS arguments (TypedArray views are used in place, byteOffset honoured by
// napi_get_typedarray_info), checks every buffer is long enough for the sizes given, and calls the
// kernels. A bad argument throws a JS error naming the kernel; it never crashes. The per-kernel
// functions are generated from the signature table (bindings.gen.inc); this file holds the one
// argument helper they share and the non-kernel exports (info, threads, benches).
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "quant.h"
#include "memory.h"
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

  template <class T>
  void need(const Arr<T>& a, const char* name, double want) const {
    if (static_cast<double>(a.len) >= want) return;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", want);
    fail(std::string(name) + " has " + std::to_string(a.len) + " elements but the sizes need " + buf);
  }

  // An activation code (Act in kernels.h).
  Act act(size_t i, const char* name) const {
    int64_t k = integer(i, name);
    if (k < 0 || k > 6) fail("unknown activation code " + std::to_string(k));
    return static_cast<Act>(k);
  }

  // A packed weight lowered to five arguments from `i`: kind (0 bf16, 1 int8), data, scales, rows, cols.
  PackedW packed(size_t i, const char* name) const {
    PackedW w{};
    int64_t kind = integer(i, name);
    if (kind != 0 && kind != 1) fail(std::string(name) + ".kind must be 0 (bf16) or 1 (int8), got " + std::to_string(kind));
    w.kind = static_cast<Packing>(kind);
    w.rows = dim(i + 3, "w.rows");
    w.cols = dim(i + 4, "w.cols");
    double n = static_cast<double>(w.rows) * static_cast<double>(w.cols);
    if (w.kind == Packing::Bf16) {
      auto bits = arr<uint16_t>(i + 1, "w.bits");
      need(bits, "w.bits", n);
      w.bits = bits.p;
    } else {
      auto qs = arr<int8_t>(i + 1, "w.qs");
      auto sc = arr<float>(i + 2, "w.scales");
      need(qs, "w.qs", n);
      need(sc, "w.scales", static_cast<double>(w.rows) * static_cast<double>(q8_blocks(w.cols)));
      w.qs = qs.p;
      w.scales = sc.p;
    }
    return w;
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
  std::string heap;  // keep_freed_memory()'s result, reported by info()
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

// Sizes are checked in double: a product of dims (each < 2^40) never overflows, and a length
// beyond 2^53 is past any buffer anyway.
constexpr double f64(int64_t v) { return static_cast<double>(v); }
constexpr double f64(double v) { return v; }
constexpr bool f64(bool v) { return v; }  // a flag inside a length expression (transA ? … : …)
double q8_blocks(double cols) { return std::ceil(cols / Q8_BLOCK); }

struct Entry {
  const char* name;
  napi_callback cb;
};

// The kernels: unpacking, size checks and the call, generated from the signature table
// (src/engine/kernels/signatures.ts) by tools/gen-kernel-bindings.ts.
#include "bindings.gen.inc"

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
  // which GEMM runs the engine's products (CPU check at run time; FLAMINGO_GEMM=openblas forces the library)
  set_str(env, o, "gemm", gemm_uses_avx512() ? "avx512" : have_blas() ? "openblas" : "builtin");
  // the decode (matrix-vector) kernels pick AVX-512 at run time when the CPU has it
  set_str(env, o, "simd", std::string(FLAMINGO_SIMD_NAME) + (decode_uses_avx512() ? ", avx512 decode kernels" : ""));
  napi_value b;
  napi_get_boolean(env, have_blas(), &b);
  napi_set_named_property(env, o, "hasBlas", b);
  napi_set_named_property(env, o, "threads", number(env, pool_threads()));
  napi_set_named_property(env, o, "blasThreads", number(env, blas_threads()));
  InstanceData* d = nullptr;
  napi_get_instance_data(env, reinterpret_cast<void**>(&d));
  set_str(env, o, "heap", d ? d->heap : std::string("unknown"));
  return o;
END_KERNEL

// poolStats() → { dispatched, inline }: pool counters since load (the bench's profile reads them).
KERNEL(PoolStatsFn, "poolStats")
  napi_value o;
  napi_create_object(env, &o);
  const PoolStats st = pool_stats();
  napi_set_named_property(env, o, "dispatched", number(env, static_cast<double>(st.dispatched)));
  napi_set_named_property(env, o, "inline", number(env, static_cast<double>(st.inline_runs)));
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
  double nn = f64(n) * f64(n);
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
  data->heap = keep_freed_memory();
  const Entry entries[] = {
      {"info", Info},
      {"poolStats", PoolStatsFn},
      {"setThreads", SetThreads},
      {"benchDirectGemm", BenchDirectGemm},
      {"setErrorClass", SetErrorClass},
  };
  auto define = [&](const Entry& e) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.cb, nullptr, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  };
  for (const Entry& e : kKernelEntries) define(e);
  for (const Entry& e : entries) define(e);
  return exports;
}
}  // namespace
}  // namespace flamingo

NAPI_MODULE(NODE_GYP_MODULE_NAME, flamingo::Init)
