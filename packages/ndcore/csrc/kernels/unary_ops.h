// unary_ops.h owns the elementwise unary functors: one struct per op, named after it in
// PascalCase, computing on float/double (16-bit floats are widened by the loop).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "vecmath.h"

namespace nd {
namespace ufn {

// Transcendental functions the loops can vectorise (vecmath.h) for float32 and, where written,
// float64; the rest call libm.
using vm::exp_f32;
inline float vexp(float x) { return vm::exp_f32(x); }
inline double vexp(double x) { return vm::exp_f64(x); }
template <typename T> inline T exp_any(T x) { return vexp(x); }
inline float vsigmoid(float x) { return vm::sigmoid_f32(x); }
inline double vsigmoid(double x) { return vm::sigmoid_f64(x); }
inline float vexp2(float x) { return vm::exp2_f32(x); }
inline double vexp2(double x) { return std::exp2(x); }
inline float vexpm1(float x) { return vm::expm1_f32(x); }
inline double vexpm1(double x) { return std::expm1(x); }
inline float vlog(float x) { return vm::log_f32(x); }
inline double vlog(double x) { return vm::log_f64(x); }
inline float vlog2(float x) { return vm::log2_f32(x); }
inline double vlog2(double x) { return std::log2(x); }
inline float vlog10(float x) { return vm::log10_f32(x); }
inline double vlog10(double x) { return std::log10(x); }
inline float vlog1p(float x) { return vm::log1p_f32(x); }
inline double vlog1p(double x) { return std::log1p(x); }
inline float vtanh(float x) { return vm::tanh_f32(x); }
inline double vtanh(double x) { return std::tanh(x); }
inline float verf(float x) { return vm::erf_f32(x); }
inline double verf(double x) { return std::erf(x); }

#define ND_UFN(Name, expr) \
  struct Name {            \
    template <typename T>  \
    T operator()(T x) const { return expr; } \
  };
ND_UFN(Exp, vexp(x))
ND_UFN(Exp2, vexp2(x))
ND_UFN(Expm1, vexpm1(x))
ND_UFN(Log, vlog(x))
ND_UFN(Log2, vlog2(x))
ND_UFN(Log10, vlog10(x))
ND_UFN(Log1p, vlog1p(x))
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
ND_UFN(Tanh, vtanh(x))
ND_UFN(Asinh, std::asinh(x))
ND_UFN(Acosh, std::acosh(x))
ND_UFN(Atanh, std::atanh(x))
ND_UFN(Sigmoid, vsigmoid(x))
ND_UFN(Erf, verf(x))
ND_UFN(Erfc, std::erfc(x))
ND_UFN(Lgamma, std::lgamma(x))
ND_UFN(Silu, x / (T(1) + vexp(-x)))  // fewer roundings than x * sigmoid(x); -0 below -88.7 as torch
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
// fabs for floating types: `x < 0 ? -x : x` keeps the sign of -0.0 (torch gives +0.0).
struct Abs { template <typename T> T operator()(T x) const { if constexpr (std::is_unsigned_v<T>) return x; else if constexpr (std::is_floating_point_v<T>) return std::fabs(x); else return x < 0 ? T(-x) : x; } };
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
