"""The Python array API standard (2024.12) on ndcore, with NumPy (itself a 2024.12 namespace) as the
reference: each function called the standard's way on ``x.__array_namespace__()`` and on NumPy.

Deliberate differences from NumPy, tested explicitly below: the default float dtype is float32
(NumPy: float64), so int -> float functions and float scalars give float32; uint8 sums/products
accumulate in int64 (NumPy: uint64; ndcore has no uint64). Complex dtypes, uint16/32/64 and the
fft extension are out of scope (``array_api.UNSUPPORTED``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import ndcore as nd
from ndcore import array_api as xp
from _array_api_helpers import ALL, FLOATS, INTS, NUMERIC, SHAPES, check, rng, sample, seeded, t  # noqa: F401

# NumPy warns on the reference side (var with correction >= N, nextafter to inf); the values are checked.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# The 2024.12 standard's names (independent of the module under test).
SPEC_NAMES = """
e inf nan newaxis pi
bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float32 float64 complex64 complex128
arange asarray empty empty_like eye from_dlpack full full_like linspace meshgrid ones ones_like tril triu zeros
zeros_like astype can_cast finfo iinfo isdtype result_type
abs acos acosh add asin asinh atan atan2 atanh bitwise_and bitwise_left_shift bitwise_invert bitwise_or
bitwise_right_shift bitwise_xor ceil clip conj copysign cos cosh divide equal exp expm1 floor floor_divide greater
greater_equal hypot imag isfinite isinf isnan less less_equal log log1p log2 log10 logaddexp logical_and logical_not
logical_or logical_xor maximum minimum multiply negative nextafter not_equal positive pow real reciprocal remainder
round sign signbit sin sinh square sqrt subtract tan tanh trunc
take take_along_axis __array_namespace_info__ matmul matrix_transpose tensordot vecdot
broadcast_arrays broadcast_to concat expand_dims flip moveaxis permute_dims repeat reshape roll squeeze stack tile
unstack argmax argmin count_nonzero nonzero searchsorted where unique_all unique_counts unique_inverse unique_values
argsort sort cumulative_prod cumulative_sum max mean min prod std sum var all any diff
""".split()
SPEC_LINALG = """cholesky cross det diagonal eigh eigvalsh inv matmul matrix_norm matrix_power matrix_rank
matrix_transpose outer pinv qr slogdet solve svd svdvals tensordot trace vecdot vector_norm""".split()
SPEC_ARRAY_ATTRS = """__abs__ __add__ __and__ __array_namespace__ __bool__ __complex__ __dlpack__ __dlpack_device__
__eq__ __float__ __floordiv__ __ge__ __getitem__ __gt__ __index__ __int__ __invert__ __le__ __lshift__ __lt__
__matmul__ __mod__ __mul__ __ne__ __neg__ __or__ __pos__ __pow__ __rshift__ __setitem__ __sub__ __truediv__
__xor__ __iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __imatmul__ __iand__ __ior__
__ixor__ __ilshift__ __irshift__ __radd__ __rsub__ __rmul__ __rtruediv__ __rfloordiv__ __rmod__ __rpow__
__rmatmul__ __rand__ __ror__ __rxor__ __rlshift__ __rrshift__
to_device dtype device mT ndim shape T""".split()


# ---- names -----------------------------------------------------------------------------------------
def test_every_spec_name_exists():
    missing = [n for n in SPEC_NAMES if n not in xp.UNSUPPORTED and not hasattr(xp, n)]
    assert not missing
    assert not [n for n in SPEC_NAMES if n not in xp.UNSUPPORTED and not hasattr(nd, n)]
    assert not [n for n in SPEC_LINALG if not hasattr(xp.linalg, n) or not hasattr(nd.linalg, n)]
    assert not [n for n in SPEC_ARRAY_ATTRS if not hasattr(nd.ones(2, 2), n)]
    assert set(xp.UNSUPPORTED) <= set(SPEC_NAMES) | {"fft"}
    assert xp.__array_api_version__ == nd.__array_api_version__ == "2024.12"
    assert set(nd.__all__) >= {n for n in SPEC_NAMES if not n.startswith("_") and n not in xp.UNSUPPORTED}


def test_array_namespace():
    x = nd.ones(2, 3)
    assert x.__array_namespace__() is xp
    assert x.__array_namespace__(api_version="2023.12") is xp
    with pytest.raises(ValueError, match="api_version"):
        x.__array_namespace__(api_version="2019.01")
    assert x.device == xp.__array_namespace_info__().default_device()
    assert x.to_device("cpu") is x
    assert x.ndim == 2 and x.shape == (2, 3) and x.mT.shape == (3, 2) and x.T.shape == (3, 2)


def test_info():
    info = xp.__array_namespace_info__()
    caps = info.capabilities()
    assert caps["boolean indexing"] and caps["data-dependent shapes"] and "max dimensions" in caps
    assert info.default_dtypes()["real floating"] == nd.get_default_dtype()
    assert info.default_dtypes()["integral"] == info.default_dtypes()["indexing"] == nd.int64
    # cpu first, then whatever device types are registered (tests register a fake one)
    assert info.devices()[0] == nd.device("cpu")
    assert set(info.dtypes()) == set(ALL)
    assert set(info.dtypes(kind="integral")) == set(INTS)
    assert set(info.dtypes(kind=("bool", "real floating"))) == {"bool"} | set(FLOATS)


# ---- data type functions -----------------------------------------------------------------------------
def test_finfo_iinfo():
    for name in FLOATS:
        a, b = xp.finfo(getattr(xp, name)), np.finfo(name)
        assert (a.bits, a.eps, a.max, a.min, a.smallest_normal) == (b.bits, b.eps, b.max, b.min, b.smallest_normal)
    assert xp.finfo(xp.ones(2)).dtype == xp.float32
    for name in INTS:
        a, b = xp.iinfo(getattr(xp, name)), np.iinfo(name)
        assert (a.bits, a.max, a.min) == (b.bits, b.max, b.min)
    with pytest.raises(TypeError, match="finfo"):
        xp.finfo(xp.int8)
    with pytest.raises(TypeError, match="iinfo"):
        xp.iinfo(xp.float32)


@pytest.mark.parametrize("kind", ["bool", "signed integer", "unsigned integer", "integral", "real floating",
                                  "complex floating", "numeric", ("bool", "integral")])
def test_isdtype(kind):
    for name in ALL:
        assert xp.isdtype(getattr(xp, name), kind) == np.isdtype(np.dtype(name), kind), name
    assert xp.isdtype(xp.int8, xp.int8) and not xp.isdtype(xp.int8, xp.int16)


def test_result_type_and_can_cast():
    same_kind = [(a, b) for a in ALL for b in ALL if (a in INTS) == (b in INTS) and (a in FLOATS) == (b in FLOATS)]
    for a, b in same_kind:
        da, db = getattr(xp, a), getattr(xp, b)
        assert xp.result_type(da, db).name == np.result_type(a, b).name, (a, b)
        assert xp.result_type(xp.ones(1, dtype=da), db).name == np.result_type(a, b).name
        assert xp.can_cast(da, db) == np.can_cast(a, b), (a, b)
    assert xp.can_cast(xp.ones(1, dtype=xp.int8), xp.int16)
    assert not xp.can_cast(xp.float32, xp.int64)
    # Python scalars decide only the kind
    assert xp.result_type(xp.int8, 1) == xp.int8 and xp.result_type(xp.float64, 1.0) == xp.float64
    assert xp.result_type(xp.bool, 1) == xp.int64 and xp.result_type(xp.int8, 1.0) == nd.get_default_dtype()
    with pytest.raises(ValueError, match="result_type"):
        xp.result_type(1, 2.0)


def test_astype():
    x = sample((3, 4), "float64")
    for name in ALL:
        check(xp.astype(t(x), getattr(xp, name)), x.astype(name))
    a = t(x)
    assert xp.astype(a, xp.float64, copy=False) is a
    assert xp.astype(a, xp.float64).data_ptr() != a.data_ptr()


# ---- element-wise --------------------------------------------------------------------------------------
UNARY = {  # name: (dtypes, domain)
    "abs": (NUMERIC, None), "acos": (FLOATS, (-1, 1)), "acosh": (FLOATS, (1, 5)), "asin": (FLOATS, (-1, 1)),
    "asinh": (FLOATS, None), "atan": (FLOATS, None), "atanh": (FLOATS, (-0.99, 0.99)), "ceil": (NUMERIC, None),
    "cos": (FLOATS, None), "cosh": (FLOATS, None), "exp": (FLOATS, None), "expm1": (FLOATS, None),
    "floor": (NUMERIC, None), "isfinite": (ALL[1:], None), "isinf": (NUMERIC, None), "isnan": (NUMERIC, None),
    "log": (FLOATS, (0.01, 10)), "log1p": (FLOATS, (-0.99, 10)), "log2": (FLOATS, (0.01, 10)),
    "log10": (FLOATS, (0.01, 10)), "logical_not": (["bool"], None), "negative": (NUMERIC, None),
    "positive": (NUMERIC, None), "reciprocal": (FLOATS, (0.5, 4)), "round": (NUMERIC, None),
    "sign": (NUMERIC, None), "signbit": (FLOATS, None), "sin": (FLOATS, None), "sinh": (FLOATS, None),
    "square": (NUMERIC, None), "sqrt": (FLOATS, (0, 10)), "tan": (FLOATS, (-1.4, 1.4)), "tanh": (FLOATS, None),
    "trunc": (NUMERIC, None), "bitwise_invert": (["bool"] + INTS, None), "conj": (FLOATS, None),
    "real": (FLOATS, None), "imag": (FLOATS, None),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name):
    dtypes, domain = UNARY[name]
    for dt in dtypes:
        for shape in SHAPES[:3]:
            a = sample(shape, dt, *(domain or (-5, 5)))
            if name == "round" and dt in FLOATS:
                a = np.round(a * 2) / 2  # exact halves: ties to even
            check(getattr(xp, name)(t(a)), getattr(np, name)(a), rtol={"float32": 1e-5}.get(dt), atol=1e-6)


def test_unary_special_values():
    a = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -2.5], dtype="float32")
    for name in ["abs", "ceil", "floor", "trunc", "round", "sign", "signbit", "isfinite", "isinf", "isnan",
                 "negative", "square", "exp", "tanh", "sqrt"]:
        with np.errstate(invalid="ignore"):
            check(getattr(xp, name)(t(a)), getattr(np, name)(a), rtol=1e-6)
    # torch keeps sign(nan) = 0 in the ndcore namespace
    assert nd.sign(nd.tensor(math.nan)).item() == 0.0 and math.isnan(xp.sign(nd.tensor(math.nan)).item())


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-40, 2.0, -3.5])


def check_special(got, want):
    """Equal including NaN and the sign of zero (the standard's special cases); 2 ulp otherwise."""
    got = got.numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if want.dtype.kind == "f":
        same &= np.isnan(want) | (np.signbit(got) == np.signbit(want))
        same |= np.isclose(got, want, rtol=4 * np.finfo(want.dtype).eps, atol=0) & (np.signbit(got) == np.signbit(want))
    bad = np.flatnonzero(~same)
    assert not bad.size, [(i, got.flat[i], want.flat[i]) for i in bad[:5]]


@pytest.mark.parametrize("dt", FLOATS)
def test_special_values(dt):
    v = SPECIAL.astype(dt)
    a, b = np.meshgrid(v, v)
    with np.errstate(all="ignore"):
        for name in ("add", "subtract", "multiply", "divide", "atan2", "copysign", "hypot", "logaddexp", "nextafter",
                     "maximum", "minimum", "pow", "remainder", "floor_divide", "equal", "less", "greater_equal"):
            check_special(getattr(xp, name)(t(a), t(b)), getattr(np, name)(a, b))
        for name in ("abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "cos", "cosh", "exp", "expm1",
                     "floor", "log", "log1p", "log2", "log10", "negative", "round", "sign", "signbit", "sin", "sinh",
                     "square", "sqrt", "tan", "tanh", "trunc", "reciprocal", "isfinite", "isinf", "isnan"):
            check_special(getattr(xp, name)(t(v)), getattr(np, name)(v))


def test_unary_int_to_float_uses_default_float():
    # deliberate: NumPy gives float64, ndcore its default float dtype (float32)
    r = xp.sqrt(nd.tensor([1, 4, 9]))
    assert r.dtype == nd.get_default_dtype() and r.tolist() == [1.0, 2.0, 3.0]


BINARY = {  # name: (dtypes, x1 domain, x2 domain)
    "add": (NUMERIC, None, None), "subtract": (NUMERIC, None, None), "multiply": (NUMERIC, None, None),
    "divide": (FLOATS, None, (0.5, 5)), "equal": (ALL, None, None), "not_equal": (ALL, None, None),
    "less": (NUMERIC, None, None), "less_equal": (NUMERIC, None, None), "greater": (NUMERIC, None, None),
    "greater_equal": (NUMERIC, None, None), "atan2": (FLOATS, None, None), "copysign": (FLOATS, None, None),
    "hypot": (FLOATS, None, None), "logaddexp": (FLOATS, None, None), "nextafter": (FLOATS, None, None),
    "maximum": (NUMERIC, None, None), "minimum": (NUMERIC, None, None), "pow": (FLOATS, (0.1, 3), (-2, 2)),
    "remainder": (NUMERIC, None, (1, 5)), "floor_divide": (NUMERIC, None, (1, 5)),
    "logical_and": (["bool"], None, None), "logical_or": (["bool"], None, None),
    "logical_xor": (["bool"], None, None), "bitwise_and": (["bool"] + INTS, None, None),
    "bitwise_or": (["bool"] + INTS, None, None), "bitwise_xor": (["bool"] + INTS, None, None),
    "bitwise_left_shift": (INTS, (0, 5), (0, 3)), "bitwise_right_shift": (INTS, (0, 100), (0, 6)),
}
BROADCAST = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((0, 3), (3,)), ((2, 1, 3), (4, 1))]


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name):
    dtypes, d1, d2 = BINARY[name]
    for dt in dtypes:
        for s1, s2 in BROADCAST:
            a, b = sample(s1, dt, *(d1 or (-5, 5))), sample(s2, dt, *(d2 or (-5, 5)))
            if name in ("floor_divide", "remainder") and dt in FLOATS:
                b = np.where(rng().random(b.shape) < 0.5, -b, b).astype(dt)
            check(getattr(xp, name)(t(a), t(b)), getattr(np, name)(a, b), rtol={"float32": 1e-5}.get(dt))


def test_binary_python_scalars():
    a = sample((2, 3), "int8")
    for name in ["add", "subtract", "multiply", "maximum", "minimum", "equal", "less", "remainder"]:
        check(getattr(xp, name)(t(a), 3), getattr(np, name)(a, 3))
        check(getattr(xp, name)(3, t(a)), getattr(np, name)(3, a))
    f = sample((2, 3), "float32")
    for name in ["add", "atan2", "copysign", "hypot", "logaddexp", "nextafter", "pow", "divide"]:
        check(getattr(xp, name)(2.0, t(f)), getattr(np, name)(np.float32(2.0), f), rtol=1e-5)
        check(getattr(xp, name)(t(f), 2.0), getattr(np, name)(f, np.float32(2.0)), rtol=1e-5)


def test_nextafter_logaddexp_special():
    for dt in FLOATS:
        vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, np.finfo(dt).max, np.finfo(dt).tiny,
                         np.finfo(dt).smallest_subnormal], dtype=dt)
        a, b = np.meshgrid(vals, vals)
        check(xp.nextafter(t(a), t(b)), np.nextafter(a, b), rtol=0)
        with np.errstate(over="ignore", invalid="ignore"):
            check(xp.logaddexp(t(a), t(b)), np.logaddexp(a, b), rtol=1e-6 if dt == "float32" else 1e-14)


def test_type_promotion_table():
    # binary ops follow the standard's table within a kind (ndcore: torch's promotion, which agrees there)
    for a in ALL:
        for b in ALL:
            if (a in INTS) != (b in INTS) or (a in FLOATS) != (b in FLOATS):
                continue
            x, y = sample((2,), a, 0, 3), sample((2,), b, 0, 3)
            op = np.logical_or if a == "bool" else np.add
            got = (xp.logical_or if a == "bool" else xp.add)(t(x), t(y))
            assert got.dtype.name == op(x, y).dtype.name, (a, b)
            assert xp.concat([t(x), t(y)]).dtype.name == np.concat([x, y]).dtype.name


def test_zero_d_promotion():
    # the standard promotes a 0-d array like any other; ndcore's operators keep torch's rule
    # (an N-d array keeps its dtype against a 0-d array of the same kind)
    for d0, dn in (("float64", "float32"), ("int64", "int8"), ("int16", "uint8")):
        z, a = sample((), d0, 0, 3), sample((3,), dn, 0, 3)
        for name in ("add", "multiply", "maximum", "equal", "less"):
            check(getattr(xp, name)(t(z), t(a)), getattr(np, name)(z, a), rtol=1e-6)
            check(getattr(xp, name)(t(a), t(z)), getattr(np, name)(a, z), rtol=1e-6)
        check(xp.where(t(a > 1), t(z), t(a)), np.where(a > 1, z, a))
        assert (t(z) + t(a)).dtype.name == dn and nd.add(t(z), t(a)).dtype.name == dn


def test_clip():
    for dt in NUMERIC:
        a = sample((3, 4), dt, -10, 10)
        check(xp.clip(t(a), 1, 4), np.clip(a, 1, 4))
        check(xp.clip(t(a), max=2), np.clip(a, None, 2))
        check(xp.clip(t(a)), np.clip(a, None, None))
        lo, hi = sample((4,), dt, -3, 0), sample((3, 1), dt, 1, 4)
        check(xp.clip(t(a), t(lo), t(hi)), np.clip(a, lo, hi))
        check(xp.clip(t(a), t(lo), 3), np.clip(a, lo, np.asarray(3, dt)))


# ---- creation -----------------------------------------------------------------------------------------
def test_creation():
    check(xp.arange(5), np.arange(5))
    check(xp.arange(1, stop=7, step=2), np.arange(1, 7, 2))
    check(xp.arange(0.0, 1.0, 0.25, dtype=xp.float64), np.arange(0.0, 1.0, 0.25))
    check(xp.arange(5, 0, -2), np.arange(5, 0, -2))
    check(xp.arange(5, 0), np.arange(5, 0))  # the standard: empty (torch raises)
    check(xp.arange(2, -1.0, dtype=xp.float64), np.arange(2, -1.0))
    check(xp.arange(-3), np.arange(-3))
    check(xp.linspace(0, 1, 5, dtype=xp.float64), np.linspace(0, 1, 5))
    check(xp.linspace(0, 1, num=4, endpoint=False, dtype=xp.float64), np.linspace(0, 1, 4, endpoint=False))
    for k in (-2, 0, 1, 5):
        check(xp.eye(3, 4, k=k, dtype=xp.int32), np.eye(3, 4, k=k, dtype="int32"))
        a = sample((2, 3, 4), "float64")
        check(xp.tril(t(a), k=k), np.tril(a, k=k))
        check(xp.triu(t(a), k=k), np.triu(a, k=k))
    for dt in ALL:
        d = getattr(xp, dt)
        check(xp.zeros((2, 3), dtype=d), np.zeros((2, 3), dt))
        check(xp.ones(4, dtype=d), np.ones(4, dt))
        check(xp.full((2,), 1, dtype=d), np.full((2,), 1, dt))
        assert xp.empty((0, 2), dtype=d).shape == (0, 2)
        a = sample((2, 3), dt)
        check(xp.zeros_like(t(a)), np.zeros_like(a))
        check(xp.ones_like(t(a), dtype=xp.int8), np.ones_like(a, dtype="int8"))
        check(xp.full_like(t(a), 0), np.full_like(a, 0))
        assert xp.empty_like(t(a)).dtype == d
    check(xp.full((2,), True), np.full((2,), True))
    check(xp.full((2,), 3), np.full((2,), 3))
    assert xp.full((2,), 1.5).dtype == nd.get_default_dtype()  # deliberate: NumPy gives float64
    x, y = sample((3,), "int64"), sample((4,), "int64")
    check(xp.meshgrid(t(x), t(y)), np.meshgrid(x, y))
    check(xp.meshgrid(t(x), t(y), indexing="ij"), np.meshgrid(x, y, indexing="ij"))


def test_asarray_copy():
    a = sample((2, 3), "float64")
    shared = xp.asarray(a)
    assert shared.data_ptr() == a.__array_interface__["data"][0]
    assert xp.asarray(a, copy=False).data_ptr() == shared.data_ptr()
    assert xp.asarray(a, copy=True).data_ptr() != shared.data_ptr()
    x = nd.ones(3)
    assert xp.asarray(x) is x and xp.asarray(x, copy=False) is x
    c = xp.asarray(x, copy=True)
    c += 1
    assert x.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="copy=False"):
        xp.asarray([1, 2], copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        xp.asarray(x, dtype=xp.float64, copy=False)
    check(xp.asarray([[True, False]]), np.asarray([[True, False]]))
    check(xp.asarray(3), np.asarray(3))
    check(xp.from_dlpack(a), a)
    assert xp.from_dlpack(a, copy=True).data_ptr() != a.__array_interface__["data"][0]
    x = nd.arange(4)
    shared, copied = np.from_dlpack(x), np.from_dlpack(x, copy=True)
    assert shared.__array_interface__["data"][0] == x.data_ptr() != copied.__array_interface__["data"][0]
    np.testing.assert_array_equal(copied, np.arange(4))
    with pytest.raises(BufferError, match="__dlpack__"):
        x.__dlpack__(dl_device=(2, 0))


# ---- manipulation --------------------------------------------------------------------------------------
def test_manipulation():
    a = sample((2, 3, 4), "int16")
    b = sample((2, 3, 4), "int16")
    check(xp.concat([t(a), t(b)], axis=1), np.concat([a, b], axis=1))
    check(xp.concat([t(a), t(b)], axis=None), np.concat([a, b], axis=None))
    check(xp.concat((t(a), t(b[:, :1])), axis=-2), np.concat((a, b[:, :1]), axis=-2))
    check(xp.stack([t(a), t(b)], axis=-1), np.stack([a, b], axis=-1))
    for ax in (0, -1, 3, -4):
        check(xp.expand_dims(t(a), axis=ax), np.expand_dims(a, axis=ax))
    for ax in (None, 0, -1, (0, 2), ()):
        check(xp.flip(t(a), axis=ax), np.flip(a, axis=ax))
        check(nd.flip(t(a), axis=ax), np.flip(a, axis=ax))
    check(xp.flip(t(np.asarray(3))), np.flip(np.asarray(3)))
    for src, dst in ((0, -1), ((0, 1), (2, 0)), (-1, 0)):
        check(xp.moveaxis(t(a), src, dst), np.moveaxis(a, src, dst))
    check(xp.permute_dims(t(a), (2, 0, 1)), np.permute_dims(a, (2, 0, 1)))
    check(xp.reshape(t(a), (4, -1)), np.reshape(a, (4, -1)))
    check(xp.reshape(t(a), (24,), copy=True), np.reshape(a, (24,), copy=True))
    check(xp.reshape(t(a), (6, 4), copy=False), np.reshape(a, (6, 4), copy=False))
    with pytest.raises(ValueError, match="copy=False"):
        xp.reshape(xp.permute_dims(t(a), (2, 0, 1)), (24,), copy=False)
    for shift, ax in ((1, None), (-2, 0), ((1, 2), (0, 2)), (1, (1, 2))):
        check(xp.roll(t(a), shift, axis=ax), np.roll(a, shift, axis=ax))
        check(nd.roll(t(a), shift=shift, axis=ax), np.roll(a, shift, axis=ax))
    s = sample((1, 3, 1), "float32")
    for ax in (0, -1, (0, 2)):
        check(xp.squeeze(t(s), ax), np.squeeze(s, ax))
        check(nd.squeeze(t(s), axis=ax), np.squeeze(s, ax))
    with pytest.raises(ValueError, match="squeeze"):
        xp.squeeze(t(s), 1)
    with pytest.raises(ValueError, match="squeeze"):
        nd.squeeze(t(s), axis=1)
    for reps in ((2,), (2, 1, 3), (1, 2, 1, 2)):
        check(xp.tile(t(a), reps), np.tile(a, reps))
    check(xp.unstack(t(a), axis=1), tuple(np.moveaxis(a, 1, 0)))
    check(xp.unstack(t(a)), tuple(a))
    x, y = sample((3, 1), "float32"), sample((4,), "float32")
    check(xp.broadcast_arrays(t(x), t(y)), np.broadcast_arrays(x, y))
    check(xp.broadcast_to(t(y), (2, 4)), np.broadcast_to(y, (2, 4)))
    check(xp.broadcast_to(t(y), shape=(3, 1, 4)), np.broadcast_to(y, shape=(3, 1, 4)))
    check(xp.reshape(t(y), shape=(2, 2)), np.reshape(y, shape=(2, 2)))


def test_repeat():
    a = sample((2, 3), "int32")
    check(xp.repeat(t(a), 2), np.repeat(a, 2))
    check(xp.repeat(t(a), 2, axis=1), np.repeat(a, 2, axis=1))
    r = np.array([1, 0, 3])
    check(xp.repeat(t(a), t(r), axis=1), np.repeat(a, r, axis=1))
    check(xp.repeat(t(a), t(np.arange(6)) % 3), np.repeat(a, np.arange(6) % 3))
    check(xp.repeat(t(np.zeros((0, 2))), 3, axis=0), np.repeat(np.zeros((0, 2)), 3, axis=0))
    # torch's Tensor.repeat stays tile-like
    assert t(a).repeat(2, 1).shape == (4, 3)


# ---- indexing, searching, sorting, sets ------------------------------------------------------------------
def test_take():
    a = sample((3, 4), "float64")
    i = np.array([2, 0, -1, 0])
    check(xp.take(t(a), t(i), axis=1), np.take(a, i, axis=1))
    check(xp.take(t(a), t(i[:3]), axis=0), np.take(a, i[:3], axis=0))
    check(xp.take(t(a[0]), t(i)), np.take(a[0], i))
    idx = rng().integers(-4, 4, (3, 2))
    check(xp.take_along_axis(t(a), t(idx), axis=1), np.take_along_axis(a, idx, axis=1))
    idx = rng().integers(0, 3, (5, 4))
    check(xp.take_along_axis(t(a), t(idx), axis=0), np.take_along_axis(a, idx, axis=0))


def test_searching():
    for dt in NUMERIC:
        a = sample((3, 4, 5), dt)
        for ax in (None, 0, -1):
            for kd in (False, True):
                check(xp.argmax(t(a), axis=ax, keepdims=kd), np.argmax(a, axis=ax, keepdims=kd))
                check(xp.argmin(t(a), axis=ax, keepdims=kd), np.argmin(a, axis=ax, keepdims=kd))
        for ax in (None, 1, (0, 2), ()):
            for kd in (False, True):
                check(xp.count_nonzero(t(a), axis=ax, keepdims=kd), np.count_nonzero(a, axis=ax, keepdims=kd),
                      dtype=False)
        check(xp.nonzero(t(a)), np.nonzero(a))
    with pytest.raises(ValueError, match="nonzero"):
        xp.nonzero(nd.tensor(1))
    s = np.sort(sample((10,), "float32"))
    v = np.concatenate([s[::3], sample((4,), "float32")])
    for side in ("left", "right"):
        check(xp.searchsorted(t(s), t(v), side=side), np.searchsorted(s, v, side=side))
        u = sample((10,), "float32")
        o = np.argsort(u, stable=True)
        check(xp.searchsorted(t(u), t(v), side=side, sorter=t(o)), np.searchsorted(u, v, side=side, sorter=o))
    c = sample((3, 4), "bool")
    a, b = sample((3, 4), "int8"), sample((4,), "int8")
    check(xp.where(t(c), t(a), t(b)), np.where(c, a, b))
    check(xp.where(t(c), t(a), 0), np.where(c, a, np.int8(0)))
    check(xp.where(t(c), 1.5, t(a.astype("float64"))), np.where(c, 1.5, a.astype("float64")))


@pytest.mark.parametrize("dt", NUMERIC)
def test_sort(dt):
    a = sample((4, 7), dt, -2, 2)  # many ties: stability matters
    if dt in FLOATS:
        a[0, :3] = np.nan
    for ax in (0, -1):
        check(xp.sort(t(a), axis=ax), np.sort(a, axis=ax, stable=True))
        check(xp.argsort(t(a), axis=ax), np.argsort(a, axis=ax, stable=True))
        if dt in FLOATS or dt in INTS[:-1]:
            neg = -a.astype("float64")
            want = np.argsort(neg, axis=ax, stable=True)  # descending, ties in input order
            if dt in FLOATS:
                want = np.argsort(np.where(np.isnan(a), -np.inf, neg), axis=ax, stable=True)
            check(xp.argsort(t(a), axis=ax, descending=True), want)
            check(xp.sort(t(a), axis=ax, descending=True), np.take_along_axis(a, want, axis=ax))
    check(xp.sort(t(a[0])), np.sort(a[0]))
    check(nd.sort(t(a), axis=0), np.sort(a, axis=0))


@pytest.mark.parametrize("dt", ["bool", "int8", "uint8", "int64", "float32", "float64"])
def test_unique(dt):
    a = sample((4, 5), dt, -3, 3)
    if dt in FLOATS:
        a[0, :2] = np.nan
        a[1, 0] = -0.0
    for x in (a, a[:0], a[0, 0]):
        ua, na = xp.unique_all(t(x)), np.unique_all(x)
        check(ua.values, na.values)
        check(ua.counts, na.counts)
        # each NaN is its own unique value; which NaN slot an element maps to is unspecified
        nan_slot = np.isnan(na.values) if dt in FLOATS else np.zeros(na.values.shape, bool)
        check(xp.take(ua.indices, t(np.flatnonzero(~nan_slot))), na.indices[~nan_slot])
        check(xp.sort(xp.take(ua.indices, t(np.flatnonzero(nan_slot)))), np.sort(na.indices[nan_slot]))
        inv = ua.inverse_indices.numpy()
        assert inv.shape == x.shape and inv.dtype == np.int64
        np.testing.assert_array_equal(na.values[inv], x)  # NaN == NaN here
        np.testing.assert_array_equal(na.values, x.reshape(-1)[ua.indices.numpy()])
        uc, ui = xp.unique_counts(t(x)), xp.unique_inverse(t(x))
        check(tuple(uc), tuple(np.unique_counts(x)))
        check(ui.values, na.values)
        check(ui.inverse_indices, inv)
        # the standard leaves the order open; NumPy hashes integers, ndcore sorts
        check(xp.unique_values(t(x)), np.sort(np.unique_values(x)))


# ---- statistics and utility ----------------------------------------------------------------------------
AXES = [None, 0, -1, (0, 2), ()]


@pytest.mark.parametrize("dt", ALL)
def test_reductions(dt):
    a = sample((3, 4, 2), dt, -3, 3)
    for ax in AXES:
        for kd in (False, True):
            kw = dict(axis=ax, keepdims=kd)
            check(xp.all(t(a), **kw), np.all(a, **kw))
            check(xp.any(t(a), **kw), np.any(a, **kw))
            if dt == "bool":
                continue
            check(xp.max(t(a), **kw), np.max(a, **kw))
            check(xp.min(t(a), **kw), np.min(a, **kw))
            for fn in ("sum", "prod"):
                want = getattr(np, fn)(a, **kw)
                if dt == "uint8":
                    want = want.astype("int64")  # deliberate: no uint64 in ndcore
                # float32 sums cancel: summation order shows at ~1e-6 absolute
                check(getattr(xp, fn)(t(a), **kw), want, rtol=1e-5, atol=1e-5)
            check(xp.sum(t(a), dtype=xp.float64, **kw), np.sum(a, dtype="float64", **kw), atol=1e-12)
            if dt in FLOATS:
                check(xp.sum(t(a), dtype=xp.float32, **kw), np.sum(a, dtype="float32", **kw), rtol=1e-5, atol=1e-5)
                check(xp.mean(t(a), **kw), np.mean(a, **kw), rtol=1e-5, atol=1e-6)
                for corr in (0, 1, 0.5):
                    with np.errstate(divide="ignore", invalid="ignore"):
                        check(xp.var(t(a), correction=corr, **kw), np.var(a, correction=corr, **kw), rtol=1e-5,
                              atol=1e-6)
                        check(xp.std(t(a), correction=corr, **kw), np.std(a, correction=corr, **kw), rtol=1e-5,
                              atol=1e-6)
    if dt != "bool":
        e = sample((0, 3), dt)
        check(xp.sum(t(e), axis=0), np.sum(e, axis=0).astype("int64" if dt == "uint8" else np.sum(e).dtype))
        check(xp.prod(t(e)), np.prod(e).astype("int64" if dt == "uint8" else np.prod(e).dtype))
    z = sample((), dt)
    check(xp.all(t(z)), np.all(z))
    check(xp.any(t(z), keepdims=True), np.any(z, keepdims=True))


def test_var_std_defaults():
    a = sample((5, 3), "float64")
    check(xp.var(t(a)), np.var(a))  # standard: correction=0
    check(nd.var(t(a)), np.var(a, ddof=1))  # torch-style call keeps torch's correction=1
    check(nd.var(t(a), axis=0), np.var(a, axis=0))  # axis= spelling: the standard's
    check(nd.std(t(a), 0), np.std(a, axis=0, ddof=1))
    check(nd.std(t(a), axis=None, keepdims=True), np.std(a, keepdims=True))


@pytest.mark.parametrize("dt", ALL)
def test_cumulative(dt):
    a = sample((3, 4), dt, -2, 3)
    for fn in ("cumulative_sum", "cumulative_prod"):
        for ax in (0, 1, -1):
            for init in (False, True):
                want = getattr(np, fn)(a, axis=ax, include_initial=init)
                if dt == "uint8":
                    want = want.astype("int64")  # deliberate: no uint64
                check(getattr(xp, fn)(t(a), axis=ax, include_initial=init), want)
        check(getattr(xp, fn)(t(a[0]), include_initial=True, dtype=xp.float64),
              getattr(np, fn)(a[0], include_initial=True, dtype="float64"))
        with pytest.raises(ValueError, match=fn):
            getattr(xp, fn)(t(a))
    check(xp.cumulative_sum(t(a[:0, 0])), np.cumulative_sum(a[:0, 0]).astype(dt if dt in FLOATS else "int64"))


@pytest.mark.parametrize("dt", ["bool", "int8", "uint8", "int64", "float32", "float64"])
def test_diff(dt):
    a = sample((3, 5), dt)
    for ax in (0, -1):
        for n in (0, 1, 2):
            check(xp.diff(t(a), axis=ax, n=n), np.diff(a, axis=ax, n=n))
    p = sample((3, 2), dt)
    check(xp.diff(t(a), prepend=t(p), append=t(p)), np.diff(a, prepend=p, append=p))
    check(xp.diff(t(a[:, :1])), np.diff(a[:, :1]))
    check(t(a).diff(dim=0), np.diff(a, axis=0))


# ---- the array object ----------------------------------------------------------------------------------
def test_operators():
    for dt in NUMERIC:
        a, b = sample((3, 4), dt, 1, 5), sample((4,), dt, 1, 5)
        x, y = t(a), t(b)
        for op in ("__add__", "__sub__", "__mul__", "__floordiv__", "__mod__", "__lt__", "__le__", "__gt__",
                   "__ge__", "__eq__", "__ne__", "__radd__", "__rsub__", "__rmul__"):
            check(getattr(x, op)(y), getattr(a, op)(b))
            check(getattr(x, op)(2), getattr(a, op)(2))
        check(x ** 2, a ** 2)
        check(-x, -a)
        check(+x, +a)
        check(abs(x), abs(a))
        if dt in FLOATS:
            check(x / y, a / b, rtol=1e-6)
            check(2.0 ** x, 2.0 ** a, rtol=1e-6)
            check(x @ t(a.T.copy()), a @ a.T, rtol=1e-5)
        else:
            for op in ("__and__", "__or__", "__xor__", "__rand__", "__ror__", "__rxor__"):
                check(getattr(x, op)(y), getattr(a, op)(b))
            check(~x, ~a)
            check(x << 1, a << 1)
            check(x >> 1, a >> 1)
            check(3 << x, 3 << a)
            check(100 >> x, 100 >> a)
            w = t(a)
            w <<= 1
            w >>= t(b % 2)
            check(w, (a << 1) >> (b % 2))
        z = t(a)
        z += y
        z *= 2
        check(z, (a + b) * 2)
    x = nd.tensor(3)
    assert [0, 1, 2, 3][x] == 3 and int(x) == 3 and float(x) == 3.0 and bool(x) and complex(x) == 3 + 0j
    assert x.__dlpack_device__() == (1, 0)
    sq = t(sample((3, 3), "float64"))
    want = sq.numpy() @ sq.numpy()
    sq @= sq
    check(sq, want)
    m = nd.arange(12).reshape(3, 4)
    check(m[1:, nd.tensor([True, False, True, False])], np.arange(12).reshape(3, 4)[1:, [True, False, True, False]])
    m[0] = 5
    assert m[0].tolist() == [5] * 4


# ---- torch-style calls keep torch's behaviour (Note [Array API spellings]) ---------------------------------
def test_torch_spellings_kept():
    a = sample((3, 4), "float32")
    x = t(a)
    r = nd.max(x, 0)
    check(r.values, a.max(0))
    check(r.indices, a.argmax(0))
    check(nd.max(x, axis=1), a.max(1))
    check(nd.max(x, t(a[0])), np.maximum(a, a[0]))
    assert isinstance(nd.sort(x), tuple) and nd.sort(x, 0).indices.dtype == nd.int64
    assert nd.nonzero(x).shape == (12, 2) and nd.where(x > 0)[0].dim() == 1
    check(nd.squeeze(t(np.ones((1, 3))), 1), np.ones((1, 3)))  # size-3 dim: skipped, as torch does
    check(nd.flip(x, [0]), np.flip(a, 0))
    check(nd.roll(x, 1, 0), np.roll(a, 1, 0))
    check(nd.take(x, nd.tensor([0, 5])), a.reshape(-1)[[0, 5]])
    check(nd.tensordot(x, x, dims=([0], [0])), np.tensordot(a, a, ([0], [0])), rtol=1e-5)
    check(nd.sum(x, dim=()), a.sum())  # torch: an empty dim list reduces everything
    check(nd.sum(x, axis=()), a)  # the standard: no reduction
    check(nd.prod(x, 1), a.prod(1), rtol=1e-5)
    assert nd.can_cast(nd.int64, nd.int8) and not xp.can_cast(xp.int64, xp.int8)
    assert nd.meshgrid(nd.arange(2), nd.arange(3))[0].shape == (2, 3)
    assert xp.meshgrid(nd.arange(2), nd.arange(3))[0].shape == (3, 2)
    check(nd.linspace(0, 1, 3), np.linspace(0, 1, 3, dtype="float32"))
    check(nd.eye(2, 3), np.eye(2, 3, dtype="float32"))
    check(nd.tril(x, 1), np.tril(a, 1))
    check(nd.count_nonzero(x, 0), np.count_nonzero(a, 0))
    assert nd.cat([x, x], dim=1).shape == (3, 8) and nd.concat([x, x], 1).shape == (3, 8)


def test_signed_zero_kernels_match_torch():
    # abs(-0.0) is +0.0 and a zero remainder takes the divisor's sign, in ndcore itself (the
    # kernels), not only in the strict namespace.
    x = nd.tensor([-0.0, 0.0, -2.5])
    assert [math.copysign(1.0, v) for v in nd.abs(x).tolist()] == [1.0, 1.0, 1.0]
    r = nd.remainder(nd.tensor([-1.0, 1.0, 3.0, -3.0]), nd.tensor([1.0, -1.0, -1.5, 1.5]))
    assert [math.copysign(1.0, v) for v in r.tolist()] == [1.0, -1.0, -1.0, 1.0]
