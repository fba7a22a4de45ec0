"""Helpers the table's derivative formulas call (`_*_backward`). Each is written in nd ops, so
gradients run on any device and stay differentiable for higher-order derivatives."""
from __future__ import annotations

import math

import ndcore as nd
from ndcore import _C, _nn

__all__ = [
    "_mm_mat2_grad",
    "_sum_to", "_expand_reduced", "_minmax_backward", "_index_reduce_backward", "_prod_backward",
    "_cumprod_backward", "_matmul_backward", "_slice_backward", "_select_backward", "_as_strided_backward",
    "_index_backward", "_index_put_self_backward", "_index_put_values_backward", "_gather_backward",
    "_index_select_backward", "_cat_backward", "_inverse_perm", "_diagonal_backward", "_unfold_backward",
    "_diag_backward", "_clamp_backward", "_per_input", "_scaled", "_gelu_double_backward",
    "_layer_norm_grads", "_fused_attention_grads", "_bce_double_backward",
    "_bce_logits_double_backward", "_double_backward_not_implemented", "_grid_sample_composite",
    "_grid_sampler_2d_double_backward",
]


def _per_input(grads, n):
    return [None] * n if grads is None else list(grads)


def _sum_to(g, shape):
    """Sums the broadcast dims of ``g`` away so it has ``shape``."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.dim() - len(shape)
    inner = [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
    if not inner and lead:
        # a fresh tensor, not a reshaped view: AccumulateGrad can keep it as .grad (bias grads)
        return g.sum(list(range(lead)))
    dims = list(range(lead)) + inner
    if dims:
        g = g.sum(dims, keepdim=True)
    return g.reshape(shape)


def _reduced_dims(dim, ndim):
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted(d % max(ndim, 1) for d in dims)


def _expand_reduced(grad, self, dim, keepdim):
    """Broadcasts the gradient of a reduction back over the reduced dims of ``self``."""
    if self.dim() == 0:
        return grad.reshape(())
    dims = _reduced_dims(dim, self.dim())
    g = grad
    if not keepdim:
        for d in dims:
            g = g.unsqueeze(d)
    return g.expand(self.shape)


def _minmax_backward(grad, self, result, dim, keepdim):
    # ties share the gradient evenly, as torch's amax/amin do
    r = _expand_reduced(result, self, dim, keepdim)
    mask = (self == r).logical_or(self.isnan().logical_and(r.isnan())).to(grad.dtype)  # a NaN max is its NaN
    count = mask.sum(_reduced_dims(dim, self.dim()) if self.dim() else None, keepdim=True)
    return _expand_reduced(grad, self, dim, keepdim) * mask / count


def _index_reduce_backward(grad, self, indices, dim, keepdim):
    g, idx = (grad, indices) if keepdim else (grad.unsqueeze(dim), indices.unsqueeze(dim))
    return nd.zeros(*self.shape, dtype=grad.dtype).scatter_add(dim, idx, g)


def _prod_backward(grad, self, result, dim, keepdim):
    if isinstance(dim, (list, tuple)):  # the kernel normalises dim to a one-element list
        dim = dim[0] if dim else None
    if dim is None:
        x, d, g = self.reshape(-1), 0, grad.reshape(1)
    else:
        x, d = self, dim % max(self.dim(), 1)
        g = grad if keepdim else grad.unsqueeze(d)
    if x.dim() == 0:
        return grad
    n = x.shape[d]
    ones_shape = list(x.shape)
    ones_shape[d] = 1
    one = nd.ones(*ones_shape, dtype=x.dtype)
    # product of everything but x_i = (exclusive prefix product) * (exclusive suffix product)
    left = nd.cat([one, x.narrow(d, 0, n - 1)], d).cumprod(d)
    right = nd.cat([one, x.flip([d]).narrow(d, 0, n - 1)], d).cumprod(d).flip([d])
    return (g * left * right).reshape(self.shape)


def _cumprod_backward(grad, self, result, dim):
    d = dim % max(self.dim(), 1)
    if not bool((self == 0).any()):
        return (grad * result).flip([d]).cumsum(d).flip([d]) / self
    # exact with zeros: grad_i = sum_{k>=i} g_k * prod_{j<=k, j!=i} x_j
    n = self.shape[d]
    parts = []
    for i in range(n):
        xi = self.narrow(d, i, 1)
        excl = self.narrow(d, 0, i).prod(d, keepdim=True) if i else nd.ones_like(xi)
        tail = self.narrow(d, i + 1, n - i - 1)
        cum = nd.cat([nd.ones_like(xi), tail.cumprod(d)], d) if n - i - 1 else nd.ones_like(xi)
        parts.append((grad.narrow(d, i, n - i) * cum * excl).sum(d, keepdim=True))
    return nd.cat(parts, d)


def _matmul_backward(grad, a, b, which):
    if a.dim() == 1 and b.dim() == 1:
        return grad * (b if which == 0 else a)
    if which == 0:
        if a.dim() == 1:
            g = (grad.unsqueeze(-2) @ b.mT).squeeze(-2)
        elif b.dim() == 1:
            g = grad.unsqueeze(-1) * b
        else:
            g = grad @ b.mT
        return _sum_to(g, a.shape)
    if a.dim() == 1:
        g = a.unsqueeze(-1) * grad.unsqueeze(-2)
    elif b.dim() == 1:
        g = (a.mT @ grad.unsqueeze(-1)).squeeze(-1)
    elif a.dim() == 2 and b.dim() == 2:
        return _mm_mat2_grad(a, grad, b)
    else:
        g = a.mT @ grad
    return _sum_to(g, b.shape)


def _scatter_into_zeros(shape, dtype, view_fn, grad):
    """zeros(shape) with view_fn(zeros) := grad, built from an index map so it stays functional."""
    n = 1
    for s in shape:
        n *= s
    positions = view_fn(nd.arange(n).reshape(tuple(shape)))
    flat = nd.zeros(n, dtype=dtype)
    flat = flat.index_put_([positions.reshape(-1)], grad.reshape(-1), True)
    return flat.reshape(tuple(shape))


def _slice_backward(grad, self, dim, start, end, step):
    n = self.shape[dim]
    return _C.slice_backward(grad, list(self.shape), dim, 0 if start is None else start, n if end is None else end,
                             step)


def _select_backward(grad, self, dim, index):
    return _C.select_backward(grad, list(self.shape), dim, index)


def _diagonal_backward(grad, self, offset, dim1, dim2):
    return _scatter_into_zeros(self.shape, grad.dtype, lambda t: t.diagonal(offset, dim1, dim2), grad)


def _unfold_backward(grad, self, dimension, size, step):
    return _scatter_into_zeros(self.shape, grad.dtype, lambda t: t.unfold(dimension, size, step), grad)


def _diag_backward(grad, self, diagonal):
    if self.dim() == 1:
        return grad.diagonal(diagonal)
    return _scatter_into_zeros(self.shape, grad.dtype, lambda t: t.diag(diagonal), grad)


def _as_strided_backward(grad, self, size, stride, storage_offset):
    # Map both self and the strided view onto the elements of self's storage, accumulate the
    # view's gradient there (overlapping views add up), then read self's elements back.
    n = self._storage_nbytes() // self.element_size()
    base = nd.arange(max(n, 1))
    view_pos = base.as_strided(size, stride, self.storage_offset() if storage_offset is None else storage_offset)
    self_pos = base.as_strided(tuple(self.shape), self.stride(), self.storage_offset())
    flat = nd.zeros(max(n, 1), dtype=grad.dtype).index_put_([view_pos.reshape(-1)], grad.reshape(-1), True)
    return flat[self_pos.reshape(-1)].reshape(tuple(self.shape))


def _index_backward(grad, self, indices):
    return nd.zeros(*self.shape, dtype=grad.dtype).index_put_(indices, grad, True)


def _index_put_self_backward(grad, indices, accumulate):
    if accumulate:
        return grad
    return grad.clone().index_put_(indices, nd.zeros((), dtype=grad.dtype), False)


def _index_put_values_backward(grad, indices, values):
    return _sum_to(_C.index(grad, indices), values.shape)


def _gather_backward(grad, self, dim, index):
    return nd.zeros(*self.shape, dtype=grad.dtype).scatter_add(dim, index, grad)


def _index_select_backward(grad, self, dim, index):
    d = dim % max(self.dim(), 1)
    idx = [None] * d + [index.reshape(-1)]
    return nd.zeros(*self.shape, dtype=grad.dtype).index_put_(idx, grad, True)


def _cat_backward(grad, tensors, dim):
    out, pos = [], 0
    ref = next((t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0)), tensors[0])
    d = dim % max(ref.dim(), 1)
    for t in tensors:
        if t.dim() == 1 and t.shape[0] == 0 and ref.dim() != 1:
            out.append(nd.zeros(0, dtype=grad.dtype))
            continue
        n = t.shape[d]
        out.append(grad.narrow(d, pos, n))
        pos += n
    return out


def _inverse_perm(dims):
    n = len(dims)
    inv = [0] * n
    for i, d in enumerate(dims):
        inv[d % n] = i
    return inv


def _gelu_double_backward(grad, grad_output, x, approximate):
    """d(gelu_backward)/d(self): grad * grad_output * gelu''(x)."""
    if approximate == "tanh":
        k, c = math.sqrt(2.0 / math.pi), 0.044715
        t = (k * (x + c * x * x * x)).tanh()
        du = k * (1 + 3 * c * x * x)
        second = (1 - t * t) * (du - x * t * du * du + 3 * k * c * x * x)
    else:
        second = (-0.5 * x * x).exp() * (1 / math.sqrt(2 * math.pi)) * (2 - x * x)
    return grad * grad_output * second


def _mm_mat2_grad(mat1, grad, mat2):
    """``mat1.T @ grad``, laid out like ``mat2`` (torch's mm_mat2_backward): for Linear's ``W.t()``
    it is computed as ``(grad.T @ mat1).T``, so W's gradient arrives contiguous and AccumulateGrad
    keeps it as ``.grad`` without a copy."""
    if mat2.dim() == 2 and mat2.stride(0) == 1 and mat2.stride(1) == mat2.shape[0] and mat2.shape[1] > 1:
        return grad.t().mm(mat1).t()
    return mat1.t().mm(grad)


def _scaled(g, factor):
    """``factor * g``, skipping the multiply for the usual factor 1 (addmm's alpha and beta)."""
    if not isinstance(factor, nd.Tensor) and factor == 1:
        return g
    return g * factor


def _layer_norm_grads(grad, input, normalized_shape, mean, rstd, weight, bias, eps, needs):
    """All of native_layer_norm's gradients from one backward kernel call (None where not needed)."""
    if not _C.is_grad_enabled():
        mask = [int(bool(needs[0])), int(bool(needs[1]) and weight is not None),
                int(bool(needs[2]) and bias is not None)]
        return tuple(_C.native_layer_norm_backward(grad, input, normalized_shape, mean, rstd, weight, bias, mask))
    # create_graph: differentiable formulas (ndcore/_nn.py)
    gi = _nn.layer_norm_backward(grad, input, normalized_shape, mean, rstd, weight, eps, 0) if needs[0] else None
    gw = _nn.layer_norm_backward(grad, input, normalized_shape, mean, rstd, weight, eps, 1) if needs[1] else None
    gb = grad.sum(list(range(input.dim() - len(normalized_shape)))).to(bias.dtype) if needs[2] else None
    return gi, gw, gb


def _fused_attention_grads(grad, query, key, value, attn_mask, output, logsumexp, is_causal, scale, needs):
    """Gradients of _fused_attention: its backward kernel, or under create_graph the same math in
    differentiable ops (Note [Fused attention] in csrc/kernels/attention.cpp)."""
    if not _C.is_grad_enabled():
        return tuple(_C._fused_attention_backward(grad, query, key, value, attn_mask, output, logsumexp, is_causal,
                                                  scale))
    s = query.matmul(key.transpose(-2, -1)) * scale
    if attn_mask is not None:
        s = s + attn_mask
    if is_causal:
        L, S = query.shape[-2], key.shape[-2]
        s = s.masked_fill(nd.ones(L, S, dtype=nd.bool).triu(1), float("-inf"))
    dead = logsumexp.isinf().unsqueeze(-1)  # rows with no visible key: zero output, zero gradients
    p = s.masked_fill(dead, 0.0).softmax(-1).masked_fill(dead, 0.0)
    dv = p.transpose(-2, -1).matmul(grad)
    dp = grad.matmul(value.transpose(-2, -1))
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    dq = ds.matmul(key) * scale
    dk = ds.transpose(-2, -1).matmul(query) * scale
    return dq, dk, dv


def _clamp_backward(grad, self, min, max):
    mask = None
    if min is not None:
        mask = self >= min
    if max is not None:
        upper = self <= max
        mask = upper if mask is None else mask.logical_and(upper)
    return grad * mask


def _bce_double_backward(grad, grad_output, self, target, weight, reduction, which):
    """Gradients of binary_cross_entropy_backward (torch's formulas: the 1e-12 keeps x in {0, 1}
    finite, matching the first backward's clamped denominator only away from the ends).

    which: 0 grad_output, 1 self, 2 target.
    """
    eps = 1e-12
    denom = (self + eps) * (1 - self + eps)
    scale = 1.0 / self.numel() if reduction == "mean" else 1.0
    if which == 0:
        g = grad * (self - target) / denom
        if weight is not None:
            g = g * weight
        return g if reduction == "none" else g.sum() * scale
    if which == 1:
        g = (self * self - 2 * self * target + target) / (denom * denom) * (grad * grad_output)
    else:
        g = -(grad * grad_output) / denom
    if weight is not None:
        g = g * weight
    return g * scale if scale != 1.0 else g


def _bce_logits_double_backward(grad, grad_output, self, target, weight, pos_weight, reduction, of_target, which):
    """Gradients of binary_cross_entropy_with_logits_backward (of_target False: the self-gradient row
    w * (sigmoid(x) (1 + (p - 1) y) - p y)) and of its _target_backward row (w * ((p - 1) softplus(-x) - x)),
    both scaled by grad_output (divided by numel for 'mean').

    which: 0 grad_output, 1 self, 2 target.
    """
    one = 1 if pos_weight is None else pos_weight
    pm1 = 0 if pos_weight is None else pos_weight - 1
    sig = self.sigmoid()
    numel_scale = 1.0 / self.numel() if reduction == "mean" else 1.0
    w = grad if weight is None else grad * weight
    if which == 0:
        if of_target:
            softplus_neg = (-self).clamp(min=0) + (-self.abs()).exp().log1p()
            r = pm1 * softplus_neg - self
        else:
            r = sig * (1 + pm1 * target) - one * target
        g = w * r
        return g if reduction == "none" else g.sum() * numel_scale
    s = grad_output * numel_scale if reduction != "none" else grad_output
    if of_target:  # which == 1: the target row does not depend on the target
        return w * s * (-pm1 * (1 - sig) - 1)
    if which == 1:
        return w * s * sig * (1 - sig) * (1 + pm1 * target)
    return w * s * (sig * pm1 - one)


def _double_backward_not_implemented(name):
    # recorded as a node so a graph through this backward op fails when used, as torch's does,
    # instead of the term being silently treated as a constant
    raise NotImplementedError(f"[{name}] the derivative of {name} is not implemented (torch has none either), so "
                              "gradients cannot flow through it twice")


# grid_sample as a composite of differentiable nd ops (gathers at the neighbour indices times
# weights built from the grid): ndnn's 5-D grid_sample, and the double backward of the
# grid_sampler_2d kernel. Autograd gives grad_input (the scatter-add of gather's backward) and
# grad_grid (through the weights); the index arithmetic is detached, as in torch.

_BICUBIC_A = -0.75  # torch's cubic convolution coefficient


def _grid_unnormalize(coord, size, align_corners):
    if align_corners:
        return ((coord + 1) / 2) * (size - 1)
    return ((coord + 1) * size - 1) / 2


def _grid_clip(x, size):
    # torch's clip_coordinates_set_grad: at or beyond an edge the coordinate is constant (grad 0)
    # torch's 3-D sampler clips with min(size - 1, max(x, 0)), which sends NaN to size - 1
    inside = (x > 0).logical_and(x < size - 1)
    xd = x.detach()
    return nd.where(inside, x, nd.where(xd.isnan(), xd.new_full(xd.shape, size - 1.0), xd.clamp(0, size - 1)))


def _grid_reflect(x, twice_low, twice_high):
    if twice_low == twice_high:
        # constant 0 that keeps x in the graph, so grad_grid is 0 (as torch returns) rather than missing
        return nd.where(nd.zeros(x.shape, dtype=nd.bool), x, x.new_zeros(x.shape))
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    x = (x - low).abs()
    extra = x.fmod(span)
    odd = (x.detach() / span).floor().fmod(2) == 1
    return nd.where(odd, span - extra, extra) + low


def _grid_pad_coord(x, size, padding_mode, align_corners):
    if padding_mode == "border":
        return _grid_clip(x, size)
    if padding_mode == "reflection":
        x = _grid_reflect(x, 0, 2 * (size - 1)) if align_corners else _grid_reflect(x, -1, 2 * size - 1)
        return _grid_clip(x, size)
    return x


def _grid_finite(x):
    # NaN/inf or huge coordinates fall outside the input (torch's safe_downgrade_to_int_range)
    ok = x.detach().isfinite().logical_and(x.detach().abs() < 2.0 ** 31 - 2)
    return nd.where(ok, x, x.new_full(x.shape, -100.0))


def _grid_index(x, size):
    """Integer index of a (detached, integral) coordinate and whether it lies inside [0, size)."""
    x = _grid_finite(x.detach())
    valid = (x >= 0).logical_and(x <= size - 1)
    return nd.where(valid, x, x.new_zeros(x.shape)).to(nd.int64), valid


def _grid_gather(flat, idx, valid, strides):
    """flat (N, C, P); idx/valid lists per spatial dim of (N, *out): values at those locations, 0 outside."""
    n, c = flat.shape[0], flat.shape[1]
    lin, ok = idx[0] * strides[0], valid[0]
    for i, v, s in zip(idx[1:], valid[1:], strides[1:]):
        lin = lin + i * s
        ok = ok.logical_and(v)
    out_shape = tuple(lin.shape[1:])
    m = math.prod(out_shape)
    q = lin.reshape(n, 1, m).expand(n, c, m).contiguous()
    vals = flat.gather(2, q).reshape((n, c) + out_shape)
    # where, not a product: an inf/NaN at the stand-in index 0 must not leak into outside taps
    return nd.where(ok.unsqueeze(1), vals, vals.new_zeros(vals.shape))


def _cubic_coeffs(t):
    a = _BICUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _grid_bicubic(flat, coords, sizes, strides_xyz, padding_mode, align_corners):
    # 4x4 taps around floor() of the unpadded coordinate; padding maps each integer tap on its own
    base = [cd.detach().floor() for cd in coords]
    coeffs = [_cubic_coeffs(cd - b) for cd, b in zip(coords, base)]
    taps = [[_grid_index(_grid_pad_coord(b + (j - 1), s, padding_mode, align_corners), s)
             for b, s in zip(base, sizes)] for j in range(4)]
    out = None
    for jy in range(4):
        row = None
        for jx in range(4):
            (ix, vx), (iy, vy) = taps[jx][0], taps[jy][1]
            v = _grid_gather(flat, [ix, iy], [vx, vy], strides_xyz) * coeffs[0][jx].unsqueeze(1)
            row = v if row is None else row + v
        row = row * coeffs[1][jy].unsqueeze(1)
        out = row if out is None else out + row
    return out


def _grid_sample_composite(input, grid, mode, padding_mode, align_corners):
    """Bilinear/nearest sampling over k = 2 or 3 spatial dims, bicubic over 2 (torch's semantics)."""
    work = input.dtype if input.dtype in (nd.float32, nd.float64) else nd.float32
    x, g = input.to(work), grid.to(work)
    spatial = list(input.shape[2:])  # (D,) H, W
    k = len(spatial)
    n, c = input.shape[0], input.shape[1]
    flat = x.reshape(n, c, math.prod(spatial))
    strides = [1] * k
    for d in range(k - 2, -1, -1):
        strides[d] = strides[d + 1] * spatial[d + 1]
    # grid's last dim is (x, y[, z]): reverse it to the (D,) H, W order of the input dims
    sizes = spatial[::-1]
    strides_xyz = strides[::-1]
    coords = [_grid_unnormalize(g[..., d], sizes[d], align_corners) for d in range(k)]
    if mode == "bicubic":
        return _grid_bicubic(flat, coords, sizes, strides_xyz, padding_mode, align_corners).to(input.dtype)
    coords = [_grid_finite(_grid_pad_coord(cd, s, padding_mode, align_corners)) for cd, s in zip(coords, sizes)]
    if mode == "nearest":
        r = [cd.round() for cd in coords]
        iv = [_grid_index(ri, s) for ri, s in zip(r, sizes)]
        out = _grid_gather(flat, [i for i, _ in iv], [v for _, v in iv], strides_xyz)
        if g.requires_grad:
            # round's zero derivative keeps the grid in the graph: grad_grid is 0, as torch returns
            out = out * (1 + sum(ri - ri.detach() for ri in r)).unsqueeze(1)
    else:
        base = [cd.detach().floor() for cd in coords]
        frac = [cd - b for cd, b in zip(coords, base)]
        out = None
        for corner in range(2 ** k):
            bits = [(corner >> d) & 1 for d in range(k)]
            iv = [_grid_index(b + bit, s) for b, bit, s in zip(base, bits, sizes)]
            w = None
            for f, bit in zip(frac, bits):
                wd = f if bit else 1 - f
                w = wd if w is None else w * wd
            v = _grid_gather(flat, [i for i, _ in iv], [ok for _, ok in iv], strides_xyz) * w.unsqueeze(1)
            out = v if out is None else out + v
    return out.to(input.dtype)


def _grid_sampler_2d_double_backward(grads, grad_output, input, grid, interpolation_mode, padding_mode,
                                     align_corners):
    """Double backward of grid_sampler_2d_backward: the gradients of <grads[0], grad_input> +
    <grads[1], grad_grid> w.r.t. (grad_output, input, grid), by differentiating the composite sampler
    twice (the kernel's own backward has no derivative)."""
    from ._api import grad as _grad
    from ._grad_mode import enable_grad

    mode = ("bilinear", "nearest", "bicubic")[interpolation_mode]
    pad = ("zeros", "border", "reflection")[padding_mode]
    outer = nd.is_grad_enabled()  # create_graph of the caller: keep the result differentiable
    zeros = tuple(t.new_zeros(t.shape) for t in (grad_output, input, grid))
    with enable_grad():
        leaves = tuple(t if outer and t.requires_grad else t.detach().requires_grad_(True)
                       for t in (grad_output, input, grid))
        go, x, g = leaves
        y = _grid_sample_composite(x, g, mode, pad, align_corners)
        first = _grad(y, (x, g), go, create_graph=True, allow_unused=True, materialize_grads=True)
        total = None
        for a, b in zip(first, grads):
            if b is not None and a.requires_grad:
                term = (a * b).sum()
                total = term if total is None else total + term
        if total is None:
            return zeros
        res = _grad(total, leaves, create_graph=outer, allow_unused=True, materialize_grads=True)
    return tuple(r if outer else r.detach() for r in res)
