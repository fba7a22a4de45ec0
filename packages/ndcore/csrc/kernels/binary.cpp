// Elementwise binary kernels: promotion, broadcasting and the functors of binary_ops.h.
#include "binary_ops.h"
#include "loops.h"
#include "simd.h"

namespace nd {
namespace {

// min/max are a compare and a select per element: worth a second, AVX2 build of their dense
// loops (See Note [Wide loops]); other ops are memory-bound or call libm.
template <typename F> constexpr bool wide_binary = std::is_same_v<F, bfn::Maximum> || std::is_same_v<F, bfn::Minimum>;

template <typename F, typename T, typename Out, bool ScalarB>
ND_ALWAYS_INLINE void binary_dense(const F& f, Out* __restrict o, const T* __restrict a, const T* __restrict b, int64_t n) {
  using C = typename compute_type<T>::type;
  if constexpr (ScalarB) {
    const C bv = C(b[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(C(a[i]), bv));
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(C(a[i]), C(b[i])));
  }
}
template <typename F, typename T, typename Out, bool ScalarB>
ND_TARGET_AVX2 void binary_dense_avx2(const F& f, Out* o, const T* a, const T* b, int64_t n) {
  binary_dense<F, T, Out, ScalarB>(f, o, a, b, n);
}

template <typename F, typename T, typename Out>
void binary_loop(const F& f, char** p, const int64_t* s, int64_t n) {
  using C = typename compute_type<T>::type;
  constexpr int64_t so = sizeof(Out), st = sizeof(T);
  Out* __restrict o = reinterpret_cast<Out*>(p[0]);
  const T* __restrict a = reinterpret_cast<const T*>(p[1]);
  const T* __restrict b = reinterpret_cast<const T*>(p[2]);
  if (s[0] == so && s[1] == st && s[2] == st) {
    if constexpr (wide_binary<F>) {
      if (cpu_has_avx2()) return binary_dense_avx2<F, T, Out, false>(f, o, a, b, n);
    }
    binary_dense<F, T, Out, false>(f, o, a, b, n);
  } else if (s[0] == so && s[1] == st && s[2] == 0) {
    if constexpr (wide_binary<F>) {
      if (cpu_has_avx2()) return binary_dense_avx2<F, T, Out, true>(f, o, a, b, n);
    }
    binary_dense<F, T, Out, true>(f, o, a, b, n);
  } else if (s[0] == so && s[1] == 0 && s[2] == st) {
    const C av = C(a[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(av, C(b[i])));
  } else {
    for (int64_t i = 0; i < n; ++i)
      store<Out>(p[0] + i * s[0], f(load<T>(p[1] + i * s[1]), load<T>(p[2] + i * s[2])));
  }
}

template <typename F, typename T, typename Out>
void run_binary(const F& f, StridedLoop<3>& loop) {
  loop.run([&](char** p, const int64_t* s, int64_t n) { binary_loop<F, T, Out>(f, p, s, n); }, kGrainCheap);
}

enum class Group { All, Numeric, Float, Int, Compare };

struct Prepared {
  Tensor a, b, out;
  Shape shape;
  DType compute;
};

Prepared prepare(Call& c, Group g, bool bool_result, bool true_divide = false) {
  const char* op = c.name();
  Prepared pr;
  pr.compute = result_type({c.inputs[0], c.inputs[1]});
  if (g == Group::Float || true_divide) {
    if (!is_floating(pr.compute)) pr.compute = default_float_dtype();
  }
  if (g == Group::Int && is_floating(pr.compute))
    throw TypeError(std::string("[") + op + "] expected integer or bool tensors, got " + dtype_name(c.inputs[0].dtype()) +
                    " and " + dtype_name(c.inputs[1].dtype()));
  pr.shape = broadcast_shapes(c.inputs[0].sizes(), c.inputs[1].sizes(), op);
  pr.a = cast_to(c.inputs[0], pr.compute);
  pr.b = cast_to(c.inputs[1], pr.compute);
  pr.out = prepare_output(c, pr.shape, pr.compute, bool_result ? DType::Bool : pr.compute, pr.a.device());
  return pr;
}

template <typename F, Group G>
void binary_kernel(Call& c, const F& f = F()) {
  Prepared pr = prepare(c, G, false);
  StridedLoop<3> loop({pr.out, pr.a, pr.b}, pr.shape, c.name());
  if constexpr (G == Group::Int) {
    ND_DISPATCH_INT(pr.compute, c.name(), [&] { run_binary<F, scalar_t, scalar_t>(f, loop); });
  } else if constexpr (G == Group::Float) {
    ND_DISPATCH_FLOAT(pr.compute, c.name(), [&] { run_binary<F, scalar_t, scalar_t>(f, loop); });
  } else {
    ND_DISPATCH_ALL(pr.compute, c.name(), [&] { run_binary<F, scalar_t, scalar_t>(f, loop); });
  }
  finish_output(c, pr.out);
}

template <typename F>
void compare_kernel(Call& c) {
  Prepared pr = prepare(c, Group::Compare, true);
  StridedLoop<3> loop({pr.out, pr.a, pr.b}, pr.shape, c.name());
  ND_DISPATCH_ALL(pr.compute, c.name(), [&] { run_binary<F, scalar_t, bool>(F(), loop); });
  finish_output(c, pr.out);
}

void reject_bool(Call& c, const char* what) {
  if (result_type({c.inputs[0], c.inputs[1]}) == DType::Bool)
    throw TypeError(std::string("[") + c.name() + "] " + what + " is not supported on bool tensors; use logical ops");
}

struct TruncDiv {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) return std::trunc(a / b);
    else if constexpr (std::is_same_v<T, bool>) return a;
    else return b == 0 ? T(0) : (bfn::minus_one(b) ? bfn::wrap_neg(a) : T(a / b));
  }
};

// a + alpha * b in one pass
template <bool Subtract>
struct AddAlpha {
  double alpha;
  template <typename T> T operator()(T a, T b) const {
    if constexpr (Subtract) return T(a - T(alpha) * b); else return T(a + T(alpha) * b);
  }
};

}  // namespace

void k_add(Call& c) {
  const Value& alpha = c.attrs[0];
  if (alpha.to_double() == 1.0) return binary_kernel<bfn::Add, Group::All>(c);
  if (alpha.kind == Value::Kind::Double && !is_floating(result_type({c.inputs[0], c.inputs[1]})))
    throw TypeError("[add] for integral input tensors, argument alpha must not be a floating point number");
  binary_kernel<AddAlpha<false>, Group::Numeric>(c, AddAlpha<false>{alpha.to_double()});
}
void k_sub(Call& c) {
  reject_bool(c, "subtraction, the `-` operator,");
  const Value& alpha = c.attrs[0];
  if (alpha.to_double() == 1.0) return binary_kernel<bfn::Sub, Group::Numeric>(c);
  binary_kernel<AddAlpha<true>, Group::Numeric>(c, AddAlpha<true>{alpha.to_double()});
}
void k_mul(Call& c) { binary_kernel<bfn::Mul, Group::All>(c); }
void k_div(Call& c) {
  const Value& mode = c.attrs[0];
  if (mode.is_none()) {
    Prepared pr = prepare(c, Group::Float, false, true);
    StridedLoop<3> loop({pr.out, pr.a, pr.b}, pr.shape, "div");
    ND_DISPATCH_FLOAT(pr.compute, "div", [&] { run_binary<bfn::Div, scalar_t, scalar_t>(bfn::Div(), loop); });
    finish_output(c, pr.out);
  } else if (mode.s == "floor") {
    binary_kernel<bfn::FloorDivide, Group::Numeric>(c);
  } else if (mode.s == "trunc") {
    Prepared pr = prepare(c, Group::Numeric, false);
    StridedLoop<3> loop({pr.out, pr.a, pr.b}, pr.shape, "div");
    ND_DISPATCH_ALL(pr.compute, "div", [&] { run_binary<TruncDiv, scalar_t, scalar_t>(TruncDiv(), loop); });
    finish_output(c, pr.out);
  } else {
    throw ValueError("[div] expected rounding_mode to be one of None, 'trunc', or 'floor' but found '" + mode.s + "'");
  }
}
void k_pow(Call& c) { reject_bool(c, "pow"); binary_kernel<bfn::Pow, Group::All>(c); }
void k_maximum(Call& c) { binary_kernel<bfn::Maximum, Group::All>(c); }
void k_minimum(Call& c) { binary_kernel<bfn::Minimum, Group::All>(c); }
void k_atan2(Call& c) { binary_kernel<bfn::Atan2, Group::Float>(c); }
void k_hypot(Call& c) { binary_kernel<bfn::Hypot, Group::Float>(c); }
void k_copysign(Call& c) { binary_kernel<bfn::Copysign, Group::Float>(c); }
void k_fmod(Call& c) { reject_bool(c, "fmod"); binary_kernel<bfn::Fmod, Group::Numeric>(c); }
void k_remainder(Call& c) { reject_bool(c, "remainder"); binary_kernel<bfn::Remainder, Group::Numeric>(c); }
void k_floor_divide(Call& c) { reject_bool(c, "floor_divide"); binary_kernel<bfn::FloorDivide, Group::Numeric>(c); }
void k_bitwise_and(Call& c) { binary_kernel<bfn::BitwiseAnd, Group::Int>(c); }
void k_bitwise_or(Call& c) { binary_kernel<bfn::BitwiseOr, Group::Int>(c); }
void k_bitwise_xor(Call& c) { binary_kernel<bfn::BitwiseXor, Group::Int>(c); }
void k_bitwise_left_shift(Call& c) { reject_bool(c, "shift"); binary_kernel<bfn::Lshift, Group::Int>(c); }
void k_bitwise_right_shift(Call& c) { reject_bool(c, "shift"); binary_kernel<bfn::Rshift, Group::Int>(c); }

#define ND_DEFINE_COMPARE(name, F) void k_##name(Call& c) { compare_kernel<bfn::F>(c); }
ND_COMPARE_OPS(ND_DEFINE_COMPARE)

}  // namespace nd
