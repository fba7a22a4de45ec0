// dtype.h owns the element types: the DType enum, their sizes and names, the 16-bit float
// storage types, torch's type-promotion lattice and the switch macros kernels use to
// instantiate one loop per dtype.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace nd {

enum class DType : uint8_t { Bool, UInt8, Int8, Int16, Int32, Int64, Float16, BFloat16, Float32, Float64 };
constexpr int kNumDTypes = 10;

// IEEE binary16, stored as bits; arithmetic happens in float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  Half(float f) : bits(from_float(f)) {}
  operator float() const { return to_float(bits); }
  static uint16_t from_float(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) return sign | (mag > 0x7f800000u ? 0x7e00u : 0x7c00u);  // nan / inf
    if (mag >= 0x477ff000u) return sign | 0x7c00u;                                    // overflow
    if (mag < 0x38800000u) {  // subnormal or zero in half: round via float addition trick
      float af;
      std::memcpy(&af, &mag, 4);
      af += 0.5f;  // 2^-1 shifts half-subnormals into the low mantissa bits of a float
      uint32_t ai;
      std::memcpy(&ai, &af, 4);
      return sign | (uint16_t)(ai - 0x3f000000u);
    }
    uint32_t mant_odd = (mag >> 13) & 1u;
    mag += 0xc8000fffu + mant_odd;  // rebias exponent and round to nearest even
    return sign | (uint16_t)(mag >> 13);
  }
  static float to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, out;
    if (exp == 0) {
      if (mant == 0) {
        out = sign;
      } else {  // subnormal
        float f = (float)mant * (1.0f / 16777216.0f);
        uint32_t fb;
        std::memcpy(&fb, &f, 4);
        out = sign | fb;
      }
    } else if (exp == 31) {
      out = sign | 0x7f800000u | (mant << 13);
    } else {
      out = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &out, 4);
    return f;
  }
};

// bfloat16: the top half of a float32, rounded to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f) : bits(from_float(f)) {}
  operator float() const { return to_float(bits); }
  static uint16_t from_float(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
  }
  static float to_float(uint16_t b) {
    uint32_t x = (uint32_t)b << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
};

inline size_t itemsize(DType t) {
  static const uint8_t sizes[] = {1, 1, 1, 2, 4, 8, 2, 2, 4, 8};
  return sizes[(int)t];
}
inline const char* dtype_name(DType t) {
  static const char* names[] = {"bool",    "uint8",    "int8",    "int16",   "int32",
                                "int64",   "float16",  "bfloat16", "float32", "float64"};
  // bounds-checked: a corrupt value must not read past the table (and GCC's -Warray-bounds
  // cannot prove the enum's range after inlining)
  const unsigned i = static_cast<unsigned>(t);
  return i < sizeof(names) / sizeof(names[0]) ? names[i] : "invalid dtype";
}
inline bool is_floating(DType t) { return t >= DType::Float16; }
inline bool is_integral(DType t, bool include_bool) {
  return (t > DType::Bool && t <= DType::Int64) || (include_bool && t == DType::Bool);
}
inline bool is_signed(DType t) { return t != DType::Bool && t != DType::UInt8; }
// bool < integer < floating: the categories of torch's promotion rules.
inline int category(DType t) { return t == DType::Bool ? 0 : (is_floating(t) ? 2 : 1); }

DType promote_types(DType a, DType b);
// Whether an op that computes in `from` may write its result into `to` (torch's can_cast:
// no downgrade of category, e.g. float -> int or int -> bool).
inline bool can_cast(DType from, DType to) { return category(from) <= category(to); }

template <typename T> struct dtype_of;
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::Int8; };
template <> struct dtype_of<int16_t> { static constexpr DType value = DType::Int16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::Float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };

// The type arithmetic is done in: 16-bit floats compute in float.
template <typename T> struct compute_type { using type = T; };
template <> struct compute_type<Half> { using type = float; };
template <> struct compute_type<BFloat16> { using type = float; };

#define ND_CASE(enum_, T, ...) \
  case ::nd::DType::enum_: {   \
    using scalar_t = T;        \
    __VA_ARGS__();             \
    break;                     \
  }

#define ND_DISPATCH_ALL(dtype, opname, ...)                                                  \
  switch (dtype) {                                                                           \
    ND_CASE(Bool, bool, __VA_ARGS__)                                                         \
    ND_CASE(UInt8, uint8_t, __VA_ARGS__)                                                     \
    ND_CASE(Int8, int8_t, __VA_ARGS__)                                                       \
    ND_CASE(Int16, int16_t, __VA_ARGS__)                                                     \
    ND_CASE(Int32, int32_t, __VA_ARGS__)                                                     \
    ND_CASE(Int64, int64_t, __VA_ARGS__)                                                     \
    ND_CASE(Float16, ::nd::Half, __VA_ARGS__)                                                \
    ND_CASE(BFloat16, ::nd::BFloat16, __VA_ARGS__)                                           \
    ND_CASE(Float32, float, __VA_ARGS__)                                                     \
    ND_CASE(Float64, double, __VA_ARGS__)                                                    \
  }

#define ND_DISPATCH_FLOAT(dtype, opname, ...)                                                \
  switch (dtype) {                                                                           \
    ND_CASE(Float16, ::nd::Half, __VA_ARGS__)                                                \
    ND_CASE(BFloat16, ::nd::BFloat16, __VA_ARGS__)                                           \
    ND_CASE(Float32, float, __VA_ARGS__)                                                     \
    ND_CASE(Float64, double, __VA_ARGS__)                                                    \
    default:                                                                                 \
      throw ::nd::TypeError(std::string("[") + opname + "] expected a floating dtype, got " + \
                            ::nd::dtype_name(dtype));                                        \
  }

#define ND_DISPATCH_INT(dtype, opname, ...)                                                       \
  switch (dtype) {                                                                                \
    ND_CASE(Bool, bool, __VA_ARGS__)                                                              \
    ND_CASE(UInt8, uint8_t, __VA_ARGS__)                                                          \
    ND_CASE(Int8, int8_t, __VA_ARGS__)                                                            \
    ND_CASE(Int16, int16_t, __VA_ARGS__)                                                          \
    ND_CASE(Int32, int32_t, __VA_ARGS__)                                                          \
    ND_CASE(Int64, int64_t, __VA_ARGS__)                                                          \
    default:                                                                                      \
      throw ::nd::TypeError(std::string("[") + opname + "] expected an integer or bool dtype, got " + \
                            ::nd::dtype_name(dtype));                                             \
  }

// Errors map onto Python's exception types in the bindings.
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct IndexError : std::runtime_error { using std::runtime_error::runtime_error; };
struct NotImplementedError : std::runtime_error { using std::runtime_error::runtime_error; };

}  // namespace nd
