// Fused dropout (Philox mask + scale in one pass over memory) and the mixed-precision helpers
// GradScaler runs on its gradients (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_).
#include <atomic>
#include <cmath>
#include <cstring>

#include "loops.h"
#include "philox.h"

namespace nd {

void k_native_dropout(Call& c) {
  const char* op = "native_dropout";
  const Tensor& input = c.inputs[0];
  if (!is_floating(input.dtype()))
    throw TypeError(std::string("[") + op + "] expected a floating point input, got " + dtype_name(input.dtype()));
  const double p = c.attrs[0].to_double();
  if (!(p >= 0 && p <= 1)) throw ValueError(std::string("[") + op + "] dropout probability has to be between 0 and 1, but got " + std::to_string(p));
  const bool train = c.attrs[1].is_none() || c.attrs[1].b;
  Tensor x = input.contiguous();
  Tensor out = empty_tensor(x.sizes(), x.dtype()), mask = empty_tensor(x.sizes(), DType::Bool);
  const int64_t n = x.numel();
  if (!train) {
    std::memset(mask.data_ptr(), 1, n);
    copy_into(out, x);
    set_outputs(c, {out, mask});
    return;
  }
  const double keep = 1.0 - p;
  const double scale = keep == 0 ? 0.0 : 1.0 / keep;
  // keep an element when its 32-bit uniform word is below keep * 2^32 (exact for p = 0 and p = 1)
  const uint64_t threshold = (uint64_t)std::llround(keep * 4294967296.0);
  const int64_t blocks = (n + 3) / 4;
  Generator& g = default_generator();
  const uint64_t start = g.reserve((uint64_t)blocks);
  const Philox ph(g.initial_seed());
  bool* md = mask.data<bool>();
  ND_DISPATCH_FLOAT(x.dtype(), op, [&] {
    using T = scalar_t;
    using C = typename compute_type<T>::type;
    const T* xd = x.data<T>();
    T* od = out.data<T>();
    const C sc = C(scale);
    parallel_for(blocks, 1024, [&](int64_t b0, int64_t b1) {
      constexpr int64_t kChunk = 256;  // blocks per philox_words call
      alignas(64) uint32_t w[kChunk * 4];
      for (int64_t cb = b0; cb < b1; cb += kChunk) {
        const int64_t nb = std::min(kChunk, b1 - cb), i0 = cb * 4, cnt = std::min<int64_t>(nb * 4, n - i0);
        philox_words(ph, start + (uint64_t)cb, nb, w);
        for (int64_t k = 0; k < cnt; ++k) {
          const bool m = (uint64_t)w[k] < threshold;
          md[i0 + k] = m;
          od[i0 + k] = T(m ? C(xd[i0 + k]) * sc : C(0));
        }
      }
    });
  });
  set_outputs(c, {out, mask});
}

void k_native_dropout_backward(Call& c) {
  const char* op = "native_dropout_backward";
  const Tensor &grad = c.inputs[0], &mask = c.inputs[1];
  if (grad.sizes() != mask.sizes())
    throw ValueError(std::string("[") + op + "] grad of shape " + shape_str(grad.sizes()) + " and mask of shape " + shape_str(mask.sizes()) +
                     " must match");
  if (mask.dtype() != DType::Bool) throw TypeError(std::string("[") + op + "] expected a bool mask, got " + dtype_name(mask.dtype()));
  const double scale = c.attrs[0].to_double();
  Tensor g = grad.contiguous(), m = mask.contiguous();
  Tensor out = empty_tensor(g.sizes(), g.dtype());
  ND_DISPATCH_FLOAT(g.dtype(), op, [&] {
    using T = scalar_t;
    using C = typename compute_type<T>::type;
    const T* gd = g.data<T>();
    const bool* md = m.data<bool>();
    T* od = out.data<T>();
    const C sc = C(scale);
    parallel_for(g.numel(), kGrainCheap, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) od[i] = T(md[i] ? C(gd[i]) * sc : C(0));
    });
  });
  set_outputs(c, {out});
}

// ---- GradScaler helpers ------------------------------------------------------------------------
namespace {
double single_value(const Tensor& t, const char* op, const char* what) {
  if (t.numel() != 1 || !is_floating(t.dtype()))
    throw ValueError(std::string("[") + op + "] expected " + what + " to be a one-element floating tensor, got " + dtype_name(t.dtype()) +
                     " of shape " + shape_str(t.sizes()));
  return t.item_double();
}
void store_single(const Tensor& t, double v) {
  ND_DISPATCH_ALL(t.dtype(), "amp", [&] { *t.data<scalar_t>() = scalar_t((typename compute_type<scalar_t>::type)v); });
  t.bump_version();
}
}  // namespace

void k__amp_foreach_non_finite_check_and_unscale_(Call& c) {
  const char* op = "_amp_foreach_non_finite_check_and_unscale_";
  const int64_t k = c.attrs[0].to_int();
  const Tensor &found_inf = c.inputs[k], &inv_scale_t = c.inputs[k + 1];
  const double inv_scale = single_value(inv_scale_t, op, "inv_scale");
  single_value(found_inf, op, "found_inf");
  bool any_bad = false;
  for (int64_t i = 0; i < k; ++i) {
    const Tensor& t = c.inputs[i];
    if (!t.defined()) continue;
    if (!is_floating(t.dtype()))
      throw TypeError(std::string("[") + op + "] expected floating point gradients, got " + dtype_name(t.dtype()));
    Tensor w = t.is_contiguous() ? t : t.contiguous();
    std::atomic<bool> bad{false};
    ND_DISPATCH_FLOAT(w.dtype(), op, [&] {
      using T = scalar_t;
      using C = typename compute_type<T>::type;
      T* d = w.data<T>();
      const C s = C(inv_scale);
      parallel_for(w.numel(), kGrainCheap, [&](int64_t i0, int64_t i1) {
        bool local = false;
        for (int64_t j = i0; j < i1; ++j) {
          const C v = C(d[j]);
          local |= !std::isfinite(v);
          d[j] = T(v * s);
        }
        if (local) bad.store(true, std::memory_order_relaxed);
      });
    });
    if (w.impl() != t.impl()) copy_into(t, w);
    t.bump_version();
    any_bad |= bad.load();
  }
  if (any_bad) store_single(found_inf, 1.0);
  c.outputs = {found_inf};
}

void k__amp_update_scale_(Call& c) {
  const char* op = "_amp_update_scale_";
  const Tensor &scale = c.inputs[0], &tracker = c.inputs[1], &found_inf = c.inputs[2];
  const double growth = c.attrs[0].to_double(), backoff = c.attrs[1].to_double();
  const int64_t interval = c.attrs[2].to_int();
  const double s = single_value(scale, op, "scale");
  if (tracker.numel() != 1 || is_floating(tracker.dtype()))
    throw ValueError(std::string("[") + op + "] expected growth_tracker to be a one-element integer tensor, got " +
                     dtype_name(tracker.dtype()) + " of shape " + shape_str(tracker.sizes()));
  const bool inf = single_value(found_inf, op, "found_inf") != 0;
  const int64_t tr = (int64_t)tracker.item_double();
  if (inf) {
    store_single(scale, s * backoff);
    store_single(tracker, 0);
  } else if (tr + 1 == interval) {
    const double ns = s * growth;
    if (std::isfinite((float)ns)) store_single(scale, ns);  // torch keeps the scale when growth overflows float32
    store_single(tracker, 0);
  } else {
    store_single(tracker, (double)(tr + 1));
  }
  c.outputs = {scale};
}

}  // namespace nd
