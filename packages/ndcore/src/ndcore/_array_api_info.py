"""The array API standard's inspection object (``__array_namespace_info__()``) and data type
functions (finfo, iinfo, isdtype, result_type, can_cast) for ndcore."""
from __future__ import annotations

import math

from . import _C

Tensor = _C.Tensor
_INTS = (_C.int8, _C.int16, _C.int32, _C.int64, _C.uint8)
_FLOATS = (_C.float16, _C.bfloat16, _C.float32, _C.float64)

# The standard's dtypes that ndcore has (float16/bfloat16 are extras the standard does not name).
_DTYPES = {d.name: d for d in (_C.bool, _C.int8, _C.int16, _C.int32, _C.int64, _C.uint8, _C.float32, _C.float64)}


class Info:
    """What ndcore supports: capabilities, devices and dtypes (see the array API's inspection API)."""

    __module__ = "ndcore"

    def capabilities(self) -> dict:
        # No fixed rank limit: shapes and strides are dynamic vectors in the C++ core.
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": None}

    def default_device(self):
        return _C.device("cpu")

    def devices(self) -> list:
        out = [_C.device("cpu")]
        for name in list(_C.device_types())[1:]:
            out += [_C.device(name, i) for i in range(_C.device_count(name))]
        return out

    def default_dtypes(self, *, device=None) -> dict:
        # ndcore has no complex dtypes; "complex floating" is None (see README, Array API).
        return {"real floating": _C.get_default_dtype(), "complex floating": None, "integral": _C.int64,
                "indexing": _C.int64}

    def dtypes(self, *, device=None, kind=None) -> dict:
        if kind is None:
            return dict(_DTYPES)
        return {n: d for n, d in _DTYPES.items() if isdtype(d, kind)}


# ---- data type functions ------------------------------------------------------------------------
class finfo:  # noqa: N801
    """Machine limits of a floating dtype: bits, eps, max, min, smallest_normal, dtype."""

    _LIMITS = {  # bits, eps, max, smallest_normal
        "float16": (16, 2.0 ** -10, 65504.0, 2.0 ** -14),
        "bfloat16": (16, 2.0 ** -7, 3.3895313892515355e38, 2.0 ** -126),
        "float32": (32, 2.0 ** -23, 3.4028234663852886e38, 2.0 ** -126),
        "float64": (64, 2.0 ** -52, 1.7976931348623157e308, 2.0 ** -1022),
    }

    def __init__(self, type, /):  # noqa: A002
        dt = type.dtype if isinstance(type, Tensor) else type
        if not isinstance(dt, _C.dtype) or dt.name not in self._LIMITS:
            raise TypeError(f"[finfo] expected a floating dtype or array, got {type!r}")
        self.bits, self.eps, self.max, self.smallest_normal = self._LIMITS[dt.name]
        self.min = -self.max
        self.tiny = self.smallest_normal
        self.resolution = 10.0 ** -math.floor(-math.log10(self.eps))
        self.dtype = dt

    def __repr__(self):
        return f"finfo(dtype={self.dtype}, eps={self.eps}, max={self.max}, smallest_normal={self.smallest_normal})"


class iinfo:  # noqa: N801
    """Limits of an integer dtype: bits, max, min, dtype."""

    def __init__(self, type, /):  # noqa: A002
        dt = type.dtype if isinstance(type, Tensor) else type
        if dt not in _INTS:
            raise TypeError(f"[iinfo] expected an integer dtype or array, got {type!r}")
        self.bits = dt.itemsize * 8
        signed = dt != _C.uint8
        self.min = -2 ** (self.bits - 1) if signed else 0
        self.max = 2 ** (self.bits - 1 if signed else self.bits) - 1
        self.dtype = dt

    def __repr__(self):
        return f"iinfo(dtype={self.dtype}, min={self.min}, max={self.max})"


_KINDS = {
    "bool": (_C.bool,),
    "signed integer": (_C.int8, _C.int16, _C.int32, _C.int64),
    "unsigned integer": (_C.uint8,),
    "integral": _INTS,
    "real floating": _FLOATS,
    "complex floating": (),
    "numeric": _INTS + _FLOATS,
}


def isdtype(dtype, kind):
    """Whether ``dtype`` is of ``kind``: a dtype, a kind name ('bool', 'signed integer',
    'unsigned integer', 'integral', 'real floating', 'complex floating', 'numeric') or a tuple of them."""
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, _C.dtype):
        return dtype == kind
    if kind not in _KINDS:
        raise ValueError(f"[isdtype] unknown kind {kind!r}; expected a dtype or one of {sorted(_KINDS)}")
    return dtype in _KINDS[kind]


def result_type(*arrays_and_dtypes):
    """The dtype the type promotion rules give for arrays, dtypes and Python scalars.

    Python scalars only decide the kind (as they do in binary ops): an int scalar leaves an
    integer dtype as it is, a float scalar turns bool/integer into the default float dtype.
    """
    dts = [a.dtype if isinstance(a, Tensor) else a for a in arrays_and_dtypes
           if isinstance(a, (Tensor, _C.dtype))]
    scalars = [a for a in arrays_and_dtypes if not isinstance(a, (Tensor, _C.dtype))]
    if not dts:
        raise ValueError("[result_type] at least one array or dtype is required")
    out = dts[0]
    for d in dts[1:]:
        out = _C.promote_types(out, d)
    for s in scalars:
        if isinstance(s, bool):
            continue
        if isinstance(s, int):
            out = _C.int64 if out == _C.bool else out
        elif isinstance(s, float):
            out = out if out in _FLOATS else _C.get_default_dtype()
        else:
            raise TypeError(f"[result_type] expected arrays, dtypes or Python scalars, got {s!r}")
    return out


def _std_can_cast(from_, to, /):
    src = from_.dtype if isinstance(from_, Tensor) else from_
    if src == to or src == _C.bool:
        return True
    if src in _FLOATS and to not in _FLOATS or to == _C.bool:
        return False
    if src in _INTS and to in _FLOATS:
        return True  # a mixed-kind cast the standard leaves to the library; torch allows it
    return _C.promote_types(src, to) == to
