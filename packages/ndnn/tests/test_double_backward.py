"""Double backward through the nn backward ops (pooling, interpolation, padding, BCE): gradgradcheck
in float64 and the second-order values against torch."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_helpers import rng, t

import ndcore as nd
import ndgrad
import ndnn.functional as F


def _torch():
    return pytest.importorskip("torch")


def _nd_second(fn, x, go, gg, others=()):
    xn = t(x, requires_grad=True)
    gon = t(go, requires_grad=True)
    out = fn(xn, *[t(o) for o in others])
    (gx,) = ndgrad.grad(out, xn, gon, create_graph=True)
    res = ndgrad.grad(gx, (xn, gon), t(gg), allow_unused=True, materialize_grads=True)
    return [r.detach().numpy() for r in res]


def _torch_second(fn, x, go, gg, others=()):
    torch = _torch()
    xt = torch.tensor(x, requires_grad=True)
    got = torch.tensor(go, requires_grad=True)
    out = fn(xt, *[torch.tensor(o) for o in others])
    (gx,) = torch.autograd.grad(out, xt, got, create_graph=True)
    res = torch.autograd.grad(gx, (xt, got), torch.tensor(gg), allow_unused=True, materialize_grads=True)
    return [r.detach().numpy() for r in res]


def _check(nd_fn, torch_fn, x, others=(), gradgrad=True):
    r = rng(1)
    torch = _torch()
    with torch.no_grad():
        out_shape = tuple(torch_fn(torch.tensor(x), *[torch.tensor(o) for o in others]).shape)
    go, gg = r.standard_normal(out_shape), r.standard_normal(x.shape)
    a = _nd_second(nd_fn, x, go, gg, others)
    b = _torch_second(torch_fn, x, go, gg, others)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-10)
    if gradgrad:
        xs = (t(x, requires_grad=True),) + tuple(t(o) for o in others)
        assert ndgrad.gradgradcheck(lambda z: nd_fn(z, *xs[1:]), (xs[0],))


# ---------------------------------------------------------------- pooling

@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_avg_pool(dims, kw):
    torch = _torch()
    x = rng(0).standard_normal((2, 2) + (5,) * dims)
    name = f"avg_pool{dims}d"
    _check(lambda a: getattr(F, name)(a, **kw), lambda a: getattr(torch.nn.functional, name)(a, **kw), x)


def test_avg_pool_divisor_override():
    torch = _torch()
    x = rng(0).standard_normal((1, 2, 5, 4))
    _check(lambda a: F.avg_pool2d(a, 2, divisor_override=3),
           lambda a: torch.nn.functional.avg_pool2d(a, 2, divisor_override=3), x)
    x3 = rng(0).standard_normal((1, 1, 4, 4, 3))
    _check(lambda a: F.avg_pool3d(a, 2, 1, divisor_override=5),
           lambda a: torch.nn.functional.avg_pool3d(a, 2, 1, divisor_override=5), x3)


@pytest.mark.parametrize("dims,size", [(1, 3), (2, (3, 2)), (3, (2, 3, 2))])
def test_adaptive_avg_pool(dims, size):
    torch = _torch()
    x = rng(0).standard_normal((2, 2) + (5,) * dims)
    name = f"adaptive_avg_pool{dims}d"
    _check(lambda a: getattr(F, name)(a, size), lambda a: getattr(torch.nn.functional, name)(a, size), x)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_pool_second_derivative_is_zero_in_input(dims):
    torch = _torch()
    x = rng(0).standard_normal((1, 2) + (5,) * dims)
    name = f"max_pool{dims}d"
    _check(lambda a: getattr(F, name)(a, 2, 2), lambda a: getattr(torch.nn.functional, name)(a, 2, 2), x)


# ---------------------------------------------------------------- interpolation

@pytest.mark.parametrize("mode,dims,align", [("nearest", 1, None), ("nearest", 2, None), ("nearest", 3, None),
                                             ("nearest-exact", 1, None), ("nearest-exact", 2, None),
                                             ("nearest-exact", 3, None), ("linear", 1, False), ("linear", 1, True),
                                             ("bilinear", 2, False), ("bilinear", 2, True), ("bicubic", 2, False),
                                             ("bicubic", 2, True), ("trilinear", 3, False), ("trilinear", 3, True)])
@pytest.mark.parametrize("how", ["size", "scale"])
def test_interpolate(mode, dims, align, how):
    torch = _torch()
    x = rng(0).standard_normal((1, 2) + (4,) * dims)
    kw = dict(size=(7, 3, 5)[:dims]) if how == "size" else dict(scale_factor=1.7)
    _check(lambda a: F.interpolate(a, mode=mode, align_corners=align, **kw),
           lambda a: torch.nn.functional.interpolate(a, mode=mode, align_corners=align, **kw), x)


# ---------------------------------------------------------------- padding

@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("dims,pad", [(1, (2, 1)), (2, (1, 2, 2, 0)), (3, (1, 0, 2, 1, 0, 2))])
def test_pad(mode, dims, pad):
    torch = _torch()
    x = rng(0).standard_normal((1, 2) + (4,) * dims)
    _check(lambda a: F.pad(a, pad, mode), lambda a: torch.nn.functional.pad(a, pad, mode), x)


# ---------------------------------------------------------------- losses

@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    torch = _torch()
    r = rng(2)
    x = r.uniform(0.05, 0.95, (3, 4))
    y = r.uniform(0, 1, (3, 4))
    w = r.uniform(0.5, 2, (3, 4))
    others = (y, w) if weighted else (y,)
    _check(lambda a, *o: F.binary_cross_entropy(a, *o, reduction=reduction),
           lambda a, *o: torch.nn.functional.binary_cross_entropy(a, *o, reduction=reduction), x, others)


def test_binary_cross_entropy_target_second_order_vs_torch():
    # the mixed (input, target) derivative: backprop the input-gradient into a target that requires grad
    torch = _torch()
    r = rng(3)
    x, y, gg = r.uniform(0.1, 0.9, (5,)), r.uniform(0, 1, (5,)), r.standard_normal(5)
    xn, yn = t(x, requires_grad=True), t(y, requires_grad=True)
    (gx,) = ndgrad.grad(F.binary_cross_entropy(xn, yn), xn, create_graph=True)
    a = ndgrad.grad(gx, (xn, yn), t(gg))
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    (gxt,) = torch.autograd.grad(torch.nn.functional.binary_cross_entropy(xt, yt), xt, create_graph=True)
    b = torch.autograd.grad(gxt, (xt, yt), torch.tensor(gg))
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-10, atol=1e-12)
    assert ndgrad.gradgradcheck(lambda p, q: F.binary_cross_entropy(p, q, reduction="sum"),
                                (t(x, requires_grad=True), t(y, requires_grad=True)))


def test_ctc_loss_double_backward_raises_like_torch():
    # torch has no derivative for _ctc_loss_backward either: a clear error, never silently dropped terms
    r = rng(4)
    lp = t(r.standard_normal((5, 2, 4))).log_softmax(2).detach().requires_grad_(True)
    loss = F.ctc_loss(lp, t(np.array([[1, 2], [1, 3]])), [5, 5], [2, 2])
    (g,) = ndgrad.grad(loss, lp, create_graph=True)
    with pytest.raises(Exception, match="_ctc_loss_backward"):
        ndgrad.grad(g.sum(), lp)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted,pos", [(False, False), (True, False), (False, True), (True, True)])
def test_binary_cross_entropy_with_logits(reduction, weighted, pos):
    torch = _torch()
    r = rng(5)
    x, y = r.standard_normal((3, 4)) * 2, r.uniform(0, 1, (3, 4))
    w = r.uniform(0.5, 2, (3, 4)) if weighted else None
    pw = r.uniform(0.5, 3, (4,)) if pos else None  # broadcast over the batch, as torch's pos_weight

    def run(lib, fn, a, b):
        wt = None if w is None else lib.tensor(w)
        pt = None if pw is None else lib.tensor(pw)
        return fn(a, b, weight=wt, pos_weight=pt, reduction=reduction)

    _check(lambda a, b: run(nd, F.binary_cross_entropy_with_logits, a, b),
           lambda a, b: run(torch, torch.nn.functional.binary_cross_entropy_with_logits, a, b), x, (y,))
    # mixed second derivatives through the target (both backward rows of the op)
    gg = r.standard_normal(x.shape)
    xn, yn = t(x, requires_grad=True), t(y, requires_grad=True)
    gxn = ndgrad.grad(run(nd, F.binary_cross_entropy_with_logits, xn, yn).sum(), (xn, yn), create_graph=True)
    an = ndgrad.grad((gxn[0] * t(gg) + gxn[1] * t(gg).flip(0)).sum(), (xn, yn))
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    gxt = torch.autograd.grad(run(torch, torch.nn.functional.binary_cross_entropy_with_logits, xt, yt).sum(), (xt, yt),
                              create_graph=True)
    at = torch.autograd.grad((gxt[0] * torch.tensor(gg) + gxt[1] * torch.tensor(gg).flip(0)).sum(), (xt, yt))
    for u, v in zip(an, at):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-10, atol=1e-12)
