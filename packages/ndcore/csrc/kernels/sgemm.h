// sgemm.h: ndcore's float32 GEMM entry (see Note [Packed SGEMM] in sgemm_avx512.cpp).
//
// nd::sgemm is a drop-in for a row-major, single-threaded cblas_sgemm:
//   C[M, N] = alpha * op(A) @ op(B) + beta * C
// with op(A) = A (a_trans false, A is [M, K] with row stride lda) or A^T (A is [K, M]), and
// likewise for B. beta == 0 never reads C (NaN in C is ignored); alpha == 0 or K == 0 reads
// neither A nor B. It runs on the calling thread only; callers split work across nd's pool.
//
// On AVX-512 CPUs it runs nd's packed kernel where that beats OpenBLAS; elsewhere, and for
// every shape when the environment sets ND_SGEMM=openblas (read once, for A/B comparisons), it
// calls OpenBLAS's scipy_cblas_sgemm. ND_SGEMM=nd takes nd's kernel for every shape it can
// (AVX-512 still required); tests use it to reach the kernel below its size threshold.
#pragma once

#include <cstdint>

namespace nd {

void sgemm(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// C[M, N] = alpha * op(A) @ op(B) + bias, bias a row of N floats added to every row of C (the
// addmm of nn.Linear): nd's kernel adds it as it stores the first K block instead of C being
// filled with it first and read back; the bits equal sgemm(..., beta = 1) over a C so filled.
void sgemm_bias(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc);

// Which implementation sgemm() takes for this product: "nd" or "openblas" (for tests).
const char* sgemm_backend(bool a_trans, bool b_trans, int64_t M, int64_t N, int64_t K);

}  // namespace nd
