// Loss kernels, forward and backward: nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits
// and CTC (alpha-beta recursion in log space). Reductions sum in double over fixed blocks, so
// results do not depend on the thread count.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "loops.h"

namespace nd {
namespace {

template <typename T> using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

enum class Red { None, Mean, Sum };
Red reduction_of(const Value& v, const char* op) {
  const std::string& s = v.s;
  if (s == "none") return Red::None;
  if (s == "mean") return Red::Mean;
  if (s == "sum") return Red::Sum;
  throw ValueError(std::string("[") + op + "] reduction must be 'none', 'mean' or 'sum', got '" + s + "'");
}

void require_float(const Tensor& t, const char* op, const char* what) {
  if (!is_floating(t.dtype()))
    throw TypeError(std::string("[") + op + "] expected a floating point " + what + ", got " + dtype_name(t.dtype()));
}

// Deterministic parallel sum of f(i) over [0, n) in double.
template <typename F> double block_sum(int64_t n, F&& f) {
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(256, n / 4096));
  std::vector<double> part(blocks, 0.0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t i0 = n * b / blocks, i1 = n * (b + 1) / blocks;
      double s = 0;
      for (int64_t i = i0; i < i1; ++i) s += (double)f(i);
      part[b] = s;
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// A tensor of `shape` in `dt`, contiguous: `t` broadcast (weights) or a ones tensor when undefined.
Tensor dense_like(const Tensor& t, const Shape& shape, DType dt, const char* op, const char* what) {
  if (!t.defined()) return Tensor();
  try {
    broadcast_shapes(t.sizes(), shape, op);
  } catch (const ValueError&) {
    throw ValueError(std::string("[") + op + "] " + what + " of shape " + shape_str(t.sizes()) +
                     " cannot be broadcast to the input shape " + shape_str(shape));
  }
  Tensor c = cast_to(t, dt);
  if (c.sizes() != shape) c = expand(c, shape);
  return c.contiguous();
}

// Elementwise loss: writes `f(i)` per element (reduction none) or reduces it to a 0-d tensor.
template <typename T, typename F> Tensor pointwise_reduce(const Shape& shape, Red red, F&& f) {
  const int64_t n = numel_of(shape);
  if (red == Red::None) {
    Tensor out = empty_tensor(shape, dtype_of<T>::value);
    T* o = out.data<T>();
    parallel_for(n, kGrainExpensive, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) o[i] = T(f(i));
    });
    return out;
  }
  double s = block_sum(n, f);
  if (red == Red::Mean) s = n ? s / (double)n : std::numeric_limits<double>::quiet_NaN();
  Tensor out = empty_tensor({}, dtype_of<T>::value);
  *out.data<T>() = T((acc_t<T>)s);
  return out;
}

// grad_output of a pointwise loss as a per-element factor g(i) (already divided by n for mean).
struct GradOf {
  const char* base = nullptr;
  DType dt;
  bool scalar = true;
  double value = 0;
};
GradOf grad_of(const Tensor& go, Red red, const Shape& shape, const char* op) {
  GradOf g;
  const int64_t n = numel_of(shape);
  if (red == Red::None) {
    if (go.sizes() != shape)
      throw ValueError(std::string("[") + op + "] grad_output of shape " + shape_str(go.sizes()) + " expected, for reduction 'none', to be " +
                       shape_str(shape));
    g.scalar = false;
    return g;
  }
  if (go.numel() != 1) throw ValueError(std::string("[") + op + "] expected a scalar grad_output, got shape " + shape_str(go.sizes()));
  g.value = go.item_double() / (red == Red::Mean ? (double)std::max<int64_t>(n, 1) : 1.0);
  return g;
}

}  // namespace

// ---- nll_loss ----------------------------------------------------------------------------------
namespace {
struct NllLayout {
  int64_t N = 1, C = 1, S = 1;
  Shape out_shape;  // reduction 'none'
};
NllLayout nll_layout(const Tensor& x, const Tensor& target, const char* op) {
  NllLayout l;
  if (is_floating(target.dtype()) || target.dtype() == DType::Bool)
    throw TypeError(std::string("[") + op + "] expected an integer (class index) target, got " + dtype_name(target.dtype()));
  if (x.dim() == 1) {
    l.C = x.sizes()[0];
    if (target.dim() != 0)
      throw ValueError(std::string("[") + op + "] expected a 0-D target for a 1-D input of shape " + shape_str(x.sizes()) + ", got shape " +
                       shape_str(target.sizes()));
    return l;
  }
  if (x.dim() < 1)
    throw ValueError(std::string("[") + op + "] expected an input of shape (C,), (N, C) or (N, C, d1, ...), got " + shape_str(x.sizes()));
  l.N = x.sizes()[0];
  l.C = x.sizes()[1];
  Shape expect{l.N};
  for (int64_t d = 2; d < x.dim(); ++d) {
    l.S *= x.sizes()[d];
    expect.push_back(x.sizes()[d]);
  }
  if (target.sizes() != expect)
    throw ValueError(std::string("[") + op + "] expected target of shape " + shape_str(expect) + " for input of shape " +
                     shape_str(x.sizes()) + ", got " + shape_str(target.sizes()));
  l.out_shape = expect;
  return l;
}

// Class of element i (n*S + s), checked; -1 when ignored.
struct Targets {
  std::vector<int64_t> cls;
};
Targets load_targets(const Tensor& target, int64_t C, int64_t ignore_index, const char* op) {
  Tensor t = cast_to(target, DType::Int64).contiguous();
  const int64_t* p = t.data<int64_t>();
  Targets r;
  r.cls.assign(p, p + t.numel());
  for (auto& v : r.cls) {
    if (v == ignore_index) {
      v = -1;
    } else if (v < 0 || v >= C) {
      throw IndexError(std::string("[") + op + "] target " + std::to_string(v) + " is out of bounds for " + std::to_string(C) + " classes");
    }
  }
  return r;
}
}  // namespace

void k_nll_loss(Call& c) {
  const char* op = "nll_loss";
  const Tensor &self = c.inputs[0], &target = c.inputs[1], &weight = c.inputs[2];
  require_float(self, op, "input");
  const Red red = reduction_of(c.attrs[0], op);
  const int64_t ignore = c.attrs[1].i;
  const NllLayout l = nll_layout(self, target, op);
  if (weight.defined() && weight.numel() != l.C)
    throw ValueError(std::string("[") + op + "] expected weight with " + std::to_string(l.C) + " elements (one per class), got shape " +
                     shape_str(weight.sizes()));
  const Targets tg = load_targets(target, l.C, ignore, op);
  Tensor x = self.contiguous();
  Tensor out;
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    const T* xd = x.data<T>();
    Tensor wt = weight.defined() ? cast_to(weight, DType::Float64).contiguous() : Tensor();
    const double* wd = wt.defined() ? wt.data<double>() : nullptr;
    const int64_t n = l.N * l.S;
    auto elem = [&](int64_t i) -> double {
      const int64_t k = tg.cls[i];
      if (k < 0) return 0.0;
      const int64_t nn = i / l.S, s = i % l.S;
      return -(wd ? wd[k] : 1.0) * (double)(acc_t<T>)xd[(nn * l.C + k) * l.S + s];
    };
    if (red == Red::None) {
      out = empty_tensor(l.out_shape, x.dtype());
      T* o = out.data<T>();
      parallel_for(n, kGrainCheap, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) o[i] = T((acc_t<T>)elem(i));
      });
      return;
    }
    double s = block_sum(n, elem);
    if (red == Red::Mean) {
      double tw = block_sum(n, [&](int64_t i) { return tg.cls[i] < 0 ? 0.0 : (wd ? wd[tg.cls[i]] : 1.0); });
      s = s / tw;  // 0/0 -> NaN when every target is ignored, as torch
    }
    out = empty_tensor({}, x.dtype());
    *out.data<T>() = T((acc_t<T>)s);
  });
  set_outputs(c, {out});
}

void k_nll_loss_backward(Call& c) {
  const char* op = "nll_loss_backward";
  const Tensor &go = c.inputs[0], &self = c.inputs[1], &target = c.inputs[2], &weight = c.inputs[3];
  const Red red = reduction_of(c.attrs[0], op);
  const int64_t ignore = c.attrs[1].i;
  const NllLayout l = nll_layout(self, target, op);
  const Targets tg = load_targets(target, l.C, ignore, op);
  const int64_t n = l.N * l.S;
  Tensor gi = empty_tensor(self.sizes(), self.dtype());
  std::memset(gi.data_ptr(), 0, gi.numel() * gi.itemsize());
  Tensor wt = weight.defined() ? cast_to(weight, DType::Float64).contiguous() : Tensor();
  const double* wd = wt.defined() ? wt.data<double>() : nullptr;
  double scale = 1.0;
  Tensor g = cast_to(go, DType::Float64).contiguous();
  if (red == Red::None) {
    if (go.numel() != n)
      throw ValueError(std::string("[") + op + "] grad_output of shape " + shape_str(go.sizes()) + " does not match the loss shape " +
                       shape_str(l.out_shape));
  } else {
    if (go.numel() != 1) throw ValueError(std::string("[") + op + "] expected a scalar grad_output, got shape " + shape_str(go.sizes()));
    scale = *g.data<double>();
    if (red == Red::Mean) scale /= block_sum(n, [&](int64_t i) { return tg.cls[i] < 0 ? 0.0 : (wd ? wd[tg.cls[i]] : 1.0); });
  }
  const double* gd = g.data<double>();
  ND_DISPATCH_FLOAT(gi.dtype(), op, [&] {
    using T = scalar_t;
    T* o = gi.data<T>();
    parallel_for(n, kGrainCheap, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t k = tg.cls[i];
        if (k < 0) continue;
        const double gv = red == Red::None ? gd[i] : scale;
        o[((i / l.S) * l.C + k) * l.S + i % l.S] = T((acc_t<T>)(-(wd ? wd[k] : 1.0) * gv));
      }
    });
  });
  set_outputs(c, {gi});
}

// ---- binary cross entropy -------------------------------------------------------------------------
namespace {
struct BceArgs {
  Tensor x, t, w, pw;
};
BceArgs bce_args(const Call& c, int first, bool with_pos_weight, const char* op) {
  const Tensor &self = c.inputs[first], &target = c.inputs[first + 1];
  require_float(self, op, "input");
  if (target.sizes() != self.sizes())
    throw ValueError(std::string("[") + op + "] using a target size " + shape_str(target.sizes()) + " that is different to the input size " +
                     shape_str(self.sizes()) + " is not supported");
  BceArgs a;
  a.x = self.contiguous();
  a.t = cast_to(target, self.dtype()).contiguous();
  a.w = dense_like(c.inputs[first + 2], self.sizes(), self.dtype(), op, "weight");
  if (with_pos_weight) a.pw = dense_like(c.inputs[first + 3], self.sizes(), self.dtype(), op, "pos_weight");
  return a;
}
template <typename T> const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
}  // namespace

void k_binary_cross_entropy(Call& c) {
  const char* op = "binary_cross_entropy";
  const BceArgs a = bce_args(c, 0, false, op);
  const Red red = reduction_of(c.attrs[0], op);
  Tensor out;
  ND_DISPATCH_FLOAT(a.x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const T *x = a.x.data<T>(), *t = a.t.data<T>(), *w = ptr_or_null<T>(a.w);
    const int64_t n = a.x.numel();
    for (int64_t i = 0; i < n; ++i) {
      const C v = C(x[i]);
      if (!(v >= C(0) && v <= C(1)))
        throw ValueError(std::string("[") + op + "] all elements of input should be between 0 and 1, got " + std::to_string((double)v));
    }
    out = pointwise_reduce<T>(a.x.sizes(), red, [&](int64_t i) {
      const C v = C(x[i]), y = C(t[i]);
      const C l = -(y * std::max(std::log(v), C(-100)) + (C(1) - y) * std::max(std::log1p(-v), C(-100)));
      return w ? l * C(w[i]) : l;
    });
  });
  set_outputs(c, {out});
}

void k_binary_cross_entropy_backward(Call& c) {
  const char* op = "binary_cross_entropy_backward";
  const Tensor& go = c.inputs[0];
  const BceArgs a = bce_args(c, 1, false, op);
  const Red red = reduction_of(c.attrs[0], op);
  const GradOf gf = grad_of(go, red, a.x.sizes(), op);
  Tensor g = gf.scalar ? Tensor() : cast_to(go, a.x.dtype()).contiguous();
  Tensor gi = empty_tensor(a.x.sizes(), a.x.dtype());
  ND_DISPATCH_FLOAT(a.x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const T *x = a.x.data<T>(), *t = a.t.data<T>(), *w = ptr_or_null<T>(a.w), *gd = ptr_or_null<T>(g);
    T* o = gi.data<T>();
    const C gs = C(gf.value);
    parallel_for(a.x.numel(), kGrainCheap, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const C v = C(x[i]);
        // torch clamps the denominator so x in {0, 1} gives a large finite gradient
        C r = (v - C(t[i])) / std::max((C(1) - v) * v, C(1e-12)) * (gd ? C(gd[i]) : gs);
        o[i] = T(w ? r * C(w[i]) : r);
      }
    });
  });
  set_outputs(c, {gi});
}

namespace {
// softplus(-x) = log(1 + exp(-x)), stable for large |x|
template <typename C> inline C softplus_neg(C x) { return std::max(-x, C(0)) + std::log1p(std::exp(-std::fabs(x))); }
}  // namespace

void k_binary_cross_entropy_with_logits(Call& c) {
  const char* op = "binary_cross_entropy_with_logits";
  const BceArgs a = bce_args(c, 0, true, op);
  const Red red = reduction_of(c.attrs[0], op);
  Tensor out;
  ND_DISPATCH_FLOAT(a.x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const T *x = a.x.data<T>(), *t = a.t.data<T>(), *w = ptr_or_null<T>(a.w), *pw = ptr_or_null<T>(a.pw);
    out = pointwise_reduce<T>(a.x.sizes(), red, [&](int64_t i) {
      const C v = C(x[i]), y = C(t[i]);
      const C lw = pw ? C(1) + (C(pw[i]) - C(1)) * y : C(1);
      const C l = (C(1) - y) * v + lw * softplus_neg(v);
      return w ? l * C(w[i]) : l;
    });
  });
  set_outputs(c, {out});
}

namespace {
template <bool Target> void bce_logits_backward(Call& c, const char* op) {
  const Tensor& go = c.inputs[0];
  const BceArgs a = bce_args(c, 1, true, op);
  const Red red = reduction_of(c.attrs[0], op);
  const GradOf gf = grad_of(go, red, a.x.sizes(), op);
  Tensor g = gf.scalar ? Tensor() : cast_to(go, a.x.dtype()).contiguous();
  Tensor gi = empty_tensor(a.x.sizes(), a.x.dtype());
  ND_DISPATCH_FLOAT(a.x.dtype(), op, [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const T *x = a.x.data<T>(), *t = a.t.data<T>(), *w = ptr_or_null<T>(a.w), *pw = ptr_or_null<T>(a.pw), *gd = ptr_or_null<T>(g);
    T* o = gi.data<T>();
    const C gs = C(gf.value);
    parallel_for(a.x.numel(), kGrainExpensive, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const C v = C(x[i]), y = C(t[i]), p = pw ? C(pw[i]) : C(1);
        C r;
        if constexpr (Target) {
          r = (p - C(1)) * softplus_neg(v) - v;  // d/dtarget
        } else {
          const C sig = C(1) / (C(1) + std::exp(-v));
          r = sig * (C(1) + (p - C(1)) * y) - p * y;  // d/dinput
        }
        r *= gd ? C(gd[i]) : gs;
        o[i] = T(w ? r * C(w[i]) : r);
      }
    });
  });
  set_outputs(c, {gi});
}
}  // namespace

void k_binary_cross_entropy_with_logits_backward(Call& c) { bce_logits_backward<false>(c, "binary_cross_entropy_with_logits_backward"); }
void k_binary_cross_entropy_with_logits_target_backward(Call& c) {
  bce_logits_backward<true>(c, "binary_cross_entropy_with_logits_target_backward");
}

// ---- CTC --------------------------------------------------------------------------------------------
namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
inline double lse(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const double m = std::max(a, b);
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}

struct CtcProblem {
  int64_t T = 0, N = 1, C = 0, maxL = 0;
  bool batched = true;
  Tensor lp;  // (T, N, C) contiguous, float64
  std::vector<int64_t> in_len, tg_len, tg_off, tg;  // targets of sample n: tg[tg_off[n] .. + tg_len[n])
  int64_t blank = 0;
};

CtcProblem ctc_problem(const Tensor& log_probs, const Tensor& targets, const Shape& in_len, const Shape& tg_len, int64_t blank,
                       const char* op) {
  require_float(log_probs, op, "log_probs");
  CtcProblem p;
  if (log_probs.dim() != 3 && log_probs.dim() != 2)
    throw ValueError(std::string("[") + op + "] expected log_probs of shape (T, N, C) or (T, C), got " + shape_str(log_probs.sizes()));
  p.batched = log_probs.dim() == 3;
  p.T = log_probs.sizes()[0];
  p.N = p.batched ? log_probs.sizes()[1] : 1;
  p.C = log_probs.sizes()[p.batched ? 2 : 1];
  p.blank = blank;
  if (blank < 0 || blank >= p.C)
    throw ValueError(std::string("[") + op + "] blank must be in [0, " + std::to_string(p.C) + "), got " + std::to_string(blank));
  if ((int64_t)in_len.size() != p.N || (int64_t)tg_len.size() != p.N)
    throw ValueError(std::string("[") + op + "] expected " + std::to_string(p.N) + " input_lengths and target_lengths, got " +
                     std::to_string(in_len.size()) + " and " + std::to_string(tg_len.size()));
  if (is_floating(targets.dtype()) || targets.dtype() == DType::Bool)
    throw TypeError(std::string("[") + op + "] expected integer targets, got " + dtype_name(targets.dtype()));
  Tensor t = cast_to(targets, DType::Int64).contiguous();
  const int64_t* td = t.data<int64_t>();
  const bool padded = p.batched ? targets.dim() == 2 : false;
  int64_t off = 0;
  for (int64_t n = 0; n < p.N; ++n) {
    if (in_len[n] < 0 || in_len[n] > p.T)
      throw ValueError(std::string("[") + op + "] input_lengths[" + std::to_string(n) + "] = " + std::to_string(in_len[n]) +
                       " must be in [0, " + std::to_string(p.T) + "]");
    if (tg_len[n] < 0) throw ValueError(std::string("[") + op + "] target_lengths must be non-negative");
    const int64_t start = padded ? n * targets.sizes()[1] : off;
    if (padded ? tg_len[n] > targets.sizes()[1] : start + tg_len[n] > t.numel())
      throw ValueError(std::string("[") + op + "] target_lengths[" + std::to_string(n) + "] = " + std::to_string(tg_len[n]) +
                       " exceeds the targets of shape " + shape_str(targets.sizes()));
    p.tg_off.push_back((int64_t)p.tg.size());
    for (int64_t k = 0; k < tg_len[n]; ++k) {
      const int64_t v = td[start + k];
      if (v < 0 || v >= p.C)
        throw IndexError(std::string("[") + op + "] target " + std::to_string(v) + " is out of bounds for " + std::to_string(p.C) + " classes");
      p.tg.push_back(v);
    }
    off += tg_len[n];
    p.maxL = std::max(p.maxL, tg_len[n]);
  }
  p.in_len.assign(in_len.begin(), in_len.end());
  p.tg_len.assign(tg_len.begin(), tg_len.end());
  p.lp = cast_to(log_probs, DType::Float64).contiguous();
  return p;
}

// Extended label s of sample n: blank at even s, the (s-1)/2-th target at odd s.
inline int64_t ext_label(const CtcProblem& p, int64_t n, int64_t s) { return s % 2 == 0 ? p.blank : p.tg[p.tg_off[n] + s / 2]; }
inline double lp_at(const CtcProblem& p, const double* lp, int64_t t, int64_t n, int64_t c) { return lp[(t * p.N + n) * p.C + c]; }

// alpha (T x S) of sample n, S = 2L + 1; returns the negative log likelihood.
double ctc_alpha(const CtcProblem& p, int64_t n, double* alpha, int64_t Smax) {
  const double* lp = p.lp.data<double>();
  const int64_t L = p.tg_len[n], S = 2 * L + 1, Tn = p.in_len[n];
  for (int64_t k = 0; k < p.T * Smax; ++k) alpha[k] = kNegInf;
  if (Tn == 0) return L == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  alpha[0] = lp_at(p, lp, 0, n, p.blank);
  if (L > 0) alpha[1] = lp_at(p, lp, 0, n, ext_label(p, n, 1));
  for (int64_t t = 1; t < Tn; ++t) {
    const double* prev = alpha + (t - 1) * Smax;
    double* cur = alpha + t * Smax;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t l = ext_label(p, n, s);
      double a = prev[s];
      if (s >= 1) a = lse(a, prev[s - 1]);
      if (s >= 2 && l != p.blank && l != ext_label(p, n, s - 2)) a = lse(a, prev[s - 2]);
      cur[s] = a == kNegInf ? kNegInf : a + lp_at(p, lp, t, n, l);
    }
  }
  const double* last = alpha + (Tn - 1) * Smax;
  const double ll = L > 0 ? lse(last[S - 1], last[S - 2]) : last[S - 1];
  return -ll;
}
}  // namespace

void k__ctc_loss(Call& c) {
  const char* op = "_ctc_loss";
  const CtcProblem p = ctc_problem(c.inputs[0], c.inputs[1], c.attrs[0].list, c.attrs[1].list, c.attrs[2].i, op);
  const int64_t Smax = 2 * p.maxL + 1;
  Tensor nll = empty_tensor({p.N}, DType::Float64), alpha = empty_tensor({p.N, p.T, Smax}, DType::Float64);
  parallel_for(p.N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) nll.data<double>()[n] = ctc_alpha(p, n, alpha.data<double>() + n * p.T * Smax, Smax);
  });
  const DType dt = c.inputs[0].dtype();
  set_outputs(c, {cast_to(p.batched ? nll : nll.reshape({}), dt), cast_to(alpha, dt)});
}

void k__ctc_loss_backward(Call& c) {
  const char* op = "_ctc_loss_backward";
  const Tensor& grad = c.inputs[0];
  const CtcProblem p = ctc_problem(c.inputs[1], c.inputs[2], c.attrs[0].list, c.attrs[1].list, c.attrs[2].i, op);
  const bool zero_infinity = c.attrs[3].b;
  if (grad.numel() != p.N)
    throw ValueError(std::string("[") + op + "] expected a grad with " + std::to_string(p.N) + " elements, got shape " + shape_str(grad.sizes()));
  Tensor g = cast_to(grad, DType::Float64).contiguous();
  if (c.inputs[3].numel() != p.N)  // the forward's nll: recomputed here in double, only checked
    throw ValueError(std::string("[") + op + "] expected neg_log_likelihood with " + std::to_string(p.N) + " elements");
  Tensor out = empty_tensor({p.T, p.N, p.C}, DType::Float64);
  double* od = out.data<double>();
  std::memset(od, 0, out.numel() * sizeof(double));
  const int64_t Smax = 2 * p.maxL + 1;
  parallel_for(p.N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<double> alpha(p.T * Smax), beta(p.T * Smax), occ(p.C);
    const double* lp = p.lp.data<double>();
    for (int64_t n = n0; n < n1; ++n) {
      // alpha is recomputed in double rather than read back from the forward's (possibly float32) copy
      const double nl = ctc_alpha(p, n, alpha.data(), Smax);
      const int64_t L = p.tg_len[n], S = 2 * L + 1, Tn = p.in_len[n];
      if (Tn == 0 || (zero_infinity && std::isinf(nl))) continue;
      for (auto& b : beta) b = kNegInf;
      double* last = beta.data() + (Tn - 1) * Smax;
      last[S - 1] = lp_at(p, lp, Tn - 1, n, p.blank);
      if (L > 0) last[S - 2] = lp_at(p, lp, Tn - 1, n, ext_label(p, n, S - 2));
      for (int64_t t = Tn - 2; t >= 0; --t) {
        const double* next = beta.data() + (t + 1) * Smax;
        double* cur = beta.data() + t * Smax;
        for (int64_t s = 0; s < S; ++s) {
          const int64_t l = ext_label(p, n, s);
          double b = next[s];
          if (s + 1 < S) b = lse(b, next[s + 1]);
          if (s + 2 < S && l != p.blank && l != ext_label(p, n, s + 2)) b = lse(b, next[s + 2]);
          cur[s] = b == kNegInf ? kNegInf : b + lp_at(p, lp, t, n, l);
        }
      }
      // alpha and beta both include lp[t, l'_s], so the posterior occupation of class k at t is
      // exp(logsumexp_{s: l'_s = k}(alpha + beta) - lp[t, k] + nll) and d nll / d lp[t, k] is minus it
      const double gn = g.data<double>()[n];
      for (int64_t t = 0; t < Tn; ++t) {
        for (auto& o : occ) o = kNegInf;
        for (int64_t s = 0; s < S; ++s) {
          const int64_t l = ext_label(p, n, s);
          occ[l] = lse(occ[l], alpha[t * Smax + s] + beta[t * Smax + s]);
        }
        for (int64_t k = 0; k < p.C; ++k)
          if (occ[k] != kNegInf) od[(t * p.N + n) * p.C + k] = -std::exp(occ[k] + nl - lp_at(p, lp, t, n, k)) * gn;
      }
    }
  });
  Tensor r = cast_to(out, c.inputs[1].dtype());
  set_outputs(c, {p.batched ? r : r.reshape({p.T, p.C})});
}

}  // namespace nd
