// rnn.cpp owns the fused recurrent layers: one direction of one LSTM or GRU layer over a whole
// (padded) sequence per call, forward and backward. ndnn wraps each forward/backward pair in an
// ndgrad.Function, so autograd sees one node per layer and direction.
//
// Note [Fused recurrent layers]
// An LSTM layer call takes the layer's input and both weights: the input projection x @ W_ih^T +
// b_ih + b_hh is either folded into the time loop (float32 on AVX-512 with an input no wider
// than the hidden state, See Note [Fused LSTM fast path]) or computed for all steps by one GEMM
// first; its gradients (dx, dW_ih, the biases') come out of the same backward call, so a layer
// is one op each way with no separate addmm, bias sums or copies around it. A GRU call takes
// the precomputed projection gx (its b_hn sits inside the reset gate's product). The loops run
// per step one GEMM with W_hh and the gate math in one pass over the batch. The forward saves
// the activated gates (and the LSTM cells / GRU hidden projection) so the backward needs no
// recomputation but tanh(c). The backward computes the weight gradients after the time loop as
// products over all steps, reading the previous hidden states from the saved output
// (weight_grads).
// Gate orders follow torch: LSTM (i, f, g, o), GRU (r, z, n).
#include <cblas.h>

#include <cstring>
#include <optional>

#include "blas_threads.h"
#include "loops.h"
#include "rnn_fast.h"
#include "sgemm.h"
#include "simd_dispatch.h"
#include "tile64.h"
#include "vecmath.h"

namespace nd {
namespace {

// C = alpha * op(A) @ op(B) + beta * C on contiguous row-major buffers.
template <typename T>
void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
             int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if constexpr (std::is_same_v<T, float>)
    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                      (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

// ---- small-M float32 GEMM for the per-step products ----------------------------------------
// C (M x N, ldc) += A (M x K, lda) @ Bt (K x N, ldb), all row-major, for the short batch (M) and
// wide gate (N) products of one time step, where OpenBLAS's packing costs more than it saves.
// Register tile: 5 rows x 64 columns (20 AVX-512 accumulators), K in chunks of 64 so the
// 64-column slice of Bt stays in L1. Columns past the last multiple of 64 go to OpenBLAS.
__attribute__((target("avx512f,fma"))) void small_sgemm_avx512(int64_t M, int64_t N, int64_t K, const float* A,
                                                               int64_t lda, const float* Bt, int64_t ldb, float* C,
                                                               int64_t ldc) {
  constexpr int64_t kKc = 64;
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    for (int64_t n0 = 0; n0 + 64 <= N; n0 += 64) {
      int64_t m0 = 0;
      for (; m0 + 5 <= M; m0 += 5) tile64::tile<5>(A + m0 * lda + k0, lda, Bt + k0 * ldb + n0, ldb, C + m0 * ldc + n0, ldc, kc);
      for (; m0 < M; ++m0) tile64::tile<1>(A + m0 * lda + k0, lda, Bt + k0 * ldb + n0, ldb, C + m0 * ldc + n0, ldc, kc);
    }
  }
}

// ND_SIMD below avx512 turns the tile kernel off too (tests reach the OpenBLAS steps that way).
bool has_avx512() { return simd_level() == SimdLevel::Avx512; }

// C += A @ Bt (row-major; Bt is K x N). float32 with AVX-512 and a short batch takes the tile
// kernel above; everything else OpenBLAS.
template <typename T>
void step_gemm_acc(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bt, int64_t ldb, T* C,
                   int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (M <= 32 && N >= 64 && has_avx512()) {
      small_sgemm_avx512(M, N, K, A, lda, Bt, ldb, C, ldc);
      const int64_t done = N / 64 * 64;
      if (done < N) gemm_rm<T>(false, false, M, N - done, K, T(1), A, lda, Bt + done, ldb, T(1), C + done, ldc);
      return;
    }
  }
  gemm_rm<T>(false, false, M, N, K, T(1), A, lda, Bt, ldb, T(1), C, ldc);
}

// Activations from vecmath.h (branch-free, so the row loops below vectorise); float64 tanh keeps
// libm's.
template <typename T> inline T sigm(T x) {
  if constexpr (std::is_same_v<T, float>) return vm::sigmoid_f32(x); else return vm::sigmoid_f64(x);
}
template <typename T> inline T tnh(T x) {
  if constexpr (std::is_same_v<T, float>) return vm::tanh_f32(x); else return std::tanh(x);
}

// ---- per-row gate math: contiguous loops, run as ISA variants (simd_dispatch.h) -------------
// LSTM forward for one batch row: gr holds the pre-activations (i, f, g, o), overwritten by the
// activations; writes the cell c and the hidden h.
template <typename T>
inline void lstm_fwd_row(T* gr, const T* cp, T* c, T* h, int64_t H) {
  for (int64_t j = 0; j < 2 * H; ++j) gr[j] = sigm(gr[j]);
  for (int64_t j = 2 * H; j < 3 * H; ++j) gr[j] = tnh(gr[j]);
  for (int64_t j = 3 * H; j < 4 * H; ++j) gr[j] = sigm(gr[j]);
  for (int64_t j = 0; j < H; ++j) {
    T cv = gr[H + j] * cp[j] + gr[j] * gr[2 * H + j];
    c[j] = cv;
    h[j] = gr[3 * H + j] * tnh(cv);
  }
}

// LSTM backward for one batch row: dh/dc hold the incoming gradients of h and c (dc is
// replaced by the gradient of the previous cell); writes the pre-activation gradients dgr.
template <typename T>
inline void lstm_bwd_row(const T* gr, const T* c, const T* cp, const T* go, const T* dh, T* dc, T* dgr, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T i = gr[j], f = gr[H + j], gg = gr[2 * H + j], o = gr[3 * H + j];
    T tc = tnh(c[j]);
    T dhv = dh[j] + go[j];
    T dcv = dc[j] + dhv * o * (T(1) - tc * tc);
    dgr[j] = dcv * gg * i * (T(1) - i);
    dgr[H + j] = dcv * cp[j] * f * (T(1) - f);
    dgr[2 * H + j] = dcv * i * (T(1) - gg * gg);
    dgr[3 * H + j] = dhv * tc * o * (T(1) - o);
    dc[j] = dcv * f;
  }
}

// GRU forward for one batch row: xr = input projection (r, z, n), hr = W_hh h + b_hh.
template <typename T>
inline void gru_fwd_row(const T* xr, const T* hr, const T* hp, T* gr, T* hnl, T* h, int64_t H) {
  for (int64_t j = 0; j < 2 * H; ++j) gr[j] = sigm(xr[j] + hr[j]);
  for (int64_t j = 0; j < H; ++j) {
    T hl = hr[2 * H + j];
    T n = tnh(xr[2 * H + j] + gr[j] * hl);
    T z = gr[H + j];
    gr[2 * H + j] = n;
    hnl[j] = hl;
    h[j] = n + z * (hp[j] - n);
  }
}

// GRU backward for one batch row: writes the gradients of the input projection (dg) and of the
// hidden projection W_hh h + b_hh (dgh, which differs in the n block by r), and the part of dh
// that skips W_hh (dhd).
template <typename T>
inline void gru_bwd_row(const T* gr, const T* hl, const T* hp, const T* go, const T* dh, T* dg, T* dgh, T* dhd,
                        int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T r = gr[j], z = gr[H + j], n = gr[2 * H + j];
    T dhv = dh[j] + go[j];
    T dan = dhv * (T(1) - z) * (T(1) - n * n);
    T dar = dan * hl[j] * r * (T(1) - r);
    T daz = dhv * (hp[j] - n) * z * (T(1) - z);
    dg[j] = dar, dg[H + j] = daz, dg[2 * H + j] = dan;
    dgh[j] = dar, dgh[H + j] = daz, dgh[2 * H + j] = dan * r;
    dhd[j] = dhv * z;
  }
}

// Rows [b0, b1) of one step; each row of a buffer is contiguous (gates 4H or 3H wide, states H).
template <typename T>
ND_SIMD_KERNEL(LstmFwdRows, (int64_t b0, int64_t b1, T* g, const T* cp, T* c, T* h, int64_t H), {
  for (int64_t b = b0; b < b1; ++b) lstm_fwd_row<T>(g + b * 4 * H, cp + b * H, c + b * H, h + b * H, H);
})
template <typename T>
ND_SIMD_KERNEL(LstmBwdRows, (int64_t b0, int64_t b1, const T* g, const T* c, const T* cp, const T* go, const T* dh,
                             T* dc, T* dg, int64_t H), {
  for (int64_t b = b0; b < b1; ++b)
    lstm_bwd_row<T>(g + b * 4 * H, c + b * H, cp + b * H, go + b * H, dh + b * H, dc + b * H, dg + b * 4 * H, H);
})
template <typename T>
ND_SIMD_KERNEL(GruFwdRows, (int64_t b0, int64_t b1, const T* x, const T* hr, const T* hp, T* g, T* hnl, T* h,
                            int64_t H), {
  for (int64_t b = b0; b < b1; ++b)
    gru_fwd_row<T>(x + b * 3 * H, hr + b * 3 * H, hp + b * H, g + b * 3 * H, hnl + b * H, h + b * H, H);
})
template <typename T>
ND_SIMD_KERNEL(GruBwdRows, (int64_t b0, int64_t b1, const T* g, const T* hl, const T* hp, const T* go, const T* dh,
                            T* dg, T* dgh, T* dhd, int64_t H), {
  for (int64_t b = b0; b < b1; ++b)
    gru_bwd_row<T>(g + b * 3 * H, hl + b * H, hp + b * H, go + b * H, dh + b * H, dg + b * 3 * H, dgh + b * 3 * H,
                   dhd + b * H, H);
})

void check_shape(const char* op, const char* what, const Tensor& t, const Shape& want) {
  if (t.sizes() != want)
    throw ValueError(std::string("[") + op + "] expected " + what + " of shape " + shape_str(want) + ", got " +
                     shape_str(t.sizes()));
}

// Checks dtypes agree and are float32/float64; returns contiguous copies where needed.
std::vector<Tensor> prepared(const char* op, std::initializer_list<Tensor> ts) {
  std::vector<Tensor> out;
  DType dt = ts.begin()->dtype();
  if (dt != DType::Float32 && dt != DType::Float64)
    throw TypeError(std::string("[") + op + "] expected float32 or float64 tensors, got " + dtype_name(dt));
  for (const Tensor& t : ts) {
    if (t.dtype() != dt)
      throw TypeError(std::string("[") + op + "] expected all tensors to have dtype " + dtype_name(dt) + ", got " +
                      dtype_name(t.dtype()));
    out.push_back(t.is_contiguous() ? t : t.contiguous());
  }
  return out;
}

// Whether OpenBLAS should run single-threaded (SingleThreadBlas) during a time loop: when a step
// is too small to pay for waking a second BLAS thread at every step (at these sizes a stalled
// wake-up costs more than the product).
inline bool small_steps(int64_t macs_per_step) { return macs_per_step <= (int64_t(1) << 23); }

// Rows of the batch split across threads only when a step has enough work to pay for it.
inline int64_t row_grain(int64_t H) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(H, 1)); }

inline int64_t step_t(int64_t s, int64_t T, bool reverse) { return reverse ? T - 1 - s : s; }

// Where weight_grads also writes the input's weight and bias gradients (LSTM); null: skipped.
template <typename T>
struct InputWeightGrads {
  const T* x = nullptr;  // the layer input, (Tn * B, I)
  int64_t I = 0;
  T* dw_ih = nullptr;  // (G, I) = dG^T @ x
  T* db = nullptr;     // (G): column sums of dG
};

// dW_hh = sum_t dG_t^T @ h_{t-1} (G x H) as two GEMMs over the saved outputs (no copy of
// h_{t-1}): the steps whose previous hidden state is a saved output, then the first step's (h0);
// and the InputWeightGrads asked for. With several threads the G rows of every result are split
// across our pool, one single-threaded GEMM per thread and result: OpenBLAS's own threading
// gains little on products of this size (K = T * B ~ 1000).
template <typename T>
void weight_grads(const T* dg, const T* out, const T* h0, int64_t Tn, int64_t B, int64_t H, int64_t G, bool reverse,
                  T* dw, const InputWeightGrads<T>& in = {}) {
  const int64_t I = in.dw_ih != nullptr ? in.I : 0;
  if (Tn * B == 0) {
    std::memset(dw, 0, sizeof(T) * G * H);
    if (in.dw_ih != nullptr) std::memset(in.dw_ih, 0, sizeof(T) * G * I);
    if (in.db != nullptr) std::memset(in.db, 0, sizeof(T) * G);
    return;
  }
  // forward: dG_1.. pair with out_0..; reverse: dG_0..T-2 pair with out_1..
  const T* dg_rest = reverse ? dg : dg + B * G;
  const T* h_rest = reverse ? out + B * H : out;
  const T* dg_first = dg + (reverse ? Tn - 1 : 0) * B * G;
  auto rows = [&](int64_t r0, int64_t r1) {
    T* d = dw + r0 * H;
    gemm_rm<T>(true, false, r1 - r0, H, (Tn - 1) * B, T(1), dg_rest + r0, G, h_rest, H, T(0), d, H);
    if (Tn == 1) std::memset(d, 0, sizeof(T) * (r1 - r0) * H);  // the GEMM above had K = 0
    gemm_rm<T>(true, false, r1 - r0, H, B, T(1), dg_first + r0, G, h0, H, T(1), d, H);
    if (I > 0) gemm_rm<T>(true, false, r1 - r0, I, Tn * B, T(1), dg + r0, G, in.x, I, T(0), in.dw_ih + r0 * I, I);
    if (in.db != nullptr) {
      // float32 sums in double: Tn * B terms, rounded once
      std::vector<double> acc((size_t)(r1 - r0), 0.0);
      for (int64_t r = 0; r < Tn * B; ++r) {
        const T* row = dg + r * G + r0;
        for (int64_t j = 0; j < r1 - r0; ++j) acc[j] += double(row[j]);
      }
      for (int64_t j = 0; j < r1 - r0; ++j) in.db[r0 + j] = T(acc[j]);
    }
  };
  const int64_t threads = get_num_threads();
  if (threads > 1 && !in_parallel_region() && G * (H + I) * Tn * B >= (int64_t(1) << 24)) {
    SingleThreadBlas single;
    const int64_t chunk = (G / threads + 15) / 16 * 16;  // whole 16-row blocks per thread
    parallel_for((G + chunk - 1) / chunk, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) rows(c * chunk, std::min(G, (c + 1) * chunk));
    });
  } else {
    rows(0, G);
  }
}

// ---- LSTM -------------------------------------------------------------------------------------
template <typename T> bool use_fast_lstm(int64_t Tn, int64_t B) {
  return std::is_same_v<T, float> && Tn > 0 && B > 0 && rnn_fast::lstm_fast_applies(B);
}

// x @ W_ih^T + bias for all Tn steps at once: (Tn, B, 4H).
Tensor input_projection(const Tensor& x, const Tensor& w_ih, const Tensor& bias) {
  const int64_t Tn = x.sizes()[0], B = x.sizes()[1];
  const Tensor x2 = nd::reshape(x, {Tn * B, x.sizes()[2]}), wt = nd::transpose(w_ih, 0, 1);
  const Tensor gx = bias.defined() ? nd::addmm(bias, x2, wt) : nd::mm(x2, wt);
  return nd::reshape(gx, {Tn, B, w_ih.sizes()[0]});
}

// bias: b_ih + b_hh (4H), or undefined for a layer without biases.
template <typename T>
void lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih, const Tensor& w,
                  const Tensor& bias, bool reverse, Tensor& out, Tensor& hn, Tensor& cn, Tensor& gates, Tensor& cells) {
  const int64_t Tn = x.sizes()[0], B = x.sizes()[1], I = x.sizes()[2], H = h0.sizes()[1], G = 4 * H;
  T* od = out.data<T>();
  T* gd = gates.data<T>();
  T* cd = cells.data<T>();
  if (use_fast_lstm<T>(Tn, B)) {
    if constexpr (std::is_same_v<T, float>) {
      rnn_fast::LstmInput in{nullptr, x.data<T>(), w_ih.data<T>(), bias.defined() ? bias.data<T>() : nullptr, I};
      Tensor gx;
      if (!rnn_fast::lstm_fuses_input(I, H)) {
        gx = input_projection(x, w_ih, bias);
        in.gx = gx.data<T>();
      }
      rnn_fast::lstm_forward(Tn, B, H, in, h0.data<T>(), c0.data<T>(), w.data<T>(), reverse, od, gd, cd);
    }
  } else {
    const Tensor gx = input_projection(x, w_ih, bias);
    const T* gxd = gx.data<T>();
    const Tensor wt = nd::transpose(w, 0, 1).contiguous();  // (H, 4H): the steps read it row by row
    const T* wtd = wt.data<T>();
    std::optional<SingleThreadBlas> blas;
    if (small_steps(B * G * H)) blas.emplace();
    for (int64_t s = 0; s < Tn; ++s) {
      const int64_t t = step_t(s, Tn, reverse), tp = step_t(s - 1, Tn, reverse);
      const T* hp = s == 0 ? h0.data<T>() : od + tp * B * H;
      const T* cp = s == 0 ? c0.data<T>() : cd + tp * B * H;
      T* g = gd + t * B * G;
      std::memcpy(g, gxd + t * B * G, sizeof(T) * B * G);
      step_gemm_acc<T>(B, G, H, hp, H, wtd, G, g, G);
      T* c = cd + t * B * H;
      T* h = od + t * B * H;
      parallel_for(B, row_grain(H), [&](int64_t b0, int64_t b1) { simd_run<LstmFwdRows<T>>(b0, b1, g, cp, c, h, H); });
    }
  }
  if (Tn == 0) {
    std::memcpy(hn.data<T>(), h0.data<T>(), sizeof(T) * B * H);
    std::memcpy(cn.data<T>(), c0.data<T>(), sizeof(T) * B * H);
  } else {
    const int64_t last = step_t(Tn - 1, Tn, reverse);
    std::memcpy(hn.data<T>(), od + last * B * H, sizeof(T) * B * H);
    std::memcpy(cn.data<T>(), cd + last * B * H, sizeof(T) * B * H);
  }
}

template <typename T>
void lstm_backward(const Tensor& gout, const Tensor& ghn, const Tensor& gcn, const Tensor& x, const Tensor& h0,
                   const Tensor& c0, const Tensor& w, const Tensor& out, const Tensor& gates, const Tensor& cells,
                   bool reverse, Tensor& dgx, Tensor& dh0, Tensor& dc0, Tensor& dw_ih, Tensor& dw, Tensor& db) {
  const int64_t Tn = gates.sizes()[0], B = gates.sizes()[1], H = h0.sizes()[1], G = 4 * H;
  const T* god = gout.data<T>();
  const T* wd = w.data<T>();
  const T* gd = gates.data<T>();
  const T* cd = cells.data<T>();
  T* dgd = dgx.data<T>();
  T* dh = dh0.data<T>();
  T* dc = dc0.data<T>();
  if (use_fast_lstm<T>(Tn, B)) {
    if constexpr (std::is_same_v<T, float>)
      rnn_fast::lstm_backward(Tn, B, H, god, ghn.data<T>(), gcn.data<T>(), c0.data<T>(), wd, gd, cd, reverse, dgd, dh,
                              dc);
  } else {
    std::memcpy(dh, ghn.data<T>(), sizeof(T) * B * H);
    std::memcpy(dc, gcn.data<T>(), sizeof(T) * B * H);
    std::optional<SingleThreadBlas> blas;
    if (small_steps(B * G * H)) blas.emplace();
    for (int64_t s = Tn - 1; s >= 0; --s) {
      const int64_t t = step_t(s, Tn, reverse), tp = step_t(s - 1, Tn, reverse);
      const T* cp = s == 0 ? c0.data<T>() : cd + tp * B * H;
      const T* g = gd + t * B * G;
      const T* c = cd + t * B * H;
      const T* go = god + t * B * H;
      T* dg = dgd + t * B * G;
      parallel_for(B, row_grain(H), [&](int64_t b0, int64_t b1) {
        simd_run<LstmBwdRows<T>>(b0, b1, g, c, cp, go, dh, dc, dg, H);
      });
      std::memset(dh, 0, sizeof(T) * B * H);
      step_gemm_acc<T>(B, H, G, dg, G, wd, H, dh, H);
    }
  }
  InputWeightGrads<T> in;
  in.x = x.data<T>();
  in.I = x.sizes()[2];
  in.dw_ih = dw_ih.data<T>();
  in.db = db.defined() ? db.data<T>() : nullptr;
  weight_grads<T>(dgd, out.data<T>(), h0.data<T>(), Tn, B, H, G, reverse, dw.data<T>(), in);
}

// ---- GRU --------------------------------------------------------------------------------------
template <typename T>
void gru_forward(const Tensor& gx, const Tensor& h0, const Tensor& w, const Tensor& bhh, bool reverse, Tensor& out,
                 Tensor& hn, Tensor& gates, Tensor& hidden_n) {
  const int64_t Tn = gx.sizes()[0], B = gx.sizes()[1], H = h0.sizes()[1], G = 3 * H;
  const T* gxd = gx.data<T>();
  const Tensor wt = nd::transpose(w, 0, 1).contiguous();
  const T* wtd = wt.data<T>();
  const T* bd = bhh.data<T>();
  T* od = out.data<T>();
  T* gd = gates.data<T>();
  T* nd_ = hidden_n.data<T>();
  std::vector<T> tmp((size_t)(B * G));
  std::optional<SingleThreadBlas> blas;
  if (small_steps(B * G * H)) blas.emplace();
  for (int64_t s = 0; s < Tn; ++s) {
    const int64_t t = step_t(s, Tn, reverse), tp = step_t(s - 1, Tn, reverse);
    const T* hp = s == 0 ? h0.data<T>() : od + tp * B * H;
    for (int64_t b = 0; b < B; ++b) std::memcpy(tmp.data() + b * G, bd, sizeof(T) * G);
    step_gemm_acc<T>(B, G, H, hp, H, wtd, G, tmp.data(), G);
    const T* x = gxd + t * B * G;
    T* g = gd + t * B * G;
    T* hnl = nd_ + t * B * H;
    T* h = od + t * B * H;
    const T* hr = tmp.data();
    parallel_for(B, row_grain(H), [&](int64_t b0, int64_t b1) {
      simd_run<GruFwdRows<T>>(b0, b1, x, hr, hp, g, hnl, h, H);
    });
  }
  const T* src = Tn == 0 ? h0.data<T>() : od + step_t(Tn - 1, Tn, reverse) * B * H;
  std::memcpy(hn.data<T>(), src, sizeof(T) * B * H);
}

template <typename T>
void gru_backward(const Tensor& gout, const Tensor& ghn, const Tensor& h0, const Tensor& w, const Tensor& out,
                  const Tensor& gates, const Tensor& hidden_n, bool reverse, Tensor& dgx, Tensor& dh0, Tensor& dw,
                  Tensor& db) {
  const int64_t Tn = gates.sizes()[0], B = gates.sizes()[1], H = h0.sizes()[1], G = 3 * H;
  const T* god = gout.data<T>();
  const T* wd = w.data<T>();
  const T* od = out.data<T>();
  const T* gd = gates.data<T>();
  const T* hnd = hidden_n.data<T>();
  T* dgd = dgx.data<T>();
  T* dh = dh0.data<T>();
  std::memcpy(dh, ghn.data<T>(), sizeof(T) * B * H);
  // gradients of the hidden projection W_hh h + b_hh (differs from dgx in the n block by r)
  Tensor dgh = empty_tensor({Tn, B, G}, out.dtype());
  T* dghd = dgh.data<T>();
  std::vector<T> dh_direct((size_t)(B * H));
  {
    std::optional<SingleThreadBlas> blas;
    if (small_steps(B * G * H)) blas.emplace();
    for (int64_t s = Tn - 1; s >= 0; --s) {
      const int64_t t = step_t(s, Tn, reverse), tp = step_t(s - 1, Tn, reverse);
      const T* hp = s == 0 ? h0.data<T>() : od + tp * B * H;
      const T* g = gd + t * B * G;
      const T* hl = hnd + t * B * H;
      const T* go = god + t * B * H;
      T* dg = dgd + t * B * G;
      T* dgg = dghd + t * B * G;
      T* dhd = dh_direct.data();
      parallel_for(B, row_grain(H), [&](int64_t b0, int64_t b1) {
        simd_run<GruBwdRows<T>>(b0, b1, g, hl, hp, go, dh, dg, dgg, dhd, H);
      });
      std::memcpy(dh, dh_direct.data(), sizeof(T) * B * H);
      step_gemm_acc<T>(B, H, G, dgg, G, wd, H, dh, H);
    }
  }
  T* dbd = db.data<T>();
  weight_grads<T>(dghd, od, h0.data<T>(), Tn, B, H, G, reverse, dw.data<T>());
  std::memset(dbd, 0, sizeof(T) * G);
  for (int64_t r = 0; r < Tn * B; ++r)
    for (int64_t j = 0; j < G; ++j) dbd[j] += dghd[r * G + j];
}

Tensor like(const Tensor& t) { return empty_tensor(t.sizes(), t.dtype()); }

}  // namespace

void k_lstm_layer(Call& c) {
  const char* op = "_lstm_layer";
  if (c.inputs[0].dim() != 3 || c.inputs[1].dim() != 2)
    throw ValueError(std::string("[") + op + "] expected input (T, B, I) and h0 (B, H), got " +
                     shape_str(c.inputs[0].sizes()) + " and " + shape_str(c.inputs[1].sizes()));
  auto in = prepared(op, {c.inputs[0], c.inputs[1], c.inputs[2], c.inputs[3], c.inputs[4]});
  const Tensor &x = in[0], &h0 = in[1], &c0 = in[2], &w_ih = in[3], &w = in[4];
  const int64_t Tn = x.sizes()[0], B = x.sizes()[1], I = x.sizes()[2], H = h0.sizes()[1];
  check_shape(op, "h0", h0, {B, H});
  check_shape(op, "c0", c0, {B, H});
  check_shape(op, "w_ih", w_ih, {4 * H, I});
  check_shape(op, "w_hh", w, {4 * H, H});
  Tensor bias;  // b_ih + b_hh, either alone, or none
  for (int k : {5, 6}) {
    const Tensor& b = c.inputs[k];
    if (!b.defined()) continue;
    const Tensor bc = prepared(op, {x, b})[1];
    check_shape(op, k == 5 ? "b_ih" : "b_hh", bc, {4 * H});
    bias = bias.defined() ? nd::add(bias, bc) : bc;
  }
  const bool reverse = c.attrs[0].b;
  Tensor out = empty_tensor({Tn, B, H}, x.dtype()), hn = like(h0), cn = like(c0);
  Tensor gates = empty_tensor({Tn, B, 4 * H}, x.dtype()), cells = empty_tensor({Tn, B, H}, x.dtype());
  if (x.dtype() == DType::Float32) lstm_forward<float>(x, h0, c0, w_ih, w, bias, reverse, out, hn, cn, gates, cells);
  else lstm_forward<double>(x, h0, c0, w_ih, w, bias, reverse, out, hn, cn, gates, cells);
  set_outputs(c, {out, hn, cn, gates, cells});
}

void k_lstm_layer_backward(Call& c) {
  const char* op = "_lstm_layer_backward";
  auto in = prepared(op, {c.inputs[0], c.inputs[1], c.inputs[2], c.inputs[3], c.inputs[4], c.inputs[5], c.inputs[6],
                          c.inputs[7], c.inputs[8], c.inputs[9], c.inputs[10]});
  const Tensor &gout = in[0], &ghn = in[1], &gcn = in[2], &x = in[3], &h0 = in[4], &c0 = in[5], &w_ih = in[6],
               &w = in[7], &out = in[8], &gates = in[9], &cells = in[10];
  if (gates.dim() != 3 || h0.dim() != 2 || x.dim() != 3)
    throw ValueError(std::string("[") + op + "] expected gates (T, B, 4H), input (T, B, I) and h0 (B, H), got " +
                     shape_str(gates.sizes()) + ", " + shape_str(x.sizes()) + " and " + shape_str(h0.sizes()));
  const int64_t Tn = gates.sizes()[0], B = gates.sizes()[1], H = h0.sizes()[1], I = x.sizes()[2];
  check_shape(op, "gates", gates, {Tn, B, 4 * H});
  check_shape(op, "input", x, {Tn, B, I});
  for (const Tensor* t : {&gout, &out, &cells}) check_shape(op, "grad_output/output/cells", *t, {Tn, B, H});
  for (const Tensor* t : {&ghn, &gcn, &c0}) check_shape(op, "grad_hn/grad_cn/c0", *t, {B, H});
  check_shape(op, "w_ih", w_ih, {4 * H, I});
  check_shape(op, "w_hh", w, {4 * H, H});
  const bool reverse = c.attrs[0].b, has_bias = c.attrs[1].b, input_grad = c.attrs[2].b;
  Tensor dgx = like(gates), dh0 = like(h0), dc0 = like(c0), dw_ih = like(w_ih), dw = like(w);
  Tensor db = has_bias ? empty_tensor({4 * H}, w.dtype()) : Tensor();
  if (h0.dtype() == DType::Float32)
    lstm_backward<float>(gout, ghn, gcn, x, h0, c0, w, out, gates, cells, reverse, dgx, dh0, dc0, dw_ih, dw, db);
  else
    lstm_backward<double>(gout, ghn, gcn, x, h0, c0, w, out, gates, cells, reverse, dgx, dh0, dc0, dw_ih, dw, db);
  Tensor dx = input_grad ? nd::reshape(nd::mm(nd::reshape(dgx, {Tn * B, 4 * H}), w_ih), {Tn, B, I}) : Tensor();
  // torch gives both biases the same gradient; two tensors, so an in-place change to one grad
  // does not reach the other
  set_outputs(c, {dx, dh0, dc0, dw_ih, dw, db, has_bias ? db.clone() : Tensor()});
}

void k_gru_layer(Call& c) {
  const char* op = "_gru_layer";
  if (c.inputs[0].dim() != 3 || c.inputs[1].dim() != 2)
    throw ValueError(std::string("[") + op + "] expected gates_x (T, B, 3H) and h0 (B, H), got " +
                     shape_str(c.inputs[0].sizes()) + " and " + shape_str(c.inputs[1].sizes()));
  auto in = prepared(op, {c.inputs[0], c.inputs[1], c.inputs[2], c.inputs[3]});
  const Tensor &gx = in[0], &h0 = in[1], &w = in[2], &bhh = in[3];
  const int64_t Tn = gx.sizes()[0], B = gx.sizes()[1], H = h0.sizes()[1];
  check_shape(op, "gates_x", gx, {Tn, B, 3 * H});
  check_shape(op, "h0", h0, {B, H});
  check_shape(op, "w_hh", w, {3 * H, H});
  check_shape(op, "b_hh", bhh, {3 * H});
  const bool reverse = c.attrs[0].b;
  Tensor out = empty_tensor({Tn, B, H}, gx.dtype()), hn = like(h0);
  Tensor gates = empty_tensor({Tn, B, 3 * H}, gx.dtype()), hidden_n = empty_tensor({Tn, B, H}, gx.dtype());
  if (gx.dtype() == DType::Float32) gru_forward<float>(gx, h0, w, bhh, reverse, out, hn, gates, hidden_n);
  else gru_forward<double>(gx, h0, w, bhh, reverse, out, hn, gates, hidden_n);
  set_outputs(c, {out, hn, gates, hidden_n});
}

void k_gru_layer_backward(Call& c) {
  const char* op = "_gru_layer_backward";
  auto in = prepared(op, {c.inputs[0], c.inputs[1], c.inputs[2], c.inputs[3], c.inputs[4], c.inputs[5], c.inputs[6]});
  const Tensor &gout = in[0], &ghn = in[1], &h0 = in[2], &w = in[3], &out = in[4], &gates = in[5], &hidden_n = in[6];
  if (gates.dim() != 3 || h0.dim() != 2)
    throw ValueError(std::string("[") + op + "] expected gates (T, B, 3H) and h0 (B, H), got " +
                     shape_str(gates.sizes()) + " and " + shape_str(h0.sizes()));
  const int64_t Tn = gates.sizes()[0], B = gates.sizes()[1], H = h0.sizes()[1];
  check_shape(op, "gates", gates, {Tn, B, 3 * H});
  for (const Tensor* t : {&gout, &out, &hidden_n}) check_shape(op, "grad_output/output/hidden_n", *t, {Tn, B, H});
  check_shape(op, "grad_hn", ghn, {B, H});
  check_shape(op, "w_hh", w, {3 * H, H});
  const bool reverse = c.attrs[0].b;
  Tensor dgx = like(gates), dh0 = like(h0), dw = like(w), db = empty_tensor({3 * H}, w.dtype());
  if (h0.dtype() == DType::Float32)
    gru_backward<float>(gout, ghn, h0, w, out, gates, hidden_n, reverse, dgx, dh0, dw, db);
  else
    gru_backward<double>(gout, ghn, h0, w, out, gates, hidden_n, reverse, dgx, dh0, dw, db);
  set_outputs(c, {dgx, dh0, dw, db});
}

}  // namespace nd
