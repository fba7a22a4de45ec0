// parallel.h owns intra-op parallelism: a fixed pool of worker threads sized to the cores, and
// parallel_for, which splits [0, n) into one contiguous chunk per thread.
#pragma once
#include <cstdint>
#include <functional>

namespace nd {

int get_num_threads();
void set_num_threads(int n);
bool in_parallel_region();
// Runs fn(begin, end) over [0, n) in parallel when n >= grain (elements worth one thread's
// start-up cost); otherwise inline. Nested calls run inline.
void parallel_for_impl(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (n < grain || in_parallel_region() || get_num_threads() == 1) {
    fn(int64_t(0), n);  // small work runs inline, without building a std::function
    return;
  }
  parallel_for_impl(n, std::function<void(int64_t, int64_t)>(std::forward<F>(fn)));
}

// Element counts above which a loop is worth splitting, by rough cost per element.
constexpr int64_t kGrainCheap = 1 << 16;     // copies, adds
constexpr int64_t kGrainExpensive = 1 << 12; // exp, sin, erf

}  // namespace nd
