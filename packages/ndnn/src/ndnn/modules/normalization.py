"""Normalisation layers: ``LayerNorm``, ``GroupNorm``, ``LocalResponseNorm``, ``RMSNorm``."""
from __future__ import annotations

import numbers

import ndcore as nd

from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["LocalResponseNorm", "LayerNorm", "GroupNorm", "RMSNorm"]


class LocalResponseNorm(Module):
    """:math:`b_c = a_c \\left(k + \\frac{\\alpha}{n} \\sum_{c'} a_{c'}^2\\right)^{-\\beta}` over ``size``
    neighbouring channels.

    Args:
        size: Number of neighbouring channels.
        alpha: Multiplicative factor.
        beta: Exponent.
        k: Additive factor.
    """

    __constants__ = ["size", "alpha", "beta", "k"]

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return "{size}, alpha={alpha}, beta={beta}, k={k}".format(**self.__dict__)


class LayerNorm(Module):
    """:math:`y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}} \\gamma + \\beta` over the
    last ``len(normalized_shape)`` dims (biased variance).

    Args:
        normalized_shape: Trailing shape to normalise over (int or sequence).
        eps: Added to the variance.
        elementwise_affine: Learn :math:`\\gamma` (ones) and :math:`\\beta` (zeros).
        bias: Learn :math:`\\beta` (with ``elementwise_affine``).
        device: Device of the parameters.
        dtype: Dtype of the parameters.
    """

    __constants__ = ["normalized_shape", "eps", "elementwise_affine"]

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if self.elementwise_affine:
            self.weight = Parameter(nd.empty(self.normalized_shape, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(nd.empty(self.normalized_shape, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return ("{normalized_shape}, eps={eps}, elementwise_affine={elementwise_affine}, "
                "bias={use_bias}".format(**self.__dict__, use_bias=self.bias is not None))


class GroupNorm(Module):
    """Splits the ``C`` channels into ``num_groups`` groups and normalises each group of each sample;
    :math:`\\gamma`, :math:`\\beta` are per channel.

    Args:
        num_groups: Number of groups (divides ``num_channels``).
        num_channels: Channels ``C``.
        eps: Added to the variance.
        affine: Learn per-channel :math:`\\gamma` (ones) and :math:`\\beta` (zeros).
        device: Device of the parameters.
        dtype: Dtype of the parameters.
        bias: Learn :math:`\\beta` (with ``affine``).
    """

    __constants__ = ["num_groups", "num_channels", "eps", "affine"]

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if self.affine:
            self.weight = Parameter(nd.empty(num_channels, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(nd.empty(num_channels, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return ("{num_groups}, {num_channels}, eps={eps}, affine={affine}, "
                "bias={use_bias}".format(**self.__dict__, use_bias=self.bias is not None))


class RMSNorm(Module):
    """:math:`y = \\frac{x}{\\sqrt{\\mathrm{E}[x^2] + \\epsilon}} \\gamma` over the last dims.

    Args:
        normalized_shape: Trailing shape to normalise over.
        eps: Added to the mean square; None uses the dtype's machine epsilon.
        elementwise_affine: Learn :math:`\\gamma` (ones).
        device: Device of the parameters.
        dtype: Dtype of the parameters.
    """

    __constants__ = ["normalized_shape", "eps", "elementwise_affine"]

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if self.elementwise_affine:
            self.weight = Parameter(nd.empty(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return "{normalized_shape}, eps={eps}, elementwise_affine={elementwise_affine}".format(**self.__dict__)
