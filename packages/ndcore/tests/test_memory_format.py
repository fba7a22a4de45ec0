"""torch's memory formats (Note [Memory formats]): clone and .to keep the layout by default,
contiguous/is_contiguous/empty/*_like take channels_last; strides and values match torch's."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd

try:
    import torch
except ImportError:  # pragma: no cover - torch is installed in CI's venv
    torch = None


def _pair(shape, perm=None, step=None, seed=0):
    base = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    a, t = nd.tensor(base), (torch.tensor(base) if torch is not None else None)
    if perm is not None:
        a = a.permute(*perm)
        t = t.permute(*perm) if t is not None else None
    if step is not None:
        a = a[..., ::step]
        t = t[..., ::step] if t is not None else None
    return a, t


LAYOUTS = [((5, 4), (1, 0), None), ((3, 4, 5), (2, 0, 1), None), ((2, 3, 4, 5), (0, 2, 3, 1), None),
           ((4, 6), None, 2), ((4, 6), (1, 0), None), ((3, 1, 4), (2, 1, 0), None), ((0, 3), (1, 0), None), ((), None, None),
           ((7,), None, None)]


def _torch_fmt(name):
    return getattr(torch, name)


@pytest.mark.parametrize("shape,perm,step", LAYOUTS)
def test_clone_and_to_preserve_layout_like_torch(shape, perm, step):
    a, t = _pair(shape, perm, step)
    for got, want in ((a.clone(), t.clone() if t is not None else None),
                      (a.to(nd.float64), t.to(torch.float64) if t is not None else None),
                      (a.to(copy=True), t.to(copy=True) if t is not None else None)):
        np.testing.assert_array_equal(got.numpy().astype(np.float64), a.numpy().astype(np.float64))
        if want is not None and want.numel():  # torch's strides of empty copies vary by op; no data there
            assert got.stride() == want.stride(), (shape, perm, step)


@pytest.mark.parametrize("fmt", ["contiguous_format", "channels_last"])
def test_clone_and_contiguous_in_a_format(fmt):
    a, t = _pair((2, 3, 4, 5), (0, 3, 1, 2))  # a permuted view, not dense in either format
    got = a.clone(memory_format=getattr(nd, fmt))
    np.testing.assert_array_equal(got.numpy(), a.numpy())
    assert got.is_contiguous(memory_format=getattr(nd, fmt))
    c = a.contiguous(memory_format=getattr(nd, fmt))
    assert c.is_contiguous(memory_format=getattr(nd, fmt))
    assert c.contiguous(memory_format=getattr(nd, fmt)) is c
    if torch is not None:
        assert got.stride() == t.clone(memory_format=_torch_fmt(fmt)).stride()
        assert c.stride() == t.contiguous(memory_format=_torch_fmt(fmt)).stride()


def test_channels_last_3d_and_is_contiguous():
    a, t = _pair((2, 3, 2, 4, 5))
    c = a.contiguous(memory_format=nd.channels_last_3d)
    assert c.is_contiguous(memory_format=nd.channels_last_3d) and not c.is_contiguous()
    np.testing.assert_array_equal(c.numpy(), a.numpy())
    if torch is not None:
        assert c.stride() == t.contiguous(memory_format=torch.channels_last_3d).stride()
    x = nd.randn(2, 1, 4, 4)  # one channel: row-major is also channels_last, as in torch
    assert x.is_contiguous(memory_format=nd.channels_last) and x.is_contiguous()


def test_to_memory_format_and_creation():
    a, t = _pair((2, 3, 4, 5))
    got = a.to(memory_format=nd.channels_last)
    assert got.is_contiguous(memory_format=nd.channels_last)
    np.testing.assert_array_equal(got.numpy(), a.numpy())
    got64 = a.to(nd.float64, memory_format=nd.channels_last)
    assert got64.dtype == nd.float64 and got64.is_contiguous(memory_format=nd.channels_last)
    e = nd.empty(2, 3, 4, 5, memory_format=nd.channels_last)
    z = nd.zeros_like(a, memory_format=nd.channels_last)
    o = nd.full_like(a, 2.0, memory_format=nd.channels_last)
    for r in (e, z, o):
        assert r.is_contiguous(memory_format=nd.channels_last) and tuple(r.shape) == (2, 3, 4, 5)
    assert not z.numpy().any() and (o.numpy() == 2).all()
    if torch is not None:
        assert e.stride() == torch.empty(2, 3, 4, 5, memory_format=torch.channels_last).stride()
    assert repr(nd.channels_last) == "nd.channels_last"


def test_memory_format_errors_name_the_op():
    with pytest.raises(ValueError, match=r"\[clone\] required rank 4 tensor to use channels_last"):
        nd.randn(3, 4).clone(memory_format=nd.channels_last)
    with pytest.raises(ValueError, match=r"\[clone\] unknown memory_format 'nhwc'"):
        nd.randn(3, 4).clone(memory_format="nhwc")
    with pytest.raises(ValueError, match=r"\[contiguous\] preserve_format"):
        nd.randn(3, 4).contiguous(memory_format=nd.preserve_format)
    with pytest.raises(ValueError, match=r"\[is_contiguous\] memory_format 'preserve_format'"):
        nd.randn(3, 4).is_contiguous(memory_format=nd.preserve_format)


def test_clone_keeps_gradients_flowing_through_layouts():
    pytest.importorskip("ndgrad")
    o = nd.ones_like(nd.randn(2, 3, 4, 5), memory_format=nd.channels_last, requires_grad=True)
    assert o.requires_grad and o.is_leaf and o.is_contiguous(memory_format=nd.channels_last)
    e = nd.empty(2, 3, 4, 5, memory_format=nd.channels_last, requires_grad=True)
    assert e.requires_grad and e.is_leaf
    x = nd.randn(2, 3, 4, 5, requires_grad=True)
    y = x.contiguous(memory_format=nd.channels_last) * 3
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3, 4, 5), 3, np.float32))


LIKE_LAYOUTS = LAYOUTS + [((1, 3, 1, 2), (3, 2, 1, 0), None), ((6, 4), (1, 0), 2), ((2, 3, 4, 5), (0, 3, 1, 2), None)]


@pytest.mark.parametrize("shape,perm,step", LIKE_LAYOUTS)
@pytest.mark.parametrize("name", ["empty_like", "zeros_like", "ones_like", "rand_like", "randn_like", "full_like"])
def test_like_functions_preserve_dense_layouts_like_torch(shape, perm, step, name):
    """The *_like default is preserve_format: a non-overlapping, dense input's exact strides
    (transposes, channels_last, permutations with size-1 dims), row-major otherwise; results
    are plain tensors (no base), and contiguous_format still asks for row-major."""
    a, t = _pair(shape, perm, step)
    extra = (2.5,) if name == "full_like" else ()
    got = getattr(nd, name)(a, *extra)
    assert got.shape == a.shape and got._base is None
    if name in ("zeros_like", "ones_like", "full_like"):
        np.testing.assert_array_equal(got.numpy(), np.full(tuple(a.shape), {"zeros_like": 0.0, "ones_like": 1.0}.get(
            name, 2.5), np.float32))
    row = getattr(nd, name)(a, *extra, memory_format=nd.contiguous_format)
    assert row.is_contiguous()
    if torch is not None and a.numel() > 0:  # an empty tensor's strides address nothing
        want = getattr(torch, name)(t, *extra)
        assert got.stride() == want.stride(), (got.stride(), want.stride())
        assert row.stride() == getattr(torch, name)(t, *extra, memory_format=torch.contiguous_format).stride()


@pytest.mark.parametrize("size,stride", [((2, 3), (1, 2)), ((2, 3, 4), (12, 1, 3)), ((3, 0), (1, 3)), ((), ()),
                                         ((4, 5), (0, 1)), ((2, 2), (3, 1))])
def test_empty_strided_like_torch(size, stride):
    got = nd.empty_strided(size, stride, dtype=nd.float64)
    assert tuple(got.shape) == size and got.stride() == stride and got.dtype == nd.float64
    got.fill_(1.5)
    assert (got.numpy() == 1.5).all()
    if torch is not None:
        assert torch.empty_strided(size, stride).stride() == got.stride()
    with pytest.raises(ValueError, match=r"\[empty_strided\]"):
        nd.empty_strided((2, 3), (1,))
