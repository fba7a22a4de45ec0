"""Pooling: max/avg (1-3d), adaptive max/avg, power-average (LP) and max-unpooling."""
from __future__ import annotations

import ndcore as nd

from ._utils import _ntuple, _pair, _triple

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
    "adaptive_max_pool3d_with_indices", "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_unpool1d", "max_unpool2d",
    "max_unpool3d", "fractional_max_pool2d", "fractional_max_pool3d", "fractional_max_pool2d_with_indices",
    "fractional_max_pool3d_with_indices",
]

_SHAPES = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)", 3: "(N, C, D, H, W) or (C, D, H, W)"}


def _check_rank(op, n, input):
    if input.dim() not in (n + 1, n + 2):
        raise ValueError(f"[{op}] expected input of shape {_SHAPES[n]}, got {tuple(input.shape)}")


def _s(stride):
    # ndcore's pooling ops take ints or per-dim sequences and check ranks and sizes themselves;
    # an empty stride means "the kernel size".
    return [] if stride is None else stride


# ---------------------------------------------------------------- max pooling

def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """:func:`max_pool1d` that also returns the flat argmax index of each window."""
    return nd.max_pool1d_with_indices(input, kernel_size, _s(stride), padding, dilation, ceil_mode)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """:func:`max_pool2d` that also returns the flat (per-plane) argmax index of each window."""
    return nd.max_pool2d_with_indices(input, kernel_size, _s(stride), padding, dilation, ceil_mode)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    """:func:`max_pool3d` that also returns the flat (per-volume) argmax index of each window."""
    return nd.max_pool3d_with_indices(input, kernel_size, _s(stride), padding, dilation, ceil_mode)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over sliding windows of ``(N, C, L)`` input: :math:`y_{n,c,l} = \\max_k x_{n,c,\\,s l + d k - p}`.

    Args:
        input: Tensor ``(N, C, L)`` or ``(C, L)``.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        padding: Implicit ``-inf`` padding on both sides (at most half the kernel).
        dilation: Spacing between window elements.
        ceil_mode: Use ceil instead of floor for the output size.
        return_indices: Also return the argmax indices (for :func:`max_unpool1d`).
    """
    if return_indices:
        return max_pool1d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return nd.max_pool1d(input, kernel_size, _s(stride), padding, dilation, ceil_mode)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over sliding 2-D windows of ``(N, C, H, W)`` input (see :func:`max_pool1d`).

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: Window size (int or pair).
        stride: Window step (defaults to ``kernel_size``).
        padding: Implicit ``-inf`` padding on both sides.
        dilation: Spacing between window elements.
        ceil_mode: Use ceil instead of floor for the output size.
        return_indices: Also return the argmax indices (for :func:`max_unpool2d`).
    """
    if return_indices:
        return max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return nd.max_pool2d(input, kernel_size, _s(stride), padding, dilation, ceil_mode)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over sliding 3-D windows of ``(N, C, D, H, W)`` input (see :func:`max_pool1d`).

    Args:
        input: Tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        kernel_size: Window size (int or triple).
        stride: Window step (defaults to ``kernel_size``).
        padding: Implicit ``-inf`` padding on both sides.
        dilation: Spacing between window elements.
        ceil_mode: Use ceil instead of floor for the output size.
        return_indices: Also return the argmax indices (for :func:`max_unpool3d`).
    """
    if return_indices:
        return max_pool3d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return nd.max_pool3d(input, kernel_size, _s(stride), padding, dilation, ceil_mode)


# ---------------------------------------------------------------- average pooling

def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over sliding windows of ``(N, C, L)`` input.

    Args:
        input: Tensor ``(N, C, L)`` or ``(C, L)``.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        padding: Implicit zero padding on both sides.
        ceil_mode: Use ceil instead of floor for the output size.
        count_include_pad: Count the padded zeros in the divisor.
    """
    return nd.avg_pool1d(input, kernel_size, _s(stride), padding, ceil_mode, count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over sliding 2-D windows of ``(N, C, H, W)`` input.

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        padding: Implicit zero padding on both sides.
        ceil_mode: Use ceil instead of floor for the output size.
        count_include_pad: Count the padded zeros in the divisor.
        divisor_override: Divide by this instead of the window size.
    """
    return nd.avg_pool2d(input, kernel_size, _s(stride), padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over sliding 3-D windows of ``(N, C, D, H, W)`` input.

    Args:
        input: Tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        padding: Implicit zero padding on both sides.
        ceil_mode: Use ceil instead of floor for the output size.
        count_include_pad: Count the padded zeros in the divisor.
        divisor_override: Divide by this instead of the window size.
    """
    return nd.avg_pool3d(input, kernel_size, _s(stride), padding, ceil_mode, count_include_pad, divisor_override)


# ---------------------------------------------------------------- adaptive pooling

def adaptive_avg_pool1d(input, output_size):
    """Mean over ``output_size`` adaptive windows: window ``i`` spans
    :math:`[\\lfloor iL/L_o \\rfloor, \\lceil (i+1)L/L_o \\rceil)`.

    Args:
        input: Tensor ``(N, C, L)`` or ``(C, L)``.
        output_size: Target length.
    """
    return nd.adaptive_avg_pool1d(input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """Adaptive mean pooling to ``output_size`` (int, pair, entries may be None to keep the input size).

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        output_size: Target ``(H_o, W_o)``.
    """
    return nd.adaptive_avg_pool2d(input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """Adaptive mean pooling to ``output_size`` (int or triple; None keeps the input size).

    Args:
        input: Tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        output_size: Target ``(D_o, H_o, W_o)``.
    """
    return nd.adaptive_avg_pool3d(input, output_size)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=False):
    """:func:`adaptive_max_pool1d` returning ``(values, indices)``."""
    return nd.adaptive_max_pool1d(input, output_size)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    """:func:`adaptive_max_pool2d` returning ``(values, indices)``."""
    return nd.adaptive_max_pool2d(input, output_size)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=False):
    """:func:`adaptive_max_pool3d` returning ``(values, indices)``."""
    return nd.adaptive_max_pool3d(input, output_size)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max over ``output_size`` adaptive windows (see :func:`adaptive_avg_pool1d`).

    Args:
        input: Tensor ``(N, C, L)`` or ``(C, L)``.
        output_size: Target length.
        return_indices: Also return the argmax indices.
    """
    out = adaptive_max_pool1d_with_indices(input, output_size)
    return out if return_indices else out[0]


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive max pooling to ``output_size``.

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        output_size: Target ``(H_o, W_o)``; None entries keep the input size.
        return_indices: Also return the argmax indices.
    """
    out = adaptive_max_pool2d_with_indices(input, output_size)
    return out if return_indices else out[0]


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Adaptive max pooling to ``output_size``.

    Args:
        input: Tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        output_size: Target ``(D_o, H_o, W_o)``; None entries keep the input size.
        return_indices: Also return the argmax indices.
    """
    out = adaptive_max_pool3d_with_indices(input, output_size)
    return out if return_indices else out[0]


# ---------------------------------------------------------------- power-average pooling

def _lp_finish(out, norm_type, window):
    # sign * relu(|.|) clears the tiny negatives rounding leaves in sum(x^p) before the root.
    return (out.sign() * out.abs().relu()).mul(window).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling :math:`(\\sum_{x \\in W} x^p)^{1/p}` over windows of ``(N, C, L)`` input.

    Args:
        input: Tensor ``(N, C, L)`` or ``(C, L)``.
        norm_type: The exponent :math:`p`.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        ceil_mode: Use ceil instead of floor for the output size.
    """
    out = avg_pool1d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return _lp_finish(out, norm_type, kernel_size if isinstance(kernel_size, int) else kernel_size[0])


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over 2-D windows (see :func:`lp_pool1d`).

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        norm_type: The exponent :math:`p`.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        ceil_mode: Use ceil instead of floor for the output size.
    """
    kh, kw = _pair(kernel_size)
    out = avg_pool2d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return _lp_finish(out, norm_type, kh * kw)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over 3-D windows (see :func:`lp_pool1d`).

    Args:
        input: Tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        norm_type: The exponent :math:`p`.
        kernel_size: Window size.
        stride: Window step (defaults to ``kernel_size``).
        ceil_mode: Use ceil instead of floor for the output size.
    """
    kd, kh, kw = _triple(kernel_size)
    out = avg_pool3d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return _lp_finish(out, norm_type, kd * kh * kw)


# ---------------------------------------------------------------- max unpooling

def _unpool_output_size(op, input, kernel_size, stride, padding, output_size):
    n = len(kernel_size)
    spatial = tuple(input.shape[-n:])
    default = [(spatial[d] - 1) * stride[d] + kernel_size[d] - 2 * padding[d] for d in range(n)]
    if output_size is None:
        return default
    output_size = list(output_size)
    if len(output_size) == n + 2:
        output_size = output_size[2:]
    elif len(output_size) == n + 1:
        output_size = output_size[1:]
    if len(output_size) != n:
        raise ValueError(f"[{op}] output_size should be a sequence containing {n} or {n + 2} elements, "
                         f"but it has a length of '{len(output_size)}'")
    for d in range(n):
        lo, hi = default[d] - stride[d], default[d] + stride[d]
        if not lo < output_size[d] < hi:
            raise ValueError(f"[{op}] invalid output_size {output_size} (dim {d} must be between {lo} and {hi})")
    return output_size


def _unpool_args(op, n, input, indices, kernel_size, stride, padding, output_size):
    _check_rank(op, n, input)
    if tuple(indices.shape) != tuple(input.shape):
        raise ValueError(f"[{op}] indices of shape {tuple(indices.shape)} must match input of shape "
                         f"{tuple(input.shape)}")
    tup = _ntuple(n)
    kernel_size = tup(kernel_size)
    stride = kernel_size if stride is None else tup(stride)
    padding = tup(padding)
    return _unpool_output_size(op, input, kernel_size, stride, padding, output_size), stride, padding


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of :func:`max_pool1d`: places each value at its argmax index, zeros elsewhere.

    Args:
        input: Pooled tensor ``(N, C, L)`` or ``(C, L)``.
        indices: Indices from ``max_pool1d(..., return_indices=True)``.
        kernel_size: Pooling window size.
        stride: Pooling stride (defaults to ``kernel_size``).
        padding: Pooling padding.
        output_size: Target size (resolves the ambiguity of strided pooling).
    """
    size, _, _ = _unpool_args("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)
    return nd.max_unpool1d(input, indices, size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of :func:`max_pool2d` (see :func:`max_unpool1d`).

    Args:
        input: Pooled tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        indices: Indices from ``max_pool2d(..., return_indices=True)``.
        kernel_size: Pooling window size.
        stride: Pooling stride (defaults to ``kernel_size``).
        padding: Pooling padding.
        output_size: Target size.
    """
    size, _, _ = _unpool_args("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)
    return nd.max_unpool2d(input, indices, size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of :func:`max_pool3d` (see :func:`max_unpool1d`).

    Args:
        input: Pooled tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        indices: Indices from ``max_pool3d(..., return_indices=True)``.
        kernel_size: Pooling window size.
        stride: Pooling stride (defaults to ``kernel_size``).
        padding: Pooling padding.
        output_size: Target size.
    """
    size, stride, padding = _unpool_args("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                                         output_size)
    return nd.max_unpool3d(input, indices, size, stride, padding)


# ---------------------------------------------------------------- fractional max pooling

def _fractional_starts(u, in_size, out_size, k):
    """Window starts of Graham's pseudo-random pooling: ``trunc((i + u) a) - trunc(u a)``, ``a = (in - k) / (out - 1)``,
    and the last window flush with the end. ``u`` is ``(P,)``; returns int64 ``(P, out)``."""
    p = u.shape[0]
    if out_size == 1:
        return u.new_full((p, 1), in_size - k, dtype=nd.int64)
    alpha = (in_size - k) / (out_size - 1)
    i = nd.arange(out_size - 1, dtype=u.dtype, device=u.device).unsqueeze(0)
    ua = u.unsqueeze(1)
    starts = ((i + ua) * alpha).trunc() - (ua * alpha).trunc()
    return nd.cat([starts.long(), u.new_full((p, 1), in_size - k, dtype=nd.int64)], 1)


def _fractional_max_pool(op, n, input, kernel_size, output_size, output_ratio, samples):
    if input.dim() not in (n + 1, n + 2):
        raise ValueError(f"[{op}] expected input of shape {_SHAPES[n]}, got {tuple(input.shape)}")
    tup = _ntuple(n)
    kernel_size = tup(kernel_size)
    spatial = tuple(input.shape[-n:])
    if output_size is None:
        if output_ratio is None:
            raise ValueError(f"{op} requires specifying either an output_size or an output_ratio")
        ratio = tup(output_ratio)
        output_size = [int(spatial[d] * ratio[d]) for d in range(n)]
    output_size = list(tup(output_size))
    for d in range(n):
        if output_size[d] + kernel_size[d] - 1 > spatial[d]:
            raise ValueError(f"[{op}] output_size[{d}] + kernel_size[{d}] - 1 = "
                             f"{output_size[d] + kernel_size[d] - 1} is larger than the input size {spatial[d]} "
                             f"(input of shape {tuple(input.shape)})")
    unbatched = input.dim() == n + 1
    x = input.unsqueeze(0) if unbatched else input
    nb, c = x.shape[0], x.shape[1]
    if samples is None:
        samples = input.new_empty((nb, c, n)).uniform_(0.0, 1.0)
    if tuple(samples.shape) != (nb, c, n):
        raise ValueError(f"[{op}] _random_samples must have shape ({nb}, {c}, {n}), got {tuple(samples.shape)}")
    planes = nb * c
    u = samples.reshape(planes, n)
    # torch draws the last dim's sample first for 2-D pooling (samples[..., 0] is the width)
    order = [1, 0] if n == 2 else list(range(n))
    # Flat index, within each plane, of every (output position, window offset) pair: an outer sum
    # over dims of (start + offset) * stride, shaped (P, o_1, ..., o_n, k_1 * ... * k_n).
    strides = [1] * n
    for d in range(n - 2, -1, -1):
        strides[d] = strides[d + 1] * spatial[d + 1]
    flat = None
    for d in range(n):
        pos = (_fractional_starts(u[:, order[d]], spatial[d], output_size[d], kernel_size[d]).unsqueeze(2)
               + nd.arange(kernel_size[d], device=x.device).reshape(1, 1, -1)) * strides[d]  # (P, o_d, k_d)
        shape = [planes] + [1] * (2 * n)
        shape[1 + d] = output_size[d]
        shape[1 + n + d] = kernel_size[d]
        pos = pos.reshape(shape)
        flat = pos if flat is None else flat + pos
    flat = flat.reshape(planes, -1)  # (P, prod(o) * prod(k)) in (o..., k...) order
    window = 1
    for k in kernel_size:
        window *= k
    vals = x.reshape(planes, -1).gather(1, flat).reshape(planes, -1, window)
    out, arg = vals.max(2)
    idx = flat.reshape(planes, -1, window).gather(2, arg.unsqueeze(2)).squeeze(2)
    shape = [nb, c] + output_size
    out, idx = out.reshape(shape), idx.reshape(shape)
    if unbatched:
        out, idx = out.squeeze(0), idx.squeeze(0)
    return out, idx


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                                       _random_samples=None):
    """:func:`fractional_max_pool2d` returning ``(values, indices)``."""
    return _fractional_max_pool("fractional_max_pool2d", 2, input, kernel_size, output_size, output_ratio,
                                _random_samples)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                                       _random_samples=None):
    """:func:`fractional_max_pool3d` returning ``(values, indices)``."""
    return _fractional_max_pool("fractional_max_pool3d", 3, input, kernel_size, output_size, output_ratio,
                                _random_samples)


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """Fractional max pooling (Graham, 2014): max over ``kernel_size`` windows whose starts advance by a
    pseudo-random mix of floor and ceil of ``H_in / H_out``, one random offset per plane.

    Args:
        input: Tensor ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: Window size.
        output_size: Target ``(H_out, W_out)``.
        output_ratio: Target size as a fraction of the input size (instead of ``output_size``).
        return_indices: Also return the flat (per-plane) argmax indices.
        _random_samples: ``(N, C, 2)`` offsets in ``[0, 1)`` (drawn when None).
    """
    out = fractional_max_pool2d_with_indices(input, kernel_size, output_size, output_ratio,
                                             _random_samples=_random_samples)
    return out if return_indices else out[0]


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    """3-D fractional max pooling (see :func:`fractional_max_pool2d`).

    Args:
        input: Tensor ``(N, C, D, H, W)`` or ``(C, D, H, W)``.
        kernel_size: Window size.
        output_size: Target ``(D_out, H_out, W_out)``.
        output_ratio: Target size as a fraction of the input size.
        return_indices: Also return the flat (per-volume) argmax indices.
        _random_samples: ``(N, C, 3)`` offsets in ``[0, 1)`` (drawn when None).
    """
    out = fractional_max_pool3d_with_indices(input, kernel_size, output_size, output_ratio,
                                             _random_samples=_random_samples)
    return out if return_indices else out[0]
