// optim.cpp owns the multi-tensor optimizer updates (the `_fused_*_` rows behind ndoptim) and
// the generic `_foreach_*` list ops.
//
// Note [Multi-tensor updates]
// A row takes lists of tensors (flattened into call.inputs, their lengths in the leading attrs)
// and updates every parameter of an optimizer group in one call: per-tensor scalars (step
// counts, bias corrections) are computed first, serially, then the elements of all tensors are
// cut into chunks that parallel_for spreads over the pool, so many small tensors and a few
// huge ones both keep every thread busy. Each element is read and written once (one pass over
// memory instead of torch's chain of five or six ops per parameter). The arithmetic follows
// torch 2.13's single-tensor implementations operation by operation (same association, scalars
// rounded to the compute type where torch rounds them) so trajectories match torch's to float
// rounding. 16-bit params compute in float. Tensors that are not contiguous are updated in a
// contiguous copy that is written back. Dispatch bumps only inputs[0]'s version, so the kernels
// bump every tensor they write.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "loops.h"

namespace nd {
namespace {

enum ListKind { kWrite, kRead, kOptWrite, kStep };
constexpr int64_t kChunk = 1 << 15;      // elements per work item
constexpr int64_t kParallelMin = 1 << 14;  // total elements below which a call runs inline

// The lists of one call, checked against the first (the tensors updated in place).
struct Lists {
  const char* op;
  std::vector<std::vector<Tensor>> given;  // as passed
  std::vector<std::vector<Tensor>> buf;    // contiguous versions the loops run on
  std::vector<ListKind> kinds;
  size_t n = 0;

  // `floating`: the first list must hold floating point tensors (every row but zero_/copy_).
  Lists(const Call& c, const char* op_, std::initializer_list<const char*> names, std::initializer_list<ListKind> ks,
        bool floating = true)
      : op(op_), kinds(ks) {
    const size_t nl = kinds.size();
    given.resize(nl);
    size_t k = 0;
    for (size_t l = 0; l < nl; ++l) {
      const int64_t cnt = c.attrs.at(l).to_int();
      for (int64_t j = 0; j < cnt; ++j) given[l].push_back(c.inputs.at(k++));
    }
    n = given[0].size();
    const auto name = [&](size_t l) { return std::string(names.begin()[l]); };
    if (n == 0) throw ValueError(std::string("[") + op + "] expected a non-empty list of " + name(0));
    buf.resize(nl);
    for (size_t l = 0; l < nl; ++l) {
      auto& ts = given[l];
      if (kinds[l] == kOptWrite && ts.empty()) continue;
      if (ts.size() != n)
        throw ValueError(std::string("[") + op + "] expected " + name(l) + " to have " + std::to_string(n) +
                         " tensors like " + name(0) + ", got " + std::to_string(ts.size()));
      for (size_t i = 0; i < n; ++i) {
        const Tensor& t = ts[i];
        const Tensor& p = given[0][i];
        if (!t.defined()) throw ValueError(std::string("[") + op + "] " + name(l) + "[" + std::to_string(i) + "] is None");
        if (kinds[l] == kStep) {
          if (t.numel() != 1 || !(t.dtype() == DType::Float32 || t.dtype() == DType::Float64 || t.dtype() == DType::Int64))
            throw TypeError(std::string("[") + op + "] expected " + name(l) + "[" + std::to_string(i) +
                            "] to be a one-element float32/float64/int64 tensor, got " + dtype_name(t.dtype()) +
                            " of " + std::to_string(t.numel()) + " elements");
          buf[l].push_back(t);
          continue;
        }
        if (l == 0 && floating && !is_floating(t.dtype()))
          throw TypeError(std::string("[") + op + "] expected floating point " + name(0) + ", got " +
                          dtype_name(t.dtype()) + " at index " + std::to_string(i));
        if (l > 0 && t.sizes() != p.sizes())
          throw ValueError(std::string("[") + op + "] " + name(l) + "[" + std::to_string(i) + "] has shape " +
                           shape_str(t.sizes()) + " but " + name(0) + "[" + std::to_string(i) + "] has shape " +
                           shape_str(p.sizes()));
        Tensor b = t;
        if (l > 0 && t.dtype() != p.dtype()) {
          if (kinds[l] != kRead)
            throw TypeError(std::string("[") + op + "] " + name(l) + "[" + std::to_string(i) + "] has dtype " +
                            dtype_name(t.dtype()) + " but its parameter is " + dtype_name(p.dtype()));
          b = cast_to(t, p.dtype());
        }
        if (!b.is_contiguous()) b = b.contiguous();
        buf[l].push_back(b);
      }
    }
  }

  static std::string shape_str(const Shape& s) {
    std::string out = "(";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
  }
  DType dtype(size_t i) const { return given[0][i].dtype(); }
  bool has(size_t l) const { return !buf[l].empty(); }
  template <typename T> T* ptr(size_t l, size_t i) const { return buf[l].empty() ? nullptr : buf[l][i].template data<T>(); }

  // Adds one to a step counter in its own dtype (torch: `step_t += 1`) and returns the new value.
  double bump_step(size_t l, size_t i) const {
    const Tensor& t = given[l][i];
    switch (t.dtype()) {
      case DType::Float32: { float* s = t.data<float>(); *s += 1.0f; return *s; }
      case DType::Float64: { double* s = t.data<double>(); *s += 1.0; return *s; }
      default: { int64_t* s = t.data<int64_t>(); *s += 1; return (double)*s; }
    }
  }

  // Runs fn(i, begin, end) over chunks of every tensor of list 0, in parallel when worth it.
  template <typename F> void run(F&& fn) const {
    struct Item { size_t i; int64_t b, e; };
    std::vector<Item> items;
    int64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
      const int64_t m = given[0][i].numel();
      total += m;
      for (int64_t b = 0; b < m; b += kChunk) items.push_back({i, b, std::min(m, b + kChunk)});
    }
    const int64_t grain = total < kParallelMin ? (int64_t)items.size() + 1 : 1;
    parallel_for((int64_t)items.size(), grain, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) fn(items[k].i, items[k].b, items[k].e);
    });
  }

  // Writes back contiguous copies and bumps the version of every tensor written.
  void finish() const {
    for (size_t l = 0; l < given.size(); ++l) {
      if (kinds[l] == kRead) continue;
      for (size_t i = 0; i < given[l].size(); ++i) {
        const Tensor& t = given[l][i];
        if (kinds[l] != kStep && buf[l][i].impl() != t.impl()) copy_into(t, buf[l][i]);
        t.bump_version();
      }
    }
  }
};

// torch's lerp: exact at both ends, weight rounded to the compute type.
template <typename C> inline C lerp(C a, C b, C w) { return std::abs(w) < C(0.5) ? a + w * (b - a) : b - (b - a) * (C(1) - w); }

// torch's add(param, alpha=wd) on the gradient, after the sign flip of `maximize`.
template <typename C> inline C grad_in(C g, C p, bool maximize, C wd, bool coupled_wd) {
  g = maximize ? -g : g;
  return coupled_wd ? g + wd * p : g;
}

// Calls f(std::bool_constant<flag>...) so the element loops see their options as constants: a
// loop without branches is what the vectorizer accepts (conditional stores defeat it).
template <typename F> void with_flags(F&& f) { f(); }
template <typename F, typename... Rest> void with_flags(F&& f, bool first, Rest... rest) {
  if (first)
    with_flags([&](auto... cs) { f(std::true_type{}, cs...); }, rest...);
  else
    with_flags([&](auto... cs) { f(std::false_type{}, cs...); }, rest...);
}

// lerp with the branch on the (loop-invariant) weight taken at compile time.
template <bool Low, typename C> inline C lerp_k(C a, C b, C w) { return Low ? a + w * (b - a) : b - (b - a) * (C(1) - w); }

double attr_d(const Call& c, size_t i) { return c.attrs.at(i).to_double(); }
bool attr_b(const Call& c, size_t i) { return c.attrs.at(i).to_int() != 0; }

}  // namespace

// ---- SGD --------------------------------------------------------------------------------------
void k_fused_sgd(Call& c) {
  Lists L(c, "_fused_sgd_", {"params", "grads", "momentum_buffers"}, {kWrite, kRead, kOptWrite});
  const double lr = attr_d(c, 3), momentum = attr_d(c, 4), dampening = attr_d(c, 5), wd = attr_d(c, 6);
  const bool nesterov = attr_b(c, 7), maximize = attr_b(c, 8);
  Shape fresh = c.attrs.at(9).is_none() ? Shape{} : c.attrs.at(9).list;
  if (momentum != 0 && !L.has(2))
    throw ValueError("[_fused_sgd_] momentum != 0 needs one momentum buffer per parameter");
  if (!fresh.empty() && fresh.size() != L.n)
    throw ValueError("[_fused_sgd_] expected 'fresh' to have one flag per parameter, got " + std::to_string(fresh.size()));
  with_flags([&](auto BUF, auto NESTEROV, auto COUPLED) {
    L.run([&](size_t i, int64_t b, int64_t e) {
      ND_DISPATCH_FLOAT(L.dtype(i), "_fused_sgd_", [&] {
        using C = typename compute_type<scalar_t>::type;
        constexpr bool use_buf = decltype(BUF)::value, nest = decltype(NESTEROV)::value;
        constexpr bool coupled = decltype(COUPLED)::value;
        scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
        const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
        scalar_t* __restrict buf = L.ptr<scalar_t>(2, i);
        const C neg_lr = C(-lr), mom = C(momentum), damp = C(1 - dampening), w = C(wd);
        const C sgn = maximize ? C(-1) : C(1);
        const bool first = !fresh.empty() && fresh[i] != 0;  // the buffer starts as a copy of d
        for (int64_t k = b; k < e; ++k) {
          const C pk = C(p[k]);
          C d = C(g[k]) * sgn;
          if constexpr (coupled) d = d + w * pk;
          if constexpr (use_buf) {
            const C bk = first ? d : C(buf[k]) * mom + damp * d;
            buf[k] = scalar_t(bk);
            if constexpr (nest) d = d + mom * bk; else d = bk;
          }
          p[k] = scalar_t(pk + neg_lr * d);
        }
      });
    });
  }, momentum != 0, nesterov, wd != 0);
  L.finish();
}

// ---- Adam / AdamW ----------------------------------------------------------------------------
void k_fused_adam(Call& c) {
  Lists L(c, "_fused_adam_", {"params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kOptWrite, kStep});
  const double lr = attr_d(c, 6), beta1 = attr_d(c, 7), beta2 = attr_d(c, 8), wd = attr_d(c, 9), eps = attr_d(c, 10);
  const bool amsgrad = attr_b(c, 11), maximize = attr_b(c, 12), decoupled = attr_b(c, 13);
  if (amsgrad && !L.has(4)) throw ValueError("[_fused_adam_] amsgrad=True needs max_exp_avg_sqs");
  std::vector<double> step_size(L.n), bc2_sqrt(L.n);
  for (size_t i = 0; i < L.n; ++i) {
    const double step = L.bump_step(5, i);
    step_size[i] = lr / (1 - std::pow(beta1, step));
    bc2_sqrt[i] = std::sqrt(1 - std::pow(beta2, step));
  }
  const bool coupled_wd = !decoupled && wd != 0, low = std::abs(1 - beta1) < 0.5;
  with_flags([&](auto AMS, auto COUPLED, auto LOW) {
    L.run([&](size_t i, int64_t b, int64_t e) {
      ND_DISPATCH_FLOAT(L.dtype(i), "_fused_adam_", [&] {
        using C = typename compute_type<scalar_t>::type;
        constexpr bool ams = decltype(AMS)::value, coupled = decltype(COUPLED)::value, lo = decltype(LOW)::value;
        scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
        const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
        scalar_t* __restrict m = L.ptr<scalar_t>(2, i);
        scalar_t* __restrict v = L.ptr<scalar_t>(3, i);
        scalar_t* __restrict vmax = L.ptr<scalar_t>(4, i);
        const C w1 = C(1 - beta1), b2 = C(beta2), w2 = C(1 - beta2), w = C(wd), ep = C(eps);
        const C sgn = maximize ? C(-1) : C(1), bc2s = C(bc2_sqrt[i]), neg_step = C(-step_size[i]);
        const C decay = decoupled && wd != 0 ? C(1 - lr * wd) : C(1);  // x * 1 is exact
        for (int64_t k = b; k < e; ++k) {
          const C p0 = C(p[k]);
          const C pk = p0 * decay;
          C d = C(g[k]) * sgn;
          if constexpr (coupled) d = d + w * p0;
          const C mk = lerp_k<lo>(C(m[k]), d, w1);
          const C vk = C(v[k]) * b2 + w2 * d * d;
          m[k] = scalar_t(mk);
          v[k] = scalar_t(vk);
          C vd = vk;
          if constexpr (ams) {
            const C old = C(vmax[k]);
            vd = (old != old || old > vk) ? old : vk;  // torch.maximum propagates NaN
            vmax[k] = scalar_t(vd);
          }
          const C denom = std::sqrt(vd) / bc2s + ep;
          p[k] = scalar_t(pk + neg_step * mk / denom);
        }
      });
    });
  }, amsgrad, coupled_wd, low);
  L.finish();
}

// ---- Adamax -----------------------------------------------------------------------------------
void k_fused_adamax(Call& c) {
  Lists L(c, "_fused_adamax_", {"params", "grads", "exp_avgs", "exp_infs", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kStep});
  const double lr = attr_d(c, 5), beta1 = attr_d(c, 6), beta2 = attr_d(c, 7), wd = attr_d(c, 8), eps = attr_d(c, 9);
  const bool maximize = attr_b(c, 10);
  std::vector<double> clr(L.n);
  for (size_t i = 0; i < L.n; ++i) clr[i] = lr / (1 - std::pow(beta1, L.bump_step(4, i)));
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_adamax_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
      scalar_t* __restrict m = L.ptr<scalar_t>(2, i);
      scalar_t* __restrict u = L.ptr<scalar_t>(3, i);
      const C w1 = C(1 - beta1), b2 = C(beta2), w = C(wd), ep = C(eps), neg_clr = C(-clr[i]);
      for (int64_t k = b; k < e; ++k) {
        const C pk = C(p[k]);
        const C d = grad_in(C(g[k]), pk, maximize, w, wd != 0);
        const C mk = lerp(C(m[k]), d, w1);
        const C a = C(u[k]) * b2, bnd = std::abs(d) + ep;
        const C uk = (a != a || a > bnd) ? a : bnd;
        m[k] = scalar_t(mk);
        u[k] = scalar_t(uk);
        p[k] = scalar_t(pk + neg_clr * mk / uk);
      }
    });
  });
  L.finish();
}

// ---- NAdam ------------------------------------------------------------------------------------
void k_fused_nadam(Call& c) {
  Lists L(c, "_fused_nadam_", {"params", "grads", "exp_avgs", "exp_avg_sqs", "mu_products", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kStep, kStep});
  const double lr = attr_d(c, 6), beta1 = attr_d(c, 7), beta2 = attr_d(c, 8), wd = attr_d(c, 9);
  const double momentum_decay = attr_d(c, 10), eps = attr_d(c, 11);
  const bool decoupled = attr_b(c, 12), maximize = attr_b(c, 13);
  std::vector<double> bc2(L.n), c_grad(L.n), c_avg(L.n);
  for (size_t i = 0; i < L.n; ++i) {
    const double step = L.bump_step(5, i);
    bc2[i] = 1 - std::pow(beta2, step);
    const double mu = beta1 * (1.0 - 0.5 * std::pow(0.96, step * momentum_decay));
    const double mu_next = beta1 * (1.0 - 0.5 * std::pow(0.96, (step + 1) * momentum_decay));
    // mu_product lives in a one-element tensor of its own dtype (torch: `mu_product *= mu`)
    const Tensor& mp = L.given[4][i];
    double prod;
    if (mp.dtype() == DType::Float32) {
      *mp.data<float>() *= (float)mu;
      prod = *mp.data<float>();
    } else if (mp.dtype() == DType::Float64) {
      *mp.data<double>() *= mu;
      prod = *mp.data<double>();
    } else {
      throw TypeError("[_fused_nadam_] mu_products must be float32 or float64");
    }
    c_grad[i] = -lr * (1.0 - mu) / (1.0 - prod);
    c_avg[i] = (-lr * mu_next) / (1.0 - prod * mu_next);
  }
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_nadam_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
      scalar_t* __restrict m = L.ptr<scalar_t>(2, i);
      scalar_t* __restrict v = L.ptr<scalar_t>(3, i);
      const C w1 = C(1 - beta1), b2 = C(beta2), w2 = C(1 - beta2), w = C(wd), ep = C(eps);
      const C decay = C(1 - lr * wd), bc = C(bc2[i]), cg = C(c_grad[i]), ca = C(c_avg[i]);
      const bool shrink = decoupled && wd != 0, coupled = !decoupled && wd != 0;
      for (int64_t k = b; k < e; ++k) {
        C pk = shrink ? C(p[k]) * decay : C(p[k]);
        const C d = grad_in(C(g[k]), C(p[k]), maximize, w, coupled);
        const C mk = lerp(C(m[k]), d, w1);
        const C vk = C(v[k]) * b2 + w2 * d * d;
        m[k] = scalar_t(mk);
        v[k] = scalar_t(vk);
        const C denom = std::sqrt(vk / bc) + ep;
        pk = pk + cg * d / denom;
        p[k] = scalar_t(pk + ca * mk / denom);
      }
    });
  });
  L.finish();
}

// ---- RAdam ------------------------------------------------------------------------------------
void k_fused_radam(Call& c) {
  Lists L(c, "_fused_radam_", {"params", "grads", "exp_avgs", "exp_avg_sqs", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kStep});
  const double lr = attr_d(c, 5), beta1 = attr_d(c, 6), beta2 = attr_d(c, 7), wd = attr_d(c, 8), eps = attr_d(c, 9);
  const bool decoupled = attr_b(c, 10), maximize = attr_b(c, 11);
  std::vector<double> bc1(L.n), bc2_sqrt(L.n), rect(L.n);  // rect < 0: unrectified step
  const double rho_inf = 2 / (1 - beta2) - 1;
  for (size_t i = 0; i < L.n; ++i) {
    const double step = L.bump_step(4, i);
    bc1[i] = 1 - std::pow(beta1, step);
    const double bc2 = 1 - std::pow(beta2, step);
    bc2_sqrt[i] = std::sqrt(bc2);
    const double rho_t = rho_inf - 2 * step * std::pow(beta2, step) / bc2;
    rect[i] = rho_t > 5.0 ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) : -1;
  }
  const bool coupled_wd = !decoupled && wd != 0, low = std::abs(1 - beta1) < 0.5;
  with_flags([&](auto COUPLED, auto LOW) {
    L.run([&](size_t i, int64_t b, int64_t e) {
      ND_DISPATCH_FLOAT(L.dtype(i), "_fused_radam_", [&] {
        using C = typename compute_type<scalar_t>::type;
        constexpr bool coupled = decltype(COUPLED)::value, lo = decltype(LOW)::value;
        scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
        const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
        scalar_t* __restrict m = L.ptr<scalar_t>(2, i);
        scalar_t* __restrict v = L.ptr<scalar_t>(3, i);
        const C w1 = C(1 - beta1), b2 = C(beta2), w2 = C(1 - beta2), w = C(wd), ep = C(eps), lr_c = C(lr);
        const C sgn = maximize ? C(-1) : C(1), bc1c = C(bc1[i]), bc2s = C(bc2_sqrt[i]), r = C(rect[i]);
        const C decay = decoupled && wd != 0 ? C(1 - lr * wd) : C(1);
        const auto body = [&](auto RECT) {
          constexpr bool rectified = decltype(RECT)::value;
          for (int64_t k = b; k < e; ++k) {
            const C p0 = C(p[k]);
            const C pk = p0 * decay;
            C d = C(g[k]) * sgn;
            if constexpr (coupled) d = d + w * p0;
            const C mk = lerp_k<lo>(C(m[k]), d, w1);
            const C vk = C(v[k]) * b2 + w2 * d * d;
            m[k] = scalar_t(mk);
            v[k] = scalar_t(vk);
            C upd = mk / bc1c * lr_c;
            if constexpr (rectified) upd = upd * (bc2s / (std::sqrt(vk) + ep)) * r;
            p[k] = scalar_t(pk - upd);
          }
        };
        if (rect[i] >= 0) body(std::true_type{}); else body(std::false_type{});
      });
    });
  }, coupled_wd, low);
  L.finish();
}

// ---- RMSprop ----------------------------------------------------------------------------------
void k_fused_rmsprop(Call& c) {
  Lists L(c, "_fused_rmsprop_", {"params", "grads", "square_avgs", "grad_avgs", "momentum_buffers", "state_steps"},
          {kWrite, kRead, kWrite, kOptWrite, kOptWrite, kStep});
  const double lr = attr_d(c, 6), alpha = attr_d(c, 7), eps = attr_d(c, 8), wd = attr_d(c, 9), momentum = attr_d(c, 10);
  const bool centered = attr_b(c, 11), maximize = attr_b(c, 12);
  if (centered && !L.has(3)) throw ValueError("[_fused_rmsprop_] centered=True needs grad_avgs");
  if (momentum > 0 && !L.has(4)) throw ValueError("[_fused_rmsprop_] momentum > 0 needs momentum_buffers");
  for (size_t i = 0; i < L.n; ++i) L.bump_step(5, i);
  const bool low = std::abs(1 - alpha) < 0.5;
  with_flags([&](auto CENTERED, auto MOM, auto COUPLED, auto LOW) {
    L.run([&](size_t i, int64_t b, int64_t e) {
      ND_DISPATCH_FLOAT(L.dtype(i), "_fused_rmsprop_", [&] {
        using C = typename compute_type<scalar_t>::type;
        constexpr bool centered_k = decltype(CENTERED)::value, mom_k = decltype(MOM)::value;
        constexpr bool coupled = decltype(COUPLED)::value, lo = decltype(LOW)::value;
        scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
        const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
        scalar_t* __restrict sq = L.ptr<scalar_t>(2, i);
        scalar_t* __restrict ga = L.ptr<scalar_t>(3, i);
        scalar_t* __restrict buf = L.ptr<scalar_t>(4, i);
        const C a = C(alpha), wa = C(1 - alpha), w = C(wd), ep = C(eps), mom = C(momentum), neg_lr = C(-lr);
        const C sgn = maximize ? C(-1) : C(1);
        for (int64_t k = b; k < e; ++k) {
          const C pk = C(p[k]);
          C d = C(g[k]) * sgn;
          if constexpr (coupled) d = d + w * pk;
          const C s = C(sq[k]) * a + wa * d * d;
          sq[k] = scalar_t(s);
          C var = s;
          if constexpr (centered_k) {
            const C gk = lerp_k<lo>(C(ga[k]), d, wa);
            ga[k] = scalar_t(gk);
            var = s + C(-1) * gk * gk;
          }
          const C avg = std::sqrt(var) + ep;
          if constexpr (mom_k) {
            const C bk = C(buf[k]) * mom + d / avg;
            buf[k] = scalar_t(bk);
            p[k] = scalar_t(pk + neg_lr * bk);
          } else {
            p[k] = scalar_t(pk + neg_lr * d / avg);
          }
        }
      });
    });
  }, centered, momentum > 0, wd != 0, low);
  L.finish();
}

// ---- Adagrad ----------------------------------------------------------------------------------
void k_fused_adagrad(Call& c) {
  Lists L(c, "_fused_adagrad_", {"params", "grads", "state_sums", "state_steps"}, {kWrite, kRead, kWrite, kStep});
  const double lr = attr_d(c, 4), lr_decay = attr_d(c, 5), wd = attr_d(c, 6), eps = attr_d(c, 7);
  const bool maximize = attr_b(c, 8);
  std::vector<double> clr(L.n);
  for (size_t i = 0; i < L.n; ++i) clr[i] = lr / (1 + (L.bump_step(3, i) - 1) * lr_decay);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_adagrad_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
      scalar_t* __restrict s = L.ptr<scalar_t>(2, i);
      const C w = C(wd), ep = C(eps), neg_clr = C(-clr[i]);
      for (int64_t k = b; k < e; ++k) {
        const C pk = C(p[k]);
        const C d = grad_in(C(g[k]), pk, maximize, w, wd != 0);
        const C sk = C(s[k]) + d * d;
        s[k] = scalar_t(sk);
        p[k] = scalar_t(pk + neg_clr * d / (std::sqrt(sk) + ep));
      }
    });
  });
  L.finish();
}

// ---- Adadelta ---------------------------------------------------------------------------------
void k_fused_adadelta(Call& c) {
  Lists L(c, "_fused_adadelta_", {"params", "grads", "square_avgs", "acc_deltas", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kStep});
  const double lr = attr_d(c, 5), rho = attr_d(c, 6), eps = attr_d(c, 7), wd = attr_d(c, 8);
  const bool maximize = attr_b(c, 9);
  for (size_t i = 0; i < L.n; ++i) L.bump_step(4, i);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_adadelta_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
      scalar_t* __restrict sq = L.ptr<scalar_t>(2, i);
      scalar_t* __restrict acc = L.ptr<scalar_t>(3, i);
      const C r = C(rho), wr = C(1 - rho), w = C(wd), ep = C(eps), neg_lr = C(-lr);
      for (int64_t k = b; k < e; ++k) {
        const C pk = C(p[k]);
        const C d = grad_in(C(g[k]), pk, maximize, w, wd != 0);
        const C s = C(sq[k]) * r + wr * d * d;
        sq[k] = scalar_t(s);
        const C delta = std::sqrt(C(acc[k]) + ep) / std::sqrt(s + ep) * d;
        acc[k] = scalar_t(C(acc[k]) * r + wr * delta * delta);
        p[k] = scalar_t(pk + neg_lr * delta);
      }
    });
  });
  L.finish();
}

// ---- SparseAdam -------------------------------------------------------------------------------
// Dense gradients with torch's lazy semantics: only the rows (slices along dim 0) where the
// gradient has a nonzero element are updated, as if the gradient were a sparse COO tensor of
// those rows. The step counter advances for the whole parameter.
void k_fused_sparse_adam(Call& c) {
  Lists L(c, "_fused_sparse_adam_", {"params", "grads", "exp_avgs", "exp_avg_sqs", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kStep});
  const double lr = attr_d(c, 5), beta1 = attr_d(c, 6), beta2 = attr_d(c, 7), eps = attr_d(c, 8);
  const bool maximize = attr_b(c, 9);
  std::vector<double> step_size(L.n);
  for (size_t i = 0; i < L.n; ++i) {
    const double step = L.bump_step(4, i);
    step_size[i] = lr * std::sqrt(1 - std::pow(beta2, step)) / (1 - std::pow(beta1, step));
  }
  for (size_t i = 0; i < L.n; ++i) {
    const Tensor& p0 = L.given[0][i];
    const int64_t rows = p0.dim() == 0 ? 1 : p0.size(0);
    const int64_t width = rows ? p0.numel() / rows : 0;
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_sparse_adam_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* p = L.ptr<scalar_t>(0, i);
      const scalar_t* g = L.ptr<scalar_t>(1, i);
      scalar_t* m = L.ptr<scalar_t>(2, i);
      scalar_t* v = L.ptr<scalar_t>(3, i);
      const C w1 = C(1 - beta1), w2 = C(1 - beta2), ep = C(eps), neg_step = C(-step_size[i]);
      parallel_for(rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(width, 1)), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const int64_t o = r * width;
          bool any = false;
          for (int64_t k = 0; k < width && !any; ++k) any = C(g[o + k]) != C(0);
          if (!any) continue;
          for (int64_t k = o; k < o + width; ++k) {
            const C d = maximize ? -C(g[k]) : C(g[k]);
            const C mo = C(m[k]), vo = C(v[k]);
            const C um = (d - mo) * w1, uv = (d * d - vo) * w2;
            m[k] = scalar_t(mo + um);
            v[k] = scalar_t(vo + uv);
            const C numer = um + mo, denom = std::sqrt(uv + vo) + ep;
            p[k] = scalar_t(C(p[k]) + neg_step * (numer / denom));
          }
        }
      });
    });
  }
  L.finish();
}

// ---- Rprop -------------------------------------------------------------------------------------
void k_fused_rprop(Call& c) {
  Lists L(c, "_fused_rprop_", {"params", "grads", "prevs", "step_sizes", "state_steps"},
          {kWrite, kRead, kWrite, kWrite, kStep});
  const double etaminus = attr_d(c, 5), etaplus = attr_d(c, 6), smin = attr_d(c, 7), smax = attr_d(c, 8);
  const bool maximize = attr_b(c, 9);
  for (size_t i = 0; i < L.n; ++i) L.bump_step(4, i);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_rprop_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
      scalar_t* __restrict prev = L.ptr<scalar_t>(2, i);
      scalar_t* __restrict step = L.ptr<scalar_t>(3, i);
      const C em = C(etaminus), ep = C(etaplus), lo = C(smin), hi = C(smax), sgn = maximize ? C(-1) : C(1);
      for (int64_t k = b; k < e; ++k) {
        C d = C(g[k]) * sgn;
        const C s = d * C(prev[k]);
        // torch: factor etaplus where sign > 0, etaminus where < 0, 1 where 0 (NaN stays NaN)
        const C factor = s > 0 ? ep : s < 0 ? em : s == 0 ? C(1) : s;
        C st = C(step[k]) * factor;
        st = st < lo ? lo : st > hi ? hi : st;  // clamp_ keeps NaN
        step[k] = scalar_t(st);
        d = factor == em ? C(0) : d;
        const C dir = d > 0 ? C(1) : d < 0 ? C(-1) : d;  // sign: 0 stays 0, NaN stays NaN
        p[k] = scalar_t(C(p[k]) + C(-1) * dir * st);
        prev[k] = scalar_t(d);
      }
    });
  });
  L.finish();
}

// ---- ASGD ------------------------------------------------------------------------------------
void k_fused_asgd(Call& c) {
  Lists L(c, "_fused_asgd_", {"params", "grads", "axs", "mus", "etas", "state_steps"},
          {kWrite, kRead, kWrite, kStep, kStep, kStep});
  const double lr = attr_d(c, 6), lambd = attr_d(c, 7), alpha = attr_d(c, 8), t0 = attr_d(c, 9);
  const double wd = attr_d(c, 10);
  const bool maximize = attr_b(c, 11);
  // eta and mu are one-element tensors of their own dtype: read now, updated after the step
  const auto get = [](const Tensor& t) {
    return t.dtype() == DType::Float64 ? *t.data<double>() : (double)*t.data<float>();
  };
  const auto put = [](const Tensor& t, double v) {
    if (t.dtype() == DType::Float64) *t.data<double>() = v; else *t.data<float>() = (float)v;
  };
  for (size_t l : {3, 4})
    for (size_t i = 0; i < L.n; ++i)
      if (L.given[l][i].dtype() != DType::Float32 && L.given[l][i].dtype() != DType::Float64)
        throw TypeError(std::string("[_fused_asgd_] ") + (l == 3 ? "mus" : "etas") + " must be float32 or float64");
  std::vector<double> eta(L.n), mu(L.n), step(L.n);
  for (size_t i = 0; i < L.n; ++i) {
    step[i] = L.bump_step(5, i);
    eta[i] = get(L.given[4][i]);
    mu[i] = get(L.given[3][i]);
  }
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_fused_asgd_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict p = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict g = L.ptr<scalar_t>(1, i);
      scalar_t* __restrict ax = L.ptr<scalar_t>(2, i);
      const C w = C(wd), decay = C(1 - lambd * eta[i]), neg_eta = C(-eta[i]), m = C(mu[i]);
      const C sgn = maximize ? C(-1) : C(1);
      const bool average = mu[i] != 1;
      for (int64_t k = b; k < e; ++k) {
        const C p0 = C(p[k]);
        const C d = C(g[k]) * sgn + (wd != 0 ? w * p0 : C(0));
        const C pk = scalar_t(p0 * decay) + neg_eta * d;  // torch rounds after mul_, then add_
        p[k] = scalar_t(pk);
        const C pr = C(scalar_t(pk));
        ax[k] = average ? scalar_t(C(ax[k]) + (pr - C(ax[k])) * m) : scalar_t(pr);
      }
    });
  });
  for (size_t i = 0; i < L.n; ++i) {
    put(L.given[4][i], lr / std::pow(1 + lambd * lr * step[i], alpha));
    put(L.given[3][i], 1 / std::max(1.0, step[i] - t0));
  }
  L.finish();
}

// ---- generic list ops -------------------------------------------------------------------------
void k_foreach_add(Call& c) {
  Lists L(c, "_foreach_add_", {"self", "other"}, {kWrite, kRead});
  const double alpha = attr_d(c, 2);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_foreach_add_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict x = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict y = L.ptr<scalar_t>(1, i);
      const C a = C(alpha);
      for (int64_t k = b; k < e; ++k) x[k] = scalar_t(C(x[k]) + a * C(y[k]));
    });
  });
  L.finish();
}

void k_foreach_mul(Call& c) {
  Lists L(c, "_foreach_mul_", {"self"}, {kWrite});
  const double s = attr_d(c, 1);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_foreach_mul_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict x = L.ptr<scalar_t>(0, i);
      const C f = C(s);
      for (int64_t k = b; k < e; ++k) x[k] = scalar_t(C(x[k]) * f);
    });
  });
  L.finish();
}

void k_foreach_zero(Call& c) {
  Lists L(c, "_foreach_zero_", {"self"}, {kWrite}, false);
  L.run([&](size_t i, int64_t b, int64_t e) {
    const Tensor& t = L.buf[0][i];
    std::memset(t.data_ptr() + b * t.itemsize(), 0, (size_t)(e - b) * t.itemsize());
  });
  L.finish();
}

void k_foreach_copy(Call& c) {
  Lists L(c, "_foreach_copy_", {"self", "src"}, {kWrite, kRead}, false);
  L.run([&](size_t i, int64_t b, int64_t e) {
    const Tensor &d = L.buf[0][i], &s = L.buf[1][i];
    std::memcpy(d.data_ptr() + b * d.itemsize(), s.data_ptr() + b * s.itemsize(), (size_t)(e - b) * d.itemsize());
  });
  L.finish();
}

void k_foreach_lerp(Call& c) {
  Lists L(c, "_foreach_lerp_", {"self", "end"}, {kWrite, kRead});
  const double weight = attr_d(c, 2);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_foreach_lerp_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict x = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict y = L.ptr<scalar_t>(1, i);
      const C w = C(weight);
      for (int64_t k = b; k < e; ++k) x[k] = scalar_t(lerp(C(x[k]), C(y[k]), w));
    });
  });
  L.finish();
}

template <bool Div> void foreach_addc(Call& c, const char* op) {
  Lists L(c, op, {"self", "tensor1", "tensor2"}, {kWrite, kRead, kRead});
  const double value = attr_d(c, 3);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), op, [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* __restrict x = L.ptr<scalar_t>(0, i);
      const scalar_t* __restrict t1 = L.ptr<scalar_t>(1, i);
      const scalar_t* __restrict t2 = L.ptr<scalar_t>(2, i);
      const C s = C(value);
      for (int64_t k = b; k < e; ++k)
        x[k] = scalar_t(Div ? C(x[k]) + s * C(t1[k]) / C(t2[k]) : C(x[k]) + s * C(t1[k]) * C(t2[k]));
    });
  });
  L.finish();
}
void k_foreach_addcmul(Call& c) { foreach_addc<false>(c, "_foreach_addcmul_"); }
void k_foreach_addcdiv(Call& c) { foreach_addc<true>(c, "_foreach_addcdiv_"); }

void k_foreach_norm(Call& c) {
  Lists L(c, "_foreach_norm", {"self"}, {kRead});
  const double ord = attr_d(c, 1);
  DType out_dt = L.dtype(0);
  for (size_t i = 0; i < L.n; ++i) {
    if (!is_floating(L.dtype(i)))
      throw TypeError(std::string("[_foreach_norm] expected floating point tensors, got ") + dtype_name(L.dtype(i)) +
                      " at index " + std::to_string(i));
    out_dt = promote_types(out_dt, L.dtype(i));
  }
  const bool inf = std::isinf(ord);
  // Partial results per chunk, combined per tensor afterwards (sums, or max/min of |x|).
  std::vector<int64_t> first(L.n);
  int64_t nchunks = 0;
  for (size_t i = 0; i < L.n; ++i) {
    first[i] = nchunks;
    nchunks += (L.given[0][i].numel() + kChunk - 1) / kChunk;
  }
  std::vector<double> part((size_t)nchunks, 0.0);
  L.run([&](size_t i, int64_t b, int64_t e) {
    ND_DISPATCH_FLOAT(L.dtype(i), "_foreach_norm", [&] {
      const scalar_t* x = L.ptr<scalar_t>(0, i);
      double acc = inf ? std::abs((double)x[b]) : 0.0;
      if (inf && ord > 0) {
        for (int64_t k = b; k < e; ++k) { const double a = std::abs((double)x[k]); acc = (a != a || a > acc) ? a : acc; }
      } else if (inf) {
        for (int64_t k = b; k < e; ++k) { const double a = std::abs((double)x[k]); acc = (a != a || a < acc) ? a : acc; }
      } else if (ord == 2) {
        for (int64_t k = b; k < e; ++k) acc += (double)x[k] * (double)x[k];
      } else if (ord == 1) {
        for (int64_t k = b; k < e; ++k) acc += std::abs((double)x[k]);
      } else if (ord == 0) {
        for (int64_t k = b; k < e; ++k) acc += (double)x[k] != 0.0;
      } else {
        for (int64_t k = b; k < e; ++k) acc += std::pow(std::abs((double)x[k]), ord);
      }
      part[(size_t)(first[i] + b / kChunk)] = acc;
    });
  });
  Tensor out = empty_tensor({(int64_t)L.n}, out_dt);
  ND_DISPATCH_FLOAT(out_dt, "_foreach_norm", [&] {
    scalar_t* o = out.data<scalar_t>();
    for (size_t i = 0; i < L.n; ++i) {
      const int64_t m = L.given[0][i].numel(), cnt = (m + kChunk - 1) / kChunk;
      double r = inf ? (ord > 0 ? 0.0 : std::numeric_limits<double>::infinity()) : 0.0;
      for (int64_t k = 0; k < cnt; ++k) {
        const double a = part[(size_t)(first[i] + k)];
        r = !inf ? r + a : (a != a ? a : (ord > 0 ? std::max(r, a) : std::min(r, a)));
      }
      if (m == 0 && inf && ord < 0) r = std::numeric_limits<double>::infinity();
      o[i] = scalar_t(inf || ord == 0 || ord == 1 ? r : ord == 2 ? std::sqrt(r) : std::pow(r, 1.0 / ord));
    }
  });
  c.outputs = {out};
}

}  // namespace nd
