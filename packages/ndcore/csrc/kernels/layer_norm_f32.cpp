// layer_norm_f32.cpp: float32 layer norm rows (forward and backward) compiled per ISA, for
// k_native_layer_norm and k_native_layer_norm_backward in norm.cpp (whose generic loops run at the
// build's baseline width).
#include "layer_norm_f32.h"

#include <cmath>

#include "simd_dispatch.h"

namespace nd {

namespace {
// Rows of layer norm's forward. Sixteen independent partial sums per reduction: with a single
// accumulator each add would wait for the previous one.
ND_SIMD_KERNEL(LayerNormRowsF32,
               (const float* __restrict x, const float* __restrict w, const float* __restrict b, float* __restrict out,
                float* __restrict mean, float* __restrict rstd, int64_t rows, int64_t N, float eps), {
  constexpr int V = 16;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * N;
    float a[V] = {};
    int64_t j = 0;
    for (; j + V <= N; j += V)
      for (int l = 0; l < V; ++l) a[l] += xr[j + l];
    for (; j < N; ++j) a[0] += xr[j];
    float s = 0.0f;
    for (int l = 0; l < V; ++l) s += a[l];
    const float mu = s / float(N);
    float q[V] = {};
    for (j = 0; j + V <= N; j += V)
      for (int l = 0; l < V; ++l) {
        const float d = xr[j + l] - mu;
        q[l] += d * d;
      }
    for (; j < N; ++j) q[0] += (xr[j] - mu) * (xr[j] - mu);
    float v = 0.0f;
    for (int l = 0; l < V; ++l) v += q[l];
    const float rs = 1.0f / std::sqrt(v / float(N) + eps);
    mean[r] = mu;
    rstd[r] = rs;
    float* o = out + r * N;
    for (int64_t k = 0; k < N; ++k) o[k] = (xr[k] - mu) * rs * w[k] + b[k];
  }
})
// Rows of layer norm's backward. The weight/bias column sums always accumulate into pw/pb (two
// cheap vector ops, no branches in the loop); the input gradient is written when gi is set. The
// row sums keep sixteen partial results, as in the forward.
ND_SIMD_KERNEL(LayerNormBackwardRowsF32,
               (const float* __restrict x, const float* __restrict g, const float* __restrict mean,
                const float* __restrict rstd, const float* __restrict w, float* __restrict gi, float* __restrict pw,
                float* __restrict pb, int64_t rows, int64_t N), {
  constexpr int V = 16;
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * N, *gr = g + r * N;
    const float mu = mean[r], rs = rstd[r];
    float a1[V] = {}, a2[V] = {};
    int64_t j = 0;
    for (; j + V <= N; j += V)
      for (int l = 0; l < V; ++l) {
        const float xh = (xr[j + l] - mu) * rs, gv = gr[j + l], gw = gv * w[j + l];
        pw[j + l] += gv * xh;
        pb[j + l] += gv;
        a1[l] += gw;
        a2[l] += gw * xh;
      }
    for (; j < N; ++j) {
      const float xh = (xr[j] - mu) * rs, gv = gr[j], gw = gv * w[j];
      pw[j] += gv * xh;
      pb[j] += gv;
      a1[0] += gw;
      a2[0] += gw * xh;
    }
    if (!gi) continue;
    float s1 = 0.0f, s2 = 0.0f;
    for (int l = 0; l < V; ++l) {
      s1 += a1[l];
      s2 += a2[l];
    }
    s1 /= float(N);
    s2 /= float(N);
    float* o = gi + r * N;
    for (int64_t k = 0; k < N; ++k) o[k] = rs * (gr[k] * w[k] - s1 - (xr[k] - mu) * rs * s2);
  }
})
}  // namespace

void layer_norm_rows_f32(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                         int64_t rows, int64_t N, float eps) {
  simd_run<LayerNormRowsF32>(x, w, b, out, mean, rstd, rows, N, eps);
}

void layer_norm_backward_rows_f32(const float* x, const float* g, const float* mean, const float* rstd, const float* w,
                                  float* gi, float* pw, float* pb, int64_t rows, int64_t N) {
  simd_run<LayerNormBackwardRowsF32>(x, g, mean, rstd, w, gi, pw, pb, rows, N);
}

}  // namespace nd
