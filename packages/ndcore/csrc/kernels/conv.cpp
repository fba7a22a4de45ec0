// Convolution forward and backward (1-3 spatial dims, groups, dilation, transposed).
//
// Note [Convolution as three GEMM patterns]
// Every convolution pass relates a "big" tensor (N, Cb, *I) and a "small" one (N, Cs, *L) through
// a weight (Cs, Cb/groups, *K), where L = (I + 2p - d(K-1) - 1) / s + 1 per dim:
//   A. small = W @ im2col(big)            regular forward;   transposed grad_input
//   B. big   = col2im(W^T @ small)        regular grad_input; transposed forward
//   C. dW   += small @ im2col(big)^T      grad_weight of both
// For a regular conv big is the input and small the output; for a transposed conv big is the
// output and small the input. The column buffer holds Cb/groups*K rows; a chunk of it covers
// several samples side by side (when L is small, so the GEMM is wide enough to run at speed)
// or a slice of one sample's columns (when one sample's columns would not fit the budget).
// GEMMs run on the calling thread so OpenBLAS uses its own threads; im2col/col2im use our pool.
// 1x1 kernels with stride 1 and no padding skip im2col: the input already is the column matrix.
// float16/bfloat16 compute in float32.
// Before im2col, each pattern offers the call to conv_lanes.cpp (AVX-512 CPUs), whose direct
// kernels serve the shapes where these GEMMs are thin and im2col dominates: samples in the
// vector lanes (small channel counts, batch >= one vector), whole planes as one long row
// (stride 1), and output channels in the lanes (few samples, many output channels). It declines
// everything else, and everything on other CPUs, and this file's path runs.
#include <cblas.h>

#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "blas_threads.h"
#include "conv_lanes.h"
#include "im2col.h"
#include "winograd.h"
#include "loops.h"
#include "sgemm.h"

namespace nd {
namespace {

using cols::col2im_plane;
using cols::Geo;
using cols::im2col_row;
using cols::walk_row;

constexpr int64_t kColBudgetBytes = 16 << 20;  // column buffer size per chunk
constexpr int64_t kMinGemmCols = 1024;         // batch samples until a GEMM has this many columns

template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
          T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);  // nd's kernel where it beats OpenBLAS
  else
    scipy_cblas_dgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

// Direct kernels for depthwise convs (one input channel per group): their per-group GEMM has a
// single row of K weights, too thin for BLAS. Each walks a kernel offset's runs once and applies
// them to the group's `no` output channels (pointers out[o], weights wv[o]).
template <typename T>
void depthwise_fwd_offset(const T* plane, const Geo& g, int64_t kidx, int64_t no, T* const* out, const T* wv) {
  int64_t kw = kidx % g.k[2], s = g.s[2], iw0 = kw * g.d[2] - g.p[2];
  walk_row(g, kidx, 0, g.L(), [&](int64_t pos, int64_t src, int64_t ow0, int64_t lo, int64_t hi, int64_t) {
    if (src < 0) return;
    const T* row = plane + src;
    for (int64_t o = 0; o < no; ++o) {
      T* __restrict__ dst = out[o] + pos;  // outputs never alias the input
      T w = wv[o];
      if (s == 1) {
        const T* __restrict__ r = row + ow0 + iw0;
        for (int64_t j = lo; j < hi; ++j) dst[j] += w * r[j];
      } else {
        for (int64_t j = lo; j < hi; ++j) dst[j] += w * row[(ow0 + j) * s + iw0];
      }
    }
  });
}

// The adjoint: plane[input at offset kidx] += sum_o wv[o] * src[o][pos].
template <typename T>
void depthwise_bwd_offset(T* plane, const Geo& g, int64_t kidx, int64_t no, const T* const* src, const T* wv) {
  int64_t kw = kidx % g.k[2], s = g.s[2], iw0 = kw * g.d[2] - g.p[2];
  walk_row(g, kidx, 0, g.L(), [&](int64_t pos, int64_t dst, int64_t ow0, int64_t lo, int64_t hi, int64_t) {
    if (dst < 0) return;
    T* row = plane + dst;
    for (int64_t o = 0; o < no; ++o) {
      const T* __restrict__ c = src[o] + pos;
      T w = wv[o];
      if (s == 1) {
        T* __restrict__ r = row + ow0 + iw0;
        for (int64_t j = lo; j < hi; ++j) r[j] += w * c[j];
      } else {
        for (int64_t j = lo; j < hi; ++j) row[(ow0 + j) * s + iw0] += w * c[j];
      }
    }
  });
}

// acc[o] += sum over positions of src[o][pos] * input at offset kidx (grad_weight).
template <typename T>
void depthwise_dw_offset(const T* plane, const Geo& g, int64_t kidx, int64_t no, const T* const* src, double* acc) {
  int64_t kw = kidx % g.k[2], s = g.s[2], iw0 = kw * g.d[2] - g.p[2];
  walk_row(g, kidx, 0, g.L(), [&](int64_t pos, int64_t off, int64_t ow0, int64_t lo, int64_t hi, int64_t) {
    if (off < 0) return;
    const T* row = plane + off;
    for (int64_t o = 0; o < no; ++o) {
      const T* c = src[o] + pos;
      T part = 0;
      if (s == 1) {
        const T* r = row + ow0 + iw0;
        for (int64_t j = lo; j < hi; ++j) part += c[j] * r[j];
      } else {
        for (int64_t j = lo; j < hi; ++j) part += c[j] * row[(ow0 + j) * s + iw0];
      }
      acc[o] += (double)part;
    }
  });
}

struct Shapes {
  int64_t N, Cb, Cs, G;
};

// Chunks of the column matrix: samples [n0, n0 + nb) side by side (nb > 1 only with the whole
// of each sample), or positions [l0, l0 + lc) of sample n0.
struct Chunk {
  int64_t n0, nb, l0, lc;
  int64_t cols() const { return nb * lc; }
};

// Per-thread scratch: the column buffer, a gathered/ungathered copy of small rows, and a private
// grad_weight accumulator (valid once has_dw is set).
template <typename T>
struct Work {
  std::vector<T> col, tmp, dw;
  bool has_dw = false;
};

// Grows a scratch vector, never shrinking it (shrinking and growing again would zero-fill).
template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if ((int64_t)v.size() < n) v.resize(n);
}

// A thread's Work, kept between calls: fresh column buffers (megabytes) come from mmap and
// page-faulted on every call (~4% of a 7x7 stem conv's weight gradient). A nested use on the same
// thread gets a private one; buffers over kKeepBytes are released after the call.
template <typename T>
class KeptWork {
 public:
  KeptWork() : nested_(in_use()) {
    if (!nested_) in_use() = true;
    work().has_dw = false;
  }
  ~KeptWork() {
    Work<T>& w = work();
    for (auto* v : {&w.col, &w.tmp, &w.dw})
      if ((int64_t)(v->capacity() * sizeof(T)) > kKeepBytes) std::vector<T>().swap(*v);
    if (!nested_) in_use() = false;
  }
  Work<T>& work() { return nested_ ? own_ : kept(); }

 private:
  static constexpr int64_t kKeepBytes = 32 << 20;
  static Work<T>& kept() {
    thread_local Work<T> w;
    return w;
  }
  static bool& in_use() {
    thread_local bool u = false;
    return u;
  }
  bool nested_;
  Work<T> own_;
};

// Runs fn(chunk, work) over all chunks. With several threads and enough independent groups
// (a group is one chunk of whole samples, or all column slices of one sample, so groups never
// write the same memory), each worker takes whole groups and single-threaded GEMMs; otherwise
// groups run in order with multi-threaded GEMMs and parallel im2col. done(work) runs once per
// scratch (to merge private accumulators).
template <typename T, typename F, typename D>
void run_chunks(const Shapes& sh, const Geo& g, bool pointwise, F&& fn, D&& done) {
  int64_t L = g.L(), CK = sh.Cb / sh.G * g.K();
  int64_t threads = get_num_threads();
  std::vector<std::vector<Chunk>> groups;
  int64_t max_cols = std::max<int64_t>(1, kColBudgetBytes / std::max<int64_t>(1, CK * (int64_t)sizeof(T)));
  if (pointwise || L <= max_cols) {
    int64_t nb = pointwise ? 1 : std::min<int64_t>({sh.N, (kMinGemmCols + L - 1) / std::max<int64_t>(L, 1), max_cols / std::max<int64_t>(L, 1)});
    if (threads > 1 && sh.N >= threads) nb = std::min(nb, (sh.N + threads - 1) / threads);
    nb = std::max<int64_t>(nb, 1);
    for (int64_t n0 = 0; n0 < sh.N; n0 += nb) groups.push_back({Chunk{n0, std::min(nb, sh.N - n0), 0, L}});
  } else {
    for (int64_t n = 0; n < sh.N; ++n) {
      groups.emplace_back();
      for (int64_t l0 = 0; l0 < L; l0 += max_cols) groups.back().push_back(Chunk{n, 1, l0, std::min(max_cols, L - l0)});
    }
  }
  int64_t ng = (int64_t)groups.size();
  if (threads > 1 && ng >= threads) {
    SingleThreadBlas single;
    parallel_for(ng, 1, [&](int64_t g0, int64_t g1) {
      KeptWork<T> kw;
      Work<T>& w = kw.work();
      for (int64_t i = g0; i < g1; ++i)
        for (const Chunk& ch : groups[i]) fn(ch, w);
      done(w);
    });
  } else {
    KeptWork<T> kw;
    Work<T>& w = kw.work();
    for (auto& grp : groups)
      for (const Chunk& ch : grp) fn(ch, w);
    done(w);
  }
}

// col (CK x ch.cols()) = im2col of group g of the big tensor over the chunk.
template <typename T>
void fill_cols(const T* big, const Shapes& sh, const Geo& g, int64_t grp, const Chunk& ch, T* col) {
  int64_t K = g.K(), CK = sh.Cb / sh.G * K, I = g.I(), ld = ch.cols();
  if (cols::is_2d(g) && ch.lc == g.L()) {
    int64_t Cbg = sh.Cb / sh.G;
    parallel_for(ch.nb * Cbg, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K * ch.lc)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t b = r / Cbg, c = r % Cbg;
        const T* plane = big + ((ch.n0 + b) * sh.Cb + grp * Cbg + c) * I;
        cols::im2col_plane2d(plane, g, col + c * K * ld + b * ch.lc, ld);
      }
    });
    return;
  }
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(ch.lc, 1));
  parallel_for(ch.nb * CK, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t b = r / CK, row = r % CK, c = row / K, kidx = row % K;
      const T* plane = big + ((ch.n0 + b) * sh.Cb + grp * (sh.Cb / sh.G) + c) * I;
      im2col_row(plane, g, kidx, ch.l0, ch.l0 + ch.lc, col + row * ld + b * ch.lc);
    }
  });
}

// The small tensor's group rows for a chunk as a matrix: a direct pointer when the chunk is one
// sample, else a gathered (Csg x cols) copy.
template <typename T>
const T* small_rows(const T* small, const Shapes& sh, const Geo& g, int64_t grp, const Chunk& ch, std::vector<T>& tmp,
                    int64_t& ld) {
  int64_t Csg = sh.Cs / sh.G, L = g.L();
  if (ch.nb == 1) {
    ld = L;
    return small + (ch.n0 * sh.Cs + grp * Csg) * L + ch.l0;
  }
  ld = ch.cols();
  grow(tmp, Csg * ld);
  parallel_for(Csg * ch.nb, std::max<int64_t>(1, 16384 / L), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t o = r / ch.nb, b = r % ch.nb;
      std::memcpy(tmp.data() + o * ld + b * L, small + ((ch.n0 + b) * sh.Cs + grp * Csg + o) * L, sizeof(T) * L);
    }
  });
  return tmp.data();
}

// Pattern A: small = W @ im2col(big) (+ bias per small channel).
template <typename T>
void conv_a(const T* big, const T* w, const T* bias, T* small, const Shapes& sh, const Geo& g) {
  int64_t Cbg = sh.Cb / sh.G, Csg = sh.Cs / sh.G, K = g.K(), CK = Cbg * K, L = g.L(), I = g.I();
  bool pw = g.pointwise();
  if (Cbg == 1 && sh.G > 1 && !pw) {
    parallel_for(sh.N * sh.G, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, Csg * K * L)), [&](int64_t r0, int64_t r1) {
      std::vector<T*> outs(Csg);
      std::vector<T> wv(Csg);
      for (int64_t r = r0; r < r1; ++r) {
        int64_t n = r / sh.G, grp = r % sh.G;
        for (int64_t o = 0; o < Csg; ++o) {
          outs[o] = small + (n * sh.Cs + grp * Csg + o) * L;
          std::fill(outs[o], outs[o] + L, bias ? bias[grp * Csg + o] : T(0));
        }
        for (int64_t kidx = 0; kidx < K; ++kidx) {
          for (int64_t o = 0; o < Csg; ++o) wv[o] = w[(grp * Csg + o) * K + kidx];
          depthwise_fwd_offset(big + (n * sh.Cb + grp) * I, g, kidx, Csg, outs.data(), wv.data());
        }
      }
    });
    return;
  }
  if (!pw && lanes::conv_a<T>(big, w, bias, small, sh.N, sh.Cb, sh.Cs, sh.G, g)) return;
  auto fill_bias = [&](T* dst, int64_t ld, int64_t rows, int64_t cols, int64_t ch0) {
    for (int64_t o = 0; o < rows; ++o) std::fill(dst + o * ld, dst + o * ld + cols, bias ? bias[ch0 + o] : T(0));
  };
  run_chunks<T>(sh, g, pw, [&](const Chunk& ch, Work<T>& wk) {
    if (!pw) grow(wk.col, CK * ch.cols());
    for (int64_t grp = 0; grp < sh.G; ++grp) {
      const T* wg = w + grp * Csg * CK;
      const T* cols = pw ? big + (ch.n0 * sh.Cb + grp * Cbg) * I : wk.col.data();
      if (!pw) fill_cols(big, sh, g, grp, ch, wk.col.data());
      if (ch.nb == 1) {
        T* out = small + (ch.n0 * sh.Cs + grp * Csg) * L + ch.l0;
        if (bias) fill_bias(out, L, Csg, ch.lc, grp * Csg);
        gemm<T>(false, false, Csg, ch.lc, CK, 1, wg, CK, cols, pw ? I : ch.cols(), bias ? 1 : 0, out, L);
        continue;
      }
      grow(wk.tmp, Csg * ch.cols());
      gemm<T>(false, false, Csg, ch.cols(), CK, 1, wg, CK, cols, ch.cols(), 0, wk.tmp.data(), ch.cols());
      parallel_for(Csg * ch.nb, std::max<int64_t>(1, 16384 / L), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t o = r / ch.nb, b = r % ch.nb;
          const T* src = wk.tmp.data() + o * ch.cols() + b * L;
          T* dst = small + ((ch.n0 + b) * sh.Cs + grp * Csg + o) * L;
          T bv = bias ? bias[grp * Csg + o] : T(0);
          for (int64_t l = 0; l < L; ++l) dst[l] = src[l] + bv;
        }
      });
    }
  }, [](Work<T>&) {});
}

// Pattern B: big = col2im(W^T @ small); big is overwritten.
template <typename T>
void conv_b(const T* small, const T* w, T* big, const Shapes& sh, const Geo& g) {
  int64_t Cbg = sh.Cb / sh.G, Csg = sh.Cs / sh.G, K = g.K(), CK = Cbg * K, L = g.L(), I = g.I();
  bool pw = g.pointwise();
  if (Cbg == 1 && sh.G > 1 && !pw) {
    parallel_for(sh.N * sh.G, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, Csg * K * L)), [&](int64_t r0, int64_t r1) {
      std::vector<const T*> srcs(Csg);
      std::vector<T> wv(Csg);
      for (int64_t r = r0; r < r1; ++r) {
        int64_t n = r / sh.G, grp = r % sh.G;
        T* plane = big + (n * sh.Cb + grp) * I;
        std::fill(plane, plane + I, T(0));
        for (int64_t o = 0; o < Csg; ++o) srcs[o] = small + (n * sh.Cs + grp * Csg + o) * L;
        for (int64_t kidx = 0; kidx < K; ++kidx) {
          for (int64_t o = 0; o < Csg; ++o) wv[o] = w[(grp * Csg + o) * K + kidx];
          depthwise_bwd_offset(plane, g, kidx, Csg, srcs.data(), wv.data());
        }
      }
    });
    return;
  }
  if (!pw && lanes::conv_b<T>(small, w, big, sh.N, sh.Cb, sh.Cs, sh.G, g)) return;
  if (!pw) {
    int64_t total = sh.N * sh.Cb * I;
    parallel_for(total, kGrainCheap, [&](int64_t b, int64_t e) { std::fill(big + b, big + e, T(0)); });
  }
  run_chunks<T>(sh, g, pw, [&](const Chunk& ch, Work<T>& wk) {
    for (int64_t grp = 0; grp < sh.G; ++grp) {
      const T* wg = w + grp * Csg * CK;
      if (pw) {
        gemm<T>(true, false, Cbg, L, Csg, 1, wg, CK, small + (ch.n0 * sh.Cs + grp * Csg) * L, L, 0, big + (ch.n0 * sh.Cb + grp * Cbg) * I, I);
        continue;
      }
      grow(wk.col, CK * ch.cols());
      int64_t lds;
      const T* s = small_rows(small, sh, g, grp, ch, wk.tmp, lds);
      gemm<T>(true, false, CK, ch.cols(), Csg, 1, wg, CK, s, lds, 0, wk.col.data(), ch.cols());
      const T* col = wk.col.data();
      parallel_for(ch.nb * Cbg, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t b = r / Cbg, c = r % Cbg;
          T* plane = big + ((ch.n0 + b) * sh.Cb + grp * Cbg + c) * I;
          if (cols::is_2d(g) && ch.lc == L) cols::col2im_plane2d(col + c * K * ch.cols() + b * ch.lc, ch.cols(), g, plane);
          else col2im_plane(col + c * K * ch.cols() + b * ch.lc, ch.cols(), g, ch.l0, ch.l0 + ch.lc, plane);
        }
      });
    }
  }, [](Work<T>&) {});
}

// Pattern C: dw = small @ im2col(big)^T, summed over the batch; dw is overwritten. Workers
// accumulate privately and merge under a lock.
template <typename T>
void conv_c(const T* small, const T* big, T* dw, const Shapes& sh, const Geo& g) {
  int64_t Cbg = sh.Cb / sh.G, Csg = sh.Cs / sh.G, K = g.K(), CK = Cbg * K, L = g.L(), I = g.I();
  bool pw = g.pointwise();
  if (Cbg == 1 && sh.G > 1 && !pw) {
    parallel_for(sh.G, 1, [&](int64_t g0, int64_t g1) {
      std::vector<const T*> srcs(Csg);
      std::vector<double> acc(Csg * K);
      for (int64_t grp = g0; grp < g1; ++grp) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t n = 0; n < sh.N; ++n) {
          for (int64_t o = 0; o < Csg; ++o) srcs[o] = small + (n * sh.Cs + grp * Csg + o) * L;
          for (int64_t kidx = 0; kidx < K; ++kidx) {
            double part[64];
            for (int64_t o0 = 0; o0 < Csg; o0 += 64) {  // channel multipliers beyond 64 go in blocks
              int64_t no = std::min<int64_t>(64, Csg - o0);
              std::fill(part, part + no, 0.0);
              depthwise_dw_offset(big + (n * sh.Cb + grp) * I, g, kidx, no, srcs.data() + o0, part);
              for (int64_t o = 0; o < no; ++o) acc[(o0 + o) * K + kidx] += part[o];
            }
          }
        }
        for (int64_t i = 0; i < Csg * K; ++i) dw[grp * Csg * K + i] = (T)acc[i];
      }
    });
    return;
  }
  if (!pw && lanes::conv_c<T>(small, big, dw, sh.N, sh.Cb, sh.Cs, sh.G, g)) return;
  std::fill(dw, dw + sh.Cs * CK, T(0));
  std::mutex mu;
  run_chunks<T>(sh, g, pw, [&](const Chunk& ch, Work<T>& wk) {
    if (!wk.has_dw) {
      wk.dw.assign(sh.Cs * CK, T(0));
      wk.has_dw = true;
    }
    for (int64_t grp = 0; grp < sh.G; ++grp) {
      T* dwg = wk.dw.data() + grp * Csg * CK;
      if (pw) {
        gemm<T>(false, true, Csg, Cbg, L, 1, small + (ch.n0 * sh.Cs + grp * Csg) * L, L, big + (ch.n0 * sh.Cb + grp * Cbg) * I, I, 1, dwg, CK);
        continue;
      }
      grow(wk.col, CK * ch.cols());
      fill_cols(big, sh, g, grp, ch, wk.col.data());
      int64_t lds;
      const T* s = small_rows(small, sh, g, grp, ch, wk.tmp, lds);
      gemm<T>(false, true, Csg, CK, ch.cols(), 1, s, lds, wk.col.data(), ch.cols(), 1, dwg, CK);
    }
  }, [&](Work<T>& wk) {
    if (!wk.has_dw) return;
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t i = 0; i < sh.Cs * CK; ++i) dw[i] += wk.dw[i];
  });
}

// Sum of the small tensor over batch and space, per channel (grad_bias).
template <typename T>
void channel_sums(const T* x, int64_t N, int64_t C, int64_t L, T* out) {
  parallel_for(C, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, N * L)), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * L;
        T a[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // independent accumulators: see sum_contig in pool.cpp
        int64_t l = 0;
        for (; l + 8 <= L; l += 8)
          for (int k = 0; k < 8; ++k) a[k] += p[l + k];
        for (; l < L; ++l) a[0] += p[l];
        acc += (double)(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));
      }
      out[c] = (T)acc;
    }
  });
}

// ---- argument handling ------------------------------------------------------------------

std::string list_str(const int64_t* v, int n) {
  std::string s = "(";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (n == 1 ? ",)" : ")");
}

// A per-dim parameter: one value for every dim, or exactly `dims` values (empty: the default).
void per_dim(const char* op, const char* what, const Shape& v, int dims, int64_t dflt, int64_t* dst) {
  int off = 3 - dims;
  if (v.empty()) {
    for (int i = 0; i < dims; ++i) dst[off + i] = dflt;
    return;
  }
  if ((int)v.size() != 1 && (int)v.size() != dims)
    throw ValueError(std::string("[") + op + "] expected " + what + " to be a single integer value or a list of " +
                     std::to_string(dims) + " values to match the convolution dimensions, but got " + what + "=" +
                     shape_str(v));
  for (int i = 0; i < dims; ++i) dst[off + i] = v.size() == 1 ? v[0] : v[i];
}

struct ConvArgs {
  Geo g;
  int64_t op[3] = {0, 0, 0};  // output_padding
  bool transposed = false;
  int64_t groups = 1;
  int dims = 0;
};

const char* dims_name(int dims) { return dims == 1 ? "(N, C, L)" : dims == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)"; }

// Validates input/weight/bias against torch's rules and computes the geometry.
ConvArgs conv_args(const char* opn, const Tensor& input, const Tensor& weight, const Tensor& bias, const std::vector<Value>& a) {
  ConvArgs r;
  int64_t nd_ = input.dim();
  if (nd_ < 3 || nd_ > 5)
    throw ValueError(std::string("[") + opn + "] expected a batched input of 3 to 5 dims (N, C, *spatial), got shape " +
                     shape_str(input.sizes()));
  r.dims = (int)nd_ - 2;
  int dims = r.dims, off = 3 - dims;
  if (weight.dim() != nd_)
    throw ValueError(std::string("[") + opn + "] expected weight of " + std::to_string(nd_) + " dims for input of shape " +
                     shape_str(input.sizes()) + ", got weight of shape " + shape_str(weight.sizes()));
  if (input.dtype() != weight.dtype())
    throw TypeError(std::string("[") + opn + "] input type (" + dtype_name(input.dtype()) + ") and weight type (" +
                    dtype_name(weight.dtype()) + ") should be the same");
  if (bias.defined() && bias.dtype() != input.dtype())
    throw TypeError(std::string("[") + opn + "] input type (" + dtype_name(input.dtype()) + ") and bias type (" +
                    dtype_name(bias.dtype()) + ") should be the same");
  if (!is_floating(input.dtype()))
    throw TypeError(std::string("[") + opn + "] expected a floating point input, got " + dtype_name(input.dtype()));
  Geo& g = r.g;
  g.dims = dims;
  per_dim(opn, "stride", a[0].list, dims, 1, g.s);
  per_dim(opn, "padding", a[1].list, dims, 0, g.p);
  per_dim(opn, "dilation", a[2].list, dims, 1, g.d);
  r.transposed = a[3].b;
  per_dim(opn, "output_padding", a[4].list, dims, 0, r.op);
  r.groups = a[5].i;
  for (int i = off; i < 3; ++i) {
    if (g.s[i] <= 0) throw ValueError(std::string("[") + opn + "] non-positive stride is not supported, got " + list_str(g.s + off, dims));
    if (g.d[i] <= 0) throw ValueError(std::string("[") + opn + "] dilation should be greater than zero, got " + list_str(g.d + off, dims));
    if (g.p[i] < 0) throw ValueError(std::string("[") + opn + "] negative padding is not supported, got " + list_str(g.p + off, dims));
    if (r.op[i] < 0 || (r.transposed && r.op[i] >= std::max(g.s[i], g.d[i])))
      throw ValueError(std::string("[") + opn + "] output padding must be smaller than either stride or dilation, got output_padding=" +
                       list_str(r.op + off, dims) + ", stride=" + list_str(g.s + off, dims) + ", dilation=" + list_str(g.d + off, dims));
    g.k[i] = weight.sizes()[2 + i - off];
  }
  if (r.groups <= 0) throw ValueError(std::string("[") + opn + "] non-positive groups is not supported, got groups=" + std::to_string(r.groups));
  int64_t C = input.sizes()[1];
  int64_t w0 = weight.sizes()[0], w1 = weight.sizes()[1];
  std::string ishape = shape_str(input.sizes()), wshape = shape_str(weight.sizes());
  int64_t out_ch;
  if (!r.transposed) {
    if (w1 * r.groups != C)
      throw ValueError(std::string("[") + opn + "] expected input of shape " + dims_name(dims) + " with C=" + std::to_string(w1 * r.groups) +
                       " (weight " + wshape + ", groups=" + std::to_string(r.groups) + "), got " + ishape);
    if (w0 % r.groups != 0)
      throw ValueError(std::string("[") + opn + "] out_channels (" + std::to_string(w0) + ", weight " + wshape +
                       ") must be divisible by groups (" + std::to_string(r.groups) + ")");
    out_ch = w0;
  } else {
    if (w0 != C)
      throw ValueError(std::string("[") + opn + "] expected input of shape " + dims_name(dims) + " with C=" + std::to_string(w0) +
                       " (weight " + wshape + " is (in_channels, out_channels/groups, *kernel)), got " + ishape);
    if (C % r.groups != 0)
      throw ValueError(std::string("[") + opn + "] in_channels (" + std::to_string(C) + ") must be divisible by groups (" +
                       std::to_string(r.groups) + ")");
    out_ch = w1 * r.groups;
  }
  if (bias.defined() && (bias.dim() != 1 || bias.sizes()[0] != out_ch))
    throw ValueError(std::string("[") + opn + "] expected bias of shape (" + std::to_string(out_ch) + ",), got " + shape_str(bias.sizes()));
  for (int i = off; i < 3; ++i) {
    int64_t sp = input.sizes()[2 + i - off];
    if (!r.transposed) {
      g.in[i] = sp;
      int64_t padded = sp + 2 * g.p[i], span = g.d[i] * (g.k[i] - 1) + 1;
      if (padded < span) {
        int64_t pin[3], kk[3];
        for (int j = off; j < 3; ++j) {
          pin[j] = input.sizes()[2 + j - off] + 2 * g.p[j];
          kk[j] = g.d[j] * (g.k[j] - 1) + 1;
        }
        throw ValueError(std::string("[") + opn + "] kernel size " + list_str(g.k + off, dims) + " dilated to " + list_str(kk + off, dims) +
                         " can't be greater than the padded input size " + list_str(pin + off, dims) + " (input " + ishape + ")");
      }
      g.out[i] = (padded - span) / g.s[i] + 1;
    } else {
      g.out[i] = sp;
      g.in[i] = (sp - 1) * g.s[i] - 2 * g.p[i] + g.d[i] * (g.k[i] - 1) + r.op[i] + 1;
      if (g.in[i] <= 0)
        throw ValueError(std::string("[") + opn + "] the computed output size along spatial dim " + std::to_string(i - off) +
                         " is " + std::to_string(g.in[i]) + " for input " + ishape + ", which is too small");
    }
  }
  return r;
}

Shape out_shape(const ConvArgs& r, int64_t N, int64_t Cout) {
  Shape s{N, Cout};
  for (int i = 3 - r.dims; i < 3; ++i) s.push_back(r.transposed ? r.g.in[i] : r.g.out[i]);
  return s;
}

Tensor contig_as(const Tensor& t, DType dt) {
  Tensor x = t.dtype() == dt ? t : t.to(dt);
  return x.is_contiguous() ? x : x.contiguous();
}

// Runs fn(T{}) with T = float or double, the two dtypes the kernels compute in.
template <typename F>
void with_real(DType dt, F&& fn) {
  if (dt == DType::Float64) fn(double{});
  else fn(float{});
}

Tensor zeros_like_shape(const Shape& s, DType dt) {
  Tensor t = empty_tensor(s, dt);
  std::memset(t.data_ptr(), 0, (size_t)t.numel() * t.itemsize());
  return t;
}

// The convs winograd.h serves: 2-D, 3x3, stride 1, dilation 1, ungrouped, not transposed.
bool winograd_shape(const ConvArgs& r) {
  const Geo& g = r.g;
  return r.dims == 2 && !r.transposed && r.groups == 1 && g.k[1] == 3 && g.k[2] == 3 && g.s[1] == 1 && g.s[2] == 1 &&
         g.d[1] == 1 && g.d[2] == 1;
}

// The weight tensor as winograd's cache key when the kernel reads its storage directly (a
// converted or compacted copy is new on every call, so caching it would only evict others).
const Tensor* weight_key(const Tensor& weight, const Tensor& w) {
  return w.impl() == weight.impl() ? &weight : nullptr;
}

}  // namespace

void k_convolution(Call& c) {
  const Tensor &input = c.inputs[0], &weight = c.inputs[1], &bias = c.inputs[2];
  ConvArgs r = conv_args("convolution", input, weight, bias, c.attrs);
  DType dt = input.dtype(), cdt = dt == DType::Float64 ? DType::Float64 : DType::Float32;
  int64_t N = input.sizes()[0], C = input.sizes()[1];
  int64_t Cout = r.transposed ? weight.sizes()[1] * r.groups : weight.sizes()[0];
  Tensor out = empty_tensor(out_shape(r, N, Cout), cdt);
  Tensor x = contig_as(input, cdt), w = contig_as(weight, cdt), b = bias.defined() ? contig_as(bias, cdt) : Tensor();
  if (out.numel() > 0) {
    with_real(cdt, [&](auto tag) {
      using scalar_t = decltype(tag);
      {
        const scalar_t* bp = b.defined() ? b.data<scalar_t>() : nullptr;
        if (!r.transposed) {
          if constexpr (std::is_same_v<scalar_t, float>) {
            const Geo& g = r.g;
            if (winograd_shape(r) && winograd::conv3x3_forward(x.data<float>(), w.data<float>(), bp, out.data<float>(), N, C,
                                                               Cout, g.in[1], g.in[2], g.p[1], g.p[2], g.out[1], g.out[2],
                                                               weight_key(weight, w)))
              return;
          }
          conv_a<scalar_t>(x.data<scalar_t>(), w.data<scalar_t>(), bp, out.data<scalar_t>(), {N, C, Cout, r.groups}, r.g);
        } else {
          scalar_t* o = out.data<scalar_t>();
          conv_b<scalar_t>(x.data<scalar_t>(), w.data<scalar_t>(), o, {N, Cout, C, r.groups}, r.g);
          if (bp) {
            int64_t I = r.g.I();
            parallel_for(N * Cout, std::max<int64_t>(1, 16384 / I), [&](int64_t r0, int64_t r1) {
              for (int64_t i = r0; i < r1; ++i)
                for (int64_t l = 0; l < I; ++l) o[i * I + l] += bp[i % Cout];
            });
          }
        }
      }
    });
  }
  if (cdt != dt) out = out.to(dt);
  c.outputs = {out};
}

void k_convolution_backward(Call& c) {
  const Tensor &gout = c.inputs[0], &input = c.inputs[1], &weight = c.inputs[2];
  std::vector<Value> a(c.attrs.begin(), c.attrs.begin() + 6);
  const Shape& mask = c.attrs[6].list;
  bool want[3] = {true, true, true};
  if (!mask.empty()) {
    if (mask.size() != 3)
      throw ValueError("[convolution_backward] output_mask must have 3 entries, got " + shape_str(mask));
    for (int i = 0; i < 3; ++i) want[i] = mask[i] != 0;
  }
  ConvArgs r = conv_args("convolution_backward", input, weight, Tensor(), a);
  DType dt = input.dtype(), cdt = dt == DType::Float64 ? DType::Float64 : DType::Float32;
  int64_t N = input.sizes()[0], C = input.sizes()[1];
  int64_t Cout = r.transposed ? weight.sizes()[1] * r.groups : weight.sizes()[0];
  Shape expect = out_shape(r, N, Cout);
  if (gout.sizes() != expect)
    throw ValueError("[convolution_backward] expected grad_output of shape " + shape_str(expect) + ", got " + shape_str(gout.sizes()));
  if (gout.dtype() != dt)
    throw TypeError(std::string("[convolution_backward] grad_output type (") + dtype_name(gout.dtype()) + ") and input type (" +
                    dtype_name(dt) + ") should be the same");
  Tensor go = contig_as(gout, cdt), x = contig_as(input, cdt), w = contig_as(weight, cdt);
  Tensor gi, gw, gb;
  if (want[0]) gi = empty_tensor(input.sizes(), cdt);
  if (want[1]) gw = empty_tensor(weight.sizes(), cdt);
  if (want[2]) gb = empty_tensor({Cout}, cdt);
  with_real(cdt, [&](auto tag) {
    using scalar_t = decltype(tag);
    {
      using T = scalar_t;
      const T *gp = go.data<T>(), *xp = x.data<T>(), *wp = w.data<T>();
      bool empty = go.numel() == 0 || x.numel() == 0;
      if (!r.transposed) {
        Shapes sh{N, C, Cout, r.groups};  // big = input, small = grad_output
        if (gi.defined()) {
          bool done = false;
          if constexpr (std::is_same_v<T, float>) {
            const Geo& g = r.g;
            done = !empty && winograd_shape(r) &&
                   winograd::conv3x3_backward_input(gp, wp, gi.data<float>(), N, C, Cout, g.in[1], g.in[2], g.p[1], g.p[2],
                                                    g.out[1], g.out[2], weight_key(weight, w));
          }
          if (done) {
          } else if (empty) {
            std::memset(gi.data_ptr(), 0, gi.numel() * sizeof(T));
          } else {
            conv_b<T>(gp, wp, gi.data<T>(), sh, r.g);
          }
        }
        if (gw.defined()) {
          bool done = false;
          if constexpr (std::is_same_v<T, float>) {
            const Geo& g = r.g;
            done = !empty && winograd_shape(r) &&
                   winograd::conv3x3_backward_weight(gp, xp, gw.data<float>(), N, C, Cout, g.in[1], g.in[2], g.p[1],
                                                     g.p[2], g.out[1], g.out[2]);
          }
          if (done) {
          } else if (empty) {
            std::memset(gw.data_ptr(), 0, gw.numel() * sizeof(T));
          } else {
            conv_c<T>(gp, xp, gw.data<T>(), sh, r.g);
          }
        }
      } else {
        Shapes sh{N, Cout, C, r.groups};  // big = grad_output, small = input
        if (gi.defined()) {
          if (empty) std::memset(gi.data_ptr(), 0, gi.numel() * sizeof(T));
          else conv_a<T>(gp, wp, nullptr, gi.data<T>(), sh, r.g);
        }
        if (gw.defined()) {
          if (empty) std::memset(gw.data_ptr(), 0, gw.numel() * sizeof(T));
          else conv_c<T>(xp, gp, gw.data<T>(), sh, r.g);
        }
      }
      if (gb.defined()) channel_sums<T>(gp, N, Cout, numel_of(expect) / std::max<int64_t>(1, N * Cout), gb.data<T>());
    }
  });
  if (cdt != dt) {
    if (gi.defined()) gi = gi.to(dt);
    if (gw.defined()) gw = gw.to(dt);
    if (gb.defined()) gb = gb.to(dt);
  }
  // Masked outputs are None, except when autograd records this call (double backward): its
  // graph nodes need a tensor per output, so those become zeros.
  bool recorded = grad_enabled() && (gout.requires_grad() || input.requires_grad() || weight.requires_grad());
  if (recorded) {
    if (!gi.defined()) gi = zeros_like_shape(input.sizes(), dt);
    if (!gw.defined()) gw = zeros_like_shape(weight.sizes(), dt);
    if (!gb.defined()) gb = zeros_like_shape({Cout}, dt);
  }
  c.outputs = {gi, gw, gb};
}

}  // namespace nd
