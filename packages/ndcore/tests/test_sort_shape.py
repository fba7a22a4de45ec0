"""Sorting/selection and the shape/index ops of the table's last section against NumPy (and
torch when importable) over dtypes and layouts, with torch's NaN ordering and the errors."""
from __future__ import annotations

import importlib.util
import re
import zlib

import numpy as np
import pytest
import scipy.spatial

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing.opdb import to_np

HAS_TORCH = importlib.util.find_spec("torch") is not None
OPS = {op.name: op for op in OPDB}
NAN = float("nan")
SORT_DTYPES = ["float32", "float64", "int32", "int64", "int8", "float16", "bool"]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _close(actual, expected, name, dtype="float64"):
    rtol, atol = OPS[name].tol(dtype)
    np.testing.assert_allclose(to_np(actual), expected, rtol=rtol, atol=atol)


def _ties(rng, shape, dtype):
    """Small integers (many ties) in `dtype`, so stability and tie order are exercised."""
    a = rng.integers(-3, 4, size=shape)
    return (a > 0) if dtype == "bool" else a.astype(dtype)


# layout -> (base shape, nd view, NumPy view)
LAYOUTS = {
    "contiguous": ((3, 6), lambda t: t, lambda a: a),
    "transposed": ((6, 3), lambda t: t.t(), lambda a: a.T),
    "sliced": ((4, 10), lambda t: t[1:, ::2], lambda a: a[1:, ::2]),
    "3d": ((2, 3, 4), lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "empty": ((0, 4), lambda t: t, lambda a: a),
    "0d": ((), lambda t: t, lambda a: a),
}


def _sample(dtype, layout, *key):
    shape, view, np_view = LAYOUTS[layout]
    a = _ties(_rng(dtype, layout, *key), shape, dtype)
    return view(nd.tensor(a)), np_view(a)


def _np_sort(a, dim, descending):
    """Stable sort (values, indices); descending keeps equal keys in input order, as torch."""
    if a.ndim == 0:
        return a, np.array(0)
    keys = a.astype(np.float64)
    idx = np.argsort(-keys if descending else keys, axis=dim, kind="stable")
    return np.take_along_axis(a, idx, dim), idx


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [-1, 0])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", SORT_DTYPES)
def test_sort_argsort(dtype, layout, dim, descending):
    x, a = _sample(dtype, layout, "sort")
    values, indices = nd.sort(x, dim, descending)
    ev, ei = _np_sort(a, dim, descending)
    assert values.dtype == x.dtype and indices.dtype == nd.int64
    np.testing.assert_array_equal(to_np(values), ev)
    np.testing.assert_array_equal(to_np(indices), ei)
    np.testing.assert_array_equal(to_np(x.argsort(dim=dim, descending=descending, stable=True)), ei)
    np.testing.assert_array_equal(to_np(x.sort(axis=dim, descending=descending).values), ev)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "float16"])
def test_topk_kthvalue(dtype):
    rng = _rng("topk", dtype)
    a = rng.permutation(60).reshape(3, 4, 5).astype(dtype)  # distinct: indices are unique
    x = nd.tensor(a).permute(1, 2, 0)
    p = a.transpose(1, 2, 0)
    for dim in (0, -1, 1):
        for k in (0, 1, 3):
            for largest in (True, False):
                values, indices = x.topk(k, dim, largest)
                order = np.argsort(-p if largest else p, axis=dim, kind="stable")
                want = np.take(order, np.arange(k), axis=dim)
                np.testing.assert_array_equal(to_np(indices), want)
                np.testing.assert_array_equal(to_np(values), np.take_along_axis(p, want, dim))
        for kth in (1, 3):
            for keepdim in (False, True):
                v, i = nd.kthvalue(x, kth, dim, keepdim)
                want = np.take(np.argsort(p, axis=dim), [kth - 1], axis=dim)
                np.testing.assert_array_equal(to_np(i.unsqueeze(dim) if not keepdim else i), want)
                np.testing.assert_array_equal(to_np(v.unsqueeze(dim) if not keepdim else v), np.take_along_axis(p, want, dim))


def test_nan_sorts_as_largest():
    x = nd.tensor([[3.0, NAN, 1.0, 2.0, 1.0], [0.0, -1.0, NAN, NAN, 5.0]])
    v, i = x.sort()
    assert i.tolist() == [[2, 4, 3, 0, 1], [1, 0, 4, 2, 3]]
    assert np.isnan(to_np(v)[:, -1]).all()
    assert x.sort(descending=True).indices.tolist() == [[1, 0, 3, 2, 4], [2, 3, 4, 0, 1]]
    assert x.topk(2).indices.tolist() == [[1, 0], [2, 3]]
    assert x.topk(2, largest=False).indices.tolist() == [[2, 4], [1, 0]]
    assert x.kthvalue(4).indices.tolist() == [0, 2] and np.isnan(to_np(x.kthvalue(5).values)).all()
    zero_d = nd.tensor(3.0)
    assert zero_d.topk(1).values.tolist() == 3.0 and zero_d.kthvalue(1).indices.tolist() == 0
    out, counts = nd.unique(nd.tensor([1.0, NAN, NAN, 0.0]), return_counts=True)  # NaNs stay apart
    assert out.tolist()[:2] == [0.0, 1.0] and np.isnan(to_np(out)[2:]).all() and counts.tolist() == [1, 1, 1, 1]
    if HAS_TORCH:
        import torch

        t = torch.tensor(x.tolist())
        for desc in (False, True):
            assert x.sort(descending=desc).indices.tolist() == t.sort(descending=desc, stable=True).indices.tolist()
        np.testing.assert_array_equal(to_np(x.topk(3).values), t.topk(3).values.numpy())
        assert x.kthvalue(2).indices.tolist() == t.kthvalue(2).indices.tolist()


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool", "int16"])
def test_unique(dtype):
    a = _ties(_rng("unique", dtype), (4, 6), dtype)
    x = nd.tensor(a).t()
    out, inv, counts = nd.unique(x, return_inverse=True, return_counts=True)
    eu, ei, ec = np.unique(a.T, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(to_np(out), eu)
    np.testing.assert_array_equal(to_np(inv), ei.reshape(a.T.shape))
    np.testing.assert_array_equal(to_np(counts), ec)
    assert isinstance(x.unique(), nd.Tensor) and len(x.unique(return_counts=True)) == 2
    for dim in (0, 1, -1):
        out, inv, counts = nd.unique(x, dim=dim, return_inverse=True, return_counts=True)
        eu, ei, ec = np.unique(a.T, axis=dim, return_inverse=True, return_counts=True)
        np.testing.assert_array_equal(to_np(out), eu)
        np.testing.assert_array_equal(to_np(inv), ei.reshape(-1))
        np.testing.assert_array_equal(to_np(counts), ec)
    assert tuple(nd.unique(nd.tensor([], dtype=nd.float32)).shape) == (0,)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_searchsorted(dtype):
    rng = _rng("searchsorted", dtype)
    seq = np.sort(rng.integers(-5, 6, size=9)).astype(dtype)  # with repeats
    vals = rng.integers(-7, 8, size=(3, 4)).astype(dtype)
    s, v = nd.tensor(seq), nd.tensor(vals).t()
    for right in (False, True):
        side = "right" if right else "left"
        want = np.searchsorted(seq, vals.T, side)
        np.testing.assert_array_equal(to_np(nd.searchsorted(s, v, right=right)), want)
        np.testing.assert_array_equal(to_np(nd.searchsorted(s, v, side=side)), want)
    out = nd.searchsorted(s, v, out_int32=True)
    assert out.dtype == nd.int32 and out.tolist() == np.searchsorted(seq, vals.T).tolist()
    perm = rng.permutation(9)
    shuffled = nd.tensor(seq[perm])
    sorter = nd.tensor(np.argsort(seq[perm], kind="stable"))
    np.testing.assert_array_equal(to_np(nd.searchsorted(shuffled, v, sorter=sorter)), np.searchsorted(seq, vals.T))
    rows = np.sort(rng.integers(-5, 6, size=(3, 5)), axis=1).astype(dtype)  # N-D boundaries: row by row
    got = to_np(nd.searchsorted(nd.tensor(rows), nd.tensor(vals)))
    np.testing.assert_array_equal(got, np.stack([np.searchsorted(r, q) for r, q in zip(rows, vals)]))
    assert nd.searchsorted(s, 3).tolist() == int(np.searchsorted(seq, 3)) and nd.searchsorted(s, 2.5).dim() == 0


def test_bincount_histc():
    rng = _rng("bincount")
    a = rng.integers(0, 7, size=40)
    w = rng.standard_normal(40)
    np.testing.assert_array_equal(to_np(nd.bincount(nd.tensor(a))), np.bincount(a))
    np.testing.assert_array_equal(to_np(nd.bincount(nd.tensor(a, dtype=nd.uint8), minlength=10)), np.bincount(a, minlength=10))
    _close(nd.bincount(nd.tensor(a), nd.tensor(w)), np.bincount(a, w), "bincount")
    assert nd.bincount(nd.tensor(a), nd.tensor(w, dtype=nd.float32)).dtype == nd.float32
    assert nd.bincount(nd.tensor(a), nd.tensor(a)).dtype == nd.float64
    assert nd.bincount(nd.tensor([], dtype=nd.int64), minlength=3).tolist() == [0, 0, 0]
    for dtype in ("float32", "float64"):
        x = rng.uniform(-2, 3, size=(5, 7)).astype(dtype)
        t = nd.tensor(x).t()
        for bins, lo, hi in [(10, -1.0, 2.0), (4, 0, 0), (1, -5, 5)]:
            out = nd.histc(t, bins, lo, hi)
            rng_ = (x.min(), x.max()) if lo == hi else (lo, hi)
            assert out.dtype == t.dtype
            np.testing.assert_array_equal(to_np(out), np.histogram(x, bins, rng_)[0])
    assert nd.histc(nd.tensor([1.0, 1.0]), bins=3).tolist() == [0.0, 2.0, 0.0]


B = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
M = np.arange(12, dtype=np.float64).reshape(3, 4)
# (id, nd expression over b = tensor(B) and m = tensor(M), NumPy expression over B and M); the
# pure data-movement cases also run on int64 and bool copies of B and M
MOVEMENT = ("roll", "repeat", "tile", "fliplr", "flipud", "rot90", "take", "masked_select", "diag_embed")
SHAPE_CASES = [
    ("roll_dim", lambda b, m: b.roll(1, 2), lambda B, M: np.roll(B, 1, 2)),
    ("roll_multi", lambda b, m: nd.roll(b, (-1, 5), (0, -1)), lambda B, M: np.roll(B, (-1, 5), (0, -1))),
    ("roll_flat", lambda b, m: nd.roll(b.mT, 7), lambda B, M: np.roll(B.swapaxes(-1, -2), 7)),
    ("roll_empty", lambda b, m: nd.roll(b[:, :0], 2, 1), lambda B, M: np.roll(B[:, :0], 2, 1)),
    ("repeat", lambda b, m: m.repeat(2, 1), lambda B, M: np.tile(M, (2, 1))),
    ("repeat_more_dims", lambda b, m: m.t().repeat((2, 1, 3)), lambda B, M: np.tile(M.T, (2, 1, 3))),
    ("repeat_zero", lambda b, m: m.repeat(0, 2), lambda B, M: np.tile(M, (0, 2))),
    ("repeat_0d", lambda b, m: b[1, 2, 3].repeat(3), lambda B, M: np.tile(B[1, 2, 3], 3)),
    ("tile", lambda b, m: nd.tile(b, (2,)), lambda B, M: np.tile(B, (2,))),
    ("tile_method_varargs", lambda b, m: m.tile(2, 1, 2), lambda B, M: np.tile(M, (2, 1, 2))),
    ("repeat_interleave_int", lambda b, m: m.repeat_interleave(2, dim=1), lambda B, M: np.repeat(M, 2, 1)),
    ("repeat_interleave_flat", lambda b, m: nd.repeat_interleave(m, 3), lambda B, M: np.repeat(M, 3)),
    ("repeat_interleave_tensor", lambda b, m: m.t().repeat_interleave(nd.tensor([1, 0, 3, 2]), dim=0),
     lambda B, M: np.repeat(M.T, [1, 0, 3, 2], 0)),
    ("interleave_counts", lambda b, m: nd.repeat_interleave(nd.tensor([2, 1, 3])), lambda B, M: np.repeat([0, 1, 2], [2, 1, 3])),
    ("fliplr", lambda b, m: b.fliplr(), lambda B, M: np.fliplr(B)),
    ("flipud", lambda b, m: nd.flipud(m.t()), lambda B, M: np.flipud(M.T)),
    *[(f"rot90_{k}", (lambda k: lambda b, m: b.rot90(k, [1, 2]))(k), (lambda k: lambda B, M: np.rot90(B, k, (1, 2)))(k))
      for k in (0, 1, 2, 3, -1, 5)],
    ("rot90_default", lambda b, m: nd.rot90(m), lambda B, M: np.rot90(M)),
    ("take", lambda b, m: b.take(nd.tensor([[0, -1], [5, 23]])), lambda B, M: np.take(B, [[0, -1], [5, 23]])),
    ("take_transposed", lambda b, m: nd.take(m.t(), nd.tensor([1, 2])), lambda B, M: np.take(M.T, [1, 2])),
    ("take_along_dim", lambda b, m: b.take_along_dim(nd.tensor([[[0], [3], [1]]]), 2),
     lambda B, M: np.take_along_axis(B, np.array([[[0], [3], [1]]]), 2)),
    ("take_along_dim_flat", lambda b, m: nd.take_along_dim(m, nd.tensor([11, 0])), lambda B, M: M.ravel()[[11, 0]]),
    ("masked_select", lambda b, m: b.masked_select(b > 10), lambda B, M: B[B > 10]),
    ("masked_select_bcast", lambda b, m: nd.masked_select(m, nd.tensor([True, False, False, True])),
     lambda B, M: M[:, [True, False, False, True]].ravel()),
    ("tensordot_int", lambda b, m: nd.tensordot(b, m.t().float(), 1), lambda B, M: np.tensordot(B, M.T, 1)),
    ("tensordot_lists", lambda b, m: nd.tensordot(b, m.float(), ([1, 2], [0, 1])), lambda B, M: np.tensordot(B, M, ([1, 2], [0, 1]))),
    ("tensordot_zero", lambda b, m: nd.tensordot(m, m, 0), lambda B, M: np.tensordot(M, M, 0)),
    ("cross", lambda b, m: nd.cross(m[:, :3], m[:, 1:], dim=-1), lambda B, M: np.cross(M[:, :3], M[:, 1:])),
    ("cross_default_dim", lambda b, m: nd.cross(m[:, :3], m[:, 1:]), lambda B, M: np.cross(M[:, :3], M[:, 1:], axis=0)),
    ("cross_dim0", lambda b, m: m[:, :2].cross(m[:, 2:] ** 2, dim=0), lambda B, M: np.cross(M[:, :2], M[:, 2:] ** 2, axis=0)),
    ("diag_embed", lambda b, m: nd.diag_embed(m), lambda B, M: M[..., None] * np.eye(4)),
    ("logspace", lambda b, m: nd.logspace(-1, 2, 7), lambda B, M: np.logspace(-1, 2, 7).astype(np.float32)),
    ("logspace_base2", lambda b, m: nd.logspace(0, 3, 4, 2, dtype=nd.float64), lambda B, M: np.logspace(0, 3, 4, base=2)),
    ("cdist", lambda b, m: nd.cdist(m, m[:2] + 0.5), lambda B, M: scipy.spatial.distance.cdist(M, M[:2] + 0.5)),
    ("cdist_p1", lambda b, m: nd.cdist(m, m[1:], 1), lambda B, M: scipy.spatial.distance.cdist(M, M[1:], "cityblock")),
    ("cdist_pinf", lambda b, m: nd.cdist(m, m[1:], float("inf")), lambda B, M: scipy.spatial.distance.cdist(M, M[1:], "chebyshev")),
    ("cdist_p3", lambda b, m: nd.cdist(m, m[1:], 3), lambda B, M: scipy.spatial.distance.cdist(M, M[1:], "minkowski", p=3)),
]


SHAPE_PARAMS = [pytest.param(expr, ref, dt, id=f"{name}-{dt}") for name, expr, ref in SHAPE_CASES
                for dt in (("native", "int64", "bool") if name.startswith(MOVEMENT) else ("native",))]


@pytest.mark.parametrize(("expr", "ref", "dtype"), SHAPE_PARAMS)
def test_shape_ops(expr, ref, dtype):
    b, m = (B, M) if dtype == "native" else (B.astype(dtype), M.astype(dtype))
    out = expr(nd.tensor(b), nd.tensor(m))
    want = np.asarray(ref(b, m))
    assert tuple(out.shape) == want.shape
    if dtype != "native":
        assert out.dtype.name == dtype
    _close(out, want, "cross", out.dtype.name if out.dtype.is_floating_point else "float64")


def test_diag_embed_offsets_and_meshgrid():
    x = _rng("diag").standard_normal((2, 3))
    for offset, d1, d2 in [(1, 0, 2), (-2, -1, 1), (0, -2, -1)]:
        out = to_np(nd.diag_embed(nd.tensor(x), offset, d1, d2))
        assert out.shape[d1] == out.shape[d2] == 3 + abs(offset)
        np.testing.assert_array_equal(np.diagonal(out, offset, d1, d2), x)
        assert np.count_nonzero(out) == x.size
    a, b, c = nd.arange(2), nd.arange(3.0), nd.tensor(5)
    for indexing in ("ij", "xy"):
        got = nd.meshgrid(a, b, c, indexing=indexing)
        for g, w in zip(got, np.meshgrid(np.arange(2), np.arange(3.0), [5], indexing=indexing)):
            np.testing.assert_array_equal(to_np(g), w)
    assert [tuple(g.shape) for g in nd.meshgrid([a, b])] == [(2, 3), (2, 3)]


EINSUM = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ii->i", [(4, 4)]), ("ii", [(4, 4)]),
    ("ij->ji", [(3, 4)]), ("i,i->", [(5,), (5,)]), ("i,j->ij", [(3,), (4,)]), ("ij,jk", [(3, 4), (4, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]), ("bii->b", [(2, 3, 3)]), ("ijk->", [(2, 3, 4)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]), ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 2)]), ("i,i,i->i", [(4,), (4,), (4,)]),
    ("ba", [(3, 4)]), ("iij->j", [(3, 3, 2)]), ("...i->...", [(2, 3, 4)]), ("i...->...", [(3, 2)]),
    ("ij,kl->", [(2, 3), (4, 5)]), ("bij,jk->bk", [(2, 3, 4), (4, 0)]), ("ab,ab->b", [(1, 3), (4, 3)]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize(("eq", "shapes"), EINSUM, ids=[e[0] for e in EINSUM])
def test_einsum(eq, shapes, dtype):
    rng = _rng("einsum", eq, dtype)
    arrays = [rng.integers(-3, 4, size=s).astype(dtype) for s in shapes]
    tensors = [nd.tensor(a).mT.contiguous().mT if a.ndim >= 2 else nd.tensor(a) for a in arrays]
    out = nd.einsum(eq, *tensors)
    want = np.einsum(eq, *arrays)
    assert out.dtype.name == dtype and tuple(out.shape) == want.shape
    _close(out, want, "einsum", dtype if dtype != "int64" else "float64")
    np.testing.assert_array_equal(to_np(nd.einsum(eq, tensors)), to_np(out))


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_index_add_index_copy(dtype):
    rng = _rng("index_add", dtype)
    base = _ties(rng, (5, 3), dtype)
    src = _ties(rng, (4, 3), dtype)
    idx = np.array([0, 4, 0, -1])
    want = base.copy()
    op = np.logical_or if dtype == "bool" else np.add
    op.at(want, idx, src if dtype == "bool" else src * 2)
    kwargs = {} if dtype == "bool" else {"alpha": 2}
    np.testing.assert_array_equal(to_np(nd.tensor(base).index_add(0, nd.tensor(idx), nd.tensor(src), **kwargs)), want)
    x = nd.tensor(base).t().contiguous().t()  # column-major self, written in place
    before = x._version
    assert x.index_add_(0, nd.tensor(idx, dtype=nd.int32), nd.tensor(src), **kwargs) is x and x._version > before
    np.testing.assert_array_equal(to_np(x), want)
    with pytest.raises(IndexError):  # indices are checked before anything is written
        x.index_add_(0, nd.tensor([0, 7]), nd.tensor(src[:2]))
    np.testing.assert_array_equal(to_np(x), want)
    s2 = _ties(rng, (2, 5), dtype)  # a transposed (non-contiguous) source along dim 1, duplicate index
    want = base.copy()
    op.at(want, (slice(None), [2, 2]), s2.T)
    np.testing.assert_array_equal(to_np(nd.tensor(base).index_add(1, nd.tensor([2, 2]), nd.tensor(s2).t())), want)
    copy_want = base.copy()
    copy_want[[3, 1]] = src[:2]
    np.testing.assert_array_equal(to_np(nd.index_copy(nd.tensor(base), 0, nd.tensor([3, 1]), nd.tensor(src[:2]))), copy_want)
    y = nd.tensor(base)
    y.index_copy_(1, nd.tensor([2, 0]), nd.tensor(base[:, :2]))
    copy_want = base.copy()
    copy_want[:, [2, 0]] = base[:, :2]
    np.testing.assert_array_equal(to_np(y), copy_want)


def test_masked_scatter():
    rng = _rng("masked_scatter")
    a = rng.standard_normal((3, 4)).astype(np.float32)
    mask = rng.random((3, 4)) < 0.5
    src = rng.standard_normal(12).astype(np.float32)
    want = a.copy()
    want[mask] = src[:mask.sum()]
    np.testing.assert_array_equal(to_np(nd.tensor(a).masked_scatter(nd.tensor(mask), nd.tensor(src))), want)
    x = nd.tensor(a)
    x.masked_scatter_(nd.tensor(mask[0]), nd.tensor(src))  # the mask broadcasts over rows
    want = a.copy()
    want[np.broadcast_to(mask[0], a.shape)] = src[:np.broadcast_to(mask[0], a.shape).sum()]
    np.testing.assert_array_equal(to_np(x), want)


def _f(*shape, dtype=nd.float32):
    return nd.ones(*shape, dtype=dtype)


# (id, call, exception type, regexes the message must all match)
ERRORS = [
    ("sort_dim", lambda: nd.sort(_f(2, 3), 2), IndexError, [r"^\[sort\]", r"\[-2, 1\]"]),
    ("topk_k", lambda: nd.topk(_f(5), 6), IndexError, [r"^\[topk\]", "k = 6", "size 5"]),
    ("kthvalue_k", lambda: nd.kthvalue(_f(5), 0), IndexError, [r"^\[kthvalue\]", "k = 0"]),
    ("unique_0d_dim", lambda: nd.unique(nd.tensor(1.0), dim=0), IndexError, [r"^\[unique\]"]),
    ("searchsorted_side", lambda: nd.searchsorted(_f(3), _f(2), side="left", right=True), ValueError,
     [r"^\[searchsorted\]", "opposites"]),
    ("searchsorted_shapes", lambda: nd.searchsorted(_f(2, 3), _f(3, 1)), ValueError, [r"^\[searchsorted\]", r"\(2, 3\)", r"\(3, 1\)"]),
    ("bincount_negative", lambda: nd.bincount(nd.tensor([1, -1])), ValueError, [r"^\[bincount\]", "-1"]),
    ("bincount_float", lambda: nd.bincount(_f(3)), TypeError, [r"^\[bincount\]", "float32"]),
    ("bincount_2d", lambda: nd.bincount(_f(2, 2, dtype=nd.int64)), ValueError, [r"^\[bincount\]", r"\(2, 2\)"]),
    ("bincount_weights", lambda: nd.bincount(nd.tensor([0, 1]), _f(3)), ValueError, [r"^\[bincount\]", r"\(3,\)"]),
    ("histc_int", lambda: nd.histc(nd.tensor([1, 2])), TypeError, [r"^\[histc\]", "int64"]),
    ("histc_range", lambda: nd.histc(_f(3), 4, 2, 1), ValueError, [r"^\[histc\]", "max must be larger than min"]),
    ("repeat_dims", lambda: _f(2, 3).repeat(2), ValueError, [r"^\[repeat\]", "can not be smaller"]),
    ("roll_align", lambda: nd.roll(_f(2, 3), (1, 2), 0), ValueError, [r"^\[roll\]", "align"]),
    ("repeat_interleave_size", lambda: nd.repeat_interleave(_f(3), nd.tensor([1, 2])), ValueError,
     [r"^\[repeat_interleave\]", r"\(2,\)", r"\(3,\)"]),
    ("meshgrid_indexing", lambda: nd.meshgrid(_f(2), indexing="ji"), ValueError, [r"^\[meshgrid\]", "'ji'"]),
    ("einsum_count", lambda: nd.einsum("ij,jk", _f(2, 2)), ValueError, [r"^\[einsum\]", "2 operand subscripts but 1"]),
    ("einsum_rank", lambda: nd.einsum("ijk", _f(2, 2)), ValueError, [r"^\[einsum\]", r"\(2, 2\)", "'ijk'"]),
    ("einsum_sizes", lambda: nd.einsum("ij,jk", _f(2, 3), _f(4, 2)), ValueError, [r"^\[einsum\]", "'j'", "size 4"]),
    ("einsum_output", lambda: nd.einsum("ij->k", _f(2, 3)), ValueError, [r"^\[einsum\]", "'k'"]),
    ("tensordot_sizes", lambda: nd.tensordot(_f(2, 3), _f(4, 2), 1), ValueError, [r"^\[tensordot\]", "size 3", "size 4"]),
    ("take_bounds", lambda: nd.take(_f(2, 3), nd.tensor([6])), IndexError, [r"^\[take\]", "6", "6 elements"]),
    ("take_float", lambda: nd.take(_f(2, 3), _f(1)), TypeError, [r"^\[take\]", "float32"]),
    ("take_along_dim_rank", lambda: nd.take_along_dim(_f(2, 3), nd.tensor([0]), 1), ValueError, [r"^\[take_along_dim\]"]),
    ("index_add_bounds", lambda: _f(3, 2).index_add_(0, nd.tensor([3]), _f(1, 2)), IndexError,
     [r"^\[index_add_\]", "index 3", "size 3"]),
    ("index_add_dtype", lambda: nd.index_add(_f(3), 0, _f(1), _f(1)), TypeError, [r"^\[index_add\]", "float32"]),
    ("index_copy_source", lambda: nd.index_copy(_f(3, 2), 0, nd.tensor([0]), _f(1, 3)), ValueError,
     [r"^\[index_copy\]", r"\(1, 3\)", r"\(3, 2\)"]),
    ("masked_select_mask", lambda: nd.masked_select(_f(2), _f(2)), TypeError, [r"^\[masked_select\]", "float32"]),
    ("masked_scatter_source", lambda: _f(3).masked_scatter_(nd.tensor([True] * 3), _f(2)), ValueError,
     [r"^\[masked_scatter_\]", "2 elements", "selects 3"]),
    ("fliplr_1d", lambda: nd.fliplr(_f(3)), ValueError, [r"^\[fliplr\]", r"\(3,\)"]),
    ("rot90_dims", lambda: nd.rot90(_f(2, 2), 1, [0, 0]), ValueError, [r"^\[rot90\]", "distinct"]),
    ("diag_embed_dims", lambda: nd.diag_embed(_f(3), 0, 1, 1), ValueError, [r"^\[diag_embed\]", "identical"]),
    ("cross_len", lambda: nd.cross(_f(2, 4), _f(2, 4), 1), ValueError, [r"^\[cross\]", r"\(2, 4\)"]),
    ("cdist_cols", lambda: nd.cdist(_f(2, 3), _f(2, 4)), ValueError, [r"^\[cdist\]", r"\(2, 3\)", r"\(2, 4\)"]),
]


@pytest.mark.parametrize(("call", "exc", "patterns"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(call, exc, patterns):
    with pytest.raises(exc) as info:
        call()
    for p in patterns:
        assert re.search(p, str(info.value)), (p, str(info.value))


# Expressions in torch's API, run with module m = ndcore and, when importable, m = torch.
TORCH_CASES = [
    lambda m: m.tensor([[1, 2], [3, 4]]).repeat_interleave(m.tensor([1, 2]), dim=0),
    lambda m: m.take_along_dim(m.arange(6).reshape(2, 3), m.tensor([[0, 1, 0]]), 0),
    lambda m: m.diag_embed(m.arange(6.0).reshape(2, 3), 1, 0, 2),
    lambda m: m.rot90(m.arange(6).reshape(2, 3), -1, [0, 1]),
    lambda m: m.cross(m.arange(9.0).reshape(3, 3), m.ones(3, 3) * 2, dim=1),
    lambda m: m.unique(m.tensor([[1, 2, 1], [1, 2, 1], [0, 5, 0]]), dim=1, return_inverse=True, return_counts=True),
    lambda m: m.searchsorted(m.tensor([1, 3, 5, 7]), m.tensor([[3, 6], [9, 0]]), right=True),
    lambda m: m.bincount(m.tensor([0, 1, 1, 3]), m.tensor([1.0, 2, 3, 4])),
    lambda m: m.arange(6).reshape(2, 3).tile(2, 1),
    lambda m: m.arange(4).repeat(2, 2),
    lambda m: m.meshgrid(m.arange(2), m.arange(3), indexing="xy"),
    lambda m: m.logspace(0, 2, 3, base=2),
    lambda m: m.zeros(3, 2).index_add_(0, m.tensor([0, 2, 0]), m.ones(3, 2), alpha=2),
    lambda m: m.zeros(3, 2).index_copy(0, m.tensor([2, 0]), m.arange(4.0).reshape(2, 2)),
    lambda m: m.arange(6.0).reshape(2, 3).masked_scatter(m.tensor([True, False, True]), m.arange(10.0, 16.0)),
    lambda m: m.arange(6.0).reshape(2, 3).argsort(dim=0, descending=True),
    lambda m: m.sort(m.tensor([True, False, True])),
    lambda m: m.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]).topk(2, sorted=True),
    lambda m: m.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]]).kthvalue(2, 0, keepdim=True),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[f"case{i}" for i in range(len(TORCH_CASES))])
def test_matches_torch_api(case):
    ours = case(nd)
    ours = tuple(ours) if isinstance(ours, tuple) else (ours,)
    assert all(isinstance(t, nd.Tensor) for t in ours)
    if HAS_TORCH:
        import torch

        theirs = case(torch)
        theirs = tuple(theirs) if isinstance(theirs, tuple) else (theirs,)
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            assert o.dtype.name == str(t.dtype).removeprefix("torch.") and tuple(o.shape) == tuple(t.shape)
            _close(o, t.numpy(), "cross")
