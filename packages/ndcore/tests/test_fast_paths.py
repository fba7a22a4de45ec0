"""The fast paths of clamp, maximum/minimum and reversed copies (flip, negative strides).

These kernels pick a vectorised loop for dense operands and a strided one otherwise, and clamp
has NaN-bound and integer-bound branches: each branch is checked here against NumPy (and torch's
semantics where they differ from NumPy's), on contiguous, non-contiguous, negatively strided,
broadcast, 0-d and empty inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd

DTYPES = ["float32", "float64", "float16", "bfloat16", "uint8", "int8", "int16", "int32", "int64"]


def _rand(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype in ("float32", "float64", "float16", "bfloat16"):
        a = rng.standard_normal(shape) * 3
        return a.astype(np.float32 if dtype == "bfloat16" else dtype)
    lo, hi = (0, 250) if dtype == "uint8" else (-100, 100)
    return rng.integers(lo, hi, shape).astype(dtype)


def _nd(a, dtype):
    t = nd.from_numpy(np.ascontiguousarray(a))
    return t.to(getattr(nd, dtype)) if dtype == "bfloat16" else t


def _np(t):
    return t.float().numpy() if t.dtype == nd.bfloat16 else t.numpy()


# Each layout maps a dense NumPy array to (view for NumPy, the same view built with nd ops).
LAYOUTS = {
    "contiguous": (lambda a: a, lambda t: t),
    "transposed": (lambda a: a.T, lambda t: t.permute(*reversed(range(t.dim())))),
    "sliced": (lambda a: a[..., ::2], lambda t: t[..., ::2]),
    "reversed": (lambda a: a[..., ::-1], lambda t: t.flip(-1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("bounds", [(-1, 2), (None, 2), (-1, None), (3, -3)])
def test_clamp_matches_numpy(dtype, layout, bounds):
    a = _np(_nd(_rand((3, 5, 17), dtype), dtype))  # values as stored (bfloat16 rounds)
    np_view, nd_view = LAYOUTS[layout]
    x = nd_view(_nd(a, dtype))
    lo, hi = (b if b is None or dtype != "uint8" else b + 100 for b in bounds)
    got = _np(x.clamp(lo, hi))
    ref = np_view(a)
    # torch's clamp is min(max(x, lo), hi): with lo > hi every element is hi
    if lo is not None:
        ref = np.maximum(ref, lo)
    if hi is not None:
        ref = np.minimum(ref, hi)
    np.testing.assert_array_equal(got, ref.astype(got.dtype))
    out = nd_view(_nd(a, dtype))
    out.clamp_(lo, hi)  # in place through the view
    np.testing.assert_array_equal(_np(out), ref.astype(got.dtype))


@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (1,), (65537,)])
def test_clamp_shapes(shape):
    a = np.asarray(_rand(shape, "float32", seed=1))
    got = nd.from_numpy(a).clamp(min=-0.5, max=0.5).numpy()
    assert got.shape == a.shape
    np.testing.assert_array_equal(got, np.clip(a, -0.5, 0.5))


def test_clamp_nan_input_and_bounds():
    a = np.array([1.0, np.nan, -5.0, 7.0], np.float32)
    x = nd.from_numpy(a)
    np.testing.assert_array_equal(x.clamp(0, 2).numpy(), [1.0, np.nan, 0.0, 2.0])
    np.testing.assert_array_equal(x.clamp(min=0).numpy(), [1.0, np.nan, 0.0, 7.0])
    # a NaN bound makes every element NaN (torch's clamp propagates it)
    assert np.isnan(x.clamp(min=float("nan")).numpy()).all()
    assert np.isnan(x.clamp(0, float("nan")).numpy()).all()


def test_clamp_integer_bounds_and_promotion():
    u = nd.tensor([1, 2, 250], dtype=nd.uint8)
    np.testing.assert_array_equal(u.clamp(min=3).numpy(), [3, 3, 250])
    np.testing.assert_array_equal(u.clamp(min=-5).numpy(), [251, 251, 251])  # wraps, as in torch
    with pytest.raises(ValueError, match=r"^\[clamp\] value 300 cannot be converted to type uint8"):
        u.clamp(max=300)
    with pytest.raises(ValueError, match=r"^\[clamp\] value -200 cannot be converted to type int8"):
        nd.tensor([1], dtype=nd.int8).clamp(min=-200)
    r = u.clamp(0.5, 1.5)  # a float bound gives a float result
    assert r.dtype == nd.float32
    np.testing.assert_allclose(r.numpy(), [1.0, 1.5, 1.5])
    b = nd.tensor([True, False]).clamp(min=0)  # bool with an int bound promotes to int64
    assert b.dtype == nd.int64
    np.testing.assert_array_equal(b.numpy(), [1, 0])
    big = nd.tensor([2**40, -(2**40)], dtype=nd.int64).clamp(-(2**35), 2**35)
    np.testing.assert_array_equal(big.numpy(), [2**35, -(2**35)])


def test_clamp_against_torch():
    torch = pytest.importorskip("torch")
    a = _rand((4, 3, 9, 9), "float32", seed=2)
    a[0, 0, 0, :3] = np.nan
    for kw in ({"min": 0, "max": 1}, {"min": 0}, {"max": 0.25}):
        np.testing.assert_array_equal(nd.from_numpy(a).clamp(**kw).numpy(), torch.from_numpy(a).clamp(**kw).numpy())
    u = _rand((3, 8, 8), "uint8", seed=3)
    np.testing.assert_array_equal(nd.from_numpy(u).clamp(10, 200).numpy(), torch.from_numpy(u).clamp(10, 200).numpy())


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int32", "int64"])
def test_maximum_minimum_scalar_and_broadcast(name, dtype):
    a = _rand((4, 33), dtype, seed=4)
    b = _rand((33,), dtype, seed=5)
    f_nd, f_np = getattr(nd, name), getattr(np, name)
    x, y = _nd(a, dtype), _nd(b, dtype)
    np.testing.assert_array_equal(f_nd(x, y).numpy(), f_np(a, b))
    np.testing.assert_array_equal(f_nd(x, nd.tensor(7, dtype=x.dtype)).numpy(), f_np(a, np.array(7, a.dtype)))
    np.testing.assert_array_equal(f_nd(x.flip(-1), y).numpy(), f_np(a[:, ::-1], b))
    np.testing.assert_array_equal(f_nd(x.t(), x.t()).numpy(), a.T)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_propagate_nan(name):
    a = np.array([np.nan, 1.0, 2.0, np.nan, -np.inf], np.float32)
    b = np.array([0.0, np.nan, 1.0, np.nan, 3.0], np.float32)
    f_nd, f_np = getattr(nd, name), getattr(np, name)
    np.testing.assert_array_equal(f_nd(nd.from_numpy(a), nd.from_numpy(b)).numpy(), f_np(a, b))
    np.testing.assert_array_equal(f_nd(nd.from_numpy(a), nd.tensor(float("nan"))).numpy(), np.full(5, np.nan, np.float32))


@pytest.mark.parametrize("dtype", DTYPES + ["bool"])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, 224])
def test_flip_last_dim(dtype, n):
    a = _rand((3, n), dtype if dtype != "bool" else "uint8", seed=n)
    if dtype == "bool":
        a = a % 2 == 0
    a = _np(_nd(a, dtype))
    x = _nd(a, dtype)
    np.testing.assert_array_equal(_np(x.flip(-1)), np.flip(a, -1).astype(_np(x).dtype))
    np.testing.assert_array_equal(_np(x.flip([0, 1])), np.flip(a, (0, 1)).astype(_np(x).dtype))


@pytest.mark.parametrize("dtype", ["uint8", "float32", "int64"])
def test_reversed_copies(dtype):
    a = _rand((2, 3, 29), dtype, seed=6)
    x = _nd(a, dtype)
    np.testing.assert_array_equal(x.flip(-1).flip(-1).numpy(), a)  # a reversed view of a reversed copy
    np.testing.assert_array_equal(x[..., ::2].flip(-1).numpy(), a[..., ::2][..., ::-1])  # strided source
    np.testing.assert_array_equal(x.flip(-1).contiguous().numpy(), a[..., ::-1])
    np.testing.assert_array_equal(x.flip(-1).to(nd.float64).numpy(), a[..., ::-1].astype(np.float64))  # with a cast
    np.testing.assert_array_equal(x.flip(1).numpy(), a[:, ::-1])
    out = nd.empty(2, 3, 29, dtype=x.dtype)
    out.copy_(x.flip(-1))
    np.testing.assert_array_equal(out.numpy(), a[..., ::-1])
    np.testing.assert_array_equal(nd.roll(x, 5, -1).numpy(), np.roll(a, 5, -1))
    assert x[:, :, :0].flip(-1).shape == (2, 3, 0)
    np.testing.assert_array_equal(nd.tensor(3.0).flip([]).numpy(), np.array(3.0, np.float32))
