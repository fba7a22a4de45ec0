// Elementwise unary kernels: the functors of unary_ops.h over StridedLoop.
#include "loops.h"
#include "simd_dispatch.h"
#include "unary_ops.h"

namespace nd {
namespace {

// Contiguous float/double loops in ISA variants: vecmath.h's functions and the plain arithmetic
// functors vectorise at the CPU's full width (see Note [ISA variants]).
template <typename F, typename T>
ND_SIMD_KERNEL(UnaryContig, (const T* __restrict a, T* __restrict o, int64_t n), {
  F f;
  for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
})

template <typename F, typename In, typename Out>
void unary_loop(char** p, const int64_t* s, int64_t n) {
  using C = typename compute_type<In>::type;
  F f;
  if (s[0] == (int64_t)sizeof(Out) && s[1] == (int64_t)sizeof(In)) {
    if constexpr (std::is_same_v<In, Out> && (std::is_same_v<In, float> || std::is_same_v<In, double>)) {
      simd_run<UnaryContig<F, In>>(reinterpret_cast<const In*>(p[1]), reinterpret_cast<Out*>(p[0]), n);
    } else {
      Out* __restrict o = reinterpret_cast<Out*>(p[0]);
      const In* __restrict a = reinterpret_cast<const In*>(p[1]);
      for (int64_t i = 0; i < n; ++i) o[i] = Out(f(C(a[i])));
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) store<Out>(p[0] + i * s[0], f(load<In>(p[1] + i * s[1])));
}

// Integer and bool inputs of floating ops compute in the default float dtype (torch's rule).
template <typename F>
void unary_float(Call& c) {
  Tensor x = c.inputs[0];
  DType dt = is_floating(x.dtype()) ? x.dtype() : default_float_dtype();
  x = cast_to(x, dt);
  Tensor out = prepare_output(c, x.sizes(), dt, dt, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_FLOAT(dt, c.name(), [&] { loop.run(unary_loop<F, scalar_t, scalar_t>, kGrainExpensive); });
  finish_output(c, out);
}

template <typename F>
void unary_same(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.dtype() == DType::Bool)
    throw TypeError(std::string("[") + c.name() + "] is not supported for bool tensors (got shape " +
                    shape_str(x.sizes()) + ", dtype bool)");
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), x.dtype(), x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] {
    if constexpr (!std::is_same_v<scalar_t, bool>) loop.run(unary_loop<F, scalar_t, scalar_t>, kGrainCheap);
  });
  finish_output(c, out);
}

template <typename F>
void unary_pred(Call& c) {
  const Tensor& x = c.inputs[0];
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), DType::Bool, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] { loop.run(unary_loop<F, scalar_t, bool>, kGrainCheap); });
  finish_output(c, out);
}

template <typename F>
void unary_int(Call& c) {
  const Tensor& x = c.inputs[0];
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), x.dtype(), x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), c.name());
  ND_DISPATCH_INT(x.dtype(), c.name(), [&] { loop.run(unary_loop<F, scalar_t, scalar_t>, kGrainCheap); });
  finish_output(c, out);
}

}  // namespace

#define ND_DEFINE_FLOAT(name, F) void k_##name(Call& c) { unary_float<ufn::F>(c); }
#define ND_DEFINE_SAME(name, F) void k_##name(Call& c) { unary_same<ufn::F>(c); }
#define ND_DEFINE_PRED(name, F) void k_##name(Call& c) { unary_pred<ufn::F>(c); }
#define ND_DEFINE_INT(name, F) void k_##name(Call& c) { unary_int<ufn::F>(c); }
ND_UNARY_FLOAT_OPS(ND_DEFINE_FLOAT)
ND_UNARY_SAME_OPS(ND_DEFINE_SAME)
ND_UNARY_PRED_OPS(ND_DEFINE_PRED)
ND_UNARY_INT_OPS(ND_DEFINE_INT)

}  // namespace nd
