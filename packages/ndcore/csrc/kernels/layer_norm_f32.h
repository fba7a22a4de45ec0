// layer_norm_f32.h: the float32 layer norm row loops (layer_norm_f32.cpp), run at the CPU's best
// ISA (simd_dispatch.h). Rows are contiguous runs of N; w and b are never null (ones/zeros when
// the norm has no affine parameters).
#pragma once
#include <cstdint>

namespace nd {

// out = (x - mean) * rstd * w + b per row, also writing each row's mean and rstd.
void layer_norm_rows_f32(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                         int64_t rows, int64_t N, float eps);
// Adds the rows' weight and bias gradients into pw/pb (length N); writes the input gradient when
// gi is not null.
void layer_norm_backward_rows_f32(const float* x, const float* g, const float* mean, const float* rstd, const float* w,
                                  float* gi, float* pw, float* pb, int64_t rows, int64_t N);

}  // namespace nd
