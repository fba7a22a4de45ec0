// Pooling over 1-3 spatial dims: max (with per-plane flat indices, so max_unpool inverts it),
// average, adaptive average and adaptive max, max_unpool; forward and backward.
//
// Inputs are (N, C, *spatial) or unbatched (C, *spatial); every leading (N, C) pair is one
// plane and planes are independent, so kernels run parallel over planes. Spatial dims are padded
// to three (leading dims of size 1), as in conv.cpp. Window and output-size rules follow torch:
// ceil_mode lets the last window start inside the input or the left padding only; padding is at
// most half the (effective) kernel; max treats NaN as the largest value. float16/bfloat16
// compute in float32. The row loops of max and average pooling are in pool_simd.h (Note
// [Vectorised max pooling]); max pooling without indices is the op autograd-free callers use.
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "loops.h"
#include "pool_simd.h"

namespace nd {
namespace {

struct PoolGeo {
  int dims = 0;
  int64_t k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, d[3] = {1, 1, 1};
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t I() const { return in[0] * in[1] * in[2]; }
  int64_t O() const { return out[0] * out[1] * out[2]; }
};

std::string tuple_str(const int64_t* v, int n) {
  std::string s = "(";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (n == 1 ? ",)" : ")");
}

std::string err(const char* op) { return std::string("[") + op + "] "; }

// Planes and spatial sizes of a (N, C, *sp) or (C, *sp) input.
int64_t split_planes(const char* op, const Tensor& x, int dims, PoolGeo& g, bool allow_empty_batch = true) {
  int64_t nd_ = x.dim();
  if (nd_ != dims + 1 && nd_ != dims + 2)
    throw ValueError(err(op) + "expected " + std::to_string(dims + 1) + "D (unbatched) or " + std::to_string(dims + 2) +
                     "D (batched) input, got shape " + shape_str(x.sizes()));
  for (int64_t i = (nd_ == dims + 2 ? 1 : 0); i < nd_; ++i)
    if (x.sizes()[i] == 0)
      throw ValueError(err(op) + "expected input with non-zero sizes except for the batch dim, got shape " + shape_str(x.sizes()));
  g.dims = dims;
  for (int i = 0; i < dims; ++i) g.in[3 - dims + i] = x.sizes()[nd_ - dims + i];
  return x.numel() / g.I();
}

Shape out_shape_of(const Tensor& x, const PoolGeo& g) {
  Shape s(x.sizes().begin(), x.sizes().end() - g.dims);
  for (int i = 3 - g.dims; i < 3; ++i) s.push_back(g.out[i]);
  return s;
}

// One value per dim from a list of 1 or `dims` values; empty means `dflt` (or `fallback`).
void per_dim(const char* op, const char* what, const Shape& v, int dims, int64_t dflt, const int64_t* fallback, int64_t* dst) {
  int off = 3 - dims;
  if (v.empty()) {
    for (int i = 0; i < dims; ++i) dst[off + i] = fallback ? fallback[off + i] : dflt;
    return;
  }
  if ((int)v.size() != 1 && (int)v.size() != dims)
    throw ValueError(err(op) + what + " must either be a single int, or a tuple of " + std::to_string(dims) + " ints, got " +
                     shape_str(v));
  for (int i = 0; i < dims; ++i) dst[off + i] = v.size() == 1 ? v[0] : v[i];
}

int64_t pooled_size(int64_t in, int64_t k, int64_t pad, int64_t s, int64_t dil, bool ceil) {
  int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil && (out - 1) * s >= in + pad) --out;  // the last window must start inside the input
  return out;
}

// Window parameters shared by max and avg pooling; `avg` switches torch's padding rule.
void pool_params(const char* op, const std::vector<Value>& a, bool avg, bool ceil, PoolGeo& g) {
  int dims = g.dims, off = 3 - dims;
  per_dim(op, "kernel_size", a[0].list, dims, 1, nullptr, g.k);
  if (a[0].list.empty()) throw ValueError(err(op) + "kernel_size must either be a single int, or a tuple of " + std::to_string(dims) + " ints");
  per_dim(op, "stride", a[1].list, dims, 1, g.k, g.s);
  per_dim(op, "padding", a[2].list, dims, 0, nullptr, g.p);
  if (!avg) per_dim(op, "dilation", a[3].list, dims, 1, nullptr, g.d);
  for (int i = off; i < 3; ++i) {
    if (g.k[i] <= 0) throw ValueError(err(op) + "kernel size should be greater than zero, but got kernel_size=" + tuple_str(g.k + off, dims));
    if (g.s[i] <= 0) throw ValueError(err(op) + "stride should be greater than zero, but got stride=" + tuple_str(g.s + off, dims));
    if (g.d[i] <= 0) throw ValueError(err(op) + "dilation should be greater than zero, but got dilation=" + tuple_str(g.d + off, dims));
    if (g.p[i] < 0) throw ValueError(err(op) + "padding should be non-negative, but got padding=" + tuple_str(g.p + off, dims));
    int64_t eff = avg ? g.k[i] : (g.k[i] - 1) * g.d[i] + 1;
    if (g.p[i] > eff / 2)
      throw ValueError(err(op) + "pad should be at most half of " + (avg ? "kernel size" : "effective kernel size") + ", but got pad=" +
                       tuple_str(g.p + off, dims) + ", kernel_size=" + tuple_str(g.k + off, dims) +
                       (avg ? std::string() : ", dilation=" + tuple_str(g.d + off, dims)));
  }
  for (int i = off; i < 3; ++i) {
    g.out[i] = pooled_size(g.in[i], g.k[i], g.p[i], g.s[i], g.d[i], ceil);
    if (g.out[i] <= 0)
      throw ValueError(err(op) + "given input size " + tuple_str(g.in + off, dims) + ", the calculated output size " +
                       tuple_str(g.out + off, dims) + " is too small");
  }
}

template <typename F>
void with_real(DType dt, F&& fn) {
  if (dt == DType::Float64) fn(double{});
  else fn(float{});
}

template <typename F>
void with_numeric(const char* op, DType dt, F&& fn) {
  switch (dt) {
    case DType::UInt8: fn(uint8_t{}); break;
    case DType::Int8: fn(int8_t{}); break;
    case DType::Int16: fn(int16_t{}); break;
    case DType::Int32: fn(int32_t{}); break;
    case DType::Int64: fn(int64_t{}); break;
    case DType::Float32: fn(float{}); break;
    case DType::Float64: fn(double{}); break;
    default: throw TypeError(err(op) + "not implemented for " + dtype_name(dt));
  }
}

// dtype the kernel computes in: float16/bfloat16 widen to float32.
DType compute_dtype(const char* op, DType dt, bool float_only) {
  if (dt == DType::Bool) throw TypeError(err(op) + "not implemented for bool tensors");
  if (float_only && !is_floating(dt)) throw TypeError(err(op) + "expected a floating point input, got " + dtype_name(dt));
  return dt == DType::Float16 || dt == DType::BFloat16 ? DType::Float32 : dt;
}

Tensor contig_as(const Tensor& t, DType dt) {
  Tensor x = t.dtype() == dt ? t : t.to(dt);
  return x.is_contiguous() ? x : x.contiguous();
}

Tensor zeros(const Shape& s, DType dt) {
  Tensor t = empty_tensor(s, dt);
  std::memset(t.data_ptr(), 0, (size_t)t.numel() * t.itemsize());
  return t;
}

template <typename T>
bool greater_or_nan(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) return v > best || std::isnan(v);
  else return v > best;
}

template <typename T>
T lowest() {
  if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::lowest();
}

// Sum of n contiguous values with eight independent accumulators: a single running sum is one
// long dependency chain the compiler may not reorder (strict FP), and global pooling is all sum.
template <typename T>
T sum_contig(const T* p, int64_t n) {
  T a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) a[k] += p[i + k];
  for (; i < n; ++i) a[0] += p[i];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

int64_t plane_grain(int64_t per_plane) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, per_plane)); }

// Interior output columns along W: those whose window [ow * s - p, + extent) lies in [0, W).
void interior_columns(int64_t W, int64_t OW, int64_t k, int64_t s, int64_t p, int64_t d, int64_t& lo, int64_t& hi) {
  lo = std::min(OW, (p + s - 1) / s);
  int64_t last = W - 1 + p - (k - 1) * d;  // start + p of the last window that fits
  hi = last < 0 ? lo : std::max(lo, std::min(OW, last / s + 1));
}

// ---- max pooling --------------------------------------------------------------------------

// Runs the vectorised kernels of pool_simd.h (Note [Vectorised max pooling]); `idx` null
// computes values only.
template <typename T>
void max_pool_planes(const T* x, T* y, int64_t* idx, int64_t P, const PoolGeo& g) {
  poolk::Job<T> J;
  J.x = x;
  J.y = y;
  J.ind = idx;
  for (int i = 0; i < 3; ++i) {
    J.k[i] = g.k[i], J.s[i] = g.s[i], J.p[i] = g.p[i], J.d[i] = g.d[i], J.in[i] = g.in[i], J.out[i] = g.out[i];
  }
  int64_t W = g.in[2], OW = g.out[2], s = g.s[2];
  interior_columns(W, OW, g.k[2], s, g.p[2], g.d[2], J.lo, J.hi);
  J.nph = (W + s - 1) / s;
  int64_t work_per_row = std::max<int64_t>(1, OW * g.k[0] * g.k[1] * g.k[2]);
  if (poolk::tiles(J)) {
    int64_t bands = P * g.out[1];
    parallel_for(bands, plane_grain(work_per_row), [&](int64_t q0, int64_t q1) {
      poolk::run<poolk::PoolTiled<T>, T>(J, q0, q1);
    });
    return;
  }
  // winning offsets are kept relative to the window's first row: 32 bits unless planes are huge
  bool narrow = g.I() < (int64_t(1) << 31);
  int64_t rows = P * g.out[0] * g.out[1];
  parallel_for(rows, plane_grain(work_per_row), [&](int64_t r0, int64_t r1) {
    if (narrow) poolk::run<poolk::PoolRows<T, int32_t>, T>(J, r0, r1);
    else poolk::run<poolk::PoolRows<T, int64_t>, T>(J, r0, r1);
  });
}

void max_pool_fwd(Call& c, int dims, const char* op, bool with_indices) {
  const Tensor& self = c.inputs[0];
  PoolGeo g;
  int64_t P = split_planes(op, self, dims, g);
  pool_params(op, c.attrs, false, c.attrs[4].b, g);
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, false);
  Shape os = out_shape_of(self, g);
  Tensor x = contig_as(self, cdt), y = empty_tensor(os, cdt), ind;
  if (with_indices) ind = empty_tensor(os, DType::Int64);
  with_numeric(op, cdt, [&](auto tag) {
    using T = decltype(tag);
    max_pool_planes<T>(x.data<T>(), y.data<T>(), with_indices ? ind.data<int64_t>() : nullptr, P, g);
  });
  if (with_indices) set_outputs(c, {cdt != dt ? y.to(dt) : y, ind});
  else set_outputs(c, {cdt != dt ? y.to(dt) : y});
}

// grad_input[plane, idx] += grad_output[plane, o]: the backward of every max pooling.
void max_scatter_backward(Call& c, const char* op, int dims, const Tensor& gout, const Tensor& self, const Tensor& indices) {
  PoolGeo g;
  int64_t P = split_planes(op, self, dims, g);
  if (gout.sizes() != indices.sizes() || gout.dim() != self.dim())
    throw ValueError(err(op) + "expected grad_output and indices of the same shape, with as many dims as the input " + shape_str(self.sizes()) +
                     ", got " + shape_str(gout.sizes()) + " and " + shape_str(indices.sizes()));
  if (indices.dtype() != DType::Int64) throw TypeError(err(op) + "expected int64 indices, got " + dtype_name(indices.dtype()));
  DType dt = gout.dtype(), cdt = compute_dtype(op, dt, true);
  int64_t I = g.I(), O = P ? gout.numel() / P : 0;
  Tensor go = contig_as(gout, cdt), ix = contig_as(indices, DType::Int64), gi = empty_tensor(self.sizes(), cdt);
  std::atomic<bool> bad{false};
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = go.data<T>();
    const int64_t* ip = ix.data<int64_t>();
    T* out = gi.data<T>();
    // each plane is zeroed right before its scatter, while it is in cache: one pass over the
    // gradient instead of a memset of the whole tensor followed by a second, scattered pass
    parallel_for(P, plane_grain(I + O), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        T* op = out + pl * I;
        const T* g = gp + pl * O;
        const int64_t* ii = ip + pl * O;
        std::memset(op, 0, sizeof(T) * (size_t)I);
        for (int64_t o = 0; o < O; ++o) {
          int64_t i = ii[o];
          if (i < 0 || i >= I) {
            bad = true;
            continue;
          }
          op[i] += g[o];
        }
      }
    });
  });
  if (bad) throw IndexError(err(op) + "found an invalid max index (expected indices in [0, " + std::to_string(I) + "))");
  c.outputs = {cdt != dt ? gi.to(dt) : gi};
}

// ---- average pooling ----------------------------------------------------------------------

struct AvgArgs {
  PoolGeo g;
  bool count_include_pad;
  int64_t divisor_override;
};

// attrs: kernel_size, stride, padding, ceil_mode, count_include_pad[, divisor_override]
AvgArgs avg_args(const char* op, const Tensor& self, int dims, const std::vector<Value>& a, int64_t& P) {
  AvgArgs r;
  P = split_planes(op, self, dims, r.g);
  std::vector<Value> pa{a[0], a[1], a[2], Value::from_list({})};
  pool_params(op, pa, true, a[3].b, r.g);
  r.count_include_pad = a[4].b;
  r.divisor_override = a.size() > 5 && !a[5].is_none() ? a[5].i : 0;
  if (a.size() > 5 && !a[5].is_none() && a[5].i == 0) throw ValueError(err(op) + "divisor must be not zero");
  return r;
}

template <typename T, typename F>
void for_each_out(const PoolGeo& g, F&& fn) {
  int64_t o[3];
  int64_t n = 0;
  for (o[0] = 0; o[0] < g.out[0]; ++o[0])
    for (o[1] = 0; o[1] < g.out[1]; ++o[1])
      for (o[2] = 0; o[2] < g.out[2]; ++o[2]) fn(o, n++);
}

template <typename T>
poolk::AvgJob<T> avg_job(const AvgArgs& r, const T* x, T* y) {
  const PoolGeo& g = r.g;
  poolk::AvgJob<T> J;
  J.x = x;
  J.y = y;
  for (int i = 0; i < 3; ++i) J.k[i] = g.k[i], J.s[i] = g.s[i], J.p[i] = g.p[i], J.in[i] = g.in[i], J.out[i] = g.out[i];
  interior_columns(g.in[2], g.out[2], g.k[2], g.s[2], g.p[2], 1, J.lo, J.hi);
  J.nph = (g.in[2] + g.s[2] - 1) / g.s[2];
  J.count_include_pad = r.count_include_pad;
  J.divisor_override = r.divisor_override;
  return J;
}

void avg_pool_fwd(Call& c, int dims, const char* op) {
  const Tensor& self = c.inputs[0];
  int64_t P;
  AvgArgs r = avg_args(op, self, dims, c.attrs, P);
  const PoolGeo& g = r.g;
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, true);
  Tensor x = contig_as(self, cdt), y = empty_tensor(out_shape_of(self, g), cdt);
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    poolk::AvgJob<T> J = avg_job<T>(r, x.data<T>(), y.data<T>());
    int64_t rows = P * g.out[0] * g.out[1];
    parallel_for(rows, plane_grain(std::max<int64_t>(1, g.in[2] * g.k[0] * g.k[1])), [&](int64_t r0, int64_t r1) {
      simd_run<poolk::AvgRows<T>>(J, r0, r1);
    });
  });
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void avg_pool_bwd(Call& c, int dims, const char* op) {
  const Tensor &gout = c.inputs[0], &self = c.inputs[1];
  int64_t P;
  AvgArgs r = avg_args(op, self, dims, c.attrs, P);
  const PoolGeo& g = r.g;
  Shape os = out_shape_of(self, g);
  if (gout.sizes() != os)
    throw ValueError(err(op) + "expected grad_output of shape " + shape_str(os) + ", got " + shape_str(gout.sizes()));
  DType dt = gout.dtype(), cdt = compute_dtype(op, dt, true);
  Tensor go = contig_as(gout, cdt), gi = empty_tensor(self.sizes(), cdt);
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    poolk::AvgJob<T> J = avg_job<T>(r, go.data<T>(), gi.data<T>());
    parallel_for(P, plane_grain(g.I() * std::max<int64_t>(1, g.k[0] * g.k[1])), [&](int64_t p0, int64_t p1) {
      simd_run<poolk::AvgPlanesBackward<T>>(J, p0, p1);
    });
  });
  c.outputs = {cdt != dt ? gi.to(dt) : gi};
}

// ---- adaptive pooling ---------------------------------------------------------------------

int64_t ad_start(int64_t o, int64_t out, int64_t in) { return (o * in) / out; }
int64_t ad_end(int64_t o, int64_t out, int64_t in) { return ((o + 1) * in + out - 1) / out; }

int64_t adaptive_geo(const char* op, const Tensor& self, int dims, const Shape& osz, PoolGeo& g) {
  int64_t P = split_planes(op, self, dims, g);
  if ((int)osz.size() != dims && osz.size() != 1)
    throw ValueError(err(op) + "output_size must have " + std::to_string(dims) + " elements, got " + shape_str(osz));
  for (int i = 0; i < dims; ++i) {
    int64_t v = osz.size() == 1 ? osz[0] : osz[i];
    if (v < 0) throw ValueError(err(op) + "elements of output_size must be greater than or equal to 0, got " + shape_str(osz));
    g.out[3 - dims + i] = v;
  }
  return P;
}

template <typename T, typename F>
void adaptive_windows(const PoolGeo& g, F&& fn) {
  for_each_out<T>(g, [&](const int64_t* o, int64_t n) {
    int64_t lo[3], hi[3];
    for (int i = 0; i < 3; ++i) {
      lo[i] = ad_start(o[i], g.out[i], g.in[i]);
      hi[i] = ad_end(o[i], g.out[i], g.in[i]);
    }
    fn(lo, hi, n);
  });
}

void adaptive_avg_fwd(Call& c, int dims, const char* op) {
  const Tensor& self = c.inputs[0];
  PoolGeo g;
  int64_t P = adaptive_geo(op, self, dims, c.attrs[0].list, g);
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, true);
  Tensor x = contig_as(self, cdt), y = empty_tensor(out_shape_of(self, g), cdt);
  int64_t I = g.I(), O = g.O();
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    if (O == 1) {  // global pooling (the head of most CNNs): one contiguous sum per plane
      parallel_for(P, plane_grain(I), [&](int64_t p0, int64_t p1) {
        for (int64_t pl = p0; pl < p1; ++pl) yp[pl] = sum_contig(xp + pl * I, I) / T(I);
      });
      return;
    }
    parallel_for(P, plane_grain(I), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        adaptive_windows<T>(g, [&](const int64_t* lo, const int64_t* hi, int64_t n) {
          T sum = 0;
          for (int64_t id = lo[0]; id < hi[0]; ++id)
            for (int64_t ih = lo[1]; ih < hi[1]; ++ih) {
              const T* row = xp + pl * I + (id * g.in[1] + ih) * g.in[2];
              sum += sum_contig(row + lo[2], hi[2] - lo[2]);
            }
          yp[pl * O + n] = sum / T((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
        });
    });
  });
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void adaptive_avg_bwd(Call& c, int dims, const char* op) {
  const Tensor &gout = c.inputs[0], &self = c.inputs[1];
  PoolGeo g;
  Shape osz(gout.sizes().end() - std::min<int64_t>(dims, gout.dim()), gout.sizes().end());
  int64_t P = adaptive_geo(op, self, dims, osz, g);
  if (gout.sizes() != out_shape_of(self, g))
    throw ValueError(err(op) + "grad_output " + shape_str(gout.sizes()) + " does not match input " + shape_str(self.sizes()));
  DType dt = gout.dtype(), cdt = compute_dtype(op, dt, true);
  Tensor go = contig_as(gout, cdt), gi = zeros(self.sizes(), cdt);
  int64_t I = g.I(), O = g.O();
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = go.data<T>();
    T* out = gi.data<T>();
    parallel_for(P, plane_grain(I), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        adaptive_windows<T>(g, [&](const int64_t* lo, const int64_t* hi, int64_t n) {
          T v = gp[pl * O + n] / T((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
          for (int64_t id = lo[0]; id < hi[0]; ++id)
            for (int64_t ih = lo[1]; ih < hi[1]; ++ih) {
              T* row = out + pl * I + (id * g.in[1] + ih) * g.in[2];
              for (int64_t iw = lo[2]; iw < hi[2]; ++iw) row[iw] += v;
            }
        });
    });
  });
  c.outputs = {cdt != dt ? gi.to(dt) : gi};
}

void adaptive_max_fwd(Call& c, int dims, const char* op) {
  const Tensor& self = c.inputs[0];
  PoolGeo g;
  int64_t P = adaptive_geo(op, self, dims, c.attrs[0].list, g);
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, true);
  Shape os = out_shape_of(self, g);
  Tensor x = contig_as(self, cdt), y = empty_tensor(os, cdt), ind = empty_tensor(os, DType::Int64);
  int64_t I = g.I(), O = g.O();
  // Output sizes that divide the input give the windows of max pooling with kernel = stride =
  // in / out (same order, tie and NaN rule): its vectorised kernel does them.
  bool even = O > 0;
  for (int i = 0; i < 3; ++i) even = even && g.in[i] % g.out[i] == 0;
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    int64_t* ip = ind.data<int64_t>();
    if (even) {
      PoolGeo m = g;
      for (int i = 0; i < 3; ++i) m.k[i] = m.s[i] = g.in[i] / g.out[i];
      max_pool_planes<T>(xp, yp, ip, P, m);
      return;
    }
    parallel_for(P, plane_grain(I), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        adaptive_windows<T>(g, [&](const int64_t* lo, const int64_t* hi, int64_t n) {
          T best = lowest<T>();
          int64_t bi = (lo[0] * g.in[1] + lo[1]) * g.in[2] + lo[2];
          for (int64_t id = lo[0]; id < hi[0]; ++id)
            for (int64_t ih = lo[1]; ih < hi[1]; ++ih) {
              int64_t base = (id * g.in[1] + ih) * g.in[2];
              for (int64_t iw = lo[2]; iw < hi[2]; ++iw) {
                T v = xp[pl * I + base + iw];
                if (greater_or_nan(v, best)) {
                  best = v;
                  bi = base + iw;
                }
              }
            }
          yp[pl * O + n] = best;
          ip[pl * O + n] = bi;
        });
    });
  });
  set_outputs(c, {cdt != dt ? y.to(dt) : y, ind});
}

// ---- max_unpool ---------------------------------------------------------------------------

void max_unpool(Call& c, int dims, const char* op) {
  const Tensor &self = c.inputs[0], &indices = c.inputs[1];
  const Shape& osz = c.attrs[0].list;
  if ((int)osz.size() != dims)
    throw ValueError(err(op) + "output_size must have " + std::to_string(dims) + " elements, got " + shape_str(osz));
  if (dims == 3) {
    const Shape &st = c.attrs[1].list, &pd = c.attrs[2].list;
    for (int64_t s : st)
      if (s <= 0) throw ValueError(err(op) + "strides should be greater than zero, got stride=" + shape_str(st));
    for (int64_t p : pd)
      if (p < 0) throw ValueError(err(op) + "padding should be non-negative, got padding=" + shape_str(pd));
  }
  if (indices.dtype() != DType::Int64) throw TypeError(err(op) + "expected indices to have dtype int64, got " + dtype_name(indices.dtype()));
  if (self.sizes() != indices.sizes())
    throw ValueError(err(op) + "expected shape of indices to be the same as that of the input, got " + shape_str(indices.sizes()) +
                     " and " + shape_str(self.sizes()));
  PoolGeo g;
  int64_t P = split_planes(op, self, dims, g);
  int64_t In = g.I();
  Shape os(self.sizes().begin(), self.sizes().end() - dims);
  int64_t O = 1;
  for (int64_t v : osz) {
    os.push_back(v);
    O *= v;
  }
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, false);
  Tensor x = contig_as(self, cdt), ix = contig_as(indices, DType::Int64), y = zeros(os, cdt);
  std::atomic<int64_t> bad{-1};
  with_numeric(op, cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const int64_t* ip = ix.data<int64_t>();
    T* yp = y.data<T>();
    parallel_for(P, plane_grain(In), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        for (int64_t i = 0; i < In; ++i) {
          int64_t t = ip[pl * In + i];
          if (t < 0 || t >= O) {
            bad = t;
            continue;
          }
          yp[pl * O + t] = xp[pl * In + i];
        }
    });
  });
  if (bad != -1 || (O == 0 && In > 0))
    throw IndexError(err(op) + "found an invalid max index " + std::to_string(bad.load()) + " (output plane of size " + std::to_string(O) + ")");
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

}  // namespace

void k_max_pool1d_with_indices(Call& c) { max_pool_fwd(c, 1, "max_pool1d", true); }
void k_max_pool2d_with_indices(Call& c) { max_pool_fwd(c, 2, "max_pool2d", true); }
void k_max_pool3d_with_indices(Call& c) { max_pool_fwd(c, 3, "max_pool3d", true); }
void k_max_pool1d_values(Call& c) { max_pool_fwd(c, 1, "max_pool1d", false); }
void k_max_pool2d_values(Call& c) { max_pool_fwd(c, 2, "max_pool2d", false); }
void k_max_pool3d_values(Call& c) { max_pool_fwd(c, 3, "max_pool3d", false); }
void k_max_pool2d_with_indices_backward(Call& c) {
  max_scatter_backward(c, "max_pool2d_with_indices_backward", 2, c.inputs[0], c.inputs[1], c.inputs[2]);
}
void k_max_pool3d_with_indices_backward(Call& c) {
  max_scatter_backward(c, "max_pool3d_with_indices_backward", 3, c.inputs[0], c.inputs[1], c.inputs[2]);
}
void k_avg_pool1d(Call& c) { avg_pool_fwd(c, 1, "avg_pool1d"); }
void k_avg_pool2d(Call& c) { avg_pool_fwd(c, 2, "avg_pool2d"); }
void k_avg_pool3d(Call& c) { avg_pool_fwd(c, 3, "avg_pool3d"); }
void k_avg_pool2d_backward(Call& c) { avg_pool_bwd(c, 2, "avg_pool2d_backward"); }
void k_avg_pool3d_backward(Call& c) { avg_pool_bwd(c, 3, "avg_pool3d_backward"); }
void k_adaptive_avg_pool2d(Call& c) { adaptive_avg_fwd(c, 2, "adaptive_avg_pool2d"); }
void k_adaptive_avg_pool3d(Call& c) { adaptive_avg_fwd(c, 3, "adaptive_avg_pool3d"); }
void k_adaptive_avg_pool2d_backward(Call& c) { adaptive_avg_bwd(c, 2, "adaptive_avg_pool2d_backward"); }
void k_adaptive_avg_pool3d_backward(Call& c) { adaptive_avg_bwd(c, 3, "adaptive_avg_pool3d_backward"); }
void k_adaptive_max_pool2d(Call& c) { adaptive_max_fwd(c, 2, "adaptive_max_pool2d"); }
void k_adaptive_max_pool3d(Call& c) { adaptive_max_fwd(c, 3, "adaptive_max_pool3d"); }
void k_adaptive_max_pool2d_backward(Call& c) {
  max_scatter_backward(c, "adaptive_max_pool2d_backward", 2, c.inputs[0], c.inputs[1], c.inputs[2]);
}
void k_adaptive_max_pool3d_backward(Call& c) {
  max_scatter_backward(c, "adaptive_max_pool3d_backward", 3, c.inputs[0], c.inputs[1], c.inputs[2]);
}
void k_max_unpool2d(Call& c) { max_unpool(c, 2, "max_unpool2d"); }
void k_max_unpool3d(Call& c) { max_unpool(c, 3, "max_unpool3d"); }

}  // namespace nd
