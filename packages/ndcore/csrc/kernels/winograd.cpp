// See winograd.h. Note [Winograd convolution]
// A 3x3 conv computes each m x m output tile from an a x a input tile (a = m + 2). With
// Winograd's minimal filtering F(m x m, 3x3) the tile is Y = A^T [(G g G^T) .* (B^T d B)] A: the
// a*a products per (output channel, input channel, tile) replace 9*m*m multiply-adds. Summed over
// input channels, each of the a*a "elements" is one GEMM:
//   M_e (Cout x tiles) = U_e (Cout x Cin) @ V_e (Cin x tiles)
// with U = G g G^T (weights, transformed once per weight: Note [Transformed weight cache]) and
// V = B^T d B (input tiles). The input gradient reuses U (Note [One U for both passes]); the
// weight gradient runs the adjoint (Note [Winograd weight gradient]). The tiles are processed in
// blocks (V and M in L2 for narrow layers); each worker of our pool
// transforms a block, runs the a*a GEMMs (single-threaded OpenBLAS) and writes the output
// transform (+bias) into NCHW. Tiles past the output's edge read zeros; their extra outputs are
// dropped. F(2x2, 3x3) (m = 2) does 16 products per 4 outputs where direct conv does 36.
//
// Float32 rounding: F(2x2) rounds like direct conv (its transforms add at most 4 terms with
// coefficients +-1, +-1/2). F(4x4) would cut the GEMM work by another 1.8x, but its coefficients
// (up to 8 and 1/24) cost ~20x F(2x2)'s max error on the ResNet-18 layers (measured: 5e-5 against
// 2.6e-6 with kaiming weights), far from im2col's, so only F(2x2) is used. NaN/inf: the transforms mix a tile's inputs,
// so a non-finite input would spread to outputs direct conv leaves finite (or turn inf into
// NaN). A non-finite output makes the entry return false, and the caller recomputes everything
// with im2col, which gives direct conv's semantics.
#include "winograd.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "blas_threads.h"
#include "parallel.h"
#include "simd_dispatch.h"

namespace nd {
namespace winograd {
namespace {

// F(2x2, 3x3) with interpolation points 0, 1, -1 (and infinity).
struct F2 {
  static constexpr int m = 2, a = 4;
  static inline void bt(const float* d, float* v) {  // B^T d
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
  }
  static inline void g(const float* w, float* u) {  // G w
    u[0] = w[0];
    u[1] = 0.5f * (w[0] + w[1] + w[2]);
    u[2] = 0.5f * (w[0] - w[1] + w[2]);
    u[3] = w[2];
  }
  static inline void at(const float* s, float* o) {  // A^T s
    o[0] = s[0] + s[1] + s[2];
    o[1] = s[1] - s[2] - s[3];
  }
  static inline void a_(const float* y, float* s) {  // A y: the adjoint of at
    s[0] = y[0];
    s[1] = y[0] + y[1];
    s[2] = y[0] - y[1];
    s[3] = -y[1];
  }
  static inline void gt(const float* u, float* w) {  // G^T u: the adjoint of g
    float h = 0.5f * (u[1] + u[2]);
    w[0] = u[0] + h;
    w[1] = 0.5f * (u[1] - u[2]);
    w[2] = h + u[3];
  }
};

// One conv as the entries see it: x (N, CI, H, W) -> y (N, CO, OH, OW), tiles TH x TW per image.
struct Problem {
  const float* x;
  const float* bias;
  float* y;
  int64_t N, CI, CO, H, W, ph, pw, OH, OW, TH, TW;
};

// Calls fn(n, ty, tx, j, len) for the runs of tiles [t0, t1) that share an image row of tiles;
// j is the run's offset in the block.
template <typename Fn>
inline void for_segments(const Problem& p, int64_t t0, int64_t t1, Fn&& fn) {
  for (int64_t t = t0; t < t1;) {
    int64_t n = t / (p.TH * p.TW), r = t % (p.TH * p.TW), ty = r / p.TW, tx = r % p.TW;
    int64_t len = std::min(p.TW - tx, t1 - t);
    fn(n, ty, tx, t - t0, len);
    t += len;
  }
}

// Lanes per vector loop of InputTransformPadded.
constexpr int64_t kVec = 16;

// Scratch per worker, in floats: InputTransform's rows, or OutputTransform's Y.
template <typename F>
int64_t scratch_floats(int64_t tb, int64_t W) {
  return std::max(F::a * (tb * F::m + F::a) + W, F::m * F::m * tb);
}

// V[e][c][j] (row stride ldv, element stride es) for the tiles [t0, t1): B^T d B of each tile,
// for images at least 16 tiles wide. Per channel, each run of tiles along an image row is
// transformed down its a input rows (loops along the run's columns, read straight from the
// image; the padding is handled at the run's ends), then along the columns into V.
template <typename F>
ND_SIMD_KERNEL(InputTransform, (const Problem& p, int64_t t0, int64_t t1, int64_t ldv, int64_t es, float* V,
                                float* scratch), {
  constexpr int m = F::m, a = F::a;
  int64_t zw = (t1 - t0) * m + a;
  float* zt = scratch;         // zt[i * zw + u]: column u of the run, transformed down the rows
  float* zeros = zt + a * zw;  // stands in for the rows above and below the image
  std::fill(zeros, zeros + p.W, 0.0f);
  for (int64_t c = 0; c < p.CI; ++c) {
    float* out = V + c * ldv;
    for_segments(p, t0, t1, [&](int64_t n, int64_t ty, int64_t tx, int64_t j0, int64_t len) {
      const float* plane = p.x + (n * p.CI + c) * p.H * p.W;
      int64_t width = len * m + a - m, ix0 = tx * m - p.pw;
      int64_t lo = std::clamp<int64_t>(-ix0, 0, width), hi = std::clamp<int64_t>(p.W - ix0, lo, width);
      const float* rows[a];
      for (int r = 0; r < a; ++r) {
        int64_t iy = ty * m - p.ph + r;
        rows[r] = iy >= 0 && iy < p.H ? plane + iy * p.W : zeros;
      }
      for (int i = 0; i < a; ++i) {
        std::fill(zt + i * zw, zt + i * zw + lo, 0.0f);
        std::fill(zt + i * zw + hi, zt + i * zw + width, 0.0f);
      }
      _Pragma("GCC ivdep") for (int64_t u = lo; u < hi; ++u) {
        float d[a], z[a];
        for (int r = 0; r < a; ++r) d[r] = rows[r][ix0 + u];
        F::bt(d, z);
        for (int i = 0; i < a; ++i) zt[i * zw + u] = z[i];
      }
      for (int i = 0; i < a; ++i) {
        const float* src = zt + i * zw;
        _Pragma("GCC ivdep") for (int64_t j = 0; j < len; ++j) {
          float d[a], v[a];
          for (int k = 0; k < a; ++k) d[k] = src[j * m + k];
          F::bt(d, v);
          for (int k = 0; k < a; ++k) out[(i * a + k) * es + j0 + j] = v[k];
        }
      }
    });
  }
})

// The same V for images under 16 tiles wide, whose runs are too short for vector loops: the
// input was copied once into xp, zero-padded to Hp x Wp = (m * TH + a - m) x (m * TW + a - m)
// per plane. Each run then takes whole vectors of tiles: the lanes past its end read on into the
// padded rows (xp has kVec * m floats of slack) and write junk into the following columns of V,
// which the next runs of the channel overwrite (V rows have kVec columns of slack).
template <typename F>
ND_SIMD_KERNEL(InputTransformPadded, (const Problem& p, const float* xp, int64_t Hp, int64_t Wp, int64_t t0, int64_t t1,
                                      int64_t ldv, int64_t es, float* V), {
  constexpr int m = F::m, a = F::a;
  for (int64_t c = 0; c < p.CI; ++c) {
    float* out = V + c * ldv;
    for_segments(p, t0, t1, [&](int64_t n, int64_t ty, int64_t tx, int64_t j0, int64_t len) {
      const float* src = xp + ((n * p.CI + c) * Hp + ty * m) * Wp + tx * m;
      float* dst = out + j0;
      int64_t lanes = (len + kVec - 1) / kVec * kVec;
      _Pragma("GCC ivdep") for (int64_t j = 0; j < lanes; ++j) {
        float h[a][a];
        for (int r = 0; r < a; ++r) {
          float d[a];
          for (int k = 0; k < a; ++k) d[k] = src[r * Wp + j * m + k];
          F::bt(d, h[r]);  // row r transformed along the columns
        }
        for (int k = 0; k < a; ++k) {
          float d[a], v[a];
          for (int r = 0; r < a; ++r) d[r] = h[r][k];
          F::bt(d, v);
          for (int i = 0; i < a; ++i) dst[(i * a + k) * es + j] = v[i];
        }
      }
    });
  }
})

// y = A^T M A (+ bias) for the output channels [o0, o1) of the tiles [t0, t1); M[e][o - o0][j]
// (row stride ldm, element stride es). The transform runs over the whole block into
// Y[(q * m + k) * nt + j] (output row q, column k of tile j), then each run is interleaved into
// y's rows. Sets *bad when an output is not finite.
template <typename F>
ND_SIMD_KERNEL(OutputTransform, (const Problem& p, int64_t t0, int64_t t1, int64_t o0, int64_t o1, const float* M,
                                 int64_t ldm, int64_t es, float* scratch, bool* bad), {
  constexpr int m = F::m, a = F::a;
  int64_t nt = t1 - t0;
  float* Y = scratch;
  uint32_t nonfinite = 0;
  for (int64_t o = o0; o < o1; ++o) {
    const float* src = M + (o - o0) * ldm;
    float b = p.bias ? p.bias[o] : 0.0f;
    _Pragma("GCC ivdep") for (int64_t j = 0; j < nt; ++j) {
      float h[a][m];
      for (int i = 0; i < a; ++i) {
        float s[a];
        for (int k = 0; k < a; ++k) s[k] = src[(i * a + k) * es + j];
        F::at(s, h[i]);  // row i of M transformed along the columns
      }
      for (int k = 0; k < m; ++k) {
        float s[a], v[m];
        for (int i = 0; i < a; ++i) s[i] = h[i][k];
        F::at(s, v);
        for (int q = 0; q < m; ++q) {
          float y = v[q] + b;
          Y[(q * m + k) * nt + j] = y;
          uint32_t u;
          std::memcpy(&u, &y, sizeof(u));
          nonfinite |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
        }
      }
    }
    for_segments(p, t0, t1, [&](int64_t n, int64_t ty, int64_t tx, int64_t j0, int64_t len) {
      int64_t oy0 = ty * m, ox0 = tx * m, nrows = std::min<int64_t>(m, p.OH - oy0);
      int64_t ncols = std::min(len * m, p.OW - ox0), full = ncols / m;
      float* plane = p.y + (n * p.CO + o) * p.OH * p.OW + oy0 * p.OW + ox0;
      for (int64_t q = 0; q < nrows; ++q) {
        float* dst = plane + q * p.OW;
        const float* yq = Y + q * m * nt + j0;
        _Pragma("GCC ivdep") for (int64_t j = 0; j < full; ++j)
          for (int k = 0; k < m; ++k) dst[j * m + k] = yq[k * nt + j];
        for (int64_t l = full * m; l < ncols; ++l) dst[l] = yq[(l % m) * nt + full];
      }
    });
  }
  if (nonfinite) *bad = true;
})

constexpr int64_t kWeightRows = 16;  // rows of U gathered together (tmp: 9 * kWeightRows * (CI + 16) floats)

// U[e][o][i] = (G w_oi G^T)[e] for o in [o0, o1), with w_oi[kh][kw] = w[o * so + i * si + kh * sh +
// kw * sw]: the strides let the backward pass read the weights flipped and with the channel roles
// swapped. The taps of kWeightRows rows are gathered first (tmp[(r * 9 + tap) * ldt + i]), walking
// i outermost so that both layouts read the weights in runs, then the transform vectorises
// across i. Float adds and halvings change U by an ulp or so, far below the GEMM's rounding.
template <typename F>
ND_SIMD_KERNEL(WeightTransform, (const float* w, int64_t o0, int64_t o1, int64_t CI, int64_t so, int64_t si, int64_t sh,
                                 int64_t sw, float* U, int64_t es, float* tmp), {
  constexpr int a = F::a;
  int64_t ldt = CI + 16;  // off a power of two: the 9 * kWeightRows rows would share cache sets
  for (int64_t ob = o0; ob < o1; ob += kWeightRows) {
    int64_t nr = std::min(kWeightRows, o1 - ob);
    for (int64_t i = 0; i < CI; ++i)
      for (int64_t r = 0; r < nr; ++r) {
        const float* src = w + (ob + r) * so + i * si;
        for (int k = 0; k < 9; ++k) tmp[(r * 9 + k) * ldt + i] = src[k / 3 * sh + k % 3 * sw];
      }
    for (int64_t r = 0; r < nr; ++r) {
      const float* g = tmp + r * 9 * ldt;
      float* out = U + (ob + r) * CI;
      _Pragma("GCC ivdep")  // the element streams never overlap
      for (int64_t i = 0; i < CI; ++i) {
        float t[a][3];  // G g: the kernel's columns transformed along kh
        for (int kw = 0; kw < 3; ++kw) {
          float col[3] = {g[kw * ldt + i], g[(3 + kw) * ldt + i], g[(6 + kw) * ldt + i]}, u[a];
          F::g(col, u);
          for (int e = 0; e < a; ++e) t[e][kw] = u[e];
        }
        for (int e = 0; e < a; ++e) {
          float u[a];
          F::g(t[e], u);
          for (int k = 0; k < a; ++k) out[(e * a + k) * es + i] = u[k];
        }
      }
    }
  }
})

// A float buffer kept by each thread between calls, one per slot: fresh allocations of this size
// come from mmap and page-faulted on every call (~8% of a 256-channel layer's time). Buffers
// over kKeepFloats are allocated per call. The caller's slots (U, the padded input) differ from
// the workers' (weight taps, V, M, scratch) because the calling thread also runs a share of the
// work.
enum Slot { kSlotU, kSlotPadded, kSlotWeightTaps, kSlotV, kSlotM, kSlotScratch, kSlotDU, kSlotDUSum, kSlots };
constexpr int64_t kKeepFloats = 8 << 20;  // 32 MB

class Buffer {
 public:
  Buffer(Slot slot, int64_t n) {
    if (n > kKeepFloats) {
      own_.reset(new float[n]);
      p_ = own_.get();
      return;
    }
    thread_local std::unique_ptr<float[]> kept[kSlots];
    thread_local int64_t size[kSlots] = {};
    if (size[slot] < n) {
      kept[slot].reset(new float[n]);
      size[slot] = n;
    }
    p_ = kept[slot].get();
  }
  float* get() const { return p_; }

 private:
  float* p_;
  std::unique_ptr<float[]> own_;
};

constexpr int64_t kBlockBytes = 1 << 20;  // per worker, for one block's V and M (half of L2)
constexpr int64_t kMinTiles = 128;        // GEMM columns below which packing U_e dominates

// The input side of a run: images under 16 tiles wide are copied once, zero-padded (see
// InputTransformPadded); transform() writes V for a block of tiles either way.
template <typename F>
struct PaddedInput {
  const Problem& p;
  bool on;
  int64_t Hp, Wp;
  Buffer xp;
  explicit PaddedInput(const Problem& pr)
      : p(pr), on(pr.TW < 16), Hp(on ? F::m * pr.TH + F::a - F::m : 0), Wp(on ? F::m * pr.TW + F::a - F::m : 0),
        xp(kSlotPadded, on ? pr.N * pr.CI * Hp * Wp + kVec * F::m : 0) {
    if (!on) return;
    parallel_for(p.N * p.CI, std::max<int64_t>(1, 16384 / (Hp * Wp)), [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q)
        for (int64_t r = 0; r < Hp; ++r) {
          float* dst = xp.get() + (q * Hp + r) * Wp;
          int64_t iy = r - p.ph, lo = std::clamp<int64_t>(p.pw, 0, Wp), hi = std::clamp<int64_t>(p.pw + p.W, lo, Wp);
          if (iy < 0 || iy >= p.H) {
            std::fill(dst, dst + Wp, 0.0f);
            continue;
          }
          std::fill(dst, dst + lo, 0.0f);
          if (hi > lo) std::copy_n(p.x + (q * p.H + iy) * p.W + (lo - p.pw), hi - lo, dst + lo);
          std::fill(dst + hi, dst + Wp, 0.0f);
        }
    });
  }
  void transform(int64_t t0, int64_t t1, int64_t ld, int64_t esv, float* V, float* scratch) const {
    if (on) simd_run<InputTransformPadded<F>>(p, (const float*)xp.get(), Hp, Wp, t0, t1, ld, esv, V);
    else simd_run<InputTransform<F>>(p, t0, t1, ld, esv, V, scratch);
  }
};

// One conv's GEMMs read U_e as stored (forward) or transposed with its elements permuted
// (input gradient): see Note [One U for both passes].
struct UView {
  const float* U;
  int64_t esu;
  bool trans;
};

constexpr int kFlip[4] = {3, 1, 2, 0};  // G applied to a reversed kernel column: u0 and u3 swap

struct TileBlocks {
  int64_t tb, nblocks, ld;
};
// Tiles per block: V and M in L2 where that still leaves a GEMM wide enough to amortise packing
// U_e, and blocks spread evenly over the workers; ld, the row stride of V and M, starts rows on
// a vector boundary, with slack for InputTransformPadded. Shared by the forward/input-gradient
// pass and the weight gradient.
TileBlocks tile_blocks(const Problem& p, int64_t E, int64_t threads) {
  const int64_t T = p.N * p.TH * p.TW;
  int64_t tb = std::max(kMinTiles, kBlockBytes / (E * (p.CI + p.CO) * (int64_t)sizeof(float)));
  int64_t nblocks = (T + tb - 1) / tb;
  if (threads > 1 && nblocks > threads) nblocks = (nblocks + threads - 1) / threads * threads;
  tb = (T + nblocks - 1) / nblocks;
  nblocks = (T + tb - 1) / tb;
  return {tb, nblocks, (tb + kVec - 1) / kVec * kVec + kVec};
}

template <typename F>
bool run(const Problem& p, const UView& u) {
  constexpr int64_t E = F::a * F::a;
  const int64_t T = p.N * p.TH * p.TW, threads = get_num_threads();
  // With fewer blocks than workers the output channels are split too (each part transforms its
  // block's input again: cheap next to its GEMMs).
  const TileBlocks blk = tile_blocks(p, E, threads);
  const int64_t tb = blk.tb, nblocks = blk.nblocks, ld = blk.ld;
  int64_t parts = threads > nblocks ? std::min<int64_t>(threads / nblocks, std::max<int64_t>(1, p.CO / 64)) : 1;
  int64_t cpart = (p.CO + parts - 1) / parts, esv = p.CI * ld + 16, esm = cpart * ld + 16;
  PaddedInput<F> xin(p);
  std::atomic<bool> bad{false};
  SingleThreadBlas single;
  parallel_for(nblocks * parts, 1, [&](int64_t r0, int64_t r1) {
    Buffer V(kSlotV, E * esv), M(kSlotM, E * esm), scratch(kSlotScratch, scratch_floats<F>(tb, p.W));
    bool my_bad = false;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t b = r / parts, o0 = r % parts * cpart, o1 = std::min(p.CO, o0 + cpart);
      int64_t t0 = b * tb, t1 = std::min(T, t0 + tb), len = t1 - t0;
      if (r == r0 || r % parts == 0) xin.transform(t0, t1, ld, esv, V.get(), scratch.get());
      if (o1 <= o0) continue;
      for (int64_t e = 0; e < E; ++e) {
        // Forward: rows o of U_e (CO x CI). Input gradient: U was made for the forward conv,
        // (CI x CO) per element, read transposed at the flipped element.
        const float* A = u.trans ? u.U + (kFlip[e / F::a] * F::a + kFlip[e % F::a]) * u.esu + o0
                                 : u.U + e * u.esu + o0 * p.CI;
        scipy_cblas_sgemm(CblasRowMajor, u.trans ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)(o1 - o0), (int)len,
                          (int)p.CI, 1.0f, A, u.trans ? (int)p.CO : (int)p.CI, V.get() + e * esv, (int)ld, 0.0f,
                          M.get() + e * esm, (int)ld);
      }
      simd_run<OutputTransform<F>>(p, t0, t1, o0, o1, M.get(), ld, esm, scratch.get(), &my_bad);
    }
    if (my_bad) bad = true;
  });
  return !bad.load();
}

// ---- weight gradient ----------------------------------------------------------------------
//
// Note [Winograd weight gradient]
// The forward pass is Y = A^T (U .* V) A per tile, so dL/dU_e = sum over tiles of
// (A dY A^T)_e V_e: with dM = A dY A^T (the adjoint of OutputTransform) each element is one GEMM,
//   dU_e (CO x CI) += dM_e (CO x tiles) @ V_e^T (tiles x CI),
// and dW = G^T dU G (the adjoint of WeightTransform). V is the forward's input transform. Blocks
// of tiles are spread over the workers, each summing into its own dU; the sums are added at the
// end. Like the forward, a non-finite result falls back to im2col (a NaN/inf input would spread
// through V to weights direct conv leaves finite).

// dM[e][o][j] = (A dY A^T)[e] for every output channel and the tiles [t0, t1); dY is the tile's
// m x m block of gy (zeros past the output's edge).
template <typename F>
ND_SIMD_KERNEL(GradTransform, (const Problem& p, const float* gy, int64_t t0, int64_t t1, int64_t ldm, int64_t es,
                               float* M), {
  constexpr int m = F::m, a = F::a;
  for (int64_t o = 0; o < p.CO; ++o) {
    float* out = M + o * ldm;
    for_segments(p, t0, t1, [&](int64_t n, int64_t ty, int64_t tx, int64_t j0, int64_t len) {
      const float* plane = gy + (n * p.CO + o) * p.OH * p.OW;
      int64_t oy0 = ty * m, ox0 = tx * m;
      // whole tiles inside the output first, then the ragged ones with bounds checks
      int64_t full = oy0 + m <= p.OH ? std::clamp<int64_t>((p.OW - ox0) / m, 0, len) : 0;
      auto tile = [&](int64_t j, const float (&d)[m][m]) {
        float h[a][m];
        for (int r = 0; r < m; ++r) {
          float col[m], v[a];
          for (int q = 0; q < m; ++q) col[q] = d[q][r];
          F::a_(col, v);  // column r of dY transformed down the rows
          for (int i = 0; i < a; ++i) h[i][r] = v[i];
        }
        for (int i = 0; i < a; ++i) {
          float v[a];
          F::a_(h[i], v);
          for (int k = 0; k < a; ++k) out[(i * a + k) * es + j0 + j] = v[k];
        }
      };
      _Pragma("GCC ivdep") for (int64_t j = 0; j < full; ++j) {
        float d[m][m];
        for (int q = 0; q < m; ++q)
          for (int k = 0; k < m; ++k) d[q][k] = plane[(oy0 + q) * p.OW + ox0 + j * m + k];
        tile(j, d);
      }
      for (int64_t j = full; j < len; ++j) {
        float d[m][m];
        for (int q = 0; q < m; ++q)
          for (int k = 0; k < m; ++k) {
            int64_t oy = oy0 + q, ox = ox0 + j * m + k;
            d[q][k] = oy < p.OH && ox < p.OW ? plane[oy * p.OW + ox] : 0.0f;
          }
        tile(j, d);
      }
    });
  }
})

// gw[o][i] = G^T dU_oi G for o in [o0, o1); dU[e][o][i] (element stride es).
template <typename F>
ND_SIMD_KERNEL(WeightGradTransform, (const float* dU, int64_t es, int64_t o0, int64_t o1, int64_t CI, float* gw), {
  constexpr int a = F::a;
  for (int64_t o = o0; o < o1; ++o) {
    const float* src = dU + o * CI;
    float* dst = gw + o * CI * 9;
    _Pragma("GCC ivdep") for (int64_t i = 0; i < CI; ++i) {
      float t[a][3];
      for (int r = 0; r < a; ++r) {
        float u[a];
        for (int k = 0; k < a; ++k) u[k] = src[(r * a + k) * es + i];
        F::gt(u, t[r]);  // row r of dU reduced along the columns
      }
      for (int kw = 0; kw < 3; ++kw) {
        float col[a], w[3];
        for (int r = 0; r < a; ++r) col[r] = t[r][kw];
        F::gt(col, w);
        for (int kh = 0; kh < 3; ++kh) dst[i * 9 + kh * 3 + kw] = w[kh];
      }
    }
  }
})

template <typename F>
bool run_dw(const Problem& p, const float* gy, float* gw) {
  constexpr int64_t E = F::a * F::a;
  const int64_t T = p.N * p.TH * p.TW, threads = get_num_threads();
  const TileBlocks blk = tile_blocks(p, E, threads);
  const int64_t tb = blk.tb, nblocks = blk.nblocks, ld = blk.ld;
  const int64_t esv = p.CI * ld + 16, esm = p.CO * ld + 16, esd = p.CO * p.CI + 16;
  PaddedInput<F> xin(p);
  // One worker sums straight into dsum; several sum privately and add theirs in under the lock.
  bool shared = threads == 1 || nblocks == 1;
  Buffer dsum(kSlotDUSum, E * esd);
  std::mutex mu;
  bool first = true;
  SingleThreadBlas single;
  parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    Buffer V(kSlotV, E * esv), M(kSlotM, E * esm), scratch(kSlotScratch, scratch_floats<F>(tb, p.W));
    Buffer mine(kSlotDU, shared ? 0 : E * esd);
    float* dU = shared ? dsum.get() : mine.get();
    for (int64_t b = b0; b < b1; ++b) {
      int64_t t0 = b * tb, t1 = std::min(T, t0 + tb), len = t1 - t0;
      xin.transform(t0, t1, ld, esv, V.get(), scratch.get());
      simd_run<GradTransform<F>>(p, gy, t0, t1, ld, esm, M.get());
      for (int64_t e = 0; e < E; ++e)
        scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p.CO, (int)p.CI, (int)len, 1.0f,
                          M.get() + e * esm, (int)ld, V.get() + e * esv, (int)ld, b == b0 ? 0.0f : 1.0f,
                          dU + e * esd, (int)p.CI);
    }
    if (shared || b1 <= b0) return;
    std::lock_guard<std::mutex> g(mu);
    float* d = dsum.get();
    if (first) std::copy_n(dU, E * esd, d);
    else
      for (int64_t i = 0; i < E * esd; ++i) d[i] += dU[i];
    first = false;
  });
  std::atomic<bool> bad{false};
  parallel_for(p.CO, std::max<int64_t>(1, 4096 / p.CI), [&](int64_t o0, int64_t o1) {
    simd_run<WeightGradTransform<F>>((const float*)dsum.get(), esd, o0, o1, p.CI, gw);
    uint32_t nonfinite = 0;
    for (int64_t i = o0 * p.CI * 9; i < o1 * p.CI * 9; ++i) {
      uint32_t u;
      std::memcpy(&u, gw + i, sizeof(u));
      nonfinite |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
    }
    if (nonfinite) bad = true;
  });
  return !bad.load();
}

// Whether Winograd beats im2col here. Measured single-threaded against im2col (forward and input
// gradient): with under 64 channels on either side the transforms cost more than the GEMM work
// saved (16-48 channels: 0.4-1.2x); and once U outgrows L2 its transform (written once, read by
// every block) needs enough tiles to pay off (512 channels, 7x7, batch 4 = 64 tiles: 0.7-0.8x;
// batch 8: 1.1x; 256 channels, 49 tiles: 0.8-0.9x; 98 tiles: 1.0-1.1x).
// Above 1024 x 1024 channels U alone would take 64 MB.
bool worth_it(int64_t CI, int64_t CO, int64_t N, int64_t OH, int64_t OW) {
  if (CI < 64 || CO < 64 || CI * CO > 1024 * 1024 || OH < 4 || OW < 4) return false;
  int64_t tiles = N * ((OH + 1) / 2) * ((OW + 1) / 2), pairs = CI * CO;
  int64_t min_tiles = pairs >= 256 * 256 ? 96 : pairs >= 128 * 128 ? 64 : 1;
  return tiles >= min_tiles;
}

Problem make_problem(const float* x, const float* bias, float* y, int64_t N, int64_t CI, int64_t CO, int64_t H,
                     int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW, int m) {
  return Problem{x, bias, y, N, CI, CO, H, W, ph, pw, OH, OW, (OH + m - 1) / m, (OW + m - 1) / m};
}

// ---- transformed weights ------------------------------------------------------------------
//
// Note [Transformed weight cache]
// U costs a pass that writes 16/9 of the weights' bytes with a strided gather (~15% of a
// 512-channel layer at 7x7). Weights change only at optimizer steps, so U is kept per weight
// between calls: the forward pass of each step makes it, its input gradient reuses it (Note [One
// U for both passes]), and inference reuses it on every call. An entry is found by the weight's
// storage (held weakly: the cache never keeps a weight alive, and a new storage at a freed one's
// address is a different storage), offset, shape, strides and dtype; it is valid while the
// storage's version counter is unchanged (in-place ops and optimizer steps bump it) AND the
// weights' fingerprint matches, because writes through shared buffers (a NumPy view, DLPack)
// bypass the version counter. The fingerprint reads the weights once, ~1/5 of the transform's
// traffic. Entries of freed storages are dropped at the next lookup; the whole cache is bounded
// (kCacheBytes, least recently used out first).

// Order-dependent 64-bit fingerprint of n floats: 64 multiplicative-hash lanes per chunk of
// kHashChunk floats, chunks mixed with their index and summed (so threads may take any chunks).
constexpr int64_t kHashChunk = 1 << 15;
constexpr int kHashLanes = 64;

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

ND_SIMD_KERNEL(HashChunks, (const float* x, int64_t n, int64_t c0, int64_t c1, uint64_t* out), {
  uint64_t sum = 0;
  for (int64_t c = c0; c < c1; ++c) {
    int64_t b = c * kHashChunk, e = std::min(n, b + kHashChunk);
    uint32_t h[kHashLanes];
    for (int l = 0; l < kHashLanes; ++l) h[l] = 0x811c9dc5u + (uint32_t)l;
    const uint32_t* u = reinterpret_cast<const uint32_t*>(x);
    int64_t i = b;
    // The shift feeds the high bits back down: with the multiply alone a bit only moves up, and
    // flipping every sign bit (negating the weights) would cancel out in pairs.
    for (; i + kHashLanes <= e; i += kHashLanes)
      for (int l = 0; l < kHashLanes; ++l) {
        uint32_t v = (h[l] ^ u[i + l]) * 0x9e3779b1u;
        h[l] = v ^ (v >> 15);
      }
    for (; i < e; ++i) {
      uint32_t v = (h[0] ^ u[i]) * 0x9e3779b1u;
      h[0] = v ^ (v >> 15);
    }
    uint64_t ch = (uint64_t)c * 0x9e3779b97f4a7c15ULL;
    for (int l = 0; l < kHashLanes; l += 2) ch = mix64(ch ^ (((uint64_t)h[l] << 32) | h[l + 1]));
    sum += ch;
  }
  *out = sum;
})

uint64_t fingerprint(const float* x, int64_t n) {
  int64_t chunks = (n + kHashChunk - 1) / kHashChunk;
  std::atomic<uint64_t> total{0};
  parallel_for(chunks, 8, [&](int64_t c0, int64_t c1) {
    uint64_t part = 0;
    simd_run<HashChunks>(x, n, c0, c1, &part);
    total.fetch_add(part, std::memory_order_relaxed);
  });
  return total.load() ^ (uint64_t)n;
}

// U for weights w (CO, CI, 3, 3) contiguous, into U (E * esu floats, esu = CO * CI + 16).
void transform_weights(const float* w, int64_t CO, int64_t CI, float* U, int64_t esu) {
  parallel_for(CO, std::max<int64_t>(1, 2048 / CI), [&](int64_t o0, int64_t o1) {
    Buffer tmp(kSlotWeightTaps, 9 * kWeightRows * (CI + 16));
    simd_run<WeightTransform<F2>>(w, o0, o1, CI, CI * 9, (int64_t)9, (int64_t)3, (int64_t)1, U, esu, tmp.get());
  });
}

constexpr int64_t kCacheBytes = 256 << 20;

class WeightCache {
 public:
  struct Key {
    std::weak_ptr<Storage> storage;
    const void* data = nullptr;
    int64_t offset = 0;
    Shape sizes, strides;
    DType dtype = DType::Float32;
  };
  // U of the weight, from the cache or made now (and kept when it fits the budget).
  std::shared_ptr<float> get(const Tensor& wt, const float* w, int64_t CO, int64_t CI, int64_t esu) {
    const std::shared_ptr<Storage>& st = wt.impl()->storage;
    int64_t version = wt.version(), floats = F2::a * F2::a * esu;
    uint64_t fp = fingerprint(w, CO * CI * 9);
    std::shared_ptr<float> reuse;  // a stale entry's buffer, refilled instead of page-faulting a new one
    {
      std::lock_guard<std::mutex> g(mu_);
      sweep();
      for (size_t i = 0; i < entries_.size(); ++i) {
        Entry& e = entries_[i];
        if (!same_key(e.key, wt, st)) continue;
        if (e.version == version && e.fp == fp && e.floats == floats) {
          e.used = ++clock_;
          return e.U;
        }
        if (e.floats == floats && e.U.use_count() == 1) reuse = std::move(e.U);
        drop(i);
        break;
      }
    }
    std::shared_ptr<float> U =
        reuse ? std::move(reuse) : std::shared_ptr<float>(new float[floats], std::default_delete<float[]>());
    transform_weights(w, CO, CI, U.get(), esu);
    int64_t bytes = floats * (int64_t)sizeof(float);
    if (bytes > kCacheBytes) return U;
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < entries_.size(); ++i)  // another thread may have cached this weight meanwhile
      if (same_key(entries_[i].key, wt, st)) {
        drop(i);
        break;
      }
    while (bytes_ + bytes > kCacheBytes) {
      size_t lru = 0;
      for (size_t i = 1; i < entries_.size(); ++i)
        if (entries_[i].used < entries_[lru].used) lru = i;
      drop(lru);
    }
    Key key{st, st->data, wt.offset(), wt.sizes(), wt.strides(), wt.dtype()};
    entries_.push_back(Entry{std::move(key), version, fp, floats, U, ++clock_});
    bytes_ += bytes;
    return U;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu_);
    entries_.clear();
    bytes_ = 0;
  }
  int64_t size() {
    std::lock_guard<std::mutex> g(mu_);
    sweep();
    return (int64_t)entries_.size();
  }

 private:
  struct Entry {
    Key key;
    int64_t version;
    uint64_t fp;
    int64_t floats;
    std::shared_ptr<float> U;
    uint64_t used;
  };
  static bool same_key(const Key& k, const Tensor& wt, const std::shared_ptr<Storage>& st) {
    // owner_before both ways: the same control block, so a storage allocated later at a freed
    // one's address does not match.
    return !k.storage.owner_before(st) && !st.owner_before(k.storage) && !k.storage.expired() && k.data == st->data &&
           k.offset == wt.offset() && k.sizes == wt.sizes() && k.strides == wt.strides() && k.dtype == wt.dtype();
  }
  void drop(size_t i) {
    bytes_ -= entries_[i].floats * (int64_t)sizeof(float);
    entries_.erase(entries_.begin() + (std::ptrdiff_t)i);
  }
  void sweep() {
    for (size_t i = entries_.size(); i-- > 0;)
      if (entries_[i].key.storage.expired()) drop(i);
  }
  std::mutex mu_;
  std::vector<Entry> entries_;
  int64_t bytes_ = 0;
  uint64_t clock_ = 0;
};

WeightCache& cache() {
  static WeightCache* c = new WeightCache;  // leaked: convs may run during interpreter teardown
  return *c;
}

// Runs the conv with U from the cache (when `key` is the weights' own tensor) or transformed
// into a per-thread buffer.
template <typename Go>
bool with_u(const float* w, int64_t CO, int64_t CI, const Tensor* key, Go&& go) {
  // Element strides are padded off powers of two: the transforms walk E streams at once, which
  // would otherwise share a few cache sets.
  int64_t esu = CO * CI + 16;
  if (key) {
    std::shared_ptr<float> U = cache().get(*key, w, CO, CI, esu);
    return go(UView{U.get(), esu, false});
  }
  Buffer U(kSlotU, F2::a * F2::a * esu);
  transform_weights(w, CO, CI, U.get(), esu);
  return go(UView{U.get(), esu, false});
}

}  // namespace

bool conv3x3_forward(const float* x, const float* w, const float* bias, float* y, int64_t N, int64_t Cin, int64_t Cout,
                     int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW, const Tensor* key) {
  if (N <= 0 || OH <= 0 || OW <= 0 || !worth_it(Cin, Cout, N, OH, OW)) return false;
  Problem p = make_problem(x, bias, y, N, Cin, Cout, H, W, ph, pw, OH, OW, F2::m);
  return with_u(w, Cout, Cin, key, [&](const UView& u) { return run<F2>(p, u); });
}

// Note [One U for both passes]
// gx = conv(gy, w') with w'[i][o] = w[o][i] flipped 180 degrees, padded 2 - p. G applied to a
// reversed column gives G's outputs in the order 3, 1, 2, 0 (the interpolation points 1 and -1
// and the ends 0 and infinity trade places), so U' = G w' G^T is U with both element indices
// mapped through kFlip and each element's (Cout x Cin) matrix transposed. The GEMMs read U that
// way (run's `trans`), and the input gradient shares the forward pass's transform and cache entry.
bool conv3x3_backward_input(const float* gy, const float* w, float* gx, int64_t N, int64_t Cin, int64_t Cout, int64_t H,
                            int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW, const Tensor* key) {
  // A padding above 2 would make gx's padding negative; such convs are rare and stay on im2col.
  if (ph > 2 || pw > 2 || N <= 0 || H <= 0 || W <= 0 || !worth_it(Cout, Cin, N, H, W)) return false;
  Problem p = make_problem(gy, nullptr, gx, N, Cout, Cin, OH, OW, 2 - ph, 2 - pw, H, W, F2::m);
  return with_u(w, Cout, Cin, key, [&](UView u) {
    u.trans = true;
    return run<F2>(p, u);
  });
}

bool conv3x3_backward_weight(const float* gy, const float* x, float* gw, int64_t N, int64_t Cin, int64_t Cout,
                             int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t OH, int64_t OW) {
  if (N <= 0 || OH <= 0 || OW <= 0 || H <= 0 || W <= 0 || !worth_it(Cin, Cout, N, OH, OW)) return false;
  Problem p = make_problem(x, nullptr, nullptr, N, Cin, Cout, H, W, ph, pw, OH, OW, F2::m);
  return run_dw<F2>(p, gy, gw);
}

void clear_weight_cache() { cache().clear(); }
int64_t weight_cache_size() { return cache().size(); }

}  // namespace winograd
}  // namespace nd
