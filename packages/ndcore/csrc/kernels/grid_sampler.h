// Shared by grid_sampler.cpp (4-D entry points, bicubic) and grid_sampler_3d.cpp (the blocked
// bilinear/nearest engine over 2 or 3 spatial dims, and the 5-D entry points): torch's coordinate
// math, argument checks and the engine's entry points.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "loops.h"

namespace nd {
namespace grid {

enum Mode { kBilinear = 0, kNearest = 1, kBicubic = 2 };
enum Pad { kZeros = 0, kBorder = 1, kReflection = 2 };

// One call's geometry; spatial arrays are in grid order (x, y[, z]) = (W, H[, D]).
struct Args {
  int k;                               // spatial dims: 2 or 3
  int64_t N, C;
  int64_t size[3], out[3];             // input and output spatial sizes, x first
  int64_t in_plane, out_plane;         // elements of one (n, c) input / output slice
  int mode, pad;
  bool align;
};

// Checks ranks, grid's last dim, batch sizes, dtypes, empty spatial dims and the mode numbers,
// each error naming `op`.
Args check_args(const char* op, int k, const Tensor& input, const Tensor& grid, const std::vector<Value>& attrs);

// The float32/float64 compute dtype of a floating input (float16/bfloat16 compute in float32).
DType real_dtype(const char* op, DType dt);
Tensor contig_as(const Tensor& t, DType dt);
Tensor zeros_of(const Shape& s, DType dt);
// The backward's outputs (grad_input, grad_grid): computed in the compute dtype, returned in the
// input's dtype dt; under grad mode an unrequested gradient is zeros (keep_all), else undefined.
void set_backward_outputs(Call& c, Tensor gi, Tensor gg, DType dt, bool keep_all, const Shape& input_sizes,
                          const Shape& grid_sizes);

// Bilinear/nearest over contiguous input (N, C, *spatial), grid (N, *out, k) and output
// (N, C, *out) in the compute dtype T.
template <typename T>
void linear_forward(const T* x, const T* grid, T* y, const Args& a);
// grad_input (gi, zero-filled, or null) and grad_grid (gg, or null) of linear_forward.
template <typename T>
void linear_backward(const T* go, const T* x, const T* grid, T* gi, T* gg, const Args& a);

template <typename T>
inline T unnormalize(T coord, int64_t size, bool align, T* grad) {
  if (align) {
    *grad = T(size - 1) / 2;
    return ((coord + 1) / 2) * (size - 1);
  }
  *grad = T(size) / 2;
  return ((coord + 1) * size - 1) / 2;
}

// Clip to [0, size - 1] with its derivative; NaN passes through with derivative 1 (torch's
// clip_coordinates_set_grad, which the backward kernels use).
template <typename T>
inline T clip_coord(T in, int64_t size, T* grad) {
  if (in <= 0) {
    *grad = 0;
    return 0;
  }
  T mx = T(size - 1);
  if (in >= mx) {
    *grad = 0;
    return mx;
  }
  *grad = 1;
  return in;
}

// min(size - 1, max(in, 0)) evaluated as torch's forward does, which sends NaN to size - 1.
template <typename T>
inline T clip_coord_fwd(T in, int64_t size) {
  T mx = T(size - 1);
  T lo = (in < T(0)) ? T(0) : in;
  return (lo < mx) ? lo : mx;
}

// Parity of floor(q) converted to a 32-bit int as torch does; x86 turns NaN and out-of-range
// values into INT_MIN, which is even, so those reflect as an even number of flips.
template <typename T>
inline bool odd_flips(T q) {
  if (!(q >= T(-2147483648.0) && q < T(2147483648.0))) return false;
  return (static_cast<int64_t>(q) & 1) != 0;
}

template <typename T>
inline T reflect_coord(T in, int64_t twice_low, int64_t twice_high, T* grad) {
  if (twice_low == twice_high) {
    *grad = 0;
    return 0;
  }
  T mult = 1, mn = T(twice_low) / 2, span = T(twice_high - twice_low) / 2;
  in = in - mn;
  if (in < 0) {
    mult = -1;
    in = -in;
  }
  T extra = std::fmod(in, span);
  if (!odd_flips(std::floor(in / span))) {
    *grad = mult;
    return extra + mn;
  }
  *grad = -mult;
  return span - extra + mn;
}

// Source coordinate of a normalised grid value for the backward kernels, and d(source)/d(grid).
template <typename T>
inline T source_coord(T coord, int64_t size, int pad, bool align, T* grad) {
  T gu, gc = 1, gr = 1;
  T x = unnormalize(coord, size, align, &gu);
  if (pad == kBorder) {
    x = clip_coord(x, size, &gc);
  } else if (pad == kReflection) {
    x = align ? reflect_coord(x, 0, 2 * (size - 1), &gr) : reflect_coord(x, -1, 2 * size - 1, &gr);
    x = clip_coord(x, size, &gc);
  }
  *grad = gu * gc * gr;
  return x;
}

// The forward kernels' version: the same value except that NaN (and +-inf under reflection, which
// folds to NaN) clips to size - 1 instead of staying NaN.
template <typename T>
inline T source_coord_fwd(T coord, int64_t size, int pad, bool align) {
  T g;
  T x = unnormalize(coord, size, align, &g);
  if (pad == kBorder) {
    x = clip_coord_fwd(x, size);
  } else if (pad == kReflection) {
    x = align ? reflect_coord(x, 0, 2 * (size - 1), &g) : reflect_coord(x, -1, 2 * size - 1, &g);
    x = clip_coord_fwd(x, size);
  }
  return x;
}

// torch's 4-D kernel (vectorised over positions) has rules of its own, which 4-D input follows:
// unnormalize as (c + 1) * scale [- 0.5]; clamp with NaN -> 0 in the forward; reflect with a
// truncated quotient (no int conversion) and a NaN-propagating min; the backward clip lets NaN
// through with derivative 1 (torch then indexes memory with it: undefined, see
// source2_bwd); unclipped NaN/inf coordinates give NaN weights, which poison the output
// (Note [grid sampler non-finite coordinates]).
template <typename T>
inline T unnormalize2(T coord, int64_t size, bool align, T* grad) {
  T scale = align ? T(size - 1) / 2 : T(size) / 2;
  *grad = scale;
  return align ? (coord + 1) * scale : (coord + 1) * scale - T(0.5);
}

template <typename T>
inline T nan_min(T a, T b) {
  return (a != a || b != b) ? a + b : (a < b ? a : b);
}

// (reflected coordinate, or NaN) and d(reflected)/d(in) of torch's 4-D reflection.
template <typename T>
inline T reflect2(T in, int64_t size, bool align, T* grad) {
  if (align && size <= 1) {
    *grad = 0;
    return 0;
  }
  T low = align ? T(0) : T(-0.5), twice_span = align ? T(size - 1) * 2 : T(size) * 2;
  T v = in - low;
  bool neg = v < 0;
  T a = std::fabs(v);
  T extra = a - std::trunc(a / twice_span) * twice_span;
  T reflected = twice_span - extra;
  bool flip = extra > reflected;
  *grad = (flip != neg) ? T(-1) : T(1);
  return nan_min(extra, reflected) + low;
}

template <typename T>
inline T source2_fwd(T coord, int64_t size, int pad, bool align) {
  T g;
  T x = unnormalize2(coord, size, align, &g);
  if (pad == kReflection) x = reflect2(x, size, align, &g);
  if (pad != kZeros) {
    T mx = T(size - 1);
    T lo = x > T(0) ? x : T(0);  // NaN -> 0
    x = lo < mx ? lo : mx;
  }
  return x;
}

// Backward coordinate and d(source)/d(grid). Where torch's clip passes NaN on (NaN or inf grid
// values under border/reflection) its kernel indexes memory with the integer conversion of NaN
// (undefined; it can crash), so here such a point is the forward's clamped coordinate 0 with a
// zero derivative.
template <typename T>
inline T source2_bwd(T coord, int64_t size, int pad, bool align, T* grad) {
  T scale, gr = 1;
  T x = unnormalize2(coord, size, align, &scale);
  if (pad == kZeros) {
    *grad = scale;
    return x;
  }
  if (pad == kReflection) x = reflect2(x, size, align, &gr);
  T mx = T(size - 1);
  if (x != x) {
    *grad = 0;
    return 0;
  }
  if (x <= 0 || x >= mx) {
    *grad = 0;
    return x <= 0 ? T(0) : mx;
  }
  *grad = scale * gr;
  return x;
}

}  // namespace grid
}  // namespace nd
