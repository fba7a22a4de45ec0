// grid_sampler_3d (F.grid_sample on 5-D input) and the bilinear/nearest engine that grid_sampler_2d
// shares: forward, grad_input and grad_grid over 2 or 3 spatial dims.
//
// Note [grid sampler blocks]
// Output positions are taken in blocks of kBlock. A block's tap offsets and weights are computed
// once (the coordinate math: unnormalize, padding, floor), then every channel streams through the
// block: contiguous output writes and gathers from one input slice, instead of one strided write
// per channel per position. Positions whose taps all lie inside the input are sorted to the front
// of the block and take a loop without bounds checks, four channels at a time (their offsets and
// weights loaded once); in the others an outside tap reads as 0 (it is never multiplied, so an
// inf/NaN input value at a stand-in offset cannot leak in; torch skips such taps).
// The whole task body is compiled per ISA (simd_dispatch.h): baseline x86-64 has no floor or
// round instruction, so the coordinate math would call libm per tap.
//
// Note [grid sampler non-finite coordinates]
// torch has two rule sets, and each rank follows its own. 5-D (its scalar kernel): the forward
// clips with min(size - 1, max(x, 0)), which sends NaN to size - 1 (border; under reflection NaN
// and +-inf fold to NaN first), while the backward clips with comparisons that let NaN through,
// so the same point samples the last pixel forward and nothing backward; a NaN, inf or huge
// coordinate left unclipped (zeros padding) selects no tap, and output and gradients are 0 there.
// 4-D (its vectorised kernel, grid_sampler.h's *2 helpers): the clamp sends NaN to 0; an unclipped
// NaN/inf coordinate selects no tap but its NaN weights make the output NaN, and the grad_grid
// component whose formula multiplies them. Where torch's 4-D backward is undefined (it indexes
// memory with a NaN under border/reflection) the point keeps the forward's coordinate 0 and a zero
// derivative.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")  // torch rounds (c + 1) * scale - 0.5 unfused; floor/round see the same value
#endif
#include "grid_sampler.h"

#include <algorithm>
#include <vector>

#include "simd_dispatch.h"

namespace nd {
namespace grid {
namespace {

constexpr int kBlock = 128;

// Taps of one block of output positions, stored by slot: positions whose taps all lie inside take
// slots 0, 1, ... (nfull of them), the others slots kBlock - 1, kBlock - 2, ... (npart), so each
// kind streams through a loop of its own (Note [grid sampler blocks]).
template <typename T, int K>
struct Block {
  static constexpr int NT = 1 << K;  // taps per position: 2^K (bilinear); nearest uses tap 0
  int nfull, npart;
  int32_t pos[kBlock];      // position in the block of each slot
  int64_t off[NT][kBlock];  // tap offsets in the input slice (0 for outside taps)
  T w[NT][kBlock];
  T fr[K][kBlock];          // fractional coordinate per axis (bilinear)
  T mult[K][kBlock];        // d(source coordinate)/d(grid value) per axis
  uint8_t mask[kBlock];     // bit t: tap t lies inside the input
};

// Source coordinate of grid value c along an axis of `size`: torch's 4-D rules for K == 2, its
// 5-D rules for K == 3 (Note [grid sampler non-finite coordinates]); m gets d(source)/d(c) when
// `backward`. PAD is a template argument so the per-position code has no padding branches.
template <typename T, int K, int PAD, bool backward>
inline T locate_coord(T c, int64_t size, bool align, T* m) {
  if constexpr (K == 2)
    return backward ? source2_bwd(c, size, PAD, align, m) : source2_fwd(c, size, PAD, align);
  else
    return backward ? source_coord(c, size, PAD, align, m) : source_coord_fwd(c, size, PAD, align);
}

template <int K>
inline void tap_deltas(const Args& a, int64_t* delta) {
  for (int t = 0; t < (1 << K); ++t) {
    int64_t o = 0, stride = 1;
    for (int d = 0; d < K; ++d) {
      o += ((t >> d) & 1) * stride;
      stride *= a.size[d];
    }
    delta[t] = o;  // offset of bilinear tap t from tap 0 (bit d of t: +1 along axis d)
  }
}

// Bilinear taps of positions [0, n) of grid g (n * K values). `backward` selects torch's backward
// coordinate rules and fills mult. The per-axis pass has no branches on the data so that it
// vectorises; the pass over positions then sorts them into slots.
template <typename T, int K, int PAD, bool BWD>
inline void locate_linear(const T* g, int n, const Args& a, Block<T, K>& b) {
  constexpr int NT = Block<T, K>::NT;
  int64_t stride[K];
  int32_t i0[K][kBlock];  // within [-1, size): int32 keeps the conversion vectorisable
  T fr[K][kBlock], mu[K][kBlock];
  uint8_t lo[K][kBlock], hi[K][kBlock];
  for (int d = 0; d < K; ++d) {
    const int64_t size = a.size[d];
    const T tsize = T(size);
    stride[d] = d == 0 ? 1 : stride[d - 1] * a.size[d - 1];
    for (int j = 0; j < n; ++j) {
      T m = 1;
      T x = locate_coord<T, K, PAD, BWD>(g[j * K + d], size, a.align, &m);
      bool in = (x >= T(-1)) & (x < tsize);  // false for NaN
      T xs = in ? x : T(0);
      T fl = std::floor(xs);
      i0[d][j] = static_cast<int32_t>(fl);
      // no tap inside: 4-D keeps the NaN weights of a NaN/inf coordinate, which poison the sums
      fr[d][j] = in ? xs - fl : (K == 2 ? x - std::floor(x) : T(0));
      lo[d][j] = in & (fl >= T(0));
      hi[d][j] = in & (fl + 1 < tsize);
      mu[d][j] = m;
    }
  }
  int nf = 0, np = 0;
  for (int j = 0; j < n; ++j) {
    unsigned mask = 0;
    int64_t base = 0;
    for (int t = 0; t < NT; ++t) {
      bool ok = true;
      for (int d = 0; d < K; ++d) ok = ok && (((t >> d) & 1) ? hi[d][j] : lo[d][j]);
      mask |= unsigned(ok) << t;
    }
    for (int d = 0; d < K; ++d) base += i0[d][j] * stride[d];
    int s = mask == (1u << NT) - 1 ? nf++ : kBlock - 1 - np++;
    for (int t = 0; t < NT; ++t) {
      int64_t o = base;
      T wt = 1;
      for (int d = 0; d < K; ++d) {
        int bit = (t >> d) & 1;
        o += bit * stride[d];
        wt *= bit ? fr[d][j] : 1 - fr[d][j];
      }
      b.off[t][s] = (mask >> t) & 1 ? o : 0;
      b.w[t][s] = wt;
    }
    for (int d = 0; d < K; ++d) {
      b.fr[d][s] = fr[d][j];
      b.mult[d][s] = mu[d][j];
    }
    b.mask[s] = static_cast<uint8_t>(mask);
    b.pos[s] = j;
  }
  b.nfull = nf;
  b.npart = np;
}

template <typename T, int K, int PAD, bool BWD>
inline void locate_nearest(const T* g, int n, const Args& a, Block<T, K>& b) {
  int nf = 0, np = 0;
  for (int j = 0; j < n; ++j) {
    int64_t o = 0, stride = 1;
    bool ok = true;
    for (int d = 0; d < K; ++d) {
      int64_t size = a.size[d];
      T m;
      // 4-D nearest takes the forward's coordinate rules in both directions, as torch's does
      T x = locate_coord<T, K, PAD, BWD && K == 3>(g[j * K + d], size, a.align, &m);
      T r = std::nearbyint(x);
      bool in = r >= T(0) && r <= T(size - 1);
      ok = ok && in;
      o += (in ? static_cast<int64_t>(r) : 0) * stride;
      stride *= size;
    }
    int s = ok ? nf++ : kBlock - 1 - np++;
    b.off[0][s] = ok ? o : 0;
    b.mask[s] = ok;
    b.pos[s] = j;
  }
  b.nfull = nf;
  b.npart = np;
}

template <typename T, int K, bool BWD>
inline void locate(const T* g, int n, const Args& a, Block<T, K>& b) {
  bool linear = a.mode == kBilinear;
  switch (a.pad) {
    case kZeros:
      return linear ? locate_linear<T, K, kZeros, BWD>(g, n, a, b) : locate_nearest<T, K, kZeros, BWD>(g, n, a, b);
    case kBorder:
      return linear ? locate_linear<T, K, kBorder, BWD>(g, n, a, b) : locate_nearest<T, K, kBorder, BWD>(g, n, a, b);
    default:
      return linear ? locate_linear<T, K, kReflection, BWD>(g, n, a, b)
                    : locate_nearest<T, K, kReflection, BWD>(g, n, a, b);
  }
}

// Forward over tasks [t0, t1) of (sample, block) pairs.
template <typename T, int K>
ND_SIMD_KERNEL(ForwardTask, (const T* x, const T* grid, T* y, const Args& a, int64_t nblocks, int64_t t0, int64_t t1), {
  constexpr int NT = Block<T, K>::NT;
  Block<T, K> b;
  const bool linear = a.mode == kBilinear;
  int64_t delta[NT];
  tap_deltas<K>(a, delta);
  for (int64_t task = t0; task < t1; ++task) {
    int64_t n = task / nblocks, o0 = (task % nblocks) * kBlock;
    int m = static_cast<int>(std::min<int64_t>(kBlock, a.out_plane - o0));
    locate<T, K, false>(grid + (n * a.out_plane + o0) * K, m, a, b);
    const int part0 = kBlock - b.npart;
    int64_t c = 0;
    // inside positions, four channels at a time: their offsets and weights are loaded once
    for (; c + 4 <= a.C; c += 4) {
      const T* p = x + (n * a.C + c) * a.in_plane;
      T* yo = y + (n * a.C + c) * a.out_plane + o0;
      const int64_t ip = a.in_plane, op = a.out_plane;
      for (int s = 0; s < b.nfull; ++s) {
        const T* q = p + b.off[0][s];
        T v0 = 0, v1 = 0, v2 = 0, v3 = 0;
        if (linear) {
          for (int t = 0; t < NT; ++t) {
            T wt = b.w[t][s];
            const T* r = q + delta[t];
            v0 += wt * r[0];
            v1 += wt * r[ip];
            v2 += wt * r[2 * ip];
            v3 += wt * r[3 * ip];
          }
        } else {
          v0 = q[0], v1 = q[ip], v2 = q[2 * ip], v3 = q[3 * ip];
        }
        T* o = yo + b.pos[s];
        o[0] = v0, o[op] = v1, o[2 * op] = v2, o[3 * op] = v3;
      }
    }
    for (; c < a.C; ++c) {
      const T* p = x + (n * a.C + c) * a.in_plane;
      T* yo = y + (n * a.C + c) * a.out_plane + o0;
      if (!linear) {
        for (int s = 0; s < b.nfull; ++s) yo[b.pos[s]] = p[b.off[0][s]];
        continue;
      }
      for (int s = 0; s < b.nfull; ++s) {
        const T* q = p + b.off[0][s];
        T v = 0;
        for (int t = 0; t < NT; ++t) v += b.w[t][s] * q[delta[t]];
        yo[b.pos[s]] = v;
      }
    }
    // positions with taps outside, channel by channel
    for (c = 0; c < a.C; ++c) {
      const T* p = x + (n * a.C + c) * a.in_plane;
      T* yo = y + (n * a.C + c) * a.out_plane + o0;
      for (int s = part0; s < kBlock; ++s) {
        T v = 0;
        if (linear)
          for (int t = 0; t < NT; ++t) v += b.w[t][s] * ((b.mask[s] >> t) & 1 ? p[b.off[t][s]] : T(0));
        yo[b.pos[s]] = v;
      }
    }
  }
})

// d(output)/d(fractional coordinate) summed over the taps, per axis, for slot s and channel
// values v[t] (0 for outside taps).
template <typename T, int K>
inline void frac_grads(const Block<T, K>& b, int s, const T* v, T* out) {
  if constexpr (K == 2) {
    T fx = b.fr[0][s], fy = b.fr[1][s];
    out[0] = (v[1] - v[0]) * (1 - fy) + (v[3] - v[2]) * fy;
    out[1] = (v[2] - v[0]) * (1 - fx) + (v[3] - v[1]) * fx;
  } else {
    T fx = b.fr[0][s], fy = b.fr[1][s], fz = b.fr[2][s];
    T gx = 1 - fx, gy = 1 - fy, gz = 1 - fz;
    out[0] = ((v[1] - v[0]) * gy + (v[3] - v[2]) * fy) * gz + ((v[5] - v[4]) * gy + (v[7] - v[6]) * fy) * fz;
    out[1] = ((v[2] - v[0]) * gx + (v[3] - v[1]) * fx) * gz + ((v[6] - v[4]) * gx + (v[7] - v[5]) * fx) * fz;
    out[2] = ((v[4] - v[0]) * gx + (v[5] - v[1]) * fx) * gy + ((v[6] - v[2]) * gx + (v[7] - v[3]) * fx) * fy;
  }
}

// Backward over tasks [t0, t1) of (sample, channel group) pairs when gi is wanted (grad_input of
// one channel only receives from that channel, so groups never collide), or of (sample, block)
// pairs with one group of all channels when only grad_grid is. gg_part holds this group's partial
// grad_grid (the full grad_grid when there is one group).
template <typename T, int K>
ND_SIMD_KERNEL(BackwardTask, (const T* go, const T* x, const T* grid, T* gi, T* gg_part, const Args& a, int64_t groups,
                              int64_t nblocks, bool by_block, int64_t t0, int64_t t1), {
  constexpr int NT = Block<T, K>::NT;
  Block<T, K> b;
  T acc[K][kBlock];
  const bool linear = a.mode == kBilinear;
  int64_t delta[NT];
  tap_deltas<K>(a, delta);
  const int64_t per = (a.C + groups - 1) / groups;
  for (int64_t task = t0; task < t1; ++task) {
    int64_t n = by_block ? task / nblocks : task / groups, grp = by_block ? 0 : task % groups;
    int64_t c0 = std::min(a.C, grp * per), c1 = std::min(a.C, c0 + per);
    int64_t blk0 = by_block ? task % nblocks : 0, blk1 = by_block ? blk0 + 1 : nblocks;
    T* ggp = gg_part ? gg_part + grp * a.N * a.out_plane * K : nullptr;
    for (int64_t blk = blk0; blk < blk1; ++blk) {
      int64_t o0 = blk * kBlock;
      int m = static_cast<int>(std::min<int64_t>(kBlock, a.out_plane - o0));
      locate<T, K, true>(grid + (n * a.out_plane + o0) * K, m, a, b);
      const int part0 = kBlock - b.npart;
      if (ggp) std::memset(acc, 0, sizeof(acc));
      for (int64_t c = c0; c < c1; ++c) {
        const T* gc = go + (n * a.C + c) * a.out_plane + o0;
        const T* p = x + (n * a.C + c) * a.in_plane;
        T* q = gi ? gi + (n * a.C + c) * a.in_plane : nullptr;
        if (!linear) {
          if (q)
            for (int s = 0; s < b.nfull; ++s) q[b.off[0][s]] += gc[b.pos[s]];
          continue;
        }
        if (q) {
          for (int s = 0; s < b.nfull; ++s) {
            T* r = q + b.off[0][s];
            T gv = gc[b.pos[s]];
            for (int t = 0; t < NT; ++t) r[delta[t]] += b.w[t][s] * gv;
          }
          for (int s = part0; s < kBlock; ++s) {
            T gv = gc[b.pos[s]];
            for (int t = 0; t < NT; ++t)
              if ((b.mask[s] >> t) & 1) q[b.off[t][s]] += b.w[t][s] * gv;
          }
        }
        if (ggp) {
          T v[NT], d[K];
          for (int s = 0; s < b.nfull; ++s) {
            const T* r = p + b.off[0][s];
            for (int t = 0; t < NT; ++t) v[t] = r[delta[t]];
            frac_grads<T, K>(b, s, v, d);
            T gv = gc[b.pos[s]];
            for (int e = 0; e < K; ++e) acc[e][s] += gv * d[e];
          }
          for (int s = part0; s < kBlock; ++s) {
            for (int t = 0; t < NT; ++t) v[t] = (b.mask[s] >> t) & 1 ? p[b.off[t][s]] : T(0);
            frac_grads<T, K>(b, s, v, d);
            T gv = gc[b.pos[s]];
            for (int e = 0; e < K; ++e) acc[e][s] += gv * d[e];
          }
        }
      }
      if (ggp) {
        T* out = ggp + (n * a.out_plane + o0) * K;
        auto put = [&](int s) {
          for (int e = 0; e < K; ++e) out[b.pos[s] * K + e] = linear ? b.mult[e][s] * acc[e][s] : T(0);
        };
        for (int s = 0; s < b.nfull; ++s) put(s);
        for (int s = part0; s < kBlock; ++s) put(s);
      }
    }
  }
})

}  // namespace

template <typename T>
void linear_forward(const T* x, const T* grid, T* y, const Args& a) {
  if (a.N == 0 || a.out_plane == 0) return;
  int64_t nblocks = (a.out_plane + kBlock - 1) / kBlock, taps = a.mode == kBilinear ? (1 << a.k) : 1;
  // below ~32k tap reads the pool's start-up costs more than it saves
  int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, kBlock * a.C * taps));
  parallel_for(a.N * nblocks, grain, [&](int64_t t0, int64_t t1) {
    if (a.k == 2) simd_run<ForwardTask<T, 2>>(x, grid, y, a, nblocks, t0, t1);
    else simd_run<ForwardTask<T, 3>>(x, grid, y, a, nblocks, t0, t1);
  });
}

template <typename T>
void linear_backward(const T* go, const T* x, const T* grid, T* gi, T* gg, const Args& a) {
  if (a.N == 0 || a.out_plane == 0) return;
  int64_t nblocks = (a.out_plane + kBlock - 1) / kBlock, taps = a.mode == kBilinear ? (1 << a.k) : 1;
  int64_t work = a.N * a.out_plane * std::max<int64_t>(1, a.C) * taps;
  int threads = work < (1 << 15) ? 1 : get_num_threads();
  // Only grad_grid: positions are independent, split by block. With grad_input, split by sample, and
  // also by channel group when the samples do not divide evenly among the threads; each group then
  // sums its own grad_grid partial.
  bool by_block = gi == nullptr;
  int64_t groups = by_block || a.N % threads == 0 ? 1 : std::max<int64_t>(1, std::min<int64_t>(a.C, threads));
  std::vector<T> part;
  T* ggp = gg;
  if (gg && groups > 1) {
    part.assign(static_cast<size_t>(groups * a.N * a.out_plane * a.k), T(0));
    ggp = part.data();
  }
  int64_t tasks = by_block ? a.N * nblocks : a.N * groups;
  parallel_for(tasks, threads == 1 ? tasks + 1 : 1, [&](int64_t t0, int64_t t1) {
    if (a.k == 2) simd_run<BackwardTask<T, 2>>(go, x, grid, gi, ggp, a, groups, nblocks, by_block, t0, t1);
    else simd_run<BackwardTask<T, 3>>(go, x, grid, gi, ggp, a, groups, nblocks, by_block, t0, t1);
  });
  if (ggp != gg) {
    int64_t total = a.N * a.out_plane * a.k;
    for (int64_t i = 0; i < total; ++i) {
      T s = 0;
      for (int64_t grp = 0; grp < groups; ++grp) s += part[grp * total + i];
      gg[i] = s;
    }
  }
}

template void linear_forward<float>(const float*, const float*, float*, const Args&);
template void linear_forward<double>(const double*, const double*, double*, const Args&);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*, const Args&);
template void linear_backward<double>(const double*, const double*, const double*, double*, double*, const Args&);

}  // namespace grid

void k_grid_sampler_3d(Call& c) {
  const char* op = "grid_sampler_3d";
  const Tensor &input = c.inputs[0], &grid_t = c.inputs[1];
  grid::Args a = grid::check_args(op, 3, input, grid_t, c.attrs);
  if (a.mode == grid::kBicubic)
    throw ValueError("[grid_sampler_3d] interpolation_mode must be 0 (bilinear) or 1 (nearest); bicubic (2) only "
                     "supports 4-D input");
  DType dt = input.dtype(), cdt = grid::real_dtype(op, dt);
  Tensor x = grid::contig_as(input, cdt), g = grid::contig_as(grid_t, cdt);
  Tensor y = empty_tensor({a.N, a.C, a.out[2], a.out[1], a.out[0]}, cdt);
  if (cdt == DType::Float64) grid::linear_forward<double>(x.data<double>(), g.data<double>(), y.data<double>(), a);
  else grid::linear_forward<float>(x.data<float>(), g.data<float>(), y.data<float>(), a);
  c.outputs = {cdt != dt ? y.to(dt) : y};
}

void k_grid_sampler_3d_backward(Call& c) {
  const char* op = "grid_sampler_3d_backward";
  const Tensor &gout = c.inputs[0], &input = c.inputs[1], &grid_t = c.inputs[2];
  grid::Args a = grid::check_args(op, 3, input, grid_t, c.attrs);
  if (a.mode == grid::kBicubic)
    throw ValueError("[grid_sampler_3d_backward] interpolation_mode must be 0 (bilinear) or 1 (nearest), got 2");
  const Shape& mask = c.attrs[3].list;
  bool want_i = mask.empty() || mask[0], want_g = mask.size() < 2 || mask[1];
  // Under create_graph this call is a node with a derivative, and ndgrad's engine needs every output
  // of a node to exist: a masked-off output is then zeros instead of undefined.
  bool keep_all = grad_enabled();
  Shape expect{a.N, a.C, a.out[2], a.out[1], a.out[0]};
  if (gout.sizes() != expect)
    throw ValueError(std::string("[") + op + "] expected grad_output of shape " + shape_str(expect) + ", got " +
                     shape_str(gout.sizes()));
  DType dt = input.dtype(), cdt = grid::real_dtype(op, dt);
  Tensor go = grid::contig_as(gout, cdt), x = grid::contig_as(input, cdt), g = grid::contig_as(grid_t, cdt);
  Tensor gi = want_i ? grid::zeros_of(input.sizes(), cdt) : Tensor();
  Tensor gg = want_g ? empty_tensor(grid_t.sizes(), cdt) : Tensor();
  if (want_g && a.N * a.out_plane == 0) gg = grid::zeros_of(grid_t.sizes(), cdt);
  if (cdt == DType::Float64)
    grid::linear_backward<double>(go.data<double>(), x.data<double>(), g.data<double>(), want_i ? gi.data<double>() : nullptr,
                                  want_g ? gg.data<double>() : nullptr, a);
  else
    grid::linear_backward<float>(go.data<float>(), x.data<float>(), g.data<float>(), want_i ? gi.data<float>() : nullptr,
                                 want_g ? gg.data<float>() : nullptr, a);
  grid::set_backward_outputs(c, gi, gg, dt, keep_all, input.sizes(), grid_t.sizes());
}

}  // namespace nd
