"""Normalisation: batch, layer, group, instance, local response and RMS norm."""
from __future__ import annotations

import math

import ndcore as nd

from ._pooling import avg_pool2d, avg_pool3d

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm", "rms_norm"]

_EPS = {nd.float32: 1.1920928955078125e-07, nd.float64: 2.220446049250313e-16, nd.float16: 0.0009765625,
        nd.bfloat16: 0.0078125}


def _normalized_tuple(normalized_shape):
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalises each channel (dim 1) over the batch and spatial dims:
    :math:`y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta`.

    In training the batch statistics are used and the running ones updated in place
    (:math:`r \\leftarrow (1 - m) r + m\\,s`, with the unbiased variance); otherwise the running
    statistics are used.

    Args:
        input: Tensor ``(N, C, *)``.
        running_mean: Tensor ``(C,)`` or None.
        running_var: Tensor ``(C,)`` or None.
        weight: Optional scale :math:`\\gamma`, ``(C,)``.
        bias: Optional shift :math:`\\beta`, ``(C,)``.
        training: Use batch statistics (and update the running ones).
        momentum: Running-average factor.
        eps: Added to the variance.
    """
    if input.dim() < 2:
        raise ValueError(f"[batch_norm] expected input of shape (N, C, *), got {tuple(input.shape)}")
    if training:
        shape = input.shape
        if shape[0] * math.prod(shape[2:]) == 1:
            raise ValueError(f"[batch_norm] Expected more than 1 value per channel when training, "
                             f"got input size {list(shape)}")
    elif running_mean is None or running_var is None:
        raise ValueError("[batch_norm] running_mean and running_var must be given when training=False")
    return nd.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalises over the last ``len(normalized_shape)`` dims:
    :math:`y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta` (biased variance).

    Args:
        input: Tensor ``(*, *normalized_shape)``.
        normalized_shape: Trailing shape to normalise over.
        weight: Optional scale, shape ``normalized_shape``.
        bias: Optional shift, shape ``normalized_shape``.
        eps: Added to the variance.
    """
    shape = _normalized_tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.dim() < k or tuple(input.shape[input.dim() - k:]) != shape:
        raise ValueError(f"[layer_norm] Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {list(input.shape)}")
    return nd.layer_norm(input, list(shape), weight, bias, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Splits the channels into ``num_groups`` groups and normalises each group per sample.

    Args:
        input: Tensor ``(N, C, *)`` with ``C`` divisible by ``num_groups``.
        num_groups: Number of groups.
        weight: Optional per-channel scale ``(C,)``.
        bias: Optional per-channel shift ``(C,)``.
        eps: Added to the variance.
    """
    if input.dim() < 2:
        raise ValueError(f"[group_norm] Expected at least 2 dimensions for input tensor but received "
                         f"{input.dim()}")
    if num_groups <= 0 or input.shape[1] % num_groups:
        raise ValueError(f"[group_norm] Expected number of channels in input to be divisible by num_groups, "
                         f"but got input of shape {list(input.shape)} and num_groups={num_groups}")
    return nd.group_norm(input, num_groups, weight, bias, eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalises each channel of each sample over its spatial dims.

    Args:
        input: Tensor ``(N, C, *)``.
        running_mean: Optional running mean ``(C,)`` (updated when ``use_input_stats``).
        running_var: Optional running variance ``(C,)``.
        weight: Optional per-channel scale ``(C,)``.
        bias: Optional per-channel shift ``(C,)``.
        use_input_stats: Normalise with the instance statistics (else the running ones).
        momentum: Running-average factor.
        eps: Added to the variance.
    """
    if input.dim() < 3:
        raise ValueError(f"[instance_norm] expected input of shape (N, C, *spatial), got {tuple(input.shape)}")
    if use_input_stats and math.prod(input.shape[2:]) == 1:
        raise ValueError(f"[instance_norm] Expected more than 1 spatial element when training, "
                         f"got input size {list(input.shape)}")
    return nd.instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalises each element by its neighbours across channels:
    :math:`b_c = a_c \\left(k + \\frac{\\alpha}{n} \\sum_{c'} a_{c'}^2\\right)^{-\\beta}`, the sum over ``size``
    channels centred on ``c``.

    Args:
        input: Tensor ``(N, C, *)`` with at least 3 dims.
        size: Number of neighbouring channels.
        alpha: Multiplicative factor.
        beta: Exponent.
        k: Additive factor.
    """
    dim = input.dim()
    if dim < 3:
        raise ValueError(f"[local_response_norm] Expected 3D or higher dimensionality input "
                         f"(got {dim} dimensions)")
    if input.numel() == 0:
        return input
    div = input * input
    front, back = size // 2, (size - 1) // 2
    if dim == 3:
        div = nd.constant_pad_nd(div.unsqueeze(1), [0, 0, front, back], 0.0)
        div = avg_pool2d(div, (size, 1), stride=1).squeeze(1)
    else:
        sizes = tuple(input.shape)
        div = div.reshape(sizes[0], 1, sizes[1], sizes[2], -1)
        div = nd.constant_pad_nd(div, [0, 0, 0, 0, front, back], 0.0)
        div = avg_pool3d(div, (size, 1, 1), stride=1).squeeze(1).reshape(sizes)
    return input / (div * alpha + k).pow(beta)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """Root-mean-square norm over the last dims: :math:`y = \\frac{x}{\\sqrt{\\mathrm{E}[x^2] + \\epsilon}} \\gamma`.

    Args:
        input: Tensor ``(*, *normalized_shape)``.
        normalized_shape: Trailing shape to normalise over.
        weight: Optional scale, shape ``normalized_shape``.
        eps: Added to the mean square; None uses the dtype's machine epsilon.
    """
    shape = _normalized_tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.dim() < k or tuple(input.shape[input.dim() - k:]) != shape:
        raise ValueError(f"[rms_norm] Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {list(input.shape)}")
    if eps is None:
        eps = _EPS.get(input.dtype, _EPS[nd.float32])
    dims = list(range(-k, 0))
    out = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return out if weight is None else out * weight
