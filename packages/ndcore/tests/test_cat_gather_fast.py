"""Fast paths of cat, stack and the row gathers (index_select, take, gather, x[idx]): Note
[Concatenation fast path] in views.cpp and Note [Row gathers] in index.cpp. Each path is checked
against NumPy (and torch where installed) on contiguous, strided and mixed-dtype inputs, empty
and 0-size inputs, negative dims, out=, and sizes large enough to split across threads."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing.opdb import to_np

# above kGrainCheap (65536) elements, so the copies go through parallel_for
LARGE = (300, 257)


def _rng(seed):
    return np.random.default_rng(seed)


def _arr(rng, shape, dtype=np.float32):
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _strided(a):
    """An nd view of `a` with the same values but no contiguous layout (every other column of a
    doubled array), plus the same values as NumPy."""
    wide = np.repeat(a, 2, axis=-1) if a.ndim else a
    x = nd.tensor(np.ascontiguousarray(wide))
    v = x[..., ::2] if a.ndim else x
    assert a.ndim == 0 or a.shape[-1] <= 1 or not v.is_contiguous()
    return v


# ---- cat ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "mixed"])
def test_cat_matches_numpy(dim, layout):
    rng = _rng(0)
    arrays = []
    for k in range(5):
        shape = [2, 3, 4]
        shape[dim] = k + 1
        arrays.append(_arr(rng, tuple(shape)))
    ts = []
    for k, a in enumerate(arrays):
        strided = layout == "strided" or (layout == "mixed" and k % 2)
        ts.append(_strided(a) if strided else nd.tensor(a))
    got = nd.cat(ts, dim)
    np.testing.assert_array_equal(to_np(got), np.concatenate(arrays, dim))
    assert got.is_contiguous()


@pytest.mark.parametrize("n", [1, 2, 64, 300])
def test_cat_many_small_inputs(n):
    rng = _rng(n)
    arrays = [_arr(rng, (1, 28, 28)) for _ in range(n)]
    ts = [nd.tensor(a) for a in arrays]
    for dim in (0, 1, -1):
        np.testing.assert_array_equal(to_np(nd.cat(ts, dim)), np.concatenate(arrays, dim))


@pytest.mark.parametrize(
    "dtypes, want",
    [
        (("int32", "float32"), "float32"),
        (("uint8", "int8"), "int16"),
        (("bool", "int64"), "int64"),
        (("float16", "float64", "int16"), "float64"),
        (("bool", "bool"), "bool"),
    ],
)
def test_cat_promotes_mixed_dtypes(dtypes, want):
    rng = _rng(1)
    arrays = [_arr(rng, (2, k + 1), dt) for k, dt in enumerate(dtypes)]
    got = nd.cat([nd.tensor(a) for a in arrays], 1)
    assert got.dtype == getattr(nd, want)
    np.testing.assert_array_equal(to_np(got), np.concatenate([a.astype(want) for a in arrays], 1))


def test_cat_empty_and_zero_size_inputs():
    rng = _rng(2)
    a, b = _arr(rng, (2, 3)), _arr(rng, (4, 3))
    z = np.zeros((0, 3), np.float32)
    got = nd.cat([nd.tensor(z), nd.tensor(a), nd.tensor(z), nd.tensor(b)])
    np.testing.assert_array_equal(to_np(got), np.concatenate([a, b]))
    # torch's legacy rule: a 1-D empty tensor is skipped whatever the other shapes
    got = nd.cat([nd.tensor(a), nd.zeros(0), nd.tensor(b)])
    np.testing.assert_array_equal(to_np(got), np.concatenate([a, b]))
    # 0-size along a dim other than the joined one: an empty result of the right shape
    e = [nd.zeros((0, 2)), nd.zeros((0, 5))]
    assert tuple(nd.cat(e, 1).shape) == (0, 7)
    assert tuple(nd.cat([nd.zeros((3, 0)), nd.zeros((3, 0))], 1).shape) == (3, 0)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_large_parallel(dim):
    rng = _rng(3)
    arrays = [_arr(rng, LARGE) for _ in range(3)] + [_arr(rng, (300, 257), np.float64)]
    ts = [nd.tensor(a) for a in arrays[:2]] + [_strided(arrays[2]), nd.tensor(arrays[3])]
    got = nd.cat(ts, dim)
    assert got.dtype == nd.float64
    np.testing.assert_array_equal(to_np(got), np.concatenate([a.astype(np.float64) for a in arrays], dim))
    # many segments per thread: 40 inputs along the last dim of a tall array
    arrays = [_arr(rng, (4000, k % 3 + 1)) for k in range(40)]
    np.testing.assert_array_equal(to_np(nd.cat([nd.tensor(a) for a in arrays], 1)), np.concatenate(arrays, 1))


def test_cat_out():
    rng = _rng(4)
    a, b = _arr(rng, (2, 3)), _arr(rng, (2, 2))
    want = np.concatenate([a, b], 1)
    out = nd.empty((2, 5))
    r = nd.cat([nd.tensor(a), nd.tensor(b)], 1, out=out)
    assert r is out
    np.testing.assert_array_equal(to_np(out), want)
    # a non-contiguous out= is written through its strides
    base = nd.zeros((5, 2))
    nd.cat([nd.tensor(a), nd.tensor(b)], 1, out=base.t())
    np.testing.assert_array_equal(to_np(base).T, want)
    # out= of a wider dtype receives the cast values; wrong shape is resized when empty
    out64 = nd.empty(0, dtype=nd.float64)
    nd.cat([nd.tensor(a), nd.tensor(b)], 1, out=out64)
    assert tuple(out64.shape) == (2, 5) and out64.dtype == nd.float64
    np.testing.assert_array_equal(to_np(out64), want.astype(np.float64))
    with pytest.raises(TypeError, match=r"\[cat\]"):
        nd.cat([nd.tensor(a), nd.tensor(b)], 1, out=nd.empty((2, 5), dtype=nd.int32))


def test_cat_errors():
    with pytest.raises(ValueError, match=r"\[cat\] expected a non-empty list"):
        nd.cat([])
    with pytest.raises(ValueError, match=r"\[cat\] sizes of tensors must match except in dimension 0.*"
                                         r"size 3 but got size 4"):
        nd.cat([nd.zeros((2, 3)), nd.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"\[cat\] tensors must have the same number of dimensions"):
        nd.cat([nd.zeros((2, 3)), nd.zeros((2, 3, 1))])
    with pytest.raises(ValueError, match=r"\[cat\] zero-dimensional"):
        nd.cat([nd.tensor(1.0), nd.tensor(2.0)])
    with pytest.raises(IndexError, match=r"\[cat\] dimension out of range"):
        nd.cat([nd.zeros((2, 3))], 2)


def test_cat_vs_torch():
    torch = pytest.importorskip("torch")
    rng = _rng(5)
    arrays = [_arr(rng, (3, k + 1, 2)) for k in range(4)] + [_arr(rng, (3, 2, 2), np.float64)]
    for dim in (1, -2):
        got = nd.cat([nd.tensor(a) for a in arrays], dim)
        want = torch.cat([torch.from_numpy(a) for a in arrays], dim)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_array_equal(to_np(got), want.numpy())


# ---- stack ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -2, -4])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "mixed"])
def test_stack_matches_numpy(dim, layout):
    rng = _rng(6)
    arrays = [_arr(rng, (2, 3, 4)) for _ in range(5)]
    ts = []
    for k, a in enumerate(arrays):
        strided = layout == "strided" or (layout == "mixed" and k % 2)
        ts.append(_strided(a) if strided else nd.tensor(a))
    got = nd.stack(ts, dim)
    np.testing.assert_array_equal(to_np(got), np.stack(arrays, dim))
    np.testing.assert_array_equal(to_np(nd.stack(ts, axis=dim)), np.stack(arrays, dim))


def test_stack_special_shapes_and_dtypes():
    rng = _rng(7)
    np.testing.assert_array_equal(to_np(nd.stack([nd.tensor(1.0), nd.tensor(2.0)])), [1.0, 2.0])
    assert tuple(nd.stack([nd.zeros((0, 3))] * 4, 1).shape) == (0, 4, 3)
    assert tuple(nd.stack([nd.zeros((2, 0))] * 3, -1).shape) == (2, 0, 3)
    arrays = [_arr(rng, (2, 3), dt) for dt in ("int32", "bool", "float16")]
    got = nd.stack([nd.tensor(a) for a in arrays], 1)
    assert got.dtype == nd.float16
    np.testing.assert_array_equal(to_np(got), np.stack([a.astype(np.float16) for a in arrays], 1))
    many = [_arr(rng, (1, 28, 28)) for _ in range(200)]
    np.testing.assert_array_equal(to_np(nd.stack([nd.tensor(a) for a in many])), np.stack(many))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_stack_large_parallel(dim):
    rng = _rng(8)
    arrays = [_arr(rng, LARGE) for _ in range(4)]
    ts = [nd.tensor(arrays[0]), _strided(arrays[1]), nd.tensor(arrays[2]), nd.tensor(arrays[3].astype(np.float64))]
    got = nd.stack(ts, dim)
    np.testing.assert_array_equal(to_np(got), np.stack([a.astype(np.float64) for a in arrays], dim))


def test_stack_out_and_errors():
    rng = _rng(9)
    a, b = _arr(rng, (2, 3)), _arr(rng, (2, 3))
    out = nd.empty((2, 2, 3))
    assert nd.stack([nd.tensor(a), nd.tensor(b)], 1, out=out) is out
    np.testing.assert_array_equal(to_np(out), np.stack([a, b], 1))
    base = nd.zeros((3, 2, 2))
    nd.stack([nd.tensor(a), nd.tensor(b)], 0, out=base.permute(1, 2, 0))
    np.testing.assert_array_equal(to_np(base).transpose(1, 2, 0), np.stack([a, b]))
    with pytest.raises(ValueError, match=r"\[stack\] expects a non-empty list"):
        nd.stack([])
    with pytest.raises(ValueError, match=r"\[stack\] expects each tensor to be equal size.*"
                                         r"\(2, 3\) at entry 0 and \(3, 2\) at entry 1"):
        nd.stack([nd.zeros((2, 3)), nd.zeros((3, 2))])
    with pytest.raises(IndexError, match=r"\[stack\] dimension out of range.*\[-3, 2\].*3"):
        nd.stack([nd.zeros((2, 3))] * 2, 3)


def test_stack_vs_torch():
    torch = pytest.importorskip("torch")
    rng = _rng(10)
    arrays = [_arr(rng, (3, 4), dt) for dt in ("float32", "int64", "float32")]
    for dim in (0, 2, -2):
        got = nd.stack([nd.tensor(a) for a in arrays], dim)
        want = torch.stack([torch.from_numpy(a) for a in arrays], dim)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_array_equal(to_np(got), want.numpy())


def test_cat_stack_gradcheck():
    ndgrad = pytest.importorskip("ndgrad")
    rng = _rng(11)
    a = nd.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = nd.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    for dim in (0, 1, 2, -1, -3):
        assert ndgrad.gradcheck(lambda x, y, d=dim: nd.stack([x, y.sin(), x * y], d), (a, b))
    for dim in (0, 1, -1):
        assert ndgrad.gradcheck(lambda x, y, d=dim: nd.cat([x, y.t().t().sin(), x], d), (a, b))
    assert ndgrad.gradgradcheck(lambda x, y: nd.stack([x * y, y], 1), (a, b))
    # mixed dtypes: each input's gradient comes back in its own dtype
    c = nd.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    s = nd.stack([c, a], 0)
    assert s.dtype == nd.float64
    (s * nd.tensor(np.arange(12.0).reshape(2, 2, 3))).sum().backward()
    assert c.grad.dtype == nd.float32
    np.testing.assert_array_equal(to_np(c.grad), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(to_np(a.grad), np.arange(6.0, 12.0).reshape(2, 3))


# ---- index_select, x[idx], take, gather -------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_index_select_matches_numpy(dim, layout):
    rng = _rng(12)
    a = _arr(rng, (5, 6, 7))
    x = nd.tensor(a)
    if layout == "transposed":
        a = a.transpose(2, 0, 1)
        x = x.permute(2, 0, 1)
    elif layout == "strided":
        x = _strided(a)
    n = a.shape[dim]
    idx = np.array([n - 1, 0, 2, 2, -1, -n], np.int64)
    got = nd.index_select(x, dim, nd.tensor(idx))
    np.testing.assert_array_equal(to_np(got), np.take(a, idx, dim))
    np.testing.assert_array_equal(to_np(x.index_select(dim, nd.tensor(idx.astype(np.int32)))), np.take(a, idx, dim))


def test_index_select_special_cases():
    rng = _rng(13)
    a = _arr(rng, (4, 3))
    x = nd.tensor(a)
    got = nd.index_select(x, 0, nd.tensor(2))  # 0-d index keeps the dim, with size 1
    assert tuple(got.shape) == (1, 3)
    np.testing.assert_array_equal(to_np(got), a[[2]])
    assert tuple(nd.index_select(x, 1, nd.tensor(np.zeros(0, np.int64))).shape) == (4, 0)
    assert tuple(nd.index_select(nd.zeros((0, 3)), 1, nd.tensor([2, 0])).shape) == (0, 2)
    np.testing.assert_array_equal(to_np(nd.index_select(nd.tensor(5.0), 0, nd.tensor([0]))), 5.0)
    for dt in ("uint8", "bool", "int64", "float16", "float64"):
        b = _arr(rng, (6, 5), dt)
        np.testing.assert_array_equal(to_np(nd.index_select(nd.tensor(b), 1, nd.tensor([4, 0, 4]))), b[:, [4, 0, 4]])


def test_index_select_out():
    rng = _rng(14)
    a = _arr(rng, (6, 4))
    out = nd.empty((3, 4))
    assert nd.index_select(nd.tensor(a), 0, nd.tensor([5, 1, 5]), out=out) is out
    np.testing.assert_array_equal(to_np(out), a[[5, 1, 5]])
    base = nd.zeros((4, 3))
    nd.index_select(nd.tensor(a), 0, nd.tensor([0, 2, 4]), out=base.t())
    np.testing.assert_array_equal(to_np(base).T, a[[0, 2, 4]])


def test_index_select_large_parallel():
    rng = _rng(15)
    a = _arr(rng, (3000, 97))
    idx = rng.integers(-3000, 3000, 2000)
    x = nd.tensor(a)
    np.testing.assert_array_equal(to_np(nd.index_select(x, 0, nd.tensor(idx))), np.take(a, idx, 0))
    cols = rng.integers(0, 97, 1000)
    np.testing.assert_array_equal(to_np(nd.index_select(x, 1, nd.tensor(cols))), np.take(a, cols, 1))
    np.testing.assert_array_equal(to_np(nd.index_select(x.t(), 1, nd.tensor(idx))), np.take(a.T, idx, 1))


def test_index_select_errors():
    x = nd.zeros((3, 4))
    with pytest.raises(IndexError, match=r"\[index_select\] index 4 is out of bounds for dimension 1 with size 4"):
        nd.index_select(x, 1, nd.tensor([0, 4]))
    with pytest.raises(IndexError, match=r"\[index_select\] index -4 is out of bounds"):
        nd.index_select(x, 0, nd.tensor([-4]))
    with pytest.raises(TypeError, match=r"\[index_select\].*float32"):
        nd.index_select(x, 0, nd.tensor([0.0]))
    with pytest.raises(TypeError, match=r"\[index_select\].*bool"):
        nd.index_select(x, 0, nd.tensor([True, False, True]))
    with pytest.raises(ValueError, match=r"\[index_select\] index must be 0-D or 1-D"):
        nd.index_select(x, 0, nd.tensor([[0]]))
    with pytest.raises(IndexError, match=r"\[index_select\] dimension out of range"):
        nd.index_select(x, 2, nd.tensor([0]))


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_advanced_index_rows(layout):
    rng = _rng(16)
    a = _arr(rng, (50, 6, 5))
    x = nd.tensor(a) if layout == "contiguous" else _strided(a)
    idx = rng.integers(-50, 50, 17)
    t = nd.tensor(idx)
    np.testing.assert_array_equal(to_np(x[t]), a[idx])
    np.testing.assert_array_equal(to_np(x[:, nd.tensor([5, 0, -1])]), a[:, [5, 0, -1]])
    np.testing.assert_array_equal(to_np(x[..., nd.tensor([4, 4])]), a[..., [4, 4]])
    np.testing.assert_array_equal(to_np(x[t, 1:4]), a[idx, 1:4])
    np.testing.assert_array_equal(to_np(x[t.reshape(17, 1), nd.tensor([0, 2])]), a[idx.reshape(17, 1), [0, 2]])
    assert tuple(x[nd.tensor(np.zeros(0, np.int64))].shape) == (0, 6, 5)
    big = _arr(rng, (4000, 33))
    rows = rng.integers(0, 4000, 3000)
    np.testing.assert_array_equal(to_np(nd.tensor(big)[nd.tensor(rows)]), big[rows])


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_take_matches_numpy(layout):
    rng = _rng(17)
    a = _arr(rng, (4, 6))
    x = nd.tensor(a)
    if layout == "transposed":
        a, x = a.T, x.t()
    elif layout == "strided":
        x = _strided(a)
    idx = np.array([[0, 23, -1], [5, 5, -24]])
    np.testing.assert_array_equal(to_np(nd.take(x, nd.tensor(idx))), np.take(a, idx))
    np.testing.assert_array_equal(to_np(x.take(nd.tensor(idx.astype(np.int32)))), np.take(a, idx))
    np.testing.assert_array_equal(to_np(x.take(nd.tensor(7))), np.take(a, 7))
    assert tuple(x.take(nd.tensor(np.zeros((2, 0), np.int64))).shape) == (2, 0)
    big = _arr(rng, (400, 300))
    flat = rng.integers(-120000, 120000, 100000)
    np.testing.assert_array_equal(to_np(nd.tensor(big).take(nd.tensor(flat))), np.take(big, flat))


def test_take_errors_and_grad():
    with pytest.raises(IndexError, match=r"\[take\] index 6 is out of bounds for a tensor with 6 elements"):
        nd.take(nd.zeros((2, 3)), nd.tensor([0, 6]))
    with pytest.raises(TypeError, match=r"\[take\].*float32"):
        nd.take(nd.zeros((2, 3)), nd.tensor([0.0]))
    with pytest.raises(IndexError, match=r"\[take\]"):
        nd.take(nd.zeros(0), nd.tensor([0]))
    ndgrad = pytest.importorskip("ndgrad")
    rng = _rng(18)
    x = nd.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    idx = nd.tensor([[0, 11, 5], [5, -1, 0]])  # repeats must accumulate
    assert ndgrad.gradcheck(lambda v: nd.take(v, idx), (x,))
    assert ndgrad.gradcheck(lambda v: nd.take(v.t(), idx), (x,))
    assert ndgrad.gradgradcheck(lambda v: nd.take(v * v, idx), (x,))


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_gather_matches_numpy(dim, layout):
    rng = _rng(19)
    a = _arr(rng, (5, 7))
    x = nd.tensor(a)
    if layout == "transposed":
        a, x = a.T, x.t()
    n = a.shape[dim]
    ishape = list(a.shape)
    ishape[dim] = 9
    ishape[1 - (dim % 2)] -= 1  # index may be smaller than the input on the other dim
    idx = rng.integers(-n, n, ishape)
    want = np.take_along_axis(a[: ishape[0], :] if dim % 2 else a[:, : ishape[1]], idx % n, dim)
    got = nd.gather(x, dim, nd.tensor(idx))
    np.testing.assert_array_equal(to_np(got), want)
    it = nd.tensor(np.ascontiguousarray(idx.T)).t()  # a non-contiguous index
    np.testing.assert_array_equal(to_np(nd.gather(x, dim, it)), want)


def test_gather_3d_large_and_errors():
    rng = _rng(20)
    a = _arr(rng, (40, 50, 60))
    idx = rng.integers(0, 50, (40, 50, 60))
    np.testing.assert_array_equal(to_np(nd.gather(nd.tensor(a), 1, nd.tensor(idx))), np.take_along_axis(a, idx, 1))
    with pytest.raises(IndexError, match=r"\[gather\] index 5 is out of bounds for dimension 1 with size 5"):
        nd.gather(nd.zeros((2, 5)), 1, nd.tensor([[0, 5]]))
    with pytest.raises(TypeError, match=r"\[gather\] expected index dtype int64"):
        nd.gather(nd.zeros((2, 5)), 1, nd.tensor(np.zeros((1, 1), np.int32)))


def test_gathers_vs_torch_and_grad():
    torch = pytest.importorskip("torch")
    rng = _rng(21)
    a = _arr(rng, (6, 5), np.float64)
    idx = np.array([4, 0, 5, 5])
    np.testing.assert_array_equal(to_np(nd.index_select(nd.tensor(a), 0, nd.tensor(idx))),
                                  torch.index_select(torch.from_numpy(a), 0, torch.from_numpy(idx)).numpy())
    np.testing.assert_array_equal(to_np(nd.tensor(a)[nd.tensor(idx)]),
                                  torch.from_numpy(a)[torch.from_numpy(idx)].numpy())
    flat = np.array([[29, 0], [3, 3]])
    np.testing.assert_array_equal(to_np(nd.take(nd.tensor(a), nd.tensor(flat))),
                                  torch.take(torch.from_numpy(a), torch.from_numpy(flat)).numpy())
    ndgrad = pytest.importorskip("ndgrad")
    x = nd.tensor(a, requires_grad=True)
    for dim in (0, 1, -1):
        assert ndgrad.gradcheck(lambda v, d=dim: nd.index_select(v, d, nd.tensor([4, 0, 4])), (x,))
    assert ndgrad.gradcheck(lambda v: v[nd.tensor([5, 1, 5])], (x,))
    assert ndgrad.gradcheck(lambda v: nd.gather(v, 1, nd.tensor([[0, 4, 4], [1, 1, 2]])), (x,))
