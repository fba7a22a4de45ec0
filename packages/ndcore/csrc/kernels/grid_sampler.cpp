// grid_sampler_2d (F.grid_sample on 4-D input), forward and backward: bilinear, nearest and
// bicubic, with torch's coordinate math (align_corners, zeros/border/reflection padding). Compute
// dtype float32 (float16/bfloat16 inputs) or float64. 5-D input is a composite in ndnn.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "loops.h"

namespace nd {
namespace {

std::string err(const char* op) { return std::string("[") + op + "] "; }

template <typename F>
void with_real(DType dt, F&& fn) {
  if (dt == DType::Float64) fn(double{});
  else fn(float{});
}

DType real_dtype(const char* op, DType dt) {
  if (!is_floating(dt)) throw TypeError(err(op) + "expected a floating point input, got " + dtype_name(dt));
  return dt == DType::Float64 ? DType::Float64 : DType::Float32;
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
T unnormalize(T coord, int64_t size, bool align, T* grad) {
  if (align) {
    *grad = T(size - 1) / 2;
    return ((coord + 1) / 2) * (size - 1);
  }
  *grad = T(size) / 2;
  return ((coord + 1) * size - 1) / 2;
}

template <typename T>
T clip_coord(T in, int64_t limit, T* grad) {
  if (in <= 0) {
    *grad = 0;
    return 0;
  }
  T mx = T(limit - 1);
  if (in >= mx) {
    *grad = 0;
    return mx;
  }
  *grad = 1;
  return in;
}

template <typename T>
T reflect_coord(T in, int64_t twice_low, int64_t twice_high, T* grad) {
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
  int64_t flips = (int64_t)std::floor(in / span);
  if (flips % 2 == 0) {
    *grad = mult;
    return extra + mn;
  }
  *grad = -mult;
  return span - extra + mn;
}

// Source coordinate of a normalised grid value, and d(source)/d(grid).
template <typename T>
T source_coord(T coord, int64_t size, int pad_mode, bool align, T* grad) {
  T gu, gc = 1, gr = 1;
  T x = unnormalize(coord, size, align, &gu);
  if (pad_mode == 1) {
    x = clip_coord(x, size, &gc);
  } else if (pad_mode == 2) {
    x = align ? reflect_coord(x, 0, 2 * (size - 1), &gr) : reflect_coord(x, -1, 2 * size - 1, &gr);
    x = clip_coord(x, size, &gc);
  }
  *grad = gu * gc * gr;
  // NaN/inf or huge coordinates fall outside the input (torch's safe_downgrade_to_int_range)
  if (!std::isfinite(x) || x > T(INT32_MAX - 1) || x < T(INT32_MIN)) x = T(-100);
  return x;
}

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

struct GridArgs {
  int64_t N, C, H, W, Ho, Wo;
  int mode, pad;
  bool align;
};

GridArgs grid_args(const char* op, const Tensor& input, const Tensor& grid, const std::vector<Value>& a) {
  if (input.dim() != 4 || grid.dim() != 4 || grid.sizes()[3] != 2 || grid.sizes()[0] != input.sizes()[0])
    throw ValueError(err(op) + "expected input of shape (N, C, H, W) and grid of shape (N, H_out, W_out, 2), got " +
                     shape_str(input.sizes()) + " and " + shape_str(grid.sizes()));
  if (input.dtype() != grid.dtype())
    throw TypeError(err(op) + "expected input and grid to have the same dtype, got " + dtype_name(input.dtype()) + " and " +
                    dtype_name(grid.dtype()));
  for (int i = 2; i < 4; ++i)
    if (input.sizes()[i] <= 0) throw ValueError(err(op) + "expected input to have non-empty spatial dims, got " + shape_str(input.sizes()));
  GridArgs g{input.sizes()[0], input.sizes()[1], input.sizes()[2], input.sizes()[3], grid.sizes()[1], grid.sizes()[2],
             (int)a[0].i, (int)a[1].i, a[2].b};
  if (g.mode < 0 || g.mode > 2)
    throw ValueError(err(op) + "interpolation_mode must be 0 (bilinear), 1 (nearest) or 2 (bicubic), got " + std::to_string(g.mode));
  if (g.pad < 0 || g.pad > 2)
    throw ValueError(err(op) + "padding_mode must be 0 (zeros), 1 (border) or 2 (reflection), got " + std::to_string(g.pad));
  return g;
}

template <typename T>
void grid_forward(const T* x, const T* grid, T* y, const GridArgs& g) {
  int64_t HW = g.H * g.W, O = g.Ho * g.Wo;
  parallel_for(g.N * O, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, g.C)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      int64_t n = i / O, o = i % O;
      T gx, gy;
      T ix = source_coord<T>(grid[i * 2], g.W, g.pad, g.align, &gx);
      T iy = source_coord<T>(grid[i * 2 + 1], g.H, g.pad, g.align, &gy);
      const T* xn = x + n * g.C * HW;
      T* yn = y + n * g.C * O + o;
      auto in = [&](int64_t yy, int64_t xx) { return yy >= 0 && yy < g.H && xx >= 0 && xx < g.W; };
      if (g.mode == 0) {
        int64_t x0 = (int64_t)std::floor(ix), y0 = (int64_t)std::floor(iy);
        T wx1 = ix - x0, wx0 = 1 - wx1, wy1 = iy - y0, wy0 = 1 - wy1;
        bool b00 = in(y0, x0), b01 = in(y0, x0 + 1), b10 = in(y0 + 1, x0), b11 = in(y0 + 1, x0 + 1);
        for (int64_t ch = 0; ch < g.C; ++ch) {
          const T* p = xn + ch * HW;
          T v = 0;
          if (b00) v += p[y0 * g.W + x0] * wx0 * wy0;
          if (b01) v += p[y0 * g.W + x0 + 1] * wx1 * wy0;
          if (b10) v += p[(y0 + 1) * g.W + x0] * wx0 * wy1;
          if (b11) v += p[(y0 + 1) * g.W + x0 + 1] * wx1 * wy1;
          yn[ch * O] = v;
        }
      } else if (g.mode == 2) {
        Cubic<T> cb(grid[i * 2], grid[i * 2 + 1], g.H, g.W, g.pad, g.align);
        for (int64_t ch = 0; ch < g.C; ++ch) {
          const T* p = xn + ch * HW;
          T v = 0;
          for (int j = 0; j < 4; ++j) {
            if (cb.ys[j] < 0) continue;
            T row = 0;
            for (int k = 0; k < 4; ++k)
              if (cb.xs[k] >= 0) row += p[cb.ys[j] * g.W + cb.xs[k]] * cb.wx[k];
            v += row * cb.wy[j];
          }
          // NaN weights (NaN grid) poison the sum as in torch, even where every tap is outside
          yn[ch * O] = std::isfinite(cb.wx[0] + cb.wy[0]) ? v : cb.wx[0] + cb.wy[0];
        }
      } else {
        int64_t xr = (int64_t)std::nearbyint(ix), yr = (int64_t)std::nearbyint(iy);
        bool ok = in(yr, xr);
        for (int64_t ch = 0; ch < g.C; ++ch) yn[ch * O] = ok ? xn[ch * HW + yr * g.W + xr] : T(0);
      }
    }
  });
}

template <typename T>
void grid_backward(const T* go, const T* x, const T* grid, T* gi, T* gg, const GridArgs& g) {
  int64_t HW = g.H * g.W, O = g.Ho * g.Wo;
  // grad_input accumulates across positions of one sample: parallel over samples only
  parallel_for(g.N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t o = 0; o < O; ++o) {
        int64_t i = n * O + o;
        T mx, my;
        T ix = source_coord<T>(grid[i * 2], g.W, g.pad, g.align, &mx);
        T iy = source_coord<T>(grid[i * 2 + 1], g.H, g.pad, g.align, &my);
        const T* xn = x + n * g.C * HW;
        const T* gon = go + n * g.C * O + o;
        T* gin = gi ? gi + n * g.C * HW : nullptr;
        auto in = [&](int64_t yy, int64_t xx) { return yy >= 0 && yy < g.H && xx >= 0 && xx < g.W; };
        T gix = 0, giy = 0;
        if (g.mode == 0) {
          int64_t x0 = (int64_t)std::floor(ix), y0 = (int64_t)std::floor(iy);
          T wx1 = ix - x0, wx0 = 1 - wx1, wy1 = iy - y0, wy0 = 1 - wy1;
          bool b00 = in(y0, x0), b01 = in(y0, x0 + 1), b10 = in(y0 + 1, x0), b11 = in(y0 + 1, x0 + 1);
          for (int64_t ch = 0; ch < g.C; ++ch) {
            T gv = gon[ch * O];
            const T* p = xn + ch * HW;
            if (gin) {
              T* q = gin + ch * HW;
              if (b00) q[y0 * g.W + x0] += wx0 * wy0 * gv;
              if (b01) q[y0 * g.W + x0 + 1] += wx1 * wy0 * gv;
              if (b10) q[(y0 + 1) * g.W + x0] += wx0 * wy1 * gv;
              if (b11) q[(y0 + 1) * g.W + x0 + 1] += wx1 * wy1 * gv;
            }
            if (gg) {
              T v00 = b00 ? p[y0 * g.W + x0] : T(0), v01 = b01 ? p[y0 * g.W + x0 + 1] : T(0);
              T v10 = b10 ? p[(y0 + 1) * g.W + x0] : T(0), v11 = b11 ? p[(y0 + 1) * g.W + x0 + 1] : T(0);
              gix += gv * ((v01 - v00) * wy0 + (v11 - v10) * wy1);
              giy += gv * ((v10 - v00) * wx0 + (v11 - v01) * wx1);
            }
          }
        } else if (g.mode == 2) {
          Cubic<T> cb(grid[i * 2], grid[i * 2 + 1], g.H, g.W, g.pad, g.align);
          mx = cb.sx;
          my = cb.sy;
          for (int64_t ch = 0; ch < g.C; ++ch) {
            T gv = gon[ch * O];
            const T* p = xn + ch * HW;
            T* q = gin ? gin + ch * HW : nullptr;
            for (int j = 0; j < 4; ++j) {
              if (cb.ys[j] < 0) continue;
              for (int k = 0; k < 4; ++k) {
                if (cb.xs[k] < 0) continue;
                int64_t at = cb.ys[j] * g.W + cb.xs[k];
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
        } else if (gin) {
          int64_t xr = (int64_t)std::nearbyint(ix), yr = (int64_t)std::nearbyint(iy);
          if (in(yr, xr))
            for (int64_t ch = 0; ch < g.C; ++ch) gin[ch * HW + yr * g.W + xr] += gon[ch * O];
        }
        if (gg) {
          gg[i * 2] = mx * gix;
          gg[i * 2 + 1] = my * giy;
        }
      }
  });
}


}  // namespace

void k_grid_sampler_2d(Call& c) {
  const Tensor &input = c.inputs[0], &grid = c.inputs[1];
  GridArgs g = grid_args("grid_sampler_2d", input, grid, c.attrs);
  DType dt = input.dtype(), cdt = real_dtype("grid_sampler_2d", dt);
  Tensor x = contig_as(input, cdt), gr = contig_as(grid, cdt), y = empty_tensor({g.N, g.C, g.Ho, g.Wo}, cdt);
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    grid_forward<T>(x.data<T>(), gr.data<T>(), y.data<T>(), g);
  });
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void k_grid_sampler_2d_backward(Call& c) {
  const Tensor &gout = c.inputs[0], &input = c.inputs[1], &grid = c.inputs[2];
  GridArgs g = grid_args("grid_sampler_2d_backward", input, grid, c.attrs);
  const Shape& mask = c.attrs[3].list;
  bool want_i = mask.empty() || mask[0], want_g = mask.size() < 2 || mask[1];
  // Under create_graph this call is recorded as a node with a derivative, and ndgrad's engine needs
  // every output of a node to exist: a masked-off output is then zeros instead of undefined.
  bool keep_all = grad_enabled();
  Shape expect{g.N, g.C, g.Ho, g.Wo};
  if (gout.sizes() != expect)
    throw ValueError("[grid_sampler_2d_backward] expected grad_output of shape " + shape_str(expect) + ", got " + shape_str(gout.sizes()));
  DType dt = input.dtype(), cdt = real_dtype("grid_sampler_2d_backward", dt);
  Tensor go = contig_as(gout, cdt), x = contig_as(input, cdt), gr = contig_as(grid, cdt);
  Tensor gi = want_i ? zeros(input.sizes(), cdt) : Tensor(), gg = want_g ? zeros(grid.sizes(), cdt) : Tensor();
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    grid_backward<T>(go.data<T>(), x.data<T>(), gr.data<T>(), want_i ? gi.data<T>() : nullptr, want_g ? gg.data<T>() : nullptr, g);
  });
  if (cdt != dt) {
    if (gi.defined()) gi = gi.to(dt);
    if (gg.defined()) gg = gg.to(dt);
  }
  if (keep_all && !gi.defined()) gi = zeros(input.sizes(), dt);
  if (keep_all && !gg.defined()) gg = zeros(grid.sizes(), dt);
  c.outputs = {gi, gg};
}

}  // namespace nd
