// grid_sampler_2d (F.grid_sample on 4-D input), forward and backward, with torch's coordinate
// math (align_corners, zeros/border/reflection padding); the argument checks both ranks share.
// Bilinear and nearest run on the blocked engine in grid_sampler_3d.cpp; bicubic is here.
// Compute dtype float32 (float16/bfloat16 inputs) or float64.
#include "grid_sampler.h"

namespace nd {
namespace {

using grid::clip_coord;
using grid::reflect_coord;
using grid::unnormalize;

// Bicubic: torch's cubic convolution (A = -0.75) over the 4x4 taps around floor() of the
// unpadded source coordinate; the padding mode maps each tap's integer coordinate on its own
// (torch's get_value_bounded), so the grid gradient is the unnormalize scale alone.
template <typename T>
void cubic_coeffs(T t, T* w, T* dw) {
  const T A = T(-0.75);
  auto near = [&](T x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };           // |x| <= 1
  auto far = [&](T x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };      // 1 < |x| < 2
  auto dnear = [&](T x) { return (3 * (A + 2) * x - 2 * (A + 3)) * x; };
  auto dfar = [&](T x) { return (3 * A * x - 10 * A) * x + 8 * A; };
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
  dw[0] = dfar(t + 1);
  dw[1] = dnear(t);
  dw[2] = -dnear(1 - t);
  dw[3] = -dfar(2 - t);
}

// Index of an integral tap coordinate after padding, or -1 outside the input.
template <typename T>
int64_t cubic_tap(T v, int64_t size, int pad_mode, bool align) {
  T unused;
  if (pad_mode == 1) {
    v = clip_coord(v, size, &unused);
  } else if (pad_mode == 2) {
    v = align ? reflect_coord(v, 0, 2 * (size - 1), &unused) : reflect_coord(v, -1, 2 * size - 1, &unused);
    v = clip_coord(v, size, &unused);
  }
  if (!(v >= 0 && v <= T(size - 1))) return -1;  // NaN, inf and out of range
  return (int64_t)v;
}

template <typename T>
struct Cubic {
  T wx[4], wy[4], dwx[4], dwy[4], sx, sy;  // weights, their derivatives, d(source)/d(grid)
  int64_t xs[4], ys[4];
  Cubic(T gx, T gy, int64_t H, int64_t W, int pad, bool align) {
    T ix = unnormalize(gx, W, align, &sx), iy = unnormalize(gy, H, align, &sy);
    T fx = std::floor(ix), fy = std::floor(iy);
    cubic_coeffs(ix - fx, wx, dwx);
    cubic_coeffs(iy - fy, wy, dwy);
    for (int k = 0; k < 4; ++k) {
      xs[k] = cubic_tap(fx + T(k - 1), W, pad, align);
      ys[k] = cubic_tap(fy + T(k - 1), H, pad, align);
    }
  }
};

template <typename T>
void cubic_forward(const T* x, const T* grid, T* y, const grid::Args& g) {
  int64_t H = g.size[1], W = g.size[0], HW = g.in_plane, O = g.out_plane;
  parallel_for(g.N * O, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, g.C)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      int64_t n = i / O, o = i % O;
      const T* xn = x + n * g.C * HW;
      T* yn = y + n * g.C * O + o;
      Cubic<T> cb(grid[i * 2], grid[i * 2 + 1], H, W, g.pad, g.align);
      for (int64_t ch = 0; ch < g.C; ++ch) {
        const T* p = xn + ch * HW;
        T v = 0;
        for (int j = 0; j < 4; ++j) {
          if (cb.ys[j] < 0) continue;
          T row = 0;
          for (int k = 0; k < 4; ++k)
            if (cb.xs[k] >= 0) row += p[cb.ys[j] * W + cb.xs[k]] * cb.wx[k];
          v += row * cb.wy[j];
        }
        // NaN weights (NaN grid) poison the sum as in torch, even where every tap is outside
        yn[ch * O] = std::isfinite(cb.wx[0] + cb.wy[0]) ? v : cb.wx[0] + cb.wy[0];
      }
    }
  });
}

template <typename T>
void cubic_backward(const T* go, const T* x, const T* grid, T* gi, T* gg, const grid::Args& g) {
  int64_t H = g.size[1], W = g.size[0], HW = g.in_plane, O = g.out_plane;
  // grad_input accumulates across positions of one sample: parallel over samples only
  parallel_for(g.N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t o = 0; o < O; ++o) {
        int64_t i = n * O + o;
        const T* xn = x + n * g.C * HW;
        const T* gon = go + n * g.C * O + o;
        T* gin = gi ? gi + n * g.C * HW : nullptr;
        T gix = 0, giy = 0;
        Cubic<T> cb(grid[i * 2], grid[i * 2 + 1], H, W, g.pad, g.align);
        for (int64_t ch = 0; ch < g.C; ++ch) {
          T gv = gon[ch * O];
          const T* p = xn + ch * HW;
          T* q = gin ? gin + ch * HW : nullptr;
          for (int j = 0; j < 4; ++j) {
            if (cb.ys[j] < 0) continue;
            for (int k = 0; k < 4; ++k) {
              if (cb.xs[k] < 0) continue;
              int64_t at = cb.ys[j] * W + cb.xs[k];
              if (q) q[at] += cb.wx[k] * cb.wy[j] * gv;
              if (gg) {
                gix += gv * p[at] * cb.dwx[k] * cb.wy[j];
                giy += gv * p[at] * cb.wx[k] * cb.dwy[j];
              }
            }
          }
        }
        // torch multiplies the zero of out-of-range taps by NaN weights too: a NaN grid gets NaN
        if (g.C > 0 && !std::isfinite(cb.wx[0] + cb.wy[0])) gix = giy = cb.wx[0] + cb.wy[0];
        if (gg) {
          gg[i * 2] = cb.sx * gix;
          gg[i * 2 + 1] = cb.sy * giy;
        }
      }
  });
}

}  // namespace

namespace grid {

DType real_dtype(const char* op, DType dt) {
  if (!is_floating(dt))
    throw TypeError(std::string("[") + op + "] expected a floating point input, got " + dtype_name(dt));
  return dt == DType::Float64 ? DType::Float64 : DType::Float32;
}

Tensor contig_as(const Tensor& t, DType dt) {
  Tensor x = t.dtype() == dt ? t : t.to(dt);
  return x.is_contiguous() ? x : x.contiguous();
}

Tensor zeros_of(const Shape& s, DType dt) {
  Tensor t = empty_tensor(s, dt);
  std::memset(t.data_ptr(), 0, (size_t)t.numel() * t.itemsize());
  return t;
}

void set_backward_outputs(Call& c, Tensor gi, Tensor gg, DType dt, bool keep_all, const Shape& input_sizes,
                          const Shape& grid_sizes) {
  if (gi.defined() && gi.dtype() != dt) gi = gi.to(dt);
  if (gg.defined() && gg.dtype() != dt) gg = gg.to(dt);
  if (keep_all && !gi.defined()) gi = zeros_of(input_sizes, dt);
  if (keep_all && !gg.defined()) gg = zeros_of(grid_sizes, dt);
  c.outputs = {gi, gg};
}

Args check_args(const char* op, int k, const Tensor& input, const Tensor& grid, const std::vector<Value>& attrs) {
  const std::string pre = std::string("[") + op + "] ";
  int rank = k + 2;
  if (input.dim() != rank || grid.dim() != rank || grid.sizes()[rank - 1] != k || grid.sizes()[0] != input.sizes()[0])
    throw ValueError(pre + (k == 2 ? "expected input of shape (N, C, H, W) and grid of shape (N, H_out, W_out, 2), got "
                                   : "expected input of shape (N, C, D, H, W) and grid of shape (N, D_out, H_out, W_out, 3), got ") +
                     shape_str(input.sizes()) + " and " + shape_str(grid.sizes()));
  if (input.dtype() != grid.dtype())
    throw TypeError(pre + "expected input and grid to have the same dtype, got " + dtype_name(input.dtype()) + " and " +
                    dtype_name(grid.dtype()));
  for (int i = 2; i < rank; ++i)
    if (input.sizes()[i] <= 0) throw ValueError(pre + "expected input to have non-empty spatial dims, got " + shape_str(input.sizes()));
  Args a{};
  a.k = k;
  a.N = input.sizes()[0];
  a.C = input.sizes()[1];
  a.in_plane = a.out_plane = 1;
  for (int d = 0; d < k; ++d) {
    a.size[d] = input.sizes()[rank - 1 - d];
    a.out[d] = grid.sizes()[rank - 2 - d];
    a.in_plane *= a.size[d];
    a.out_plane *= a.out[d];
  }
  a.mode = (int)attrs[0].i;
  a.pad = (int)attrs[1].i;
  a.align = attrs[2].b;
  if (a.mode < 0 || a.mode > 2)
    throw ValueError(pre + "interpolation_mode must be 0 (bilinear), 1 (nearest) or 2 (bicubic), got " + std::to_string(a.mode));
  if (a.pad < 0 || a.pad > 2)
    throw ValueError(pre + "padding_mode must be 0 (zeros), 1 (border) or 2 (reflection), got " + std::to_string(a.pad));
  return a;
}

}  // namespace grid

void k_grid_sampler_2d(Call& c) {
  const char* op = "grid_sampler_2d";
  const Tensor &input = c.inputs[0], &grid_t = c.inputs[1];
  grid::Args a = grid::check_args(op, 2, input, grid_t, c.attrs);
  DType dt = input.dtype(), cdt = grid::real_dtype(op, dt);
  Tensor x = grid::contig_as(input, cdt), g = grid::contig_as(grid_t, cdt), y = empty_tensor({a.N, a.C, a.out[1], a.out[0]}, cdt);
  if (cdt == DType::Float64) {
    if (a.mode == grid::kBicubic) cubic_forward<double>(x.data<double>(), g.data<double>(), y.data<double>(), a);
    else grid::linear_forward<double>(x.data<double>(), g.data<double>(), y.data<double>(), a);
  } else {
    if (a.mode == grid::kBicubic) cubic_forward<float>(x.data<float>(), g.data<float>(), y.data<float>(), a);
    else grid::linear_forward<float>(x.data<float>(), g.data<float>(), y.data<float>(), a);
  }
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void k_grid_sampler_2d_backward(Call& c) {
  const char* op = "grid_sampler_2d_backward";
  const Tensor &gout = c.inputs[0], &input = c.inputs[1], &grid_t = c.inputs[2];
  grid::Args a = grid::check_args(op, 2, input, grid_t, c.attrs);
  const Shape& mask = c.attrs[3].list;
  bool want_i = mask.empty() || mask[0], want_g = mask.size() < 2 || mask[1];
  // Under create_graph this call is recorded as a node with a derivative, and ndgrad's engine needs
  // every output of a node to exist: a masked-off output is then zeros instead of undefined.
  bool keep_all = grad_enabled();
  Shape expect{a.N, a.C, a.out[1], a.out[0]};
  if (gout.sizes() != expect)
    throw ValueError(std::string("[") + op + "] expected grad_output of shape " + shape_str(expect) + ", got " + shape_str(gout.sizes()));
  DType dt = input.dtype(), cdt = grid::real_dtype(op, dt);
  Tensor go = grid::contig_as(gout, cdt), x = grid::contig_as(input, cdt), g = grid::contig_as(grid_t, cdt);
  Tensor gi = want_i ? grid::zeros_of(input.sizes(), cdt) : Tensor(), gg = want_g ? grid::zeros_of(grid_t.sizes(), cdt) : Tensor();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* pi = want_i ? gi.data<T>() : nullptr;
    T* pg = want_g ? gg.data<T>() : nullptr;
    if (a.mode == grid::kBicubic) cubic_backward<T>(go.data<T>(), x.data<T>(), g.data<T>(), pi, pg, a);
    else grid::linear_backward<T>(go.data<T>(), x.data<T>(), g.data<T>(), pi, pg, a);
  };
  if (cdt == DType::Float64) run(double{});
  else run(float{});
  grid::set_backward_outputs(c, gi, gg, dt, keep_all, input.sizes(), grid_t.sizes());
}

}  // namespace nd
