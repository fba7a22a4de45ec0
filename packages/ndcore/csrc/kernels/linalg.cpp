// Linear algebra through LAPACK from the scipy-openblas32 wheel (symbols prefixed scipy_, 32-bit
// integers): inv, solve, det, slogdet, cholesky, qr, svd, svdvals, eigh, eigvalsh. float32 and
// float64, batched over the leading dims; results are fresh contiguous tensors.
//
// Note [LAPACK layout]
// Each matrix is copied into a column-major scratch buffer, LAPACK's own layout, and the
// LAPACKE *_work entry points are called with LAPACK_COL_MAJOR, so LAPACKE neither transposes
// nor scans for NaN (a NaN input gives NaN results, as in torch, not an argument error). The
// O(n^2) copies are small next to the O(n^3) factorisations and let every input layout
// (transposed, sliced, expanded batch) take one path. Small matrices run batch elements on the
// thread pool; large ones run one at a time and leave the threads to OpenBLAS.
#include <lapacke.h>

#include <cmath>
#include <limits>

#include "loops.h"

namespace nd {
namespace {

using lint = lapack_int;

template <typename T> struct Lapack;
#define ND_LAPACK(T, p)                                                                                          \
  template <> struct Lapack<T> {                                                                                 \
    static lint gesv(lint n, lint nrhs, T* a, lint lda, lint* ipiv, T* b, lint ldb) {                            \
      return scipy_LAPACKE_##p##gesv_work(LAPACK_COL_MAJOR, n, nrhs, a, lda, ipiv, b, ldb);                      \
    }                                                                                                            \
    static lint getrf(lint n, T* a, lint* ipiv) {                                                                \
      return scipy_LAPACKE_##p##getrf_work(LAPACK_COL_MAJOR, n, n, a, n, ipiv);                                  \
    }                                                                                                            \
    static lint potrf(char uplo, lint n, T* a) { return scipy_LAPACKE_##p##potrf_work(LAPACK_COL_MAJOR, uplo, n, a, n); } \
    static lint geqrf(lint m, lint n, T* a, T* tau, T* work, lint lwork) {                                       \
      return scipy_LAPACKE_##p##geqrf_work(LAPACK_COL_MAJOR, m, n, a, m, tau, work, lwork);                      \
    }                                                                                                            \
    static lint orgqr(lint m, lint n, lint k, T* a, const T* tau, T* work, lint lwork) {                         \
      return scipy_LAPACKE_##p##orgqr_work(LAPACK_COL_MAJOR, m, n, k, a, m, tau, work, lwork);                   \
    }                                                                                                            \
    static lint gesdd(char jobz, lint m, lint n, T* a, T* s, T* u, lint ldu, T* vt, lint ldvt, T* work, lint lwork, \
                      lint* iwork) {                                                                             \
      return scipy_LAPACKE_##p##gesdd_work(LAPACK_COL_MAJOR, jobz, m, n, a, m, s, u, ldu, vt, ldvt, work, lwork, iwork); \
    }                                                                                                            \
    static lint syevd(char jobz, char uplo, lint n, T* a, T* w, T* work, lint lwork, lint* iwork, lint liwork) { \
      return scipy_LAPACKE_##p##syevd_work(LAPACK_COL_MAJOR, jobz, uplo, n, a, n, w, work, lwork, iwork, liwork); \
    }                                                                                                            \
  };
ND_LAPACK(float, s)
ND_LAPACK(double, d)
#undef ND_LAPACK

template <typename F>
void float_dispatch(DType dt, F&& f) {
  if (dt == DType::Float32) f(float()); else f(double());
}

// A workspace size LAPACK returned as a floating value (float32 cannot hold every integer).
template <typename T> lint ws(T v) { return std::max<lint>(1, (lint)std::ceil((double)v * 1.0001) + 1); }

Shape batch_of(const Tensor& t) { return Shape(t.sizes().begin(), t.sizes().end() - 2); }
int64_t rows_of(const Tensor& t) { return t.sizes()[t.dim() - 2]; }
int64_t cols_of(const Tensor& t) { return t.sizes()[t.dim() - 1]; }

// Element offsets of each matrix of a (..., m, n) tensor, in C order over the batch dims.
std::vector<int64_t> matrix_offsets(const Tensor& t) {
  Shape bs = batch_of(t);
  std::vector<int64_t> off(numel_of(bs));
  for (int64_t b = 0; b < (int64_t)off.size(); ++b) {
    int64_t rem = b, o = 0;
    for (int64_t d = (int64_t)bs.size() - 1; d >= 0; --d) {
      o += (rem % bs[d]) * t.strides()[d];
      rem /= bs[d];
    }
    off[b] = o;
  }
  return off;
}

// The (m, n) matrix at element offset `off` of t into a column-major buffer with leading dim ld.
template <typename T>
void load_cm(const Tensor& t, int64_t off, T* buf, int64_t ld) {
  int64_t m = rows_of(t), n = cols_of(t), s0 = t.strides()[t.dim() - 2], s1 = t.strides()[t.dim() - 1];
  const T* src = t.data<T>() + off;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) buf[i + j * ld] = src[i * s0 + j * s1];
}

// A column-major (rows, cols) buffer with leading dim ld into a contiguous row-major matrix.
template <typename T>
void store_rm(const T* buf, int64_t ld, int64_t rows, int64_t cols, T* dst) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = buf[i + j * ld];
}

template <typename T>
void set_identity(T* dst, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = T(i == j);
}

void check_input(const Tensor& A, const char* op, bool square) {
  if (A.dtype() != DType::Float32 && A.dtype() != DType::Float64)
    throw TypeError(std::string("[") + op + "] expected a float32 or float64 tensor, got " + dtype_name(A.dtype()));
  if (A.dim() < 2)
    throw ValueError(std::string("[") + op + "] the input tensor A must have at least 2 dimensions, got shape " +
                     shape_str(A.sizes()));
  int64_t m = rows_of(A), n = cols_of(A);
  if (square && m != n)
    throw ValueError(std::string("[") + op + "] A must be batches of square matrices, but they are " + std::to_string(m) +
                     " by " + std::to_string(n) + " matrices (shape " + shape_str(A.sizes()) + ")");
  if (std::max(m, n) > std::numeric_limits<lint>::max() / 8)
    throw ValueError(std::string("[") + op + "] matrices of shape " + shape_str(A.sizes()) + " are too large for 32-bit LAPACK");
}

// Raises for the first batch element whose LAPACK info is non-zero; `what` finishes the message.
template <typename F>
void raise_failure(const char* op, const Shape& batch, const std::vector<lint>& info, F&& what) {
  for (size_t b = 0; b < info.size(); ++b) {
    if (info[b] == 0) continue;
    std::string where = batch.empty() ? "" : "(Batch element " + std::to_string(b) + "): ";
    throw ValueError(std::string("[") + op + "] " + where + what((int64_t)info[b]));
  }
}

// Runs fn(b0, b1) over the batch: spread across the pool for small matrices, where one LAPACK
// call costs less than a thread hand-off; serially for large ones (OpenBLAS threads inside).
template <typename F>
void for_batches(int64_t B, int64_t n, F&& fn) {
  parallel_for(B, n <= 64 ? 8 : B + 1, fn);
}

Shape with_dims(Shape s, std::initializer_list<int64_t> tail) {
  s.insert(s.end(), tail.begin(), tail.end());
  return s;
}

}  // namespace

void k_linalg_inv(Call& c) {
  const Tensor& A = c.inputs[0];
  check_input(A, "linalg_inv", true);
  int64_t n = cols_of(A);
  Tensor out = empty_tensor(A.sizes(), A.dtype());
  auto off = matrix_offsets(A);
  std::vector<lint> info(off.size(), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (n == 0) return;
    for_batches((int64_t)off.size(), n, [&](int64_t b0, int64_t b1) {
      std::vector<T> a(n * n), x(n * n);
      std::vector<lint> ipiv(n);
      for (int64_t b = b0; b < b1; ++b) {
        load_cm(A, off[b], a.data(), n);
        std::fill(x.begin(), x.end(), T(0));
        for (int64_t i = 0; i < n; ++i) x[i * n + i] = T(1);
        info[b] = Lapack<T>::gesv((lint)n, (lint)n, a.data(), (lint)n, ipiv.data(), x.data(), (lint)n);
        store_rm(x.data(), n, n, n, out.data<T>() + b * n * n);
      }
    });
  });
  raise_failure("linalg_inv", batch_of(A), info, [](int64_t i) {
    return "The diagonal element " + std::to_string(i) +
           " is zero, the inversion could not be completed because the input matrix is singular.";
  });
  set_outputs(c, {out});
}

void k_linalg_solve(Call& c) {
  Tensor A = c.inputs[0], B = c.inputs[1];
  const bool left = c.attrs[0].b;
  check_input(A, "linalg_solve", true);
  if (B.dtype() != A.dtype())
    throw TypeError(std::string("[linalg_solve] expected A and B to have the same dtype, but got ") + dtype_name(A.dtype()) +
                    " and " + dtype_name(B.dtype()));
  if (B.dim() == 0) throw ValueError("[linalg_solve] B must have at least 1 dimension, got shape ()");
  // torch's rule: B is a (batch of) vector(s) when 1-D or shaped like A without its last dim
  const bool vector = B.dim() == 1 || (B.dim() == A.dim() - 1 && B.sizes() == Shape(A.sizes().begin(), A.sizes().end() - 1));
  if (vector) B = nd::unsqueeze(B, -1);
  if (!left) {  // X A = B  <=>  A^T X^T = B^T
    A = nd::transpose(A, -2, -1);
    B = nd::transpose(B, -2, -1);
  }
  int64_t n = cols_of(A);
  if (rows_of(B) != n)
    throw ValueError(std::string("[linalg_solve] incompatible shapes of A and B for the equation ") + (left ? "AX = B" : "XA = B") +
                     " (" + shape_str(c.inputs[0].sizes()) + " and " + shape_str(c.inputs[1].sizes()) + ")");
  int64_t k = cols_of(B);
  Shape batch = broadcast_shapes(batch_of(A), batch_of(B), "linalg_solve");
  Tensor Ae = nd::expand(A, with_dims(batch, {n, n})), Be = nd::expand(B, with_dims(batch, {n, k}));
  Tensor X = empty_tensor(with_dims(batch, {n, k}), A.dtype());
  auto offa = matrix_offsets(Ae), offb = matrix_offsets(Be);
  std::vector<lint> info(offa.size(), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (n == 0 || k == 0) return;
    for_batches((int64_t)offa.size(), n, [&](int64_t b0, int64_t b1) {
      std::vector<T> a(n * n), x(n * k);
      std::vector<lint> ipiv(n);
      for (int64_t b = b0; b < b1; ++b) {
        load_cm(Ae, offa[b], a.data(), n);
        load_cm(Be, offb[b], x.data(), n);
        info[b] = Lapack<T>::gesv((lint)n, (lint)k, a.data(), (lint)n, ipiv.data(), x.data(), (lint)n);
        store_rm(x.data(), n, n, k, X.data<T>() + b * n * k);
      }
    });
  });
  raise_failure("linalg_solve", batch, info, [](int64_t i) {
    return "The solver failed because the input matrix is singular (the diagonal element " + std::to_string(i) +
           " of its LU factor is zero).";
  });
  if (!left) X = nd::transpose(X, -2, -1).contiguous();
  if (vector) X = nd::select(X, -1, 0);
  set_outputs(c, {X});
}

namespace {
// det = sign * exp(logabsdet) from the LU factors; a singular matrix leaves an exact zero on
// U's diagonal (getrf's info > 0), which gives det 0, sign 0 and logabsdet -inf.
template <typename T>
void lu_det(const Tensor& A, T* det, T* sign, T* logabs) {
  int64_t n = cols_of(A);
  auto off = matrix_offsets(A);
  for_batches((int64_t)off.size(), n, [&](int64_t b0, int64_t b1) {
    std::vector<T> a(std::max<int64_t>(n * n, 1));
    std::vector<lint> ipiv(std::max<int64_t>(n, 1));
    for (int64_t b = b0; b < b1; ++b) {
      T prod = 1, sgn = 1, lsum = 0;
      if (n > 0) {
        load_cm(A, off[b], a.data(), n);
        Lapack<T>::getrf((lint)n, a.data(), ipiv.data());
        for (int64_t i = 0; i < n; ++i) {
          T u = a[i * n + i];
          if (ipiv[i] != i + 1) {
            prod = -prod;
            sgn = -sgn;
          }
          prod *= u;
          sgn *= u > 0 ? T(1) : u < 0 ? T(-1) : u == 0 ? T(0) : u;  // NaN propagates
          lsum += std::log(std::abs(u));
        }
      }
      if (det) det[b] = prod;
      if (sign) sign[b] = sgn;
      if (logabs) logabs[b] = lsum;
    }
  });
}
}  // namespace

void k_linalg_det(Call& c) {
  const Tensor& A = c.inputs[0];
  check_input(A, "linalg_det", true);
  Tensor det = empty_tensor(batch_of(A), A.dtype());
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    lu_det<T>(A, det.data<T>(), nullptr, nullptr);
  });
  set_outputs(c, {det});
}

void k_linalg_slogdet(Call& c) {
  const Tensor& A = c.inputs[0];
  check_input(A, "linalg_slogdet", true);
  Tensor sign = empty_tensor(batch_of(A), A.dtype()), logabs = empty_tensor(batch_of(A), A.dtype());
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    lu_det<T>(A, nullptr, sign.data<T>(), logabs.data<T>());
  });
  set_outputs(c, {sign, logabs});
}

void k_linalg_cholesky(Call& c) {
  const Tensor& A = c.inputs[0];
  const bool upper = c.attrs[0].b;
  check_input(A, "linalg_cholesky", true);
  int64_t n = cols_of(A);
  Tensor out = empty_tensor(A.sizes(), A.dtype());
  auto off = matrix_offsets(A);
  std::vector<lint> info(off.size(), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (n == 0) return;
    for_batches((int64_t)off.size(), n, [&](int64_t b0, int64_t b1) {
      std::vector<T> a(n * n);
      for (int64_t b = b0; b < b1; ++b) {
        load_cm(A, off[b], a.data(), n);
        info[b] = Lapack<T>::potrf(upper ? 'U' : 'L', (lint)n, a.data());
        T* o = out.data<T>() + b * n * n;
        // potrf leaves the other triangle as it found it: write zeros there
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j) o[i * n + j] = (upper ? j >= i : j <= i) ? a[i + j * n] : T(0);
      }
    });
  });
  raise_failure("linalg_cholesky", batch_of(A), info, [](int64_t i) {
    return "The factorization could not be completed because the input is not positive-definite (the leading minor of order " +
           std::to_string(i) + " is not positive-definite).";
  });
  set_outputs(c, {out});
}

void k_linalg_qr(Call& c) {
  const Tensor& A = c.inputs[0];
  const std::string& mode = c.attrs[0].s;
  if (mode != "reduced" && mode != "complete" && mode != "r")
    throw ValueError("[linalg_qr] received unrecognized mode '" + mode + "' but expected one of 'reduced' (default), 'r', or 'complete'");
  check_input(A, "linalg_qr", false);
  const int64_t m = rows_of(A), n = cols_of(A), k = std::min(m, n);
  const bool want_q = mode != "r";
  const int64_t qc = mode == "complete" ? m : k;  // columns of Q, rows of R
  Shape batch = batch_of(A);
  Tensor Q = empty_tensor(want_q ? with_dims(batch, {m, qc}) : Shape{0}, A.dtype());
  Tensor R = empty_tensor(with_dims(batch, {qc, n}), A.dtype());
  auto off = matrix_offsets(A);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* qd = Q.data<T>();
    T* rd = R.data<T>();
    if (k == 0) {  // nothing to factor: R is zero, Q the identity (or empty)
      for (size_t b = 0; b < off.size(); ++b) {
        std::fill(rd + b * qc * n, rd + (b + 1) * qc * n, T(0));
        if (want_q) set_identity(qd + b * m * qc, m, qc);
      }
      return;
    }
    T wq1 = 0, wq2 = 0, dummy = 0;
    Lapack<T>::geqrf((lint)m, (lint)n, &dummy, &dummy, &wq1, -1);
    if (want_q) Lapack<T>::orgqr((lint)m, (lint)qc, (lint)k, &dummy, &dummy, &wq2, -1);
    const lint lwork = std::max(ws(wq1), ws(wq2));
    for_batches((int64_t)off.size(), std::max(m, n), [&](int64_t b0, int64_t b1) {
      std::vector<T> a(m * n), q(want_q ? m * qc : 1), tau(k), work(lwork);
      for (int64_t b = b0; b < b1; ++b) {
        load_cm(A, off[b], a.data(), m);
        Lapack<T>::geqrf((lint)m, (lint)n, a.data(), tau.data(), work.data(), lwork);
        T* r = rd + b * qc * n;
        for (int64_t i = 0; i < qc; ++i)
          for (int64_t j = 0; j < n; ++j) r[i * n + j] = (j >= i && i < m) ? a[i + j * m] : T(0);
        if (!want_q) continue;
        std::copy(a.begin(), a.begin() + m * k, q.begin());  // the k reflectors, column by column
        Lapack<T>::orgqr((lint)m, (lint)qc, (lint)k, q.data(), tau.data(), work.data(), lwork);
        store_rm(q.data(), m, m, qc, qd + b * m * qc);
      }
    });
  });
  set_outputs(c, {Q, R});
}

namespace {
// jobz 'A' (full U, Vh), 'S' (reduced) or 'N' (values only); U / Vh may be null for 'N'.
template <typename T>
void svd_impl(const Tensor& A, char jobz, T* U, T* S, T* Vh, std::vector<lint>& info) {
  const int64_t m = rows_of(A), n = cols_of(A), k = std::min(m, n);
  const int64_t ucols = jobz == 'A' ? m : k, vrows = jobz == 'A' ? n : k;
  auto off = matrix_offsets(A);
  if (k == 0) {  // no singular values; the full bases are identities
    for (size_t b = 0; b < off.size(); ++b) {
      if (U) set_identity(U + b * m * ucols, m, ucols);
      if (Vh) set_identity(Vh + b * vrows * n, vrows, n);
    }
    return;
  }
  const bool vecs = jobz != 'N';
  const lint ldu = vecs ? (lint)m : 1, ldvt = vecs ? (lint)vrows : 1;
  T wq = 0, dummy = 0;
  lint idummy = 0;
  Lapack<T>::gesdd(jobz, (lint)m, (lint)n, &dummy, &dummy, &dummy, ldu, &dummy, ldvt, &wq, -1, &idummy);
  const lint lwork = ws(wq);
  for_batches((int64_t)off.size(), std::max(m, n), [&](int64_t b0, int64_t b1) {
    std::vector<T> a(m * n), s(k), u(vecs ? m * ucols : 1), vt(vecs ? vrows * n : 1), work(lwork);
    std::vector<lint> iwork(8 * k);
    for (int64_t b = b0; b < b1; ++b) {
      load_cm(A, off[b], a.data(), m);
      info[b] = Lapack<T>::gesdd(jobz, (lint)m, (lint)n, a.data(), s.data(), u.data(), ldu, vt.data(), ldvt, work.data(),
                                 lwork, iwork.data());
      std::copy(s.begin(), s.end(), S + b * k);
      if (U) store_rm(u.data(), m, m, ucols, U + b * m * ucols);
      if (Vh) store_rm(vt.data(), vrows, vrows, n, Vh + b * vrows * n);
    }
  });
}

std::string svd_failure(int64_t i) {
  return "The algorithm failed to converge because the input matrix is ill-conditioned or has too many repeated singular "
         "values (error code: " + std::to_string(i) + ").";
}
}  // namespace

void k_linalg_svd(Call& c) {
  const Tensor& A = c.inputs[0];
  const bool full = c.attrs[0].b;
  check_input(A, "linalg_svd", false);
  const int64_t m = rows_of(A), n = cols_of(A), k = std::min(m, n);
  Shape batch = batch_of(A);
  Tensor U = empty_tensor(with_dims(batch, {m, full ? m : k}), A.dtype());
  Tensor S = empty_tensor(with_dims(batch, {k}), A.dtype());
  Tensor Vh = empty_tensor(with_dims(batch, {full ? n : k, n}), A.dtype());
  std::vector<lint> info(numel_of(batch), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    svd_impl<T>(A, full ? 'A' : 'S', U.data<T>(), S.data<T>(), Vh.data<T>(), info);
  });
  raise_failure("linalg_svd", batch, info, svd_failure);
  set_outputs(c, {U, S, Vh});
}

void k_linalg_svdvals(Call& c) {
  const Tensor& A = c.inputs[0];
  check_input(A, "linalg_svdvals", false);
  Shape batch = batch_of(A);
  Tensor S = empty_tensor(with_dims(batch, {std::min(rows_of(A), cols_of(A))}), A.dtype());
  std::vector<lint> info(numel_of(batch), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    svd_impl<T>(A, 'N', nullptr, S.data<T>(), nullptr, info);
  });
  raise_failure("linalg_svdvals", batch, info, svd_failure);
  set_outputs(c, {S});
}

namespace {
template <typename T>
void eigh_impl(const Tensor& A, char uplo, T* W, T* V, std::vector<lint>& info) {
  const int64_t n = cols_of(A);
  if (n == 0) return;
  const char jobz = V ? 'V' : 'N';
  auto off = matrix_offsets(A);
  T wq = 0, dummy = 0;
  lint iq = 0;
  Lapack<T>::syevd(jobz, uplo, (lint)n, &dummy, &dummy, &wq, -1, &iq, -1);
  const lint lwork = ws(wq), liwork = std::max<lint>(1, iq);
  for_batches((int64_t)off.size(), n, [&](int64_t b0, int64_t b1) {
    std::vector<T> a(n * n), w(n), work(lwork);
    std::vector<lint> iwork(liwork);
    for (int64_t b = b0; b < b1; ++b) {
      load_cm(A, off[b], a.data(), n);
      info[b] = Lapack<T>::syevd(jobz, uplo, (lint)n, a.data(), w.data(), work.data(), lwork, iwork.data(), liwork);
      std::copy(w.begin(), w.end(), W + b * n);
      if (V) store_rm(a.data(), n, n, n, V + b * n * n);  // eigenvectors are a's columns
    }
  });
}

char parse_uplo(const std::string& s, const char* op) {
  if (s != "L" && s != "U")
    throw ValueError(std::string("[") + op + "] expected UPLO argument to be 'L' or 'U', but got '" + s + "'");
  return s[0];
}

std::string eigh_failure(int64_t i) {
  return "The algorithm failed to converge because the input matrix is ill-conditioned or has too many repeated "
         "eigenvalues (error code: " + std::to_string(i) + ").";
}
}  // namespace

void k_linalg_eigh(Call& c) {
  const Tensor& A = c.inputs[0];
  check_input(A, "linalg_eigh", true);
  char uplo = parse_uplo(c.attrs[0].s, "linalg_eigh");
  Shape batch = batch_of(A);
  Tensor W = empty_tensor(with_dims(batch, {cols_of(A)}), A.dtype()), V = empty_tensor(A.sizes(), A.dtype());
  std::vector<lint> info(numel_of(batch), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    eigh_impl<T>(A, uplo, W.data<T>(), V.data<T>(), info);
  });
  raise_failure("linalg_eigh", batch, info, eigh_failure);
  set_outputs(c, {W, V});
}

void k_linalg_eigvalsh(Call& c) {
  const Tensor& A = c.inputs[0];
  check_input(A, "linalg_eigvalsh", true);
  char uplo = parse_uplo(c.attrs[0].s, "linalg_eigvalsh");
  Shape batch = batch_of(A);
  Tensor W = empty_tensor(with_dims(batch, {cols_of(A)}), A.dtype());
  std::vector<lint> info(numel_of(batch), 0);
  float_dispatch(A.dtype(), [&](auto tag) {
    using T = decltype(tag);
    eigh_impl<T>(A, uplo, W.data<T>(), nullptr, info);
  });
  raise_failure("linalg_eigvalsh", batch, info, eigh_failure);
  set_outputs(c, {W});
}

}  // namespace nd
