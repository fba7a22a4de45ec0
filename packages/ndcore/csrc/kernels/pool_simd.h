// pool_simd.h: the vectorised cores of max pooling (forward, with or without indices) and of
// average pooling, used by pool.cpp. See Note [Vectorised max pooling].
//
// Note [Vectorised max pooling]
// A window-by-window loop with data-dependent branches runs at a few cycles per element and
// mispredicts on real data. Instead every loop here runs across output columns, so the compiler
// turns it into compare-and-select vectors (three ISA variants, simd_dispatch.h):
// - values only: the NaN-propagating max of the window's input rows first (elementwise over the
//   row), then per window column j the max with that row read at ow*s + j*d - p. Max is
//   commutative, so the order does not matter.
// - with indices: the window's rows one at a time with j inner, keeping (best, index) per output
//   column and replacing when `v > best || isnan(v)`: the scalar loop's row-major order, so ties
//   keep the first max and the last NaN wins, as in torch's CPU kernel.
// A strided read (column ow*s + o) becomes contiguous once the row is split into its s phases
// (phase r holds columns r, r+s, r+2s, ...): it is phase (o mod s) at ow + floor(o / s).
// Output columns whose window crosses the row's ends (padding, ceil_mode) take a scalar loop with
// the same rule; it starts from the window's first valid element, as torch does.
// Average pooling and its backward use the same rows and phases with sums instead of maxima.
// When windows tile the rows exactly (kernel == stride, no padding, no dilation along W and H),
// output rows are independent of row boundaries: consecutive output rows, across planes too, are
// processed as one long row, so tiny planes (8x8 -> 4x4) still run full-width vectors.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "simd_dispatch.h"

namespace nd {
namespace poolk {

template <typename T>
inline bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// Torch's replacement rule: larger, or NaN (NaN is the largest value and the last one wins).
template <typename T>
inline bool takes(T v, T best) {
  return v > best || is_nan(v);
}

template <typename T>
inline T lowest() {
  if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
  else return std::numeric_limits<T>::lowest();
}

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Everything one max-pooling call needs; dims are (D, H, W), padded with leading 1s.
template <typename T>
struct Job {
  const T* x;
  T* y;
  int64_t* ind;  // null: values only
  int64_t k[3], s[3], p[3], d[3], in[3], out[3];
  int64_t lo, hi;  // output columns whose window lies inside [0, W)
  int64_t nph;     // length of one phase of a W-long row, ceil(W / s)
};

// ---- row passes (the loops that vectorise) ----

template <typename T>
inline void rows_max(T* __restrict t, const T* __restrict a, const T* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) t[i] = takes(b[i], a[i]) ? b[i] : a[i];
}

template <typename T>
inline void rows_max_into(T* __restrict t, const T* __restrict a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) t[i] = takes(a[i], t[i]) ? a[i] : t[i];
}

template <typename T>
inline void copy_n(T* __restrict y, const T* __restrict a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i];
}

// Splits a W-long row into its s phases of `stride` elements: ph[r * stride + i] = row[i * s + r].
template <typename T>
inline void split_phases(const T* __restrict row, T* __restrict ph, int64_t W, int64_t s, int64_t stride) {
  int64_t n = W / s;
  if (s == 1) {
    for (int64_t i = 0; i < W; ++i) ph[i] = row[i];
    return;
  }
  if (s == 2) {  // the common stride: a constant stride lets the compiler use shuffles
    T* __restrict e = ph;
    T* __restrict o = ph + stride;
    for (int64_t i = 0; i < n; ++i) {
      e[i] = row[2 * i];
      o[i] = row[2 * i + 1];
    }
  } else {
    for (int64_t r = 0; r < s; ++r)
      for (int64_t i = 0; i < n; ++i) ph[r * stride + i] = row[i * s + r];
  }
  for (int64_t r = 0; n * s + r < W; ++r) ph[r * stride + n] = row[n * s + r];
}

// One window tap over output columns [0, n): y = max(y, a), b = tap index where a wins.
template <typename T, typename I>
inline void take_tap(T* __restrict y, I* __restrict b, const T* __restrict a, int64_t n, I first, I step) {
  for (int64_t i = 0; i < n; ++i) {
    bool m = takes(a[i], y[i]);
    y[i] = m ? a[i] : y[i];
    b[i] = m ? I(first + I(i) * step) : b[i];
  }
}

template <typename T, typename I>
inline void first_tap(T* __restrict y, I* __restrict b, const T* __restrict a, int64_t n, I first, I step) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = a[i];
    b[i] = I(first + I(i) * step);
  }
}

// dst[i] = b[i] + add + i * step: relative winning offsets back to flat per-plane indices.
template <typename I>
inline void widen(int64_t* __restrict dst, const I* __restrict b, int64_t n, int64_t add, int64_t step) {
  for (int64_t i = 0; i < n; ++i) dst[i] = int64_t(b[i]) + add + i * step;
}

// The scalar rule for the border output column ow over the window's valid rows.
template <typename T>
inline void border_column(const Job<T>& J, const T* const* rows, const int64_t* rbase, int64_t nrows, int64_t ow, T& val,
                          int64_t& idx) {
  int64_t W = J.in[2], w0 = ow * J.s[2] - J.p[2], w1 = std::min(w0 + (J.k[2] - 1) * J.d[2] + 1, W);
  while (w0 < 0) w0 += J.d[2];
  T best = lowest<T>();
  int64_t bi = rbase[0] + w0;
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t w = w0; w < w1; w += J.d[2]) {
      T v = rows[r][w];
      if (takes(v, best)) {
        best = v;
        bi = rbase[r] + w;
      }
    }
  val = best;
  idx = bi;
}

// Calls fn(ow) for the output columns outside the vectorised interior [lo, hi).
template <typename F>
inline void for_border(int64_t OW, int64_t lo, int64_t hi, F&& fn) {
  if (hi <= lo) {
    for (int64_t ow = 0; ow < OW; ++ow) fn(ow);
    return;
  }
  for (int64_t ow = 0; ow < lo; ++ow) fn(ow);
  for (int64_t ow = hi; ow < OW; ++ow) fn(ow);
}

// Output rows [r0, r1) of all planes (row = (plane * OD + od) * OH + oh), any geometry. I holds
// winning offsets relative to the window's first row. The interior passes run over scratch rows
// padded to a multiple of 16 lanes, so the compiler's scalar remainder loop (a compare-and-branch
// per element, mispredicted half the time on real data) never runs.
template <typename T, typename I>
inline void pool_rows(const Job<T>& J, int64_t r0, int64_t r1) {
  const int64_t D = J.in[0], H = J.in[1], W = J.in[2], OD = J.out[0], OH = J.out[1], OW = J.out[2];
  const int64_t plane = D * H * W, lo = J.lo, hi = J.hi, s = J.s[2];
  const int64_t n = hi - lo, npad = (std::max<int64_t>(n, 0) + 15) / 16 * 16, stride = J.nph + 16;
  const bool idx = J.ind != nullptr, inner = n > 0;
  std::vector<T> t(W), ph(s * stride), best(npad);
  std::vector<I> b(npad);
  std::vector<const T*> rows(J.k[0] * J.k[1] + 1);
  std::vector<int64_t> rbase(J.k[0] * J.k[1] + 1);
  // phase and offset of window column j: column ow * s + o is phase (o mod s) at ow + floor(o / s)
  std::vector<int64_t> tap_at(J.k[2]);
  for (int64_t j = 0; j < J.k[2]; ++j) {
    int64_t o = j * J.d[2] - J.p[2], q = floor_div(o, s);
    tap_at[j] = (o - q * s) * stride + q + lo;
  }
  for (int64_t row = r0; row < r1; ++row) {
    int64_t pl = row / (OD * OH), od = row / OH % OD, oh = row % OH;
    const T* xp = J.x + pl * plane;
    T* y = J.y + row * OW;
    int64_t d0 = od * J.s[0] - J.p[0], d1 = std::min(d0 + (J.k[0] - 1) * J.d[0] + 1, D);
    int64_t h0 = oh * J.s[1] - J.p[1], h1 = std::min(h0 + (J.k[1] - 1) * J.d[1] + 1, H);
    while (d0 < 0) d0 += J.d[0];
    while (h0 < 0) h0 += J.d[1];
    int64_t nr = 0;
    rbase[0] = (d0 * H + h0) * W;  // the scalar loop's index when a window holds no element
    for (int64_t id = d0; id < d1; id += J.d[0])
      for (int64_t ih = h0; ih < h1; ih += J.d[1]) {
        rbase[nr] = (id * H + ih) * W;
        rows[nr] = xp + rbase[nr];
        ++nr;
      }
    if (nr == 0) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t w0 = ow * s - J.p[2];
        while (w0 < 0) w0 += J.d[2];
        y[ow] = lowest<T>();
        if (idx) J.ind[row * OW + ow] = rbase[0] + w0;
      }
      continue;
    }
    if (!idx) {
      const T* src = rows[0];
      if (nr > 1) {
        rows_max(t.data(), rows[0], rows[1], W);
        for (int64_t r = 2; r < nr; ++r) rows_max_into(t.data(), rows[r], W);
        src = t.data();
      }
      if (inner) {
        split_phases(src, ph.data(), W, s, stride);
        copy_n(best.data(), ph.data() + tap_at[0], npad);
        for (int64_t j = 1; j < J.k[2]; ++j) rows_max_into(best.data(), ph.data() + tap_at[j], npad);
        copy_n(y + lo, best.data(), n);
      }
      const T* one[1] = {src};
      int64_t zero[1] = {0}, unused;
      for_border(OW, lo, hi, [&](int64_t ow) { border_column(J, one, zero, 1, ow, y[ow], unused); });
      continue;
    }
    int64_t* ind = J.ind + row * OW;
    if (inner) {
      for (int64_t r = 0; r < nr; ++r) {
        split_phases(rows[r], ph.data(), W, s, stride);
        for (int64_t j = 0; j < J.k[2]; ++j) {
          // column ow * s + o of row r has flat index rbase[r] + o + ow * s
          I first = I(rbase[r] - rbase[0] + j * J.d[2] - J.p[2] + lo * s);
          if (r == 0 && j == 0) first_tap(best.data(), b.data(), ph.data() + tap_at[j], npad, first, I(s));
          else take_tap(best.data(), b.data(), ph.data() + tap_at[j], npad, first, I(s));
        }
      }
      copy_n(y + lo, best.data(), n);
      widen(ind + lo, b.data(), n, rbase[0], 0);
    }
    for_border(OW, lo, hi, [&](int64_t ow) { border_column(J, rows.data(), rbase.data(), nr, ow, y[ow], ind[ow]); });
  }
}

// True when windows tile D == 1 planes exactly along H and W (kernel == stride, no padding or
// dilation, sizes multiples of the stride): output rows then need no border logic.
template <typename T>
inline bool tiles(const Job<T>& J) {
  return J.in[0] == 1 && J.k[0] == 1 && J.k[1] == J.s[1] && J.k[2] == J.s[2] && J.p[1] == 0 && J.p[2] == 0 &&
         (J.k[1] == 1 || J.d[1] == 1) && (J.k[2] == 1 || J.d[2] == 1) && J.in[1] == J.out[1] * J.s[1] &&
         J.in[2] == J.out[2] * J.s[2];
}

// Bands [q0, q1) of a tiled job (band q = the kh input rows of output row q, over all planes),
// in chunks that stay in L1 while consecutive output rows are treated as one long row.
template <typename T>
inline void pool_tiled(const Job<T>& J, int64_t q0, int64_t q1) {
  const int64_t W = J.in[2], OW = J.out[2], OH = J.out[1], kh = J.k[1], kw = J.k[2];
  const int64_t chunk = std::max<int64_t>(1, 4096 / W);
  std::vector<T> t(chunk * W), ph(chunk * W);
  std::vector<int32_t> b(chunk * OW);
  for (int64_t c0 = q0; c0 < q1; c0 += chunk) {
    int64_t R = std::min(chunk, q1 - c0), n = R * OW;
    T* y = J.y + c0 * OW;
    if (!J.ind) {
      for (int64_t r = 0; r < R; ++r) {
        const T* band = J.x + (c0 + r) * kh * W;
        if (kh == 1) copy_n(t.data() + r * W, band, W);
        else rows_max(t.data() + r * W, band, band + W, W);
        for (int64_t i = 2; i < kh; ++i) rows_max_into(t.data() + r * W, band + i * W, W);
      }
      if (kw == 1) {
        copy_n(y, t.data(), n);
        continue;
      }
      split_phases(t.data(), ph.data(), n * kw, kw, n);
      rows_max(y, ph.data(), ph.data() + n, n);
      for (int64_t j = 2; j < kw; ++j) rows_max_into(y, ph.data() + j * n, n);
      continue;
    }
    // with indices: taps in row-major window order; b holds the winning tap's offset i * W + j
    for (int64_t i = 0; i < kh; ++i) {
      for (int64_t r = 0; r < R; ++r) split_phases(J.x + ((c0 + r) * kh + i) * W, ph.data() + r * OW, W, kw, n);
      for (int64_t j = 0; j < kw; ++j) {
        if (i == 0 && j == 0) first_tap(y, b.data(), ph.data(), n, int32_t(0), int32_t(0));
        else take_tap(y, b.data(), ph.data() + j * n, n, int32_t(i * W + j), int32_t(0));
      }
    }
    for (int64_t r = 0; r < R; ++r)
      widen(J.ind + (c0 + r) * OW, b.data() + r * OW, OW, (c0 + r) % OH * kh * W, kw);
  }
}

template <typename T, typename I>
ND_SIMD_KERNEL(PoolRows, (const Job<T>& J, int64_t r0, int64_t r1), { pool_rows<T, I>(J, r0, r1); })

template <typename T>
ND_SIMD_KERNEL(PoolTiled, (const Job<T>& J, int64_t q0, int64_t q1), { pool_tiled<T>(J, q0, q1); })

// ---- average pooling: the same row scheme with sums (Note [Vectorised max pooling]) ----

template <typename T>
struct AvgJob {
  const T* x;
  T* y;
  int64_t k[3], s[3], p[3], in[3], out[3];
  int64_t lo, hi, nph;
  bool count_include_pad;
  int64_t divisor_override;  // 0: none
};

template <typename T>
inline void rows_add_into(T* __restrict t, const T* __restrict a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) t[i] += a[i];
}

template <typename T>
inline void div_n(T* __restrict y, const T* __restrict a, int64_t n, T dv) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] / dv;
}

// Window of output o along one dim: [a, b) clipped to the input; `pool` counts padding too.
inline void avg_span(int64_t o, int64_t k, int64_t s, int64_t p, int64_t in, int64_t& a, int64_t& b, int64_t& pool) {
  a = o * s - p;
  b = std::min(a + k, in + p);
  pool = b - a;
  a = std::max<int64_t>(a, 0);
  b = std::min(b, in);
}

// Output rows [r0, r1): the window rows' sum first (elementwise), then the columns' sum per
// output column, divided as torch divides (sum / divisor, in T).
template <typename T>
inline void avg_rows(const AvgJob<T>& J, int64_t r0, int64_t r1) {
  const int64_t D = J.in[0], H = J.in[1], W = J.in[2], OD = J.out[0], OH = J.out[1], OW = J.out[2];
  const int64_t plane = D * H * W, lo = J.lo, hi = J.hi, s = J.s[2], kw = J.k[2];
  const int64_t n = hi - lo, npad = (std::max<int64_t>(n, 0) + 15) / 16 * 16, stride = J.nph + 16;
  std::vector<T> t(W), ph(s * stride), acc(npad);
  std::vector<int64_t> tap_at(kw);
  for (int64_t j = 0; j < kw; ++j) {
    int64_t o = j - J.p[2], q = floor_div(o, s);
    tap_at[j] = (o - q * s) * stride + q + lo;
  }
  for (int64_t row = r0; row < r1; ++row) {
    int64_t pl = row / (OD * OH), od = row / OH % OD, oh = row % OH;
    int64_t d0, d1, pd, h0, h1, phh;
    avg_span(od, J.k[0], J.s[0], J.p[0], D, d0, d1, pd);
    avg_span(oh, J.k[1], J.s[1], J.p[1], H, h0, h1, phh);
    T* y = J.y + row * OW;
    int64_t real_dh = std::max<int64_t>(d1 - d0, 0) * std::max<int64_t>(h1 - h0, 0);
    if (real_dh == 0) {
      for (int64_t ow = 0; ow < OW; ++ow) y[ow] = T(0);
      continue;
    }
    const T* xp = J.x + pl * plane;
    bool first = true;
    for (int64_t id = d0; id < d1; ++id)
      for (int64_t ih = h0; ih < h1; ++ih) {
        if (first) copy_n(t.data(), xp + (id * H + ih) * W, W);
        else rows_add_into(t.data(), xp + (id * H + ih) * W, W);
        first = false;
      }
    int64_t div_dh = J.count_include_pad ? pd * phh : real_dh;
    if (n > 0) {
      split_phases(t.data(), ph.data(), W, s, stride);
      copy_n(acc.data(), ph.data() + tap_at[0], npad);
      for (int64_t j = 1; j < kw; ++j) rows_add_into(acc.data(), ph.data() + tap_at[j], npad);
      div_n(y + lo, acc.data(), n, T(J.divisor_override ? J.divisor_override : div_dh * kw));
    }
    for_border(OW, lo, hi, [&](int64_t ow) {
      int64_t a, b, pw;
      avg_span(ow, kw, s, J.p[2], W, a, b, pw);
      if (b <= a) {
        y[ow] = T(0);
        return;
      }
      T sum = 0;
      for (int64_t w = a; w < b; ++w) sum += t[w];
      int64_t dv = J.divisor_override ? J.divisor_override : (J.count_include_pad ? div_dh * pw : real_dh * (b - a));
      y[ow] = sum / T(dv);
    });
  }
}

template <typename T>
ND_SIMD_KERNEL(AvgRows, (const AvgJob<T>& J, int64_t r0, int64_t r1), { avg_rows<T>(J, r0, r1); })

// Inverse of split_phases: row[i * s + r] = ph[r * stride + i].
template <typename T>
inline void merge_phases(const T* __restrict ph, T* __restrict row, int64_t W, int64_t s, int64_t stride) {
  if (s == 1) {
    for (int64_t i = 0; i < W; ++i) row[i] = ph[i];
    return;
  }
  int64_t n = W / s;
  if (s == 2) {
    const T* __restrict e = ph;
    const T* __restrict o = ph + stride;
    for (int64_t i = 0; i < n; ++i) {
      row[2 * i] = e[i];
      row[2 * i + 1] = o[i];
    }
  } else {
    for (int64_t r = 0; r < s; ++r)
      for (int64_t i = 0; i < n; ++i) row[i * s + r] = ph[r * stride + i];
  }
  for (int64_t r = 0; n * s + r < W; ++r) row[n * s + r] = ph[r * stride + n];
}

// Backward of avg_rows over whole planes [p0, p1) (J.x: grad_output, J.y: grad_input): each
// output row's share g / divisor is spread over one input row (through the phases, so the adds
// are contiguous), which is then added to every input row of its window. A plane belongs to one
// thread: windows overlap across output rows.
template <typename T>
inline void avg_planes_backward(const AvgJob<T>& J, int64_t p0, int64_t p1) {
  const int64_t D = J.in[0], H = J.in[1], W = J.in[2], OD = J.out[0], OH = J.out[1], OW = J.out[2];
  const int64_t plane = D * H * W, lo = J.lo, hi = J.hi, s = J.s[2], kw = J.k[2];
  const int64_t n = hi - lo, npad = (std::max<int64_t>(n, 0) + 15) / 16 * 16, stride = J.nph + 16;
  std::vector<T> t(W), ph(s * stride), v(npad);
  std::vector<int64_t> tap_at(kw);
  for (int64_t j = 0; j < kw; ++j) {
    int64_t o = j - J.p[2], q = floor_div(o, s);
    tap_at[j] = (o - q * s) * stride + q + lo;
  }
  for (int64_t pl = p0; pl < p1; ++pl) {
    T* gi = J.y + pl * plane;
    std::fill(gi, gi + plane, T(0));
    for (int64_t od = 0; od < OD; ++od)
      for (int64_t oh = 0; oh < OH; ++oh) {
        int64_t d0, d1, pd, h0, h1, phh;
        avg_span(od, J.k[0], J.s[0], J.p[0], D, d0, d1, pd);
        avg_span(oh, J.k[1], J.s[1], J.p[1], H, h0, h1, phh);
        int64_t real_dh = std::max<int64_t>(d1 - d0, 0) * std::max<int64_t>(h1 - h0, 0);
        if (real_dh == 0) continue;
        const T* g = J.x + ((pl * OD + od) * OH + oh) * OW;
        int64_t div_dh = J.count_include_pad ? pd * phh : real_dh;
        if (n > 0) {
          div_n(v.data(), g + lo, n, T(J.divisor_override ? J.divisor_override : div_dh * kw));
          std::fill(v.data() + n, v.data() + npad, T(0));  // padded lanes must add nothing
          std::fill(ph.begin(), ph.end(), T(0));
          for (int64_t j = 0; j < kw; ++j) rows_add_into(ph.data() + tap_at[j], v.data(), npad);
          merge_phases(ph.data(), t.data(), W, s, stride);
        } else {
          std::fill(t.begin(), t.end(), T(0));
        }
        for_border(OW, lo, hi, [&](int64_t ow) {
          int64_t a, b, pw;
          avg_span(ow, kw, s, J.p[2], W, a, b, pw);
          if (b <= a) return;
          int64_t dv = J.divisor_override ? J.divisor_override : (J.count_include_pad ? div_dh * pw : real_dh * (b - a));
          T share = g[ow] / T(dv);
          for (int64_t w = a; w < b; ++w) t[w] += share;
        });
        for (int64_t id = d0; id < d1; ++id)
          for (int64_t ih = h0; ih < h1; ++ih) rows_add_into(gi + (id * H + ih) * W, t.data(), W);
      }
  }
}

template <typename T>
ND_SIMD_KERNEL(AvgPlanesBackward, (const AvgJob<T>& J, int64_t p0, int64_t p1), { avg_planes_backward<T>(J, p0, p1); })

// Integer dtypes are rare here: only their baseline variant is compiled.
template <typename K, typename T, typename... A>
inline void run(A&&... args) {
  if constexpr (std::is_floating_point_v<T>) simd_run<K>(static_cast<A&&>(args)...);
  else K::base(static_cast<A&&>(args)...);
}

}  // namespace poolk
}  // namespace nd
