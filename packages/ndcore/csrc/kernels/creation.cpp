// Creation (empty, full, arange, linspace, eye) and random kernels (uniform_, normal_,
// bernoulli_, random_, randperm) driven by nd::Generator's Philox counters.
#include <cmath>
#include <cstring>

#include "loops.h"
#include "philox.h"

namespace nd {
namespace {

Generator& gen_of(const Call& c, size_t attr) {
  const Value& v = c.attrs.at(attr);
  if (v.kind == Value::Kind::Object) return *static_cast<Generator*>(v.obj.get());
  return default_generator();
}

// Box-Muller for float32 without libm calls, so the fill loop vectorises: log by exponent
// split + polynomial on the mantissa (Cephes logf), sin/cos of 2*pi*u by quarter-turn
// reduction + minimax polynomials. Errors are ~1e-7 relative, below float32 sampling noise.
inline float log_f32(float x) {  // x in (0, 1]
  int32_t bits;
  std::memcpy(&bits, &x, 4);
  int32_t e = ((bits >> 23) & 0xff) - 126;
  int32_t mb = (bits & 0x007fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &mb, 4);
  bool small = m < 0.70710678f;
  e = small ? e - 1 : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  float fe = (float)e;
  y += fe * -2.12194440e-4f;
  y += -0.5f * z;
  return m + y + fe * 0.693359375f;
}
inline void sincos_2pi_f32(float u, float* s, float* c) {  // u in [0, 1)
  float q = (u * 4.0f + 12582912.0f) - 12582912.0f;  // nearest quarter turn
  int32_t j = (int32_t)q & 3;
  float r = (u - q * 0.25f) * 6.28318530717958648f;  // r in [-pi/4, pi/4]
  float r2 = r * r;
  float sp = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
  float cp = 1.0f - 0.5f * r2 + r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
  float sv = (j == 0) ? sp : (j == 1) ? cp : (j == 2) ? -sp : -cp;
  float cv = (j == 0) ? cp : (j == 1) ? -sp : (j == 2) ? -cp : sp;
  *s = sv;
  *c = cv;
}

inline double u01_53(uint32_t hi, uint32_t lo) { return ((((uint64_t)hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0); }
inline float u01_24(uint32_t x) { return (x >> 8) * (1.0f / 16777216.0f); }

// Fills `n` values with fn(words[4], base_index) producing up to 4 values per Philox block.
template <typename F>
void philox_fill(Generator& g, int64_t n, int per_block, F&& fn) {
  int64_t blocks = (n + per_block - 1) / per_block;
  uint64_t start = g.reserve((uint64_t)blocks);
  Philox ph(g.initial_seed());
  parallel_for(blocks, 4096, [&](int64_t b, int64_t e) {
    uint32_t w[4];
    for (int64_t k = b; k < e; ++k) {
      ph.block(start + (uint64_t)k, w);
      fn(w, k * per_block);
    }
  });
}

// Writes values produced into a contiguous buffer, then into x (which may be strided).
template <typename Fill>
void fill_random(const Tensor& x, Fill&& fill_contig) {
  Tensor tmp = x.is_contiguous() ? x : empty_tensor(x.sizes(), x.dtype());
  fill_contig(tmp);
  if (tmp.impl() != x.impl()) copy_into(x, tmp);
}

DType creation_dtype(const Call& c, size_t attr, DType fallback) {
  return c.attrs[attr].is_none() ? fallback : c.attrs[attr].to_dtype();
}
Device creation_device(const Call& c, size_t attr) {
  return c.attrs[attr].kind == Value::Kind::Device ? c.attrs[attr].dev : Device{};
}

void write_scalar(const Tensor& t, const Value& v) {
  ND_DISPATCH_ALL(t.dtype(), "full", [&] {
    using C = typename compute_type<scalar_t>::type;
    scalar_t fill = v.kind == Value::Kind::Double ? scalar_t(C(v.d)) : v.kind == Value::Kind::Bool ? scalar_t(C(v.b)) : scalar_t(C(v.i));
    scalar_t* d = t.data<scalar_t>();
    int64_t n = t.numel();
    parallel_for(n, kGrainCheap, [&](int64_t b, int64_t e) { std::fill(d + b, d + e, fill); });
  });
}

}  // namespace

void k_empty(Call& c) {
  c.outputs = {empty_tensor(c.attrs[0].list, creation_dtype(c, 1, default_float_dtype()), creation_device(c, 2))};
}

void k_full(Call& c) {
  const Value& v = c.attrs[1];
  DType inferred = v.kind == Value::Kind::Double ? default_float_dtype() : v.kind == Value::Kind::Bool ? DType::Bool : DType::Int64;
  Tensor t = empty_tensor(c.attrs[0].list, creation_dtype(c, 2, inferred), Device{});
  write_scalar(t, v);
  c.outputs = {t};
}

void k_arange(Call& c) {
  Value start = c.attrs[0], end = c.attrs[1], step = c.attrs[2];
  if (end.is_none()) {
    end = start;
    start = Value::from_int(0);
  }
  bool all_int = start.kind != Value::Kind::Double && end.kind != Value::Kind::Double && step.kind != Value::Kind::Double;
  DType dt = creation_dtype(c, 3, all_int ? DType::Int64 : default_float_dtype());
  double s = start.to_double(), e = end.to_double(), st = step.to_double();
  if (st == 0) throw ValueError("[arange] step must be nonzero");
  if ((st > 0 && e < s) || (st < 0 && e > s))
    throw ValueError("[arange] upper bound and larger bound inconsistent with step sign (start " + std::to_string(s) + ", end " + std::to_string(e) + ", step " + std::to_string(st) + ")");
  int64_t n = all_int ? (int64_t)((end.to_int() - start.to_int() + step.to_int() - (step.to_int() > 0 ? 1 : -1)) / step.to_int())
                      : (int64_t)std::ceil((e - s) / st);
  Tensor t = empty_tensor({std::max<int64_t>(n, 0)}, dt);
  ND_DISPATCH_ALL(dt, "arange", [&] {
    using C = typename compute_type<scalar_t>::type;
    scalar_t* d = t.data<scalar_t>();
    if (all_int) {
      for (int64_t i = 0; i < n; ++i) d[i] = scalar_t(C(start.to_int() + i * step.to_int()));
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = scalar_t(C(s + (double)i * st));
    }
  });
  c.outputs = {t};
}

void k_linspace(Call& c) {
  double s = c.attrs[0].to_double(), e = c.attrs[1].to_double();
  int64_t n = c.attrs[2].i;
  if (n < 0) throw ValueError("[linspace] number of steps must be non-negative, got " + std::to_string(n));
  DType dt = creation_dtype(c, 3, default_float_dtype());
  Tensor t = empty_tensor({n}, dt);
  double step = n > 1 ? (e - s) / (double)(n - 1) : 0.0;
  ND_DISPATCH_ALL(dt, "linspace", [&] {
    using C = typename compute_type<scalar_t>::type;
    scalar_t* d = t.data<scalar_t>();
    int64_t half = n / 2;  // fill from both ends so the last value is exactly `end`, as torch does
    for (int64_t i = 0; i < n; ++i) {
      double v = (i < half || n == 1) ? s + step * (double)i : e - step * (double)(n - 1 - i);
      if constexpr (std::is_integral_v<C>) d[i] = scalar_t(C(v)); else d[i] = scalar_t(C(v));
    }
  });
  c.outputs = {t};
}

void k_eye(Call& c) {
  int64_t n = c.attrs[0].i, m = c.attrs[1].is_none() ? n : c.attrs[1].i;
  if (n < 0 || m < 0) throw ValueError("[eye] n and m must be non-negative, got " + std::to_string(n) + ", " + std::to_string(m));
  DType dt = creation_dtype(c, 2, default_float_dtype());
  Tensor t = empty_tensor({n, m}, dt);
  std::memset(t.data_ptr(), 0, t.numel() * t.itemsize());
  ND_DISPATCH_ALL(dt, "eye", [&] {
    scalar_t* d = t.data<scalar_t>();
    for (int64_t i = 0; i < std::min(n, m); ++i) d[i * m + i] = scalar_t(1);
  });
  c.outputs = {t};
}

void k_uniform_(Call& c) {
  const Tensor& x = c.inputs[0];
  double lo = c.attrs[0].to_double(), hi = c.attrs[1].to_double();
  if (lo > hi) throw ValueError("[uniform_] expects from <= to, got from=" + std::to_string(lo) + " > to=" + std::to_string(hi));
  Generator& g = gen_of(c, 2);
  fill_random(x, [&](const Tensor& t) {
    int64_t n = t.numel();
    ND_DISPATCH_FLOAT(t.dtype(), "uniform_", [&] {
      scalar_t* d = t.data<scalar_t>();
      if constexpr (std::is_same_v<scalar_t, double>) {
        philox_fill(g, n, 2, [&](uint32_t* w, int64_t i0) {
          for (int k = 0; k < 2 && i0 + k < n; ++k) d[i0 + k] = lo + (hi - lo) * u01_53(w[2 * k], w[2 * k + 1]);
        });
      } else {
        philox_fill(g, n, 4, [&](uint32_t* w, int64_t i0) {
          for (int k = 0; k < 4 && i0 + k < n; ++k) {
            float v = (float)lo + (float)(hi - lo) * u01_24(w[k]);
            d[i0 + k] = scalar_t(v);
          }
        });
      }
    });
  });
  c.outputs = {x};
}

void k_normal_(Call& c) {
  const Tensor& x = c.inputs[0];
  double mean = c.attrs[0].to_double(), std = c.attrs[1].to_double();
  if (std < 0) throw ValueError("[normal_] expects std >= 0.0, got " + std::to_string(std));
  Generator& g = gen_of(c, 2);
  fill_random(x, [&](const Tensor& t) {
    int64_t n = t.numel();
    ND_DISPATCH_FLOAT(t.dtype(), "normal_", [&] {
      scalar_t* d = t.data<scalar_t>();
      // Box-Muller: two uniforms -> two normals
      if constexpr (std::is_same_v<scalar_t, double>) {
        philox_fill(g, n, 2, [&](uint32_t* w, int64_t i0) {
          double u1 = 1.0 - u01_53(w[0], w[1]), u2 = u01_53(w[2], w[3]);
          double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
          if (i0 < n) d[i0] = mean + std * r * std::cos(th);
          if (i0 + 1 < n) d[i0 + 1] = mean + std * r * std::sin(th);
        });
      } else {
        // Blocks of Philox words first, then a branch-free Box-Muller pass the compiler vectorises.
        const int64_t blocks = (n + 3) / 4;
        const uint64_t start = g.reserve((uint64_t)blocks);
        const Philox ph(g.initial_seed());
        const float fm = float(mean), fs = float(std);
        parallel_for(blocks, 1024, [&](int64_t b0, int64_t b1) {
          constexpr int64_t CH = 256;  // blocks per chunk: 1024 values
          uint32_t words[CH * 4];
          float vals[CH * 4];
          for (int64_t cb = b0; cb < b1; cb += CH) {
            int64_t nb = std::min(CH, b1 - cb);
            for (int64_t k = 0; k < nb; ++k) ph.block(start + (uint64_t)(cb + k), words + 4 * k);
            for (int64_t k = 0; k < nb * 2; ++k) {
              float u1 = 1.0f - u01_24(words[2 * k]), u2 = u01_24(words[2 * k + 1]);
              float r = std::sqrt(-2.0f * log_f32(u1)), sv, cv;
              sincos_2pi_f32(u2, &sv, &cv);
              vals[2 * k] = fm + fs * r * cv;
              vals[2 * k + 1] = fm + fs * r * sv;
            }
            int64_t i0 = cb * 4, cnt = std::min<int64_t>(nb * 4, n - i0);
            for (int64_t k = 0; k < cnt; ++k) d[i0 + k] = scalar_t(vals[k]);
          }
        });
      }
    });
  });
  c.outputs = {x};
}

void k_bernoulli_(Call& c) {
  const Tensor& x = c.inputs[0];
  double p = c.attrs[0].to_double();
  if (p < 0 || p > 1) throw ValueError("[bernoulli_] expects 0 <= p <= 1, got " + std::to_string(p));
  Generator& g = gen_of(c, 1);
  fill_random(x, [&](const Tensor& t) {
    int64_t n = t.numel();
    ND_DISPATCH_ALL(t.dtype(), "bernoulli_", [&] {
      scalar_t* d = t.data<scalar_t>();
      philox_fill(g, n, 2, [&](uint32_t* w, int64_t i0) {
        for (int k = 0; k < 2 && i0 + k < n; ++k) d[i0 + k] = scalar_t(u01_53(w[2 * k], w[2 * k + 1]) < p ? 1 : 0);
      });
    });
  });
  c.outputs = {x};
}

void k_random_(Call& c) {
  const Tensor& x = c.inputs[0];
  int64_t lo = c.attrs[0].i;
  int64_t hi;
  if (c.attrs[1].is_none()) {
    hi = is_floating(x.dtype()) ? (int64_t)1 << (x.dtype() == DType::Float64 ? 53 : x.dtype() == DType::Float32 ? 24 : 11)
         : x.dtype() == DType::Bool ? 2 : x.dtype() == DType::Int64 ? INT64_MAX : ((int64_t)1 << (8 * x.itemsize() - (x.dtype() == DType::UInt8 ? 0 : 1)));
  } else {
    hi = c.attrs[1].i;
  }
  if (hi <= lo) throw ValueError("[random_] expects 'from' < 'to', got from=" + std::to_string(lo) + " to=" + std::to_string(hi));
  uint64_t range = (uint64_t)(hi - lo);
  Generator& g = gen_of(c, 2);
  fill_random(x, [&](const Tensor& t) {
    int64_t n = t.numel();
    ND_DISPATCH_ALL(t.dtype(), "random_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* d = t.data<scalar_t>();
      philox_fill(g, n, 2, [&](uint32_t* w, int64_t i0) {
        for (int k = 0; k < 2 && i0 + k < n; ++k) {
          uint64_t r = ((uint64_t)w[2 * k] << 32) | w[2 * k + 1];
          d[i0 + k] = scalar_t(C(lo + (int64_t)(r % range)));
        }
      });
    });
  });
  c.outputs = {x};
}

void k_randperm(Call& c) {
  int64_t n = c.attrs[0].i;
  if (n < 0) throw ValueError("[randperm] n must be non-negative, got " + std::to_string(n));
  Generator& g = gen_of(c, 1);
  DType dt = creation_dtype(c, 2, DType::Int64);
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  // Fisher-Yates with one Philox block per two swaps
  uint64_t start = g.reserve((uint64_t)(n / 2 + 1));
  Philox ph(g.initial_seed());
  uint32_t w[4];
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t k = n - 1 - i;
    if (k % 2 == 0) ph.block(start + (uint64_t)(k / 2), w);
    uint64_t r = ((uint64_t)w[2 * (k % 2)] << 32) | w[2 * (k % 2) + 1];
    std::swap(perm[i], perm[(int64_t)(r % (uint64_t)(i + 1))]);
  }
  Tensor t = empty_tensor({n}, dt);
  ND_DISPATCH_ALL(dt, "randperm", [&] {
    scalar_t* d = t.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) d[i] = scalar_t((typename compute_type<scalar_t>::type)perm[i]);
  });
  c.outputs = {t};
}

}  // namespace nd
