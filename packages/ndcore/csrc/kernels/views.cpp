// View kernels: metadata-only results sharing the input's storage (see Note [Views share
// storage and versions]); they run unchanged on every device. Also the copying movement ops
// (cat, stack, flip, diag, tril, triu).
#include <algorithm>
#include <cstring>
#include <numeric>

#include "loops.h"

namespace nd {
namespace {

void set_view(Call& c, Shape sizes, Shape strides, int64_t offset) {
  const Tensor& src = c.inputs[0];
  Tensor v = src.view_of(std::move(sizes), std::move(strides), offset);
  v.impl()->base = src.impl()->base ? src.impl()->base : src.impl_ptr();
  c.outputs = {v};
}

Shape infer_size(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) throw ValueError(std::string("[") + op + "] only one dimension can be inferred");
      infer = (int64_t)i;
    } else if (out[i] < 0) {
      throw ValueError(std::string("[") + op + "] invalid shape dimension " + std::to_string(out[i]));
    } else {
      known *= out[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw ValueError(std::string("[") + op + "] shape " + shape_str(shape) + " is invalid for input of size " + std::to_string(numel));
    out[infer] = numel / known;
  } else if (known != numel) {
    throw ValueError(std::string("[") + op + "] shape " + shape_str(shape) + " is invalid for input of size " + std::to_string(numel));
  }
  return out;
}

// Strides that view `t` with `shape` without copying, if they exist (torch's computeStride).
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  const Shape &os = t.sizes(), &ost = t.strides();
  out.assign(shape.size(), 0);
  if (t.numel() == 0 || os.empty()) {  // empty or 0-d: any shape of the same numel is a view
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = (int64_t)shape.size() - 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = (int64_t)os.size() - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk_base_stride = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

void k_as_strided(Call& c) {
  const Tensor& x = c.inputs[0];
  const Shape &size = c.attrs[0].list, &stride = c.attrs[1].list;
  if (size.size() != stride.size())
    throw ValueError("[as_strided] size " + shape_str(size) + " and stride " + shape_str(stride) + " differ in length");
  int64_t off = c.attrs[2].is_none() ? x.offset() : c.attrs[2].i;
  int64_t max_el = off;
  for (size_t i = 0; i < size.size(); ++i) {
    if (size[i] < 0 || stride[i] < 0) throw ValueError("[as_strided] negative size or stride: size " + shape_str(size) + ", stride " + shape_str(stride));
    if (size[i] == 0) { max_el = -1; break; }
    int64_t span;
    if (__builtin_mul_overflow(size[i] - 1, stride[i], &span) || __builtin_add_overflow(max_el, span, &max_el))
      throw ValueError("[as_strided] size " + shape_str(size) + " and stride " + shape_str(stride) + " overflow int64");
  }
  int64_t cap = (int64_t)(x.storage().nbytes / x.itemsize());
  if (off < 0 || max_el >= cap)
    throw ValueError("[as_strided] size " + shape_str(size) + ", stride " + shape_str(stride) + " and offset " +
                     std::to_string(off) + " reach element " + std::to_string(max_el) + " outside the storage of " +
                     std::to_string(cap) + " elements");
  set_view(c, size, stride, off);
}

void k_view(Call& c) {
  const Tensor& x = c.inputs[0];
  Shape shape = infer_size(c.attrs[0].list, x.numel(), "view");
  Shape st;
  if (!view_strides(x, shape, st))
    throw ValueError("[view] size " + shape_str(shape) + " is not compatible with input tensor's size " + shape_str(x.sizes()) +
                     " and stride " + shape_str(x.strides()) + " (at least one dimension spans across two contiguous subspaces); use .reshape(...) instead");
  set_view(c, shape, st, x.offset());
}

void k_reshape(Call& c) {
  const Tensor& x = c.inputs[0];
  Shape shape = infer_size(c.attrs[0].list, x.numel(), "reshape");
  Shape st;
  if (view_strides(x, shape, st)) return set_view(c, shape, st, x.offset());
  Tensor cc = nd::clone(x, "contiguous_format");  // clone alone keeps x's layout (Note [Memory formats])
  c.outputs = {cc.view_of(shape, contiguous_strides(shape), cc.offset())};
}

// Reinterprets the bits as another dtype of the same size (torch's Tensor.view(dtype)).
void k_view_dtype(Call& c) {
  const Tensor& x = c.inputs[0];
  if (c.attrs[0].is_none()) throw TypeError("[view] expected a dtype");
  DType dt = c.attrs[0].to_dtype();
  if (itemsize(dt) != x.itemsize())
    throw ValueError(std::string("[view] viewing a tensor of ") + dtype_name(x.dtype()) + " as " + dtype_name(dt) +
                     " needs the same element size (" + std::to_string(x.itemsize()) + " vs " + std::to_string(itemsize(dt)) + " bytes)");
  Tensor v = x.view_of(x.sizes(), x.strides(), x.offset());
  v.impl()->dtype = dt;
  v.impl()->base = x.impl()->base ? x.impl()->base : x.impl_ptr();
  c.outputs = {v};
}

void k_alias(Call& c) { set_view(c, c.inputs[0].sizes(), c.inputs[0].strides(), c.inputs[0].offset()); }

void k_permute(Call& c) {
  const Tensor& x = c.inputs[0];
  const Shape& dims = c.attrs[0].list;
  if ((int64_t)dims.size() != x.dim())
    throw ValueError("[permute] number of dims " + std::to_string(dims.size()) + " doesn't match the tensor's " + std::to_string(x.dim()) + " (shape " + shape_str(x.sizes()) + ")");
  Shape sz(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    if (seen[d]) throw ValueError("[permute] repeated dim " + std::to_string(dims[i]) + " in " + shape_str(dims));
    seen[d] = true;
    sz[i] = x.sizes()[d];
    st[i] = x.strides()[d];
  }
  set_view(c, sz, st, x.offset());
}

void k_transpose(Call& c) {
  const Tensor& x = c.inputs[0];
  Shape sz = x.sizes(), st = x.strides();
  if (x.dim() == 0) return set_view(c, sz, st, x.offset());
  int64_t a = wrap_dim(c.attrs[0].i, x.dim(), "transpose"), b = wrap_dim(c.attrs[1].i, x.dim(), "transpose");
  std::swap(sz[a], sz[b]);
  std::swap(st[a], st[b]);
  set_view(c, sz, st, x.offset());
}

void k_expand(Call& c) {
  const Tensor& x = c.inputs[0];
  const Shape& want = c.attrs[0].list;
  if (want.size() < (size_t)x.dim())
    throw ValueError("[expand] the number of sizes provided (" + std::to_string(want.size()) + ") must be greater or equal to the number of dimensions in the tensor (" + std::to_string(x.dim()) + ")");
  Shape sz(want.size()), st(want.size());
  size_t lead = want.size() - x.dim();
  for (size_t i = 0; i < want.size(); ++i) {
    if (i < lead) {
      if (want[i] < 0) throw ValueError("[expand] -1 is not allowed in a leading, non-existing dimension");
      sz[i] = want[i];
      st[i] = 0;
      continue;
    }
    int64_t have = x.sizes()[i - lead];
    int64_t w = want[i] == -1 ? have : want[i];
    if (have == w) {
      sz[i] = w;
      st[i] = x.strides()[i - lead];
    } else if (have == 1) {
      sz[i] = w;
      st[i] = 0;
    } else {
      throw ValueError("[expand] the expanded size of the tensor (" + std::to_string(w) + ") must match the existing size (" +
                       std::to_string(have) + ") at non-singleton dimension " + std::to_string(i) + ": target " + shape_str(want) + ", tensor " + shape_str(x.sizes()));
    }
  }
  set_view(c, sz, st, x.offset());
}

void k_squeeze(Call& c) {
  const Tensor& x = c.inputs[0];
  std::vector<bool> drop(x.dim(), false);
  if (c.attrs[0].is_none()) {
    for (int64_t d = 0; d < x.dim(); ++d) drop[d] = x.sizes()[d] == 1;
  } else {
    for (auto d : c.attrs[0].list) {
      if (x.dim() == 0) { wrap_dim(d, 0, "squeeze"); continue; }
      int64_t w = wrap_dim(d, x.dim(), "squeeze");
      drop[w] = x.sizes()[w] == 1;
    }
  }
  Shape sz, st;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!drop[d]) { sz.push_back(x.sizes()[d]); st.push_back(x.strides()[d]); }
  set_view(c, sz, st, x.offset());
}

void k_unsqueeze(Call& c) {
  const Tensor& x = c.inputs[0];
  int64_t d = wrap_dim(c.attrs[0].i, x.dim() + 1, "unsqueeze");
  Shape sz = x.sizes(), st = x.strides();
  int64_t new_st = d < x.dim() ? sz[d] * st[d] : 1;
  sz.insert(sz.begin() + d, 1);
  st.insert(st.begin() + d, new_st);
  set_view(c, sz, st, x.offset());
}

void k_slice(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.dim() == 0) throw IndexError("[slice] cannot slice a 0-d tensor");
  int64_t d = wrap_dim(c.attrs[0].i, x.dim(), "slice");
  int64_t n = x.sizes()[d], step = c.attrs[3].i;
  if (step <= 0) throw ValueError("[slice] step must be positive, got " + std::to_string(step));
  int64_t start = c.attrs[1].is_none() ? 0 : c.attrs[1].i, end = c.attrs[2].is_none() ? n : c.attrs[2].i;
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sz = x.sizes(), st = x.strides();
  sz[d] = (end - start + step - 1) / step;
  st[d] *= step;
  set_view(c, sz, st, x.offset() + start * x.strides()[d]);
}

void k_select(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.dim() == 0) throw IndexError("[select] invalid index of a 0-dim tensor");
  int64_t d = wrap_dim(c.attrs[0].i, x.dim(), "select");
  int64_t n = x.sizes()[d], i = c.attrs[1].i;
  if (i < -n || i >= n)
    throw IndexError("[select] index " + std::to_string(i) + " is out of bounds for dimension " + std::to_string(d) + " with size " + std::to_string(n));
  if (i < 0) i += n;
  Shape sz = x.sizes(), st = x.strides();
  int64_t off = x.offset() + i * st[d];
  sz.erase(sz.begin() + d);
  st.erase(st.begin() + d);
  set_view(c, sz, st, off);
}

void k_diagonal(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.dim() < 2) throw ValueError("[diagonal] expected a tensor with at least 2 dims, got shape " + shape_str(x.sizes()));
  int64_t off = c.attrs[0].i;
  int64_t d1 = wrap_dim(c.attrs[1].i, x.dim(), "diagonal"), d2 = wrap_dim(c.attrs[2].i, x.dim(), "diagonal");
  if (d1 == d2) throw ValueError("[diagonal] dim1 and dim2 cannot be the same (" + std::to_string(d1) + ")");
  int64_t len, start = x.offset();
  if (off >= 0) {
    len = std::max<int64_t>(std::min(x.sizes()[d1], x.sizes()[d2] - off), 0);
    if (len > 0) start += off * x.strides()[d2];
  } else {
    len = std::max<int64_t>(std::min(x.sizes()[d1] + off, x.sizes()[d2]), 0);
    if (len > 0) start -= off * x.strides()[d1];
  }
  Shape sz, st;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != d1 && d != d2) { sz.push_back(x.sizes()[d]); st.push_back(x.strides()[d]); }
  sz.push_back(len);
  st.push_back(x.strides()[d1] + x.strides()[d2]);
  set_view(c, sz, st, start);
}

void k_unfold(Call& c) {
  const Tensor& x = c.inputs[0];
  int64_t d = x.dim() == 0 ? 0 : wrap_dim(c.attrs[0].i, x.dim(), "unfold");
  int64_t size = c.attrs[1].i, step = c.attrs[2].i;
  int64_t n = x.dim() == 0 ? 1 : x.sizes()[d];
  if (size > n) throw ValueError("[unfold] maximum size for tensor at dimension " + std::to_string(d) + " is " + std::to_string(n) + " but size is " + std::to_string(size));
  if (step <= 0) throw ValueError("[unfold] step must be positive, got " + std::to_string(step));
  Shape sz = x.sizes(), st = x.strides();
  int64_t dst = x.dim() == 0 ? 1 : st[d];
  if (x.dim() > 0) {
    sz[d] = (n - size) / step + 1;
    st[d] = dst * step;
  }
  sz.push_back(size);
  st.push_back(dst);
  set_view(c, sz, st, x.offset());
}

// ---- copying movement ops ----------------------------------------------------------------------
namespace {
// Note [Concatenation fast path]
// cat and stack write a contiguous output that is, per outer index (the dims before `d`), the
// inputs' blocks laid end to end. A contiguous input of the output's dtype is one block of
// `n_k * post` elements per outer index, so it is copied with memcpy, walking the flat output
// range [b, e) segment by segment; parallel_for splits that range when it is large, so a few
// big inputs and many small ones both use every thread. Other inputs (strided, another dtype,
// or any input when out= is not contiguous) go through copy_into on a view of their slot.
struct JoinInput {
  const char* src;  // null: copied separately (or empty)
  int64_t block;    // elements per outer index
};

void join_copy(Call& c, const Shape& shape, int64_t d, bool new_dim, DType dt, const Tensor* skip_ref) {
  const auto& ts = c.inputs;
  Tensor out = prepare_output(c, shape, dt, dt, ts[0].device());
  const size_t K = ts.size();
  int64_t outer = 1, post = 1;
  for (int64_t i = 0; i < d; ++i) outer *= shape[i];
  for (size_t i = d + 1; i < shape.size(); ++i) post *= shape[i];
  const bool out_dense = out.is_contiguous();
  const Shape& ost = out.strides();
  std::vector<JoinInput> parts(K);
  std::vector<int64_t> prefix(K + 1, 0);  // element offset of each block within an outer row
  bool any_fast = false;
  for (size_t k = 0; k < K; ++k) {
    const Tensor& t = ts[k];
    const bool legacy_empty = skip_ref && t.dim() == 1 && t.numel() == 0 && skip_ref->dim() != 1;
    const int64_t n = new_dim ? 1 : (legacy_empty ? 0 : t.sizes()[d]);
    parts[k] = {nullptr, n * post};
    prefix[k + 1] = prefix[k] + n * post;
    if (n == 0 || post == 0 || outer == 0) continue;
    if (out_dense && t.dtype() == dt && t.is_contiguous()) {
      parts[k].src = t.data_ptr();
      any_fast = true;
      continue;
    }
    const int64_t off = out.offset() + prefix[k] / post * ost[d];
    if (new_dim) {
      Shape st = ost;
      st.erase(st.begin() + d);
      copy_into(out.view_of(t.sizes(), st, off), t);
    } else {
      Shape sz = shape;
      sz[d] = n;
      copy_into(out.view_of(sz, ost, off), t);
    }
  }
  if (any_fast) {
    const int64_t row = prefix[K], total = outer * row;
    const size_t isz = itemsize(dt);
    char* dst = out.data_ptr();
    parallel_for(total, kGrainCheap, [&](int64_t b, int64_t e) {
      int64_t o = b / row, r = b % row;
      size_t k = std::upper_bound(prefix.begin(), prefix.end(), r) - prefix.begin() - 1;
      for (int64_t pos = b; pos < e;) {
        const int64_t within = r - prefix[k];
        const int64_t len = std::min(parts[k].block - within, e - pos);
        if (parts[k].src) std::memcpy(dst + pos * isz, parts[k].src + (o * parts[k].block + within) * isz, len * isz);
        pos += len;
        r += len;
        if (r == row) {
          r = 0;
          ++o;
          k = 0;
        } else {
          ++k;
        }
        while (k < K && parts[k].block == 0) ++k;
      }
    });
  }
  finish_output(c, out);
}
}  // namespace

void k_cat(Call& c) {
  const auto& ts = c.inputs;
  if (ts.empty()) throw ValueError("[cat] expected a non-empty list of tensors");
  // torch skips legacy 1-D empty tensors when joining
  const Tensor* ref = nullptr;
  for (const auto& t : ts)
    if (!(t.dim() == 1 && t.numel() == 0)) { ref = &t; break; }
  if (!ref) ref = &ts[0];
  if (ref->dim() == 0) throw ValueError("[cat] zero-dimensional tensor cannot be concatenated");
  int64_t d = wrap_dim(c.attrs[1].i, ref->dim(), "cat");
  DType dt = ts[0].dtype();
  for (const auto& t : ts) dt = promote_types(dt, t.dtype());
  Shape shape = ref->sizes();
  int64_t total = 0;
  for (size_t k = 0; k < ts.size(); ++k) {
    const Tensor& t = ts[k];
    if (t.dim() == 1 && t.numel() == 0 && ref->dim() != 1) continue;
    if (t.dim() != ref->dim())
      throw ValueError("[cat] tensors must have the same number of dimensions: got " + std::to_string(ref->dim()) + " and " + std::to_string(t.dim()) + " (tensor " + std::to_string(k) + ")");
    for (int64_t i = 0; i < t.dim(); ++i)
      if (i != d && t.sizes()[i] != shape[i])
        throw ValueError("[cat] sizes of tensors must match except in dimension " + std::to_string(d) + ": expected size " + std::to_string(shape[i]) + " but got size " + std::to_string(t.sizes()[i]) + " for tensor number " + std::to_string(k));
    total += t.sizes()[d];
  }
  shape[d] = total;
  join_copy(c, shape, d, false, dt, ref);
}

void k_stack(Call& c) {
  const auto& ts = c.inputs;
  if (ts.empty()) throw ValueError("[stack] expects a non-empty list of tensors");
  const Shape& s0 = ts[0].sizes();
  DType dt = ts[0].dtype();
  for (size_t k = 0; k < ts.size(); ++k) {
    if (ts[k].sizes() != s0)
      throw ValueError("[stack] expects each tensor to be equal size, but got " + shape_str(s0) + " at entry 0 and " + shape_str(ts[k].sizes()) + " at entry " + std::to_string(k));
    dt = promote_types(dt, ts[k].dtype());
  }
  const int64_t d = wrap_dim(c.attrs[1].i, (int64_t)s0.size() + 1, "stack");
  Shape shape = s0;
  shape.insert(shape.begin() + d, (int64_t)ts.size());
  join_copy(c, shape, d, true, dt, nullptr);
}

void k_flip(Call& c) {
  const Tensor& x = c.inputs[0];
  Shape st = x.strides();
  int64_t off = x.offset();
  std::vector<bool> seen(std::max<int64_t>(x.dim(), 1), false);
  for (auto d0 : c.attrs[0].list) {
    int64_t d = wrap_dim(d0, x.dim(), "flip");
    if (seen[d]) throw ValueError("[flip] dim " + std::to_string(d0) + " appears multiple times in the list of dims");
    seen[d] = true;
    if (x.dim() == 0) continue;
    if (x.sizes()[d] > 0) off += (x.sizes()[d] - 1) * st[d];
    st[d] = -st[d];
  }
  Tensor rev = x.view_of(x.sizes(), st, off);
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), x.dtype(), x.device());
  copy_into(out, rev);
  finish_output(c, out);
}

void k_diag(Call& c) {
  const Tensor& x = c.inputs[0];
  int64_t k = c.attrs[0].i;
  if (x.dim() == 1) {
    int64_t n = x.sizes()[0] + std::abs(k);
    Tensor out = prepare_output(c, {n, n}, x.dtype(), x.dtype(), x.device());
    nd::zero_(out);
    copy_into(nd::diagonal(out, k, 0, 1), x);
    return finish_output(c, out);
  }
  if (x.dim() != 2) throw ValueError("[diag] expected a 1-D or 2-D tensor, got shape " + shape_str(x.sizes()));
  Tensor dg = nd::diagonal(x, k, 0, 1);
  Tensor out = prepare_output(c, dg.sizes(), x.dtype(), x.dtype(), x.device());
  copy_into(out, dg);
  finish_output(c, out);
}

namespace {
template <bool Lower>
void tri(Call& c) {
  const Tensor& x = c.inputs[0];
  if (x.dim() < 2) throw ValueError(std::string("[") + c.name() + "] expected a tensor with at least 2 dims, got shape " + shape_str(x.sizes()));
  int64_t k = c.attrs[0].i;
  Tensor out = prepare_output(c, x.sizes(), x.dtype(), x.dtype(), x.device());
  if (out.impl() != x.impl()) copy_into(out, x);
  int64_t R = x.sizes()[x.dim() - 2], C = x.sizes()[x.dim() - 1];
  int64_t B = x.numel() / std::max<int64_t>(R * C, 1);
  Shape sz{B, R, C};
  // zero the masked triangle through strided rows of `out`
  Tensor o3 = out.is_contiguous() ? out.view_of(sz, {R * C, C, 1}, out.offset()) : Tensor();
  if (!o3.defined()) throw ValueError(std::string("[") + c.name() + "] expects a contiguous output");
  ND_DISPATCH_ALL(x.dtype(), c.name(), [&] {
    scalar_t* d = o3.data<scalar_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < R; ++i)
        for (int64_t j = 0; j < C; ++j) {
          bool keep = Lower ? (j - i <= k) : (j - i >= k);
          if (!keep) d[(b * R + i) * C + j] = scalar_t(0);
        }
  });
  finish_output(c, out);
}
}  // namespace
void k_tril(Call& c) { tri<true>(c); }
void k_triu(Call& c) { tri<false>(c); }

// Tensor.repeat: the (padded) input viewed with a stride-0 dim in front of each of its dims,
// copied into the output viewed as (r0, s0, r1, s1, ...).
void k_repeat(Call& c) {
  const Tensor& x = c.inputs[0];
  const Shape& r = c.attrs[0].list;
  if ((int64_t)r.size() < x.dim())
    throw ValueError("[repeat] number of dimensions of repeat dims (" + std::to_string(r.size()) +
                     ") can not be smaller than number of dimensions of tensor (" + std::to_string(x.dim()) + ")");
  for (auto v : r)
    if (v < 0) throw ValueError("[repeat] repeats must be non-negative, got " + shape_str(r));
  const int64_t pad = (int64_t)r.size() - x.dim();
  Shape src_sz, src_st, out_sz;
  for (int64_t i = 0; i < (int64_t)r.size(); ++i) {
    int64_t s = i < pad ? 1 : x.sizes()[i - pad], st = i < pad ? 0 : x.strides()[i - pad];
    src_sz.insert(src_sz.end(), {r[i], s});
    src_st.insert(src_st.end(), {0, st});
    out_sz.push_back(r[i] * s);
  }
  Tensor out = prepare_output(c, out_sz, x.dtype(), x.dtype(), x.device());
  Tensor tmp = out.is_contiguous() ? out : empty_tensor(out_sz, x.dtype());
  copy_into(tmp.view_of(src_sz, contiguous_strides(src_sz), tmp.offset()), x.view_of(src_sz, src_st, x.offset()));
  if (tmp.impl() != out.impl()) copy_into(out, tmp);
  finish_output(c, out);
}

// diag_embed: zeros with the last dim of the input written on the (offset) diagonal of the
// output dims dim1 and dim2, which count in the output's ndim (input ndim + 1).
void k_diag_embed(Call& c) {
  const Tensor& x = c.inputs[0];
  const int64_t offset = c.attrs[0].i;
  if (x.dim() == 0) throw ValueError("[diag_embed] expected a tensor with at least 1 dimension, got shape ()");
  const int64_t ndim = x.dim() + 1;
  const int64_t d1 = wrap_dim(c.attrs[1].i, ndim, "diag_embed"), d2 = wrap_dim(c.attrs[2].i, ndim, "diag_embed");
  if (d1 == d2)
    throw ValueError("[diag_embed] diagonal dimensions cannot be identical " + std::to_string(c.attrs[1].i) + ", " +
                     std::to_string(c.attrs[2].i));
  const int64_t n = x.sizes().back() + std::abs(offset);
  Shape out_sz;
  for (int64_t d = 0, k = 0; d < ndim; ++d) out_sz.push_back(d == d1 || d == d2 ? n : x.sizes()[k++]);
  Tensor out = prepare_output(c, out_sz, x.dtype(), x.dtype(), x.device());
  nd::zero_(out);
  copy_into(nd::diagonal(out, offset, d1, d2), x);
  finish_output(c, out);
}

}  // namespace nd
