"""Shared helpers of the array API tests: samples, the NumPy comparison and the dtype lists."""
from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

import ndcore as nd

_rng = np.random.default_rng(0)


def rng():
    """The current test's generator (reseeded per test by the ``seeded`` fixture)."""
    return _rng


@pytest.fixture(autouse=True)
def seeded(request):
    # each test draws the same samples whether run alone or in the whole file
    global _rng
    _rng = np.random.default_rng(zlib.crc32(request.node.name.encode()) + int(os.environ.get("ND_TEST_SEED", "0")))


INTS = ["int8", "int16", "int32", "int64", "uint8"]
FLOATS = ["float32", "float64"]
NUMERIC = INTS + FLOATS
ALL = ["bool"] + NUMERIC
SHAPES = [(), (0,), (3, 4), (2, 0, 3)]


def sample(shape, dtype, low=-5, high=5):
    if dtype == "bool":
        return _rng.random(shape) < 0.5
    if dtype in FLOATS:
        return _rng.uniform(low, high, shape).astype(dtype)
    info = np.iinfo(dtype)
    return _rng.integers(max(low, info.min), min(high, info.max) + 1, shape, dtype=dtype)


def t(a):
    return nd.tensor(np.asarray(a))


def check(got, want, rtol=None, atol=0.0, dtype=True):
    """got (ndcore) equals want (NumPy): shape, dtype and values (NaN == NaN)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            check(g, w, rtol, atol, dtype)
        return
    want = np.asarray(want)
    assert isinstance(got, nd.Tensor), type(got)
    assert tuple(got.shape) == want.shape, (tuple(got.shape), want.shape)
    if dtype:
        assert got.dtype.name == want.dtype.name, (got.dtype, want.dtype)
    g = got.numpy()
    if rtol is None:
        rtol = {"float32": 2e-6, "float64": 1e-12}.get(want.dtype.name, 0)
    if want.dtype.kind == "f":
        np.testing.assert_allclose(g, want, rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(g, want)
