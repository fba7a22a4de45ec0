// Elementwise binary kernels: promotion, broadcasting and the functors of binary_ops.h.
#include "binary_ops.h"
#include "loops.h"
#include "simd_dispatch.h"

namespace nd {
namespace {

// Rows of a binary op whose operands are dense (stride itemsize) or constant along the row
// (stride 0): Mode 0 both dense, 1 b constant, 2 a constant. A constant operand is loaded once
// per row so the loop vectorises against a splat; that is the scalar-per-row broadcast
// (N,C,H,W) * (N,C,1,1) and both orders of (B,1) op (B,).
template <typename F, typename T, typename Out, int Mode>
inline __attribute__((always_inline)) void binary_row(const F& f, Out* __restrict o, const T* __restrict a,
                                                      const T* __restrict b, int64_t n) {
  using C = typename compute_type<T>::type;
  if constexpr (Mode == 1) {
    const C bv = C(b[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(C(a[i]), bv));
  } else if constexpr (Mode == 2) {
    const C av = C(a[0]);
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(av, C(b[i])));
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = Out(f(C(a[i]), C(b[i])));
  }
}
template <typename F, typename T, typename Out, int Mode>
inline __attribute__((always_inline)) void binary_rows(const F& f, char* po, const char* pa, const char* pb, int64_t n,
                                                       int64_t rows, int64_t so, int64_t sa, int64_t sb) {
  for (int64_t r = 0; r < rows; ++r)
    binary_row<F, T, Out, Mode>(f, reinterpret_cast<Out*>(po + r * so), reinterpret_cast<const T*>(pa + r * sa),
                                reinterpret_cast<const T*>(pb + r * sb), n);
}

// Dense rows in ISA variants (See Note [ISA variants]) for min/max (a compare and a select per
// element) and float arithmetic, whose operands often sit in L2 (activations times a per-channel
// mask) where 16-byte vectors, not memory, set the pace. The other ops call libm or are integer
// arithmetic bound by memory, and keep one baseline build.
template <typename F, typename T>
constexpr bool wide_binary =
    std::is_same_v<F, bfn::Maximum> || std::is_same_v<F, bfn::Minimum> ||
    ((std::is_same_v<T, float> || std::is_same_v<T, double>) &&
     (std::is_same_v<F, bfn::Add> || std::is_same_v<F, bfn::Sub> || std::is_same_v<F, bfn::Mul> ||
      std::is_same_v<F, bfn::Div>));

template <typename F, typename T, typename Out, int Mode>
ND_SIMD_KERNEL(WideRows, (const F& f, char* po, const char* pa, const char* pb, int64_t n, int64_t rows, int64_t so,
                          int64_t sa, int64_t sb),
               { binary_rows<F, T, Out, Mode>(f, po, pa, pb, n, rows, so, sa, sb); })

template <typename F, typename T, typename Out, int Mode>
inline void dense_rows(const F& f, char** p, const int64_t* so, int64_t n, int64_t rows) {
  if constexpr (wide_binary<F, T>) {
    return simd_run<WideRows<F, T, Out, Mode>>(f, p[0], p[1], p[2], n, rows, so[0], so[1], so[2]);
  }
  binary_rows<F, T, Out, Mode>(f, p[0], p[1], p[2], n, rows, so[0], so[1], so[2]);
}

template <typename F, typename T, typename Out>
void binary_loop(const F& f, char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows);

// A block whose inputs are dense or constant down the rows but not along them (a transposed
// input, dense output: M.T * 2): tiles are computed down the rows into a buffer with the dense
// row loops, then stored transposed, instead of a strided scalar loop.
template <typename F, typename T, typename Out>
void binary_tiled(const F& f, char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
  constexpr int64_t R = 64, C = 16;
  alignas(64) Out buf[R * C];
  for (int64_t r0 = 0; r0 < rows; r0 += R) {
    const int64_t rr = std::min(R, rows - r0);
    for (int64_t i0 = 0; i0 < n; i0 += C) {
      const int64_t cc = std::min(C, n - i0);
      char* q[3] = {reinterpret_cast<char*>(buf), p[1] + r0 * so[1] + i0 * s[1], p[2] + r0 * so[2] + i0 * s[2]};
      const int64_t down[3] = {(int64_t)sizeof(Out), so[1], so[2]};
      const int64_t across[3] = {rr * (int64_t)sizeof(Out), s[1], s[2]};
      binary_loop<F, T, Out>(f, q, down, across, rr, cc);  // buf[i * rr + r]
      store_transposed<Out>(reinterpret_cast<Out*>(p[0] + r0 * so[0] + i0 * s[0]), so[0] / (int64_t)sizeof(Out), buf, rr,
                            cc);
    }
  }
}

template <typename F, typename T, typename Out>
void binary_loop(const F& f, char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
  constexpr int64_t zo = sizeof(Out), zt = sizeof(T);
  if (s[0] == zo) {
    if (s[1] == zt && s[2] == zt) return dense_rows<F, T, Out, 0>(f, p, so, n, rows);
    if (s[1] == zt && s[2] == 0) return dense_rows<F, T, Out, 1>(f, p, so, n, rows);
    if (s[1] == 0 && s[2] == zt) return dense_rows<F, T, Out, 2>(f, p, so, n, rows);
    // Inside a tile the inputs' strides along the rows are their original ones down them, all
    // zt or 0, so this never recurses twice.
    auto down_ok = [&](int k) { return so[k] == zt || so[k] == 0; };
    auto across = [&](int k) { return s[k] != zt && s[k] != 0; };
    if (rows >= 16 && n >= 4 && down_ok(1) && down_ok(2) && (across(1) || across(2)))
      return binary_tiled<F, T, Out>(f, p, s, so, n, rows);
  }
  for (int64_t r = 0; r < rows; ++r) {
    char* o = p[0] + r * so[0];
    const char* a = p[1] + r * so[1];
    const char* b = p[2] + r * so[2];
    for (int64_t i = 0; i < n; ++i) store<Out>(o + i * s[0], f(load<T>(a + i * s[1]), load<T>(b + i * s[2])));
  }
}

template <typename F, typename T, typename Out>
void run_binary(const F& f, StridedLoop<3>& loop) {
  loop.run2d([&](char** p, const int64_t* s, const int64_t* so, int64_t n, int64_t rows) {
    binary_loop<F, T, Out>(f, p, s, so, n, rows);
  }, kGrainCheap);
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
  pr.a = cast_keep_layout(c.inputs[0], pr.compute);
  pr.b = cast_keep_layout(c.inputs[1], pr.compute);
  pr.out = prepare_output_like(c, {pr.a, pr.b}, pr.shape, bool_result ? DType::Bool : pr.compute, pr.a.device());
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

// pow(x, e) for a scalar e that torch also computes without pow(): a square, a cube, square
// roots and reciprocals, in the forms (and with the signed-zero and infinity results) torch's
// pow_tensor_scalar kernels give. libm's pow costs ~15 ns per element; these cost a multiply or a
// sqrt/divide, vectorised.
template <int E2>  // the exponent times 2
struct PowScalar {
  template <typename T> T operator()(T a, T) const {
    if constexpr (E2 == 4) return T(a * a);
    else if constexpr (E2 == 6) return T(a * a * a);
    else if constexpr (E2 == 1) return std::sqrt(a);
    else if constexpr (E2 == -1) return T(1) / std::sqrt(a);
    else if constexpr (E2 == -2) return T(1) / a;
    else return T(1) / (a * a);
  }
};

// Runs pow(x, e) through PowScalar when e is a 0-d exponent with such a value and the result is
// float32, float64 or bfloat16; returns false otherwise.
bool pow_scalar_fast(Call& c) {
  const Tensor& e = c.inputs[1];
  if (e.dim() != 0 || !e.device().is_cpu() || e.dtype() == DType::Bool) return false;
  // float16 keeps pow(), as torch's does (pow(-0, 0.5) is +0 there, -0 from sqrt); torch's
  // bfloat16 takes the fast forms like float32
  const DType rt = result_type({c.inputs[0], e});
  if (rt != DType::Float32 && rt != DType::Float64 && rt != DType::BFloat16) return false;
  const double v = e.item_double();
  if (v == 2.0) binary_kernel<PowScalar<4>, Group::Float>(c);
  else if (v == 3.0) binary_kernel<PowScalar<6>, Group::Float>(c);
  else if (v == 0.5) binary_kernel<PowScalar<1>, Group::Float>(c);
  else if (v == -0.5) binary_kernel<PowScalar<-1>, Group::Float>(c);
  else if (v == -1.0) binary_kernel<PowScalar<-2>, Group::Float>(c);
  else if (v == -2.0) binary_kernel<PowScalar<-4>, Group::Float>(c);
  else return false;
  return true;
}

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
void k_pow(Call& c) {
  reject_bool(c, "pow");
  if (pow_scalar_fast(c)) return;
  binary_kernel<bfn::Pow, Group::All>(c);
}
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
