"""Argument helpers shared by the functional ops and the layers (torch's ``nn.modules.utils``)."""
from __future__ import annotations

import collections.abc
import warnings
from itertools import repeat

__all__: list[str] = []


def _ntuple(n, name="parse"):
    def parse(x):
        if isinstance(x, int):
            return (x,) * n
        if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
            return tuple(x)
        return tuple(repeat(x, n))

    parse.__name__ = name
    return parse


_single = _ntuple(1, "_single")
_pair = _ntuple(2, "_pair")
_triple = _ntuple(3, "_triple")
_quadruple = _ntuple(4, "_quadruple")


def _reverse_repeat_tuple(t, n):
    """Reverses ``t`` and repeats each element ``n`` times (F.pad's order from a conv's padding)."""
    return tuple(x for x in reversed(t) for _ in range(n))


def _reduction_string(size_average, reduce, emit_warning=True):
    """Maps the legacy ``size_average``/``reduce`` pair onto a ``reduction`` string, as torch does."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        ret = "mean"
    elif reduce:
        ret = "sum"
    else:
        ret = "none"
    if emit_warning:
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                      stacklevel=3)
    return ret


def _reduce(loss, reduction, op="loss"):
    """Applies ``reduction`` ('none' | 'mean' | 'sum') to an elementwise loss."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"[{op}] {reduction} is not a valid value for reduction (expected 'none', 'mean' or 'sum')")
