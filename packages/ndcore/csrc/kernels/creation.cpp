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

// Fills n values, per_block from each Philox block, in chunks of consecutive blocks:
// fn(words, i0, cnt) writes values [i0, i0 + cnt) from the chunk's words (block k's four at
// words[4k..4k+3]). Values depend only on their counters, never on how threads split the range.
constexpr int64_t kChunkBlocks = 256;
template <typename F>
void philox_fill(Generator& g, int64_t n, int per_block, int64_t grain_blocks, F&& fn) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  const uint64_t start = g.reserve((uint64_t)blocks);
  const Philox ph(g.initial_seed());
  parallel_for(blocks, grain_blocks, [&](int64_t b0, int64_t b1) {
    alignas(64) uint32_t words[kChunkBlocks * 4];
    for (int64_t cb = b0; cb < b1; cb += kChunkBlocks) {
      const int64_t nb = std::min(kChunkBlocks, b1 - cb), i0 = cb * per_block;
      philox_words(ph, start + (uint64_t)cb, nb, words);
      fn(words, i0, std::min<int64_t>(nb * per_block, n - i0));
    }
  });
}
// r % d without a 64-bit division per value: q = mulhi(r, floor((2^64 - 1) / d)) satisfies
// r / d - 2 < q <= r / d, so one correction gives the exact remainder.
struct FastMod64 {
  uint64_t d, m;
  explicit FastMod64(uint64_t divisor) : d(divisor), m(~uint64_t(0) / divisor) {}
  uint64_t operator()(uint64_t r) const {
    const uint64_t q = (uint64_t)(((unsigned __int128)r * m) >> 64);
    const uint64_t rem = r - q * d;
    return rem >= d ? rem - d : rem;
  }
};

// Blocks worth a second thread: ~16K values of a cheap fill, ~8K normals.
constexpr int64_t kGrainFill = 4096, kGrainNormal = 2048;

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
  DType dt = creation_dtype(c, 1, default_float_dtype());
  Device dev = creation_device(c, 2);
  const Value& format = c.attrs.size() > 4 ? c.attrs[4] : Value();
  if (format.is_none() || format.s == "contiguous_format") {
    c.outputs = {empty_tensor(c.attrs[0].list, dt, dev)};
    return;
  }
  if (format.s == "preserve_format")
    throw ValueError("[empty] preserve_format is only meaningful for copies: expected contiguous_format, channels_last or "
                     "channels_last_3d");
  if (!dev.is_cpu()) throw ValueError("[empty] memory_format " + format.s + " is supported on CPU only");
  Tensor rows = empty_tensor({0}, dt, dev);  // metadata only: the shape the format is checked against
  rows.impl()->sizes = c.attrs[0].list;
  rows.impl()->strides = contiguous_strides(c.attrs[0].list);
  c.outputs = {empty_in_format(rows, dt, dev, format.s, "empty")};  // Note [Memory formats]
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
        philox_fill(g, n, 2, kGrainFill, [&](const uint32_t* w, int64_t i0, int64_t cnt) {
          for (int64_t j = 0; j < cnt; ++j) d[i0 + j] = lo + (hi - lo) * u01_53(w[2 * j], w[2 * j + 1]);
        });
      } else {
        const float flo = (float)lo, fspan = (float)(hi - lo);
        philox_fill(g, n, 4, kGrainFill, [&](const uint32_t* w, int64_t i0, int64_t cnt) {
          for (int64_t j = 0; j < cnt; ++j) d[i0 + j] = scalar_t(flo + fspan * u01_24(w[j]));
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
        philox_fill(g, n, 2, kGrainNormal, [&](const uint32_t* w, int64_t i0, int64_t cnt) {
          for (int64_t j = 0; j < cnt; j += 2, w += 4) {
            double u1 = 1.0 - u01_53(w[0], w[1]), u2 = u01_53(w[2], w[3]);
            double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
            d[i0 + j] = mean + std * r * std::cos(th);
            if (j + 1 < cnt) d[i0 + j + 1] = mean + std * r * std::sin(th);
          }
        });
      } else {
        // Philox and Box-Muller fused in registers (normal_f32); float32 chunks go straight to
        // the output, the tensor's last partial block and the narrow types through a buffer.
        const float fm = float(mean), fs = float(std);
        const int64_t blocks = (n + 3) / 4;
        const uint64_t start = g.reserve((uint64_t)blocks);
        const Philox ph(g.initial_seed());
        parallel_for(blocks, kGrainNormal, [&](int64_t b0, int64_t b1) {
          alignas(64) float vals[kChunkBlocks * 4];
          for (int64_t cb = b0; cb < b1; cb += kChunkBlocks) {
            const int64_t nb = std::min(kChunkBlocks, b1 - cb), i0 = cb * 4, cnt = std::min<int64_t>(nb * 4, n - i0);
            if (std::is_same_v<scalar_t, float> && cnt == nb * 4) {
              normal_f32(ph, start + (uint64_t)cb, nb, fm, fs, reinterpret_cast<float*>(d) + i0);
              continue;
            }
            normal_f32(ph, start + (uint64_t)cb, nb, fm, fs, vals);
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
      philox_fill(g, n, 2, kGrainFill, [&](const uint32_t* w, int64_t i0, int64_t cnt) {
        for (int64_t j = 0; j < cnt; ++j) d[i0 + j] = scalar_t(u01_53(w[2 * j], w[2 * j + 1]) < p ? 1 : 0);
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
  const FastMod64 mod((uint64_t)hi - (uint64_t)lo);
  Generator& g = gen_of(c, 2);
  fill_random(x, [&](const Tensor& t) {
    int64_t n = t.numel();
    ND_DISPATCH_ALL(t.dtype(), "random_", [&] {
      using C = typename compute_type<scalar_t>::type;
      scalar_t* d = t.data<scalar_t>();
      philox_fill(g, n, 2, kGrainFill, [&](const uint32_t* w, int64_t i0, int64_t cnt) {
        for (int64_t j = 0; j < cnt; ++j) {
          uint64_t r = ((uint64_t)w[2 * j] << 32) | w[2 * j + 1];
          d[i0 + j] = scalar_t(C(lo + (int64_t)mod(r)));
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
