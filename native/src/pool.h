// A small persistent thread pool for the fused kernels.
//
// Idle workers poll for a new job for a short, bounded time (SPIN in pool.cc) and then block on a
// condition variable; OpenBLAS runs single-threaded, so no second pool competes for the cores.
// Work is handed out in chunks through an atomic counter, so a worker that wakes late simply finds
// no work left instead of stalling the caller (the caller never waits for a worker that has not
// started; it only waits for workers that already took a chunk).
#pragma once
#include <cstdint>
#include <type_traits>

namespace flamingo {

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);

// Number of threads (including the caller) used for large calls.
int pool_threads();
// Set the thread count (>= 1); restarts the workers. Not safe concurrently with running kernels.
void pool_set_threads(int n);

// Counters since the process started (profiling: how often work was handed to the pool).
struct PoolStats {
  uint64_t dispatched;  // jobs handed to the workers
  uint64_t inline_runs; // parallel_range calls run on the caller alone (nested in a job, or pool busy)
};
PoolStats pool_stats();

// Runs fn over [0, n) split into chunks of at least `grain` items. Runs inline when the range is
// one chunk, the pool has one thread, or the pool is already busy (e.g. called from a second JS
// worker thread at the same time).
void parallel_range(int64_t n, int64_t grain, RangeFn fn, void* ctx);

template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain || pool_threads() <= 1) {
    f(int64_t{0}, n);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  parallel_range(n, grain, [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); },
                 const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace flamingo
