// Elementwise ops with attributes: clamp, where, nan_to_num, gelu, softplus, threshold_backward;
// and the output layout rule every elementwise kernel allocates by (Note [Output layout]).
#include <algorithm>
#include <limits>
#include <numeric>

#include "loops.h"
#include "simd_dispatch.h"
#include "unary_ops.h"
#include "vecmath.h"

namespace nd {

// ---- output layout (Note [Output layout]) ----------------------------------------------------
namespace {

// Row-major strides exactly, size-1 dims included.
bool exactly_row_major(const Tensor& t) {
  int64_t acc = 1;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    if (t.strides()[d] != acc) return false;
    acc *= std::max<int64_t>(t.sizes()[d], 1);
  }
  return true;
}

// torch's is_contiguous: strides of size-1 dims are free, an empty tensor is contiguous.
bool torch_contiguous(const Shape& sz, const Shape& st) {
  if (numel_of(sz) == 0) return true;
  int64_t z = 1;
  for (int64_t d = (int64_t)sz.size() - 1; d >= 0; --d) {
    if (sz[d] == 1) continue;
    if (st[d] != z) return false;
    z *= sz[d];
  }
  return true;
}

bool channels_last_contiguous(const Shape& sz, const Shape& st) {
  if (sz.size() != 4) return false;
  int64_t z = 1;
  for (int d : {1, 3, 2, 0}) {
    if (sz[d] == 1) continue;
    if (st[d] != z) return false;
    z *= sz[d];
  }
  return true;
}

// torch's is_non_overlapping_and_dense: some order of the dims is row-major.
bool non_overlapping_dense(const Shape& sz, const Shape& st) {
  const size_t n = sz.size();
  if (n == 1) return sz[0] < 2 || st[0] == 1;
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::sort(perm.begin(), perm.end(), [&](int a, int b) {
    if (sz[a] < 2) return false;
    if (sz[b] < 2) return true;
    return st[a] < st[b];
  });
  int64_t need = 1;
  for (int d : perm) {
    if (sz[d] < 2) return true;
    if (st[d] != need) return false;
    need *= sz[d];
  }
  return true;
}

// Insertion sort of the dims, innermost first, by should_swap(d0, d1): > 0 puts d0 outside d1,
// < 0 keeps the order, 0 (ambiguous) lets d1 travel further in. Starts from row-major order.
template <typename Cmp>
std::vector<int> order_dims(int n, Cmp should_swap) {
  std::vector<int> perm(n);
  for (int j = 0; j < n; ++j) perm[j] = n - 1 - j;
  for (int i = 1; i < n; ++i) {
    int d1 = i;
    for (int d0 = i - 1; d0 >= 0; --d0) {
      const int cmp = should_swap(perm[d0], perm[d1]);
      if (cmp > 0) {
        std::swap(perm[d0], perm[d1]);
        d1 = d0;
      } else if (cmp < 0) {
        break;
      }
    }
  }
  return perm;
}

// torch's infer_dense_strides: the layout `.to()` gives an input that is not dense.
Shape infer_dense_strides(const Shape& sz, const Shape& st) {
  const int n = (int)sz.size();
  if (n == 0) return {};
  auto perm = order_dims(n, [&](int a, int b) {
    if (st[a] == 0 || st[b] == 0) return 0;
    if (st[a] != st[b]) return st[a] < st[b] ? -1 : 1;
    return sz[a] > sz[b] ? 1 : 0;
  });
  Shape out(n);
  int64_t acc = 1;
  for (int d : perm) {
    out[d] = acc;
    if (sz[d] > 1) acc *= sz[d];
  }
  return out;
}

Tensor empty_strided_cpu(const Shape& sizes, const Shape& strides, DType dt, Device dev) {
  Tensor t = empty_tensor({numel_of(sizes)}, dt, dev);
  t.impl()->sizes = sizes;
  t.impl()->strides = strides;
  return t;
}

// Strides putting dims innermost-first in `order` (channels_last: C, W, H, N).
Shape strides_in_order(const Shape& sz, std::initializer_list<int> order) {
  Shape st(sz.size());
  int64_t acc = 1;
  for (int d : order) {
    st[d] = acc;
    acc *= std::max<int64_t>(sz[d], 1);
  }
  return st;
}

bool dense_in_order(const Shape& sz, const Shape& st, std::initializer_list<int> order) {
  int64_t z = 1;
  for (int d : order) {
    if (sz[d] == 1) continue;
    if (st[d] != z) return false;
    z *= sz[d];
  }
  return true;
}

}  // namespace

// Note [Memory formats]
// torch's memory_format names a layout: "preserve_format" (the default of clone, .to and the
// elementwise ops) keeps a dense input's strides and makes any other input dense in the order
// of its strides; "contiguous_format" is row-major; "channels_last" / "channels_last_3d" put the
// channel dim innermost (NHWC / NDHWC) and exist for 4-D / 5-D tensors only.
Shape strides_for_format(const Tensor& x, const std::string& format, const char* op) {
  const Shape& sz = x.sizes();
  if (format.empty() || format == "preserve_format") {
    if (x.dim() <= 1 || exactly_row_major(x)) return contiguous_strides(sz);
    return non_overlapping_dense(sz, x.strides()) ? x.strides() : infer_dense_strides(sz, x.strides());
  }
  if (format == "contiguous_format") return contiguous_strides(sz);
  if (format == "channels_last") {
    if (sz.size() != 4)
      throw ValueError(std::string("[") + op + "] required rank 4 tensor to use channels_last format, got " +
                       std::to_string(sz.size()) + "-D");
    return strides_in_order(sz, {1, 3, 2, 0});
  }
  if (format == "channels_last_3d") {
    if (sz.size() != 5)
      throw ValueError(std::string("[") + op + "] required rank 5 tensor to use channels_last_3d format, got " +
                       std::to_string(sz.size()) + "-D");
    return strides_in_order(sz, {1, 4, 3, 2, 0});
  }
  throw ValueError(std::string("[") + op + "] unknown memory_format '" + format +
                   "': expected preserve_format, contiguous_format, channels_last or channels_last_3d");
}

Tensor empty_in_format(const Tensor& x, DType dt, Device dev, const std::string& format, const char* op) {
  if ((format.empty() || format == "preserve_format" || format == "contiguous_format") &&
      (x.dim() <= 1 || exactly_row_major(x)))
    return empty_tensor(x.sizes(), dt, dev);  // the common case, without building strides
  return empty_strided_cpu(x.sizes(), strides_for_format(x, format, op), dt, dev);
}

bool is_contiguous_in_format(const Shape& sz, const Shape& st, const std::string& format) {
  if (format.empty() || format == "contiguous_format") return torch_contiguous(sz, st);
  if (format == "channels_last") return sz.size() == 4 && dense_in_order(sz, st, {1, 3, 2, 0});
  if (format == "channels_last_3d") return sz.size() == 5 && dense_in_order(sz, st, {1, 4, 3, 2, 0});
  throw ValueError("[is_contiguous] memory_format '" + format +
                   "' is not a layout a tensor can be contiguous in: expected contiguous_format, channels_last or "
                   "channels_last_3d");
}

namespace {
// Inputs that are all exactly row-major (broadcast or not, the common case) never reorder dims,
// so they skip the sort.
bool plain_layout(const std::vector<Tensor>& inputs, const Shape& shape) {
  if (shape.size() <= 1) return true;
  if (numel_of(shape) == 0) return false;
  for (const Tensor& t : inputs)
    if (!exactly_row_major(t)) return false;
  return true;
}
}  // namespace

Shape elementwise_out_strides(const std::vector<Tensor>& inputs, const Shape& shape) {
  const int n = (int)shape.size();
  if (plain_layout(inputs, shape)) return contiguous_strides(shape);
  // torch's fast setup, taken when the inputs have one shape (a 0-d first input does not count,
  // as in TensorIterator::compute_shape)
  bool same = true;
  const Shape* seen = nullptr;
  for (const Tensor& t : inputs) {
    if (!seen || seen->empty()) seen = &t.sizes();
    else if (t.sizes() != *seen) same = false;
  }
  if (same) {
    bool contig = true, cl = true, dense = true, equal = true;
    for (const Tensor& t : inputs) {
      contig = contig && torch_contiguous(t.sizes(), t.strides());
      cl = cl && channels_last_contiguous(t.sizes(), t.strides());
      dense = dense && non_overlapping_dense(t.sizes(), t.strides());
      equal = equal && t.strides() == inputs.back().strides();
    }
    if (contig) return contiguous_strides(shape);
    if (cl) return {shape[1] * shape[3] * shape[2], 1, shape[1] * shape[3], shape[1]};
    if (dense && equal) return inputs.back().strides();
  }
  // the general rule over byte strides, a broadcast dim's stride 0
  std::vector<Shape> sb(inputs.size(), Shape(n, 0));
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& t = inputs[k];
    const int off = n - (int)t.dim();
    for (int i = 0; i < (int)t.dim(); ++i)
      sb[k][off + i] = (t.sizes()[i] == 1 && shape[off + i] != 1) ? 0 : t.strides()[i] * (int64_t)t.itemsize();
  }
  auto perm = order_dims(n, [&](int a, int b) {
    for (const Shape& s : sb) {
      if (s[a] == 0 || s[b] == 0) continue;
      if (s[a] != s[b]) return s[a] < s[b] ? -1 : 1;
      if (shape[a] > shape[b]) return 1;
    }
    return 0;
  });
  bool row_major = true;
  for (int j = 0; j < n; ++j) row_major = row_major && perm[j] == n - 1 - j;
  if (row_major) return contiguous_strides(shape);
  Shape out(n);
  int64_t acc = 1;
  for (int d : perm) {
    out[d] = acc;
    acc *= shape[d];
  }
  return out;
}

Tensor prepare_output_like(Call& call, TensorRefs inputs, const Shape& shape, DType out_dtype, Device dev) {
  bool plain = shape.size() <= 1;
  if (!plain && numel_of(shape) != 0) {
    plain = true;
    for (const Tensor& t : inputs) plain = plain && exactly_row_major(t);
  }
  if ((call.outputs.empty() || !call.outputs[0].defined()) && !plain) {
    Shape st = elementwise_out_strides(std::vector<Tensor>(inputs.begin(), inputs.end()), shape);
    if (st != contiguous_strides(shape)) {
      call.outputs.resize(std::max<size_t>(call.outputs.size(), 1));
      call.outputs[0] = empty_strided_cpu(shape, st, out_dtype, dev);
      return call.outputs[0];
    }
  }
  return prepare_output(call, shape, out_dtype, out_dtype, dev);
}

Tensor cast_keep_layout(const Tensor& t, DType dt) {
  if (t.dtype() == dt) return t;
  if (t.dim() <= 1 || exactly_row_major(t)) return cast_to(t, dt);
  Tensor out = empty_strided_cpu(
      t.sizes(), non_overlapping_dense(t.sizes(), t.strides()) ? t.strides() : infer_dense_strides(t.sizes(), t.strides()),
      dt, t.device());
  copy_into(out, t);
  out.impl()->wrapped_number = t.impl()->wrapped_number;
  return out;
}

// ---- kernels ---------------------------------------------------------------------------------
namespace {
// Bounds applied as plain selects so the loops vectorise; a NaN input stays NaN (the compare
// is false). NaN bounds never reach these loops (k_clamp fills NaN, as torch's clamp gives).
template <typename C> inline C lo_sel(C v, C l) { return v < l ? l : v; }
template <typename C> inline C hi_sel(C v, C h) { return v > h ? h : v; }

// Dense clamp rows in ISA variants (See Note [ISA variants]): a compare and a select per
// element, so they run at the CPU's full vector width.
template <typename T, bool Lo, bool Hi>
ND_SIMD_KERNEL(ClampDense, (T* __restrict o, const T* __restrict a, int64_t n, typename compute_type<T>::type l,
                            typename compute_type<T>::type h), {
  using C = typename compute_type<T>::type;
  for (int64_t i = 0; i < n; ++i) {
    C v = C(a[i]);
    if constexpr (Lo) v = lo_sel(v, l);
    if constexpr (Hi) v = hi_sel(v, h);
    o[i] = T(v);
  }
})

template <typename T, bool Lo, bool Hi>
void clamp_loop(char** p, const int64_t* s, int64_t n, typename compute_type<T>::type l, typename compute_type<T>::type h) {
  using C = typename compute_type<T>::type;
  if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T))
    return simd_run<ClampDense<T, Lo, Hi>>(reinterpret_cast<T*>(p[0]), reinterpret_cast<const T*>(p[1]), n, l, h);
  for (int64_t i = 0; i < n; ++i) {
    C v = load<T>(p[1] + i * s[1]);
    if constexpr (Lo) v = lo_sel(v, l);
    if constexpr (Hi) v = hi_sel(v, h);
    store<T>(p[0] + i * s[0], v);
  }
}

// A bound for an integer dtype, range-checked as torch does (unsigned types also accept the
// signed range, wrapping: uint8 clamp(min=-5) is 251).
template <typename T>
T int_bound(const Value& v) {
  const int64_t i = v.to_int();
  using L = std::numeric_limits<T>;
  [[maybe_unused]] const int64_t lo = std::is_unsigned_v<T> ? -(int64_t(1) << (8 * sizeof(T) - 1)) : (int64_t)L::min();
  if constexpr (!std::is_same_v<T, int64_t>) {
    if (i < lo || i > (int64_t)L::max())
      throw ValueError("[clamp] value " + std::to_string(i) + " cannot be converted to type " +
                       dtype_name(dtype_of<T>::value) + " without overflow");
  }
  return T(i);
}

// Contiguous float32 gelu/softplus in ISA variants over vecmath.h (libm's erf/tanh/exp/log1p do
// not vectorise and dominated these ops). Same formulas as the strided loops below, except the
// erf form of gelu: vm::gelu_erf_f32 is accurate to gelu's tolerance, not erf's 2 ulp.
ND_SIMD_KERNEL(GeluErfF32, (const float* __restrict a, float* __restrict o, int64_t n), {
  for (int64_t i = 0; i < n; ++i) o[i] = vm::gelu_erf_f32(a[i]);
})
ND_SIMD_KERNEL(GeluTanhF32, (const float* __restrict a, float* __restrict o, int64_t n), {
  for (int64_t i = 0; i < n; ++i) {
    float v = a[i];
    o[i] = 0.5f * v * (1.0f + vm::tanh_f32(0.79788456080286536f * (v + 0.044715f * v * v * v)));
  }
})
// Both branches are computed and selected so the loop stays branch-free (exp overflow to inf is
// harmless: those lanes take v).
ND_SIMD_KERNEL(SoftplusF32, (const float* __restrict a, float* __restrict o, int64_t n, float beta, float thr), {
  for (int64_t i = 0; i < n; ++i) {
    float v = a[i], bv = v * beta;
    float soft = vm::log1p_f32(vm::exp_f32(bv)) / beta;
    o[i] = bv > thr ? v : soft;
  }
})
// torch's rule: grad is dropped where self <= threshold, so a NaN self passes the gradient.
// Rows with dense x and out; grad dense (GradConst false) or one value per row (true: the
// expanded grad of `relu(x).sum().backward()`, or a (N,C,1,1) grad).
template <typename T, bool GradConst>
ND_SIMD_KERNEL(ThresholdBackwardRows,
               (char* po, const char* pg, const char* px, int64_t n, int64_t rows, const int64_t* so, T thr), {
  for (int64_t r = 0; r < rows; ++r) {
    T* __restrict o = reinterpret_cast<T*>(po + r * so[0]);
    const T* __restrict g = reinterpret_cast<const T*>(pg + r * so[1]);
    const T* __restrict x = reinterpret_cast<const T*>(px + r * so[2]);
    if constexpr (GradConst) {
      const T gv = g[0];
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] <= thr ? T(0) : gv;
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = x[i] <= thr ? T(0) : g[i];
    }
  }
})

template <typename T>
inline bool contig(const int64_t* s, int k) {
  for (int i = 0; i < k; ++i)
    if (s[i] != (int64_t)sizeof(T)) return false;
  return true;
}

template <typename T>
void threshold_backward_loop(char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows,
                             typename compute_type<T>::type t) {
  constexpr int64_t z = sizeof(T);
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (s[0] == z && s[2] == z && (s[1] == z || s[1] == 0)) {
      if (s[1] == 0) return simd_run<ThresholdBackwardRows<T, true>>(p[0], p[1], p[2], n, rows, so, T(t));
      return simd_run<ThresholdBackwardRows<T, false>>(p[0], p[1], p[2], n, rows, so, T(t));
    }
  }
  using C = typename compute_type<T>::type;
  for (int64_t r = 0; r < rows; ++r) {
    char* o = p[0] + r * so[0];
    const char* g = p[1] + r * so[1];
    const char* x = p[2] + r * so[2];
    for (int64_t i = 0; i < n; ++i) {
      // both loads unconditional so the select compiles to a blend, not a mispredicted branch
      const C gv = load<T>(g + i * s[1]), xv = load<T>(x + i * s[2]);
      store<T>(o + i * s[0], xv <= t ? C(0) : gv);
    }
  }
}

}  // namespace

void k_clamp(Call& c) {
  const Tensor& x = c.inputs[0];
  const Value &lo = c.attrs[0], &hi = c.attrs[1];
  if (lo.is_none() && hi.is_none()) throw ValueError("[clamp] at least one of 'min' or 'max' must not be None");
  DType dt = x.dtype();
  if (!is_floating(dt) && ((lo.kind == Value::Kind::Double) || (hi.kind == Value::Kind::Double))) dt = default_float_dtype();
  if (dt == DType::Bool) {  // an int bound promotes as torch's result_type does (bool -> int64)
    if (lo.kind != Value::Kind::Int && hi.kind != Value::Kind::Int)
      throw TypeError("[clamp] is not supported for bool tensors with bool bounds");
    dt = DType::Int64;
  }
  Tensor xin = cast_keep_layout(x, dt);
  Tensor out = prepare_output_like(c, {xin}, x.sizes(), dt, x.device());
  StridedLoop<2> loop({out, xin}, x.sizes(), "clamp");
  ND_DISPATCH_ALL(dt, "clamp", [&] {
    using C = typename compute_type<scalar_t>::type;
    if constexpr (!std::is_same_v<scalar_t, bool>) {
      C l = C(0), h = C(0);
      if constexpr (std::is_integral_v<scalar_t>) {
        if (!lo.is_none()) l = int_bound<scalar_t>(lo);
        if (!hi.is_none()) h = int_bound<scalar_t>(hi);
      } else {
        if (!lo.is_none()) l = C(lo.to_double());
        if (!hi.is_none()) h = C(hi.to_double());
      }
      if constexpr (std::is_floating_point_v<C>) {
        if (l != l || h != h) {  // a NaN bound makes every element NaN
          loop.run([&](char** p, const int64_t* s, int64_t n) {
            for (int64_t i = 0; i < n; ++i) store<scalar_t>(p[0] + i * s[0], C(NAN));
          }, kGrainCheap);
          return;
        }
      }
      // a grain in bytes, as for copies (see copy_into): one-byte images stay on one thread longer
      const int64_t grain = kGrainCheap * 4 / (int64_t)sizeof(scalar_t);
      auto go = [&](auto fn) {
        loop.run([&](char** p, const int64_t* s, int64_t n) { fn(p, s, n, l, h); }, grain);
      };
      if (lo.is_none()) go(clamp_loop<scalar_t, false, true>);
      else if (hi.is_none()) go(clamp_loop<scalar_t, true, false>);
      else go(clamp_loop<scalar_t, true, true>);
    }
  });
  finish_output(c, out);
}

void k_where(Call& c) {
  Tensor cond = c.inputs[0];
  if (cond.dtype() != DType::Bool && cond.dtype() != DType::UInt8)
    throw TypeError(std::string("[where] expected condition to be a bool tensor, got ") + dtype_name(cond.dtype()));
  if (cond.dtype() != DType::Bool) cond = cast_keep_layout(cond, DType::Bool);
  DType dt = result_type({c.inputs[1], c.inputs[2]});
  Tensor a = cast_keep_layout(c.inputs[1], dt), b = cast_keep_layout(c.inputs[2], dt);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor out = prepare_output_like(c, {cond, a, b}, shape, dt, a.device());
  StridedLoop<4> loop({out, cond, a, b}, shape, "where");
  ND_DISPATCH_ALL(dt, "where", [&] {
    loop.run(
        [](char** p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i)
            *reinterpret_cast<scalar_t*>(p[0] + i * s[0]) = *reinterpret_cast<bool*>(p[1] + i * s[1])
                                                                ? *reinterpret_cast<scalar_t*>(p[2] + i * s[2])
                                                                : *reinterpret_cast<scalar_t*>(p[3] + i * s[3]);
        },
        kGrainCheap);
  });
  finish_output(c, out);
}

void k_nan_to_num(Call& c) {
  const Tensor& x = c.inputs[0];
  Tensor out = prepare_output_like(c, {x}, x.sizes(), x.dtype(), x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), "nan_to_num");
  if (!is_floating(x.dtype())) {
    copy_into(out, x);
    return finish_output(c, out);
  }
  ND_DISPATCH_FLOAT(x.dtype(), "nan_to_num", [&] {
    using C = typename compute_type<scalar_t>::type;
    const double big = x.dtype() == DType::Float64 ? 1.7976931348623157e308
                       : x.dtype() == DType::Float32 ? 3.4028234663852886e38
                       : x.dtype() == DType::Float16 ? 65504.0 : 3.3895313892515355e38;
    const C nanv = C(c.attrs[0].is_none() ? 0.0 : c.attrs[0].to_double());
    const C pos = C(c.attrs[1].is_none() ? big : c.attrs[1].to_double());
    const C neg = C(c.attrs[2].is_none() ? -big : c.attrs[2].to_double());
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i) {
            C v = load<scalar_t>(p[1] + i * s[1]);
            v = v != v ? nanv : (v == C(INFINITY) ? pos : (v == C(-INFINITY) ? neg : v));
            store<scalar_t>(p[0] + i * s[0], v);
          }
        },
        kGrainCheap);
  });
  finish_output(c, out);
}

void k_gelu(Call& c) {
  Tensor x = c.inputs[0];
  const std::string& approx = c.attrs[0].s;
  if (approx != "none" && approx != "tanh")
    throw ValueError("[gelu] approximate must be 'none' or 'tanh', got '" + approx + "'");
  DType dt = is_floating(x.dtype()) ? x.dtype() : default_float_dtype();
  x = cast_keep_layout(x, dt);
  Tensor out = prepare_output_like(c, {x}, x.sizes(), dt, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), "gelu");
  const bool tanh_form = approx == "tanh";
  ND_DISPATCH_FLOAT(dt, "gelu", [&] {
    using C = typename compute_type<scalar_t>::type;
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
          if constexpr (std::is_same_v<scalar_t, float>) {
            if (contig<float>(s, 2)) {
              auto* a = reinterpret_cast<const float*>(p[1]);
              auto* o = reinterpret_cast<float*>(p[0]);
              return tanh_form ? simd_run<GeluTanhF32>(a, o, n) : simd_run<GeluErfF32>(a, o, n);
            }
          }
          for (int64_t i = 0; i < n; ++i) {
            C v = load<scalar_t>(p[1] + i * s[1]);
            C r = tanh_form ? C(0.5) * v * (C(1) + std::tanh(C(0.7978845608028654) * (v + C(0.044715) * v * v * v)))
                            : C(0.5) * v * (C(1) + std::erf(v * C(0.7071067811865476)));
            store<scalar_t>(p[0] + i * s[0], r);
          }
        },
        kGrainExpensive);
  });
  finish_output(c, out);
}

void k_softplus(Call& c) {
  Tensor x = c.inputs[0];
  DType dt = is_floating(x.dtype()) ? x.dtype() : default_float_dtype();
  x = cast_keep_layout(x, dt);
  Tensor out = prepare_output_like(c, {x}, x.sizes(), dt, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), "softplus");
  const double beta = c.attrs[0].to_double(), threshold = c.attrs[1].to_double();
  ND_DISPATCH_FLOAT(dt, "softplus", [&] {
    using C = typename compute_type<scalar_t>::type;
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
          if constexpr (std::is_same_v<scalar_t, float>) {
            if (contig<float>(s, 2))
              return simd_run<SoftplusF32>(reinterpret_cast<const float*>(p[1]), reinterpret_cast<float*>(p[0]), n,
                                           float(beta), float(threshold));
          }
          for (int64_t i = 0; i < n; ++i) {
            C v = load<scalar_t>(p[1] + i * s[1]);
            C bv = v * C(beta);
            store<scalar_t>(p[0] + i * s[0], bv > C(threshold) ? v : std::log1p(std::exp(bv)) / C(beta));
          }
        },
        kGrainExpensive);
  });
  finish_output(c, out);
}

void k_threshold_backward(Call& c) {
  DType dt = result_type({c.inputs[0], c.inputs[1]});
  if (!is_floating(dt))
    throw TypeError(std::string("[threshold_backward] expected floating-point grad_output and self, got ") +
                    dtype_name(c.inputs[0].dtype()) + " and " + dtype_name(c.inputs[1].dtype()));
  Tensor g = cast_keep_layout(c.inputs[0], dt), x = cast_keep_layout(c.inputs[1], dt);
  Shape shape = broadcast_shapes(g.sizes(), x.sizes(), "threshold_backward");
  Tensor out = prepare_output_like(c, {g, x}, shape, dt, g.device());
  StridedLoop<3> loop({out, g, x}, shape, "threshold_backward");
  const double thr = c.attrs[0].to_double();
  ND_DISPATCH_FLOAT(dt, "threshold_backward", [&] {
    using C = typename compute_type<scalar_t>::type;
    const C t = C(thr);
    loop.run2d([&](char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
      threshold_backward_loop<scalar_t>(p, s, so, n, rows, t);
    }, kGrainCheap);
  });
  finish_output(c, out);
}

}  // namespace nd
