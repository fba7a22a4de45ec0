"""Reductions and scans against NumPy: dims None/int/negative/tuple, keepdim, layouts
(contiguous, permuted, sliced, 0-d, large), result dtypes (integer sums give int64), empty
inputs, NaN propagation and first-index ties."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.special

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing.opdb import to_nd, to_np

OPS = {op.name: op for op in OPDB}
pytestmark = pytest.mark.filterwarnings("ignore:Degrees of freedom <= 0:RuntimeWarning")
NAN = float("nan")


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _data(rng, shape, dtype, name=""):
    if dtype == "bool":
        return rng.random(shape) < 0.6
    if dtype.startswith("int"):
        hi = 2 if name in ("prod", "cumprod") else 5
        return rng.integers(-hi, hi + 1, size=shape).astype(dtype)
    lo, hi = (0.5, 1.5) if name in ("prod", "cumprod") else (-3, 3)
    return rng.uniform(lo, hi, size=shape).astype(dtype)


# layout -> (base shape, nd view, the same view in NumPy)
LAYOUTS = {
    "contiguous": ((3, 4, 5), lambda t: t, lambda a: a),
    "permuted": ((4, 5, 3), lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "sliced": ((6, 5, 7), lambda t: t[::2, 1:, 1::2], lambda a: a[::2, 1:, 1::2]),
}
DIMS = [None, 1, -1, (0, 2), (-1, 0)]


def _ax(dim):
    return tuple(dim) if isinstance(dim, (tuple, list)) else dim


def _as_int64(a):
    return a.astype(np.int64) if a.dtype.kind in "biu" else a


# name -> (nd call, NumPy ref, expected result dtype for an input dtype)
def _same(dt):
    return dt


def _int64_for_ints(dt):
    return dt if dt.startswith("float") else "int64"


INT64 = lambda dt: "int64"  # noqa: E731
BOOL = lambda dt: "bool"  # noqa: E731
REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum(d, keepdim=k),
            lambda a, d, k: np.sum(_as_int64(a), axis=d, keepdims=k), _int64_for_ints),
    "mean": (lambda x, d, k: x.mean(d, keepdim=k), lambda a, d, k: np.mean(a, axis=d, keepdims=k), _same),
    "amax": (lambda x, d, k: x.amax(() if d is None else d, keepdim=k),
             lambda a, d, k: np.amax(a, axis=d, keepdims=k), _same),
    "amin": (lambda x, d, k: x.amin(() if d is None else d, keepdim=k),
             lambda a, d, k: np.amin(a, axis=d, keepdims=k), _same),
    "all": (lambda x, d, k: x.all(d, keepdim=k), lambda a, d, k: np.all(a, axis=d, keepdims=k), BOOL),
    "any": (lambda x, d, k: x.any(d, keepdim=k), lambda a, d, k: np.any(a, axis=d, keepdims=k), BOOL),
    "var0": (lambda x, d, k: x.var(d, correction=0, keepdim=k),
             lambda a, d, k: np.var(a, axis=d, ddof=0, keepdims=k), _same),
    "var1": (lambda x, d, k: x.var(d, correction=1, keepdim=k),
             lambda a, d, k: np.var(a, axis=d, ddof=1, keepdims=k), _same),
    "std0": (lambda x, d, k: x.std(d, correction=0, keepdim=k),
             lambda a, d, k: np.std(a, axis=d, ddof=0, keepdims=k), _same),
    "std1": (lambda x, d, k: nd.std(x, d, correction=1, keepdim=k),
             lambda a, d, k: np.std(a, axis=d, ddof=1, keepdims=k), _same),
    "logsumexp": (lambda x, d, k: x.logsumexp(tuple(range(x.dim())) if d is None else d, keepdim=k),
                  lambda a, d, k: scipy.special.logsumexp(a, axis=d, keepdims=k), _same),
    "norm": (lambda x, d, k: x.norm(dim=d, keepdim=k),
             lambda a, d, k: np.sqrt(np.sum(a * a, axis=d, keepdims=k)), _same),
}
DTYPES = {"sum": ["float32", "float64", "int32", "bool"], "all": ["float32", "int32", "bool"],
          "any": ["float32", "int32", "bool"], "amax": ["float32", "float64", "int16"], "amin": ["float32", "int64"]}
OPNAME = {"var0": "var", "var1": "var", "std0": "std", "std1": "std"}


def _check(name, out, expected, dtype):
    assert out.dtype == getattr(nd, dtype), f"{name}: got {out.dtype}, expected {dtype}"
    expected = np.asarray(expected)
    assert tuple(out.shape) == expected.shape, f"{name}: shape {tuple(out.shape)} vs {expected.shape}"
    actual = to_np(out)
    if dtype.startswith("float"):
        rtol, atol = OPS[OPNAME.get(name, name)].tol(dtype)
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(actual, expected.astype(actual.dtype))


CASES = [pytest.param(name, dtype, layout, dim, keepdim, id=f"{name}-{dtype}-{layout}-dim{dim}-keep{int(keepdim)}")
         for name in REDUCTIONS for dtype in DTYPES.get(name, ["float32", "float64"])
         for layout in LAYOUTS for dim in DIMS for keepdim in (False, True)]


@pytest.mark.parametrize(("name", "dtype", "layout", "dim", "keepdim"), CASES)
def test_reduction(name, dtype, layout, dim, keepdim):
    shape, view, np_view = LAYOUTS[layout]
    a = _data(_rng(name, dtype, layout), shape, dtype, name)
    fn, ref, result_dtype = REDUCTIONS[name]
    with np.errstate(all="ignore"):
        expected = ref(np_view(a), _ax(dim), keepdim)
    _check(name, fn(view(to_nd(a, dtype)), dim, keepdim), expected, result_dtype(dtype))


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("dim", [None, 0, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reduction_0d(name, dim, keepdim):
    a = np.array(1.75, dtype=np.float32)
    fn, ref, result_dtype = REDUCTIONS[name]
    with np.errstate(all="ignore"):
        expected = ref(a, None, False)  # a 0-d reduction over its only "dim" keeps shape ()
    _check(name, fn(to_nd(a, "float32"), dim, keepdim), expected, "float32" if name not in ("all", "any") else "bool")


# Per-dim ops: (nd call, ref, result dtype) over a single int dim.
SINGLE_DIM = {
    "prod": (lambda x, d, k: x.prod(d, keepdim=k),
             lambda a, d, k: np.prod(_as_int64(a), axis=d, keepdims=k), _int64_for_ints),
    "argmax": (lambda x, d, k: x.argmax(d, keepdim=k), lambda a, d, k: np.argmax(a, axis=d, keepdims=k), INT64),
    "argmin": (lambda x, d, k: x.argmin(d, keepdim=k), lambda a, d, k: np.argmin(a, axis=d, keepdims=k), INT64),
    "max": (lambda x, d, k: x.max(d, keepdim=k).values, lambda a, d, k: np.amax(a, axis=d, keepdims=k), _same),
    "min": (lambda x, d, k: nd.min(x, d, keepdim=k)[0], lambda a, d, k: np.amin(a, axis=d, keepdims=k), _same),
    "max_indices": (lambda x, d, k: x.max(dim=d, keepdim=k).indices,
                    lambda a, d, k: np.argmax(a, axis=d, keepdims=k), INT64),
    "min_indices": (lambda x, d, k: x.min(d, k)[1], lambda a, d, k: np.argmin(a, axis=d, keepdims=k), INT64),
    "count_nonzero": (lambda x, d, k: x.count_nonzero(d), lambda a, d, k: np.count_nonzero(a, axis=d), INT64),
}
OPNAME.update(max_indices="max", min_indices="min")
SINGLE_CASES = [pytest.param(name, dtype, layout, dim, keepdim,
                             id=f"{name}-{dtype}-{layout}-dim{dim}-keep{int(keepdim)}")
                for name in SINGLE_DIM for dtype in ("float32", "int32") for layout in LAYOUTS
                for dim in (0, 2, -2) for keepdim in (False, True) if not (name == "count_nonzero" and keepdim)]


@pytest.mark.parametrize(("name", "dtype", "layout", "dim", "keepdim"), SINGLE_CASES)
def test_single_dim_reduction(name, dtype, layout, dim, keepdim):
    shape, view, np_view = LAYOUTS[layout]
    # int data has many ties: argmax/argmin and max/min indices must pick the first, like NumPy
    a = _data(_rng(name, dtype, layout), shape, dtype, name)
    fn, ref, result_dtype = SINGLE_DIM[name]
    _check(name, fn(view(to_nd(a, dtype)), dim, keepdim), ref(np_view(a), dim, keepdim), result_dtype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_full_reductions(dtype, layout):
    shape, view, np_view = LAYOUTS[layout]
    a = _data(_rng("full", dtype, layout), shape, dtype)
    x, ref = view(to_nd(a, dtype)), np_view(a)
    same = dtype
    _check("max", x.max(), np.amax(ref), same)
    _check("min", nd.min(x), np.amin(ref), same)
    _check("argmax", x.argmax(), np.argmax(ref), "int64")
    _check("argmin", nd.argmin(x), np.argmin(ref), "int64")
    _check("argmax", x.argmax(keepdim=True), np.argmax(ref, keepdims=True).reshape(1, 1, 1), "int64")
    _check("count_nonzero", x.count_nonzero(), np.count_nonzero(ref), "int64")
    _check("count_nonzero", x.count_nonzero((0, 2)), np.count_nonzero(ref, axis=(0, 2)), "int64")
    if dtype != "bool":
        p = _data(_rng("prod", dtype, layout), shape, dtype, "prod")
        _check("prod", view(to_nd(p, dtype)).prod(), np.prod(_as_int64(np_view(p))), _int64_for_ints(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int16", "bool"])
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scans(name, dtype, dim):
    shape, view, np_view = LAYOUTS["permuted"]
    a = _data(_rng(name, dtype, dim), shape, dtype, name)
    out = getattr(view(to_nd(a, dtype)), name)(dim)
    _check(name, out, getattr(np, name)(_as_int64(np_view(a)), axis=dim), _int64_for_ints(dtype))
    _check(name, getattr(nd, name)(to_nd(a, dtype), dim=dim, dtype=nd.float64),
           getattr(np, name)(a.astype(np.float64), axis=dim), "float64")


LARGE = [((300, 700), None), ((300, 700), 0), ((300, 700), 1), ((4096, 64), None), ((4096, 64), 0), ((4096, 64), -1)]


def _check_accumulated(name, out, expected, magnitude):
    """Sums of signed data cancel, so a float32 result is judged against the sum of |x| it
    accumulated (the forward error bound of summation), with the OpInfo's tolerances."""
    rtol, atol = OPS[name].tol(out.dtype.name)
    assert tuple(out.shape) == np.shape(expected)
    err = np.abs(to_np(out).astype(np.float64) - expected)
    worst = np.unravel_index(err.argmax(), err.shape) if err.ndim else ()
    assert (err <= atol + rtol * magnitude).all(), f"{name}: max error {err.max()} at {worst}"


@pytest.mark.parametrize(("shape", "dim"), LARGE, ids=[f"{s[0]}x{s[1]}-dim{d}" for s, d in LARGE])
def test_large(shape, dim):
    rng = _rng("large", shape, dim)
    a = rng.uniform(-3, 3, size=shape).astype(np.float32)
    i = rng.integers(-5, 6, size=shape).astype(np.int32)
    x, xi = to_nd(a, "float32"), to_nd(i, "int32")
    a64, n = a.astype(np.float64), a.size if dim is None else a.shape[dim]
    _check_accumulated("sum", x.sum(dim), np.sum(a64, axis=dim), np.sum(np.abs(a64), axis=dim))
    _check_accumulated("mean", x.mean(dim), np.mean(a64, axis=dim), np.sum(np.abs(a64), axis=dim) / n)
    _check("sum", xi.sum(dim), np.sum(i.astype(np.int64), axis=dim), "int64")
    _check("var", x.var(dim), np.var(a64, axis=dim, ddof=1), "float32")
    _check("amax", x.amax(() if dim is None else dim), np.amax(a, axis=dim), "float32")
    _check("argmax", x.argmax(dim), np.argmax(a, axis=dim), "int64")
    _check("argmin", xi.argmin(dim), np.argmin(i, axis=dim), "int64")  # many ties: first index
    if dim is not None:
        _check_accumulated("cumsum", x.cumsum(dim), np.cumsum(a64, axis=dim), np.cumsum(np.abs(a64), axis=dim))
        _check("max", x.t().max(1 - dim % 2).values, np.amax(a.T, axis=1 - dim % 2), "float32")
        _check("sum", xi.cumsum(dim), np.cumsum(i.astype(np.int64), axis=dim), "int64")


def test_ties_pick_first_index():
    x = nd.tensor([[1, 3, 3, 0], [2, 2, 0, 0]])
    assert x.argmax().item() == 1
    assert x.argmax(1).tolist() == [1, 0]
    assert x.argmin(1).tolist() == [3, 2]
    assert x.max(1).indices.tolist() == [1, 0]
    assert x.min(dim=1).indices.tolist() == [3, 2]
    assert nd.tensor([5.0, 5.0, 5.0]).argmin().item() == 0


def test_nan_propagates():
    x = nd.tensor([[1.0, NAN, 3.0], [2.0, 0.0, -1.0]])
    assert np.isnan(x.max().item()) and np.isnan(x.min().item())
    assert np.isnan(x.amax().item())
    np.testing.assert_array_equal(to_np(x.amax(1)), [NAN, 2.0])
    np.testing.assert_array_equal(to_np(x.amin(1)), [NAN, -1.0])
    np.testing.assert_array_equal(to_np(x.amax(0)), [2.0, NAN, 3.0])
    values, indices = x.max(1)
    np.testing.assert_array_equal(to_np(values), [NAN, 2.0])
    assert indices.tolist() == [1, 0]
    assert x.argmax().item() == 1 and x.argmin().item() == 1  # torch: NaN wins in arg-reductions
    assert np.isnan(x.sum().item()) and np.isnan(x.mean(1)[0].item())


def test_max_min_namedtuple_and_other_alias():
    x = nd.tensor([[1.0, 5.0], [4.0, 2.0]])
    res = x.max(dim=0)
    values, indices = res
    assert res.values is not None and res[0].tolist() == values.tolist() == [4.0, 5.0]
    assert indices.tolist() == [1, 0] and indices.dtype == nd.int64
    assert nd.max(x, nd.tensor([3.0, 3.0])).tolist() == [[3.0, 5.0], [4.0, 3.0]]  # max(x, other) is maximum
    assert x.min(nd.tensor(3.0)).tolist() == [[1.0, 3.0], [3.0, 2.0]]


def test_integer_and_bool_result_dtypes():
    assert nd.tensor([1, 2], dtype=nd.uint8).sum().dtype == nd.int64
    assert nd.tensor([True, True, False]).sum().item() == 2
    assert nd.tensor([True, True]).sum().dtype == nd.int64
    assert nd.tensor([1, 2], dtype=nd.int8).cumsum(0).dtype == nd.int64
    assert nd.tensor([3, 4], dtype=nd.int16).prod().item() == 12
    assert nd.tensor([200, 100], dtype=nd.uint8).sum().item() == 300  # no uint8 wrap-around
    assert nd.ones(3, 4).sum(dtype=nd.float64).dtype == nd.float64
    assert nd.ones(3, 4, dtype=nd.float16).sum().dtype == nd.float16
    with pytest.raises((TypeError, RuntimeError), match=r"\[mean\]"):
        nd.tensor([1, 2]).mean()  # torch: mean needs a floating input or dtype=


def test_axis_and_keepdims_aliases():
    a = _data(_rng("alias"), (3, 4), "float32")
    x = to_nd(a, "float32")
    _check("sum", x.sum(axis=1, keepdims=True), a.sum(axis=1, keepdims=True), "float32")
    _check("mean", nd.mean(x, axis=(0, 1)), a.mean(), "float32")
    _check("var", x.var(axis=0, keepdims=True), a.var(axis=0, ddof=1, keepdims=True), "float32")


@pytest.mark.parametrize("name", ["amax", "amin", "max", "min", "argmax", "argmin"])
def test_empty_without_identity_raises(name):
    x = nd.zeros(0, 3)
    with pytest.raises((IndexError, RuntimeError), match=rf"\[{name}(\.\w+)?\]"):
        getattr(x, name)()
    with pytest.raises((IndexError, RuntimeError), match=rf"\[{name}(\.\w+)?\]"):
        getattr(x, name)(0)
    # reducing the non-empty dim of a (0, 3) tensor is fine and gives shape (0,)
    out = getattr(x, name)(1)
    assert tuple((out.values if name in ("max", "min") else out).shape) == (0,)


def test_empty_with_identity():
    x = nd.zeros(0, 3)
    assert x.sum().item() == 0.0 and x.sum(0).tolist() == [0.0] * 3
    assert x.prod(0).tolist() == [1.0] * 3
    assert x.all().item() is True and x.any().item() is False
    assert x.count_nonzero().item() == 0
    assert np.isnan(x.mean().item())
    assert tuple(x.cumsum(0).shape) == (0, 3)
    assert tuple(x.sum(1).shape) == (0,)


def test_logsumexp_extremes():
    x = nd.tensor([[1000.0, 1000.0], [-float("inf"), -float("inf")]])
    out = to_np(x.logsumexp(1))
    np.testing.assert_allclose(out[0], 1000.0 + np.log(2.0), rtol=OPS["logsumexp"].tol("float32")[0])
    assert out[1] == -np.inf


@pytest.mark.parametrize("p", [1, 2, float("inf"), float("-inf"), 0, 3])
def test_norm_orders(p):
    a = _data(_rng("norm", p), (4, 5), "float64")
    x = to_nd(a, "float64")
    with np.errstate(all="ignore"):
        _check("norm", x.norm(p=p), np.linalg.norm(a.ravel(), ord=p), "float64")
        _check("norm", x.norm(p, dim=1), np.linalg.norm(a, ord=p, axis=1), "float64")


@pytest.mark.parametrize("p", [2, "fro", 3, 1.5])
def test_norm_gradient_at_zero_is_zero(p):
    """The root's slope is infinite at 0; torch's norm backward gives a zero norm gradient 0, and
    nd's composite must not give 0 * inf = NaN. Rows that are not zero keep x / |x| (p = 2)."""
    import ndgrad

    x = nd.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, -4.0]], dtype=nd.float64, requires_grad=True)
    ndgrad.backward(x.norm(p, dim=1).sum())
    g = x.grad.numpy()
    assert (g[0] == 0).all()
    a = np.array([3.0, 0.0, -4.0])
    q = 2.0 if p == "fro" else float(p)
    np.testing.assert_allclose(g[1], np.sign(a) * np.abs(a) ** (q - 1) / np.linalg.norm(a, q) ** (q - 1), rtol=1e-12)
    v = nd.zeros(4, requires_grad=True)
    ndgrad.backward(nd.linalg.vector_norm(v, 2 if p == "fro" else p))
    assert v.grad.tolist() == [0.0] * 4


@pytest.mark.parametrize("name", ["sum", "amax", "argmax", "cumsum", "var", "logsumexp"])
def test_dim_out_of_range(name):
    x = nd.ones(2, 3)
    with pytest.raises(IndexError, match=rf"\[(\w+)\].*range"):
        getattr(x, name)(2)


def test_max_min_with_tensor_other_is_elementwise():
    a, b = nd.tensor([1.0, 5.0, -2.0]), nd.tensor([3.0, 2.0, -1.0])
    assert nd.max(a, b).tolist() == [3.0, 5.0, -1.0] and a.max(b).tolist() == [3.0, 5.0, -1.0]
    assert nd.min(a, other=b).tolist() == [1.0, 2.0, -2.0]
    assert a.max().item() == 5.0 and a.max(0).indices.item() == 1
    assert not hasattr(a, "max_")  # the alias adds an overload, not maximum's in-place variant


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [7, 70, 1030])
def test_amax_amin_over_rows_keep_nan_and_inf(dtype, cols):
    """Column maxima (the rows of a contiguous input folded into an output-sized buffer, in ISA
    variants): NaN wins wherever it sits, infinities are ordinary values."""
    r = np.random.default_rng(cols)
    a = r.standard_normal((300, cols)).astype(dtype)
    a[5, 3], a[299, 6] = np.nan, np.nan
    a[7, 1] = np.inf
    a[:, 2] = -np.inf
    for name, ref in (("amax", a.max(0)), ("amin", a.min(0))):
        got = getattr(nd.tensor(a), name)(0).numpy()
        np.testing.assert_array_equal(got, ref)
