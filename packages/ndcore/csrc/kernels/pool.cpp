// Pooling over 1-3 spatial dims: max (with per-plane flat indices, so max_unpool inverts it),
// average, adaptive average and adaptive max, max_unpool; forward and backward.
//
// Inputs are (N, C, *spatial) or unbatched (C, *spatial); every leading (N, C) pair is one
// plane and planes are independent, so kernels run parallel over planes. Spatial dims are padded
// to three (leading dims of size 1), as in conv.cpp. Window and output-size rules follow torch:
// ceil_mode lets the last window start inside the input or the left padding only; padding is at
// most half the (effective) kernel; max treats NaN as the largest value. float16/bfloat16
// compute in float32.
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "loops.h"

namespace nd {
namespace {

// Backward rows without a derivative of their own are not recorded by autograd; when a caller
// builds a graph through them (create_graph=True) refuse loudly rather than drop the term.
// `n` is how many leading inputs the result depends on by value (the rest give only shapes).
void refuse_double_backward(const Call& c, size_t n) {
  if (!grad_enabled()) return;
  for (size_t i = 0; i < std::min(n, c.inputs.size()); ++i)
    if (c.inputs[i].defined() && c.inputs[i].requires_grad())
      throw NotImplementedError(std::string("[") + c.name() +
                                "] double backward is not supported yet (a graph was requested through this backward op)");
}

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

// ---- max pooling --------------------------------------------------------------------------

// The common 2x2 window, stride 2, no padding or dilation, 2-D: unrolled with no bounds logic
// (every window lies inside the input). Same tie and NaN rule as the general loop.
template <typename T>
bool max_pool_2x2(const T* x, T* y, int64_t* idx, int64_t P, const PoolGeo& g) {
  if (!(g.in[0] == 1 && g.k[0] == 1 && g.k[1] == 2 && g.k[2] == 2 && g.s[1] == 2 && g.s[2] == 2 && g.p[1] == 0 &&
        g.p[2] == 0 && g.d[1] == 1 && g.d[2] == 1 && g.out[1] * 2 <= g.in[1] && g.out[2] * 2 <= g.in[2]))
    return false;
  int64_t I = g.I(), O = g.O(), W = g.in[2], oh_n = g.out[1], ow_n = g.out[2];
  parallel_for(P, plane_grain(O * 4), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* xp = x + pl * I;
      T* yp = y + pl * O;
      int64_t* ip = idx + pl * O;
      for (int64_t oh = 0; oh < oh_n; ++oh) {
        const T* r0 = xp + 2 * oh * W;
        const T* r1 = r0 + W;
        int64_t base = 2 * oh * W;
        T* __restrict__ yo = yp + oh * ow_n;
        int64_t* __restrict__ io = ip + oh * ow_n;
        // selects instead of branches: on real data the comparisons are coin flips, and
        // mispredicted branches cost more than the whole window
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          int64_t w = 2 * ow;
          T a = r0[w], b = r0[w + 1], c = r1[w], d = r1[w + 1];
          T best = a;
          int64_t off = 0;
          bool t = b > best || b != b;
          best = t ? b : best;
          off = t ? 1 : off;
          t = c > best || c != c;
          best = t ? c : best;
          off = t ? W : off;
          t = d > best || d != d;
          best = t ? d : best;
          off = t ? W + 1 : off;
          yo[ow] = best;
          io[ow] = base + w + off;
        }
      }
    }
  });
  return true;
}

template <typename T>
void max_pool_planes(const T* x, T* y, int64_t* idx, int64_t P, const PoolGeo& g) {
  int64_t I = g.I(), O = g.O();
  if (max_pool_2x2(x, y, idx, P, g)) return;
  parallel_for(P, plane_grain(O * g.k[0] * g.k[1] * g.k[2]), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* xp = x + pl * I;
      T* yp = y + pl * O;
      int64_t* ip = idx + pl * O;
      for (int64_t od = 0; od < g.out[0]; ++od) {
        int64_t d0 = od * g.s[0] - g.p[0], d1 = std::min(d0 + (g.k[0] - 1) * g.d[0] + 1, g.in[0]);
        while (d0 < 0) d0 += g.d[0];
        for (int64_t oh = 0; oh < g.out[1]; ++oh) {
          int64_t h0 = oh * g.s[1] - g.p[1], h1 = std::min(h0 + (g.k[1] - 1) * g.d[1] + 1, g.in[1]);
          while (h0 < 0) h0 += g.d[1];
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            int64_t w0 = ow * g.s[2] - g.p[2], w1 = std::min(w0 + (g.k[2] - 1) * g.d[2] + 1, g.in[2]);
            while (w0 < 0) w0 += g.d[2];
            int64_t best_i = (d0 * g.in[1] + h0) * g.in[2] + w0;
            T best = lowest<T>();
            for (int64_t id = d0; id < d1; id += g.d[0])
              for (int64_t ih = h0; ih < h1; ih += g.d[1]) {
                int64_t base = (id * g.in[1] + ih) * g.in[2];
                for (int64_t iw = w0; iw < w1; iw += g.d[2]) {
                  T v = xp[base + iw];
                  if (greater_or_nan(v, best)) {
                    best = v;
                    best_i = base + iw;
                  }
                }
              }
            int64_t o = (od * g.out[1] + oh) * g.out[2] + ow;
            yp[o] = best;
            ip[o] = best_i;
          }
        }
      }
    }
  });
}

void max_pool_fwd(Call& c, int dims, const char* op) {
  const Tensor& self = c.inputs[0];
  PoolGeo g;
  int64_t P = split_planes(op, self, dims, g);
  pool_params(op, c.attrs, false, c.attrs[4].b, g);
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, false);
  Shape os = out_shape_of(self, g);
  Tensor x = contig_as(self, cdt), y = empty_tensor(os, cdt), ind = empty_tensor(os, DType::Int64);
  with_numeric(op, cdt, [&](auto tag) {
    using T = decltype(tag);
    max_pool_planes<T>(x.data<T>(), y.data<T>(), ind.data<int64_t>(), P, g);
  });
  set_outputs(c, {cdt != dt ? y.to(dt) : y, ind});
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
  Tensor go = contig_as(gout, cdt), ix = contig_as(indices, DType::Int64), gi = zeros(self.sizes(), cdt);
  std::atomic<bool> bad{false};
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = go.data<T>();
    const int64_t* ip = ix.data<int64_t>();
    T* out = gi.data<T>();
    parallel_for(P, plane_grain(O), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        for (int64_t o = 0; o < O; ++o) {
          int64_t i = ip[pl * O + o];
          if (i < 0 || i >= I) {
            bad = true;
            continue;
          }
          out[pl * I + i] += gp[pl * O + o];
        }
    });
  });
  if (bad) throw IndexError(err(op) + "found an invalid max index (expected indices in [0, " + std::to_string(I) + "))");
  c.outputs = {cdt != dt ? gi.to(dt) : gi};
}

// ---- average pooling ----------------------------------------------------------------------

struct AvgWin {
  int64_t lo[3], hi[3];
  double divisor;
  bool empty;
};

AvgWin avg_window(const PoolGeo& g, const int64_t* o, bool count_include_pad, int64_t divisor_override) {
  AvgWin w;
  int64_t pool = 1, real = 1;
  w.empty = false;
  for (int i = 0; i < 3; ++i) {
    int64_t a = o[i] * g.s[i] - g.p[i], b = std::min(a + g.k[i], g.in[i] + g.p[i]);
    pool *= b - a;
    a = std::max<int64_t>(a, 0);
    b = std::min(b, g.in[i]);
    if (a >= b) w.empty = true;
    real *= std::max<int64_t>(b - a, 0);
    w.lo[i] = a;
    w.hi[i] = b;
  }
  w.divisor = divisor_override ? (double)divisor_override : (double)(count_include_pad ? pool : real);
  return w;
}

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

void avg_pool_fwd(Call& c, int dims, const char* op) {
  const Tensor& self = c.inputs[0];
  int64_t P;
  AvgArgs r = avg_args(op, self, dims, c.attrs, P);
  const PoolGeo& g = r.g;
  DType dt = self.dtype(), cdt = compute_dtype(op, dt, true);
  Tensor x = contig_as(self, cdt), y = empty_tensor(out_shape_of(self, g), cdt);
  int64_t I = g.I(), O = g.O();
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel_for(P, plane_grain(O * g.k[0] * g.k[1] * g.k[2]), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        for_each_out<T>(g, [&](const int64_t* o, int64_t n) {
          AvgWin w = avg_window(g, o, r.count_include_pad, r.divisor_override);
          if (w.empty) {
            yp[pl * O + n] = T(0);
            return;
          }
          T sum = 0;
          for (int64_t id = w.lo[0]; id < w.hi[0]; ++id)
            for (int64_t ih = w.lo[1]; ih < w.hi[1]; ++ih) {
              const T* row = xp + pl * I + (id * g.in[1] + ih) * g.in[2];
              sum += sum_contig(row + w.lo[2], w.hi[2] - w.lo[2]);
            }
          yp[pl * O + n] = T(sum / (T)w.divisor);
        });
    });
  });
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void avg_pool_bwd(Call& c, int dims, const char* op) {
  refuse_double_backward(c, 1);
  const Tensor &gout = c.inputs[0], &self = c.inputs[1];
  int64_t P;
  AvgArgs r = avg_args(op, self, dims, c.attrs, P);
  const PoolGeo& g = r.g;
  Shape os = out_shape_of(self, g);
  if (gout.sizes() != os)
    throw ValueError(err(op) + "expected grad_output of shape " + shape_str(os) + ", got " + shape_str(gout.sizes()));
  DType dt = gout.dtype(), cdt = compute_dtype(op, dt, true);
  Tensor go = contig_as(gout, cdt), gi = zeros(self.sizes(), cdt);
  int64_t I = g.I(), O = g.O();
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = go.data<T>();
    T* out = gi.data<T>();
    parallel_for(P, plane_grain(O * g.k[0] * g.k[1] * g.k[2]), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        for_each_out<T>(g, [&](const int64_t* o, int64_t n) {
          AvgWin w = avg_window(g, o, r.count_include_pad, r.divisor_override);
          if (w.empty) return;
          T v = gp[pl * O + n] / (T)w.divisor;
          for (int64_t id = w.lo[0]; id < w.hi[0]; ++id)
            for (int64_t ih = w.lo[1]; ih < w.hi[1]; ++ih) {
              T* row = out + pl * I + (id * g.in[1] + ih) * g.in[2];
              for (int64_t iw = w.lo[2]; iw < w.hi[2]; ++iw) row[iw] += v;
            }
        });
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
  refuse_double_backward(c, 1);
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
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    int64_t* ip = ind.data<int64_t>();
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

void k_max_pool1d_with_indices(Call& c) { max_pool_fwd(c, 1, "max_pool1d"); }
void k_max_pool2d_with_indices(Call& c) { max_pool_fwd(c, 2, "max_pool2d"); }
void k_max_pool3d_with_indices(Call& c) { max_pool_fwd(c, 3, "max_pool3d"); }
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
