// Indexing kernels: advanced indexing (index, index_put_), gather/scatter, index_select, take,
// index_add/index_copy, masked_fill, nonzero.
#include <cstring>

#include "loops.h"

namespace nd {
namespace {

// Element offsets (in elements) of every position of a strided sub-space, in C order.
std::vector<int64_t> offsets_of(const Shape& sizes, const Shape& strides) {
  int64_t n = numel_of(sizes);
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, off = 0;
    for (int64_t d = (int64_t)sizes.size() - 1; d >= 0; --d) {
      off += (rem % sizes[d]) * strides[d];
      rem /= sizes[d];
    }
    out[i] = off;
  }
  return out;
}

// Whether a strided sub-space is one dense block in C order (its offsets are 0, 1, ..., n-1).
bool dense_block(const Shape& sizes, const Shape& strides) {
  int64_t expected = 1;
  for (int64_t d = (int64_t)sizes.size() - 1; d >= 0; --d) {
    if (sizes[d] == 1) continue;
    if (sizes[d] == 0) return true;
    if (strides[d] != expected) return false;
    expected *= sizes[d];
  }
  return true;
}

// Note [Row gathers]
// index_select, take and self[idx] all copy, for each outer position p and selected position m,
// a row of Q elements starting at element outer[p] + mid[m] of the source into row p * M + m of
// a contiguous output. A row that is dense in the source is one memcpy (one typed store when
// Q == 1), so gathering 64 rows of 784 floats costs 64 small memcpys, not 50k element copies.
// Only a strided row walks `inner` offsets. parallel_for splits rows when the copy is large.
struct RowGather {
  const char* src;
  char* dst;
  const int64_t* outer;
  int64_t P;
  const int64_t* mid;
  int64_t M;
  const int64_t* inner;  // null: each row is dense in the source
  int64_t Q;
};

template <size_t S>
void gather_rows_sized(const RowGather& g) {
  const int64_t grain = std::max<int64_t>(1, kGrainCheap / std::max<int64_t>(g.Q, 1));
  const int64_t row_bytes = g.Q * (int64_t)S;
  parallel_for(g.P * g.M, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e;) {  // one outer position at a time: [m0, m1) of its rows
      const int64_t p = r / g.M, m0 = r % g.M, m1 = std::min(g.M, m0 + (e - r));
      const char* sp = g.src + g.outer[p] * (int64_t)S;
      char* o = g.dst + r * row_bytes;
      if (!g.inner && g.Q == 1) {
        for (int64_t m = m0; m < m1; ++m) std::memcpy(o + (m - m0) * (int64_t)S, sp + g.mid[m] * (int64_t)S, S);
      } else if (!g.inner) {
        for (int64_t m = m0; m < m1; ++m) std::memcpy(o + (m - m0) * row_bytes, sp + g.mid[m] * (int64_t)S, row_bytes);
      } else {
        for (int64_t m = m0; m < m1; ++m) {
          const char* s = sp + g.mid[m] * (int64_t)S;
          char* om = o + (m - m0) * row_bytes;
          for (int64_t q = 0; q < g.Q; ++q) std::memcpy(om + q * (int64_t)S, s + g.inner[q] * (int64_t)S, S);
        }
      }
      r += m1 - m0;
    }
  });
}

void gather_rows(const RowGather& g, size_t itemsize) {
  if (g.P * g.M == 0 || g.Q == 0) return;
  switch (itemsize) {
    case 1: return gather_rows_sized<1>(g);
    case 2: return gather_rows_sized<2>(g);
    case 4: return gather_rows_sized<4>(g);
    default: return gather_rows_sized<8>(g);
  }
}

// The index values of `index` as int64, each checked against [-n, n) and wrapped to [0, n).
// `what` ends the out-of-bounds message ("for dimension 0 with size 5").
std::vector<int64_t> checked_indices(const Tensor& index, int64_t n, const char* op, const std::string& what) {
  Tensor ic = cast_to(index, DType::Int64).contiguous();
  const int64_t* ip = ic.data<int64_t>();
  const int64_t L = ic.numel();
  std::vector<int64_t> out(L);
  bool ok = true;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t v = ip[i];
    ok &= v >= -n && v < n;
    out[i] = v < 0 ? v + n : v;
  }
  if (!ok)
    for (int64_t i = 0; i < L; ++i)
      if (ip[i] < -n || ip[i] >= n)
        throw IndexError(std::string("[") + op + "] index " + std::to_string(ip[i]) + " is out of bounds " + what);
  return out;
}

// Layout of self[indices] (NumPy advanced indexing): which dims are indexed, the broadcast
// index shape, and the element offsets of the pre / indexed / post parts.
struct AdvIndex {
  Shape out_shape;
  std::vector<int64_t> pre, mid, post;  // out index (p, m, q) reads element pre[p] + mid[m] + post[q]
  int64_t Q = 1;                        // post's length; post stays empty when dense_post
  bool dense_post = false;
};

// With allow_dense_post, a post sub-space that is one dense block is left as `Q` alone (see
// Note [Row gathers]) instead of Q offsets.
AdvIndex plan_index(const Tensor& self, std::vector<Tensor> idx, const char* op, bool allow_dense_post = false) {
  // bool masks become one long index per masked dim
  std::vector<Tensor> expanded;
  for (auto& t : idx) {
    if (t.defined() && (t.dtype() == DType::Bool || t.dtype() == DType::UInt8)) {
      Tensor nz = nd::nonzero(t);  // [n, k]
      for (int64_t j = 0; j < t.dim(); ++j) expanded.push_back(nd::select(nz, 1, j));
      if (t.dim() == 0) expanded.push_back(Tensor());  // 0-d mask is handled below by the caller
    } else {
      expanded.push_back(t);
    }
  }
  idx = expanded;
  if ((int64_t)idx.size() > self.dim())
    throw IndexError(std::string("[") + op + "] too many indices for tensor of dimension " + std::to_string(self.dim()) + " (got " + std::to_string(idx.size()) + ")");
  std::vector<int64_t> dims;
  Shape bshape;
  bool first = true;
  for (size_t d = 0; d < idx.size(); ++d) {
    if (!idx[d].defined()) continue;
    if (is_floating(idx[d].dtype()))
      throw IndexError(std::string("[") + op + "] tensors used as indices must be long, int, byte or bool tensors, got " + dtype_name(idx[d].dtype()));
    bshape = first ? idx[d].sizes() : broadcast_shapes(bshape, idx[d].sizes(), op);
    first = false;
    dims.push_back((int64_t)d);
  }
  bool adjacent = true;
  for (size_t k = 1; k < dims.size(); ++k) adjacent &= dims[k] == dims[k - 1] + 1;
  AdvIndex a;
  Shape pre_sz, pre_st, post_sz, post_st;
  std::vector<bool> is_idx(self.dim(), false);
  for (auto d : dims) is_idx[d] = true;
  for (int64_t d = 0; d < self.dim(); ++d) {
    if (is_idx[d]) continue;
    if (adjacent && !dims.empty() && d < dims[0]) { pre_sz.push_back(self.sizes()[d]); pre_st.push_back(self.strides()[d]); }
    else { post_sz.push_back(self.sizes()[d]); post_st.push_back(self.strides()[d]); }
  }
  a.pre = offsets_of(pre_sz, pre_st);
  a.Q = numel_of(post_sz);
  a.dense_post = allow_dense_post && dense_block(post_sz, post_st);
  if (!a.dense_post) a.post = offsets_of(post_sz, post_st);
  int64_t nb = numel_of(bshape);
  a.mid.assign(nb, 0);
  for (auto d : dims) {
    Tensor it = cast_to(idx[d].sizes() == bshape ? idx[d] : nd::expand(idx[d], bshape), DType::Int64).contiguous();
    const int64_t* ip = it.data<int64_t>();
    int64_t n = self.sizes()[d], st = self.strides()[d];
    for (int64_t i = 0; i < nb; ++i) {
      int64_t v = ip[i];
      if (v < -n || v >= n)
        throw IndexError(std::string("[") + op + "] index " + std::to_string(v) + " is out of bounds for dimension " + std::to_string(d) + " with size " + std::to_string(n));
      a.mid[i] += (v < 0 ? v + n : v) * st;
    }
  }
  a.out_shape = pre_sz;
  a.out_shape.insert(a.out_shape.end(), bshape.begin(), bshape.end());
  a.out_shape.insert(a.out_shape.end(), post_sz.begin(), post_sz.end());
  return a;
}

std::vector<Tensor> index_list(const Call& c, size_t first, size_t count) {
  return std::vector<Tensor>(c.inputs.begin() + first, c.inputs.begin() + first + count);
}

}  // namespace

void k_index(Call& c) {
  const Tensor& self = c.inputs[0];
  AdvIndex a = plan_index(self, index_list(c, 1, (size_t)c.attrs[0].i), "index", true);
  Tensor out = prepare_output(c, a.out_shape, self.dtype(), self.dtype(), self.device());
  Tensor tmp = out.is_contiguous() ? out : empty_tensor(a.out_shape, self.dtype());
  gather_rows({self.data_ptr(), tmp.data_ptr(), a.pre.data(), (int64_t)a.pre.size(), a.mid.data(), (int64_t)a.mid.size(),
               a.dense_post ? nullptr : a.post.data(), a.Q},
              self.itemsize());
  if (tmp.impl() != out.impl()) copy_into(out, tmp);
  finish_output(c, out);
}

void k_index_put_(Call& c) {
  const Tensor& self = c.inputs[0];
  size_t n_idx = (size_t)c.attrs[0].i;
  Tensor values = c.inputs[1 + n_idx];
  bool accumulate = c.attrs[1].b;
  AdvIndex a = plan_index(self, index_list(c, 1, n_idx), "index_put_");
  Tensor v = cast_to(nd::expand(values, a.out_shape), self.dtype()).contiguous();
  int64_t P = a.pre.size(), M = a.mid.size(), Q = a.post.size();
  ND_DISPATCH_ALL(self.dtype(), "index_put_", [&] {
    scalar_t* dst = self.data<scalar_t>();
    const scalar_t* vs = v.data<scalar_t>();
    // Serial when accumulating: duplicate indices must add up, not race.
    for (int64_t pm = 0; pm < P * M; ++pm) {
      int64_t base = a.pre[pm / M] + a.mid[pm % M];
      for (int64_t q = 0; q < Q; ++q) {
        scalar_t& d = dst[base + a.post[q]];
        if (accumulate) {
          if constexpr (std::is_same_v<scalar_t, bool>) d = d || vs[pm * Q + q];
          else d = scalar_t((typename compute_type<scalar_t>::type)d + (typename compute_type<scalar_t>::type)vs[pm * Q + q]);
        } else {
          d = vs[pm * Q + q];
        }
      }
    }
  });
  c.outputs = {self};
}

namespace {
// For gather/scatter: offsets into `t` of each position of `index`, with dim `dim` replaced
// by the index value (bounds-checked against t's size along dim).
std::vector<int64_t> gather_offsets(const Tensor& t, int64_t dim, const Tensor& index, const char* op) {
  if (index.dim() != t.dim() && !(index.dim() <= 1 && t.dim() <= 1))
    throw ValueError(std::string("[") + op + "] index tensor must have the same number of dimensions as input (" + std::to_string(t.dim()) + "), got shape " + shape_str(index.sizes()));
  for (int64_t d = 0; d < index.dim(); ++d)
    if (d != dim && index.sizes()[d] > t.sizes()[d])
      throw ValueError(std::string("[") + op + "] size of index " + shape_str(index.sizes()) + " exceeds input " + shape_str(t.sizes()) + " at dim " + std::to_string(d));
  if (index.dtype() != DType::Int64)
    throw TypeError(std::string("[") + op + "] expected index dtype int64, got " + dtype_name(index.dtype()));
  Tensor ic = index.contiguous();
  const int64_t* ip = ic.data<int64_t>();
  const int64_t n = ic.numel(), nd_ = index.dim();
  std::vector<int64_t> off(n);
  const int64_t limit = t.dim() == 0 ? 1 : t.sizes()[dim];
  const int64_t dstride = t.dim() == 0 ? 0 : t.strides()[dim];
  // walk index positions in C order with a counter per dim; `base` excludes dim's term
  Shape pos(std::max<int64_t>(nd_, 1), 0);
  int64_t base = 0;
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = ip[i];
    ok &= v >= -limit && v < limit;
    off[i] = base + (v < 0 ? v + limit : v) * dstride;
    for (int64_t d = nd_ - 1; d >= 0; --d) {
      if (d != dim) base += t.strides()[d];
      if (++pos[d] < index.sizes()[d]) break;
      if (d != dim) base -= pos[d] * t.strides()[d];
      pos[d] = 0;
    }
  }
  if (!ok)
    for (int64_t i = 0; i < n; ++i)
      if (ip[i] < -limit || ip[i] >= limit)
        throw IndexError(std::string("[") + op + "] index " + std::to_string(ip[i]) + " is out of bounds for dimension " + std::to_string(dim) + " with size " + std::to_string(limit));
  return off;
}
std::vector<int64_t> plain_offsets(const Tensor& t, const Shape& shape) {
  Shape st(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) st[d] = t.dim() == 0 ? 0 : t.strides()[d];
  return offsets_of(shape, st);
}
}  // namespace

namespace {
// gather's copy in one pass over the index (no offset table): rows of the index's last dim, each
// with the base offset of its leading positions; `sst` are the input's strides per index dim.
template <size_t S>
void gather_sized(const char* src, char* dst, const int64_t* ip, const Shape& isz, const Shape& sst, int64_t dim, int64_t limit) {
  const int64_t last = (int64_t)isz.size() - 1, L = isz[last], rows = numel_of(isz) / std::max<int64_t>(L, 1);
  if (L == 0) return;
  const int64_t dst_stride = sst[dim], inner = dim == last ? 0 : sst[last];
  parallel_for(rows, std::max<int64_t>(1, kGrainCheap / L), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t rem = r, base = 0;
      for (int64_t d = last - 1; d >= 0; --d) {
        const int64_t k = rem % isz[d];
        rem /= isz[d];
        if (d != dim) base += k * sst[d];
      }
      const int64_t* ir = ip + r * L;
      char* o = dst + r * L * (int64_t)S;
      for (int64_t j = 0; j < L; ++j) {
        const int64_t v = ir[j] < 0 ? ir[j] + limit : ir[j];
        std::memcpy(o + j * (int64_t)S, src + (base + j * inner + v * dst_stride) * (int64_t)S, S);
      }
    }
  });
}
}  // namespace

void k_gather(Call& c) {
  const Tensor &self = c.inputs[0], &index = c.inputs[1];
  const int64_t dim = wrap_dim(c.attrs[0].i, self.dim(), "gather");
  if (index.dim() != self.dim() && !(index.dim() <= 1 && self.dim() <= 1))
    throw ValueError("[gather] index tensor must have the same number of dimensions as input (" + std::to_string(self.dim()) + "), got shape " + shape_str(index.sizes()));
  for (int64_t d = 0; d < index.dim(); ++d)
    if (d != dim && index.sizes()[d] > self.sizes()[d])
      throw ValueError("[gather] size of index " + shape_str(index.sizes()) + " exceeds input " + shape_str(self.sizes()) + " at dim " + std::to_string(d));
  if (index.dtype() != DType::Int64) throw TypeError(std::string("[gather] expected index dtype int64, got ") + dtype_name(index.dtype()));
  const int64_t limit = self.dim() == 0 ? 1 : self.sizes()[dim];
  Tensor ic = index.contiguous();
  const int64_t* ip = ic.data<int64_t>();
  const int64_t n = ic.numel();
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= ip[i] >= -limit && ip[i] < limit;
  if (!ok)
    for (int64_t i = 0; i < n; ++i)
      if (ip[i] < -limit || ip[i] >= limit)
        throw IndexError("[gather] index " + std::to_string(ip[i]) + " is out of bounds for dimension " + std::to_string(dim) + " with size " + std::to_string(limit));
  Tensor out = prepare_output(c, index.sizes(), self.dtype(), self.dtype(), self.device());
  Tensor tmp = out.is_contiguous() ? out : empty_tensor(index.sizes(), self.dtype());
  // a 0-d index (or input) reads like a 1-element 1-D one
  const Shape isz = index.dim() == 0 ? Shape{1} : index.sizes();
  Shape sst(isz.size(), 0);
  for (int64_t d = 0; d < self.dim() && d < (int64_t)sst.size(); ++d) sst[d] = self.strides()[d];
  const char* src = self.data_ptr();
  char* dst = tmp.data_ptr();
  switch (self.itemsize()) {
    case 1: gather_sized<1>(src, dst, ip, isz, sst, dim, limit); break;
    case 2: gather_sized<2>(src, dst, ip, isz, sst, dim, limit); break;
    case 4: gather_sized<4>(src, dst, ip, isz, sst, dim, limit); break;
    default: gather_sized<8>(src, dst, ip, isz, sst, dim, limit); break;
  }
  if (tmp.impl() != out.impl()) copy_into(out, tmp);
  finish_output(c, out);
}

namespace {
template <bool Add>
void scatter_kernel(Call& c) {
  const Tensor &self = c.inputs[0], &index = c.inputs[1];
  Tensor src = c.inputs[2];
  int64_t dim = wrap_dim(c.attrs[0].i, self.dim(), c.name());
  Tensor out = prepare_output(c, self.sizes(), self.dtype(), self.dtype(), self.device());
  if (out.impl() != self.impl()) copy_into(out, self);
  if (src.dim() == 0) src = nd::expand(src, index.sizes());
  for (int64_t d = 0; d < index.dim(); ++d)
    if (index.sizes()[d] > src.sizes()[d])
      throw ValueError(std::string("[") + c.name() + "] index " + shape_str(index.sizes()) + " is larger than src " + shape_str(src.sizes()) + " at dim " + std::to_string(d));
  src = cast_to(src, self.dtype());
  auto dst_off = gather_offsets(out, dim, index, c.name());
  auto src_off = plain_offsets(src, index.sizes());
  ND_DISPATCH_ALL(self.dtype(), c.name(), [&] {
    scalar_t* d = out.data<scalar_t>();
    const scalar_t* s = src.data<scalar_t>();
    for (size_t i = 0; i < dst_off.size(); ++i) {
      if constexpr (Add) {
        if constexpr (std::is_same_v<scalar_t, bool>) d[dst_off[i]] = d[dst_off[i]] || s[src_off[i]];
        else d[dst_off[i]] = scalar_t((typename compute_type<scalar_t>::type)d[dst_off[i]] + (typename compute_type<scalar_t>::type)s[src_off[i]]);
      } else {
        d[dst_off[i]] = s[src_off[i]];
      }
    }
  });
  finish_output(c, out);
}
}  // namespace

void k_scatter(Call& c) { scatter_kernel<false>(c); }
void k_scatter_add(Call& c) { scatter_kernel<true>(c); }

void k_index_select(Call& c) {
  const Tensor &self = c.inputs[0], &index = c.inputs[1];
  if (index.dim() > 1) throw ValueError("[index_select] index must be 0-D or 1-D, got shape " + shape_str(index.sizes()));
  if (!is_integral(index.dtype(), false))
    throw TypeError(std::string("[index_select] expected an integer index tensor (int64 or int32), got ") + dtype_name(index.dtype()));
  const int64_t dim = wrap_dim(c.attrs[0].i, self.dim(), "index_select");
  const int64_t n = self.dim() == 0 ? 1 : self.sizes()[dim];
  const auto idx = checked_indices(index, n, "index_select", "for dimension " + std::to_string(dim) + " with size " + std::to_string(n));
  const int64_t L = (int64_t)idx.size();
  if (self.dim() == 0) {
    if (L != 1) throw ValueError("[index_select] a 0-d input takes exactly one index, got " + std::to_string(L));
    Tensor out = prepare_output(c, {}, self.dtype(), self.dtype(), self.device());
    copy_into(out, self);
    return finish_output(c, out);
  }
  Shape shape = self.sizes();
  shape[dim] = L;
  Tensor out = prepare_output(c, shape, self.dtype(), self.dtype(), self.device());
  Tensor tmp = out.is_contiguous() ? out : empty_tensor(shape, self.dtype());
  Shape outer_sz(self.sizes().begin(), self.sizes().begin() + dim), outer_st(self.strides().begin(), self.strides().begin() + dim);
  Shape inner_sz(self.sizes().begin() + dim + 1, self.sizes().end()), inner_st(self.strides().begin() + dim + 1, self.strides().end());
  const auto outer = offsets_of(outer_sz, outer_st);
  const bool dense = dense_block(inner_sz, inner_st);
  const auto inner = dense ? std::vector<int64_t>() : offsets_of(inner_sz, inner_st);
  std::vector<int64_t> mid(L);
  for (int64_t i = 0; i < L; ++i) mid[i] = idx[i] * self.strides()[dim];
  gather_rows({self.data_ptr(), tmp.data_ptr(), outer.data(), (int64_t)outer.size(), mid.data(), L, dense ? nullptr : inner.data(),
               numel_of(inner_sz)},
              self.itemsize());
  if (tmp.impl() != out.impl()) copy_into(out, tmp);
  finish_output(c, out);
}

void k_take(Call& c) {
  const Tensor &self = c.inputs[0], &index = c.inputs[1];
  if (!is_integral(index.dtype(), false))
    throw TypeError(std::string("[take] expected an integer index tensor, got ") + dtype_name(index.dtype()));
  const int64_t n = self.numel();
  auto idx = checked_indices(index, n, "take", "for a tensor with " + std::to_string(n) + " elements");
  if (!self.is_contiguous()) {  // flat position -> element offset of the strided input
    for (auto& v : idx) {
      int64_t rem = v, o = 0;
      for (int64_t d = self.dim() - 1; d >= 0; --d) {
        o += (rem % self.sizes()[d]) * self.strides()[d];
        rem /= self.sizes()[d];
      }
      v = o;
    }
  }
  Tensor out = prepare_output(c, index.sizes(), self.dtype(), self.dtype(), self.device());
  Tensor tmp = out.is_contiguous() ? out : empty_tensor(index.sizes(), self.dtype());
  const int64_t zero = 0;
  gather_rows({self.data_ptr(), tmp.data_ptr(), &zero, 1, idx.data(), (int64_t)idx.size(), nullptr, 1}, self.itemsize());
  if (tmp.impl() != out.impl()) copy_into(out, tmp);
  finish_output(c, out);
}

namespace {
// index_add (Add) and index_copy: out.select(dim, index[i]) (+)= alpha * source.select(dim, i).
// Indices are checked before anything is written, so a failing in-place call leaves self as it was.
template <bool Add>
void index_write(Call& c) {
  const std::string op = std::string(c.name()) + (c.inplace ? "_" : "");
  const Tensor &self = c.inputs[0], &index = c.inputs[1], &source = c.inputs[2];
  const int64_t dim = wrap_dim(c.attrs[0].i, self.dim(), op.c_str());
  if (index.dtype() != DType::Int64 && index.dtype() != DType::Int32)
    throw TypeError("[" + op + "] expected index dtype int64 or int32, got " + dtype_name(index.dtype()));
  if (index.dim() > 1) throw ValueError("[" + op + "] index should have at most 1 dimension, got shape " + shape_str(index.sizes()));
  const int64_t L = index.numel(), n = self.dim() ? self.sizes()[dim] : 1;
  Shape want = self.sizes();
  if (self.dim()) want[dim] = L;
  if (self.dim() ? source.sizes() != want : (source.numel() != 1 || L != 1))
    throw ValueError("[" + op + "] source of shape " + shape_str(source.sizes()) + " must have the shape of self " +
                     shape_str(self.sizes()) + " with the index length " + std::to_string(L) + " along dim " + std::to_string(dim));
  Tensor idx = cast_to(index, DType::Int64).contiguous();
  const int64_t* ip = idx.data<int64_t>();
  for (int64_t i = 0; i < L; ++i)
    if (ip[i] < -n || ip[i] >= n)
      throw IndexError("[" + op + "] index " + std::to_string(ip[i]) + " is out of bounds for dimension " + std::to_string(dim) +
                       " with size " + std::to_string(n));
  Tensor out = prepare_output(c, self.sizes(), self.dtype(), self.dtype(), self.device());
  if (out.impl() != self.impl()) copy_into(out, self);
  Tensor src = cast_to(source, self.dtype());
  Shape sz, ost, sst;
  for (int64_t d = 0; d < self.dim(); ++d) {
    if (d == dim) continue;
    sz.push_back(self.sizes()[d]);
    ost.push_back(out.strides()[d]);
    sst.push_back(src.strides()[d]);
  }
  const auto oo = offsets_of(sz, ost), so = offsets_of(sz, sst);
  const int64_t ostep = self.dim() ? out.strides()[dim] : 0, sstep = src.dim() ? src.strides()[dim] : 0;
  const Value alpha = Add ? c.attrs[1] : Value::from_int(1);
  ND_DISPATCH_ALL(self.dtype(), op.c_str(), [&] {
    using C = typename compute_type<scalar_t>::type;
    const C a = std::is_floating_point_v<C> ? C(alpha.to_double()) : C(alpha.to_int());
    scalar_t* od = out.data<scalar_t>();
    const scalar_t* sd = src.data<scalar_t>();
    for (int64_t i = 0; i < L; ++i) {
      const int64_t t = ip[i] < 0 ? ip[i] + n : ip[i];
      for (size_t q = 0; q < oo.size(); ++q) {
        scalar_t& d = od[t * ostep + oo[q]];
        const scalar_t s = sd[i * sstep + so[q]];
        if constexpr (!Add) d = s;
        else if constexpr (std::is_same_v<scalar_t, bool>) d = d || s;
        else d = scalar_t(C(d) + a * C(s));
      }
    }
  });
  finish_output(c, out);
}
}  // namespace

void k_index_add(Call& c) { index_write<true>(c); }
void k_index_copy(Call& c) { index_write<false>(c); }

void k_masked_fill(Call& c) {
  const Tensor &self = c.inputs[0], &mask = c.inputs[1], &value = c.inputs[2];
  if (mask.dtype() != DType::Bool) throw TypeError(std::string("[masked_fill] expected a bool mask, got ") + dtype_name(mask.dtype()));
  if (value.dim() != 0) throw ValueError("[masked_fill] only supports a 0-dimension value tensor, got shape " + shape_str(value.sizes()));
  broadcast_strides(mask, self.sizes(), "masked_fill");
  Tensor out = prepare_output(c, self.sizes(), self.dtype(), self.dtype(), self.device());
  if (out.impl() != self.impl()) copy_into(out, self);
  Tensor v = cast_to(value, self.dtype());
  StridedLoop<2> loop({out, mask}, self.sizes(), "masked_fill");
  ND_DISPATCH_ALL(self.dtype(), "masked_fill", [&] {
    const scalar_t fill = *v.data<scalar_t>();
    loop.run(
        [&](char** p, const int64_t* s, int64_t n) {
          for (int64_t i = 0; i < n; ++i)
            if (*reinterpret_cast<bool*>(p[1] + i * s[1])) *reinterpret_cast<scalar_t*>(p[0] + i * s[0]) = fill;
        },
        kGrainCheap);
  });
  finish_output(c, out);
}

void k_nonzero(Call& c) {
  const Tensor& x = c.inputs[0];
  Tensor xb = cast_to(x, DType::Bool).contiguous();
  const bool* b = xb.data<bool>();
  int64_t n = xb.numel(), count = 0;
  for (int64_t i = 0; i < n; ++i) count += b[i];
  int64_t nd_ = x.dim();
  Tensor out = empty_tensor({count, nd_}, DType::Int64);
  int64_t* o = out.data<int64_t>();
  for (int64_t i = 0, k = 0; i < n; ++i) {
    if (!b[i]) continue;
    int64_t rem = i;
    for (int64_t d = nd_ - 1; d >= 0; --d) {
      o[k * nd_ + d] = rem % x.sizes()[d];
      rem /= x.sizes()[d];
    }
    ++k;
  }
  if (!c.outputs.empty() && c.outputs[0].defined()) {
    Tensor dst = prepare_output(c, out.sizes(), DType::Int64, DType::Int64, x.device());
    copy_into(dst, out);
    return finish_output(c, dst);
  }
  c.outputs = {out};
}

}  // namespace nd
