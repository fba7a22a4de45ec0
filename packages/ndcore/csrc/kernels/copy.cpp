// Broadcasting, promotion, output preparation, and the copy/cast family of kernels.
#include <cstring>

#include "loops.h"
#include "simd_dispatch.h"

namespace nd {

namespace {
DType g_default_float = DType::Float32;
}
DType default_float_dtype() { return g_default_float; }
void set_default_float_dtype(DType dt) {
  if (!is_floating(dt)) throw TypeError(std::string("[set_default_dtype] only floating dtypes are supported, got ") + dtype_name(dt));
  g_default_float = dt;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  if (a.size() != b.size() && rank_promotion_policy() != 0 && !a.empty() && !b.empty()) {
    std::string msg = std::string("[") + op + "] broadcasting promotes rank: shapes " + shape_str(a) + " and " + shape_str(b);
    if (rank_promotion_policy() == 2) throw ValueError(msg + " (broadcast policy is 'raise')");
    warn(msg);
  }
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ValueError(std::string("[") + op + "] shapes " + shape_str(a) + " and " + shape_str(b) +
                       " are not broadcastable (dim " + std::to_string(i) + ": " + std::to_string(da) + " vs " +
                       std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op) {
  const Shape& s = t.sizes();
  if (s.size() > shape.size())
    throw ValueError(std::string("[") + op + "] cannot broadcast shape " + shape_str(s) + " to " + shape_str(shape));
  Shape out(shape.size(), 0);
  size_t lead = shape.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == shape[lead + i]) {
      out[lead + i] = t.strides()[i];
    } else if (s[i] != 1) {
      throw ValueError(std::string("[") + op + "] cannot broadcast shape " + shape_str(s) + " to " + shape_str(shape));
    }
  }
  return out;
}

DType result_type(const std::vector<Tensor>& ts) {
  // Three priority groups: tensors with dims, 0-d tensors, wrapped Python numbers.
  int have[3] = {0, 0, 0};
  DType res[3] = {DType::Bool, DType::Bool, DType::Bool};
  for (const auto& t : ts) {
    if (!t.defined()) continue;
    int g = t.impl()->wrapped_number ? 2 : (t.dim() == 0 ? 1 : 0);
    DType dt = t.dtype();
    if (g == 2) {  // a Python float counts as the default dtype, an int as int64
      dt = is_floating(dt) ? default_float_dtype() : dt;
    }
    res[g] = have[g] ? promote_types(res[g], dt) : dt;
    have[g] = 1;
  }
  auto combine = [](bool has_hi, DType hi, bool has_lo, DType lo) -> std::pair<bool, DType> {
    if (!has_hi) return {has_lo, lo};
    if (!has_lo) return {true, hi};
    if (category(lo) > category(hi)) return {true, promote_types(hi, lo)};
    return {true, hi};
  };
  // a call on Python numbers alone computes in their own dtype (Note [Arithmetic on numbers])
  if (!have[0] && !have[1] && have[2] && numbers_only_call()) {
    DType exact = DType::Bool;
    for (const auto& t : ts)
      if (t.defined()) exact = promote_types(exact, t.dtype());
    return exact;
  }
  auto low = combine(have[1], res[1], have[2], res[2]);
  auto all = combine(have[0], res[0], low.first, low.second);
  return all.second;
}

namespace {
// dst[i] = src[-i] for one-byte elements without AVX2: eight at a time through a byte swap,
// which compilers do not find on their own (flip of uint8 images along their width).
inline void reverse_bytes(uint8_t* d, const uint8_t* a, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, a - i - 7, 8);
    w = __builtin_bswap64(w);
    std::memcpy(d + i, &w, 8);
  }
  for (; i < n; ++i) d[i] = a[-i];
}

// dst[i] = src[-i]; in ISA variants (See Note [ISA variants]): AVX2 reverses 32 bytes in two
// shuffles, AVX-512 64.
template <typename D, typename S>
inline __attribute__((always_inline)) void reverse_dense(D* d, const S* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = D((typename compute_type<D>::type)(typename compute_type<S>::type)a[-i]);
}
template <typename T>
ND_SIMD_KERNEL(ReverseDense, (T* d, const T* a, int64_t n), { reverse_dense<T, T>(d, a, n); })

template <typename D, typename S>
void copy_loop(char** p, const int64_t* s, int64_t n) {
  // A source running backwards (flip, negative-stride views) into a dense destination.
  if (s[0] == (int64_t)sizeof(D) && s[1] == -(int64_t)sizeof(S)) {
    D* d = reinterpret_cast<D*>(p[0]);
    const S* a = reinterpret_cast<const S*>(p[1]);
    if constexpr (std::is_same_v<D, S>) {
      // SSE2 has no byte shuffle, so at the baseline level bytes go through byte swaps
      static const bool wide = simd_level() != SimdLevel::Baseline;
      if (wide) simd_run<ReverseDense<D>>(d, a, n);
      else if constexpr (sizeof(D) == 1) reverse_bytes(reinterpret_cast<uint8_t*>(d), reinterpret_cast<const uint8_t*>(a), n);
      else reverse_dense<D, S>(d, a, n);
    } else {
      reverse_dense<D, S>(d, a, n);
    }
    return;
  }
  if (s[0] == (int64_t)sizeof(D) && s[1] == (int64_t)sizeof(S)) {
    D* d = reinterpret_cast<D*>(p[0]);
    const S* a = reinterpret_cast<const S*>(p[1]);
    if constexpr (std::is_same_v<D, S>) {
      std::memcpy(d, a, n * sizeof(D));
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = D((typename compute_type<D>::type)(typename compute_type<S>::type)a[i]);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i)
    *reinterpret_cast<D*>(p[0] + i * s[0]) =
        D((typename compute_type<D>::type)(typename compute_type<S>::type)(*reinterpret_cast<const S*>(p[1] + i * s[1])));
}
// A block of rows whose source runs down the rows instead of along them (a transposed source
// into a dense destination): copied in square tiles, so the source cache lines one tile touches
// (one per column) serve all of its rows instead of being fetched again for every row.
template <typename T>
void copy_transposed(char* pd, const char* ps, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
  constexpr int64_t B = sizeof(T) >= 4 ? 16 : 64 / (int64_t)sizeof(T);
  for (int64_t r0 = 0; r0 < rows; r0 += B) {
    const int64_t rr = std::min(B, rows - r0);
    for (int64_t i0 = 0; i0 < n; i0 += B) {
      const int64_t cc = std::min(B, n - i0);
      for (int64_t r = 0; r < rr; ++r) {
        T* d = reinterpret_cast<T*>(pd + (r0 + r) * so[0] + i0 * s[0]);
        const char* a = ps + (r0 + r) * so[1] + i0 * s[1];
        for (int64_t i = 0; i < cc; ++i) d[i] = *reinterpret_cast<const T*>(a + i * s[1]);
      }
    }
  }
}

template <typename T>
void copy_rows(char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
  constexpr int64_t z = sizeof(T);
  if (rows >= 4 && n >= 4 && s[0] == z && so[1] == z && s[1] != z) return copy_transposed<T>(p[0], p[1], s, so, n, rows);
  char* q[2] = {p[0], p[1]};
  for (int64_t r = 0; r < rows; ++r, q[0] += so[0], q[1] += so[1]) copy_loop<T, T>(q, s, n);
}

// bool targets test for non-zero rather than truncating (2.5 -> true, 0.5 -> true)
template <typename S>
void copy_to_bool(char** p, const int64_t* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    *reinterpret_cast<bool*>(p[0] + i * s[0]) =
        (typename compute_type<S>::type)(*reinterpret_cast<const S*>(p[1] + i * s[1])) != 0;
}
}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  if (!dst.device().is_cpu() || !src.device().is_cpu()) {
    Tensor s = src;
    if (s.sizes() != dst.sizes()) s = nd::expand(s, dst.sizes());
    if (!src.device().is_cpu() && dst.device().is_cpu()) {
      Tensor tmp = dst.is_contiguous() && dst.dtype() == src.dtype() ? dst : empty_tensor(dst.sizes(), src.dtype());
      device_backend(src.device().type)->copy_to_cpu(tmp, s);
      if (tmp.impl() != dst.impl()) copy_into(dst, tmp);
      return;
    }
    if (src.device().is_cpu() && !dst.device().is_cpu()) {
      Tensor c = s.dtype() == dst.dtype() && s.is_contiguous() ? s : nd::_to_copy(s, dst.dtype());
      if (!c.is_contiguous()) c = nd::clone(c, "contiguous_format");
      device_backend(dst.device().type)->copy_from_cpu(dst, c);
      return;
    }
    nd::_copy_from(src, dst);  // same non-CPU device: the backend's own copy
    return;
  }
  StridedLoop<2> loop({dst, src}, dst.sizes(), "copy_");
  // kGrainCheap counts 4-byte elements: a copy's cost follows its bytes, so narrower types need
  // more elements before a second thread pays for its wake-up
  const int64_t grain = kGrainCheap * 4 / (int64_t)std::max(dst.itemsize(), src.itemsize());
  ND_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
    using D = scalar_t;
    ND_DISPATCH_ALL(src.dtype(), "copy_", [&] {
      using S = scalar_t;
      if constexpr (std::is_same_v<D, bool> && !std::is_same_v<S, bool>) {
        loop.run(copy_to_bool<S>, grain);
      } else if constexpr (std::is_same_v<D, S>) {
        loop.run2d(copy_rows<D>, grain);
      } else {
        loop.run(copy_loop<D, S>, grain);
      }
    });
  });
}

Tensor cast_to(const Tensor& t, DType dt) {
  if (t.dtype() == dt) return t;
  Tensor out = empty_tensor(t.sizes(), dt, t.device());
  copy_into(out, t);
  out.impl()->wrapped_number = t.impl()->wrapped_number;
  return out;
}

Tensor prepare_output(Call& call, const Shape& shape, DType compute, DType out_dtype, Device dev) {
  if (call.outputs.empty() || !call.outputs[0].defined()) {
    call.outputs.resize(std::max<size_t>(call.outputs.size(), 1));
    call.outputs[0] = empty_tensor(shape, out_dtype, dev);
    return call.outputs[0];
  }
  Tensor& out = call.outputs[0];
  const char* op = call.name();
  // A stride-0 dim of size > 1 maps many output elements to one address: writing it is a race
  // and silently wrong, so refuse (as torch does) instead of writing garbage.
  for (int64_t d = 0; d < out.dim() && out.numel() > 0; ++d)
    if (out.strides()[d] == 0 && out.sizes()[d] > 1)
      throw ValueError(std::string("[") + op + (call.inplace ? "_" : "") + "] unsupported operation: more than one element of the written-to tensor (shape " +
                       shape_str(out.sizes()) + ", stride " + shape_str(out.strides()) + ") refers to a single memory location; clone() it first");
  if (!can_cast(out_dtype, out.dtype()))
    throw TypeError(std::string("[") + op + "] result type " + dtype_name(out_dtype) +
                    " can't be cast to the desired output type " + dtype_name(out.dtype()));
  if (out.sizes() != shape) {
    if (call.inplace)
      throw ValueError(std::string("[") + op + "_] output with shape " + shape_str(out.sizes()) +
                       " doesn't match the broadcast shape " + shape_str(shape));
    // out= of the wrong shape is resized, as torch does, when it owns its whole storage
    if (out.numel() != 0 && numel_of(shape) != out.numel())
      throw ValueError(std::string("[") + op + "] out= has shape " + shape_str(out.sizes()) + " but the result has shape " + shape_str(shape));
    if (numel_of(shape) != out.numel()) {
      Tensor fresh = empty_tensor(shape, out.dtype(), dev);
      out.impl()->storage = fresh.impl()->storage;
      out.impl()->offset = 0;
    }
    out.impl()->sizes = shape;
    out.impl()->strides = contiguous_strides(shape);
  }
  (void)compute;
  return out.dtype() == out_dtype ? out : empty_tensor(shape, out_dtype, dev);
}

void finish_output(Call& call, const Tensor& written) {
  if (written.impl() != call.outputs[0].impl()) copy_into(call.outputs[0], written);
}

// ---- kernels ---------------------------------------------------------------------------------
void k_clone(Call& c) {
  const Tensor& x = c.inputs[0];
  if ((c.outputs.empty() || !c.outputs[0].defined()) && x.device().is_cpu()) {  // Note [Memory formats]
    Tensor out = empty_in_format(x, x.dtype(), x.device(), c.attrs[0].is_none() ? std::string() : c.attrs[0].s, "clone");
    copy_into(out, x);
    c.outputs = {out};
    return;
  }
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), x.dtype(), x.device());
  copy_into(out, x);
  finish_output(c, out);
}

void k_to_copy(Call& c) {
  const Tensor& x = c.inputs[0];
  DType dt = c.attrs[0].is_none() ? x.dtype() : c.attrs[0].to_dtype();
  Device dev = c.attrs[1].is_none() ? x.device() : c.attrs[1].dev;
  // .to() preserves the layout (Note [Memory formats]) between CPU tensors; device backends get row-major
  Tensor out = dev.is_cpu() && x.device().is_cpu() ? empty_in_format(x, dt, dev, std::string(), "to")
                                                   : empty_tensor(x.sizes(), dt, dev);
  copy_into(out, x);
  c.outputs = {out};
}

// copy_(dst, src) in torch's argument order lives in Python; this op is `src._copy_from(dst)`.
void k_copy_from(Call& c) {
  const Tensor& src = c.inputs[0];
  const Tensor& dst = c.inputs[1];
  broadcast_strides(src, dst.sizes(), "copy_");  // validates broadcastability
  copy_into(dst, src);
  dst.bump_version();
  c.outputs = {dst};
}

void k_fill_(Call& c) {
  const Tensor& x = c.inputs[0];
  const Value& v = c.attrs[0];
  Tensor s = v.kind == Value::Kind::Double ? scalar_tensor(v.d, DType::Float64)
             : v.kind == Value::Kind::Bool ? scalar_tensor_bool(v.b)
                                            : scalar_tensor_int(v.i, DType::Int64);
  copy_into(x, s);
  c.outputs = {x};
}

void k_zero_(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.is_contiguous()) {
    std::memset(x.data_ptr(), 0, x.numel() * x.itemsize());
  } else {
    copy_into(x, scalar_tensor_int(0, x.dtype()));
  }
  c.outputs = {x};
}

}  // namespace nd
