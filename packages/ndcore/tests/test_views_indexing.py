"""Views (values vs NumPy, shared storage and version counter) and indexing: basic and advanced
get/set vs NumPy (torch where their semantics differ), a hypothesis fuzz of basic indexing,
and the gather/scatter family vs take_along_axis, put_along_axis and np.add.at."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided as np_as_strided
from numpy.lib.stride_tricks import sliding_window_view

import ndcore as nd
from ndcore.testing.opdb import to_np

from ndcore.testing import OPDB

HAS_TORCH = importlib.util.find_spec("torch") is not None
OPS = {op.name: op for op in OPDB}


def _base(shape=(2, 3, 4)):
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    return a, nd.tensor(a)


def _np_unfold(a, dim, size, step):
    w = sliding_window_view(a, size, axis=dim)
    return w[(slice(None),) * dim + (slice(None, None, step),)]


# id -> (nd view of x, NumPy equivalent of a); x and a are arange(24) as (2, 3, 4)
VIEWS = {
    "view": (lambda x: x.view(4, 6), lambda a: a.reshape(4, 6)),
    "view_infer": (lambda x: x.view(-1, 8), lambda a: a.reshape(-1, 8)),
    "reshape": (lambda x: x.reshape(6, 4), lambda a: a.reshape(6, 4)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "transpose": (lambda x: x.transpose(0, -1), lambda a: a.swapaxes(0, -1)),
    "expand": (lambda x: x[:, :1].expand(3, 2, 5, 4), lambda a: np.broadcast_to(a[:, :1], (3, 2, 5, 4))),
    "squeeze": (lambda x: x[:, :1].squeeze(), lambda a: a[:, :1].squeeze()),
    "squeeze_dim": (lambda x: x[:1, :1].squeeze(1), lambda a: a[:1, :1].squeeze(1)),
    "unsqueeze": (lambda x: x.unsqueeze(-2), lambda a: np.expand_dims(a, -2)),
    "flatten": (lambda x: x.flatten(1), lambda a: a.reshape(2, 12)),
    "unflatten": (lambda x: x.unflatten(2, (2, 2)), lambda a: a.reshape(2, 3, 2, 2)),
    "narrow": (lambda x: x.narrow(2, 1, 2), lambda a: a[:, :, 1:3]),
    "narrow_neg": (lambda x: nd.narrow(x, 1, -2, 2), lambda a: a[:, 1:3]),
    "select": (lambda x: x.select(1, -1), lambda a: a[:, -1]),
    "diagonal": (lambda x: x.diagonal(0, 1, 2), lambda a: np.diagonal(a, 0, 1, 2)),
    "diagonal_offset": (lambda x: x.diagonal(1, -1, -2), lambda a: np.diagonal(a, 1, -1, -2)),
    "diagonal_neg_offset": (lambda x: nd.diagonal(x, -1, 1, 2), lambda a: np.diagonal(a, -1, 1, 2)),
    "unfold": (lambda x: x.unfold(2, 2, 1), lambda a: _np_unfold(a, 2, 2, 1)),
    "unfold_step": (lambda x: x.unfold(1, 2, 2), lambda a: _np_unfold(a, 1, 2, 2)),
    "as_strided": (lambda x: x.as_strided((3, 3), (5, 2), 1),
                   lambda a: np_as_strided(a.ravel()[1:], (3, 3), (20, 8), writeable=False)),
    "t_2d": (lambda x: x[0].t(), lambda a: a[0].T),
    "T": (lambda x: x.T, lambda a: a.T),
    "mT": (lambda x: x.mT, lambda a: a.swapaxes(-1, -2)),
    "slice_step": (lambda x: x[:, ::2, 1::3], lambda a: a[:, ::2, 1::3]),
    "alias": (lambda x: nd.alias(x), lambda a: a),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_view_values_and_aliasing(name):
    a, x = _base()
    fn, ref = VIEWS[name]
    v = fn(x)
    np.testing.assert_array_equal(to_np(v), ref(a))
    assert v._is_view_of(x)
    before = x._version
    x.add_(1.0)  # a write to the base shows through the view
    assert v._version == x._version > before  # one version counter per storage
    np.testing.assert_array_equal(to_np(v), ref(a + 1))
    if name != "expand":  # torch refuses writes into expanded (self-overlapping) views
        v.fill_(-7.0)
        assert x._version == v._version
        assert int((x == -7.0).sum()) >= 1  # the write through the view landed in the base
        np.testing.assert_array_equal(to_np(fn(x)), np.full(ref(a).shape, -7.0))


@pytest.mark.parametrize("how", ["split", "split_sizes", "chunk", "unbind"])
def test_multi_output_views(how):
    a, x = _base()
    parts = {"split": lambda: x.split(3, 2), "split_sizes": lambda: nd.split(x, [1, 3], 2),
             "chunk": lambda: x.chunk(2, 1), "unbind": lambda: nd.unbind(x, 1)}[how]()
    expected = {"split": lambda: np.split(a, [3], 2), "split_sizes": lambda: np.split(a, [1], 2),
                "chunk": lambda: np.array_split(a, [2], 1), "unbind": lambda: [a[:, i] for i in range(3)]}[how]()
    assert len(parts) == len(expected)
    for p, e in zip(parts, expected):
        np.testing.assert_array_equal(to_np(p), e)
        assert p._is_view_of(x)
    parts[-1].fill_(0.0)
    assert float(x.sum()) < float(a.sum())


def test_view_on_non_viewable_strides_mentions_reshape():
    _, x = _base()
    with pytest.raises((ValueError, RuntimeError), match=r"\[view\].*reshape"):
        x.transpose(0, 1).view(-1)
    y = x.transpose(0, 1).reshape(-1)  # reshape copies instead
    assert not y._is_view_of(x)
    np.testing.assert_array_equal(to_np(y), np.arange(24.0).reshape(2, 3, 4).swapaxes(0, 1).ravel())


def test_reshape_of_contiguous_is_a_view_and_contiguous_copies():
    _, x = _base()
    assert x.reshape(-1)._is_view_of(x)
    p = x.permute(1, 0, 2)
    assert not p.is_contiguous() and p.contiguous().is_contiguous()
    assert not p.contiguous()._is_view_of(x) and x.contiguous() is x


@pytest.mark.parametrize("key", [
    0, -1, (1, 2), (-1, -2, -3), slice(None), slice(1, None), (slice(None), slice(None, None, 2)),
    (Ellipsis, 1), (None, 0), (0, None, slice(1, 3)), (Ellipsis, None), (slice(-3, -1), Ellipsis, slice(0, 4, 3)),
    (slice(5, 10),), (1, slice(0, 0)), Ellipsis, (),
], ids=repr)
def test_basic_get_and_set(key):
    a, x = _base()
    out = x[key]
    np.testing.assert_array_equal(to_np(out), a[key])
    assert out._is_view_of(x)
    value = np.full(np.shape(a[key]), -3.0, dtype=np.float32)
    a[key] = value
    before = x._version
    x[key] = nd.tensor(value)
    np.testing.assert_array_equal(to_np(x), a)
    assert x._version > before
    x[key] = 9.0
    a[key] = 9.0
    np.testing.assert_array_equal(to_np(x), a)


# (id, key built with a module of torch's API, result shape under torch's rules)
ADVANCED = [
    ("int_list", lambda t: [0, 1, 0], (3, 3, 4)),
    ("neg_int_list", lambda t: [-1, 0], (2, 3, 4)),
    ("int_tensor", lambda t: t.tensor([1, 0]), (2, 3, 4)),
    ("int_tensor_2d", lambda t: t.tensor([[0, 1], [1, 1]]), (2, 2, 3, 4)),
    ("bool_mask_full", lambda t: t.arange(24).reshape(2, 3, 4) % 3 == 0, (8,)),
    ("bool_mask_dim0", lambda t: t.tensor([False, True]), (1, 3, 4)),
    ("bool_mask_2d", lambda t: t.tensor([[True, False, True], [False, False, True]]), (3, 4)),
    ("two_lists", lambda t: ([0, 1], [2, 0]), (2, 4)),
    ("slice_then_lists", lambda t: (slice(None), [0, 2], [1, 3]), (2, 2)),
    ("lists_split_by_slice", lambda t: ([0, 1], slice(None), [1, 2]), (2, 3)),
    ("int_then_list", lambda t: (0, slice(None), [1, 2]), (3, 2)),  # torch applies the int first
    ("list_then_int", lambda t: ([1, 0], 2), (2, 4)),
    ("ellipsis_list", lambda t: (Ellipsis, [3, 0]), (2, 3, 2)),
    ("none_and_list", lambda t: (None, [1], slice(None), 0), (1, 1, 3)),
    ("mask_and_slice", lambda t: (t.tensor([True, False]), slice(1, None)), (1, 2, 4)),
    ("broadcast_lists", lambda t: (t.tensor([[0], [1]]), slice(None), t.tensor([0, 3])), (2, 2, 3)),
]
DUPLICATE_TARGETS = {"int_list", "int_tensor_2d"}  # assigning distinct values there is unspecified
REPEATED_ELEMENTS = {"int_list": 12, "int_tensor_2d": 24}  # selected more than once


def _torch_result(make_key, get=True):
    import torch

    t = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    key = make_key(torch)
    if get:
        return t[key].numpy()
    t[key] = -1.0
    return t.numpy()


@pytest.mark.parametrize(("name", "make_key", "shape"), ADVANCED, ids=[c[0] for c in ADVANCED])
def test_advanced_get_and_set_vs_torch(name, make_key, shape):
    _, x = _base()
    out = x[make_key(nd)]
    assert tuple(out.shape) == shape
    if HAS_TORCH:
        np.testing.assert_array_equal(to_np(out), _torch_result(make_key))
    x[make_key(nd)] = -1.0
    assert int((x == -1.0).sum()) == int(np.prod(shape)) - REPEATED_ELEMENTS.get(name, 0)
    if HAS_TORCH:
        np.testing.assert_array_equal(to_np(x), _torch_result(make_key, get=False))


@pytest.mark.parametrize(("name", "make_key"), [c[:2] for c in ADVANCED if c[0] != "int_then_list"],
                         ids=[c[0] for c in ADVANCED if c[0] != "int_then_list"])
def test_advanced_get_and_set_vs_numpy(name, make_key):
    a, x = _base()
    np_key = make_key(nd)
    np_key = tuple(to_np(k) if isinstance(k, nd.Tensor) else k for k in np_key) if isinstance(np_key, tuple) \
        else (to_np(np_key) if isinstance(np_key, nd.Tensor) else np_key)
    out = x[make_key(nd)]
    np.testing.assert_array_equal(to_np(out), a[np_key])
    assert not out._is_view_of(x)  # advanced indexing copies
    values = np.arange(np.size(a[np_key]), dtype=np.float32).reshape(np.shape(a[np_key])) + 100
    value = np.float32(-5.0) if name in DUPLICATE_TARGETS else values
    a[np_key] = value
    before = x._version
    x[make_key(nd)] = nd.tensor(value)
    np.testing.assert_array_equal(to_np(x), a)
    assert x._version > before


def test_int_then_list_follows_torch_not_numpy():
    _, x = _base()
    assert tuple(x[0, :, [1, 2]].shape) == (3, 2)  # NumPy would give (2, 3)
    np.testing.assert_array_equal(to_np(x[0, :, [1, 2]]), np.arange(24.0).reshape(2, 3, 4)[0][:, [1, 2]])


def test_duplicate_index_put_accumulate():
    a, x = _base((5,))
    idx = np.array([0, 2, 2, 4, 0, 0])
    vals = np.arange(6, dtype=np.float32)
    np.add.at(a, idx, vals)
    x.index_put_((nd.tensor(idx),), nd.tensor(vals), accumulate=True)
    np.testing.assert_array_equal(to_np(x), a)


@pytest.mark.parametrize("key", [2, -3, (0, 3), (0, 0, 4), (0, -4), [0, 2], (slice(None), [3])], ids=repr)
def test_out_of_range_index_raises(key):
    _, x = _base()
    with pytest.raises(IndexError):
        x[key]
    with pytest.raises(IndexError):
        x[key] = 1.0


def test_index_tensor_out_of_range_and_bad_types():
    _, x = _base()
    with pytest.raises(IndexError, match="out of bounds"):
        x[nd.tensor([0, 5])]
    with pytest.raises(IndexError):
        x[nd.tensor([True, False, True])]  # mask of the wrong length
    with pytest.raises((IndexError, TypeError)):
        x[1.5]
    with pytest.raises((IndexError, TypeError)):
        x[nd.tensor([0.0, 1.0])]
    with pytest.raises((ValueError, IndexError)):
        x[::-1]  # torch: step must be greater than zero


@st.composite
def _shape_and_key(draw):
    """A shape of 0-4 dims (sizes 0-5) and a basic index: ints, slices, None and one Ellipsis."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    k = draw(st.integers(0, len(shape)))  # dims consumed by ints and slices
    ellipsis_at = draw(st.one_of(st.none(), st.integers(0, k)))
    # items before an Ellipsis index the leading dims, the ones after it the trailing dims
    dims = list(range(k)) if ellipsis_at is None else \
        list(range(ellipsis_at)) + list(range(len(shape) - (k - ellipsis_at), len(shape)))
    items = []
    for d in dims:
        n = shape[d]
        if n > 0 and draw(st.booleans()):
            items.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            items.append(slice(draw(bound), draw(bound), draw(st.one_of(st.none(), st.integers(1, 3)))))
    if ellipsis_at is not None:
        items.insert(ellipsis_at, Ellipsis)
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return shape, tuple(items)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_shape_and_key())
def test_fuzz_basic_indexing(case):
    shape, key = case
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    x = nd.tensor(a)
    expected = a[key]
    out = x[key]
    assert tuple(out.shape) == expected.shape
    np.testing.assert_array_equal(to_np(out), expected)
    value = -np.arange(expected.size, dtype=np.float64).reshape(expected.shape) - 1
    a[key] = value
    x[key] = nd.tensor(value)
    np.testing.assert_array_equal(to_np(x), a)


def _rng(seed):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather_vs_take_along_axis(dim):
    rng = _rng(1)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    shape = list(a.shape)
    shape[dim] = 3
    idx = rng.integers(0, a.shape[dim], size=shape)
    expected = np.take_along_axis(a, idx, dim)
    np.testing.assert_array_equal(to_np(nd.tensor(a).gather(dim, nd.tensor(idx))), expected)
    np.testing.assert_array_equal(to_np(nd.gather(nd.tensor(a).t().contiguous().t(), dim, nd.tensor(idx))), expected)


@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_vs_put_along_axis(dim):
    rng = _rng(2)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    # unique targets along dim: scatter with duplicate indices is unspecified in torch
    idx = np.argsort(rng.random(a.shape), axis=dim)
    idx = idx[:3] if dim == 0 else idx[:, :3]
    src = rng.standard_normal(idx.shape).astype(np.float32)
    expected = a.copy()
    np.put_along_axis(expected, idx, src, dim)
    x = nd.tensor(a)
    np.testing.assert_array_equal(to_np(x.scatter(dim, nd.tensor(idx), nd.tensor(src))), expected)
    np.testing.assert_array_equal(to_np(x), a)  # out-of-place left x alone
    before = x._version
    assert x.scatter_(dim, nd.tensor(idx), nd.tensor(src)) is x and x._version > before
    np.testing.assert_array_equal(to_np(x), expected)


@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_add_vs_add_at(dim):
    rng = _rng(3)
    a = rng.standard_normal((4, 5))
    idx = rng.integers(0, a.shape[dim], size=(6, 5) if dim == 0 else (4, 7))  # duplicates on purpose
    src = rng.standard_normal(idx.shape)
    expected = a.copy()
    grid = np.indices(idx.shape)
    coords = [idx if d == dim else grid[d] for d in range(2)]
    np.add.at(expected, tuple(coords), src)
    rtol, atol = OPS["scatter_add"].tol("float64")
    out = nd.scatter_add(nd.tensor(a), dim, nd.tensor(idx), nd.tensor(src))
    np.testing.assert_allclose(to_np(out), expected, rtol=rtol, atol=atol)
    x = nd.tensor(a)
    assert x.scatter_add_(dim, nd.tensor(idx), nd.tensor(src)) is x
    np.testing.assert_allclose(to_np(x), expected, rtol=rtol, atol=atol)


def test_index_select_masked_fill_where_nonzero():
    rng = _rng(4)
    a = rng.integers(-3, 4, size=(4, 6)).astype(np.int32)
    x = nd.tensor(a)
    idx = np.array([3, 0, 3])
    np.testing.assert_array_equal(to_np(x.index_select(0, nd.tensor(idx))), np.take(a, idx, 0))
    np.testing.assert_array_equal(to_np(nd.index_select(x, 1, nd.tensor(idx))), np.take(a, idx, 1))
    mask = a > 0
    np.testing.assert_array_equal(to_np(x.masked_fill(nd.tensor(mask), 9)), np.where(mask, 9, a))
    np.testing.assert_array_equal(to_np(x.masked_fill(nd.tensor(mask[0]), nd.tensor(7))), np.where(mask[0], 7, a))
    y = x.clone()
    assert y.masked_fill_(nd.tensor(mask), -9) is y
    np.testing.assert_array_equal(to_np(y), np.where(mask, -9, a))
    np.testing.assert_array_equal(to_np(nd.where(nd.tensor(mask), x, nd.zeros(6, dtype=nd.int32))), np.where(mask, a, 0))
    np.testing.assert_array_equal(to_np(x.nonzero()), np.argwhere(a))
    for got, want in zip(nd.where(x), np.nonzero(a)):
        np.testing.assert_array_equal(to_np(got), want)
    assert tuple(nd.zeros(0, 3).nonzero().shape) == (0, 2)
    assert tuple(nd.tensor(5).nonzero().shape) == (1, 0)


def test_where_promotes_like_torch():
    c = nd.tensor([True, False])
    out = nd.where(c, nd.tensor([1, 2], dtype=nd.int32), nd.tensor([0.5, 0.25]))
    assert out.dtype == nd.float32 and out.tolist() == [1.0, 0.25]
    assert nd.where(c, 1.0, 0).dtype == nd.float32


def test_gather_scatter_errors():
    x = nd.zeros(3, 4)
    with pytest.raises(IndexError, match=r"\[gather\]"):
        x.gather(1, nd.tensor([[5]]))
    with pytest.raises(IndexError, match=r"\[scatter"):
        x.scatter(0, nd.tensor([[3]]), nd.ones(1, 1))
    with pytest.raises((TypeError, RuntimeError), match=r"\[gather\]"):
        x.gather(1, nd.tensor([[0.0]]))


def test_view_as_dtype_reinterprets_bits():
    x = nd.tensor([1.0, -2.0], dtype=nd.float32)
    bits = x.view(nd.int32)
    np.testing.assert_array_equal(bits.numpy(), np.array([1.0, -2.0], dtype=np.float32).view(np.int32))
    assert bits._is_view_of(x) and bits.dtype == nd.int32
    b16 = nd.ones(2, dtype=nd.bfloat16).view(nd.int16)
    assert b16.tolist() == [0x3F80, 0x3F80]
    with pytest.raises(ValueError, match=r"\[view\].*same element size"):
        x.view(nd.float64)
