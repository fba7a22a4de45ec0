// Reductions (sum, prod, mean, amax, amin, all, any, max/min with indices, argmax/argmin) and
// scans (cumsum, cumprod).
//
// Note [Reduction layouts]
// The input's dims split into kept and reduced groups, each coalesced. Three loops cover them:
// (A) the reduced group is one contiguous run: each output is a horizontal reduction over it;
// (B) the kept group is one contiguous run: rows of the reduced space are accumulated into an
//     output-sized buffer (vectorises across outputs, e.g. sum over dim 0);
// (C) anything else: each output walks its reduced multi-index.
// A full reduction of a contiguous input splits the run across threads and merges partials.
#include <limits>
#include <memory>
#include <vector>

#include "loops.h"
#include "simd_dispatch.h"

namespace nd {
namespace {

struct Group {
  std::vector<int64_t> sizes, strides;  // coalesced, outer to inner, strides in elements
  int64_t numel = 1;
};

Group coalesce(const Tensor& x, const std::vector<int>& dims) {
  Group g;
  for (int d : dims) {
    int64_t sz = x.sizes()[d], st = x.strides()[d];
    g.numel *= sz;
    if (sz == 1) continue;
    if (!g.sizes.empty() && g.strides.back() == st * sz) {
      g.sizes.back() *= sz;
      g.strides.back() = st;
    } else {
      g.sizes.push_back(sz);
      g.strides.push_back(st);
    }
  }
  return g;
}

// Element offset of linear index `i` within a group.
inline int64_t group_offset(const Group& g, int64_t i) {
  int64_t off = 0;
  for (int d = (int)g.sizes.size() - 1; d >= 0; --d) {
    off += (i % g.sizes[d]) * g.strides[d];
    i /= g.sizes[d];
  }
  return off;
}

struct ReducePlan {
  std::vector<bool> reduced;
  Shape out_keep, out_final;
  Group kept, red;
};

ReducePlan plan(const Tensor& x, const Value& dimv, bool keepdim, const char* op) {
  ReducePlan p;
  int64_t nd = x.dim();
  p.reduced.assign(nd, false);
  bool all = dimv.is_none() || (dimv.kind == Value::Kind::IntList && dimv.list.empty());
  if (all) {
    std::fill(p.reduced.begin(), p.reduced.end(), true);
  } else {
    Shape dims = dimv.kind == Value::Kind::IntList ? dimv.list : Shape{dimv.i};
    for (auto d : dims) {
      int64_t w = wrap_dim(d, nd, op);
      if (nd == 0) continue;
      if (p.reduced[w]) throw ValueError(std::string("[") + op + "] dim " + std::to_string(d) + " appears multiple times in the list of dims");
      p.reduced[w] = true;
    }
  }
  std::vector<int> kd, rd;
  for (int d = 0; d < nd; ++d) {
    (p.reduced[d] ? rd : kd).push_back(d);
    p.out_keep.push_back(p.reduced[d] ? 1 : x.sizes()[d]);
    if (!p.reduced[d] || keepdim) p.out_final.push_back(p.reduced[d] ? 1 : x.sizes()[d]);
  }
  p.kept = coalesce(x, kd);
  p.red = coalesce(x, rd);
  return p;
}

// ---- value reductions ------------------------------------------------------------------------
template <typename A> struct SumP {
  using acc_t = A;
  static A init() { return A(0); }
  static A step(A a, A v) { return a + v; }
};
template <typename A> struct ProdP {
  using acc_t = A;
  static A init() { return A(1); }
  static A step(A a, A v) { return a * v; }
};
template <typename A> struct MaxP {
  using acc_t = A;
  static A init() {
    if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::lowest();
  }
  static A step(A a, A v) { return (v > a || v != v) ? v : a; }
};
template <typename A> struct MinP {
  using acc_t = A;
  static A init() {
    if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
    else return std::numeric_limits<A>::max();
  }
  static A step(A a, A v) { return (v < a || v != v) ? v : a; }
};
struct AllP {
  using acc_t = bool;
  static bool init() { return true; }
  static bool step(bool a, bool v) { return a && v; }
};
struct AnyP {
  using acc_t = bool;
  static bool init() { return false; }
  static bool step(bool a, bool v) { return a || v; }
};

// Float sums in ISA variants (See Note [ISA variants]); an add per element, so at 16-byte
// vectors they are bound by instructions, not memory. HSum keeps 128 bytes of independent lanes
// in every variant, so the summation order, and the result, is the same at every level.
template <typename T>
ND_SIMD_KERNEL(HSum, (const T* __restrict x, int64_t n, T* out), {
  constexpr int L = 128 / sizeof(T);
  T lanes[L];
  for (int k = 0; k < L; ++k) lanes[k] = T(0);
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) lanes[k] += x[i + k];
  // lanes fold in halves (vector adds) rather than one by one: rows of a few hundred elements
  // would otherwise spend as long here as in the main loop
  for (int w = L / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) lanes[k] += lanes[k + w];
  T a = lanes[0];
  for (; i < n; ++i) a += x[i];
  *out = a;
})
// One row of a column sum (layout B) added into the block's partial sums.
template <typename T>
ND_SIMD_KERNEL(ColAccum, (T* __restrict acc, const T* __restrict row, int64_t n), {
  for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
})
template <typename P, typename T>
constexpr bool simd_sum = (std::is_same_v<T, float> || std::is_same_v<T, double>) && std::is_same_v<P, SumP<T>>;
// One row of a column max/min (layout B) folded into the block's partials, NaN winning as in
// MaxP/MinP: the baseline build's 4-lane compares and blends trailed torch's amax over dim 0.
template <typename P, typename T>
ND_SIMD_KERNEL(ColExtreme, (T* __restrict acc, const T* __restrict row, int64_t n), {
  for (int64_t j = 0; j < n; ++j) acc[j] = P::step(acc[j], row[j]);
})
template <typename P, typename T>
constexpr bool simd_extreme = (std::is_same_v<T, float> || std::is_same_v<T, double>) &&
                              (std::is_same_v<P, MaxP<T>> || std::is_same_v<P, MinP<T>>);

// Horizontal reduction of n contiguous elements, with independent lanes so it vectorises.
template <typename P, typename T>
typename P::acc_t reduce_run(const T* x, int64_t n, int64_t stride) {
  using A = typename P::acc_t;
  if constexpr (simd_sum<P, T>) {
    if (stride == 1) {
      T r;
      simd_run<HSum<T>>(x, n, &r);
      return r;
    }
  }
  if (stride != 1) {
    A a = P::init();
    for (int64_t i = 0; i < n; ++i) a = P::step(a, A((typename compute_type<T>::type)x[i * stride]));
    return a;
  }
  constexpr int L = 16;
  A lanes[L];
  for (int k = 0; k < L; ++k) lanes[k] = P::init();
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int k = 0; k < L; ++k) lanes[k] = P::step(lanes[k], A((typename compute_type<T>::type)x[i + k]));
  A a = P::init();
  for (int k = 0; k < L; ++k) a = P::step(a, lanes[k]);
  for (; i < n; ++i) a = P::step(a, A((typename compute_type<T>::type)x[i]));
  return a;
}

// Sums of floats cascade: blocks summed in the element type, block sums in double.
template <typename P, typename T>
typename P::acc_t reduce_run_cascade(const T* x, int64_t n, int64_t stride) {
  using A = typename P::acc_t;
  if constexpr (std::is_same_v<P, SumP<float>>) {
    constexpr int64_t B = 4096;
    if (n > B) {
      double total = 0;
      for (int64_t i = 0; i < n; i += B) total += reduce_run<P, T>(x + i * stride, std::min(B, n - i), stride);
      return A(total);
    }
  }
  return reduce_run<P, T>(x, n, stride);
}

template <typename P, typename T, typename Out>
void reduce_impl(const Tensor& x, const ReducePlan& p, const Tensor& out, double scale) {
  using A = typename P::acc_t;
  const T* xd = x.data<T>();
  Out* od = out.data<Out>();
  const int64_t K = p.kept.numel, R = p.red.numel;
  auto fin = [scale](A a) -> Out {
    if (scale != 1.0) return Out((typename compute_type<Out>::type)(a * A(scale)));
    return Out((typename compute_type<Out>::type)a);
  };
  if (R == 0 || K == 0) {
    for (int64_t i = 0; i < K; ++i) od[i] = fin(P::init());
    return;
  }
  const bool red_run = p.red.sizes.size() <= 1;
  const int64_t red_stride = p.red.strides.empty() ? 1 : p.red.strides[0];
  if (K == 1 && red_run) {  // full reduction: split across threads
    int nt = get_num_threads();
    std::vector<A> part(nt, P::init());
    int64_t chunk = (R + nt - 1) / nt;
    parallel_for(nt, R >= kGrainCheap ? 1 : nt + 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        int64_t lo = t * chunk, hi = std::min(R, lo + chunk);
        if (lo < hi) part[t] = reduce_run_cascade<P, T>(xd + lo * red_stride, hi - lo, red_stride);
      }
    });
    A a = P::init();
    for (auto v : part) a = P::step(a, v);
    od[0] = fin(a);
    return;
  }
  if (red_run && (red_stride == 1 || p.kept.sizes.size() != 1 || p.kept.strides[0] != 1)) {  // (A)
    parallel_for(K, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o)
        od[o] = fin(reduce_run_cascade<P, T>(xd + group_offset(p.kept, o), R, red_stride));
    });
    return;
  }
  if (p.kept.sizes.size() == 1 && p.kept.strides[0] == 1) {  // (B): columns in parallel
    // Column blocks of up to 1024 keep the per-row offset computation off the inner loop; fewer
    // columns are split so that each thread gets a block (a column's sum does not depend on it).
    const int64_t nt = get_num_threads();
    const int64_t CB = std::clamp<int64_t>(((K + nt - 1) / nt + 15) / 16 * 16, 64, 1024);
    int64_t grain = std::max<int64_t>(CB, kGrainCheap / std::max<int64_t>(R, 1));
    parallel_for((K + CB - 1) / CB, std::max<int64_t>(1, grain / CB), [&](int64_t b, int64_t e) {
      int64_t c0 = b * CB, c1 = std::min(K, e * CB);
      std::unique_ptr<A[]> acc(new A[c1 - c0]);
      for (int64_t j = 0; j < c1 - c0; ++j) acc[j] = P::init();
      // float columns cascade like reduce_run_cascade: blocks of kColBlock rows summed in
      // float (vectorised at full width), block sums in double, so long columns keep their
      // precision
      constexpr bool cascade = std::is_same_v<P, SumP<float>>;
      constexpr int64_t kColBlock = 256;
      std::unique_ptr<double[]> total(cascade ? new double[c1 - c0]() : nullptr);
      A* ac = acc.get();
      for (int64_t r = 0; r < R; ++r) {
        const T* row = xd + group_offset(p.red, r) + c0;
        if constexpr (simd_sum<P, T>) simd_run<ColAccum<T>>(ac, row, c1 - c0);
        else if constexpr (simd_extreme<P, T>) simd_run<ColExtreme<P, T>>(ac, row, c1 - c0);
        else for (int64_t j = 0; j < c1 - c0; ++j) ac[j] = P::step(ac[j], A((typename compute_type<T>::type)row[j]));
        if constexpr (cascade) {
          if ((r + 1) % kColBlock == 0 || r + 1 == R) {
            double* tt = total.get();
            for (int64_t j = 0; j < c1 - c0; ++j) {
              tt[j] += (double)ac[j];
              ac[j] = A(0);
            }
          }
        }
      }
      for (int64_t j = c0; j < c1; ++j) od[j] = cascade ? fin(A(total[j - c0])) : fin(acc[j - c0]);
    });
    return;
  }
  parallel_for(K, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {  // (C)
    for (int64_t o = b; o < e; ++o) {
      const T* base = xd + group_offset(p.kept, o);
      A a = P::init();
      for (int64_t r = 0; r < R; ++r) a = P::step(a, A((typename compute_type<T>::type)base[group_offset(p.red, r)]));
      od[o] = fin(a);
    }
  });
}

Tensor alloc_out(Call& c, const ReducePlan& p, DType dt, const Tensor& x) {
  Tensor out = prepare_output(c, p.out_final, dt, dt, x.device());
  if (!out.is_contiguous() || out.dtype() != dt) out = empty_tensor(p.out_final, dt);
  return out;
}

template <template <typename> class P>
void arith_reduce(Call& c, bool mean) {
  const char* op = c.name();
  Tensor x = c.inputs[0];
  const Value& dtv = c.attrs[2];
  DType out_dt;
  if (!dtv.is_none()) {
    out_dt = dtv.to_dtype();
  } else if (mean) {
    if (!is_floating(x.dtype()))
      throw TypeError(std::string("[mean] could not infer output dtype: input dtype must be floating point, got ") +
                      dtype_name(x.dtype()) + "; pass dtype=");
    out_dt = x.dtype();
  } else {
    out_dt = is_floating(x.dtype()) ? x.dtype() : DType::Int64;
  }
  if (x.dtype() != out_dt) x = cast_to(x, out_dt);
  bool keepdim = c.attrs[1].b;
  ReducePlan p = plan(x, c.attrs[0], keepdim, op);
  Tensor out = alloc_out(c, p, out_dt, x);
  double scale = mean ? 1.0 / (double)p.red.numel : 1.0;
  if (mean && p.red.numel == 0) scale = std::numeric_limits<double>::quiet_NaN();
  ND_DISPATCH_ALL(out_dt, op, [&] {
    using C = typename compute_type<scalar_t>::type;
    if constexpr (std::is_same_v<scalar_t, bool>) {
      reduce_impl<P<int64_t>, scalar_t, scalar_t>(x, p, out, scale);
    } else {
      reduce_impl<P<C>, scalar_t, scalar_t>(x, p, out, scale);
    }
  });
  finish_output(c, out);
}

template <template <typename> class P>
void extreme_reduce(Call& c, const Value& dimv, bool keepdim) {
  const char* op = c.name();
  const Tensor& x = c.inputs[0];
  ReducePlan p = plan(x, dimv, keepdim, op);
  if (p.red.numel == 0 && x.numel() == 0)
    throw IndexError(std::string("[") + op + "] expected reduction dim to be specified for input.numel() == 0 (shape " +
                     shape_str(x.sizes()) + "); the reduction of an empty tensor has no identity");
  Tensor out = alloc_out(c, p, x.dtype(), x);
  ND_DISPATCH_ALL(x.dtype(), op, [&] {
    using C = typename compute_type<scalar_t>::type;
    reduce_impl<P<C>, scalar_t, scalar_t>(x, p, out, 1.0);
  });
  finish_output(c, out);
}

template <typename P>
void bool_reduce(Call& c) {
  Tensor x = c.inputs[0];
  if (x.dtype() != DType::Bool) x = cast_to(x, DType::Bool);
  ReducePlan p = plan(x, c.attrs[0], c.attrs[1].b, c.name());
  Tensor out = alloc_out(c, p, DType::Bool, x);
  reduce_impl<P, bool, bool>(x, p, out, 1.0);
  finish_output(c, out);
}

// ---- arg reductions --------------------------------------------------------------------------
// First index of the max (min); NaN wins and its first index is returned, as in torch.
template <typename T, bool IsMax>
void arg_reduce_impl(const Tensor& x, const ReducePlan& p, T* vals, int64_t* idx) {
  using C = typename compute_type<T>::type;
  const T* xd = x.data<T>();
  const int64_t K = p.kept.numel, R = p.red.numel;
  auto better = [](C v, C best) { return IsMax ? (v > best || (v != v && best == best)) : (v < best || (v != v && best == best)); };
  if (p.kept.sizes.size() == 1 && p.kept.strides[0] == 1 && R > 1) {
    parallel_for((K + 255) / 256, 1, [&](int64_t b, int64_t e) {
      int64_t c0 = b * 256, c1 = std::min(K, e * 256);
      std::vector<C> best(c1 - c0);
      std::vector<int64_t> bi(c1 - c0, 0);
      const T* row0 = xd + group_offset(p.red, 0) + c0;
      for (int64_t j = 0; j < c1 - c0; ++j) best[j] = C(row0[j]);
      for (int64_t r = 1; r < R; ++r) {
        const T* row = xd + group_offset(p.red, r) + c0;
        for (int64_t j = 0; j < c1 - c0; ++j) {
          C v = C(row[j]);
          bool take = better(v, best[j]);
          best[j] = take ? v : best[j];
          bi[j] = take ? r : bi[j];
        }
      }
      for (int64_t j = c0; j < c1; ++j) {
        if (vals) vals[j] = T(best[j - c0]);
        idx[j] = bi[j - c0];
      }
    });
    return;
  }
  parallel_for(K, std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(R, 1)), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const T* base = xd + group_offset(p.kept, o);
      C best = C(base[group_offset(p.red, 0)]);
      int64_t bi = 0;
      for (int64_t r = 1; r < R; ++r) {
        C v = C(base[group_offset(p.red, r)]);
        if (better(v, best)) {
          best = v;
          bi = r;
        }
      }
      if (vals) vals[o] = T(best);
      idx[o] = bi;
    }
  });
}

template <bool IsMax>
void minmax_dim(Call& c) {
  const Tensor& x = c.inputs[0];
  bool keepdim = c.attrs[1].b;
  ReducePlan p = plan(x, Value::from_list({c.attrs[0].i}), keepdim, c.name());
  if (p.red.numel == 0)
    throw IndexError(std::string("[") + c.name() + "] cannot reduce over a zero-size dimension (input shape " + shape_str(x.sizes()) + ")");
  Tensor vals = empty_tensor(p.out_final, x.dtype()), idx = empty_tensor(p.out_final, DType::Int64);
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] { arg_reduce_impl<scalar_t, IsMax>(x, p, vals.data<scalar_t>(), idx.data<int64_t>()); });
  if (c.outputs.size() == 2 && c.outputs[0].defined()) {
    copy_into(c.outputs[0], vals);
    copy_into(c.outputs[1], idx);
  } else {
    c.outputs = {vals, idx};
  }
}

template <bool IsMax>
void argminmax(Call& c) {
  Tensor x = c.inputs[0];
  bool keepdim = c.attrs[1].b;
  Value dimv = c.attrs[0];
  Shape final_shape;
  if (dimv.is_none()) {
    if (x.numel() == 0) throw IndexError(std::string("[") + c.name() + "] expected a non-empty tensor when dim is None");
    final_shape = keepdim ? Shape(x.dim(), 1) : Shape{};
    x = nd::reshape(x.contiguous(), {-1});
    dimv = Value::from_list({0});
  } else {
    dimv = Value::from_list({dimv.i});
  }
  ReducePlan p = plan(x, dimv, keepdim, c.name());
  if (p.red.numel == 0) throw IndexError(std::string("[") + c.name() + "] cannot reduce over a zero-size dimension");
  if (!c.attrs[0].is_none()) final_shape = p.out_final;
  Tensor idx = prepare_output(c, final_shape, DType::Int64, DType::Int64, x.device());
  Tensor tmp = idx.is_contiguous() && idx.dtype() == DType::Int64 ? idx : empty_tensor(final_shape, DType::Int64);
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] { arg_reduce_impl<scalar_t, IsMax>(x, p, nullptr, tmp.data<int64_t>()); });
  if (tmp.impl() != idx.impl()) copy_into(idx, tmp);
  finish_output(c, idx);
}

// ---- scans -----------------------------------------------------------------------------------
template <bool Prod>
void scan(Call& c) {
  Tensor x = c.inputs[0];
  int64_t dim = wrap_dim(c.attrs[0].i, x.dim(), c.name());
  DType dt = !c.attrs[1].is_none() ? c.attrs[1].to_dtype() : (is_floating(x.dtype()) ? x.dtype() : DType::Int64);
  x = cast_to(x, dt).contiguous();
  Tensor out = prepare_output(c, x.sizes(), dt, dt, x.device());
  Tensor tmp = out.is_contiguous() && out.dtype() == dt ? out : empty_tensor(x.sizes(), dt);
  if (x.numel() == 0) return finish_output(c, tmp);
  int64_t n = x.dim() == 0 ? 1 : x.sizes()[dim];
  int64_t inner = 1, outer = 1;
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.sizes()[d];
  for (int64_t d = 0; d < dim; ++d) outer *= x.sizes()[d];
  ND_DISPATCH_ALL(dt, c.name(), [&] {
    using C = std::conditional_t<std::is_same_v<scalar_t, bool>, int64_t, typename compute_type<scalar_t>::type>;
    const scalar_t* xd = x.data<scalar_t>();
    scalar_t* od = tmp.data<scalar_t>();
    parallel_for(outer * inner, std::max<int64_t>(1, kGrainCheap / n), [&](int64_t b, int64_t e) {
      for (int64_t oi = b; oi < e; ++oi) {
        int64_t o = oi / inner, i = oi % inner;
        C acc = Prod ? C(1) : C(0);
        for (int64_t k = 0; k < n; ++k) {
          int64_t at = (o * n + k) * inner + i;
          acc = Prod ? C(acc * C(xd[at])) : C(acc + C(xd[at]));
          od[at] = scalar_t(acc);
        }
      }
    });
  });
  if (tmp.impl() != out.impl()) copy_into(out, tmp);
  finish_output(c, out);
}

}  // namespace

void k_sum(Call& c) { arith_reduce<SumP>(c, false); }
void k_mean(Call& c) { arith_reduce<SumP>(c, true); }
void k_prod(Call& c) {
  // prod takes a single optional dim; reuse the list-based planner
  Call& cc = c;
  if (!cc.attrs[0].is_none()) cc.attrs[0] = Value::from_list({cc.attrs[0].i});
  arith_reduce<ProdP>(cc, false);
}
void k_amax(Call& c) { extreme_reduce<MaxP>(c, c.attrs[0], c.attrs[1].b); }
void k_amin(Call& c) { extreme_reduce<MinP>(c, c.attrs[0], c.attrs[1].b); }
void k_max_all(Call& c) { extreme_reduce<MaxP>(c, Value::none(), false); }
void k_min_all(Call& c) { extreme_reduce<MinP>(c, Value::none(), false); }
void k_max_dim(Call& c) { minmax_dim<true>(c); }
void k_min_dim(Call& c) { minmax_dim<false>(c); }
void k_argmax(Call& c) { argminmax<true>(c); }
void k_argmin(Call& c) { argminmax<false>(c); }
void k_all(Call& c) { bool_reduce<AllP>(c); }
void k_any(Call& c) { bool_reduce<AnyP>(c); }
void k_cumsum(Call& c) { scan<false>(c); }
void k_cumprod(Call& c) { scan<true>(c); }

}  // namespace nd
