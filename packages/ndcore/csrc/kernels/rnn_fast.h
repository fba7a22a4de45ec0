// rnn_fast.h: the float32 AVX-512 time loops of the fused LSTM layer (rnn_fast.cpp). rnn.cpp
// calls them when lstm_fast_applies() and falls back to its OpenBLAS loops otherwise.
// See Note [Fused LSTM fast path] in rnn_fast.cpp.
#pragma once
#include <cstdint>

namespace nd {
namespace rnn_fast {

// Whether the loops below serve a float32 layer of this batch: the CPU (and ND_SIMD) allow
// AVX-512 and the batch is short enough for the per-step register-tiled products.
bool lstm_fast_applies(int64_t B);

// What a forward step adds to the recurrent product: the precomputed input projections gx
// (Tn, B, 4H), or (gx null) the input x (Tn, B, I) with W_ih (4H, I) row-major and an optional
// combined bias b_ih + b_hh (4H), which the loop projects step by step (lstm_fuses_input).
struct LstmInput {
  const float* gx;
  const float* x;
  const float* w_ih;
  const float* bias;
  int64_t I;
};

// Whether the forward projects the input inside the time loop (W_ih's panels beside W_hh's)
// rather than taking gx from one GEMM before it: when the input is no wider than the hidden
// state, so the panels grow by at most 2x (See Note [Fused LSTM fast path]).
inline bool lstm_fuses_input(int64_t I, int64_t H) { return I <= H; }

// One direction over Tn >= 1 steps. h0, c0 (B, H); w (4H, H) row-major W_hh. Writes out
// (Tn, B, H), gates (Tn, B, 4H) activated, cells (Tn, B, H).
void lstm_forward(int64_t Tn, int64_t B, int64_t H, const LstmInput& in, const float* h0, const float* c0,
                  const float* w, bool reverse, float* out, float* gates, float* cells);

// Backward over Tn >= 1 steps. gout (Tn, B, H); ghn/gcn (B, H); c0, gates, cells as saved by
// lstm_forward. Writes dgx (Tn, B, 4H) (pre-activation gate gradients), dh0 and dc0 (B, H).
// dW_hh is left to the caller (one GEMM over dgx after the loop).
void lstm_backward(int64_t Tn, int64_t B, int64_t H, const float* gout, const float* ghn, const float* gcn,
                   const float* c0, const float* w, const float* gates, const float* cells, bool reverse, float* dgx,
                   float* dh0, float* dc0);

}  // namespace rnn_fast
}  // namespace nd
