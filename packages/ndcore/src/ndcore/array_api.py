"""ndcore as a namespace of the Python array API standard (2024.12): what ``x.__array_namespace__()``
returns. Every name here behaves as the standard says, also for the calls ``ndcore`` reads the torch
way (``sort(x)`` returns values, ``var(x)`` uses correction=0, ``nonzero(x)`` returns a tuple,
``meshgrid`` defaults to 'xy'); see Note [Array API spellings] in ``_array_api.py``.

Not provided: complex dtypes and complex-only behaviour, uint16/uint32/uint64, the ``fft`` extension.
"""
from __future__ import annotations

import types as _types

import ndcore as _nd

from . import _array_api

__array_api_version__ = "2024.12"

_CONSTANTS = ["e", "inf", "nan", "newaxis", "pi"]
_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64"]
_FUNCTIONS = """
    arange asarray empty empty_like eye from_dlpack full full_like linspace meshgrid ones ones_like tril triu
    zeros zeros_like
    astype can_cast finfo iinfo isdtype result_type
    abs acos acosh add asin asinh atan atan2 atanh bitwise_and bitwise_left_shift bitwise_invert bitwise_or
    bitwise_right_shift bitwise_xor ceil clip conj copysign cos cosh divide equal exp expm1 floor floor_divide
    greater greater_equal hypot imag isfinite isinf isnan less less_equal log log1p log2 log10 logaddexp
    logical_and logical_not logical_or logical_xor maximum minimum multiply negative nextafter not_equal positive
    pow real reciprocal remainder round sign signbit sin sinh square sqrt subtract tan tanh trunc
    take take_along_axis
    __array_namespace_info__
    matmul matrix_transpose tensordot vecdot
    broadcast_arrays broadcast_to concat expand_dims flip moveaxis permute_dims repeat reshape roll squeeze stack
    tile unstack
    argmax argmin count_nonzero nonzero searchsorted where
    unique_all unique_counts unique_inverse unique_values
    argsort sort
    cumulative_prod cumulative_sum max mean min prod std sum var
    all any diff
""".split()
LINALG_FUNCTIONS = """
    cholesky cross det diagonal eigh eigvalsh inv matmul matrix_norm matrix_power matrix_rank matrix_transpose
    outer pinv qr slogdet solve svd svdvals tensordot trace vecdot vector_norm
""".split()
# In the 2024.12 standard but not in ndcore, with the reason.
UNSUPPORTED = {
    "uint16": "no such dtype in ndcore", "uint32": "no such dtype in ndcore", "uint64": "no such dtype in ndcore",
    "complex64": "ndcore has no complex dtypes", "complex128": "ndcore has no complex dtypes",
    "fft": "the fft extension needs complex dtypes",
}

__all__ = _CONSTANTS + _DTYPES + _FUNCTIONS + ["linalg", "__array_api_version__"]

for _name in _CONSTANTS + _DTYPES + _FUNCTIONS:
    globals()[_name] = _array_api.STRICT.get(_name) or getattr(_nd, _name)


def _solve(x1, x2, /):
    """Solves x1 @ x = x2; x2 is a vector only when 1-D, otherwise a (stack of) matrices."""
    if x2.dim() > 1:
        batch = _nd.broadcast_shapes(tuple(x1.shape[:-2]), tuple(x2.shape[:-2]))
        x1, x2 = x1.expand(batch + tuple(x1.shape[-2:])), x2.expand(batch + tuple(x2.shape[-2:]))
    return _nd.linalg.solve(x1, x2)


linalg = _types.ModuleType(__name__ + ".linalg", "The array API's linalg extension over ndcore.linalg.")
for _name in LINALG_FUNCTIONS:
    setattr(linalg, _name, getattr(_nd.linalg, _name))
linalg.solve = _solve
linalg.__all__ = list(LINALG_FUNCTIONS)
del _name
