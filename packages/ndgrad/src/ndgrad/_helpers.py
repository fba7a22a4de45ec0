"""Helpers the table's derivative formulas call (`_*_backward`). Each is written in nd ops, so
gradients run on any device and stay differentiable for higher-order derivatives."""
from __future__ import annotations

import math

import ndcore as nd
from ndcore import _C

__all__ = [
    "_sum_to", "_expand_reduced", "_minmax_backward", "_index_reduce_backward", "_prod_backward",
    "_cumprod_backward", "_matmul_backward", "_slice_backward", "_select_backward", "_as_strided_backward",
    "_index_backward", "_index_put_self_backward", "_index_put_values_backward", "_gather_backward",
    "_index_select_backward", "_cat_backward", "_inverse_perm", "_diagonal_backward", "_unfold_backward",
    "_diag_backward", "_gelu_backward", "_clamp_backward", "_per_input",
]


def _per_input(grads, n):
    return [None] * n if grads is None else list(grads)


def _sum_to(g, shape):
    """Sums the broadcast dims of ``g`` away so it has ``shape``."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.dim() - len(shape)
    dims = list(range(lead)) + [lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1]
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
    return _scatter_into_zeros(self.shape, grad.dtype, lambda t: _C.slice(t, dim, start, end, step), grad)


def _select_backward(grad, self, dim, index):
    return _scatter_into_zeros(self.shape, grad.dtype, lambda t: t.select(dim, index), grad)


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


def _gelu_backward(grad, x, approximate):
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        inner = k * (x + 0.044715 * x * x * x)
        t = inner.tanh()
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
    cdf = 0.5 * (1 + (x * (1 / math.sqrt(2.0))).erf())
    pdf = (-0.5 * x * x).exp() * (1 / math.sqrt(2 * math.pi))
    return grad * (cdf + x * pdf)


def _clamp_backward(grad, self, min, max):
    mask = None
    if min is not None:
        mask = self >= min
    if max is not None:
        upper = self <= max
        mask = upper if mask is None else mask.logical_and(upper)
    return grad * mask
