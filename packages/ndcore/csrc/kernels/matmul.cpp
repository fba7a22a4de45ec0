// Matrix products: mm, bmm, matmul (torch's broadcasting rules), addmm. float32 goes to nd::sgemm
// (sgemm.h: nd's packed AVX-512 kernel, or OpenBLAS where that is faster or AVX-512 is absent),
// float64 to OpenBLAS (scipy-openblas32, symbols prefixed scipy_); other dtypes use a blocked loop.
//
// Note [GEMM threading]
// OpenBLAS's own threads scale poorly on the products models make (a few hundred rows, K of a
// few hundred): 64x576 @ 576x3136 went from 2.0 ms to 1.5-1.8 ms at 2 threads, where two
// single-threaded halves on our pool took 1.07 ms. Its idle threads also spin after each call,
// taking cores from our pool's next kernel. So our pool does the splitting and every BLAS call
// runs single-threaded (SingleThreadBlas):
//  - a batch of matrices is dealt out whole to the workers when it divides evenly or is large;
//  - otherwise each matrix is cut into one column block (or row block, when M > N: each piece
//    then re-packs B rather than A, whichever operand is smaller) per worker.
// Pieces are cut along M or N only, never K. A matrix dealt out whole is computed by the same
// single-threaded call at any thread count, so batched results dealt out whole are bitwise
// equal at 1 and 2 threads. A matrix cut into pieces is too when nd's kernel computes it (its
// sum order does not depend on where an element sits, Note [Packed SGEMM]), but not when
// OpenBLAS does: its micro-kernels sum an element's K products in an order that depends on the
// tile the element falls in (full or edge tile), and the tiling follows its internal cache
// blocking, so the last bits may differ from the single-threaded product (as with OpenBLAS's or
// MKL's own threads). The split is static, so a given thread count always gives the same bits.
#include <cblas.h>

#include <climits>
#include <functional>

#include "blas_threads.h"
#include "loops.h"
#include "sgemm.h"

namespace nd {
namespace {

// Below this many multiply-adds (M*N*K summed over the batch, ~30 us on one core) one thread
// finishes before waking a worker pays for itself, the more so when other processes hold the
// cores and the wake-up waits for a time slice.
constexpr double kMinSplitWork = 1 << 21;

// How a strided [r, c] matrix reaches BLAS without a copy: row-major with a transpose flag.
struct BlasLayout {
  bool ok;
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};
BlasLayout blas_layout(int64_t r, int64_t c, int64_t s0, int64_t s1) {
  // A dim of size 1 may carry any stride; BLAS only needs ld >= the other extent.
  if ((c == 1 || s1 == 1) && (r == 1 || s0 >= std::max<int64_t>(1, c))) {
    int64_t ld = r == 1 ? std::max<int64_t>(1, c) : s0;
    if (ld <= INT_MAX) return {true, CblasNoTrans, ld};
  }
  if ((r == 1 || s0 == 1) && (c == 1 || s1 >= std::max<int64_t>(1, r))) {
    int64_t ld = c == 1 ? std::max<int64_t>(1, r) : s1;
    if (ld <= INT_MAX) return {true, CblasTrans, ld};
  }
  return {false, CblasNoTrans, 0};
}
BlasLayout blas_layout(const Tensor& t) {
  int64_t d = t.dim();
  return blas_layout(t.sizes()[d - 2], t.sizes()[d - 1], t.strides()[d - 2], t.strides()[d - 1]);
}

template <typename T>
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, double alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, double beta, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>)
    sgemm(ta == CblasTrans, tb == CblasTrans, M, N, K, (float)alpha, a, lda, b, ldb, (float)beta, c, ldc);
  else
    scipy_cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, alpha, a, (int)lda, b, (int)ldb, beta, c,
                      (int)ldc);
}

// out[i] = alpha * A[i] @ B[i] + beta * out[i] for i < batch; out is contiguous [batch, M, N].
// A[i] starts aoff[i] elements after a.data() and has layout la (likewise B).
struct BatchedGemm {
  int64_t batch, M, N, K;
  Tensor a, b, out;
  std::vector<int64_t> aoff, boff;
  BlasLayout la, lb;
  double alpha = 1, beta = 0;
  // Writes the addend of out[i] rows or columns [p0, p1) just before that piece's product, so
  // the bias copy is split like the product and the piece is still in cache when BLAS reads it.
  std::function<void(int64_t i, bool cols, int64_t p0, int64_t p1)> init;
  // float32 with beta == 1 and an addend that is one contiguous row (nn.Linear's bias): the
  // GEMM adds it as it stores (nd::sgemm_bias) and init is skipped, saving a pass over out.
  const float* row_bias = nullptr;
};

// How a batched product is dealt out (Note [GEMM threading]).
struct Split {
  bool parallel = false;
  bool cols = true;    // pieces are column blocks (else row blocks)
  int64_t pieces = 1;  // per matrix
  int64_t chunk = 0;   // rows or columns per piece
};

Split choose_split(int64_t batch, int64_t M, int64_t N, int64_t K, int threads) {
  Split s;
  s.chunk = N;
  if (threads <= 1 || double(batch) * double(M) * double(N) * double(K) < kMinSplitWork) return s;
  if (batch >= 4 * threads || batch % threads == 0) {
    s.parallel = true;
    return s;
  }
  // Cut the dimension whose operand is re-packed less: column pieces each pack all of A (M*K),
  // row pieces all of B (K*N).
  s.cols = N >= M;
  int64_t d = s.cols ? N : M;
  int64_t per = (d + threads - 1) / threads;
  int64_t align = per >= 256 ? 16 : 4;  // whole micro-kernel tiles, but balanced on small d
  if (per < 2 * align && batch == 1) return s;
  s.parallel = true;
  if (per < 2 * align) return s;  // split the batch only
  s.chunk = (per + align - 1) / align * align;
  s.pieces = (d + s.chunk - 1) / s.chunk;
  return s;
}

template <typename T>
void run_blas(const BatchedGemm& g) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const T* A = g.a.data<T>();
  const T* B = g.b.data<T>();
  T* C = g.out.data<T>();
  Split s = choose_split(g.batch, M, N, K, in_parallel_region() ? 1 : get_num_threads());
  auto piece = [&](int64_t item) {
    int64_t i = item / s.pieces, q = item % s.pieces;
    int64_t d = s.cols ? N : M;
    int64_t p0 = std::min(d, q * s.chunk), p1 = s.pieces == 1 ? d : std::min(d, p0 + s.chunk);
    if (p0 >= p1) return;
    const bool fused_bias = std::is_same_v<T, float> && g.row_bias != nullptr;
    if (g.init && !fused_bias) g.init(i, s.cols, p0, p1);
    const T* a = A + g.aoff[i];
    const T* b = B + g.boff[i];
    T* c = C + i * M * N;
    int64_t m = M, n = N;
    if (s.cols) {
      b += g.lb.trans == CblasNoTrans ? p0 : p0 * g.lb.ld;
      c += p0;
      n = p1 - p0;
    } else {
      a += g.la.trans == CblasNoTrans ? p0 * g.la.ld : p0;
      c += p0 * N;
      m = p1 - p0;
    }
    if constexpr (std::is_same_v<T, float>) {
      if (fused_bias)
        return sgemm_bias(g.la.trans == CblasTrans, g.lb.trans == CblasTrans, m, n, K, (float)g.alpha, a, g.la.ld, b,
                          g.lb.ld, g.row_bias + (s.cols ? p0 : 0), c, N);
    }
    blas_gemm<T>(g.la.trans, g.lb.trans, m, n, K, g.alpha, a, g.la.ld, b, g.lb.ld, g.beta, c, N);
  };
  SingleThreadBlas one_thread;
  int64_t items = g.batch * s.pieces;
  if (s.parallel)
    parallel_for(items, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t it = i0; it < i1; ++it) piece(it);
    });
  else
    for (int64_t it = 0; it < items; ++it) piece(it);
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

// out (2-D view) = alpha * a @ b + beta * out, for dtypes BLAS does not cover.
void gemm_loop(const Tensor& a, const Tensor& b, const Tensor& out, double alpha, double beta) {
  ND_DISPATCH_ALL(a.dtype(), "mm", [&] {
    if constexpr (std::is_same_v<scalar_t, bool>) {
      throw TypeError("[mm] is not implemented for bool tensors");
    } else {
      gemm_generic<scalar_t>(a, b, out, alpha, beta);
    }
  });
}

bool is_blas_dtype(DType dt) { return dt == DType::Float32 || dt == DType::Float64; }

// Runs g (after g.init) for any dtype and any K, including K == 0 (out = beta * addend).
void run_batched(BatchedGemm& g) {
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  DType dt = g.out.dtype();
  if (g.K == 0 || !is_blas_dtype(dt)) {
    Tensor out3 = g.out.view_of({g.batch, g.M, g.N}, {g.M * g.N, g.N, 1}, g.out.offset());
    if (g.init)
      for (int64_t i = 0; i < g.batch; ++i) g.init(i, true, 0, g.N);
    if (g.K == 0) {
      if (g.beta == 0) nd::zero_(out3);
      else if (g.beta != 1) nd::mul_(out3, scalar_tensor(g.beta, DType::Float64, true));
      return;
    }
    auto mat = [](const Tensor& t, int64_t off, int64_t r, int64_t c, int64_t s0, int64_t s1) {
      return t.view_of({r, c}, {s0, s1}, t.offset() + off);
    };
    auto one = [&](int64_t i) {
      Tensor am = g.la.trans == CblasNoTrans ? mat(g.a, g.aoff[i], g.M, g.K, g.la.ld, 1) : mat(g.a, g.aoff[i], g.M, g.K, 1, g.la.ld);
      Tensor bm = g.lb.trans == CblasNoTrans ? mat(g.b, g.boff[i], g.K, g.N, g.lb.ld, 1) : mat(g.b, g.boff[i], g.K, g.N, 1, g.lb.ld);
      gemm_loop(am, bm, mat(g.out, i * g.M * g.N, g.M, g.N, g.N, 1), g.alpha, g.beta);
    };
    // Small matrices: the per-matrix loop is not worth a parallel region of its own.
    bool small = g.M * g.N * g.K < 64 * 64 * 64;
    if (small) parallel_for(g.batch, 8, [&](int64_t b0, int64_t b1) { for (int64_t i = b0; i < b1; ++i) one(i); });
    else for (int64_t i = 0; i < g.batch; ++i) one(i);
    return;
  }
  if (dt == DType::Float32) run_blas<float>(g);
  else run_blas<double>(g);
}

// Fills one operand of g (t: [..., r, c] with `batch_strides` over the broadcast `batch`): the
// tensor, its per-matrix offsets and BLAS layout. Matrices BLAS cannot read in place are copied
// to a contiguous tensor first, once per distinct matrix.
void set_operand(Tensor t, const Shape& batch_strides, const Shape& batch, Tensor& dst, std::vector<int64_t>& offs,
                 BlasLayout& lay) {
  int64_t d = t.dim(), r = t.sizes()[d - 2], c = t.sizes()[d - 1];
  lay = blas_layout(t);
  Shape bstr = batch_strides;
  if (!lay.ok) {
    // Only the matrix dims need copying: broadcast batch dims keep their zero strides.
    Shape unb = batch;
    for (size_t k = 0; k < unb.size(); ++k) if (bstr[k] == 0) unb[k] = 1;
    Shape sz = unb, st = bstr;
    sz.push_back(r); sz.push_back(c);
    st.push_back(t.strides()[d - 2]); st.push_back(t.strides()[d - 1]);
    Tensor cc = empty_tensor(sz, t.dtype(), t.device());
    copy_into(cc, t.view_of(sz, st, t.offset()));
    int64_t acc = r * c;
    for (size_t k = unb.size(); k-- > 0;) {
      bstr[k] = unb[k] == 1 ? 0 : acc;
      acc *= unb[k];
    }
    t = cc;
    lay = {true, CblasNoTrans, std::max<int64_t>(1, c)};
  }
  dst = t;
  int64_t n = numel_of(batch);
  offs.assign(n, 0);
  // Offsets relative to t.data(): walk the batch index like an odometer.
  Shape idx(batch.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    offs[i] = off;
    for (size_t k = batch.size(); k-- > 0;) {
      if (++idx[k] < batch[k]) {
        off += bstr[k];
        break;
      }
      off -= bstr[k] * (batch[k] - 1);
      idx[k] = 0;
    }
  }
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

// a [batch..., M, K] @ b [batch..., K, N] into contiguous out, with `batch` the broadcast batch
// shape and each operand's batch strides already broadcast (0 on expanded dims).
BatchedGemm make_batched(const Tensor& a, const Shape& abs, const Tensor& b, const Shape& bbs, const Shape& batch,
                         const Tensor& out) {
  BatchedGemm g;
  g.batch = numel_of(batch);
  g.M = a.sizes()[a.dim() - 2];
  g.K = a.sizes()[a.dim() - 1];
  g.N = b.sizes()[b.dim() - 1];
  g.out = out;
  set_operand(a, abs, batch, g.a, g.aoff, g.la);
  set_operand(b, bbs, batch, g.b, g.boff, g.lb);
  return g;
}

// Collapses a's leading dims into its rows when they nest ([..., M, K] -> [B*M, K]), so a
// batch times one shared matrix is a single GEMM.
bool fold_rows(const Tensor& a, Tensor& a2) {
  int64_t d = a.dim(), rows = 1, rs = 0;
  bool first = true;
  for (int64_t k = d - 2; k >= 0; --k) {
    int64_t sz = a.sizes()[k], st = a.strides()[k];
    if (sz == 1) continue;
    if (first) rs = st;
    else if (st != rs * rows) return false;
    first = false;
    rows *= sz;
  }
  for (int64_t k = 0; k < d - 1; ++k) if (a.sizes()[k] == 0) rows = 0;
  a2 = a.view_of({rows, a.sizes()[d - 1]}, {first ? a.sizes()[d - 1] : rs, a.strides()[d - 1]}, a.offset());
  return true;
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
  BatchedGemm g = make_batched(a, {}, b, {}, {}, out);
  run_batched(g);
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
  BatchedGemm g = make_batched(a, {a.strides()[0]}, b, {b.strides()[0]}, {a.sizes()[0]}, out);
  run_batched(g);
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
  Tensor a2;
  BatchedGemm g;
  if (!batch.empty() && bb.empty() && fold_rows(a, a2)) {
    // [..., M, K] @ [K, N]: one GEMM with the batch folded into M
    g = make_batched(a2, {}, b, {}, {}, out);
  } else {
    auto bstrides = [&](const Tensor& t) {
      Shape full = batch;
      full.push_back(t.sizes()[t.dim() - 2]);
      full.push_back(t.sizes()[t.dim() - 1]);
      Shape st = broadcast_strides(t, full, "matmul");
      return Shape(st.begin(), st.end() - 2);
    };
    g = make_batched(a, bstrides(a), b, bstrides(b), batch, out);
  }
  run_batched(g);
  finish_output(c, out);
}

void k_addmm(Call& c) {
  const Tensor &self = c.inputs[0], &a = c.inputs[1], &b = c.inputs[2];
  if (a.dim() != 2 || b.dim() != 2 || a.sizes()[1] != b.sizes()[0])
    throw ValueError("[addmm] mat1 and mat2 shapes cannot be multiplied: " + shape_str(a.sizes()) + " and " + shape_str(b.sizes()));
  check_same_dtype("addmm", a, b);
  check_same_dtype("addmm", self, a);
  double beta = c.attrs[0].to_double(), alpha = c.attrs[1].to_double();
  int64_t M = a.sizes()[0], N = b.sizes()[1];
  Shape shape{M, N};
  Shape ss = broadcast_strides(self, shape, "addmm");  // also rejects a self that cannot broadcast
  Tensor out = output_for(c, shape, a.dtype(), a.device());
  BatchedGemm g = make_batched(a, {}, b, {}, {}, out);
  g.alpha = alpha;
  g.beta = beta;
  if (beta == 1 && self.dtype() == DType::Float32 && self.device().is_cpu() && ss[0] == 0 && (ss[1] == 1 || N == 1))
    g.row_bias = self.data<float>();
  if (beta != 0) {
    // beta == 0 ignores self entirely (NaN included), as torch does
    g.init = [&](int64_t, bool cols, int64_t p0, int64_t p1) {
      int64_t r0 = cols ? 0 : p0, r1 = cols ? M : p1, c0 = cols ? p0 : 0, c1 = cols ? p1 : N;
      copy_into(out.view_of({r1 - r0, c1 - c0}, {N, 1}, out.offset() + r0 * N + c0),
                self.view_of({r1 - r0, c1 - c0}, ss, self.offset() + r0 * ss[0] + c0 * ss[1]));
    };
  }
  run_batched(g);
  finish_output(c, out);
}

}  // namespace nd
