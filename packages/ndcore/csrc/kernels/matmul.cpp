// Matrix products: mm, bmm, matmul (torch's broadcasting rules), addmm. float32/float64 go to
// OpenBLAS (scipy-openblas32, symbols prefixed scipy_); other dtypes use a blocked loop.
#include <cblas.h>

#include "loops.h"

namespace nd {
namespace {

// How a 2-D strided matrix can be handed to BLAS without copying.
struct BlasMat {
  Tensor t;
  CBLAS_TRANSPOSE trans;
  int ld;
};
BlasMat as_blas(const Tensor& m) {
  int64_t r = m.sizes()[0], c = m.sizes()[1], s0 = m.strides()[0], s1 = m.strides()[1];
  if ((s1 == 1 || c == 1) && s0 >= std::max<int64_t>(1, c)) return {m, CblasNoTrans, (int)std::max<int64_t>(s0, 1)};
  if ((s0 == 1 || r == 1) && s1 >= std::max<int64_t>(1, r)) return {m, CblasTrans, (int)std::max<int64_t>(s1, 1)};
  Tensor cc = nd::clone(m);
  return {cc, CblasNoTrans, (int)std::max<int64_t>(c, 1)};
}

template <typename T>
void gemm_generic(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta) {
  using C = std::conditional_t<std::is_floating_point_v<typename compute_type<T>::type>, typename compute_type<T>::type, int64_t>;
  int64_t M = a.sizes()[0], K = a.sizes()[1], N = b.sizes()[1];
  const T* ad = a.data<T>();
  const T* bd = b.data<T>();
  T* od = out.data<T>();
  int64_t as0 = a.strides()[0], as1 = a.strides()[1], bs0 = b.strides()[0], bs1 = b.strides()[1];
  int64_t os0 = out.strides()[0], os1 = out.strides()[1];
  parallel_for(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K * N)), [&](int64_t m0, int64_t m1) {
    std::vector<C> row(N);
    for (int64_t i = m0; i < m1; ++i) {
      std::fill(row.begin(), row.end(), C(0));
      for (int64_t k = 0; k < K; ++k) {
        C av = C((typename compute_type<T>::type)ad[i * as0 + k * as1]);
        for (int64_t j = 0; j < N; ++j) row[j] += av * C((typename compute_type<T>::type)bd[k * bs0 + j * bs1]);
      }
      for (int64_t j = 0; j < N; ++j) {
        C prev = beta == 0 ? C(0) : C((typename compute_type<T>::type)od[i * os0 + j * os1]);
        od[i * os0 + j * os1] = T((typename compute_type<T>::type)(C(alpha) * row[j] + C(beta) * prev));
      }
    }
  });
}

// out (contiguous [M,N]) = alpha * a @ b + beta * out
void gemm(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta) {
  int64_t M = a.sizes()[0], K = a.sizes()[1], N = b.sizes()[1];
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0) nd::zero_(out);
    else if (beta != 1) nd::mul_(out, scalar_tensor(beta, DType::Float64, true));
    return;
  }
  DType dt = a.dtype();
  if (dt == DType::Float32 || dt == DType::Float64) {
    BlasMat A = as_blas(a), B = as_blas(b);
    if (dt == DType::Float32)
      scipy_cblas_sgemm(CblasRowMajor, A.trans, B.trans, (int)M, (int)N, (int)K, (float)alpha, A.t.data<float>(), A.ld,
                        B.t.data<float>(), B.ld, (float)beta, out.data<float>(), (int)std::max<int64_t>(N, 1));
    else
      scipy_cblas_dgemm(CblasRowMajor, A.trans, B.trans, (int)M, (int)N, (int)K, alpha, A.t.data<double>(), A.ld,
                        B.t.data<double>(), B.ld, beta, out.data<double>(), (int)std::max<int64_t>(N, 1));
    return;
  }
  ND_DISPATCH_ALL(dt, "mm", [&] {
    if constexpr (std::is_same_v<scalar_t, bool>) {
      throw TypeError("[mm] is not implemented for bool tensors");
    } else {
      gemm_generic<scalar_t>(a, b, out, alpha, beta);
    }
  });
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw TypeError(std::string("[") + op + "] expected both operands to have the same dtype, but got " +
                    dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()));
}

Tensor output_for(Call& c, const Shape& shape, DType dt, Device dev) {
  Tensor out = prepare_output(c, shape, dt, dt, dev);
  return out.is_contiguous() && out.dtype() == dt ? out : empty_tensor(shape, dt, dev);
}

// Batched product of contiguous-batch 3-D operands into contiguous out [B,M,N].
void bmm_into(const Tensor& a, const Tensor& b, const Tensor& out) {
  int64_t B = a.sizes()[0];
  int64_t M = a.sizes()[1], N = b.sizes()[2];
  auto mat = [](const Tensor& t, int64_t i) { return t.view_of({t.sizes()[1], t.sizes()[2]}, {t.strides()[1], t.strides()[2]}, t.offset() + i * t.strides()[0]); };
  // Small matrices: one BLAS call each costs more than the math; run batches in parallel.
  bool small = M * N * a.sizes()[2] < 64 * 64 * 64;
  auto body = [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) gemm(mat(a, i), mat(b, i), mat(out, i), 1.0, 0.0);
  };
  if (small) parallel_for(B, 8, body); else body(0, B);
}

}  // namespace

void k_mm(Call& c) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  if (a.dim() != 2 || b.dim() != 2)
    throw ValueError("[mm] expected 2-D tensors, got shapes " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()));
  if (a.sizes()[1] != b.sizes()[0])
    throw ValueError("[mm] shapes " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()) + " cannot be multiplied (" +
                     std::to_string(a.sizes()[1]) + " != " + std::to_string(b.sizes()[0]) + ")");
  check_same_dtype("mm", a, b);
  Tensor out = output_for(c, {a.sizes()[0], b.sizes()[1]}, a.dtype(), a.device());
  gemm(a, b, out, 1.0, 0.0);
  finish_output(c, out);
}

void k_bmm(Call& c) {
  const Tensor &a = c.inputs[0], &b = c.inputs[1];
  if (a.dim() != 3 || b.dim() != 3)
    throw ValueError("[bmm] expected 3-D tensors, got shapes " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()));
  if (a.sizes()[0] != b.sizes()[0] || a.sizes()[2] != b.sizes()[1])
    throw ValueError("[bmm] shapes " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()) + " cannot be multiplied");
  check_same_dtype("bmm", a, b);
  Tensor out = output_for(c, {a.sizes()[0], a.sizes()[1], b.sizes()[2]}, a.dtype(), a.device());
  bmm_into(a, b, out);
  finish_output(c, out);
}

void k_matmul(Call& c) {
  Tensor a = c.inputs[0], b = c.inputs[1];
  if (a.dim() == 0 || b.dim() == 0)
    throw ValueError("[matmul] both arguments need at least 1 dimension, got shapes " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()));
  check_same_dtype("matmul", a, b);
  bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  if (a_vec) a = a.view_of({1, a.sizes()[0]}, {0, a.strides()[0]}, a.offset());
  if (b_vec) b = b.view_of({b.sizes()[0], 1}, {b.strides()[0], 0}, b.offset());
  int64_t M = a.sizes()[a.dim() - 2], K = a.sizes()[a.dim() - 1], K2 = b.sizes()[b.dim() - 2], N = b.sizes()[b.dim() - 1];
  if (K != K2)
    throw ValueError("[matmul] shapes " + shape_str(c.inputs[0].sizes()) + " and " + shape_str(c.inputs[1].sizes()) +
                     " cannot be multiplied (" + std::to_string(K) + " != " + std::to_string(K2) + ")");
  Shape ba(a.sizes().begin(), a.sizes().end() - 2), bb(b.sizes().begin(), b.sizes().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape final_shape = batch;
  if (!a_vec) final_shape.push_back(M);
  if (!b_vec) final_shape.push_back(N);
  Tensor out = output_for(c, final_shape, a.dtype(), a.device());
  int64_t B = numel_of(batch);
  if (batch.empty()) {
    gemm(a, b, out.view_of({M, N}, {N, 1}, out.offset()), 1.0, 0.0);
  } else if (bb.empty() && a.is_contiguous()) {
    // [..., M, K] @ [K, N]: fold the batch into M for one large GEMM
    Tensor a2 = a.view_of({B * M, K}, {K, 1}, a.offset());
    gemm(a2, b, out.view_of({B * M, N}, {N, 1}, out.offset()), 1.0, 0.0);
  } else {
    Shape sa = batch, sb = batch;
    sa.push_back(M); sa.push_back(K);
    sb.push_back(K); sb.push_back(N);
    Tensor ae = nd::expand(a, sa), be = nd::expand(b, sb);
    auto flat3 = [&](const Tensor& t, int64_t r, int64_t cc) {
      Tensor tc = t;
      // batch dims must collapse to one stride; otherwise materialise
      Shape st(t.strides().begin(), t.strides().end() - 2);
      bool ok = true;
      for (size_t i = 0; i + 1 < st.size(); ++i)
        if (st[i] != st[i + 1] * batch[i + 1]) ok = false;
      if (!ok) tc = nd::clone(t);
      int64_t bstride = batch.empty() ? 0 : tc.strides()[batch.size() - 1];
      return tc.view_of({B, r, cc}, {bstride, tc.strides()[tc.dim() - 2], tc.strides()[tc.dim() - 1]}, tc.offset());
    };
    bmm_into(flat3(ae, M, K), flat3(be, K, N), out.view_of({B, M, N}, {M * N, N, 1}, out.offset()));
  }
  finish_output(c, out);
}

void k_addmm(Call& c) {
  const Tensor &self = c.inputs[0], &a = c.inputs[1], &b = c.inputs[2];
  if (a.dim() != 2 || b.dim() != 2 || a.sizes()[1] != b.sizes()[0])
    throw ValueError("[addmm] mat1 and mat2 shapes cannot be multiplied: " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()));
  check_same_dtype("addmm", a, b);
  check_same_dtype("addmm", self, a);
  double beta = c.attrs[0].to_double(), alpha = c.attrs[1].to_double();
  Shape shape{a.sizes()[0], b.sizes()[1]};
  Tensor out = output_for(c, shape, a.dtype(), a.device());
  if (beta != 0) copy_into(out, self);  // broadcasts the bias
  gemm(a, b, out, alpha, beta);
  finish_output(c, out);
}

}  // namespace nd
