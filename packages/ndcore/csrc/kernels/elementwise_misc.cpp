// Elementwise ops with attributes: clamp, where, nan_to_num, gelu, softplus.
#include "loops.h"
#include "unary_ops.h"

namespace nd {

void k_clamp(Call& c) {
  const Tensor& x = c.inputs[0];
  const Value &lo = c.attrs[0], &hi = c.attrs[1];
  if (lo.is_none() && hi.is_none()) throw ValueError("[clamp] at least one of 'min' or 'max' must not be None");
  DType dt = x.dtype();
  if (!is_floating(dt) && ((lo.kind == Value::Kind::Double) || (hi.kind == Value::Kind::Double))) dt = default_float_dtype();
  Tensor xin = cast_to(x, dt);
  Tensor out = prepare_output(c, x.sizes(), dt, dt, x.device());
  StridedLoop<2> loop({out, xin}, x.sizes(), "clamp");
  ND_DISPATCH_ALL(dt, "clamp", [&] {
    using C = typename compute_type<scalar_t>::type;
    const bool has_lo = !lo.is_none(), has_hi = !hi.is_none();
    const C l = has_lo ? C(lo.to_double()) : C(0), h = has_hi ? C(hi.to_double()) : C(0);
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i) {
            C v = load<scalar_t>(p[1] + i * s[1]);
            if (v == v) {  // NaN propagates
              if (has_lo && v < l) v = l;
              if (has_hi && v > h) v = h;
            }
            store<scalar_t>(p[0] + i * s[0], v);
          }
        },
        kGrainCheap);
  });
  finish_output(c, out);
}

void k_where(Call& c) {
  Tensor cond = c.inputs[0];
  if (cond.dtype() != DType::Bool && cond.dtype() != DType::UInt8)
    throw TypeError(std::string("[where] expected condition to be a bool tensor, got ") + dtype_name(cond.dtype()));
  if (cond.dtype() != DType::Bool) cond = cast_to(cond, DType::Bool);
  DType dt = result_type({c.inputs[1], c.inputs[2]});
  Tensor a = cast_to(c.inputs[1], dt), b = cast_to(c.inputs[2], dt);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor out = prepare_output(c, shape, dt, dt, a.device());
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
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), x.dtype(), x.device());
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
  x = cast_to(x, dt);
  Tensor out = prepare_output(c, x.sizes(), dt, dt, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), "gelu");
  const bool tanh_form = approx == "tanh";
  ND_DISPATCH_FLOAT(dt, "gelu", [&] {
    using C = typename compute_type<scalar_t>::type;
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
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
  x = cast_to(x, dt);
  Tensor out = prepare_output(c, x.sizes(), dt, dt, x.device());
  StridedLoop<2> loop({out, x}, x.sizes(), "softplus");
  const double beta = c.attrs[0].to_double(), threshold = c.attrs[1].to_double();
  ND_DISPATCH_FLOAT(dt, "softplus", [&] {
    using C = typename compute_type<scalar_t>::type;
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
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

}  // namespace nd
