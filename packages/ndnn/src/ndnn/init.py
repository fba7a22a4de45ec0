"""``nd.nn.init``: in-place parameter initialisers with torch's formulas and fan computation.

Every function fills its tensor under ``no_grad`` and returns it; random ones take an optional
``generator`` (an ``nd.Generator``) so runs are reproducible.
"""
from __future__ import annotations

import math
import warnings

import ndcore
import ndgrad

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
    "uniform", "normal", "constant", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
    "orthogonal", "sparse",
]

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (torch's table).

    linear/conv/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2)); selu: 3/4.

    Args:
        nonlinearity: Name of the function (``"relu"``, ``"leaky_relu"``, ...).
        param: Negative slope for ``leaky_relu`` (default 0.01).
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.size(1) * receptive, tensor.size(0) * receptive


def _calculate_correct_fan(tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fills ``tensor`` with values drawn from U(a, b).

    Args:
        tensor: The tensor to fill.
        a: Lower bound. b: Upper bound.
        generator: Optional ``nd.Generator``.
    """
    with ndgrad.no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fills ``tensor`` with values drawn from N(mean, std^2).

    Args:
        tensor: The tensor to fill.
        mean: Mean. std: Standard deviation.
        generator: Optional ``nd.Generator``.
    """
    with ndgrad.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None):
    """Fills ``tensor`` from N(mean, std^2) truncated to [a, b] (inverse-CDF sampling).

    Args:
        tensor: The tensor to fill.
        mean: Mean of the untruncated normal. std: Its standard deviation.
        a: Lower cut-off. b: Upper cut-off.
        generator: Optional ``nd.Generator``.
    """
    def norm_cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values may "
                      "be incorrect.", stacklevel=2)
    with ndgrad.no_grad():
        lo, hi = norm_cdf((a - mean) / std), norm_cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1, generator=generator)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
        return tensor


def constant_(tensor, val: float):
    """Fills ``tensor`` with ``val``."""
    with ndgrad.no_grad():
        return tensor.fill_(val)


def ones_(tensor):
    """Fills ``tensor`` with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Fills ``tensor`` with zeros."""
    with ndgrad.no_grad():
        return tensor.zero_()


def eye_(tensor):
    """Fills a 2-D ``tensor`` with the identity (ones on the diagonal, zeros elsewhere)."""
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    with ndgrad.no_grad():
        return tensor.copy_(ndcore.eye(tensor.size(0), tensor.size(1), dtype=tensor.dtype, device=tensor.device))


def dirac_(tensor, groups: int = 1):
    """Fills a 3/4/5-D conv weight with the Dirac delta: the convolution preserves the identity of
    ``min(out_channels // groups, in_channels)`` channels per group.

    Args:
        tensor: Weight of shape (out_channels, in_channels, *kernel).
        groups: Number of groups of the convolution. Default: 1.
    """
    dims = tensor.dim()
    if dims not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tensor.shape
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    per_group = sizes[0] // groups
    min_dim = min(per_group, sizes[1])
    with ndgrad.no_grad():
        tensor.zero_()
        d = ndcore.arange(min_dim, device=tensor.device)
        out_idx = (ndcore.arange(groups, device=tensor.device).reshape(groups, 1) * per_group + d).reshape(-1)
        in_idx = d.repeat(groups)
        centre = tuple(s // 2 for s in sizes[2:])
        tensor[(out_idx, in_idx, *centre)] = 1
        return tensor


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).

    Args:
        tensor: Tensor with at least 2 dimensions.
        gain: Scaling factor. Default: 1.
        generator: Optional ``nd.Generator``.
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).

    Args:
        tensor: Tensor with at least 2 dimensions.
        gain: Scaling factor. Default: 1.
        generator: Optional ``nd.Generator``.
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He uniform: U(-bound, bound) with bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a).

    Args:
        tensor: Tensor with at least 2 dimensions.
        a: Negative slope of the rectifier after this layer (leaky_relu only).
        mode: ``"fan_in"`` (preserves forward variance) or ``"fan_out"`` (backward).
        nonlinearity: ``"relu"`` or ``"leaky_relu"`` (default) or any name ``calculate_gain`` knows.
        generator: Optional ``nd.Generator``.
    """
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He normal: N(0, std^2) with std = gain / sqrt(fan).

    Args:
        tensor: Tensor with at least 2 dimensions.
        a: Negative slope of the rectifier after this layer (leaky_relu only).
        mode: ``"fan_in"`` or ``"fan_out"``.
        nonlinearity: ``"relu"`` or ``"leaky_relu"`` (default) or any name ``calculate_gain`` knows.
        generator: Optional ``nd.Generator``.
    """
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor, gain: float = 1, generator=None):
    """Fills ``tensor`` (viewed as rows x rest) with a (semi-)orthogonal matrix times ``gain``: the Q
    of a QR decomposition of a Gaussian matrix, with signs fixed by R's diagonal (uniform over
    the orthogonal group).

    Args:
        tensor: Tensor with at least 2 dimensions.
        gain: Scaling factor. Default: 1.
        generator: Optional ``nd.Generator``.
    """
    if tensor.dim() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    with ndgrad.no_grad():
        flat = ndcore.empty((rows, cols), dtype=tensor.dtype, device=tensor.device).normal_(0, 1, generator=generator)
        if rows < cols:
            flat = flat.t()
        q, r = ndcore.linalg.qr(flat)
        q = q * r.diagonal().sign()
        if rows < cols:
            q = q.t()
        tensor.copy_(q.reshape(tuple(tensor.shape)))
        tensor.mul_(gain)
        return tensor


def sparse_(tensor, sparsity: float, std: float = 0.01, generator=None):
    """Fills a 2-D ``tensor`` from N(0, std^2), then zeroes ``ceil(sparsity * rows)`` random
    entries in every column.

    Args:
        tensor: A 2-D tensor.
        sparsity: Fraction of each column to set to zero.
        std: Standard deviation of the non-zero values. Default: 0.01.
        generator: Optional ``nd.Generator``.
    """
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = tensor.shape
    num_zeros = int(math.ceil(sparsity * rows))
    with ndgrad.no_grad():
        tensor.normal_(0, std, generator=generator)
        if num_zeros > 0:
            # an independent random permutation per column: the rank of iid uniform keys
            keys = ndcore.empty((rows, cols), device=tensor.device).uniform_(0, 1, generator=generator)
            rank = keys.argsort(dim=0).argsort(dim=0)
            tensor.masked_fill_(rank < num_zeros, 0)
        return tensor


def _deprecated(new):
    name = new.__name__[:-1]

    def old(*args, **kwargs):
        warnings.warn(f"`nn.init.{name}` is now deprecated in favor of `nn.init.{new.__name__}`.", FutureWarning,
                      stacklevel=2)
        return new(*args, **kwargs)

    old.__name__ = old.__qualname__ = name
    old.__doc__ = f"Deprecated alias of :func:`{new.__name__}`."
    return old


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
