// SingleThreadBlas: a scope in which OpenBLAS runs single-threaded, for kernels that run one
// GEMM per worker of our own pool (conv.cpp, winograd.cpp, matmul.cpp).
#pragma once
#include <cblas.h>

#include <mutex>

namespace nd {

// Sets OpenBLAS to one thread while our pool runs one GEMM per worker: two pools fighting over
// two cores is far slower than either alone, and on a busy machine their hand-offs dominate.
// Nested or concurrent users share one saved value (restored when the last one leaves).
struct SingleThreadBlas {
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static int& depth() {
    static int d = 0;
    return d;
  }
  static int& saved() {
    static int s = 1;
    return s;
  }
  SingleThreadBlas() {
    std::lock_guard<std::mutex> g(mu());
    if (depth()++ == 0) {
      saved() = scipy_openblas_get_num_threads();
      if (saved() != 1) scipy_openblas_set_num_threads(1);
    }
  }
  ~SingleThreadBlas() {
    std::lock_guard<std::mutex> g(mu());
    if (--depth() == 0 && saved() != 1) scipy_openblas_set_num_threads(saved());
  }
};

}  // namespace nd
