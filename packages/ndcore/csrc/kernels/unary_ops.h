// unary_ops.h owns the elementwise unary functors: one struct per op, named after it in
// PascalCase, computing on float/double (16-bit floats are widened by the loop).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace nd {
namespace ufn {

// exp for float that the compiler can vectorise (no libm call): range reduction to
// r in [-ln2/2, ln2/2], a degree-6 polynomial (Cephes coefficients), then scaling by 2^k.
inline float exp_f32(float x) {
  float xc = x > 88.7228f ? 88.7228f : (x < -103.97f ? -103.97f : x);
  float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  // 2^k split in two factors so k down to -150 (subnormal results) stays representable
  int32_t ki = (int32_t)k;
  int32_t k1 = ki / 2, k2 = ki - k1;
  int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  y = y * s1 * s2;
  if (x > 88.7228f) y = INFINITY;
  if (x < -103.97f) y = 0.0f;
  return x != x ? x : y;
}
template <typename T> inline T exp_any(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_f32(x); else return std::exp(x);
}

#define ND_UFN(Name, expr) \
  struct Name {            \
    template <typename T>  \
    T operator()(T x) const { return expr; } \
  };
ND_UFN(Exp, exp_any(x))
ND_UFN(Exp2, std::exp2(x))
ND_UFN(Expm1, std::expm1(x))
ND_UFN(Log, std::log(x))
ND_UFN(Log2, std::log2(x))
ND_UFN(Log10, std::log10(x))
ND_UFN(Log1p, std::log1p(x))
ND_UFN(Sqrt, std::sqrt(x))
ND_UFN(Rsqrt, T(1) / std::sqrt(x))
ND_UFN(Sin, std::sin(x))
ND_UFN(Cos, std::cos(x))
ND_UFN(Tan, std::tan(x))
ND_UFN(Asin, std::asin(x))
ND_UFN(Acos, std::acos(x))
ND_UFN(Atan, std::atan(x))
ND_UFN(Sinh, std::sinh(x))
ND_UFN(Cosh, std::cosh(x))
ND_UFN(Tanh, (std::is_same_v<T, float> ? (std::fabs(x) < T(0.0625) ? std::tanh(x) : T(1) - T(2) / (exp_any(T(2) * x) + T(1))) : std::tanh(x)))
ND_UFN(Asinh, std::asinh(x))
ND_UFN(Acosh, std::acosh(x))
ND_UFN(Atanh, std::atanh(x))
ND_UFN(Sigmoid, T(1) / (T(1) + exp_any(-x)))
ND_UFN(Erf, std::erf(x))
ND_UFN(Erfc, std::erfc(x))
ND_UFN(Lgamma, std::lgamma(x))
ND_UFN(Silu, x / (T(1) + exp_any(-x)))
ND_UFN(Reciprocal, T(1) / x)
ND_UFN(Frac, x - std::trunc(x))
ND_UFN(Square, x * x)
#undef ND_UFN

// Inverse error function: Giles' single-precision approximation refined by two Newton steps
// on erf, which brings it to double precision.
struct Erfinv {
  template <typename T> T operator()(T y) const {
    if (y <= T(-1)) return y == T(-1) ? -INFINITY : NAN;
    if (y >= T(1)) return y == T(1) ? INFINITY : NAN;
    double w = -std::log((1.0 - y) * (1.0 + y)), x;
    if (w < 5.0) {
      w -= 2.5;
      double p = 2.81022636e-08;
      p = 3.43273939e-07 + p * w; p = -3.5233877e-06 + p * w; p = -4.39150654e-06 + p * w;
      p = 0.00021858087 + p * w; p = -0.00125372503 + p * w; p = -0.00417768164 + p * w;
      p = 0.246640727 + p * w; p = 1.50140941 + p * w;
      x = p * y;
    } else {
      w = std::sqrt(w) - 3.0;
      double p = -0.000200214257;
      p = 0.000100950558 + p * w; p = 0.00134934322 + p * w; p = -0.00367342844 + p * w;
      p = 0.00573950773 + p * w; p = -0.0076224613 + p * w; p = 0.00943887047 + p * w;
      p = 1.00167406 + p * w; p = 2.83297682 + p * w;
      x = p * y;
    }
    for (int i = 0; i < 2; ++i) x -= (std::erf(x) - y) / (1.1283791670955126 * std::exp(-x * x));
    return T(x);
  }
};

// dtype-preserving ops: also defined on integers
struct Abs { template <typename T> T operator()(T x) const { if constexpr (std::is_unsigned_v<T>) return x; else return x < 0 ? T(-x) : x; } };
struct Neg { template <typename T> T operator()(T x) const { return T(-x); } };
struct Sign { template <typename T> T operator()(T x) const { return T((T(0) < x) - (x < T(0))); } };
struct Relu { template <typename T> T operator()(T x) const { return x > T(0) ? x : T(0); } };
struct Floor { template <typename T> T operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::floor(x); else return x; } };
struct Ceil { template <typename T> T operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::ceil(x); else return x; } };
struct Round { template <typename T> T operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::nearbyint(x); else return x; } };
struct Trunc { template <typename T> T operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::trunc(x); else return x; } };

// predicates: bool results
struct IsNan { template <typename T> bool operator()(T x) const { return x != x; } };
struct IsInf { template <typename T> bool operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::isinf(x); else return false; } };
struct IsFinite { template <typename T> bool operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::isfinite(x); else return true; } };
// copysign rather than std::signbit: GCC 12 miscompiles a vectorised signbit (ICE at -O3)
struct SignBit { template <typename T> bool operator()(T x) const { if constexpr (std::is_floating_point_v<T>) return std::copysign(T(1), x) < T(0); else return x < T(0); } };
struct LogicalNot { template <typename T> bool operator()(T x) const { return !(x != T(0)); } };

// integer only
struct BitwiseNot { template <typename T> T operator()(T x) const { if constexpr (std::is_same_v<T, bool>) return !x; else return T(~x); } };

}  // namespace ufn
}  // namespace nd
