"""Pooling layers: max/avg/adaptive/LP pooling and max-unpooling (1-3d)."""
from __future__ import annotations

from .. import functional as F
from ..functional._utils import _pair, _single, _triple
from .module import Module

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "AvgPool1d", "AvgPool2d",
    "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d",
    "FractionalMaxPool3d",
]


class _MaxPoolNd(Module):
    __constants__ = ["kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"]

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return ("kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}, "
                "ceil_mode={ceil_mode}".format(**self.__dict__))


class MaxPool1d(_MaxPoolNd):
    """Max over sliding windows of ``(N, C, L)`` input:
    :math:`y_{n,c,l} = \\max_{k} x_{n,c,\\,s l + d k - p}`.

    Args:
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        padding: Implicit ``-inf`` padding on both sides.
        dilation: Spacing between window elements.
        return_indices: Also return the argmax indices.
        ceil_mode: Ceil instead of floor for the output size.
    """

    def forward(self, input):
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class MaxPool2d(_MaxPoolNd):
    """Max over sliding 2-D windows of ``(N, C, H, W)`` input (see :class:`MaxPool1d`).

    Args:
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        padding: Implicit ``-inf`` padding on both sides.
        dilation: Spacing between window elements.
        return_indices: Also return the argmax indices.
        ceil_mode: Ceil instead of floor for the output size.
    """

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class MaxPool3d(_MaxPoolNd):
    """Max over sliding 3-D windows of ``(N, C, D, H, W)`` input (see :class:`MaxPool1d`).

    Args:
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        padding: Implicit ``-inf`` padding on both sides.
        dilation: Spacing between window elements.
        return_indices: Also return the argmax indices.
        ceil_mode: Ceil instead of floor for the output size.
    """

    def forward(self, input):
        return F.max_pool3d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class _MaxUnpoolNd(Module):
    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool1d`: each value goes to its argmax position, zeros elsewhere.

    Args:
        kernel_size: Pooling window size.
        stride: Pooling stride (default ``kernel_size``).
        padding: Pooling padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)

    def forward(self, input, indices, output_size=None):
        return F.max_unpool1d(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxUnpool2d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool2d`.

    Args:
        kernel_size: Pooling window size.
        stride: Pooling stride (default ``kernel_size``).
        padding: Pooling padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(self, input, indices, output_size=None):
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxUnpool3d(_MaxUnpoolNd):
    """Partial inverse of :class:`MaxPool3d`.

    Args:
        kernel_size: Pooling window size.
        stride: Pooling stride (default ``kernel_size``).
        padding: Pooling padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride if stride is not None else kernel_size)
        self.padding = _triple(padding)

    def forward(self, input, indices, output_size=None):
        return F.max_unpool3d(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class _AvgPoolNd(Module):
    __constants__ = ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"]

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over sliding windows of ``(N, C, L)`` input.

    Args:
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        padding: Implicit zero padding on both sides.
        ceil_mode: Ceil instead of floor for the output size.
        count_include_pad: Count the padding zeros in the divisor.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Mean over sliding 2-D windows of ``(N, C, H, W)`` input.

    Args:
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        padding: Implicit zero padding on both sides.
        ceil_mode: Ceil instead of floor for the output size.
        count_include_pad: Count the padding zeros in the divisor.
        divisor_override: Divide by this instead of the window size.
    """

    __constants__ = ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"]

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AvgPool3d(_AvgPoolNd):
    """Mean over sliding 3-D windows of ``(N, C, D, H, W)`` input.

    Args:
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        padding: Implicit zero padding on both sides.
        ceil_mode: Ceil instead of floor for the output size.
        count_include_pad: Count the padding zeros in the divisor.
        divisor_override: Divide by this instead of the window size.
    """

    __constants__ = ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"]

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return F.avg_pool3d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class _AdaptiveAvgPoolNd(Module):
    __constants__ = ["output_size"]

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Mean over adaptive windows giving length ``output_size``.

    Args:
        output_size: Target length.
    """

    def forward(self, input):
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Mean over adaptive windows giving ``output_size`` (None entries keep the input size).

    Args:
        output_size: Target ``(H, W)`` or int.
    """

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Mean over adaptive windows giving ``output_size`` (None entries keep the input size).

    Args:
        output_size: Target ``(D, H, W)`` or int.
    """

    def forward(self, input):
        return F.adaptive_avg_pool3d(input, self.output_size)


class _AdaptiveMaxPoolNd(Module):
    __constants__ = ["output_size", "return_indices"]

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows giving length ``output_size``.

    Args:
        output_size: Target length.
        return_indices: Also return the argmax indices.
    """

    def forward(self, input):
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows giving ``output_size``.

    Args:
        output_size: Target ``(H, W)`` or int; None entries keep the input size.
        return_indices: Also return the argmax indices.
    """

    def forward(self, input):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows giving ``output_size``.

    Args:
        output_size: Target ``(D, H, W)`` or int; None entries keep the input size.
        return_indices: Also return the argmax indices.
    """

    def forward(self, input):
        return F.adaptive_max_pool3d(input, self.output_size, self.return_indices)


class _LPPoolNd(Module):
    __constants__ = ["norm_type", "kernel_size", "stride", "ceil_mode"]

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return ("norm_type={norm_type}, kernel_size={kernel_size}, stride={stride}, "
                "ceil_mode={ceil_mode}".format(**self.__dict__))


class LPPool1d(_LPPoolNd):
    """Power-average pooling :math:`(\\sum_{x \\in W} x^p)^{1/p}` over windows of ``(N, C, L)`` input.

    Args:
        norm_type: The exponent :math:`p`.
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        ceil_mode: Ceil instead of floor for the output size.
    """

    def forward(self, input):
        return F.lp_pool1d(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(_LPPoolNd):
    """Power-average pooling over 2-D windows (see :class:`LPPool1d`).

    Args:
        norm_type: The exponent :math:`p`.
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        ceil_mode: Ceil instead of floor for the output size.
    """

    def forward(self, input):
        return F.lp_pool2d(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)


class LPPool3d(_LPPoolNd):
    """Power-average pooling over 3-D windows (see :class:`LPPool1d`).

    Args:
        norm_type: The exponent :math:`p`.
        kernel_size: Window size.
        stride: Window step (default ``kernel_size``).
        ceil_mode: Ceil instead of floor for the output size.
    """

    def forward(self, input):
        return F.lp_pool3d(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)


class _FractionalMaxPoolNd(Module):
    __constants__ = ["kernel_size", "return_indices", "output_size", "output_ratio"]
    _n = 2

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices=False, _random_samples=None):
        super().__init__()
        tup = _pair if self._n == 2 else _triple
        self.kernel_size = tup(kernel_size)
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        self.output_size = tup(output_size) if output_size is not None else None
        self.output_ratio = tup(output_ratio) if output_ratio is not None else None
        if output_size is None and output_ratio is None:
            raise ValueError(f"{type(self).__name__} requires specifying either an output size, or a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        if self.output_ratio is not None and not all(0 < r < 1 for r in self.output_ratio):
            raise ValueError(f"output_ratio must be between 0 and 1 (got {output_ratio})")


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """Fractional max pooling (Graham, 2014) over ``(N, C, H, W)`` input: ``kernel_size`` windows whose
    starts advance pseudo-randomly by :math:`\\lfloor H_\\text{in}/H_\\text{out} \\rfloor` or one more.

    Args:
        kernel_size: Window size.
        output_size: Target ``(H_out, W_out)``.
        output_ratio: Target size as a fraction of the input size, in ``(0, 1)``.
        return_indices: Also return the argmax indices.
        _random_samples: Fixed ``(N, C, 2)`` offsets (drawn per call when None).
    """

    _n = 2

    def forward(self, input):
        return F.fractional_max_pool2d(input, self.kernel_size, self.output_size, self.output_ratio,
                                       self.return_indices, _random_samples=self._random_samples)


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """3-D fractional max pooling over ``(N, C, D, H, W)`` input (see :class:`FractionalMaxPool2d`).

    Args:
        kernel_size: Window size.
        output_size: Target ``(D_out, H_out, W_out)``.
        output_ratio: Target size as a fraction of the input size, in ``(0, 1)``.
        return_indices: Also return the argmax indices.
        _random_samples: Fixed ``(N, C, 3)`` offsets (drawn per call when None).
    """

    _n = 3

    def forward(self, input):
        return F.fractional_max_pool3d(input, self.kernel_size, self.output_size, self.output_ratio,
                                       self.return_indices, _random_samples=self._random_samples)
