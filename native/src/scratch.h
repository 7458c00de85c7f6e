// A grow-only, 64-byte-aligned float scratch buffer, kept per thread (thread_local) by the kernels
// that need one per call: GEMM packing (gemm_avx512.cc) and the dequantised weight panels of the
// packed products (quant.cc). Reusing it avoids an allocation, and fresh-page faults, per call.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstdio>

namespace flamingo {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }

  // At least `floats` floats; the contents are undefined (a larger request discards them).
  float* get(size_t floats) {
    if (floats > n_) {
      std::free(p_);
      const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) {
        // called on pool threads, where no error can reach JavaScript: stop loudly rather than
        // write through a null pointer
        std::fprintf(stderr, "flamingo native: out of memory for a %zu-byte scratch buffer\n", bytes);
        std::abort();
      }
      n_ = floats;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace flamingo
