#include "pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace flamingo {
namespace {

struct Job {
  RangeFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0;
  int64_t chunk = 1;
  std::atomic<int64_t> next{0};

  void work() {
    for (;;) {
      int64_t b = next.fetch_add(chunk, std::memory_order_relaxed);
      if (b >= n) return;
      fn(ctx, b, std::min(n, b + chunk));
    }
  }
};

thread_local bool t_inside = false;  // this thread is running a pool job
std::atomic<uint64_t> g_dispatched{0}, g_inline{0};

// How long an idle worker (and a caller waiting for its workers) polls before blocking. A decode
// step dispatches ~100–200 small jobs separated by a few µs of JavaScript; waking a blocked thread
// costs a futex call and a context switch each time (measured at ~10–15% of a small-model decode
// step). Bounded, so an idle process does not keep a core busy.
constexpr auto SPIN = std::chrono::microseconds(50);

template <class Pred>
bool spin_until(Pred ready) {
  const auto until = std::chrono::steady_clock::now() + SPIN;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}

class Pool {
 public:
  explicit Pool(int threads) { start(threads); }
  ~Pool() { stop(); }

  int threads() const { return threads_; }

  void resize(int threads) {
    std::lock_guard<std::mutex> busy(busy_);
    stop();
    start(threads);
  }

  void run(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
    // Nested call (from inside a job, on the caller or a worker): run inline.
    if (t_inside || threads_ <= 1) {
      g_inline.fetch_add(1, std::memory_order_relaxed);
      fn(ctx, 0, n);
      return;
    }
    // Another JS thread (worker_threads) is using the pool: run inline rather than wait.
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {
      g_inline.fetch_add(1, std::memory_order_relaxed);
      fn(ctx, 0, n);
      return;
    }
    struct Inside {
      Inside() { t_inside = true; }
      ~Inside() { t_inside = false; }
    } inside;
    g_dispatched.fetch_add(1, std::memory_order_relaxed);
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    // A few chunks per thread so a thread delayed by the OS (or by OpenBLAS) costs little.
    int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n / grain, int64_t{threads_} * 4));
    job.chunk = (n + chunks - 1) / chunks;
    job_.store(&job);
    generation_.fetch_add(1);
    if (sleeping_.load() > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
    job.work();
    // Late workers see no job. A worker that announced itself (active_) before this store may
    // still hold &job: wait for it (seq_cst on both sides: it either is counted or sees null).
    job_.store(nullptr);
    if (!spin_until([&] { return active_.load() == 0; })) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return active_.load() == 0; });
    }
  }

 private:
  void start(int threads) {
    threads_ = std::max(1, threads);
    stopping_.store(false);
    for (int i = 1; i < threads_; i++) workers_.emplace_back([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void loop() {
    t_inside = true;
    uint64_t seen = generation_.load();
    for (;;) {
      auto fresh = [&] { return stopping_.load() || generation_.load() != seen; };
      if (!spin_until(fresh)) {
        std::unique_lock<std::mutex> lk(mu_);
        sleeping_.fetch_add(1);
        cv_.wait(lk, fresh);
        sleeping_.fetch_sub(1);
      }
      if (stopping_.load()) return;
      seen = generation_.load();
      active_.fetch_add(1);
      if (Job* job = job_.load()) job->work();
      if (active_.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }

  int threads_ = 1;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
  std::mutex busy_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};    // workers between announcing themselves and leaving a job
  std::atomic<int> sleeping_{0};  // workers blocked on cv_ (the dispatcher notifies only then)
};

int default_threads() {
  if (const char* env = std::getenv("FLAMINGO_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, 256);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock.
  static Pool* p = new Pool(default_threads());
  return *p;
}

}  // namespace

int pool_threads() { return pool().threads(); }
PoolStats pool_stats() {
  return {g_dispatched.load(std::memory_order_relaxed), g_inline.load(std::memory_order_relaxed)};
}
void pool_set_threads(int n) { pool().resize(n); }
void parallel_range(int64_t n, int64_t grain, RangeFn fn, void* ctx) { pool().run(n, grain, fn, ctx); }

}  // namespace flamingo
