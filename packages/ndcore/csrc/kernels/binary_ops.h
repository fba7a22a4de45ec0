// binary_ops.h owns the elementwise binary functors, one per op, named after it in PascalCase.
// Each computes in the promoted type (16-bit floats widened to float by the loop).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace nd {
namespace bfn {

template <typename T> constexpr bool is_fp = std::is_floating_point_v<T>;

struct Add { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a || b; else return T(a + b); } };
struct Sub { template <typename T> T operator()(T a, T b) const { return T(a - b); } };
struct Mul { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a && b; else return T(a * b); } };
struct Div { template <typename T> T operator()(T a, T b) const { return T(a / b); } };
// NaN propagates: the compare picks a NaN `b`, the second select a NaN `a`. Selects rather than
// branches, so the loops vectorise.
struct Maximum { template <typename T> T operator()(T a, T b) const { T r = a > b ? a : b; return a != a ? a : r; } };
struct Minimum { template <typename T> T operator()(T a, T b) const { T r = a < b ? a : b; return a != a ? a : r; } };
struct Atan2 { template <typename T> T operator()(T a, T b) const { return std::atan2(a, b); } };
struct Hypot { template <typename T> T operator()(T a, T b) const { return std::hypot(a, b); } };
struct Copysign { template <typename T> T operator()(T a, T b) const { return std::copysign(a, b); } };
// Integer x / -1 and x % -1 are done without the division: INT_MIN / -1 traps (SIGFPE).
template <typename T> constexpr bool minus_one(T b) {
  if constexpr (std::is_signed_v<T>) return b == T(-1); else return false;
}
template <typename T> T wrap_neg(T a) { return T(T(0) - static_cast<std::make_unsigned_t<T>>(a)); }
struct Fmod {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (is_fp<T>) return std::fmod(a, b);
    else if constexpr (std::is_same_v<T, bool>) return T(0);
    else return (b == 0 || minus_one(b)) ? T(0) : T(a % b);
  }
};
// Python's modulo: the result takes the divisor's sign.
struct Remainder {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (is_fp<T>) {
      T r = std::fmod(a, b);
      // a zero result takes the divisor's sign, as Python's % and torch do (fmod keeps a's)
      if (r == 0) return std::copysign(T(0), b);
      return ((r < 0) != (b < 0)) ? r + b : r;
    } else if constexpr (std::is_same_v<T, bool>) {
      return T(0);
    } else {
      if (b == 0 || minus_one(b)) return T(0);
      T r = T(a % b);
      return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
    }
  }
};
struct FloorDivide {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (is_fp<T>) {
      if (b == 0) return a / b;
      T m = std::fmod(a, b), d = (a - m) / b;
      if (m != 0 && ((b < 0) != (m < 0))) d -= 1;
      T fd = std::floor(d);
      if (d - fd > T(0.5)) fd += 1;
      return d == 0 ? std::copysign(T(0), a / b) : fd;
    } else if constexpr (std::is_same_v<T, bool>) {
      return a;
    } else {
      if (b == 0) return T(0);
      if (minus_one(b)) return wrap_neg(a);
      T q = T(a / b);
      if ((a % b != 0) && ((a < 0) != (b < 0))) q = T(q - 1);
      return q;
    }
  }
};
struct Pow {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (is_fp<T>) {
      return std::pow(a, b);
    } else if constexpr (std::is_same_v<T, bool>) {
      return a || !b;
    } else {
      if (b < 0) return a == 1 ? T(1) : (a == T(-1) ? T((b % 2) ? -1 : 1) : T(0));
      // wrapping products, as torch's (signed overflow would be undefined): modulo 2^64, then
      // truncated, which equals truncating every step
      uint64_t r = 1, base = uint64_t(int64_t(a));
      for (auto e = b; e > 0; e >>= 1) {
        if (e & 1) r *= base;
        base *= base;
      }
      return T(r);
    }
  }
};
struct BitwiseAnd { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a && b; else return T(a & b); } };
struct BitwiseOr { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a || b; else return T(a | b); } };
struct BitwiseXor { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a != b; else return T(a ^ b); } };
struct Lshift { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a; else return (b < 0 || b >= T(sizeof(T) * 8)) ? T(0) : T((std::make_unsigned_t<T>)a << b); } };
struct Rshift { template <typename T> T operator()(T a, T b) const { if constexpr (std::is_same_v<T, bool>) return a; else return (b < 0 || b >= T(sizeof(T) * 8)) ? T(a < 0 ? -1 : 0) : T(a >> b); } };

// comparisons and logical ops: bool results
struct Eq { template <typename T> bool operator()(T a, T b) const { return a == b; } };
struct Ne { template <typename T> bool operator()(T a, T b) const { return a != b; } };
struct Lt { template <typename T> bool operator()(T a, T b) const { return a < b; } };
struct Le { template <typename T> bool operator()(T a, T b) const { return a <= b; } };
struct Gt { template <typename T> bool operator()(T a, T b) const { return a > b; } };
struct Ge { template <typename T> bool operator()(T a, T b) const { return a >= b; } };
struct LogicalAnd { template <typename T> bool operator()(T a, T b) const { return (a != T(0)) && (b != T(0)); } };
struct LogicalOr { template <typename T> bool operator()(T a, T b) const { return (a != T(0)) || (b != T(0)); } };
struct LogicalXor { template <typename T> bool operator()(T a, T b) const { return (a != T(0)) != (b != T(0)); } };

}  // namespace bfn
}  // namespace nd
