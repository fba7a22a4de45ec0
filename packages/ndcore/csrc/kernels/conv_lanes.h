// conv_lanes.h: direct (im2col-free) AVX-512 kernels for the GEMM patterns of conv.cpp, for the
// shapes whose GEMMs are too thin for BLAS or whose im2col costs more than the product: samples,
// positions of a long row, or output channels in the vector lanes (see the Notes in
// conv_lanes.cpp). Each entry returns false, having done nothing, when no kernel serves the call
// (other CPUs included); conv.cpp then runs its im2col/GEMM path. Arguments follow conv.cpp's
// Shapes: big (N, Cb, *g.in), small (N, Cs, *g.out), weight (Cs, Cb/G, *g.k), all contiguous.
#pragma once
#include <cstdint>

#include "im2col.h"

namespace nd {
namespace lanes {

// Pattern A: small = W @ im2col(big) (+ bias per small channel).
template <typename T>
bool conv_a(const T* big, const T* w, const T* bias, T* small, int64_t N, int64_t Cb, int64_t Cs, int64_t G,
            const cols::Geo& g);

// Pattern B: big = col2im(W^T @ small), served for stride 1 as pattern A on the flipped weight.
template <typename T>
bool conv_b(const T* small, const T* w, T* big, int64_t N, int64_t Cb, int64_t Cs, int64_t G, const cols::Geo& g);

// Pattern C: dw = small @ im2col(big)^T summed over the batch (dw overwritten).
template <typename T>
bool conv_c(const T* small, const T* big, T* dw, int64_t N, int64_t Cb, int64_t Cs, int64_t G, const cols::Geo& g);

}  // namespace lanes
}  // namespace nd
