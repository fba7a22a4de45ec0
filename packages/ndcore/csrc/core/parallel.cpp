#include "parallel.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace nd {
namespace {

int default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

thread_local bool t_in_parallel = false;

// Note [Pool workers spin before sleeping]
// Eager code issues parallel regions back to back with a few microseconds of Python between
// them. A worker asleep on a condition variable needs a futex wake-up and a reschedule (tens of
// microseconds, more on a busy machine) before it helps, which on sub-millisecond kernels means
// the caller does all the work alone. So an idle worker first polls for the next region for a
// short while (ND_POOL_SPIN_US, default 100 us; 0 disables), then sleeps. OpenMP runtimes do the
// same (GOMP spins far longer by default).
int64_t spin_ns() {
  static const int64_t ns = [] {
    const char* v = std::getenv("ND_POOL_SPIN_US");
    long us = v && *v ? std::strtol(v, nullptr, 10) : 100;
    return (int64_t)std::max<long>(0, us) * 1000;
  }();
  return ns;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Note [Thread pool and fork]
// DataLoader workers fork the process. Threads do not survive fork, so the child marks the pool
// as gone and builds a new one on first use instead of waiting on threads that do not exist.
class Pool {
 public:
  explicit Pool(int n) : size_(n) {
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int size() const { return size_; }

  void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> g(mu_);
      fn_ = &fn;
      n_ = n;
      pending_.store(size_ - 1);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);  // publishes fn_/n_ to spinning workers
    }
    cv_.notify_all();
    run_chunk(0);
    // Workers finish within microseconds on these sizes: spin before sleeping.
    for (int spin = 0; pending_.load(std::memory_order_acquire) > 0; ++spin) {
      if (spin > 20000) {
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, [this] { return pending_.load() == 0; });
        break;
      }
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_chunk(int idx) {
    int64_t chunk = (n_ + size_ - 1) / size_;
    int64_t b = idx * chunk, e = std::min(n_, b + chunk);
    if (b >= e) return;
    t_in_parallel = true;
    try {
      (*fn_)(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> g(mu_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_parallel = false;
  }
  bool next_region_within_spin(uint64_t seen) const {  // Note [Pool workers spin before sleeping]
    int64_t limit = spin_ns();
    if (limit <= 0) return false;
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_relaxed)) return true;
        cpu_relax();
      }
      if (std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count() > limit)
        return false;
    }
  }
  void loop(int idx) {
    uint64_t seen = 0;
    for (;;) {
      if (!next_region_within_spin(seen)) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      run_chunk(idx);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> g(mu_);
        done_cv_.notify_all();
      }
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::exception_ptr error_;
  std::atomic<bool> stop_{false};
};

std::mutex g_pool_mu;
Pool* g_pool = nullptr;  // leaked at exit: joining threads during static teardown can deadlock
int g_num_threads = 0;

void after_fork_in_child() {
  g_pool = nullptr;  // its threads are gone (Note [Thread pool and fork])
  new (&g_pool_mu) std::mutex();
}
struct ForkGuard {
  ForkGuard() { pthread_atfork(nullptr, nullptr, after_fork_in_child); }
} g_fork_guard;

Pool* pool() {
  std::lock_guard<std::mutex> g(g_pool_mu);
  if (g_num_threads <= 0) g_num_threads = default_threads();
  if (!g_pool || g_pool->size() != g_num_threads) {
    delete g_pool;
    g_pool = g_num_threads > 1 ? new Pool(g_num_threads) : nullptr;
  }
  return g_pool;
}

}  // namespace

std::atomic<int> g_threads_cache{0};
int get_num_threads() {
  int n = g_threads_cache.load(std::memory_order_relaxed);
  if (n > 0) return n;
  std::lock_guard<std::mutex> g(g_pool_mu);
  if (g_num_threads <= 0) g_num_threads = default_threads();
  g_threads_cache.store(g_num_threads);
  return g_num_threads;
}
void set_num_threads(int n) {
  std::lock_guard<std::mutex> g(g_pool_mu);
  g_num_threads = std::max(1, n);
  g_threads_cache.store(g_num_threads);
}
bool in_parallel_region() { return t_in_parallel; }

void parallel_for_impl(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  Pool* p = pool();
  if (!p) {
    fn(0, n);
    return;
  }
  p->run(n, fn);
}

}  // namespace nd
