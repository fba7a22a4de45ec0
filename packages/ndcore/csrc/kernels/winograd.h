// Winograd convolution for 2-D 3x3, stride-1, dilation-1, ungrouped float32 convs (forward, input
// and weight gradients): fewer multiplications than im2col + GEMM on the layers that dominate
// ResNet-style models. Each entry
// returns false when the geometry or size does not suit it, and the caller then runs the
// im2col/GEMM path (conv.cpp). Tensors are contiguous NCHW; weights (Cout, Cin, 3, 3).
#pragma once
#include <cstdint>

#include "tensor.h"

namespace nd {
namespace winograd {

// y (N, Cout, OH, OW) = conv(x (N, Cin, H, W), w) + bias; pads ph/pw zeros on each side.
bool conv3x3_forward(const float* x, const float* w, const float* bias, float* y, int64_t N, int64_t Cin, int64_t Cout,
                     int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW, const Tensor* key = nullptr);

// gx (N, Cin, H, W) = the input gradient of the conv above given gy (N, Cout, OH, OW).
bool conv3x3_backward_input(const float* gy, const float* w, float* gx, int64_t N, int64_t Cin, int64_t Cout, int64_t H,
                            int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW, const Tensor* key = nullptr);

// gw (Cout, Cin, 3, 3) = the weight gradient of the conv above given gy and x (overwritten).
bool conv3x3_backward_weight(const float* gy, const float* x, float* gw, int64_t N, int64_t Cin, int64_t Cout,
                             int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW);

// The forward and input-gradient entries transform the weights (Note [Transformed weight cache]
// in winograd.cpp). With `key`, the weight tensor `w` points into (float32, contiguous), the
// transform is kept per weight and reused until the weight changes; without it, it is redone.
// Dropping every kept transform, and counting the live ones: hooks for a binding (releasing
// memory, tests); not bound yet.
void clear_weight_cache();
int64_t weight_cache_size();

}  // namespace winograd
}  // namespace nd
