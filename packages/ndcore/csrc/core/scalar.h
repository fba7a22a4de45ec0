// scalar.h owns nd::Scalar (a Python-like number for the C++ API) and nd::Generator (the
// random-number state that creation and sampling ops take).
#pragma once
#include <cstdint>
#include <mutex>

#include "dispatch.h"

namespace nd {

class Scalar {
 public:
  Scalar(double v) : v_(Value::from_double(v)) {}
  Scalar(float v) : v_(Value::from_double(v)) {}
  Scalar(int v) : v_(Value::from_int(v)) {}
  Scalar(int64_t v) : v_(Value::from_int(v)) {}
  Scalar(long long v) : v_(Value::from_int((int64_t)v)) {}
  Scalar(bool v) : v_(Value::from_bool(v)) {}
  explicit Scalar(Value v) : v_(std::move(v)) {}
  const Value& value() const { return v_; }
  double to_double() const { return v_.to_double(); }

 private:
  Value v_;
};

// Counter-based (Philox-4x32-10) generator: each draw of n numbers reserves a counter range, so
// large fills split across threads and stay identical to a single-threaded fill.
class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ull) { manual_seed(seed); }
  void manual_seed(uint64_t seed) {
    std::lock_guard<std::mutex> g(mu_);
    seed_ = seed;
    offset_ = 0;
  }
  uint64_t initial_seed() const { return seed_; }
  // Reserve `n` 128-bit blocks; returns the first counter of the range.
  uint64_t reserve(uint64_t n) {
    std::lock_guard<std::mutex> g(mu_);
    uint64_t start = offset_;
    offset_ += n;
    return start;
  }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    std::lock_guard<std::mutex> g(mu_);
    seed_ = seed;
    offset_ = offset;
  }

 private:
  std::mutex mu_;
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

Generator& default_generator();

}  // namespace nd
