"""The vectorised pooling kernels (csrc/kernels/pool_simd.h) against a NumPy reference and torch.

Geometries are chosen to reach every path of Note [Vectorised max pooling]: output rows with
interior columns and scalar border columns (padding, ceil_mode, dilation), strides 1/2/3 (the
phase split), rows shorter and longer than a vector, the tiled path (kernel == stride, no
padding) across several L1 chunks, values-only and with-indices forms, NaN and tie rules, every
float dtype, integers, non-contiguous inputs, and each ISA variant (ND_SIMD)."""
from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing.opdb import to_nd, to_np

from _pool_refs import avg_pool_ref, max_pool_ref, pool_out_size  # noqa: F401

HAS_TORCH = importlib.util.find_spec("torch") is not None


# (shape, kernel, stride, padding, dilation, ceil_mode): 2-D unless the kernel says otherwise
GEOMS = [
    ((2, 3, 9, 37), (3, 3), (2, 2), (1, 1), (1, 1), False),    # resnet stem: interior + left border
    ((1, 1, 11, 40), (3, 3), (2, 2), (1, 1), (1, 1), True),    # N*C = 1, ceil_mode right border
    ((2, 2, 7, 19), (3, 3), (1, 1), (1, 1), (1, 1), False),    # stride 1: both borders
    ((2, 2, 8, 30), (2, 2), (2, 2), (0, 0), (1, 1), False),    # tiled
    ((3, 5, 24, 24), (2, 2), (2, 2), (0, 0), (1, 1), False),   # tiled, seed Net layer 1
    ((2, 4, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),     # tiled, rows shorter than a vector
    ((2, 2, 9, 25), (2, 2), (2, 2), (0, 0), (1, 1), False),    # odd sizes: not tiled, last column dropped
    ((2, 2, 9, 25), (2, 2), (2, 2), (0, 0), (1, 1), True),     # odd sizes, ceil_mode
    ((1, 2, 10, 34), (3, 3), (3, 3), (1, 1), (1, 1), True),    # stride 3: generic phase split
    ((2, 2, 12, 33), (3, 2), (3, 3), (0, 0), (1, 1), False),   # kernel < stride
    ((2, 2, 9, 31), (2, 3), (1, 2), (1, 1), (2, 2), False),    # dilation
    ((1, 3, 13, 50), (5, 5), (2, 3), (2, 2), (1, 1), True),    # kernel 5
    ((2, 2, 6, 21), (4, 4), (1, 1), (2, 2), (1, 1), False),    # even kernel, padding = k/2
    ((1, 1, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1), False),     # kernel 1: a copy
    ((2, 5, 17), (2, 1), (1, 2), (1, 0), (1, 1), True),        # unbatched
    ((2, 3, 41), (3,), (2,), (1,), (1,), False),               # 1-D
    ((2, 3, 40), (2,), (2,), (0,), (1,), False),               # 1-D tiled
    ((1, 2, 23), (4,), (3,), (1,), (2,), True),                # 1-D dilation + ceil
    ((2, 2, 4, 6, 19), (2, 3, 3), (2, 1, 2), (1, 1, 1), (1, 1, 1), True),  # 3-D
    ((1, 2, 4, 8, 8), (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1), False),  # 3-D, kernel == stride
    ((2, 3, 5, 18), (2, 2, 3), (1, 2, 2), (0, 1, 1), (2, 1, 2), False),    # 3-D unbatched, dilation
]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _dims(geom):
    return len(geom[1])


def _fn(dims, with_indices):
    return getattr(nd, f"max_pool{dims}d_with_indices") if with_indices else getattr(nd._C, f"_max_pool{dims}d_values")


def _data(key, shape, dtype):
    rng = _rng(*key)
    if dtype in ("uint8", "int64", "int32"):
        return rng.integers(0, 200, shape).astype(dtype)
    return (rng.standard_normal(shape) * 10).astype(np.float64)


def _ref_input(x, dtype):
    """The values the kernel sees (rounded to the dtype), in float64."""
    if dtype in ("uint8", "int64", "int32"):
        return x.astype(np.float64)
    return to_np(to_nd(x.astype(np.float32) if dtype != "float64" else x, dtype)).astype(np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "int64", "uint8"])
@pytest.mark.parametrize("geom", GEOMS, ids=[f"g{i}" for i in range(len(GEOMS))])
def test_max_pool_values_and_indices(geom, dtype):
    shape, k, s, p, d, ceil = geom
    dims = _dims(geom)
    x = _data(("mp", geom, dtype), shape, dtype)
    xr = _ref_input(x, dtype)
    exp_v, exp_i = max_pool_ref(xr, k, s, p, d, ceil)
    t = to_nd(x.astype(np.float32) if dtype in ("float16", "bfloat16") else x, dtype)
    v, i = _fn(dims, True)(t, k, s, p, d, ceil)
    assert v.dtype == t.dtype and i.dtype == nd.int64
    np.testing.assert_array_equal(to_np(v).astype(np.float64), exp_v)
    if dtype.startswith("float") and dtype in ("float32", "float64"):  # low precision and ints tie: checked below
        np.testing.assert_array_equal(to_np(i), exp_i)
    else:  # the index must point at an element equal to the maximum
        flat = xr.reshape(xr.shape[: xr.ndim - dims] + (-1,))
        got = np.take_along_axis(flat, to_np(i).reshape(flat.shape[:-1] + (-1,)), -1).reshape(exp_v.shape)
        np.testing.assert_array_equal(got, exp_v)
    plain = _fn(dims, False)(t, k, s, p, d, ceil)
    np.testing.assert_array_equal(to_np(plain).astype(np.float64), exp_v)


@pytest.mark.parametrize("geom", GEOMS, ids=[f"g{i}" for i in range(len(GEOMS))])
def test_max_pool_ties_nan_and_inf(geom):
    shape, k, s, p, d, ceil = geom
    dims = _dims(geom)
    rng = _rng("ties", geom)
    x = rng.integers(0, 3, shape).astype(np.float32)  # many ties: the first max in window order wins
    x[rng.random(shape) < 0.05] = np.nan  # the last NaN in window order wins
    x[rng.random(shape) < 0.1] = -np.inf
    exp_v, exp_i = max_pool_ref(x, k, s, p, d, ceil)
    v, i = _fn(dims, True)(nd.tensor(x), k, s, p, d, ceil)
    np.testing.assert_array_equal(to_np(v), exp_v.astype(np.float32))  # NaNs compare equal here
    np.testing.assert_array_equal(to_np(i), exp_i)
    np.testing.assert_array_equal(to_np(_fn(dims, False)(nd.tensor(x), k, s, p, d, ceil)), exp_v.astype(np.float32))


def test_all_minus_inf_window_reports_its_first_valid_element():
    x = np.full((1, 1, 5, 21), -np.inf, np.float32)
    exp_v, exp_i = max_pool_ref(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    v, i = nd.max_pool2d_with_indices(nd.tensor(x), 3, 2, 1)
    np.testing.assert_array_equal(to_np(v), exp_v.astype(np.float32))
    np.testing.assert_array_equal(to_np(i), exp_i)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,k,s,p", [
    ((4, 40, 32, 8), 2, 2, 0),     # tiled: more bands than one L1 chunk
    ((2, 8, 30, 130), 3, 2, 1),    # long rows over several chunks of rows
])
def test_chunking_and_threads(threads, shape, k, s, p):
    old = nd.get_num_threads()
    nd.set_num_threads(threads)
    try:
        x = _rng("chunk", shape).standard_normal(shape).astype(np.float32)
        v, i = nd.max_pool2d_with_indices(nd.tensor(x), k, s, p)
        # reference through the window loop is slow on big inputs: compare against a strided view
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
        oh, ow = to_np(v).shape[-2:]
        win = np.stack([xp[..., a:a + s * oh:s, b:b + s * ow:s] for a in range(k) for b in range(k)], -1)
        np.testing.assert_array_equal(to_np(v), win.max(-1))
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        got = np.take_along_axis(flat, to_np(i).reshape(x.shape[0], x.shape[1], -1), -1).reshape(v.shape)
        np.testing.assert_array_equal(got, to_np(v))
        np.testing.assert_array_equal(to_np(nd._C._max_pool2d_values(nd.tensor(x), [k], [s], [p])), to_np(v))
    finally:
        nd.set_num_threads(old)


@pytest.mark.parametrize("layout", ["transposed", "sliced", "expanded"])
def test_non_contiguous_input(layout):
    rng = _rng("nc", layout)
    base = rng.standard_normal((3, 2, 20, 26)).astype(np.float32)
    t = nd.tensor(base)
    if layout == "transposed":
        t, x = t.transpose(2, 3), base.transpose(0, 1, 3, 2)
    elif layout == "sliced":
        t, x = t[:, :, 1::2, ::1], base[:, :, 1::2]
    else:
        t, x = t[:, :1].expand(3, 4, 20, 26), np.broadcast_to(base[:, :1], (3, 4, 20, 26))
    assert not t.is_contiguous()
    exp_v, exp_i = max_pool_ref(np.ascontiguousarray(x), (3, 3), (2, 2), (1, 1), (1, 1), True)
    v, i = nd.max_pool2d_with_indices(t, 3, 2, 1, 1, True)
    np.testing.assert_array_equal(to_np(v), exp_v.astype(np.float32))
    np.testing.assert_array_equal(to_np(i), exp_i)
    np.testing.assert_array_equal(to_np(nd.max_pool2d(t, 3, 2, 1, 1, True)), exp_v.astype(np.float32))


def test_empty_batch_and_out_argument():
    v, i = nd.max_pool2d_with_indices(nd.zeros(0, 3, 8, 8), 2)
    assert tuple(v.shape) == (0, 3, 4, 4) and tuple(i.shape) == (0, 3, 4, 4)
    assert tuple(nd._C._max_pool2d_values(nd.zeros(0, 3, 8, 8), [2]).shape) == (0, 3, 4, 4)


@pytest.mark.parametrize("geom", [g for g in GEOMS if len(g[1]) in (2, 3)], ids=lambda g: f"{g[0]}-{g[1]}")
def test_backward_scatters_into_the_argmax(geom):
    shape, k, s, p, d, ceil = geom
    dims = _dims(geom)
    rng = _rng("bwd", geom)
    x = rng.integers(0, 4, shape).astype(np.float64)  # ties: overlapping windows share an argmax
    v, i = _fn(dims, True)(nd.tensor(x), k, s, p, d, ceil)
    g = rng.standard_normal(tuple(v.shape))
    gi = getattr(nd._C, f"max_pool{dims}d_with_indices_backward")(nd.tensor(g), nd.tensor(x), k, s, p, d, ceil, i)
    lead = x.shape[: x.ndim - dims]
    exp = np.zeros(lead + (int(np.prod(x.shape[-dims:])),))
    idx = to_np(i).reshape(lead + (-1,))
    gg = g.reshape(lead + (-1,))
    for pos in np.ndindex(*lead):
        np.add.at(exp[pos], idx[pos], gg[pos])
    np.testing.assert_allclose(to_np(gi), exp.reshape(x.shape), rtol=1e-12, atol=1e-12)


def test_backward_rejects_bad_indices():
    x = nd.zeros(1, 1, 4, 4)
    with pytest.raises(IndexError, match="max_pool2d_with_indices_backward.*invalid max index"):
        nd._C.max_pool2d_with_indices_backward(nd.ones(1, 1, 2, 2), x, [2], [2], [0], [1], False,
                                               nd.full((1, 1, 2, 2), 16, dtype=nd.int64))


# ---- average and adaptive pooling ----

AVG = [  # (shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ((2, 3, 13, 37), (3, 3), (2, 2), (1, 1), False, True, None),
    ((2, 3, 13, 37), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 2, 9, 20), (2, 2), (2, 2), (0, 0), False, True, None),
    ((1, 2, 9, 21), (3, 2), (1, 3), (1, 1), True, True, 5),
    ((2, 7, 40), (5, 4), (1, 1), (2, 2), False, False, None),
    ((1, 2, 5, 6, 19), (2, 3, 3), (2, 1, 2), (1, 1, 1), True, False, None),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("case", AVG, ids=[f"a{i}" for i in range(len(AVG))])
def test_avg_pool(case, dtype):
    shape, k, s, p, ceil, cip, div = case
    x = _data(("avg", case), shape, "float64")
    xr = _ref_input(x, dtype)
    exp = avg_pool_ref(xr, k, s, p, ceil, cip, div)
    t = to_nd(x.astype(np.float32) if dtype == "bfloat16" else x, dtype)
    fn = getattr(nd, f"avg_pool{len(k)}d")
    out = fn(t, k, s, p, ceil, cip, div) if len(k) > 1 else fn(t, k, s, p, ceil, cip)
    tol = {"float32": 1e-5, "float64": 1e-12, "bfloat16": 2e-2}[dtype]
    np.testing.assert_allclose(to_np(out).astype(np.float64), exp, rtol=tol, atol=tol * 10)


def avg_pool_backward_ref(g, shape, k, s, p, ceil, count_include_pad, divisor_override=None):
    D = len(k)
    sp = shape[-D:]
    gi = np.zeros(shape)
    for o in np.ndindex(*g.shape[-D:]):
        lo = [o[i] * s[i] - p[i] for i in range(D)]
        hi = [min(lo[i] + k[i], sp[i] + p[i]) for i in range(D)]
        pool = np.prod([hi[i] - lo[i] for i in range(D)])
        lo = [max(v, 0) for v in lo]
        hi = [min(hi[i], sp[i]) for i in range(D)]
        div = divisor_override or (pool if count_include_pad else np.prod([hi[i] - lo[i] for i in range(D)]))
        gi[(Ellipsis,) + tuple(slice(lo[i], hi[i]) for i in range(D))] += (g[(Ellipsis,) + o] / div)[(...,) + (None,) * D]
    return gi


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [c for c in AVG if len(c[1]) in (2, 3)], ids=lambda c: f"{c[0]}-{c[1]}-{c[4]}")
def test_avg_pool_backward(case, dtype):
    shape, k, s, p, ceil, cip, div = case
    dims = len(k)
    x = _data(("avgb", case), shape, "float64").astype(dtype)
    out = getattr(nd, f"avg_pool{dims}d")(nd.tensor(x), k, s, p, ceil, cip, div)
    g = _rng("avgb-g", case).standard_normal(tuple(out.shape)).astype(dtype)
    gi = getattr(nd._C, f"avg_pool{dims}d_backward")(nd.tensor(g), nd.tensor(x), k, s, p, ceil, cip, div)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(to_np(gi), avg_pool_backward_ref(g.astype(np.float64), x.shape, k, s, p, ceil, cip, div),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("shape,size", [((4, 9, 7, 7), 1), ((2, 3, 56, 56), 1), ((2, 3, 5, 6, 7), 1), ((2, 3, 14, 12), (7, 4)),
                                        ((3, 13, 10), (4, 3)), ((2, 2, 6, 8, 8), (3, 2, 4))])
def test_adaptive_pooling(shape, size):
    x = _rng("ad", shape).standard_normal(shape)
    x[(0,) * x.ndim] = np.nan
    dims = len(size) if isinstance(size, tuple) else x.ndim - 2
    osz = size if isinstance(size, tuple) else (size,) * dims
    sp = x.shape[-dims:]
    lead = x.shape[:-dims]
    exp_avg = np.empty(lead + tuple(osz))
    exp_max = np.empty(lead + tuple(osz))
    exp_idx = np.empty(lead + tuple(osz), np.int64)
    for o in np.ndindex(*osz):
        lo = [o[i] * sp[i] // osz[i] for i in range(dims)]
        hi = [-(-(o[i] + 1) * sp[i] // osz[i]) for i in range(dims)]
        win = x[(Ellipsis,) + tuple(slice(lo[i], hi[i]) for i in range(dims))]
        exp_avg[(Ellipsis,) + o] = win.mean(axis=tuple(range(-dims, 0)))
        v, i = max_pool_ref(win, win.shape[-dims:], win.shape[-dims:], (0,) * dims, (1,) * dims, False)
        exp_max[(Ellipsis,) + o] = v.reshape(lead)
        local = np.unravel_index(i.reshape(lead), win.shape[-dims:])
        exp_idx[(Ellipsis,) + o] = np.ravel_multi_index(tuple(local[j] + lo[j] for j in range(dims)), sp)
    t = nd.tensor(x)
    np.testing.assert_allclose(to_np(getattr(nd, f"adaptive_avg_pool{dims}d")(t, size)), exp_avg, rtol=1e-12, atol=1e-12)
    v, i = getattr(nd, f"adaptive_max_pool{dims}d")(t, size)
    np.testing.assert_array_equal(to_np(v), exp_max)
    np.testing.assert_array_equal(to_np(i), exp_idx)


# ---- torch ----

@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("geom", [g for g in GEOMS if len(g[0]) == len(g[1]) + 2], ids=lambda g: f"{g[0]}-{g[1]}")
def test_matches_torch_with_gradients(geom):
    import torch

    shape, k, s, p, d, ceil = geom
    dims = _dims(geom)
    rng = _rng("torch", geom)
    x = rng.integers(0, 5, shape).astype(np.float32)
    x[rng.random(shape) < 0.03] = np.nan
    xt = torch.tensor(x, requires_grad=True)
    tv, ti = getattr(torch.nn.functional, f"max_pool{dims}d")(xt, k, s, p, d, ceil, True)
    v, i = _fn(dims, True)(nd.tensor(x), k, s, p, d, ceil)
    np.testing.assert_array_equal(to_np(v), tv.detach().numpy())
    np.testing.assert_array_equal(to_np(i), ti.numpy())
    if dims == 1:
        return
    g = rng.standard_normal(tuple(tv.shape)).astype(np.float32)
    tv.backward(torch.tensor(g))
    gi = getattr(nd._C, f"max_pool{dims}d_with_indices_backward")(nd.tensor(g), nd.tensor(x), k, s, p, d, ceil, i)
    np.testing.assert_allclose(to_np(gi), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
@pytest.mark.parametrize("case", AVG[:5], ids=[f"a{i}" for i in range(5)])
def test_avg_matches_torch(case):
    import torch

    shape, k, s, p, ceil, cip, div = case
    x = _rng("tavg", case).standard_normal(shape).astype(np.float32)
    fn = f"avg_pool{len(k)}d"
    args = (k, s, p, ceil, cip) + ((div,) if len(k) > 1 else ())
    np.testing.assert_allclose(to_np(getattr(nd, fn)(nd.tensor(x), *args)),
                               getattr(torch.nn.functional, fn)(torch.tensor(x), *args).numpy(), rtol=1e-5, atol=1e-6)


# ---- every ISA variant ----

_VARIANT_SCRIPT = """
import numpy as np, ndcore as nd, sys
sys.path.insert(0, {here!r})
from test_pool_fast import GEOMS, max_pool_ref, avg_pool_ref, avg_pool_backward_ref, _fn, _dims
rng = np.random.default_rng(0)
for geom in GEOMS:
    shape, k, s, p, d, ceil = geom
    for dt in (np.float32, np.float64):
        x = rng.integers(0, 4, shape).astype(dt)
        x[rng.random(shape) < 0.05] = np.nan
        ev, ei = max_pool_ref(x, k, s, p, d, ceil)
        v, i = _fn(_dims(geom), True)(nd.tensor(x), k, s, p, d, ceil)
        np.testing.assert_array_equal(v.numpy(), ev.astype(dt))
        np.testing.assert_array_equal(i.numpy(), ei)
        np.testing.assert_array_equal(_fn(_dims(geom), False)(nd.tensor(x), k, s, p, d, ceil).numpy(), ev.astype(dt))
x = rng.standard_normal((2, 3, 13, 37))
np.testing.assert_allclose(nd.avg_pool2d(nd.tensor(x), 3, 2, 1).numpy(), avg_pool_ref(x, (3, 3), (2, 2), (1, 1), False, True))
g = rng.standard_normal((2, 3, 7, 19))
np.testing.assert_allclose(nd._C.avg_pool2d_backward(nd.tensor(g), nd.tensor(x), [3], [2], [1], False, True, None).numpy(),
                           avg_pool_backward_ref(g, x.shape, (3, 3), (2, 2), (1, 1), False, True))
print("ok")
"""


@pytest.mark.parametrize("level", ["baseline", "avx2"])
def test_isa_variants(level):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, ND_SIMD=level)
    r = subprocess.run([sys.executable, "-c", _VARIANT_SCRIPT.format(here=here)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_geometries_cover_the_paths():
    # interior and border columns, strides 1-3, tiled and not: keep the table honest if edited
    kinds = set()
    for shape, k, s, p, d, ceil in GEOMS:
        tiled = k[-1] == s[-1] and p[-1] == 0 and shape[-1] % s[-1] == 0
        kinds.add(("tiled" if tiled else "rows", s[-1] if not tiled else 0, bool(p[-1] or ceil)))
    assert {("tiled", 0, False), ("rows", 1, True), ("rows", 2, True), ("rows", 3, True), ("rows", 2, False)} <= kinds
    assert any(itertools.chain(g[4][-1] > 1 for g in GEOMS))
