"""Padding layers: zero, constant, reflection, replication and circular padding (1-3d)."""
from __future__ import annotations

from .. import functional as F
from ..functional._utils import _ntuple, _pair, _quadruple
from .module import Module

__all__ = [
    "CircularPad1d", "CircularPad2d", "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
]

_sextuple = _ntuple(6, "_sextuple")


def _check_dims(module, input, lo, hi):
    if input.dim() not in (lo, hi):
        raise ValueError(f"[{type(module).__name__}] expected {lo}D or {hi}D input (got {input.dim()}D input of shape "
                         f"{tuple(input.shape)})")


class _CircularPadNd(Module):
    __constants__ = ["padding"]
    _dims = (0, 0)

    def forward(self, input):
        _check_dims(self, input, *self._dims)
        return F.pad(input, self.padding, "circular")

    def extra_repr(self):
        return f"{self.padding}"


class CircularPad1d(_CircularPadNd):
    """Pads the last dim by wrapping around (``padding`` int or ``(left, right)``).

    Args:
        padding: Size of the padding.
    """

    _dims = (2, 3)

    def __init__(self, padding):
        super().__init__()
        self.padding = _pair(padding)


class CircularPad2d(_CircularPadNd):
    """Pads the last two dims by wrapping around (``(left, right, top, bottom)``).

    Args:
        padding: Size of the padding.
    """

    _dims = (3, 4)

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(padding)


class CircularPad3d(_CircularPadNd):
    """Pads the last three dims by wrapping around (``(left, right, top, bottom, front, back)``).

    Args:
        padding: Size of the padding.
    """

    _dims = (4, 5)

    def __init__(self, padding):
        super().__init__()
        self.padding = _sextuple(padding)


class _ConstantPadNd(Module):
    __constants__ = ["padding", "value"]

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, input):
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dim with ``value``.

    Args:
        padding: Int or ``(left, right)``.
        value: Fill value.
    """

    def __init__(self, padding, value):
        super().__init__(value)
        self.padding = _pair(padding)


class ConstantPad2d(_ConstantPadNd):
    """Pads the last two dims with ``value``.

    Args:
        padding: Int or ``(left, right, top, bottom)``.
        value: Fill value.
    """

    def __init__(self, padding, value):
        super().__init__(value)
        self.padding = _quadruple(padding)


class ConstantPad3d(_ConstantPadNd):
    """Pads the last three dims with ``value``.

    Args:
        padding: Int or ``(left, right, top, bottom, front, back)``.
        value: Fill value.
    """

    def __init__(self, padding, value):
        super().__init__(value)
        self.padding = _sextuple(padding)


class _ReflectionPadNd(Module):
    __constants__ = ["padding"]

    def forward(self, input):
        return F.pad(input, self.padding, "reflect")

    def extra_repr(self):
        return f"{self.padding}"


class ReflectionPad1d(_ReflectionPadNd):
    """Pads the last dim with its reflection (the edge is not repeated).

    Args:
        padding: Int or ``(left, right)``, each smaller than the dim.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _pair(padding)


class ReflectionPad2d(_ReflectionPadNd):
    """Pads the last two dims with their reflection.

    Args:
        padding: Int or ``(left, right, top, bottom)``.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(padding)


class ReflectionPad3d(_ReflectionPadNd):
    """Pads the last three dims with their reflection.

    Args:
        padding: Int or ``(left, right, top, bottom, front, back)``.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _sextuple(padding)


class _ReplicationPadNd(Module):
    __constants__ = ["padding"]

    def forward(self, input):
        return F.pad(input, self.padding, "replicate")

    def extra_repr(self):
        return f"{self.padding}"


class ReplicationPad1d(_ReplicationPadNd):
    """Pads the last dim by repeating its edge values.

    Args:
        padding: Int or ``(left, right)``.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _pair(padding)


class ReplicationPad2d(_ReplicationPadNd):
    """Pads the last two dims by repeating their edge values.

    Args:
        padding: Int or ``(left, right, top, bottom)``.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(padding)


class ReplicationPad3d(_ReplicationPadNd):
    """Pads the last three dims by repeating their edge values.

    Args:
        padding: Int or ``(left, right, top, bottom, front, back)``.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _sextuple(padding)


class ZeroPad1d(ConstantPad1d):
    """Pads the last dim with zeros.

    Args:
        padding: Int or ``(left, right)``.
    """

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad2d(ConstantPad2d):
    """Pads the last two dims with zeros.

    Args:
        padding: Int or ``(left, right, top, bottom)``.
    """

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad3d(ConstantPad3d):
    """Pads the last three dims with zeros.

    Args:
        padding: Int or ``(left, right, top, bottom, front, back)``.
    """

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"
