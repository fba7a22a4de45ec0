"""Activation functions (``nd.nn.functional.relu`` ...), compositions of ndcore ops.

Each takes and returns an ``ndcore.Tensor``; autograd records the ndcore ops they are made of.
The ``name_`` variants write into ``input`` and return it.
"""
from __future__ import annotations

import warnings

import ndcore as nd
from ndcore import _C

from ..amp import _lowering_dtype

__all__ = [
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "elu", "elu_", "selu", "selu_", "celu",
    "celu_", "gelu", "silu", "mish", "sigmoid", "tanh", "hardtanh", "hardtanh_", "hardswish", "hardsigmoid",
    "softplus", "softsign", "softmax", "softmin", "log_softmax", "glu", "threshold", "threshold_", "logsigmoid",
    "tanhshrink", "softshrink", "hardshrink", "rrelu", "rrelu_", "gumbel_softmax", "normalize", "one_hot",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _inplace(input, fn, *args):
    # Computed out of place, then written back. Under autograd the formula runs on a clone, so
    # the values its backward saved are not the ones the write-back overwrites.
    src = input.clone() if input.requires_grad else input
    return input.copy_(fn(src, *args))


def relu(input, inplace=False):
    """Rectified linear unit, :math:`\\max(0, x)`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input`` with the result.
    """
    return input.relu_() if inplace else nd.relu(input)


def relu_(input):
    """In-place :func:`relu`."""
    return input.relu_()


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """Clamps to ``[min_val, max_val]``: :math:`\\min(\\max(x, a), b)`.

    Args:
        input: Tensor of any shape.
        min_val: Lower bound.
        max_val: Upper bound.
        inplace: Overwrite ``input``.
    """
    if min_val > max_val:
        raise ValueError(f"[hardtanh] min_val ({min_val}) cannot be greater than max_val ({max_val})")
    if not (input.requires_grad and _C.is_grad_enabled()):
        return input.clamp_(min_val, max_val) if inplace else input.clamp(min_val, max_val)
    if inplace:
        return _inplace(input, hardtanh, min_val, max_val)
    # torch's hardtanh passes the gradient on the open interval only; clamp's includes the bounds
    # (relu6 at 0 and 6, hardsigmoid at +-3, hardswish at -3 and 3 all sit on one)
    inside = (input > min_val).logical_and(input < max_val)
    return nd.where(inside, input, input.detach().clamp(min_val, max_val))


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    """In-place :func:`hardtanh`."""
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    """:math:`\\min(\\max(0, x), 6)`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input``.
    """
    return hardtanh(input, 0.0, 6.0, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """:math:`x` for :math:`x > 0`, else :math:`\\text{negative\\_slope} \\cdot x`.

    Args:
        input: Tensor of any shape.
        negative_slope: Slope for negative inputs.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, leaky_relu, negative_slope)
    out = nd.where(input > 0, input, input * negative_slope)
    return out


def leaky_relu_(input, negative_slope=0.01):
    """In-place :func:`leaky_relu`."""
    return leaky_relu(input, negative_slope, inplace=True)


def prelu(input, weight):
    """Parametric ReLU: :math:`\\max(0, x) + a \\min(0, x)` with a learned ``a`` per channel.

    Args:
        input: Tensor ``(N, C, *)`` (or ``(C,)``/scalar).
        weight: Tensor with 1 element or ``C`` elements (channels are dim 1, or dim 0 for 1-D input).
    """
    n = weight.numel()
    if n != 1:
        ch = 0 if input.dim() < 2 else 1
        if input.dim() == 0 or input.shape[ch] != n:
            raise ValueError(f"[prelu] weight has {n} elements but input of shape {tuple(input.shape)} has "
                             f"{input.shape[ch] if input.dim() else 1} channels (dim {ch}); expected 1 or that many")
        weight = weight.reshape((n,) + (1,) * (input.dim() - ch - 1))
    elif weight.dim() != 0:
        weight = weight.reshape(())
    out = nd.where(input > 0, input, input * weight)
    lower = _lowering_dtype(out.device.type)
    # torch lowers prelu under CPU autocast (float32 only, as the other 'lower' ops)
    return out.to(lower) if lower is not None and out.dtype == nd.float32 else out


def elu(input, alpha=1.0, inplace=False):
    """Exponential linear unit: :math:`x` for :math:`x > 0`, else :math:`\\alpha (e^x - 1)`.

    Args:
        input: Tensor of any shape.
        alpha: Saturation value for negative inputs.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, elu, alpha)
    # expm1 of min(x, 0) keeps the unused branch finite, so its gradient is 0 and not 0 * inf.
    out = nd.where(input > 0, input, input.clamp(max=0).expm1() * alpha)
    return out


def elu_(input, alpha=1.0):
    """In-place :func:`elu`."""
    return elu(input, alpha, inplace=True)


def selu(input, inplace=False):
    """Scaled ELU: :math:`\\lambda\\,\\text{elu}(x, \\alpha)`, with :math:`\\alpha \\approx 1.6733`,
    :math:`\\lambda \\approx 1.0507`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, selu)
    out = nd.where(input > 0, input * _SELU_SCALE, input.clamp(max=0).expm1() * (_SELU_ALPHA * _SELU_SCALE))
    return out


def selu_(input):
    """In-place :func:`selu`."""
    return selu(input, inplace=True)


def celu(input, alpha=1.0, inplace=False):
    """:math:`\\max(0, x) + \\min(0, \\alpha (e^{x/\\alpha} - 1))`.

    Args:
        input: Tensor of any shape.
        alpha: The :math:`\\alpha` value; must not be 0.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, celu, alpha)
    if alpha == 0:
        raise ValueError("[celu] ZeroDivisionError: alpha cannot be 0 for CELU")
    out = nd.where(input > 0, input, (input.clamp(max=0) * (1.0 / alpha)).expm1() * alpha)
    return out


def celu_(input, alpha=1.0):
    """In-place :func:`celu`."""
    return celu(input, alpha, inplace=True)


def gelu(input, approximate="none"):
    """Gaussian error linear unit :math:`x\\,\\Phi(x)`; ``approximate='tanh'`` uses the tanh form.

    Args:
        input: Tensor of any shape.
        approximate: ``'none'`` (exact, via erf) or ``'tanh'``.
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"[gelu] approximate argument must be either none or tanh, got {approximate!r}")
    return nd.gelu(input, approximate=approximate)


def silu(input, inplace=False):
    """Sigmoid linear unit :math:`x\\,\\sigma(x)`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input``.
    """
    return input.silu_() if inplace else nd.silu(input)


def mish(input, inplace=False):
    """:math:`x \\tanh(\\text{softplus}(x))`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, mish)
    out = input * nd.softplus(input).tanh()
    return out


def sigmoid(input):
    """Logistic function :math:`1 / (1 + e^{-x})`."""
    return nd.sigmoid(input)


def tanh(input):
    """Hyperbolic tangent."""
    return nd.tanh(input)


def hardswish(input, inplace=False):
    """:math:`x \\cdot \\text{ReLU6}(x + 3) / 6`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, hardswish)
    out = input * hardtanh(input + 3.0, 0.0, 6.0) * (1.0 / 6.0)
    return out


def hardsigmoid(input, inplace=False):
    """:math:`\\text{ReLU6}(x + 3) / 6`.

    Args:
        input: Tensor of any shape.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, hardsigmoid)
    out = hardtanh(input * (1.0 / 6.0) + 0.5, 0.0, 1.0)
    return out


def softplus(input, beta=1.0, threshold=20.0):
    """:math:`\\frac{1}{\\beta}\\log(1 + e^{\\beta x})`, linear where :math:`\\beta x > \\text{threshold}`.

    Args:
        input: Tensor of any shape.
        beta: The :math:`\\beta` value.
        threshold: Above ``beta * x > threshold`` the result is ``x``.
    """
    return nd.softplus(input, beta, threshold)


def softsign(input):
    """:math:`x / (1 + |x|)`."""
    return input / (input.abs() + 1)


def _softmax_dim(name, ndim, stacklevel):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """:math:`e^{x_i} / \\sum_j e^{x_j}` along ``dim``.

    Args:
        input: Tensor.
        dim: Dimension to normalise; omitted, torch's legacy rule picks 0 for 0-, 1- and 3-D input,
            else 1 (with a deprecation warning).
        dtype: Cast ``input`` to this dtype first.
    """
    if dim is None:
        dim = _softmax_dim("softmax", input.dim(), _stacklevel)
    return nd.softmax(input, dim, dtype)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """:math:`\\text{softmax}(-x)` along ``dim``.

    Args:
        input: Tensor.
        dim: Dimension to normalise (legacy implicit rule as :func:`softmax`).
        dtype: Cast ``input`` to this dtype first.
    """
    if dim is None:
        dim = _softmax_dim("softmin", input.dim(), _stacklevel)
    return nd.softmax(-input if dtype is None else -input.to(dtype), dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """:math:`x_i - \\log \\sum_j e^{x_j}` along ``dim``.

    Args:
        input: Tensor.
        dim: Dimension to normalise (legacy implicit rule as :func:`softmax`).
        dtype: Cast ``input`` to this dtype first.
    """
    if dim is None:
        dim = _softmax_dim("log_softmax", input.dim(), _stacklevel)
    return nd.log_softmax(input, dim, dtype)


def glu(input, dim=-1):
    """Gated linear unit: splits ``input`` in halves :math:`a, b` along ``dim``, returns :math:`a\\,\\sigma(b)`.

    Args:
        input: Tensor whose size along ``dim`` is even.
        dim: Dimension to split.
    """
    if input.dim() == 0:
        raise RuntimeError("[glu] glu does not support scalars because halving size must be even")
    size = input.shape[dim]
    if size % 2:
        raise RuntimeError(f"[glu] Halving dimension must be even, but dimension {dim} is size {size}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def _threshold(input, threshold, value):
    return nd.where(input > threshold, input, value)


def threshold(input, threshold, value, inplace=False):
    """:math:`x` where :math:`x > \\text{threshold}`, else ``value``.

    Args:
        input: Tensor of any shape.
        threshold: Threshold.
        value: Replacement value.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, _threshold, threshold, value)
    return _threshold(input, threshold, value)


def threshold_(input, threshold, value):
    """In-place :func:`threshold`."""
    return _inplace(input, _threshold, threshold, value)


def logsigmoid(input):
    """:math:`\\log \\sigma(x) = -\\text{softplus}(-x)`, stable for large :math:`|x|`."""
    return -nd.softplus(-input)


def tanhshrink(input):
    """:math:`x - \\tanh(x)`."""
    return input - input.tanh()


def softshrink(input, lambd=0.5):
    """:math:`x - \\lambda` above :math:`\\lambda`, :math:`x + \\lambda` below :math:`-\\lambda`, else 0.

    Args:
        input: Tensor of any shape.
        lambd: The :math:`\\lambda` (non-negative).
    """
    if lambd < 0:
        raise ValueError(f"[softshrink] lambda must be greater or equal to 0, but found to be {lambd}.")
    return input - input.clamp(-lambd, lambd)


def hardshrink(input, lambd=0.5):
    """:math:`x` where :math:`|x| > \\lambda`, else 0.

    Args:
        input: Tensor of any shape.
        lambd: The :math:`\\lambda`.
    """
    return nd.where(input.abs() > lambd, input, 0.0)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU: in training the negative slope is drawn from :math:`U(\\text{lower}, \\text{upper})`
    per element; in evaluation it is :math:`(\\text{lower} + \\text{upper}) / 2`.

    Args:
        input: Tensor of any shape.
        lower: Lower bound of the slope.
        upper: Upper bound of the slope.
        training: Draw random slopes.
        inplace: Overwrite ``input``.
    """
    if inplace:
        return _inplace(input, rrelu, lower, upper, training)
    if lower > upper:
        raise ValueError(f"[rrelu] lower bound ({lower}) must be <= upper bound ({upper})")
    if training:
        slope = input.new_empty(input.shape).uniform_(lower, upper)
    else:
        slope = (lower + upper) / 2
    out = nd.where(input > 0, input, input * slope)  # 0 takes the slope, as torch's gradient does
    return out


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    """In-place :func:`rrelu`."""
    return rrelu(input, lower, upper, training, inplace=True)


def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Samples from the Gumbel-softmax distribution; ``hard=True`` returns one-hot samples whose
    gradient is the soft sample's (straight-through).

    Args:
        logits: Unnormalised log-probabilities ``(..., num_features)``.
        tau: Temperature.
        hard: Return one-hot vectors.
        eps: Deprecated, unused.
        dim: Dimension of the categories.
    """
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    # -log(E) with E ~ Exp(1) = -log(-log(U)) is a Gumbel(0, 1) sample.
    u = logits.new_empty(logits.shape).uniform_(0.0, 1.0)
    gumbels = -(-(u.clamp(min=1e-38 if logits.dtype != nd.float64 else 1e-300).log())).log()
    y_soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim, keepdim=True)
    y_hard = logits.new_zeros(logits.shape).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """:math:`v / \\max(\\lVert v \\rVert_p, \\epsilon)` along ``dim``.

    Args:
        input: Tensor of any shape.
        p: Norm exponent.
        dim: Dimension (or dims) to normalise over.
        eps: Lower bound of the denominator.
        out: Optional output tensor.
    """
    denom = input.norm(p, dim, keepdim=True).clamp(min=eps)
    if out is None:
        return input / denom
    return nd.div(input, denom, out=out)


def one_hot(tensor, num_classes=-1):
    """One-hot encoding of an integer tensor: shape ``(*, num_classes)``, dtype int64.

    Args:
        tensor: Integer class indices of any shape.
        num_classes: Number of classes; -1 infers ``max + 1``.
    """
    if tensor.is_floating_point() or tensor.dtype == nd.bool:
        raise TypeError(f"[one_hot] one_hot is only applicable to index tensor, got dtype {tensor.dtype}")
    if tensor.numel() and int(tensor.min()) < 0:
        raise ValueError("[one_hot] Class values must be non-negative.")
    if num_classes == -1:
        if tensor.numel() == 0:
            raise ValueError("[one_hot] Can not infer total number of classes from empty tensor.")
        num_classes = int(tensor.max()) + 1
    elif tensor.numel() and int(tensor.max()) >= num_classes:
        raise ValueError(f"[one_hot] Class values must be smaller than num_classes ({num_classes}), "
                         f"got {int(tensor.max())}.")
    idx = tensor.long().unsqueeze(-1)
    return tensor.new_zeros(tuple(tensor.shape) + (num_classes,), dtype=nd.int64).scatter_(-1, idx, 1)

