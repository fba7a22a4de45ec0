// rnn_fast.cpp: the float32 AVX-512 time loops of the fused LSTM layer (declared in rnn_fast.h).
//
// Note [Fused LSTM fast path]
// A step of an LSTM is a short product (M = batch, ~20) of h_{t-1} with W_hh followed by the gate
// math. OpenBLAS spends much of such a product packing its operands, and its threads hand off at
// every step, so these loops run their own register-tiled product and share the work across our
// pool once per layer call instead of once per step:
// - W_hh is packed into panels of 64 contiguous columns (at the first step, by whoever computes
//   that block). In the forward a panel holds the i, f, g, o columns of 16 hidden units, so a
//   step's 64-wide output tile is everything the gate math of those units needs and is consumed
//   while still in L1. In the backward a panel holds 64 units of dh = dgates @ W_hh, and the
//   gate gradients of those units follow at once.
// - When the input is no wider than the hidden state (lstm_fuses_input), the forward panels
//   also hold W_ih's columns of their units below W_hh's, and a step's tile starts from the
//   bias plus x_t @ W_ih^T: the input projection costs the same multiply-adds inside the loop
//   as in one GEMM before it, without that GEMM's (T, B, 4H) result going through memory, and
//   at K = I ~ 64 that GEMM ran at ~60% of the loop's rate. A wider input keeps the GEMM: its
//   panels would outgrow the core's L2 at every step.
// - A step needs all of h_{t-1} (or all of the later step's gate gradients), so each step waits
//   for the previous one to be complete. Within a step, the unit blocks are claimed from
//   counters (class Steps): each thread takes the blocks of its own share first, so its panels
//   stay in its core's caches, then any left unclaimed. On a quiet machine that is a static
//   split with one wait per step; on a loaded one a thread the OS has descheduled delays a step
//   by at most the block it holds, and the running thread does the rest.
// Products use a 5 x 64 register tile (20 AVX-512 accumulators) over 64-deep slices of a panel.
// The gate math runs on whole 16-lane vectors with vecmath's x16 functions (with the scalar
// sigmoid_f32/tanh_f32, auto-vectorised, it took ~30% of a forward at H = 256, twice the share
// it has now); the products themselves run near the core's FMA peak.
#include "rnn_fast.h"

#include <sched.h>
#ifdef __x86_64__
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "simd_dispatch.h"
#include "simd_transpose.h"
#include "tensor.h"
#include "tile64.h"
#include "vecmath.h"

namespace nd {
namespace rnn_fast {

#ifdef ND_SIMD_X86
namespace {

// C (R x 64, row stride 64) += A (R x K, row stride lda) @ P (K x 64, contiguous).
template <int R>
__attribute__((always_inline, target("avx512f,fma"))) inline void tile(const float* A, int64_t lda, const float* P,
                                                                       float* C, int64_t K) {
  tile64::tile<R>(A, lda, P, 64, C, 64, K);
}

// Copies n <= N floats; the usual full case compiles to plain vector moves.
template <int64_t N>
inline void copy_n(const float* src, int64_t n, float* dst) {
  if (n == N) std::memcpy(dst, src, sizeof(float) * N);
  else std::memcpy(dst, src, sizeof(float) * n);
}

constexpr int64_t kKc = 64;  // a 64 x 64 slice of a panel (16 KB) stays in L1 across the rows

// C (M x 64) += A (M x K) @ P (K x 64).
ND_SIMD_TARGET_AVX512 void panel_gemm(int64_t M, int64_t K, const float* A, int64_t lda, const float* P, float* C) {
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kc = std::min(kKc, K - k0);
    const float* a = A + k0;
    const float* p = P + k0 * 64;
    int64_t m = 0;
    for (; m + 5 <= M; m += 5) tile<5>(a + m * lda, lda, p, C + m * 64, kc);
    switch (M - m) {
      case 4: tile<4>(a + m * lda, lda, p, C + m * 64, kc); break;
      case 3: tile<3>(a + m * lda, lda, p, C + m * 64, kc); break;
      case 2: tile<2>(a + m * lda, lda, p, C + m * 64, kc); break;
      case 1: tile<1>(a + m * lda, lda, p, C + m * 64, kc); break;
      default: break;
    }
  }
}

// Hands out the unit blocks of each step and tells when a step is complete (See Note [Fused
// LSTM fast path]). Part q owns blocks [first(q), first(q + 1)); a thread running parts [p0, p1)
// (more than one when the pool ran them inline) claims those first. Counters only grow: part q's
// is s * n_q + (blocks of step s claimed so far), and done_ counts finished blocks of all steps.
class Steps {
 public:
  Steps(int64_t parts, int64_t blocks) : parts_(parts), blocks_(blocks), next_(parts) {}
  int64_t first(int64_t p) const { return p * blocks_ / parts_; }

  // The next unclaimed block of step s, parts [p0, p1) first; false when none is left.
  bool claim(int64_t s, int64_t p0, int64_t p1, int64_t* blk) {
    for (int64_t i = 0; i < parts_; ++i) {
      const int64_t q = (p0 + i) % parts_;  // [p0, p1) first, then the others
      const int64_t n = first(q + 1) - first(q);
      std::atomic<int64_t>& c = next_[q].v;
      int64_t v = c.load(std::memory_order_relaxed);
      while (v < (s + 1) * n) {
        if (c.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
          *blk = first(q) + v - s * n;
          return true;
        }
      }
    }
    return false;
  }
  // Publishes n finished blocks (their results are visible to whoever sees the count).
  void finish(int64_t n) { done_.fetch_add(n, std::memory_order_release); }
  // Waits until every block of step s is finished.
  void wait(int64_t s) {
    const int64_t want = (s + 1) * blocks_;
    // ~50 us of spinning covers a step of another thread; past that it is likely descheduled
    for (int spin = 0; done_.load(std::memory_order_acquire) < want; ++spin) {
      if (spin < 1024) __builtin_ia32_pause(); else sched_yield();
    }
  }

 private:
  struct alignas(64) Counter {
    std::atomic<int64_t> v{0};
  };
  const int64_t parts_, blocks_;
  std::vector<Counter> next_;
  alignas(64) std::atomic<int64_t> done_{0};
};

struct Layer {
  int64_t Tn, B, H;
  bool reverse;
  int64_t parts;
  float* packed;   // the panels
  float* scratch;  // one B x 64 tile per part
  int64_t t(int64_t s) const { return reverse ? Tn - 1 - s : s; }
};

// The gates' sigmoid: (x >= 0 ? 1 : e) / (1 + e), e = e^-|x|, from vecmath's exp reduction and
// a reciprocal-estimate division (~2 ulp in all; the scalar sigmoid_f32 pays a full division and
// exp's special-value selects). |x| is clamped at 87 so e stays normal: below -87 the result is e^-87
// (~1.6e-38) where the exact value is smaller still, an absolute difference below 2e-38.
ND_SIMD_TARGET_AVX512 inline __m512 sigmoid_x16(__m512 x) {
  const __m512 e = vm::exp_normal_x16(_mm512_sub_ps(_mm512_setzero_ps(), vm::min_x16(_mm512_abs_ps(x),
                                                                                     _mm512_set1_ps(87.0f))));
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 num = _mm512_mask_mov_ps(e, pos, _mm512_set1_ps(1.0f));
  return vm::nan_through_x16(x, vm::div_x16(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
}

// ---- forward: blocks of 16 units, panel columns (i, f, g, o) x 16 --------------------------
struct Fwd {
  LstmInput in;
  const float *h0, *c0, *w;
  float *out, *gates, *cells;
  int64_t k_in;  // panel rows of W_ih after W_hh's H: I, or 0 when gx is precomputed
};

// Panel rows [row0, row0 + cols) of unit block u from W (4H x cols, gate-major rows):
// P[(row0 + k) * 64 + g * 16 + jj] = W[(g * H + 16u + jj) * cols + k]; units past H stay zero.
// Each gate's 16 x 16 blocks go through one in-register transpose (a per-element gather was ~5%
// of a 35-step forward at H = 256).
ND_SIMD_TARGET_AVX512 void pack_units(const float* W, int64_t H, int64_t cols, int64_t u, float* P) {
  const int64_t units = std::min<int64_t>(16, H - u * 16);
  __m512 r[16];
  for (int64_t g = 0; g < 4; ++g) {
    const float* src = W + (g * H + u * 16) * cols;
    for (int64_t k0 = 0; k0 < cols; k0 += 16) {
      const int64_t kw = std::min<int64_t>(16, cols - k0);
      const __mmask16 km = kw >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << kw) - 1);
      for (int i = 0; i < 16; ++i)
        r[i] = i < units ? _mm512_maskz_loadu_ps(km, src + i * cols + k0) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t kk = 0; kk < kw; ++kk) _mm512_storeu_ps(P + (k0 + kk) * 64 + g * 16, r[kk]);
    }
  }
}

ND_SIMD_TARGET_AVX512 void lstm_fwd_block(const Layer& L, const Fwd& a, int64_t s, int64_t u, float* C) {
  const int64_t B = L.B, H = L.H, G = 4 * H, I = a.in.I;
  float* P = L.packed + u * (H + a.k_in) * 64;
  if (s == 0) {
    pack_units(a.w, H, H, u, P);
    if (a.in.gx == nullptr) pack_units(a.in.w_ih, H, I, u, P + H * 64);
  }
  const int64_t t = L.t(s);
  const float* hp = s == 0 ? a.h0 : a.out + L.t(s - 1) * B * H;
  const float* cp = s == 0 ? a.c0 : a.cells + L.t(s - 1) * B * H;
  const int64_t j0 = u * 16, n = std::min<int64_t>(16, H - j0);
  const __mmask16 mk = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  if (a.in.gx != nullptr) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < 4; ++g)
        _mm512_storeu_ps(C + b * 64 + g * 16, _mm512_maskz_loadu_ps(mk, a.in.gx + (t * B + b) * G + g * H + j0));
  } else {
    // the input's part of this step does not depend on h_{t-1}: bias, then x_t @ W_ih^T
    __m512 bias[4];
    for (int64_t g = 0; g < 4; ++g)
      bias[g] = a.in.bias != nullptr ? _mm512_maskz_loadu_ps(mk, a.in.bias + g * H + j0) : _mm512_setzero_ps();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < 4; ++g) _mm512_storeu_ps(C + b * 64 + g * 16, bias[g]);
    panel_gemm(B, I, a.in.x + t * B * I, I, P + H * 64, C);
  }
  panel_gemm(B, H, hp, H, P, C);
  for (int64_t b = 0; b < B; ++b) {
    const float* x = C + b * 64;
    const __m512 i = sigmoid_x16(_mm512_loadu_ps(x)), f = sigmoid_x16(_mm512_loadu_ps(x + 16));
    const __m512 g = vm::tanh_x16(_mm512_loadu_ps(x + 32)), o = sigmoid_x16(_mm512_loadu_ps(x + 48));
    const __m512 c = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(mk, cp + b * H + j0), _mm512_mul_ps(i, g));
    float* gr = a.gates + (t * B + b) * G + j0;
    _mm512_mask_storeu_ps(gr, mk, i);
    _mm512_mask_storeu_ps(gr + H, mk, f);
    _mm512_mask_storeu_ps(gr + 2 * H, mk, g);
    _mm512_mask_storeu_ps(gr + 3 * H, mk, o);
    _mm512_mask_storeu_ps(a.cells + (t * B + b) * H + j0, mk, c);
    _mm512_mask_storeu_ps(a.out + (t * B + b) * H + j0, mk, _mm512_mul_ps(o, vm::tanh_x16(c)));
  }
}

// ---- backward: blocks of 64 units of dh, panel = W_hh[:, units] (4H x 64) ------------------
struct Bwd {
  const float *gout, *ghn, *c0, *w, *gates, *cells;
  float *dgx, *dh0, *dc;
};

// Step s (counted from the sequence's last step) of the backward for block v; s == Tn computes
// dh0 from the first step's gate gradients.
ND_SIMD_TARGET_AVX512 void lstm_bwd_block(const Layer& L, const Bwd& a, int64_t s, int64_t v, float* C) {
  const int64_t B = L.B, H = L.H, G = 4 * H, Tn = L.Tn;
  const int64_t j0 = v * 64, n = std::min<int64_t>(64, H - j0);
  float* P = L.packed + v * G * 64;
  if (s == 0)
    for (int64_t k = 0; k < G; ++k) {
      copy_n<64>(a.w + k * H + j0, n, P + k * 64);
      std::fill(P + k * 64 + n, P + k * 64 + 64, 0.0f);
    }
  if (s == Tn) {
    std::fill(C, C + B * 64, 0.0f);
    panel_gemm(B, G, a.dgx + L.t(0) * B * G, G, P, C);
    for (int64_t b = 0; b < B; ++b) copy_n<64>(C + b * 64, n, a.dh0 + b * H + j0);
    return;
  }
  const int64_t t = L.t(Tn - 1 - s);
  const float* cp = s == Tn - 1 ? a.c0 : a.cells + L.t(Tn - 2 - s) * B * H;
  for (int64_t b = 0; b < B; ++b) {
    const float* go = a.gout + (t * B + b) * H + j0;
    const float* gh = a.ghn + b * H + j0;
    float* d = C + b * 64;
    if (s == 0) {
      for (int64_t jj = 0; jj < n; ++jj) d[jj] = go[jj] + gh[jj];
    } else {
      copy_n<64>(go, n, d);
    }
    std::fill(d + n, d + 64, 0.0f);
  }
  // the recurrent part of dh_t: the later step's gate gradients through W_hh
  if (s > 0) panel_gemm(B, G, a.dgx + L.t(Tn - s) * B * G, G, P, C);
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t q = 0; q < n; q += 16) {
      const int64_t j = j0 + q;
      const __mmask16 mk = n - q >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - q)) - 1);
      const float* gr = a.gates + (t * B + b) * G + j;
      const __m512 i = _mm512_maskz_loadu_ps(mk, gr), f = _mm512_maskz_loadu_ps(mk, gr + H);
      const __m512 g = _mm512_maskz_loadu_ps(mk, gr + 2 * H), o = _mm512_maskz_loadu_ps(mk, gr + 3 * H);
      const __m512 dh = _mm512_loadu_ps(C + b * 64 + q);
      const __m512 tc = vm::tanh_x16(_mm512_maskz_loadu_ps(mk, a.cells + (t * B + b) * H + j));
      const __m512 cp_v = _mm512_maskz_loadu_ps(mk, cp + b * H + j);
      float* dcb = a.dc + b * H + j;
      // dc_t = dc_{t+1} * f_{t+1} (carried in dc) + dh * o * (1 - tanh(c)^2)
      const __m512 dho = _mm512_mul_ps(dh, o);
      const __m512 dcv = _mm512_fmadd_ps(dho, _mm512_fnmadd_ps(tc, tc, one), _mm512_maskz_loadu_ps(mk, dcb));
      const __m512 di = _mm512_mul_ps(_mm512_mul_ps(dcv, g), _mm512_fnmadd_ps(i, i, i));  // i (1 - i) = i - i^2
      const __m512 df = _mm512_mul_ps(_mm512_mul_ps(dcv, cp_v), _mm512_fnmadd_ps(f, f, f));
      const __m512 dg = _mm512_mul_ps(_mm512_mul_ps(dcv, i), _mm512_fnmadd_ps(g, g, one));
      const __m512 d_o = _mm512_mul_ps(_mm512_mul_ps(dh, tc), _mm512_fnmadd_ps(o, o, o));
      float* dgo = a.dgx + (t * B + b) * G + j;
      _mm512_mask_storeu_ps(dgo, mk, di);
      _mm512_mask_storeu_ps(dgo + H, mk, df);
      _mm512_mask_storeu_ps(dgo + 2 * H, mk, dg);
      _mm512_mask_storeu_ps(dgo + 3 * H, mk, d_o);
      _mm512_mask_storeu_ps(dcb, mk, _mm512_mul_ps(dcv, f));
    }
}

// Threads worth using for a step of B x 4H x K multiply-adds split into `blocks` unit blocks:
// below ~0.25 M MACs a step, the hand-off costs more than the second thread saves.
int64_t parts_for(int64_t B, int64_t H, int64_t K, int64_t blocks) {
  if (B * 4 * H * K < (int64_t(1) << 18) || in_parallel_region()) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), blocks));
}

// Panels and tiles of one call (~1 MB at H = 256): from the caching allocator, which hands the
// same block, pages already mapped, to the next call.
Tensor buffer(int64_t n) { return empty_tensor({n}, DType::Float32); }

// Runs block(s, blk, tile) for every step s < nsteps and block, a step only after the previous
// one is complete.
template <typename F>
void run_steps(const Layer& L, int64_t nsteps, int64_t blocks, F&& block) {
  Steps steps(L.parts, blocks);
  auto body = [&](int64_t p0, int64_t p1) {
    float* C = L.scratch + p0 * L.B * 64;
    for (int64_t s = 0; s < nsteps; ++s) {
      if (s > 0) steps.wait(s - 1);
      int64_t mine = 0, blk;
      for (; steps.claim(s, p0, p1, &blk); ++mine) block(s, blk, C);
      steps.finish(mine);
    }
  };
  if (L.parts == 1) body(0, 1);
  else parallel_for(L.parts, 1, body);
}

}  // namespace

bool lstm_fast_applies(int64_t B) { return B <= 256 && simd_level() == SimdLevel::Avx512; }

void lstm_forward(int64_t Tn, int64_t B, int64_t H, const LstmInput& in, const float* h0, const float* c0,
                  const float* w, bool reverse, float* out, float* gates, float* cells) {
  const int64_t nb = (H + 15) / 16;
  const int64_t k_in = in.gx == nullptr ? in.I : 0;
  Layer L{Tn, B, H, reverse, parts_for(B, H, H + k_in, nb), nullptr, nullptr};
  const Tensor buf = buffer(nb * (H + k_in) * 64 + L.parts * B * 64);
  L.packed = buf.data<float>();
  L.scratch = L.packed + nb * (H + k_in) * 64;
  const Fwd a{in, h0, c0, w, out, gates, cells, k_in};
  run_steps(L, Tn, nb, [&](int64_t s, int64_t u, float* C) { lstm_fwd_block(L, a, s, u, C); });
}

void lstm_backward(int64_t Tn, int64_t B, int64_t H, const float* gout, const float* ghn, const float* gcn,
                   const float* c0, const float* w, const float* gates, const float* cells, bool reverse, float* dgx,
                   float* dh0, float* dc0) {
  const int64_t nb = (H + 63) / 64;
  Layer L{Tn, B, H, reverse, parts_for(B, H, H, nb), nullptr, nullptr};
  const Tensor buf = buffer(nb * 4 * H * 64 + L.parts * B * 64);
  L.packed = buf.data<float>();
  L.scratch = L.packed + nb * 4 * H * 64;
  std::copy(gcn, gcn + B * H, dc0);  // dc0 carries the cell gradient through the steps
  const Bwd a{gout, ghn, c0, w, gates, cells, dgx, dh0, dc0};
  // Tn steps, then one more for dh0
  run_steps(L, Tn + 1, nb, [&](int64_t s, int64_t v, float* C) { lstm_bwd_block(L, a, s, v, C); });
}

#else  // no AVX-512 variants on this platform: rnn.cpp's OpenBLAS loops serve every layer

bool lstm_fast_applies(int64_t) { return false; }
void lstm_forward(int64_t, int64_t, int64_t, const LstmInput&, const float*, const float*, const float*, bool, float*,
                  float*, float*) {}
void lstm_backward(int64_t, int64_t, int64_t, const float*, const float*, const float*, const float*, const float*,
                   const float*, const float*, bool, float*, float*, float*) {}

#endif

}  // namespace rnn_fast
}  // namespace nd
