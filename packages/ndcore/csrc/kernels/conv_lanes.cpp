// Direct convolution kernels for AVX-512 CPUs, behind conv.cpp's im2col/GEMM patterns (see
// conv_lanes.h): samples in the vector lanes (Note [Samples in lanes]), planes as one long row
// (Note [Rows as one long row]) and output channels in the lanes (Note [Channels in lanes]).
//
// Note [Samples in lanes]
// When the small tensor has few channels per group (20 in the MNIST Net's conv2), conv.cpp's
// GEMMs are too thin for BLAS, and im2col plus BLAS's packing of the column matrix cost more
// than the product itself. Here a block of B samples (one 64-byte vector) is transposed so that
// the sample is the fastest dim: big becomes (Cb, Hp, Wp, B) with its padding stored as zeros,
// small becomes (Cs, L, B). Every term of the convolution is then one full-width FMA with no
// column matrix and no edge cases:
//   A. a register tile of OB small channels x WB output positions; per column row (c, kh, kw)
//      it loads WB input vectors and broadcasts OB weights.
//   C. a tile of OB small channels x KB column rows; per output position it loads OB output
//      vectors and KB input vectors, and the lanes (samples) are summed at the end.
//   B. with stride 1, pattern A on the spatially flipped, transposed weight, padded d(k-1) - p.
// Ragged edges never branch in the inner loop: weights and biases are zero-padded to whole OB
// blocks, positions and rows past the end re-read the last valid one, and lanes past the batch
// are zeros; their results land in padding that is never copied out.
// Served: 1-D and 2-D, any stride/padding/dilation, groups (depthwise has its own kernels in
// conv.cpp), AVX-512 CPUs, and shapes where the column rows are many enough to hide the
// transposes (kMinRows) and the blocks fit in L2.
#include "conv_lanes.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "parallel.h"
#include "simd_dispatch.h"

namespace nd {
namespace lanes {
namespace {

constexpr int64_t kMinRows = 64;            // column rows (Cb/G * K) below which im2col/GEMM is faster
constexpr int64_t kMaxBlockBytes = 1 << 20; // per transposed tensor block (L2 is 2 MB per core)
constexpr int64_t kMaxSmallChannels = 64;   // beyond this the GEMM is wide enough for BLAS

// The geometry as 2-D (a 1-D conv has height 1), plus the channel counts.
struct Plan {
  int64_t N, Cb, Cs, G, Cbg, Csg, K, CK, L;
  int64_t H, W, Hp, Wp, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
};

Plan make_plan(int64_t N, int64_t Cb, int64_t Cs, int64_t G, const cols::Geo& g) {
  Plan p;
  p.N = N, p.Cb = Cb, p.Cs = Cs, p.G = G, p.Cbg = Cb / G, p.Csg = Cs / G, p.K = g.K(), p.CK = p.Cbg * p.K, p.L = g.L();
  p.H = g.in[1], p.W = g.in[2], p.OH = g.out[1], p.OW = g.out[2], p.KH = g.k[1], p.KW = g.k[2];
  p.sh = g.s[1], p.sw = g.s[2], p.ph = g.p[1], p.pw = g.p[2], p.dh = g.d[1], p.dw = g.d[2];
  p.Hp = p.H + 2 * p.ph, p.Wp = p.W + 2 * p.pw;
  return p;
}

#ifdef ND_SIMD_X86
#define ND_LANES_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define ND_LANES_INLINE ND_LANES_TARGET __attribute__((always_inline)) inline

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(64)));
  typedef int32_t mask __attribute__((vector_size(64)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(64)));
  typedef int64_t mask __attribute__((vector_size(64)));
};
template <typename T>
constexpr int64_t kB = 64 / (int64_t)sizeof(T);

bool common_ok(const Plan& p, const cols::Geo& g, int64_t B) {
  if (simd_level() != SimdLevel::Avx512 || !cols::is_2d(g)) return false;
  if ((p.Cbg == 1 && p.G > 1) || p.K == 1) return false;  // depthwise; 1x1 (already a GEMM)
  if (p.N < B || (p.N + B - 1) / B * B * 4 > p.N * 5) return false;  // padding lanes would waste > 25%
  if (p.CK < kMinRows || p.Cs > kMaxSmallChannels) return false;
  return true;
}

bool served_a(const Plan& p, const cols::Geo& g, int64_t B, int64_t itemsize) {
  return common_ok(p, g, B) && p.Cb * p.Hp * p.Wp * B * itemsize <= kMaxBlockBytes &&
         p.Cs * p.L * B * itemsize <= kMaxBlockBytes;
}

// The number of small channels per register tile that pads Csg least (larger on ties).
int pick_ob(int64_t Csg) {
  int best = 1;
  int64_t cost = Csg;
  for (int ob = 6; ob >= 1; --ob) {
    int64_t c = (Csg + ob - 1) / ob * ob;
    if (c < cost || (c == cost && ob > best)) best = ob, cost = c;
  }
  return best;
}

// One level of a B x B transpose: rows i and i + H (i & H == 0) swap their off-diagonal
// H x H blocks (within every 2H lanes). Levels H = B/2, ..., 1 transpose the whole block.
template <typename T, int H>
ND_LANES_INLINE void transpose_level(typename VecOf<T>::type* r) {
  using M = typename VecOf<T>::mask;
  constexpr int B = (int)kB<T>;
  M lo, hi;
#pragma GCC unroll 16
  for (int k = 0; k < B; ++k) {
    int blk = k / (2 * H) * (2 * H), off = k % (2 * H);
    lo[k] = off < H ? blk + off : B + blk + off - H;
    hi[k] = off < H ? blk + H + off : B + blk + off;
  }
#pragma GCC unroll 16
  for (int i = 0; i < B; ++i)
    if (!(i & H)) {
      auto a = r[i], b = r[i + H];
      r[i] = __builtin_shuffle(a, b, lo);
      r[i + H] = __builtin_shuffle(a, b, hi);
    }
  if constexpr (H > 1) transpose_level<T, H / 2>(r);
}

// dst[k][i] = src[i][k] for a B x B block: source rows i < nsrc (src + i * lds, B contiguous
// elements; the others read as zeros) become destination rows k < ndst (dst + k * ldd).
template <typename T>
ND_LANES_TARGET void transpose_block(const T* src, int64_t lds, int64_t nsrc, T* dst, int64_t ldd, int64_t ndst) {
  using V = typename VecOf<T>::type;
  constexpr int B = (int)kB<T>;
  V r[B];
#pragma GCC unroll 16
  for (int i = 0; i < B; ++i) {
    if (i < nsrc) std::memcpy(&r[i], src + i * lds, sizeof(V));
    else r[i] = V{};
  }
  transpose_level<T, B / 2>(r);
  for (int i = 0; i < ndst; ++i) std::memcpy(dst + i * ldd, &r[i], sizeof(V));
}

// The same for a run of n elements per source row: whole blocks, then the remainder.
template <typename T>
void transpose_run(const T* src, int64_t lds, int64_t nsrc, T* dst, int64_t ldd, int64_t ndst, int64_t n) {
  constexpr int64_t B = kB<T>;
  int64_t k = 0;
  for (; k + B <= n; k += B) transpose_block(src + k, lds, nsrc, dst + k * ldd, ldd, ndst);
  for (; k < n; ++k)
    for (int64_t i = 0; i < ndst; ++i) dst[k * ldd + i] = i < nsrc ? src[i * lds + k] : T(0);
}

// The other way: source rows i < n (B elements each) become n contiguous elements of each
// destination row k < ndst.
template <typename T>
void transpose_rows(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t ndst, int64_t n) {
  constexpr int64_t B = kB<T>;
  int64_t i = 0;
  for (; i + B <= n; i += B) transpose_block(src + i * lds, lds, B, dst + i, ldd, ndst);
  for (; i < n; ++i)
    for (int64_t k = 0; k < ndst; ++k) dst[k * ldd + i] = src[i * lds + k];
}

// xt (Cb, Hp, Wp, B) = samples [n0, n0 + nb) of big, zero-padded in space and in lanes >= nb.
template <typename T>
void pack_big(const T* big, const Plan& p, int64_t n0, int64_t nb, T* xt) {
  constexpr int64_t B = kB<T>;
  int64_t I = p.H * p.W;
  if (!p.ph && !p.pw) {  // unpadded planes are one run each
    for (int64_t c = 0; c < p.Cb; ++c) transpose_run(big + (n0 * p.Cb + c) * I, p.Cb * I, nb, xt + c * I * B, B, B, I);
    return;
  }
  std::memset(xt, 0, sizeof(T) * p.Cb * p.Hp * p.Wp * B);
  for (int64_t c = 0; c < p.Cb; ++c)
    for (int64_t ih = 0; ih < p.H; ++ih)
      transpose_run(big + (n0 * p.Cb + c) * I + ih * p.W, p.Cb * I, nb, xt + ((c * p.Hp + ih + p.ph) * p.Wp + p.pw) * B, B, B,
                    p.W);
}

// st (Cs, L, B) = samples [n0, n0 + nb) of small, zero in lanes >= nb.
template <typename T>
void pack_small(const T* small, const Plan& p, int64_t n0, int64_t nb, T* st) {
  constexpr int64_t B = kB<T>;
  for (int64_t o = 0; o < p.Cs; ++o) transpose_run(small + (n0 * p.Cs + o) * p.L, p.Cs * p.L, nb, st + o * p.L * B, B, B, p.L);
}

// Input offsets: pos[q] of output position q, roff[r] of column row r = (c, kh, kw).
void offsets(const Plan& p, int64_t B, std::vector<int64_t>& pos, std::vector<int64_t>& roff) {
  pos.resize(p.L);
  for (int64_t oh = 0; oh < p.OH; ++oh)
    for (int64_t ow = 0; ow < p.OW; ++ow) pos[oh * p.OW + ow] = (oh * p.sh * p.Wp + ow * p.sw) * B;
  roff.resize(p.CK);
  for (int64_t c = 0; c < p.Cbg; ++c)
    for (int64_t kh = 0; kh < p.KH; ++kh)
      for (int64_t kw = 0; kw < p.KW; ++kw)
        roff[(c * p.KH + kh) * p.KW + kw] = ((c * p.Hp + kh * p.dh) * p.Wp + kw * p.dw) * B;
}

// The column rows a pattern-A tile reads: channels [0, C), kernel rows [kh0, kh1) and columns
// [kw0, kw1); the offset of row (c, kh, kw) is c * cs + kh * hs + kw * ws. Kernel rows and
// columns that read only padding for every position of the tile are left out (with the flipped
// weight of pattern B that is a third of the work).
struct Rows {
  int64_t C, KH, KW, kh0, kh1, kw0, kw1, cs, hs, ws;
};

// One pattern-A tile: ot[i][j] (vectors, row stride ldo positions) = bias[i] +
// sum over rows of w[row][i] * input at row, position j (input pointers xb).
template <typename T, int OB, int WB>
ND_LANES_INLINE void tile_a(const T* const* xb, const Rows& rw, const T* w, int64_t ldw, const T* bias, T* ot,
                            int64_t ldo) {
  using V = typename VecOf<T>::type;
  constexpr int64_t B = kB<T>;
  V acc[OB][WB];
#pragma GCC unroll 8
  for (int i = 0; i < OB; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < WB; ++j) acc[i][j] = bias[i] - V{};  // x - 0 folds to a broadcast; 0 + x would not (-0)
  for (int64_t c = 0; c < rw.C; ++c)
    for (int64_t kh = rw.kh0; kh < rw.kh1; ++kh) {
      const T* wr = w + ((c * rw.KH + kh) * rw.KW + rw.kw0) * ldw;
      int64_t off = c * rw.cs + kh * rw.hs + rw.kw0 * rw.ws;
      for (int64_t kw = rw.kw0; kw < rw.kw1; ++kw, wr += ldw, off += rw.ws) {
        V xv[WB];
#pragma GCC unroll 8
        for (int j = 0; j < WB; ++j) std::memcpy(&xv[j], xb[j] + off, sizeof(V));
#pragma GCC unroll 8
        for (int i = 0; i < OB; ++i) {
          V wv = wr[i] - V{};
#pragma GCC unroll 8
          for (int j = 0; j < WB; ++j) acc[i][j] += wv * xv[j];
        }
      }
    }
#pragma GCC unroll 8
  for (int i = 0; i < OB; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < WB; ++j) std::memcpy(ot + (i * ldo + j) * B, &acc[i][j], sizeof(V));
}

// Per output position q, the kernel rows [lo, hi) (and columns) that read inside the input.
struct Spans {
  std::vector<int64_t> kh0, kh1, kw0, kw1;
};

int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

Spans spans(const Plan& p) {
  Spans sp;
  for (auto* v : {&sp.kh0, &sp.kh1, &sp.kw0, &sp.kw1}) v->resize(p.L);
  for (int64_t oh = 0; oh < p.OH; ++oh)
    for (int64_t ow = 0; ow < p.OW; ++ow) {
      int64_t q = oh * p.OW + ow;
      // padded row oh * sh + kh * dh inside [ph, ph + H)
      sp.kh0[q] = std::clamp<int64_t>(ceil_div(p.ph - oh * p.sh, p.dh), 0, p.KH);
      sp.kh1[q] = std::clamp<int64_t>(ceil_div(p.ph + p.H - oh * p.sh, p.dh), sp.kh0[q], p.KH);
      sp.kw0[q] = std::clamp<int64_t>(ceil_div(p.pw - ow * p.sw, p.dw), 0, p.KW);
      sp.kw1[q] = std::clamp<int64_t>(ceil_div(p.pw + p.W - ow * p.sw, p.dw), sp.kw0[q], p.KW);
    }
  return sp;
}

// Pattern A over one transposed block: ot (G * Csgp, Lp, B) from xt; wt (G, CK, Csgp) and bias
// (G, Csgp) zero-padded to whole OB blocks.
template <typename T, int OB, int WB>
ND_LANES_TARGET void block_a(const Plan& p, const T* xt, const int64_t* pos, const Spans& sp, const T* wt,
                             const T* bias, int64_t Csgp, int64_t Lp, T* ot) {
  constexpr int64_t B = kB<T>;
  Rows rw{p.Cbg, p.KH, p.KW, 0, 0, 0, 0, p.Hp * p.Wp * B, p.dh * p.Wp * B, p.dw * B};
  for (int64_t grp = 0; grp < p.G; ++grp) {
    const T* xg = xt + grp * p.Cbg * p.Hp * p.Wp * B;
    // positions outer: the input window of a position tile stays in L1 across channel blocks
    for (int64_t q0 = 0; q0 < Lp; q0 += WB) {
      const T* xb[WB];
      rw.kh0 = rw.kw0 = INT64_MAX, rw.kh1 = rw.kw1 = 0;
      for (int j = 0; j < WB; ++j) {
        int64_t q = std::min(q0 + j, p.L - 1);
        xb[j] = xg + pos[q];
        rw.kh0 = std::min(rw.kh0, sp.kh0[q]), rw.kh1 = std::max(rw.kh1, sp.kh1[q]);
        rw.kw0 = std::min(rw.kw0, sp.kw0[q]), rw.kw1 = std::max(rw.kw1, sp.kw1[q]);
      }
      for (int64_t o0 = 0; o0 < Csgp; o0 += OB)
        tile_a<T, OB, WB>(xb, rw, wt + grp * p.CK * Csgp + o0, Csgp, bias + grp * Csgp + o0,
                          ot + ((grp * Csgp + o0) * Lp + q0) * B, Lp);
    }
  }
}

// wt (G, CK, Csgp) and bp (G, Csgp): the weight with its small channels last and the bias, both
// zero-padded to Csgp channels per group.
template <typename T>
void pack_weight(const T* w, const T* bias, const Plan& p, int64_t Csgp, std::vector<T>& wt, std::vector<T>& bp) {
  wt.assign(p.G * p.CK * Csgp, T(0));
  bp.assign(p.G * Csgp, T(0));
  for (int64_t grp = 0; grp < p.G; ++grp)
    for (int64_t o = 0; o < p.Csg; ++o) {
      for (int64_t r = 0; r < p.CK; ++r) wt[(grp * p.CK + r) * Csgp + o] = w[(grp * p.Csg + o) * p.CK + r];
      if (bias) bp[grp * Csgp + o] = bias[grp * p.Csg + o];
    }
}

template <typename T>
void run_a(const T* big, const T* w, const T* bias, T* small, const Plan& p) {
  constexpr int64_t B = kB<T>;
  int ob = pick_ob(p.Csg);
  static constexpr int kWB[7] = {0, 8, 8, 8, 6, 4, 4};
  int64_t wb = kWB[ob], Csgp = (p.Csg + ob - 1) / ob * ob, Lp = (p.L + wb - 1) / wb * wb;
  std::vector<T> wt, bp;
  pack_weight(w, bias, p, Csgp, wt, bp);
  std::vector<int64_t> pos, roff;
  offsets(p, B, pos, roff);
  Spans sp = spans(p);
  int64_t nblk = (p.N + B - 1) / B;
  parallel_for(nblk, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> xt(p.Cb * p.Hp * p.Wp * B), ot(p.G * Csgp * Lp * B);
    for (int64_t blk = b0; blk < b1; ++blk) {
      int64_t n0 = blk * B, nb = std::min(B, p.N - n0);
      pack_big(big, p, n0, nb, xt.data());
      switch (ob) {
#define ND_LANES_CASE(OB, WB) \
  case OB: block_a<T, OB, WB>(p, xt.data(), pos.data(), sp, wt.data(), bp.data(), Csgp, Lp, ot.data()); break;
        ND_LANES_CASE(1, 8) ND_LANES_CASE(2, 8) ND_LANES_CASE(3, 8) ND_LANES_CASE(4, 6) ND_LANES_CASE(5, 4)
        ND_LANES_CASE(6, 4)
#undef ND_LANES_CASE
      }
      for (int64_t grp = 0; grp < p.G; ++grp)
        for (int64_t o = 0; o < p.Csg; ++o)
          transpose_rows(ot.data() + (grp * Csgp + o) * Lp * B, B, small + (n0 * p.Cs + grp * p.Csg + o) * p.L,
                         p.Cs * p.L, nb, p.L);
    }
  });
}

// One pattern-C tile: acc[i][j] = sum over positions q of small[i] at q * input at row j, q;
// added to dwv (vectors, row stride ldd rows).
template <typename T, int OB, int KB>
ND_LANES_INLINE void tile_c(const T* const* sp, const T* const* xr, const int64_t* pos, int64_t L, T* dwv,
                            int64_t ldd) {
  using V = typename VecOf<T>::type;
  constexpr int64_t B = kB<T>;
  V acc[OB][KB];
#pragma GCC unroll 8
  for (int i = 0; i < OB; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < KB; ++j) acc[i][j] = V{};
  for (int64_t q = 0; q < L; ++q) {
    int64_t po = pos[q];
    V sv[OB], xv[KB];
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i) std::memcpy(&sv[i], sp[i] + q * B, sizeof(V));
#pragma GCC unroll 8
    for (int j = 0; j < KB; ++j) std::memcpy(&xv[j], xr[j] + po, sizeof(V));
#pragma GCC unroll 8
    for (int i = 0; i < OB; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < KB; ++j) acc[i][j] += sv[i] * xv[j];
  }
#pragma GCC unroll 8
  for (int i = 0; i < OB; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < KB; ++j) {
      V v;
      std::memcpy(&v, dwv + (i * ldd + j) * B, sizeof(V));
      v += acc[i][j];
      std::memcpy(dwv + (i * ldd + j) * B, &v, sizeof(V));
    }
}

// Pattern C over one block: dwv (G * Csgp, CKp, B) += per-lane products of st and xt.
template <typename T, int OB, int KB>
ND_LANES_TARGET void block_c(const Plan& p, const T* st, const T* xt, const int64_t* pos, const int64_t* roff,
                             int64_t Csgp, int64_t CKp, T* dwv) {
  constexpr int64_t B = kB<T>;
  for (int64_t grp = 0; grp < p.G; ++grp) {
    const T* xg = xt + grp * p.Cbg * p.Hp * p.Wp * B;
    const T* sg = st + grp * p.Csg * p.L * B;
    for (int64_t r0 = 0; r0 < CKp; r0 += KB) {
      const T* xr[KB];
      for (int j = 0; j < KB; ++j) xr[j] = xg + roff[std::min(r0 + j, p.CK - 1)];
      for (int64_t o0 = 0; o0 < Csgp; o0 += OB) {
        const T* sp[OB];
        for (int i = 0; i < OB; ++i) sp[i] = sg + std::min(o0 + i, p.Csg - 1) * p.L * B;
        tile_c<T, OB, KB>(sp, xr, pos, p.L, dwv + ((grp * Csgp + o0) * CKp + r0) * B, CKp);
      }
    }
  }
}

// dw (Cs, CK) += the lane sums of dwv (G * Csgp, CKp, B).
template <typename T>
void add_lane_sums(const T* dwv, const Plan& p, int64_t Csgp, int64_t CKp, T* dw) {
  constexpr int64_t B = kB<T>;
  for (int64_t grp = 0; grp < p.G; ++grp)
    for (int64_t o = 0; o < p.Csg; ++o)
      for (int64_t r = 0; r < p.CK; ++r) {
        const T* v = dwv + ((grp * Csgp + o) * CKp + r) * B;
        T s = 0;
        for (int64_t l = 0; l < B; ++l) s += v[l];
        dw[(grp * p.Csg + o) * p.CK + r] += s;
      }
}

template <typename T>
void run_c(const T* small, const T* big, T* dw, const Plan& p) {
  constexpr int64_t B = kB<T>;
  int ob = std::min(pick_ob(p.Csg), 5);
  static constexpr int kKB[6] = {0, 8, 8, 6, 5, 4};
  int64_t kb = kKB[ob], Csgp = (p.Csg + ob - 1) / ob * ob, CKp = (p.CK + kb - 1) / kb * kb;
  std::vector<int64_t> pos, roff;
  offsets(p, B, pos, roff);
  std::fill(dw, dw + p.Cs * p.CK, T(0));
  std::mutex mu;
  int64_t nblk = (p.N + B - 1) / B;
  parallel_for(nblk, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> xt(p.Cb * p.Hp * p.Wp * B), st(p.Cs * p.L * B), dwv(p.G * Csgp * CKp * B, T(0));
    for (int64_t blk = b0; blk < b1; ++blk) {
      int64_t n0 = blk * B, nb = std::min(B, p.N - n0);
      pack_big(big, p, n0, nb, xt.data());
      pack_small(small, p, n0, nb, st.data());
      switch (ob) {
#define ND_LANES_CASE(OB, KB) \
  case OB: block_c<T, OB, KB>(p, st.data(), xt.data(), pos.data(), roff.data(), Csgp, CKp, dwv.data()); break;
        ND_LANES_CASE(1, 8) ND_LANES_CASE(2, 8) ND_LANES_CASE(3, 6) ND_LANES_CASE(4, 5) ND_LANES_CASE(5, 4)
#undef ND_LANES_CASE
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    add_lane_sums(dwv.data(), p, Csgp, CKp, dw);
  });
}

// ---- long rows ----------------------------------------------------------------------------
//
// Note [Rows as one long row]
// With stride 1 and the planes padded in memory, output position (oh, ow) of a plane with row
// stride Wp reads input q + kh * dh * Wp + kw * dw at q = oh * Wp + ow, an affine function of
// q alone. So a whole plane can be computed as one long row of OH * Wp positions, vectorised
// along it with the tiles of the lanes kernels (a vector of B positions plays the role of a
// vector of B samples), and the Wp - OW positions at the end of each row, which straddle two
// input rows, are computed and dropped. This needs no transpose and any batch size, so it serves
// stride-1 convs whose rows are wide (conv1 of the MNIST Net: 24 of 28 positions kept) or whose
// batch is too small for the lanes. For pattern C the small tensor's dropped positions are
// zeros, so they add 0 * input, which is 0 unless the input holds an Inf or NaN (checked).

// Positions computed per plane: OH * Wp rounded up to whole tiles of WB vectors.
int64_t planes_q(const Plan& p, int64_t B, int64_t wb) {
  int64_t t = wb * B;
  return (p.OH * p.Wp + t - 1) / t * t;
}

// Elements of the padded big buffer: every plane, plus the reads of the last tile past the end.
int64_t planes_len(const Plan& p, int64_t Q) {
  int64_t plane = p.Hp * p.Wp;
  return std::max(p.Cb * plane, (p.Cb - 1) * plane + (p.KH - 1) * p.dh * p.Wp + (p.KW - 1) * p.dw + Q);
}

bool served_planes(const Plan& p, const cols::Geo& g, int64_t B, int64_t item) {
  if (simd_level() != SimdLevel::Avx512 || !cols::is_2d(g)) return false;
  if ((p.Cbg == 1 && p.G > 1) || p.K == 1 || p.sh != 1 || p.sw != 1 || p.Cs > kMaxSmallChannels) return false;
  if (p.Wp * 2 > p.OW * 3) return false;  // over a third of each long row would be dropped
  int64_t Q = planes_q(p, B, 8);
  return planes_len(p, Q) * item <= kMaxBlockBytes && (p.Cs + 6) * Q * item <= kMaxBlockBytes;
}

// xp = sample n of big in padded planes; padding and tail were zeroed once and stay zero.
template <typename T>
void pack_planes(const T* big, const Plan& p, int64_t n, T* xp) {
  for (int64_t c = 0; c < p.Cb; ++c)
    for (int64_t ih = 0; ih < p.H; ++ih)
      std::memcpy(xp + (c * p.Hp + ih + p.ph) * p.Wp + p.pw, big + ((n * p.Cb + c) * p.H + ih) * p.W, sizeof(T) * p.W);
}

template <typename T, int OB, int WB>
ND_LANES_TARGET void planes_block_a(const Plan& p, const T* xp, const T* wt, const T* bias, int64_t Csgp, int64_t Q,
                                    T* ot) {
  constexpr int64_t B = kB<T>;
  int64_t plane = p.Hp * p.Wp;
  Rows rw{p.Cbg, p.KH, p.KW, 0, p.KH, 0, p.KW, plane, p.dh * p.Wp, p.dw};
  for (int64_t grp = 0; grp < p.G; ++grp) {
    const T* xg = xp + grp * p.Cbg * plane;
    for (int64_t q0 = 0; q0 < Q; q0 += WB * B) {
      const T* xb[WB];
      for (int j = 0; j < WB; ++j) xb[j] = xg + q0 + j * B;
      for (int64_t o0 = 0; o0 < Csgp; o0 += OB)
        tile_a<T, OB, WB>(xb, rw, wt + grp * p.CK * Csgp + o0, Csgp, bias + grp * Csgp + o0,
                          ot + (grp * Csgp + o0) * Q + q0, Q / B);
    }
  }
}

template <typename T>
void run_planes_a(const T* big, const T* w, const T* bias, T* small, const Plan& p) {
  constexpr int64_t B = kB<T>;
  int ob = pick_ob(p.Csg);
  static constexpr int kWB[7] = {0, 8, 8, 8, 6, 4, 4};
  int64_t Csgp = (p.Csg + ob - 1) / ob * ob, Q = planes_q(p, B, kWB[ob]);
  std::vector<T> wt, bp;
  pack_weight(w, bias, p, Csgp, wt, bp);
  int64_t grain = std::max<int64_t>(1, 200000 / std::max<int64_t>(1, p.Cs * p.CK * p.L));
  parallel_for(p.N, grain, [&](int64_t n0, int64_t n1) {
    std::vector<T> xp(planes_len(p, Q), T(0)), ot(p.G * Csgp * Q);
    for (int64_t n = n0; n < n1; ++n) {
      pack_planes(big, p, n, xp.data());
      switch (ob) {
#define ND_LANES_CASE(OB, WB) \
  case OB: planes_block_a<T, OB, WB>(p, xp.data(), wt.data(), bp.data(), Csgp, Q, ot.data()); break;
        ND_LANES_CASE(1, 8) ND_LANES_CASE(2, 8) ND_LANES_CASE(3, 8) ND_LANES_CASE(4, 6) ND_LANES_CASE(5, 4)
        ND_LANES_CASE(6, 4)
#undef ND_LANES_CASE
      }
      for (int64_t grp = 0; grp < p.G; ++grp)
        for (int64_t o = 0; o < p.Csg; ++o)
          for (int64_t oh = 0; oh < p.OH; ++oh)
            std::memcpy(small + ((n * p.Cs + grp * p.Csg + o) * p.OH + oh) * p.OW, ot.data() + (grp * Csgp + o) * Q + oh * p.Wp,
                        sizeof(T) * p.OW);
    }
  });
}

template <typename T, int OB, int KB>
ND_LANES_TARGET void planes_block_c(const Plan& p, const T* sp, const T* xp, const int64_t* roff, const int64_t* vpos,
                                    int64_t Q, int64_t Csgp, int64_t CKp, T* dwv) {
  constexpr int64_t B = kB<T>;
  for (int64_t grp = 0; grp < p.G; ++grp) {
    const T* xg = xp + grp * p.Cbg * p.Hp * p.Wp;
    const T* sg = sp + grp * p.Csg * Q;
    for (int64_t r0 = 0; r0 < CKp; r0 += KB) {
      const T* xr[KB];
      for (int j = 0; j < KB; ++j) xr[j] = xg + roff[std::min(r0 + j, p.CK - 1)];
      for (int64_t o0 = 0; o0 < Csgp; o0 += OB) {
        const T* so[OB];
        for (int i = 0; i < OB; ++i) so[i] = sg + std::min(o0 + i, p.Csg - 1) * Q;
        tile_c<T, OB, KB>(so, xr, vpos, Q / B, dwv + ((grp * Csgp + o0) * CKp + r0) * B, CKp);
      }
    }
  }
}

// Whether no element is Inf or NaN (x * 0 is NaN exactly for those); 16 independent sums
// so that the loop vectorises without reassociation.
template <typename T>
bool all_finite(const T* x, int64_t n) {
  T acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += x[i + k] * T(0);
  for (; i < n; ++i) acc[0] += x[i] * T(0);
  T s = 0;
  for (int k = 0; k < 16; ++k) s += acc[k];
  return s == s;
}

template <typename T>
void run_planes_c(const T* small, const T* big, T* dw, const Plan& p) {
  constexpr int64_t B = kB<T>;
  int ob = std::min(pick_ob(p.Csg), 5);
  static constexpr int kKB[6] = {0, 8, 8, 6, 5, 4};
  int64_t kb = kKB[ob], Csgp = (p.Csg + ob - 1) / ob * ob, CKp = (p.CK + kb - 1) / kb * kb, Q = planes_q(p, B, 1);
  std::vector<int64_t> roff(p.CK), vpos(Q / B);
  for (int64_t c = 0; c < p.Cbg; ++c)
    for (int64_t kh = 0; kh < p.KH; ++kh)
      for (int64_t kw = 0; kw < p.KW; ++kw) roff[(c * p.KH + kh) * p.KW + kw] = (c * p.Hp + kh * p.dh) * p.Wp + kw * p.dw;
  for (int64_t v = 0; v < Q / B; ++v) vpos[v] = v * B;
  std::fill(dw, dw + p.Cs * p.CK, T(0));
  std::mutex mu;
  int64_t grain = std::max<int64_t>(1, 200000 / std::max<int64_t>(1, p.Cs * p.CK * p.L));
  parallel_for(p.N, grain, [&](int64_t n0, int64_t n1) {
    std::vector<T> xp(planes_len(p, Q), T(0)), sp(p.Cs * Q, T(0)), dwv(p.G * Csgp * CKp * B, T(0));
    for (int64_t n = n0; n < n1; ++n) {
      pack_planes(big, p, n, xp.data());
      for (int64_t o = 0; o < p.Cs; ++o)  // the dropped positions of sp stay zero
        for (int64_t oh = 0; oh < p.OH; ++oh)
          std::memcpy(sp.data() + o * Q + oh * p.Wp, small + ((n * p.Cs + o) * p.OH + oh) * p.OW, sizeof(T) * p.OW);
      switch (ob) {
#define ND_LANES_CASE(OB, KB) \
  case OB: planes_block_c<T, OB, KB>(p, sp.data(), xp.data(), roff.data(), vpos.data(), Q, Csgp, CKp, dwv.data()); break;
        ND_LANES_CASE(1, 8) ND_LANES_CASE(2, 8) ND_LANES_CASE(3, 6) ND_LANES_CASE(4, 5) ND_LANES_CASE(5, 4)
#undef ND_LANES_CASE
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    add_lane_sums(dwv.data(), p, Csgp, CKp, dw);
  });
}

// ---- output channels in lanes ------------------------------------------------------------
//
// Note [Channels in lanes]
// With few samples and many small channels (resnet's strided convs: 128 output channels, batch
// 8) neither the batch nor a strided row fills the vectors, but the output channels do: a tile
// holds OV vectors of B channels at P output positions, and per column row it loads OV weight
// vectors and broadcasts P input values from the padded planes. The tile's result is
// position-major and is transposed into the output once per sample.

constexpr int64_t kMinChannelLanes = 32;       // small channels per group for this kernel
constexpr int64_t kMinChannelPositions = 100;  // see served_ochan

bool served_ochan(const Plan& p, const cols::Geo& g, int64_t B, int64_t item) {
  if (simd_level() != SimdLevel::Avx512 || !cols::is_2d(g)) return false;
  if (p.K == 1 || p.Csg < kMinChannelLanes || p.Csg % (2 * B) != 0) return false;  // 1x1: GEMM is faster
  // Few positions per sample but enough samples for a wide GEMM (resnet's 14x14 -> 7x7 at batch
  // 8): im2col + BLAS is faster (measured 1.15x torch against 1.35x here), as the position
  // tiles waste more and the weights are streamed once per few samples.
  if (p.L < kMinChannelPositions && p.N * p.L >= 256) return false;
  return p.Cb * p.Hp * p.Wp * item <= 2 * kMaxBlockBytes && p.Cs * (p.L + 16) * item <= kMaxBlockBytes;
}

// acc (OV vectors of channels x P positions) = bias, or ot's partial sums when `more`, plus
// the rows of rw; stored to ot (position-major, row stride ld).
template <typename T, int OV, int P>
ND_LANES_INLINE void tile_o(const T* const* xb, const Rows& rw, const T* w, const T* bias, bool more, T* ot, int64_t ld) {
  using V = typename VecOf<T>::type;
  constexpr int64_t B = kB<T>;
  V acc[OV][P];
#pragma GCC unroll 16
  for (int j = 0; j < P; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < OV; ++v) std::memcpy(&acc[v][j], more ? ot + j * ld + v * B : bias + v * B, sizeof(V));
  for (int64_t c = 0; c < rw.C; ++c)
    for (int64_t kh = 0; kh < rw.KH; ++kh) {
      int64_t off = c * rw.cs + kh * rw.hs;
      for (int64_t kw = 0; kw < rw.KW; ++kw, off += rw.ws, w += OV * B) {
        V wv[OV];
#pragma GCC unroll 16
        for (int v = 0; v < OV; ++v) std::memcpy(&wv[v], w + v * B, sizeof(V));
#pragma GCC unroll 16
        for (int j = 0; j < P; ++j) {
          V xv = xb[j][off] - V{};
#pragma GCC unroll 16
          for (int v = 0; v < OV; ++v) acc[v][j] += wv[v] * xv;
        }
      }
    }
#pragma GCC unroll 16
  for (int j = 0; j < P; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < OV; ++v) std::memcpy(ot + j * ld + v * B, &acc[v][j], sizeof(V));
}

// nb samples: ot (nb, ots: Lp, G * Csg) from their padded planes xp; wo (G, Csg / (OV * B), CK,
// OV * B). The big channels go in chunks whose weights fit L1, each chunk over every position
// tile of every sample, so a chunk of weights is read from memory once per nb samples.
template <typename T, int OV, int P>
ND_LANES_TARGET void ochan_block(const Plan& p, const T* xp, int64_t nb, const int64_t* pos, const T* wo, const T* bias,
                                 T* ot, int64_t ots) {
  constexpr int64_t B = kB<T>;
  int64_t plane = p.Hp * p.Wp, chunk = std::max<int64_t>(1, (32 << 10) / (p.K * OV * B * (int64_t)sizeof(T)));
  Rows rw{0, p.KH, p.KW, 0, p.KH, 0, p.KW, plane, p.dh * p.Wp, p.dw};
  for (int64_t grp = 0; grp < p.G; ++grp)
    for (int64_t o0 = 0; o0 < p.Csg; o0 += OV * B)
      for (int64_t c0 = 0; c0 < p.Cbg; c0 += chunk) {
        rw.C = std::min(chunk, p.Cbg - c0);
        const T* wc = wo + (grp * p.Csg + o0) * p.CK + c0 * p.K * OV * B;
        for (int64_t s = 0; s < nb; ++s) {
          const T* xg = xp + s * p.Cb * plane + (grp * p.Cbg + c0) * plane;
          for (int64_t q0 = 0; q0 < p.L; q0 += P) {
            const T* xb[P];
            for (int j = 0; j < P; ++j) xb[j] = xg + pos[std::min(q0 + j, p.L - 1)];
            tile_o<T, OV, P>(xb, rw, wc, bias + grp * p.Csg + o0, c0 > 0, ot + s * ots + q0 * p.Cs + grp * p.Csg + o0,
                             p.Cs);
          }
        }
      }
}

template <typename T>
void run_ochan_a(const T* big, const T* w, const T* bias, T* small, const Plan& p) {
  constexpr int64_t B = kB<T>;
  int64_t ovb = p.Csg % (4 * B) == 0 ? 4 * B : 2 * B;  // channels per tile
  // wo: each block of ovb channels transposed to (CK, ovb), B rows at a time
  std::vector<T> wo(p.Cs * p.CK), bp(p.Cs, T(0));
  parallel_for(p.Cs / B, std::max<int64_t>(1, 4096 / p.CK), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      int64_t o = b * B, grp = o / p.Csg, og = o % p.Csg, blk = og / ovb, lane = og % ovb;
      transpose_run(w + o * p.CK, p.CK, B, wo.data() + (grp * p.Csg + blk * ovb) * p.CK + lane, ovb, B, p.CK);
    }
  });
  if (bias) std::copy(bias, bias + p.Cs, bp.begin());
  std::vector<int64_t> pos, roff;
  offsets(p, 1, pos, roff);
  // Samples per pass over the weights: as many as keep their padded planes within a block.
  int64_t xs = p.Cb * p.Hp * p.Wp, ots = (p.L + 16) * p.Cs;
  int64_t per = std::max<int64_t>(1, kMaxBlockBytes / (xs * (int64_t)sizeof(T)));
  parallel_for(p.N, 1, [&](int64_t n0, int64_t n1) {
    int64_t nbmax = std::min(per, n1 - n0);
    std::vector<T> xp(nbmax * xs, T(0)), ot(nbmax * ots);
    for (int64_t n = n0; n < n1; n += nbmax) {
      int64_t nb = std::min(nbmax, n1 - n);
      for (int64_t s = 0; s < nb; ++s) pack_planes(big, p, n + s, xp.data() + s * xs);
      if (ovb == 4 * B) ochan_block<T, 4, 6>(p, xp.data(), nb, pos.data(), wo.data(), bp.data(), ot.data(), ots);
      else ochan_block<T, 2, 12>(p, xp.data(), nb, pos.data(), wo.data(), bp.data(), ot.data(), ots);
      for (int64_t s = 0; s < nb; ++s)
        for (int64_t o0 = 0; o0 < p.Cs; o0 += B)  // Cs is a multiple of B
          transpose_rows(ot.data() + s * ots + o0, p.Cs, small + ((n + s) * p.Cs + o0) * p.L, p.L, B, p.L);
    }
  });
}
#endif  // ND_SIMD_X86

}  // namespace

template <typename T>
bool conv_a(const T* big, const T* w, const T* bias, T* small, int64_t N, int64_t Cb, int64_t Cs, int64_t G,
            const cols::Geo& g) {
#ifdef ND_SIMD_X86
  Plan p = make_plan(N, Cb, Cs, G, g);
  if (served_a(p, g, kB<T>, sizeof(T))) run_a(big, w, bias, small, p);
  else if (served_planes(p, g, kB<T>, sizeof(T))) run_planes_a(big, w, bias, small, p);
  else if (served_ochan(p, g, kB<T>, sizeof(T))) run_ochan_a(big, w, bias, small, p);
  else return false;
  return true;
#else
  return false;
#endif
}

template <typename T>
bool conv_b(const T* small, const T* w, T* big, int64_t N, int64_t Cb, int64_t Cs, int64_t G, const cols::Geo& g) {
#ifdef ND_SIMD_X86
  // big = conv(small padded by d(k-1) - p, W flipped in space with its channel dims swapped)
  cols::Geo f = g;
  for (int i = 0; i < 3; ++i) {
    if (g.s[i] != 1 || g.p[i] > g.d[i] * (g.k[i] - 1)) return false;
    f.in[i] = g.out[i], f.out[i] = g.in[i], f.p[i] = g.d[i] * (g.k[i] - 1) - g.p[i];
  }
  Plan p = make_plan(N, Cs, Cb, G, f);
  bool lanes = served_a(p, f, kB<T>, sizeof(T));
  if (!lanes && !served_planes(p, f, kB<T>, sizeof(T))) return false;
  int64_t K = g.K(), Cbg = Cb / G, Csg = Cs / G;
  std::vector<T> wf(Cb * Csg * K);
  for (int64_t grp = 0; grp < G; ++grp)
    for (int64_t o = 0; o < Csg; ++o)
      for (int64_t c = 0; c < Cbg; ++c)
        for (int64_t k = 0; k < K; ++k)
          wf[((grp * Cbg + c) * Csg + o) * K + (K - 1 - k)] = w[((grp * Csg + o) * Cbg + c) * K + k];
  if (lanes) run_a(small, wf.data(), (const T*)nullptr, big, p);
  else run_planes_a(small, wf.data(), (const T*)nullptr, big, p);
  return true;
#else
  return false;
#endif
}

template <typename T>
bool conv_c(const T* small, const T* big, T* dw, int64_t N, int64_t Cb, int64_t Cs, int64_t G, const cols::Geo& g) {
#ifdef ND_SIMD_X86
  Plan p = make_plan(N, Cb, Cs, G, g);
  int64_t B = kB<T>, item = sizeof(T);
  bool acc_fits = p.Cs * (p.CK + 8) * B * item <= kMaxBlockBytes;
  if (acc_fits && common_ok(p, g, B) && p.Cb * p.Hp * p.Wp * B * item <= kMaxBlockBytes &&
      p.Cs * p.L * B * item <= kMaxBlockBytes)
    run_c(small, big, dw, p);
  else if (acc_fits && served_planes(p, g, B, item) && all_finite(big, N * Cb * g.I()))
    run_planes_c(small, big, dw, p);
  else
    return false;
  return true;
#else
  return false;
#endif
}

template bool conv_a<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t,
                            const cols::Geo&);
template bool conv_a<double>(const double*, const double*, const double*, double*, int64_t, int64_t, int64_t, int64_t,
                             const cols::Geo&);
template bool conv_b<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, const cols::Geo&);
template bool conv_b<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, int64_t,
                             const cols::Geo&);
template bool conv_c<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, int64_t, const cols::Geo&);
template bool conv_c<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, int64_t,
                             const cols::Geo&);

}  // namespace lanes
}  // namespace nd
