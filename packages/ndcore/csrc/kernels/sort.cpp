// Sorting and selection: sort, topk, kthvalue, unique, searchsorted, bincount, histc.
//
// Note [NaN ordering]
// As in torch, NaN sorts as the largest value: last ascending, first descending; topk with
// largest=True takes NaNs first and kthvalue counts them as the largest. Equal keys keep their
// input order (every sort here is stable, and partial selections break ties by index), so the
// returned indices are deterministic.
#include <algorithm>
#include <cmath>
#include <utility>

#include "loops.h"

namespace nd {
namespace {

template <typename C> inline bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return std::isnan(v);
  else return false;
}
// Ascending order with NaN largest (Note [NaN ordering]).
template <typename C> inline bool less_nan(C a, C b) { return a < b || (is_nan(b) && !is_nan(a)); }
template <typename C> inline bool greater_nan(C a, C b) { return a > b || (is_nan(a) && !is_nan(b)); }

template <typename C> using Keyed = std::pair<C, int64_t>;  // (value, index along the dim)
// Orders (value, index) pairs, breaking ties by index so selections match a stable sort.
template <typename C> auto keyed_order(bool descending) {
  return [descending](const Keyed<C>& a, const Keyed<C>& b) {
    bool before = descending ? greater_nan(a.first, b.first) : less_nan(a.first, b.first);
    bool after = descending ? greater_nan(b.first, a.first) : less_nan(b.first, a.first);
    return before || (!after && a.second < b.second);
  };
}

// The 1-D slices of t along `dim`: the element offset where each starts (C order over the other
// dims), their length and the step between their elements. A 0-d tensor is one slice of one.
struct Lanes {
  std::vector<int64_t> base;
  int64_t n = 1, step = 0;
};
Lanes lanes_of(const Tensor& t, int64_t dim) {
  Lanes l;
  Shape sz, st;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d == dim) continue;
    sz.push_back(t.sizes()[d]);
    st.push_back(t.strides()[d]);
  }
  if (t.dim() > 0) {
    l.n = t.sizes()[dim];
    l.step = t.strides()[dim];
  }
  l.base.resize(numel_of(sz));
  for (int64_t i = 0; i < (int64_t)l.base.size(); ++i) {
    int64_t rem = i, off = 0;
    for (int64_t d = (int64_t)sz.size() - 1; d >= 0; --d) {
      off += (rem % sz[d]) * st[d];
      rem /= sz[d];
    }
    l.base[i] = off;
  }
  return l;
}

int64_t grain_for(int64_t n) { return std::max<int64_t>(1, kGrainCheap / 16 / std::max<int64_t>(n, 1)); }

// Loads the slice `r` of `in` as (value, index) pairs.
template <typename T, typename C>
void load_lane(const T* xd, const Lanes& in, int64_t r, std::vector<Keyed<C>>& buf) {
  buf.resize(in.n);
  for (int64_t k = 0; k < in.n; ++k) buf[k] = {C(xd[in.base[r] + k * in.step]), k};
}

}  // namespace

void k_sort(Call& c) {
  const Tensor& x = c.inputs[0];
  const int64_t dim = wrap_dim(c.attrs[0].i, x.dim(), "sort");
  const bool descending = c.attrs[1].b;  // attrs[2] (stable): every sort here is stable
  Tensor vals = empty_tensor(x.sizes(), x.dtype()), idx = empty_tensor(x.sizes(), DType::Int64);
  const Lanes in = lanes_of(x, dim), out = lanes_of(vals, dim);
  ND_DISPATCH_ALL(x.dtype(), "sort", [&] {
    using C = typename compute_type<scalar_t>::type;
    const scalar_t* xd = x.data<scalar_t>();
    scalar_t* vd = vals.data<scalar_t>();
    int64_t* id = idx.data<int64_t>();
    parallel_for((int64_t)in.base.size(), grain_for(in.n), [&](int64_t r0, int64_t r1) {
      std::vector<Keyed<C>> buf;
      for (int64_t r = r0; r < r1; ++r) {
        load_lane(xd, in, r, buf);
        std::sort(buf.begin(), buf.end(), keyed_order<C>(descending));  // ties by index: stable
        for (int64_t k = 0; k < in.n; ++k) {
          vd[out.base[r] + k * out.step] = xd[in.base[r] + buf[k].second * in.step];
          id[out.base[r] + k * out.step] = buf[k].second;
        }
      }
    });
  });
  set_outputs(c, {vals, idx});
}

void k_topk(Call& c) {
  const Tensor& x = c.inputs[0];
  const int64_t k = c.attrs[0].i;
  const int64_t dim = wrap_dim(c.attrs[1].i, x.dim(), "topk");
  const bool largest = c.attrs[2].b;  // attrs[3] (sorted): results always come sorted
  const int64_t n = x.dim() ? x.sizes()[dim] : 1;
  if (k < 0 || k > n || (x.dim() == 0 && k != 1))
    throw IndexError("[topk] selected index k out of range (k = " + std::to_string(k) + ", dimension " + std::to_string(dim) +
                     " of shape " + shape_str(x.sizes()) + " has size " + std::to_string(n) + ")");
  Shape shape = x.sizes();
  if (x.dim()) shape[dim] = k;
  Tensor vals = empty_tensor(shape, x.dtype()), idx = empty_tensor(shape, DType::Int64);
  const Lanes in = lanes_of(x, dim), out = lanes_of(vals, dim);
  ND_DISPATCH_ALL(x.dtype(), "topk", [&] {
    using C = typename compute_type<scalar_t>::type;
    const scalar_t* xd = x.data<scalar_t>();
    scalar_t* vd = vals.data<scalar_t>();
    int64_t* id = idx.data<int64_t>();
    parallel_for((int64_t)in.base.size(), grain_for(n), [&](int64_t r0, int64_t r1) {
      std::vector<Keyed<C>> buf;
      auto order = keyed_order<C>(largest);
      for (int64_t r = r0; r < r1; ++r) {
        load_lane(xd, in, r, buf);
        std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), order);
        for (int64_t j = 0; j < k; ++j) {
          vd[out.base[r] + j * out.step] = xd[in.base[r] + buf[j].second * in.step];
          id[out.base[r] + j * out.step] = buf[j].second;
        }
      }
    });
  });
  set_outputs(c, {vals, idx});
}

void k_kthvalue(Call& c) {
  const Tensor& x = c.inputs[0];
  const int64_t k = c.attrs[0].i;
  const int64_t dim = wrap_dim(c.attrs[1].i, x.dim(), "kthvalue");
  const bool keepdim = c.attrs[2].b;
  const int64_t n = x.dim() ? x.sizes()[dim] : 1;
  if (k < 1 || k > n)
    throw IndexError("[kthvalue] selected number k out of range for dimension " + std::to_string(dim) + " (k = " +
                     std::to_string(k) + ", shape " + shape_str(x.sizes()) + ")");
  Shape shape;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != dim || keepdim) shape.push_back(d == dim ? 1 : x.sizes()[d]);
  Tensor vals = empty_tensor(shape, x.dtype()), idx = empty_tensor(shape, DType::Int64);
  const Lanes in = lanes_of(x, dim);
  ND_DISPATCH_ALL(x.dtype(), "kthvalue", [&] {
    using C = typename compute_type<scalar_t>::type;
    const scalar_t* xd = x.data<scalar_t>();
    scalar_t* vd = vals.data<scalar_t>();
    int64_t* id = idx.data<int64_t>();
    parallel_for((int64_t)in.base.size(), grain_for(n), [&](int64_t r0, int64_t r1) {
      std::vector<Keyed<C>> buf;
      auto order = keyed_order<C>(false);
      for (int64_t r = r0; r < r1; ++r) {
        load_lane(xd, in, r, buf);
        std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.end(), order);
        vd[r] = xd[in.base[r] + buf[k - 1].second * in.step];
        id[r] = buf[k - 1].second;
      }
    });
  });
  set_outputs(c, {vals, idx});
}

// _unique(self, sorted, return_inverse, return_counts, dim): always sorted, always all three
// outputs (the composite `unique` picks what was asked for). NaNs never compare equal, so each
// is its own entry, as in torch.
void k_unique(Call& c) {
  const Tensor& x = c.inputs[0];
  const Value& dimv = c.attrs[3];
  if (dimv.is_none()) {
    Tensor xc = x.contiguous();
    const int64_t N = xc.numel();
    Tensor inverse = empty_tensor(x.sizes(), DType::Int64);
    std::vector<int64_t> first, count;
    ND_DISPATCH_ALL(x.dtype(), "unique", [&] {
      using C = typename compute_type<scalar_t>::type;
      const scalar_t* xd = xc.data<scalar_t>();
      std::vector<Keyed<C>> buf(N);
      for (int64_t i = 0; i < N; ++i) buf[i] = {C(xd[i]), i};
      std::stable_sort(buf.begin(), buf.end(), [](const Keyed<C>& a, const Keyed<C>& b) { return less_nan(a.first, b.first); });
      int64_t* inv = inverse.data<int64_t>();
      for (int64_t i = 0; i < N; ++i) {
        if (i == 0 || !(buf[i].first == buf[i - 1].first)) {
          first.push_back(buf[i].second);
          count.push_back(0);
        }
        ++count.back();
        inv[buf[i].second] = (int64_t)first.size() - 1;
      }
    });
    const int64_t G = (int64_t)first.size();
    Tensor out = empty_tensor({G}, x.dtype()), counts = empty_tensor({G}, DType::Int64);
    ND_DISPATCH_ALL(x.dtype(), "unique", [&] {
      for (int64_t g = 0; g < G; ++g) out.data<scalar_t>()[g] = xc.data<scalar_t>()[first[g]];
    });
    std::copy(count.begin(), count.end(), counts.data<int64_t>());
    return set_outputs(c, {out, inverse, counts});
  }
  if (x.dim() == 0) throw IndexError("[unique] dim " + std::to_string(dimv.i) + " given for a 0-d tensor");
  const int64_t dim = wrap_dim(dimv.i, x.dim(), "unique");
  // slices along dim as rows of a contiguous (n, rest) matrix, ordered lexicographically
  Shape perm{dim};
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != dim) perm.push_back(d);
  Tensor rows = nd::permute(x, perm).contiguous();
  const int64_t n = x.sizes()[dim], rest = n ? rows.numel() / n : 0;
  std::vector<int64_t> order(n), reps, count;
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  Tensor inverse = empty_tensor({n}, DType::Int64);
  ND_DISPATCH_ALL(x.dtype(), "unique", [&] {
    using C = typename compute_type<scalar_t>::type;
    const scalar_t* rd = rows.data<scalar_t>();
    auto row_less = [&](int64_t i, int64_t j) {
      for (int64_t t = 0; t < rest; ++t) {
        C a = C(rd[i * rest + t]), b = C(rd[j * rest + t]);
        if (less_nan(a, b)) return true;
        if (less_nan(b, a)) return false;
      }
      return false;
    };
    auto row_equal = [&](int64_t i, int64_t j) {
      for (int64_t t = 0; t < rest; ++t)
        if (!(C(rd[i * rest + t]) == C(rd[j * rest + t]))) return false;
      return true;
    };
    std::stable_sort(order.begin(), order.end(), row_less);
    int64_t* inv = inverse.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (i == 0 || !row_equal(order[i], order[i - 1])) {
        reps.push_back(order[i]);
        count.push_back(0);
      }
      ++count.back();
      inv[order[i]] = (int64_t)reps.size() - 1;
    }
  });
  Tensor sel = empty_tensor({(int64_t)reps.size()}, DType::Int64), counts = empty_tensor({(int64_t)reps.size()}, DType::Int64);
  std::copy(reps.begin(), reps.end(), sel.data<int64_t>());
  std::copy(count.begin(), count.end(), counts.data<int64_t>());
  set_outputs(c, {nd::index_select(x, dim, sel), inverse, counts});
}

void k_searchsorted(Call& c) {
  const Tensor &seq0 = c.inputs[0], &v0 = c.inputs[1], &sorter0 = c.inputs[2];
  const bool out_int32 = c.attrs[0].b;
  bool right = c.attrs[1].b;
  if (!c.attrs[2].is_none()) {
    const std::string& side = c.attrs[2].s;
    if (side != "left" && side != "right")
      throw ValueError("[searchsorted] side can only be 'left' or 'right', got '" + side + "'");
    if (side == "left" && right)
      throw ValueError("[searchsorted] side and right can't be set to opposites, got side of left while right was True");
    right = side == "right";
  }
  const bool leading_match = seq0.dim() >= 1 && seq0.dim() == v0.dim() &&
                             std::equal(seq0.sizes().begin(), seq0.sizes().end() - 1, v0.sizes().begin());
  if (seq0.dim() == 0 || (seq0.dim() > 1 && !leading_match))
    throw ValueError("[searchsorted] boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor "
                     "and input value tensor must match, but got boundaries shape " + shape_str(seq0.sizes()) +
                     " and input value shape " + shape_str(v0.sizes()));
  if (sorter0.defined() && (sorter0.dtype() != DType::Int64 || sorter0.sizes() != seq0.sizes()))
    throw ValueError("[searchsorted] sorter must be an int64 tensor of the boundaries' shape " + shape_str(seq0.sizes()) +
                     ", got " + dtype_name(sorter0.dtype()) + " " + shape_str(sorter0.sizes()));
  const DType dt = result_type({seq0, v0});
  Tensor seq = cast_to(seq0, dt).contiguous(), v = cast_to(v0, dt).contiguous();
  Tensor sorter = sorter0.defined() ? sorter0.contiguous() : Tensor();
  const int64_t M = seq.sizes().back();
  const int64_t K = seq.dim() > 1 ? v.sizes().back() : std::max<int64_t>(v.numel(), 1);
  Tensor out = empty_tensor(v.sizes(), out_int32 ? DType::Int32 : DType::Int64);
  ND_DISPATCH_ALL(dt, "searchsorted", [&] {
    using C = typename compute_type<scalar_t>::type;
    const scalar_t* sd = seq.data<scalar_t>();
    const scalar_t* vd = v.data<scalar_t>();
    const int64_t* srt = sorter.defined() ? sorter.data<int64_t>() : nullptr;
    parallel_for(v.numel(), 4096, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t row = (i / K) * M;
        const C val = C(vd[i]);
        // torch's predicates: advance while !(s >= v) (left) or !(s > v) (right), so a NaN
        // value lands after every boundary
        int64_t lo = 0, hi = M;
        while (lo < hi) {
          int64_t mid = lo + (hi - lo) / 2;
          C s = C(sd[row + (srt ? srt[row + mid] : mid)]);
          bool before = right ? !(s > val) : !(s >= val);
          if (before) lo = mid + 1; else hi = mid;
        }
        if (out_int32) out.data<int32_t>()[i] = (int32_t)lo; else out.data<int64_t>()[i] = lo;
      }
    });
  });
  set_outputs(c, {out});
}

void k_bincount(Call& c) {
  const Tensor &x = c.inputs[0], &w = c.inputs[1];
  const int64_t minlength = c.attrs[0].i;
  if (!is_integral(x.dtype(), false))
    throw TypeError(std::string("[bincount] only supports 1-d non-negative integral inputs, got dtype ") + dtype_name(x.dtype()));
  if (x.dim() != 1)
    throw ValueError("[bincount] only supports 1-d non-negative integral inputs, got shape " + shape_str(x.sizes()));
  if (minlength < 0) throw ValueError("[bincount] minlength should be >= 0, got " + std::to_string(minlength));
  if (w.defined() && (w.dim() != 1 || w.sizes()[0] != x.sizes()[0]))
    throw ValueError("[bincount] weights should be 1-d and have the same length as input, got shapes " + shape_str(x.sizes()) +
                     " and " + shape_str(w.sizes()));
  Tensor xi = cast_to(x, DType::Int64).contiguous();
  const int64_t* xd = xi.data<int64_t>();
  const int64_t N = xi.numel();
  int64_t len = minlength;
  for (int64_t i = 0; i < N; ++i) {
    if (xd[i] < 0)
      throw ValueError("[bincount] only supports 1-d non-negative integral inputs, got the value " + std::to_string(xd[i]));
    len = std::max(len, xd[i] + 1);
  }
  if (!w.defined()) {
    Tensor out = empty_tensor({len}, DType::Int64);
    int64_t* o = out.data<int64_t>();
    std::fill(o, o + len, 0);
    for (int64_t i = 0; i < N; ++i) ++o[xd[i]];
    return set_outputs(c, {out});
  }
  // float32 weights keep their dtype; every other weight dtype counts in float64, as in torch
  const DType dt = w.dtype() == DType::Float32 ? DType::Float32 : DType::Float64;
  Tensor wc = cast_to(w, DType::Float64).contiguous();
  std::vector<double> acc(len, 0.0);
  for (int64_t i = 0; i < N; ++i) acc[xd[i]] += wc.data<double>()[i];
  Tensor out = empty_tensor({len}, dt);
  ND_DISPATCH_FLOAT(dt, "bincount", [&] {
    for (int64_t j = 0; j < len; ++j) out.data<scalar_t>()[j] = scalar_t(acc[j]);
  });
  set_outputs(c, {out});
}

void k_histc(Call& c) {
  const Tensor& x = c.inputs[0];
  const int64_t bins = c.attrs[0].i;
  double lo = c.attrs[1].to_double(), hi = c.attrs[2].to_double();
  if (!is_floating(x.dtype())) throw TypeError(std::string("[histc] expected a floating dtype, got ") + dtype_name(x.dtype()));
  if (bins <= 0) throw ValueError("[histc] bins must be > 0, got " + std::to_string(bins));
  if (lo > hi)
    throw ValueError("[histc] max must be larger than min, got min " + std::to_string(lo) + " and max " + std::to_string(hi));
  Tensor xd = cast_to(x, DType::Float64).contiguous();
  const double* d = xd.data<double>();
  const int64_t N = xd.numel();
  if (lo == hi && N > 0) {  // min == max: the data's range
    lo = INFINITY;
    hi = -INFINITY;
    for (int64_t i = 0; i < N; ++i)
      if (!std::isnan(d[i])) {
        lo = std::min(lo, d[i]);
        hi = std::max(hi, d[i]);
      }
    if (lo > hi) lo = hi = 0;
  }
  if (lo == hi) {
    lo -= 1;
    hi += 1;
  }
  if (!std::isfinite(lo) || !std::isfinite(hi))
    throw ValueError("[histc] range of [" + std::to_string(lo) + ", " + std::to_string(hi) + "] is not finite");
  std::vector<double> count(bins, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    double v = d[i];
    if (std::isnan(v) || v < lo || v > hi) continue;
    int64_t pos = (int64_t)((v - lo) * (double)bins / (hi - lo));
    ++count[std::min(pos, bins - 1)];
  }
  Tensor out = empty_tensor({bins}, x.dtype());
  ND_DISPATCH_FLOAT(x.dtype(), "histc", [&] {
    for (int64_t j = 0; j < bins; ++j) out.data<scalar_t>()[j] = scalar_t((typename compute_type<scalar_t>::type)count[j]);
  });
  set_outputs(c, {out});
}

}  // namespace nd
