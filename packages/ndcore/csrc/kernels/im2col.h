// im2col.h owns the column-matrix geometry shared by convolution (conv.cpp) and the
// im2col/col2im ops (spatial.cpp): the padded-to-3-D window geometry, the walk over one kernel
// offset's positions, and the row copy and its adjoint. See Note [Convolution as three GEMM
// patterns] in conv.cpp.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace nd {
namespace cols {

struct Geo {
  int dims = 0;
  int64_t k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0}, d[3] = {1, 1, 1};
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};  // big and small spatial sizes
  int64_t K() const { return k[0] * k[1] * k[2]; }
  int64_t L() const { return out[0] * out[1] * out[2]; }
  int64_t I() const { return in[0] * in[1] * in[2]; }
  bool pointwise() const {
    for (int i = 0; i < 3; ++i)
      if (k[i] != 1 || s[i] != 1 || p[i] != 0 || in[i] != out[i]) return false;
    return true;
  }
};

// Walks the column positions [l0, l1) of kernel offset `kidx` as runs along the last dim:
// fn(dst_pos, src_offset_of_run_start_or_-1, iw0, lo, hi, n) where positions [lo, hi) of the run
// (relative to its start) read the input row at iw = (ow * s + iw0); others are padding.
template <typename F>
void walk_row(const Geo& g, int64_t kidx, int64_t l0, int64_t l1, F&& fn) {
  int64_t kw = kidx % g.k[2], kh = (kidx / g.k[2]) % g.k[1], kd = kidx / (g.k[2] * g.k[1]);
  int64_t o1 = g.out[1], o2 = g.out[2], s = g.s[2];
  int64_t iw0 = kw * g.d[2] - g.p[2];
  // valid ow: 0 <= ow * s + iw0 < in  ->  ow in [ceil(-iw0 / s), ceil((in - iw0) / s))
  int64_t vlo = iw0 >= 0 ? 0 : (-iw0 + s - 1) / s;
  int64_t vhi = g.in[2] - iw0 <= 0 ? 0 : (g.in[2] - iw0 + s - 1) / s;
  // one division to find the start; runs then advance along (od, oh) without dividing
  int64_t od = l0 / (o1 * o2), oh = (l0 / o2) % o1, ow0 = l0 % o2;
  for (int64_t l = l0; l < l1;) {
    int64_t ow1 = std::min(o2, ow0 + (l1 - l));
    int64_t n = ow1 - ow0;
    int64_t id = od * g.s[0] - g.p[0] + kd * g.d[0], ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
    if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
      fn(l - l0, int64_t(-1), ow0, int64_t(0), int64_t(0), n);
    } else {
      int64_t lo = std::clamp(vlo, ow0, ow1) - ow0;
      int64_t hi = std::clamp(vhi, ow0 + lo, ow1) - ow0;
      fn(l - l0, (id * g.in[1] + ih) * g.in[2], ow0, lo, hi, n);
    }
    l += n;
    ow0 = 0;
    if (++oh == o1) {
      oh = 0;
      ++od;
    }
  }
}

// Copies/zeroes n elements with fixed-size memcpy/memset steps the compiler inlines: im2col runs
// are often a few elements long (one output row of a small feature map), where a libc call per
// run costs more than the copy.
template <typename T>
inline void copy_run(T* __restrict__ d, const T* __restrict__ s, int64_t n) {
  constexpr int64_t V = 32 / sizeof(T);
  if (n >= 8 * V) {
    std::memcpy(d, s, sizeof(T) * n);
    return;
  }
  int64_t j = 0;
  for (; j + V <= n; j += V) std::memcpy(d + j, s + j, sizeof(T) * V);
  for (int64_t step = V / 2; step >= 1; step /= 2)
    if (n - j >= step) {
      std::memcpy(d + j, s + j, sizeof(T) * step);
      j += step;
    }
}

template <typename T>
inline void zero_run(T* d, int64_t n) {
  constexpr int64_t V = 32 / sizeof(T);
  if (n >= 8 * V) {
    std::memset(d, 0, sizeof(T) * n);
    return;
  }
  int64_t j = 0;
  for (; j + V <= n; j += V) std::memset(d + j, 0, sizeof(T) * V);
  for (int64_t step = V / 2; step >= 1; step /= 2)
    if (n - j >= step) {
      std::memset(d + j, 0, sizeof(T) * step);
      j += step;
    }
}

// d[j] = s[j * stride]. Stride 2 (resnet's downsampling convs) gets its own loop: with the
// stride known the compiler vectorises it with shuffles, which it cannot for a variable stride.
template <typename T>
inline void gather_run(T* __restrict__ d, const T* __restrict__ s, int64_t stride, int64_t n) {
  if (stride == 2) {
    for (int64_t j = 0; j < n; ++j) d[j] = s[2 * j];
    return;
  }
  for (int64_t j = 0; j < n; ++j) d[j] = s[j * stride];
}

// One row of the column matrix: kernel offset kidx of one channel plane, positions [l0, l1).
template <typename T>
void im2col_row(const T* plane, const Geo& g, int64_t kidx, int64_t l0, int64_t l1, T* dst) {
  int64_t kw = kidx % g.k[2], s = g.s[2], iw0 = kw * g.d[2] - g.p[2];
  walk_row(g, kidx, l0, l1, [&](int64_t pos, int64_t src, int64_t ow0, int64_t lo, int64_t hi, int64_t n) {
    T* o = dst + pos;
    if (src < 0) {
      zero_run(o, n);
      return;
    }
    const T* row = plane + src;
    zero_run(o, lo);
    if (s == 1) copy_run(o + lo, row + ow0 + lo + iw0, hi - lo);
    else gather_run(o + lo, row + ow0 * s + lo * s + iw0, s, hi - lo);
    zero_run(o + hi, n - hi);
  });
}

// Adds one channel's K column rows (row stride ld, positions [l0, l1)) back into its plane.
template <typename T>
void col2im_plane(const T* col, int64_t ld, const Geo& g, int64_t l0, int64_t l1, T* plane) {
  int64_t K = g.K(), s = g.s[2];
  for (int64_t kidx = 0; kidx < K; ++kidx) {
    const T* src = col + kidx * ld;
    int64_t kw = kidx % g.k[2], iw0 = kw * g.d[2] - g.p[2];
    walk_row(g, kidx, l0, l1, [&](int64_t pos, int64_t dst, int64_t ow0, int64_t lo, int64_t hi, int64_t n) {
      if (dst < 0) return;
      T* row = plane + dst;
      const T* c = src + pos;
      if (s == 1) {
        T* r = row + ow0 + iw0;
        for (int64_t j = lo; j < hi; ++j) r[j] += c[j];
      } else {
        for (int64_t j = lo; j < hi; ++j) row[(ow0 + j) * s + iw0] += c[j];
      }
    });
  }
}

// 2-D fast path (no depth dim, whole planes): the runs of one kernel offset are the output rows,
// and their valid column range [vlo, vhi) is the same for every row, so it is computed once per
// offset instead of once per run. `is_2d` says whether a geometry qualifies.
inline bool is_2d(const Geo& g) { return g.in[0] == 1 && g.out[0] == 1 && g.k[0] == 1; }

struct Span2d {
  int64_t iw0, vlo, vhi;
};

inline Span2d span_2d(const Geo& g, int64_t kw) {
  int64_t s = g.s[2], iw0 = kw * g.d[2] - g.p[2], o2 = g.out[2];
  int64_t vlo = iw0 >= 0 ? 0 : (-iw0 + s - 1) / s;
  int64_t vhi = g.in[2] - iw0 <= 0 ? 0 : (g.in[2] - iw0 + s - 1) / s;
  vlo = std::min(vlo, o2);
  vhi = std::clamp(vhi, vlo, o2);
  return {iw0, vlo, vhi};
}

// All K column rows of one plane (row stride ld), all L positions.
template <typename T>
void im2col_plane2d(const T* plane, const Geo& g, T* col, int64_t ld) {
  int64_t o1 = g.out[1], o2 = g.out[2], s = g.s[2];
  for (int64_t kh = 0; kh < g.k[1]; ++kh)
    for (int64_t kw = 0; kw < g.k[2]; ++kw) {
      T* dst = col + (kh * g.k[2] + kw) * ld;
      Span2d sp = span_2d(g, kw);
      for (int64_t oh = 0; oh < o1; ++oh) {
        T* o = dst + oh * o2;
        int64_t ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
        if (ih < 0 || ih >= g.in[1]) {
          zero_run(o, o2);
          continue;
        }
        const T* row = plane + ih * g.in[2] + sp.iw0;
        zero_run(o, sp.vlo);
        if (s == 1) copy_run(o + sp.vlo, row + sp.vlo, sp.vhi - sp.vlo);
        else gather_run(o + sp.vlo, row + sp.vlo * s, s, sp.vhi - sp.vlo);
        zero_run(o + sp.vhi, o2 - sp.vhi);
      }
    }
}

// The adjoint of im2col_plane2d: adds the K column rows back into the plane.
template <typename T>
void col2im_plane2d(const T* col, int64_t ld, const Geo& g, T* plane) {
  int64_t o1 = g.out[1], o2 = g.out[2], s = g.s[2];
  for (int64_t kh = 0; kh < g.k[1]; ++kh)
    for (int64_t kw = 0; kw < g.k[2]; ++kw) {
      const T* src = col + (kh * g.k[2] + kw) * ld;
      Span2d sp = span_2d(g, kw);
      for (int64_t oh = 0; oh < o1; ++oh) {
        int64_t ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
        if (ih < 0 || ih >= g.in[1]) continue;
        T* __restrict__ row = plane + ih * g.in[2] + sp.iw0;
        const T* __restrict__ c = src + oh * o2;
        if (s == 1) {
          for (int64_t j = sp.vlo; j < sp.vhi; ++j) row[j] += c[j];
        } else {
          for (int64_t j = sp.vlo; j < sp.vhi; ++j) row[j * s] += c[j];
        }
      }
    }
}

}  // namespace cols
}  // namespace nd
