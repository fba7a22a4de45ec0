// Spatial resampling and padding over 1-3 spatial dims: upsample (nearest, nearest-exact,
// linear/bilinear/trilinear, bicubic) and constant/reflection/replication padding, forward and
// backward; and im2col/col2im (F.unfold / F.fold). grid_sampler_2d lives in grid_sampler.cpp.
//
// Resampling is separable: each output index along a dim reads a few input indices with
// weights ("taps": 1 nearest, 2 linear, 4 cubic), computed once per dim with torch's exact index
// math (float32 scale arithmetic for nearest, the compute dtype for the rest; align_corners; a
// given scale factor s is used as 1/s). Pure gathers (nearest, reflection and replication
// padding) move elements by size, so they take every dtype; interpolation and all backward
// kernels compute in float32 (float16/bfloat16 inputs) or float64.
#include <cmath>
#include <cstring>
#include <optional>

#include "im2col.h"
#include "loops.h"

namespace nd {
namespace {

std::string err(const char* op) { return std::string("[") + op + "] "; }

template <typename F>
void with_real(DType dt, F&& fn) {
  if (dt == DType::Float64) fn(double{});
  else fn(float{});
}

// Gathers work on raw elements of the tensor's size.
template <typename F>
void with_bytes(size_t size, F&& fn) {
  switch (size) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
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

int64_t plane_grain(int64_t per_plane) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, per_plane)); }

// Per-dim index maps: out index o of dim i reads taps idx[i][o * nt + t] with weights w[i][...].
struct Maps {
  int dims = 0, nt[3] = {1, 1, 1};
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  std::vector<int64_t> idx[3];
  std::vector<double> w[3];
  int64_t I() const { return in[0] * in[1] * in[2]; }
  int64_t O() const { return out[0] * out[1] * out[2]; }
  void identity_unused() {
    for (int i = 0; i < 3 - dims; ++i) {
      idx[i] = {0};
      w[i] = {1.0};
      nt[i] = 1;
    }
  }
};

// (planes, leading shape) of a (N, C, *sp) or (C, *sp) tensor with `dims` spatial dims.
int64_t planes_of(const char* op, const Shape& s, int dims, Maps& m) {
  if ((int)s.size() != dims + 1 && (int)s.size() != dims + 2)
    throw ValueError(err(op) + "expected a " + std::to_string(dims + 2) + "D (batched) or " + std::to_string(dims + 1) +
                     "D (unbatched) input, got shape " + shape_str(s));
  m.dims = dims;
  int64_t P = 1;
  for (size_t i = 0; i < s.size() - dims; ++i) P *= s[i];
  for (int i = 0; i < dims; ++i) {
    m.in[3 - dims + i] = s[s.size() - dims + i];
    if (m.in[3 - dims + i] <= 0)
      throw ValueError(err(op) + "input and output sizes should be greater than 0, but got input shape " + shape_str(s));
  }
  return P;
}

Shape with_spatial(const Shape& s, int dims, const int64_t* sp3) {
  Shape r(s.begin(), s.end() - dims);
  for (int i = 3 - dims; i < 3; ++i) r.push_back(sp3[i]);
  return r;
}

// ---- upsampling ---------------------------------------------------------------------------

enum class Mode { Nearest, NearestExact, Linear, Cubic };

template <typename S>
S scale_value(std::optional<double> scale, int64_t in, int64_t out) {
  return scale && *scale > 0 ? (S)(1.0 / *scale) : (S)in / (S)out;
}

template <typename S>
S area_scale(int64_t in, int64_t out, bool align, std::optional<double> scale) {
  if (align) return out > 1 ? (S)(in - 1) / (S)(out - 1) : S(0);
  return scale_value<S>(scale, in, out);
}

template <typename S>
S source_index(S scale, int64_t o, bool align, bool cubic) {
  if (align) return scale * (S)o;
  S src = scale * ((S)o + S(0.5)) - S(0.5);
  return (!cubic && src < 0) ? S(0) : src;
}

double cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
double cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

// S is the dtype torch computes the source coordinate in (float for float32 inputs).
template <typename S>
void build_dim(Maps& m, int i, Mode mode, bool align, std::optional<double> scale) {
  int64_t in = m.in[i], out = m.out[i];
  int nt = mode == Mode::Linear ? 2 : mode == Mode::Cubic ? 4 : 1;
  m.nt[i] = nt;
  m.idx[i].assign(out * nt, 0);
  m.w[i].assign(out * nt, 0.0);
  if (mode == Mode::Nearest || mode == Mode::NearestExact) {
    float sc = scale_value<float>(scale, in, out);
    for (int64_t o = 0; o < out; ++o) {
      int64_t src;
      if (mode == Mode::NearestExact) src = std::min((int64_t)std::floor(((float)o + 0.5f) * sc), in - 1);
      else if (out == in) src = o;
      else if (out == 2 * in) src = o >> 1;
      else src = std::min((int64_t)std::floor((float)o * sc), in - 1);
      m.idx[i][o] = src;
      m.w[i][o] = 1.0;
    }
    return;
  }
  S sc = area_scale<S>(in, out, align, scale);
  for (int64_t o = 0; o < out; ++o) {
    S real = source_index<S>(sc, o, align, mode == Mode::Cubic);
    int64_t base = std::min((int64_t)std::floor(real), in - 1);
    S t = std::min(std::max(real - (S)base, S(0)), S(1));
    if (mode == Mode::Linear) {
      m.idx[i][o * 2] = base;
      m.idx[i][o * 2 + 1] = base + (base < in - 1 ? 1 : 0);
      m.w[i][o * 2] = (double)(S(1) - t);
      m.w[i][o * 2 + 1] = (double)t;
    } else {
      const double A = -0.75;
      double c[4] = {cubic2((double)t + 1, A), cubic1((double)t, A), cubic1(1 - (double)t, A), cubic2(2 - (double)t, A)};
      for (int k = 0; k < 4; ++k) {
        m.idx[i][o * 4 + k] = std::max<int64_t>(std::min<int64_t>(base - 1 + k, in - 1), 0);
        m.w[i][o * 4 + k] = (double)(S)c[k];
      }
    }
  }
}

struct UpArgs {
  Mode mode;
  int dims;
  bool has_align;
};

// Attribute layout: forward (output_size, [align_corners], scales...); backward (output_size,
// input_size, [align_corners], scales...).
Maps up_maps(const char* op, const UpArgs& u, const std::vector<Value>& a, bool backward, const Shape& in_shape, int64_t& P,
             DType cdt) {
  Maps m;
  P = planes_of(op, in_shape, u.dims, m);
  const Shape& osz = a[0].list;
  if ((int)osz.size() != u.dims)
    throw ValueError(err(op) + "expected output_size to have " + std::to_string(u.dims) + " elements, got " + shape_str(osz));
  size_t k = backward ? 2 : 1;
  bool align = false;
  if (u.has_align) align = a[k++].b;
  for (int i = 0; i < u.dims; ++i) {
    int d = 3 - u.dims + i;
    m.out[d] = osz[i];
    if (osz[i] <= 0)
      throw ValueError(err(op) + "input and output sizes should be greater than 0, but got input shape " + shape_str(in_shape) +
                       " and output_size " + shape_str(osz));
    std::optional<double> sc;
    if (k + i < a.size() && !a[k + i].is_none()) sc = a[k + i].d;
    if (cdt == DType::Float64) build_dim<double>(m, d, u.mode, align, sc);
    else build_dim<float>(m, d, u.mode, align, sc);
  }
  m.identity_unused();
  return m;
}

template <typename E>
void gather_planes(const E* x, E* y, int64_t P, const Maps& m) {
  int64_t I = m.I(), O = m.O();
  parallel_for(P, plane_grain(O), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const E* xp = x + p * I;
      E* yp = y + p * O;
      for (int64_t od = 0; od < m.out[0]; ++od)
        for (int64_t oh = 0; oh < m.out[1]; ++oh) {
          const E* row = xp + (m.idx[0][od] * m.in[1] + m.idx[1][oh]) * m.in[2];
          E* dst = yp + (od * m.out[1] + oh) * m.out[2];
          for (int64_t ow = 0; ow < m.out[2]; ++ow) dst[ow] = row[m.idx[2][ow]];
        }
    }
  });
}

// The (row pointer, weight) pairs of output row (od, oh): the taps of the two outer dims.
template <typename P>
int outer_taps(const Maps& m, int64_t od, int64_t oh, P base, P* rows, double* wr) {
  int n = 0;
  for (int a = 0; a < m.nt[0]; ++a)
    for (int b = 0; b < m.nt[1]; ++b) {
      rows[n] = base + (m.idx[0][od * m.nt[0] + a] * m.in[1] + m.idx[1][oh * m.nt[1] + b]) * m.in[2];
      wr[n++] = m.w[0][od * m.nt[0] + a] * m.w[1][oh * m.nt[1] + b];
    }
  return n;
}

template <typename T>
void interp_planes(const T* x, T* y, int64_t P, const Maps& m) {
  int64_t I = m.I(), O = m.O();
  int t2 = m.nt[2];
  std::vector<T> w2(m.w[2].begin(), m.w[2].end());
  const int64_t* i2 = m.idx[2].data();
  parallel_for(P, plane_grain(O * m.nt[0] * m.nt[1] * t2), [&](int64_t p0, int64_t p1) {
    const T* rows[16];
    double wr[16];
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t od = 0; od < m.out[0]; ++od)
        for (int64_t oh = 0; oh < m.out[1]; ++oh) {
          int nr = outer_taps(m, od, oh, x + p * I, rows, wr);
          T* dst = y + p * O + (od * m.out[1] + oh) * m.out[2];
          std::fill(dst, dst + m.out[2], T(0));
          for (int r = 0; r < nr; ++r) {
            const T* row = rows[r];
            T wv = (T)wr[r];
            if (t2 == 2) {
              for (int64_t ow = 0; ow < m.out[2]; ++ow)
                dst[ow] += wv * (w2[2 * ow] * row[i2[2 * ow]] + w2[2 * ow + 1] * row[i2[2 * ow + 1]]);
            } else {
              for (int64_t ow = 0; ow < m.out[2]; ++ow) {
                T part = 0;
                for (int c = 0; c < t2; ++c) part += w2[ow * t2 + c] * row[i2[ow * t2 + c]];
                dst[ow] += wv * part;
              }
            }
          }
        }
  });
}

template <typename T>
void scatter_planes(const T* g, T* gi, int64_t P, const Maps& m) {
  int64_t I = m.I(), O = m.O();
  int t2 = m.nt[2];
  std::vector<T> w2(m.w[2].begin(), m.w[2].end());
  const int64_t* i2 = m.idx[2].data();
  parallel_for(P, plane_grain(O * m.nt[0] * m.nt[1] * t2), [&](int64_t p0, int64_t p1) {
    T* rows[16];
    double wr[16];
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t od = 0; od < m.out[0]; ++od)
        for (int64_t oh = 0; oh < m.out[1]; ++oh) {
          int nr = outer_taps(m, od, oh, gi + p * I, rows, wr);
          const T* src = g + p * O + (od * m.out[1] + oh) * m.out[2];
          for (int r = 0; r < nr; ++r) {
            T* row = rows[r];
            T wv = (T)wr[r];
            for (int64_t ow = 0; ow < m.out[2]; ++ow) {
              T v = wv * src[ow];
              for (int c = 0; c < t2; ++c) row[i2[ow * t2 + c]] += w2[ow * t2 + c] * v;
            }
          }
        }
  });
}

void upsample_fwd(Call& c, const char* op, UpArgs u) {
  const Tensor& self = c.inputs[0];
  bool nearest = u.mode == Mode::Nearest || u.mode == Mode::NearestExact;
  DType dt = self.dtype();
  if (dt == DType::Bool && nearest) throw TypeError(err(op) + "not implemented for bool tensors");
  DType cdt = nearest ? dt : real_dtype(op, dt);
  int64_t P;
  Maps m = up_maps(op, u, c.attrs, false, self.sizes(), P, cdt);
  Tensor x = contig_as(self, cdt), y = empty_tensor(with_spatial(self.sizes(), u.dims, m.out), cdt);
  if (nearest) {
    with_bytes(x.itemsize(), [&](auto tag) {
      using E = decltype(tag);
      gather_planes<E>(x.data<E>(), y.data<E>(), P, m);
    });
  } else {
    with_real(cdt, [&](auto tag) {
      using T = decltype(tag);
      interp_planes<T>(x.data<T>(), y.data<T>(), P, m);
    });
  }
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void upsample_bwd(Call& c, const char* op, UpArgs u) {
  const Tensor& gout = c.inputs[0];
  const Shape& isz = c.attrs[1].list;
  if ((int)isz.size() != u.dims + 2)
    throw ValueError(err(op) + "expected input_size to have " + std::to_string(u.dims + 2) + " elements, got " + shape_str(isz));
  DType dt = gout.dtype(), cdt = real_dtype(op, dt);
  int64_t P;
  Maps m = up_maps(op, u, c.attrs, true, isz, P, cdt);
  Shape expect = with_spatial(isz, u.dims, m.out);
  if (gout.sizes() != expect)
    throw ValueError(err(op) + "expected grad_output of shape " + shape_str(expect) + ", got " + shape_str(gout.sizes()));
  Tensor g = contig_as(gout, cdt), gi = zeros(isz, cdt);
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    scatter_planes<T>(g.data<T>(), gi.data<T>(), P, m);
  });
  c.outputs = {cdt != dt ? gi.to(dt) : gi};
}

// ---- padding ------------------------------------------------------------------------------

// Index maps of reflection/replication padding; pads are (left, right) pairs from the last dim.
Maps pad_maps(const char* op, const Shape& in_shape, const Shape& pad, int dims, bool reflect, int64_t& P) {
  Maps m;
  P = planes_of(op, in_shape, dims, m);
  if ((int)pad.size() != 2 * dims)
    throw ValueError(err(op) + "expected padding of " + std::to_string(2 * dims) + " elements, got " + shape_str(pad));
  for (int i = 0; i < dims; ++i) {
    int d = 2 - i;  // pad pairs start at the last dim
    int64_t l = pad[2 * i], r = pad[2 * i + 1], in = m.in[d];
    if (reflect && (l >= in || r >= in))
      throw ValueError(err(op) + "padding size should be less than the corresponding input dimension, but got padding (" +
                       std::to_string(l) + ", " + std::to_string(r) + ") at dimension " + std::to_string(in_shape.size() - 1 - i) +
                       " of input " + shape_str(in_shape));
    int64_t out = in + l + r;
    if (out < 1)
      throw ValueError(err(op) + "input size " + std::to_string(in) + " plus padding (" + std::to_string(l) + ", " +
                       std::to_string(r) + ") gives an output size of " + std::to_string(out) + ", expected at least 1");
    m.out[d] = out;
    m.idx[d].resize(out);
    m.w[d].assign(out, 1.0);
    for (int64_t o = 0; o < out; ++o) {
      int64_t s = o - l;
      if (reflect) {
        if (s < 0) s = -s;
        if (s >= in) s = 2 * (in - 1) - s;
      } else {
        s = std::min(std::max<int64_t>(s, 0), in - 1);
      }
      m.idx[d][o] = s;
    }
  }
  m.identity_unused();
  return m;
}

void pad_fwd(Call& c, const char* op, int dims, bool reflect) {
  const Tensor& self = c.inputs[0];
  int64_t P;
  Maps m = pad_maps(op, self.sizes(), c.attrs[0].list, dims, reflect, P);
  Tensor x = contig_as(self, self.dtype()), y = empty_tensor(with_spatial(self.sizes(), dims, m.out), self.dtype());
  with_bytes(x.itemsize(), [&](auto tag) {
    using E = decltype(tag);
    gather_planes<E>(x.data<E>(), y.data<E>(), P, m);
  });
  c.outputs = {y};
}

void pad_bwd(Call& c, const char* op, int dims, bool reflect) {
  const Tensor &gout = c.inputs[0], &self = c.inputs[1];
  int64_t P;
  Maps m = pad_maps(op, self.sizes(), c.attrs[0].list, dims, reflect, P);
  Shape expect = with_spatial(self.sizes(), dims, m.out);
  if (gout.sizes() != expect)
    throw ValueError(err(op) + "expected grad_output of shape " + shape_str(expect) + ", got " + shape_str(gout.sizes()));
  DType dt = gout.dtype(), cdt = real_dtype(op, dt);
  Tensor g = contig_as(gout, cdt), gi = zeros(self.sizes(), cdt);
  with_real(cdt, [&](auto tag) {
    using T = decltype(tag);
    scatter_planes<T>(g.data<T>(), gi.data<T>(), P, m);
  });
  c.outputs = {cdt != dt ? gi.to(dt) : gi};
}

}  // namespace

#define ND_UPSAMPLE(name, mode, dims, align)                                                                 \
  void k_##name(Call& c) { upsample_fwd(c, #name, {Mode::mode, dims, align}); }                              \
  void k_##name##_backward(Call& c) { upsample_bwd(c, #name "_backward", {Mode::mode, dims, align}); }
ND_UPSAMPLE(upsample_nearest1d, Nearest, 1, false)
ND_UPSAMPLE(upsample_nearest2d, Nearest, 2, false)
ND_UPSAMPLE(upsample_nearest3d, Nearest, 3, false)
ND_UPSAMPLE(upsample_nearest_exact1d, NearestExact, 1, false)
ND_UPSAMPLE(upsample_nearest_exact2d, NearestExact, 2, false)
ND_UPSAMPLE(upsample_nearest_exact3d, NearestExact, 3, false)
ND_UPSAMPLE(upsample_linear1d, Linear, 1, true)
ND_UPSAMPLE(upsample_bilinear2d, Linear, 2, true)
ND_UPSAMPLE(upsample_trilinear3d, Linear, 3, true)
ND_UPSAMPLE(upsample_bicubic2d, Cubic, 2, true)
#undef ND_UPSAMPLE

#define ND_PAD(kind, dims, reflect)                                                                           \
  void k_##kind##_pad##dims##d(Call& c) { pad_fwd(c, #kind "_pad" #dims "d", dims, reflect); }                  \
  void k_##kind##_pad##dims##d_backward(Call& c) { pad_bwd(c, #kind "_pad" #dims "d_backward", dims, reflect); }
ND_PAD(reflection, 1, true)
ND_PAD(reflection, 2, true)
ND_PAD(reflection, 3, true)
ND_PAD(replication, 1, false)
ND_PAD(replication, 2, false)
ND_PAD(replication, 3, false)
#undef ND_PAD

void k_constant_pad_nd(Call& c) {
  const Tensor& self = c.inputs[0];
  const Shape& pad = c.attrs[0].list;
  int64_t nd_ = self.dim();
  if (pad.size() % 2 != 0)
    throw ValueError("[constant_pad_nd] padding length must be divisible by 2, got " + shape_str(pad));
  if ((int64_t)pad.size() > 2 * nd_)
    throw ValueError("[constant_pad_nd] padding length " + std::to_string(pad.size()) + " is too large for a " + std::to_string(nd_) +
                     "-D input of shape " + shape_str(self.sizes()) + " (at most 2 per dim)");
  Shape out_shape = self.sizes();
  Shape src_off(nd_, 0), dst_off(nd_, 0), len = self.sizes();
  for (size_t i = 0; i < pad.size() / 2; ++i) {
    int64_t d = nd_ - 1 - (int64_t)i, l = pad[2 * i], r = pad[2 * i + 1], in = self.sizes()[d];
    int64_t out = in + l + r;
    if (out < 0)
      throw ValueError("[constant_pad_nd] the input size " + std::to_string(in) + ", plus negative padding " + std::to_string(l) +
                       " and " + std::to_string(r) + " resulted in a negative output size, which is invalid. Check dimension " +
                       std::to_string(d) + " of your input " + shape_str(self.sizes()));
    out_shape[d] = out;
    src_off[d] = std::max<int64_t>(0, -l);
    dst_off[d] = std::max<int64_t>(0, l);
    len[d] = std::max<int64_t>(0, std::min(in - src_off[d], out - dst_off[d]));
  }
  Tensor out = empty_tensor(out_shape, self.dtype(), self.device());
  if (out.numel() == 0) {
    c.outputs = {out};
    return;
  }
  nd::fill_(out, Scalar(c.attrs[1]));
  if (numel_of(len) > 0) {
    Shape os = contiguous_strides(out_shape);
    int64_t so = self.offset(), doff = out.offset();
    for (int64_t d = 0; d < nd_; ++d) {
      so += src_off[d] * self.strides()[d];
      doff += dst_off[d] * os[d];
    }
    copy_into(out.view_of(len, os, doff), self.view_of(len, self.strides(), so));
  }
  c.outputs = {out};
}

// ---- im2col / col2im (F.unfold / F.fold): 2-D only, as in torch --------------------------

namespace {

using cols::col2im_plane;
using cols::Geo;
using cols::im2col_row;

Geo fold_geo(const char* opn, const std::vector<Value>& a, size_t first) {
  // attrs: kernel_size, dilation, padding, stride (starting at `first`)
  Geo g;
  g.dims = 2;
  const char* names[4] = {"kernel_size", "dilation", "padding", "stride"};
  int64_t* dst[4] = {g.k, g.d, g.p, g.s};
  for (int i = 0; i < 4; ++i) {
    const Shape& v = a[first + i].list;
    if (v.size() != 1 && v.size() != 2)
      throw ValueError(std::string("[") + opn + "] " + names[i] + " must have 1 or 2 elements, got " + shape_str(v));
    dst[i][1] = v[0];
    dst[i][2] = v.size() == 2 ? v[1] : v[0];
    bool ok = i == 2 ? (dst[i][1] >= 0 && dst[i][2] >= 0) : (dst[i][1] > 0 && dst[i][2] > 0);
    if (!ok)
      throw ValueError(std::string("[") + opn + "] " + names[i] + " should be " + (i == 2 ? "non-negative" : "greater than zero") +
                       ", got " + shape_str(v));
  }
  return g;
}

void fold_out(const char* opn, Geo& g, const Shape& input_shape) {
  for (int i = 1; i < 3; ++i) {
    int64_t span = g.d[i] * (g.k[i] - 1) + 1;
    g.out[i] = (g.in[i] + 2 * g.p[i] - span) / g.s[i] + 1;
    if (g.in[i] + 2 * g.p[i] < span || g.out[i] < 1)
      throw ValueError(std::string("[") + opn + "] given input " + shape_str(input_shape) + ", kernel_size (" + std::to_string(g.k[1]) +
                       ", " + std::to_string(g.k[2]) + "), dilation, padding and stride, the calculated number of sliding blocks is "
                       "too small (the dilated kernel is larger than the padded spatial size)");
  }
}

}  // namespace

void k_im2col(Call& c) {
  const Tensor& self = c.inputs[0];
  if (self.dim() != 3 && self.dim() != 4)
    throw ValueError("[im2col] expected a 3D (unbatched) or 4D (batched) input, got shape " + shape_str(self.sizes()));
  Geo g = fold_geo("im2col", c.attrs, 0);
  bool batched = self.dim() == 4;
  int64_t N = batched ? self.sizes()[0] : 1, C = self.sizes()[batched ? 1 : 0];
  g.in[1] = self.sizes()[self.dim() - 2];
  g.in[2] = self.sizes()[self.dim() - 1];
  fold_out("im2col", g, self.sizes());
  DType dt = self.dtype();
  if (!is_floating(dt)) throw TypeError(std::string("[im2col] expected a floating point input, got ") + dtype_name(dt));
  DType cdt = dt == DType::Float64 ? DType::Float64 : DType::Float32;
  int64_t K = g.K(), L = g.L(), I = g.I();
  Tensor x = contig_as(self, cdt);
  Tensor out = empty_tensor(batched ? Shape{N, C * K, L} : Shape{C * K, L}, cdt);
  with_real(cdt, [&](auto tag) {
    using scalar_t = decltype(tag);
    {
      const scalar_t* xp = x.data<scalar_t>();
      scalar_t* op = out.data<scalar_t>();
      parallel_for(N * C * K, std::max<int64_t>(1, 16384 / std::max<int64_t>(L, 1)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) im2col_row(xp + (r / K) * I, g, r % K, 0, L, op + r * L);
      });
    }
  });
  c.outputs = {cdt != dt ? out.to(dt) : out};
}

void k_col2im(Call& c) {
  const Tensor& self = c.inputs[0];
  const Shape& osz = c.attrs[0].list;
  if (osz.size() != 1 && osz.size() != 2)
    throw ValueError("[col2im] output_size must have 1 or 2 elements, got " + shape_str(osz));
  if (self.dim() != 2 && self.dim() != 3)
    throw ValueError("[col2im] expected a 2D (unbatched) or 3D (batched) input, got shape " + shape_str(self.sizes()));
  Geo g = fold_geo("col2im", c.attrs, 1);
  g.in[1] = osz[0];
  g.in[2] = osz.size() == 2 ? osz[1] : osz[0];
  fold_out("col2im", g, self.sizes());
  bool batched = self.dim() == 3;
  int64_t N = batched ? self.sizes()[0] : 1, CK = self.sizes()[batched ? 1 : 0], L = self.sizes()[batched ? 2 : 1];
  int64_t K = g.K(), I = g.I();
  if (CK % K != 0)
    throw ValueError("[col2im] expected size of input's dimension " + std::to_string(batched ? 1 : 0) + " (" + std::to_string(CK) +
                     ") to be divisible by the product of kernel_size (" + std::to_string(K) + "), input shape " + shape_str(self.sizes()));
  if (L != g.L())
    throw ValueError("[col2im] given output_size " + shape_str(osz) + " and the other parameters, expected input's last dimension to be " +
                     std::to_string(g.L()) + " (the number of sliding blocks), got shape " + shape_str(self.sizes()));
  DType dt = self.dtype();
  if (!is_floating(dt)) throw TypeError(std::string("[col2im] expected a floating point input, got ") + dtype_name(dt));
  DType cdt = dt == DType::Float64 ? DType::Float64 : DType::Float32;
  int64_t C = CK / K;
  Tensor x = contig_as(self, cdt);
  Tensor out = zeros(batched ? Shape{N, C, g.in[1], g.in[2]} : Shape{C, g.in[1], g.in[2]}, cdt);
  with_real(cdt, [&](auto tag) {
    using scalar_t = decltype(tag);
    {
      const scalar_t* xp = x.data<scalar_t>();
      scalar_t* op = out.data<scalar_t>();
      parallel_for(N * C, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) col2im_plane(xp + r * K * L, L, g, 0, L, op + r * I);
      });
    }
  });
  c.outputs = {cdt != dt ? out.to(dt) : out};
}

}  // namespace nd
