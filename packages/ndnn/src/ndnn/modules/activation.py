"""Activation layers: thin modules over :mod:`ndnn.functional`'s activations (torch's names and reprs)."""
from __future__ import annotations

import warnings

import ndcore as nd

from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = [
    "Threshold", "ReLU", "RReLU", "Hardtanh", "ReLU6", "Sigmoid", "Hardsigmoid", "Tanh", "SiLU", "Mish", "Hardswish",
    "ELU", "CELU", "SELU", "GLU", "GELU", "Hardshrink", "LeakyReLU", "LogSigmoid", "Softplus", "Softshrink", "PReLU",
    "Softsign", "Tanhshrink", "Softmin", "Softmax", "Softmax2d", "LogSoftmax",
]


def _inplace_str(inplace, first=False):
    if not inplace:
        return ""
    return "inplace=True" if first else ", inplace=True"


class Threshold(Module):
    """:math:`y = x` if :math:`x > \\text{threshold}` else ``value``.

    Args:
        threshold: Threshold.
        value: Replacement value.
        inplace: Operate in place.
    """

    __constants__ = ["threshold", "value", "inplace"]

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold = threshold
        self.value = value
        self.inplace = inplace

    def forward(self, input):
        return F.threshold(input, self.threshold, self.value, self.inplace)

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}{_inplace_str(self.inplace)}"


class ReLU(Module):
    """:math:`\\mathrm{ReLU}(x) = \\max(0, x)`.

    Args:
        inplace: Operate in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return input.relu_() if self.inplace else nd.relu(input)

    def extra_repr(self):
        return _inplace_str(self.inplace, True)


class RReLU(Module):
    """Randomized leaky ReLU: slope :math:`a \\sim U(\\text{lower}, \\text{upper})` in training,
    :math:`(\\text{lower} + \\text{upper}) / 2` in evaluation.

    Args:
        lower: Lower bound of the slope.
        upper: Upper bound of the slope.
        inplace: Operate in place.
    """

    __constants__ = ["lower", "upper", "inplace"]

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        super().__init__()
        self.lower = lower
        self.upper = upper
        self.inplace = inplace

    def forward(self, input):
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}{_inplace_str(self.inplace)}"


class Hardtanh(Module):
    """:math:`\\min(\\max(x, \\text{min\\_val}), \\text{max\\_val})`.

    Args:
        min_val: Lower bound.
        max_val: Upper bound.
        inplace: Operate in place.
    """

    __constants__ = ["min_val", "max_val", "inplace"]

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__()
        if min_value is not None:
            warnings.warn("keyword argument `min_value` is deprecated and renamed to `min_val`", FutureWarning,
                          stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn("keyword argument `max_value` is deprecated and renamed to `max_val`", FutureWarning,
                          stacklevel=2)
            max_val = max_value
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace
        if self.max_val <= self.min_val:
            raise ValueError(f"[Hardtanh] max_val ({self.max_val}) must be greater than min_val ({self.min_val})")

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}{_inplace_str(self.inplace)}"


class ReLU6(Hardtanh):
    """:math:`\\min(\\max(0, x), 6)`.

    Args:
        inplace: Operate in place.
    """

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return _inplace_str(self.inplace, True)


class Sigmoid(Module):
    """:math:`\\sigma(x) = 1 / (1 + e^{-x})`."""

    def forward(self, input):
        return nd.sigmoid(input)


class Hardsigmoid(Module):
    """:math:`\\mathrm{ReLU6}(x + 3) / 6`.

    Args:
        inplace: Operate in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.hardsigmoid(input, self.inplace)


class Tanh(Module):
    """:math:`\\tanh(x)`."""

    def forward(self, input):
        return nd.tanh(input)


class SiLU(Module):
    """:math:`x\\,\\sigma(x)` (swish).

    Args:
        inplace: Operate in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input, self.inplace)

    def extra_repr(self):
        return _inplace_str(self.inplace, True)


class Mish(Module):
    """:math:`x \\tanh(\\mathrm{softplus}(x))`.

    Args:
        inplace: Operate in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.mish(input, self.inplace)

    def extra_repr(self):
        return _inplace_str(self.inplace, True)


class Hardswish(Module):
    """:math:`x\\,\\mathrm{ReLU6}(x + 3) / 6`.

    Args:
        inplace: Operate in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.hardswish(input, self.inplace)


class ELU(Module):
    """:math:`x` if :math:`x > 0` else :math:`\\alpha (e^x - 1)`.

    Args:
        alpha: Negative saturation.
        inplace: Operate in place.
    """

    __constants__ = ["alpha", "inplace"]

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}{_inplace_str(self.inplace)}"


class CELU(Module):
    """:math:`\\max(0, x) + \\min(0, \\alpha (e^{x/\\alpha} - 1))`.

    Args:
        alpha: The :math:`\\alpha` value.
        inplace: Operate in place.
    """

    __constants__ = ["alpha", "inplace"]

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return F.celu(input, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}{_inplace_str(self.inplace)}"


class SELU(Module):
    """Scaled ELU :math:`\\lambda\\,\\mathrm{ELU}(x, \\alpha)`,
    :math:`\\alpha \\approx 1.6733`, :math:`\\lambda \\approx 1.0507`.

    Args:
        inplace: Operate in place.
    """

    __constants__ = ["inplace"]

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.selu(input, self.inplace)

    def extra_repr(self):
        return _inplace_str(self.inplace, True)


class GLU(Module):
    """Gated linear unit :math:`a \\otimes \\sigma(b)`, ``a, b`` the halves of the input along ``dim``.

    Args:
        dim: Dimension to split.
    """

    __constants__ = ["dim"]

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.glu(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class GELU(Module):
    """:math:`x\\,\\Phi(x)` (``approximate='tanh'``: the tanh approximation).

    Args:
        approximate: ``'none'`` or ``'tanh'``.
    """

    __constants__ = ["approximate"]

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Hardshrink(Module):
    """:math:`x` if :math:`|x| > \\lambda` else 0.

    Args:
        lambd: The :math:`\\lambda`.
    """

    __constants__ = ["lambd"]

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input):
        return F.hardshrink(input, self.lambd)

    def extra_repr(self):
        return f"{self.lambd}"


class LeakyReLU(Module):
    """:math:`\\max(0, x) + \\text{negative\\_slope} \\min(0, x)`.

    Args:
        negative_slope: Slope for negative inputs.
        inplace: Operate in place.
    """

    __constants__ = ["inplace", "negative_slope"]

    def __init__(self, negative_slope=1e-2, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}{_inplace_str(self.inplace)}"


class LogSigmoid(Module):
    """:math:`\\log \\sigma(x)`."""

    def forward(self, input):
        return F.logsigmoid(input)


class Softplus(Module):
    """:math:`\\frac1\\beta \\log(1 + e^{\\beta x})`, linear above ``threshold``.

    Args:
        beta: The :math:`\\beta`.
        threshold: Linear where :math:`\\beta x` exceeds it.
    """

    __constants__ = ["beta", "threshold"]

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        return nd.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Softshrink(Module):
    """:math:`x - \\lambda` above :math:`\\lambda`, :math:`x + \\lambda` below :math:`-\\lambda`, else 0.

    Args:
        lambd: The :math:`\\lambda` (non-negative).
    """

    __constants__ = ["lambd"]

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = lambd

    def forward(self, input):
        return F.softshrink(input, self.lambd)

    def extra_repr(self):
        return str(self.lambd)


class PReLU(Module):
    """:math:`\\max(0, x) + a \\min(0, x)` with a learned slope ``a`` (one, or one per channel).

    Args:
        num_parameters: 1 or the number of input channels.
        init: Initial value of ``a``.
    """

    __constants__ = ["num_parameters"]

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        self.num_parameters = num_parameters
        super().__init__()
        self.init = init
        self.weight = Parameter(nd.empty(num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self):
        init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Softsign(Module):
    """:math:`x / (1 + |x|)`."""

    def forward(self, input):
        return F.softsign(input)


class Tanhshrink(Module):
    """:math:`x - \\tanh(x)`."""

    def forward(self, input):
        return F.tanhshrink(input)


class Softmin(Module):
    """:math:`\\mathrm{softmax}(-x)` along ``dim``.

    Args:
        dim: Dimension to normalise.
    """

    __constants__ = ["dim"]

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmin(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(Module):
    """:math:`e^{x_i} / \\sum_j e^{x_j}` along ``dim``.

    Args:
        dim: Dimension to normalise.
    """

    __constants__ = ["dim"]

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax2d(Module):
    """Softmax over the channels (dim -3) of ``(N, C, H, W)`` or ``(C, H, W)`` input."""

    def forward(self, input):
        if input.dim() not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.dim()}D instead")
        return F.softmax(input, -3, _stacklevel=5)


class LogSoftmax(Module):
    """:math:`x_i - \\log \\sum_j e^{x_j}` along ``dim``.

    Args:
        dim: Dimension to normalise.
    """

    __constants__ = ["dim"]

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"

# torch defines MultiheadAttention in this module; scripts and allow-lists name it here
from ._mha import MultiheadAttention  # noqa: E402

__all__.append("MultiheadAttention")
