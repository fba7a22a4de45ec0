"""grid_sample: bicubic (4-D), 5-D input, and the bilinear/nearest kernels of both ranks against the NumPy
reference (_grid_ref.py) and torch, including torch's rules for NaN/inf grid values."""
from __future__ import annotations

import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from _grid_ref import grid_sample_ref
from _nn_helpers import rng, t

import ndcore as nd
import ndgrad
import ndnn.functional as F

PADS = ["zeros", "border", "reflection"]
CASES_2D = [("bicubic", p, a) for p in PADS for a in (False, True)]
CASES_3D = [(m, p, a) for m in ("bilinear", "nearest") for p in PADS for a in (False, True)]


def _torch():
    return pytest.importorskip("torch")


def _vs_torch(x, g, mode, pad, align, tol):
    """Forward, grad_input and grad_grid against torch for one random cotangent."""
    torch = _torch()
    xn, gn = nd.tensor(x, requires_grad=True), nd.tensor(g, requires_grad=True)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    yn = F.grid_sample(xn, gn, mode, pad, align)
    yt = torch.nn.functional.grid_sample(xt, gt, mode, pad, align)
    assert tuple(yn.shape) == tuple(yt.shape) and yn.dtype == xn.dtype
    np.testing.assert_allclose(yn.detach().numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    go = rng(5).standard_normal(tuple(yt.shape)).astype(x.dtype)
    yn.backward(nd.tensor(go))
    yt.backward(torch.tensor(go))
    np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(gn.grad.numpy(), gt.grad.numpy(), rtol=tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,pad,align", CASES_2D)
def test_bicubic_vs_torch(mode, pad, align, dtype):
    r = rng(1)
    x = r.standard_normal((2, 3, 5, 6)).astype(dtype)
    # reach well outside [-1, 1] so every padding mode folds or clips some of the 4x4 taps
    g = r.uniform(-1.6, 1.6, (2, 4, 7, 2)).astype(dtype)
    _vs_torch(x, g, mode, pad, align, 1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,pad,align", CASES_3D)
def test_5d_vs_torch(mode, pad, align, dtype):
    r = rng(2)
    x = r.standard_normal((2, 3, 4, 5, 3)).astype(dtype)
    g = r.uniform(-1.4, 1.4, (2, 3, 2, 4, 3)).astype(dtype)
    _vs_torch(x, g, mode, pad, align, 1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("shape,gshape", [((1, 2, 1, 1), (1, 3, 2, 2)), ((1, 1, 1, 1, 1), (1, 2, 1, 2, 3)),
                                          ((1, 1, 2, 1, 3), (1, 1, 3, 1, 3))])
@pytest.mark.parametrize("pad,align", list(itertools.product(PADS, (False, True))))
def test_size_one_dims_vs_torch(shape, gshape, pad, align):
    # size-1 dims make the reflection span zero (align_corners) and clip everything to index 0
    r = rng(3)
    x, g = r.standard_normal(shape), r.uniform(-1.5, 1.5, gshape)
    modes = ["bilinear", "nearest"] + (["bicubic"] if len(shape) == 4 else [])
    for mode in modes:
        _vs_torch(x, g, mode, pad, align, 1e-10)


def test_grid_points_on_pixel_centres_and_edges():
    # align_corners=True puts -1/1 exactly on the corner pixels: torch's clip has zero gradient there
    torch = _torch()
    x = rng(4).standard_normal((1, 2, 3, 4, 5))
    g = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1)[None][:, :2]
    for mode, pad in itertools.product(("bilinear", "nearest"), PADS):
        _vs_torch(x, grid.copy(), mode, pad, True, 1e-10)
    g2 = np.stack(np.meshgrid(g, g, indexing="ij"), -1)[None]
    for pad in PADS:
        _vs_torch(x[:, :, 0], g2.copy(), "bicubic", pad, True, 1e-10)
    del torch


@pytest.mark.parametrize("mode,pad,align", CASES_2D)
def test_bicubic_gradcheck(mode, pad, align):
    r = rng(6)
    x = t(r.standard_normal((1, 2, 4, 5)), requires_grad=True)
    g = t(r.uniform(-1.3, 1.3, (1, 3, 2, 2)), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, b: F.grid_sample(a, b, mode, pad, align), (x, g))


@pytest.mark.parametrize("pad,align", list(itertools.product(PADS, (False, True))))
def test_5d_bilinear_gradcheck(pad, align):
    r = rng(7)
    x = t(r.standard_normal((1, 2, 3, 4, 3)), requires_grad=True)
    g = t(r.uniform(-1.3, 1.3, (1, 2, 2, 1, 3)), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, b: F.grid_sample(a, b, "bilinear", pad, align), (x, g))
    assert ndgrad.gradcheck(lambda a: F.grid_sample(a, g.detach(), "nearest", pad, align), (x,))


def _double_backward_vs_torch(x, g, mode, pad, align):
    """Gradients of <grad_input, a> + <grad_grid, b> w.r.t. input, grid and grad_output."""
    torch = _torch()
    r = rng(14)
    out_shape = (x.shape[0], x.shape[1]) + g.shape[1:-1]
    go, a, b = r.standard_normal(out_shape), r.standard_normal(x.shape), r.standard_normal(g.shape)
    res = []
    for lib, fn, grad in ((nd, F.grid_sample, ndgrad.grad),
                          (torch, torch.nn.functional.grid_sample, torch.autograd.grad)):
        xs = [lib.tensor(v, requires_grad=True) for v in (x, g, go)]
        gi, gg = grad(fn(xs[0], xs[1], mode, pad, align), xs[:2], xs[2], create_graph=True)
        total = (gi * lib.tensor(a)).sum() + (gg * lib.tensor(b)).sum()
        res.append([v.detach().numpy() for v in grad(total, xs, allow_unused=True, materialize_grads=True)])
    for u, v in zip(*res):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode,pad,align", [("bilinear", p, a) for p in PADS for a in (False, True)] + CASES_2D
                         + [("nearest", "zeros", False)])
def test_double_backward_2d_vs_torch(mode, pad, align):
    r = rng(8)
    x, g = r.standard_normal((2, 2, 4, 5)), r.uniform(-1.3, 1.3, (2, 3, 2, 2))
    _double_backward_vs_torch(x, g, mode, pad, align)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_double_backward_gradgradcheck(mode):
    r = rng(9)
    x = t(r.standard_normal((1, 1, 4, 4)), requires_grad=True)
    g = t(r.uniform(-0.9, 0.9, (1, 2, 2, 2)), requires_grad=True)
    assert ndgrad.gradgradcheck(lambda a, b: F.grid_sample(a, b, mode, "border", False), (x, g))
    x3 = t(r.standard_normal((1, 1, 3, 3, 3)), requires_grad=True)
    g3 = t(r.uniform(-0.9, 0.9, (1, 1, 2, 2, 3)), requires_grad=True)
    assert ndgrad.gradgradcheck(lambda a, b: F.grid_sample(a, b, "bilinear", "zeros", True), (x3, g3))


def test_double_backward_5d_vs_torch():
    r = rng(10)
    x, g = r.standard_normal((1, 2, 3, 4, 3)), r.uniform(-1.2, 1.2, (1, 2, 2, 1, 3))
    for pad in PADS:
        _double_backward_vs_torch(x, g, "bilinear", pad, False)


def test_bicubic_non_finite_grid_vs_torch():
    # NaN/inf coordinates: every tap is outside, but torch multiplies the zeros by NaN weights
    torch = _torch()
    r = rng(12)
    x = r.standard_normal((1, 2, 4, 5))
    g = r.uniform(-1, 1, (1, 2, 3, 2))
    g[0, 0, 0, 0], g[0, 0, 1, 1], g[0, 1, 0, 0], g[0, 1, 2, 1] = np.nan, np.inf, -np.inf, 1e30
    for pad in PADS:
        out = F.grid_sample(t(x), t(g), "bicubic", pad, False).numpy()
        ref = torch.nn.functional.grid_sample(torch.tensor(x), torch.tensor(g), "bicubic", pad, False).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)  # NaNs compare equal here
    _vs_torch(x, np.where(np.isfinite(g), g, 0.0) * 40, "bicubic", "reflection", False, 1e-10)  # far outside


def test_kernel_entry_point_bicubic():
    # nd.grid_sampler_2d with interpolation_mode 2 is torch.grid_sampler_2d's bicubic
    torch = _torch()
    r = rng(13)
    x, g = r.standard_normal((2, 2, 3, 4)), r.uniform(-1.2, 1.2, (2, 3, 2, 2))
    for pad, align in itertools.product(range(3), (False, True)):
        out = nd.grid_sampler_2d(t(x), t(g), 2, pad, align).numpy()
        ref = torch.grid_sampler_2d(torch.tensor(x), torch.tensor(g), 2, pad, align).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match=r"\[grid_sampler_2d\] interpolation_mode must be 0 \(bilinear\), 1 "):
        nd.grid_sampler_2d(t(x), t(g), 3, 0, False)


@pytest.mark.parametrize("dtype", [nd.float16, nd.bfloat16])
def test_low_precision_computed_in_float32(dtype):
    r = rng(9)
    x, g = r.standard_normal((1, 2, 4, 5)), r.uniform(-1.2, 1.2, (1, 3, 3, 2))
    lo = F.grid_sample(t(x).to(dtype), t(g).to(dtype), "bicubic", "reflection", False)
    assert lo.dtype == dtype
    # the reference sees the same rounded inputs, so only the output rounding differs
    ref = F.grid_sample(t(x).to(dtype).to(nd.float32), t(g).to(dtype).to(nd.float32), "bicubic", "reflection", False)
    np.testing.assert_allclose(lo.to(nd.float32).numpy(), ref.numpy(), rtol=1e-2, atol=1e-2)
    x5, g5 = r.standard_normal((1, 1, 2, 3, 4)), r.uniform(-1, 1, (1, 2, 2, 2, 3))
    lo5 = F.grid_sample(t(x5).to(dtype), t(g5).to(dtype), "bilinear", "zeros", True)
    ref5 = F.grid_sample(t(x5).to(dtype).to(nd.float32), t(g5).to(dtype).to(nd.float32), "bilinear", "zeros", True)
    assert lo5.dtype == dtype
    np.testing.assert_allclose(lo5.to(nd.float32).numpy(), ref5.numpy(), rtol=1e-2, atol=1e-2)


def test_non_contiguous_and_empty():
    torch = _torch()
    r = rng(10)
    x = r.standard_normal((2, 4, 3, 5))
    g = r.uniform(-1.1, 1.1, (2, 3, 4, 2))
    xn = t(x).transpose(2, 3)  # (2, 4, 5, 3), strided
    gn = t(g).transpose(1, 2)
    out = F.grid_sample(xn, gn, "bicubic", "zeros", False)
    ref = torch.nn.functional.grid_sample(torch.tensor(x).transpose(2, 3), torch.tensor(g).transpose(1, 2),
                                          "bicubic", "zeros", False)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-10, atol=1e-10)
    e = F.grid_sample(t(r.standard_normal((2, 3, 2, 2, 2))), t(np.zeros((2, 0, 2, 2, 3))), "bilinear", "zeros", False)
    assert tuple(e.shape) == (2, 3, 0, 2, 2)
    e2 = F.grid_sample(t(np.zeros((2, 0, 3, 3))), t(np.zeros((2, 2, 2, 2))), "bicubic", "zeros", False)
    assert tuple(e2.shape) == (2, 0, 2, 2)


def test_errors():
    x5, x4 = t(np.zeros((1, 1, 2, 2, 2))), t(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"\[grid_sample\] bicubic interpolation only supports 4-D input"):
        F.grid_sample(x5, t(np.zeros((1, 1, 1, 1, 3))), "bicubic", "zeros", False)
    with pytest.raises(ValueError, match=r"\[grid_sample\] expected grid of shape \(1, D_out, H_out, W_out, 3\)"):
        F.grid_sample(x5, t(np.zeros((1, 1, 1, 1, 2))), "bilinear", "zeros", False)
    with pytest.raises(ValueError, match=r"\[grid_sample\] expected 4-D .* or 5-D"):
        F.grid_sample(t(np.zeros((1, 2, 2))), t(np.zeros((1, 1, 2))), "bilinear", "zeros", False)
    with pytest.raises(TypeError, match=r"\[grid_sample\] expected input and grid to have the same dtype"):
        F.grid_sample(x4, t(np.zeros((1, 1, 1, 2), np.float32)), "bicubic", "zeros", False)
    with pytest.raises(ValueError, match=r"\[grid_sample\] expected padding_mode"):
        F.grid_sample(x5, t(np.zeros((1, 1, 1, 1, 3))), "bilinear", "wrap", False)


def test_5d_non_finite_input_and_grid_vs_torch():
    # an inf in the input must not leak into out-of-range taps; NaN grid points sample nothing
    torch = _torch()
    r = rng(15)
    x = r.standard_normal((1, 2, 3, 3, 4))
    x[0, 0, 0, 0, 0] = np.inf
    g = r.uniform(-1.5, 1.5, (1, 2, 2, 2, 3))
    g[0, 0, 0, 0, 0] = np.nan
    for mode, pad in itertools.product(("bilinear", "nearest"), PADS):
        out = F.grid_sample(t(x), t(g), mode, pad, False).numpy()
        ref = torch.nn.functional.grid_sample(torch.tensor(x), torch.tensor(g), mode, pad, False).numpy()
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)


# ---- the grid_sampler kernels against the NumPy float64 reference (_grid_ref.py) and torch ----------------


LINEAR_CASES = [(k, m, p, a) for k in (2, 3) for m in ("bilinear", "nearest") for p in PADS for a in (False, True)]


def _shapes(k, n=2, c=3):
    return ((n, c, 4, 5) if k == 2 else (n, c, 3, 4, 5)), ((n, 3, 4, 2) if k == 2 else (n, 2, 3, 4, 3))


def _nd_all(x, g, go, mode, pad, align, dtype=None):
    xn, gn = t(x, dtype, requires_grad=True), t(g, dtype, requires_grad=True)
    y = F.grid_sample(xn, gn, mode, pad, align)
    y.backward(t(go, dtype))
    return y.detach().numpy(), xn.grad.numpy(), gn.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,mode,pad,align", LINEAR_CASES)
def test_linear_vs_reference_and_torch(k, mode, pad, align, dtype):
    torch = _torch()
    r = rng(20 + k)
    xs, gs = _shapes(k)
    x = r.standard_normal(xs).astype(dtype)
    g = r.uniform(-1.3, 1.3, gs).astype(dtype)
    go = r.standard_normal(xs[:2] + gs[1:-1]).astype(dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    got = _nd_all(x, g, go, mode, pad, align)
    ref = grid_sample_ref(x, g, mode, pad, align, go)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    yt = torch.nn.functional.grid_sample(xt, gt, mode, pad, align)
    yt.backward(torch.tensor(go))
    for name, a, b, c in zip(("output", "grad_input", "grad_grid"), got, ref,
                             (yt.detach().numpy(), xt.grad.numpy(), gt.grad.numpy())):
        scale = 10 if name == "grad_grid" else 1
        np.testing.assert_allclose(a, b, rtol=scale * tol, atol=scale * tol, err_msg=f"{name} vs reference")
        np.testing.assert_allclose(a, c, rtol=scale * tol, atol=scale * tol, err_msg=f"{name} vs torch")


SPECIALS = [np.nan, np.inf, -np.inf, 1e30, -1e30, 1e10, -3e9]


def _special_grid(k, dtype):
    """One position per (special value, axis) and one with every axis special, among ordinary positions."""
    pts = []
    for s in SPECIALS:
        for d in range(k):
            p = [0.3, -0.2, 0.45][:k]
            p[d] = s
            pts.append(p)
        pts.append([s] * k)
    pts += [[0.1 * i - 0.5] * k for i in range(10)]
    return np.array(pts, dtype=dtype).reshape((1, len(pts)) + (1,) * (k - 1) + (k,))


def _torch_backward_defined(k, mode, pad):
    # torch's 4-D bilinear backward indexes memory with NaN under border/reflection (it can segfault)
    return not (k == 2 and mode == "bilinear" and pad != "zeros")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,mode,pad,align", LINEAR_CASES)
def test_non_finite_grid_vs_torch(k, mode, pad, align, dtype):
    torch = _torch()
    xs = (1, 2, 3, 4) if k == 2 else (1, 2, 3, 4, 5)
    x = (np.arange(np.prod(xs)).reshape(xs) / 7 + 1).astype(dtype)
    g = _special_grid(k, dtype)
    go = rng(30).standard_normal(xs[:2] + g.shape[1:-1]).astype(dtype)
    got = _nd_all(x, g, go, mode, pad, align)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    yt = torch.nn.functional.grid_sample(xt, gt, mode, pad, align)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[0], yt.detach().numpy(), rtol=tol, atol=tol)  # NaNs compare equal
    if _torch_backward_defined(k, mode, pad):
        yt.backward(torch.tensor(go))
        np.testing.assert_allclose(got[1], xt.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(got[2], gt.grad.numpy(), rtol=tol, atol=tol)
    if dtype == np.float64:  # the reference's arithmetic is float64
        for a, b in zip(got, grid_sample_ref(x, g, mode, pad, align, go)):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_non_finite_grid_where_torch_backward_is_undefined():
    # 4-D bilinear, NaN/inf under border/reflection: the forward samples coordinate 0 as torch's does; the
    # backward sends the gradient there too and gives that axis of grad_grid a zero derivative
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    g = np.array([[[[np.nan, 0.0], [0.0, np.inf]]]])
    for pad in ("border", "reflection"):
        y, gi, gg = _nd_all(x, g, np.ones((1, 1, 1, 2)), "bilinear", pad, True)
        # y = inf clamps to the last row under border; reflection folds it to NaN, which clamps to row 0
        np.testing.assert_allclose(y.ravel(), [4.0, 9.5 if pad == "border" else 1.5])
        assert gi[0, 0, 1, 0] == 1 and gi.sum() == 2
        assert gg[0, 0, 0, 0] == 0 and gg[0, 0, 1, 1] == 0 and np.isfinite(gg).all()


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [1, 3])
def test_blocks_threads_and_channel_groups(k, threads, n):
    # output planes that end mid-block (blocks of 128 positions), blocks with and without outside taps, and
    # enough work for the backward to split samples into channel groups whose grad_grid partials are summed
    r = rng(40 + k + n)
    xs = (n, 5, 9, 11) if k == 2 else (n, 5, 5, 6, 7)
    gs = (n, 21, 13, 2) if k == 2 else (n, 5, 7, 9, 3)
    x = r.standard_normal(xs)
    g = r.uniform(-0.95, 0.95, gs)
    g[:, :2] *= 1.5  # the first blocks reach outside
    go = r.standard_normal(xs[:2] + gs[1:-1])
    old = nd.get_num_threads()
    try:
        nd.set_num_threads(threads)
        for mode, pad in itertools.product(("bilinear", "nearest"), ("zeros", "reflection")):
            got = _nd_all(x, g, go, mode, pad, False)
            for a, b in zip(got, grid_sample_ref(x, g, mode, pad, False, go)):
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
            # grad_grid alone (the split by blocks) and grad_input alone
            fn = nd.grid_sampler_2d_backward if k == 2 else nd.grid_sampler_3d_backward
            m, p = ("bilinear", "nearest").index(mode), PADS.index(pad)
            gi, gg = fn(t(go), t(x), t(g), m, p, False, [0, 1])
            np.testing.assert_allclose(gg.numpy(), got[2], rtol=1e-12, atol=1e-12)
            gi, gg = fn(t(go), t(x), t(g), m, p, False, [1, 0])
            np.testing.assert_allclose(gi.numpy(), got[1], rtol=1e-12, atol=1e-12)
    finally:
        nd.set_num_threads(old)


@pytest.mark.parametrize("k", [2, 3])
def test_empty_batch_and_channels(k):
    for n, c in ((0, 3), (2, 0)):
        xs, gs = _shapes(k, n, c)
        r = rng(50)
        x, g = r.standard_normal(xs), r.uniform(-1, 1, gs)
        go = np.ones(xs[:2] + gs[1:-1])
        for mode in ("bilinear", "nearest"):
            y, gi, gg = _nd_all(x, g, go, mode, "zeros", False)
            assert y.shape == xs[:2] + gs[1:-1] and gi.shape == xs and gg.shape == gs
            assert not gi.any() and not gg.any()


def test_5d_non_contiguous():
    torch = _torch()
    r = rng(60)
    x = r.standard_normal((2, 3, 5, 4, 6))
    g = r.uniform(-1.2, 1.2, (2, 4, 3, 2, 3))
    xn, gn = t(x).transpose(2, 4), t(g).transpose(1, 3)  # (2, 3, 6, 4, 5) and (2, 2, 3, 4, 3), strided
    assert not xn.is_contiguous() and not gn.is_contiguous()
    xt, gt = torch.tensor(x).transpose(2, 4), torch.tensor(g).transpose(1, 3)
    for mode in ("bilinear", "nearest"):
        out = F.grid_sample(xn, gn, mode, "border", True)
        ref = torch.nn.functional.grid_sample(xt, gt, mode, "border", True)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pad,align", [("zeros", False), ("border", True), ("reflection", False)])
def test_5d_gradcheck_through_the_kernel(pad, align):
    r = rng(70)
    x = t(r.standard_normal((2, 2, 3, 3, 4)), requires_grad=True)
    g = t(r.uniform(-0.9, 0.9, (2, 2, 1, 2, 3)), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, b: nd.grid_sampler_3d(a, b, 0, PADS.index(pad), align), (x, g))
    assert ndgrad.gradcheck(lambda a: nd.grid_sampler_3d(a, g.detach(), 1, PADS.index(pad), align), (x,))
    assert ndgrad.gradgradcheck(lambda a, b: nd.grid_sampler_3d(a, b, 0, PADS.index(pad), align), (x, g))


KERNEL_ERRORS = [
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2), nd.zeros(1, 1, 1, 2), 0, 0, False),
     ValueError, r"\[grid_sampler_3d\] expected input of shape \(N, C, D, H, W\) and grid of shape \(N, D_out"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 1, 2), 0, 0, False),
     ValueError, r"\[grid_sampler_3d\] expected input of shape"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2, 2), nd.zeros(2, 1, 1, 1, 3), 0, 0, False),
     ValueError, r"\[grid_sampler_3d\] expected input of shape"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 1, 3, dtype=nd.float64), 0, 0, False),
     TypeError, r"\[grid_sampler_3d\] expected input and grid to have the same dtype, got float32 and float64"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 1, 3), 2, 0, False),
     ValueError, r"\[grid_sampler_3d\] interpolation_mode must be 0 \(bilinear\) or 1 \(nearest\)"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 1, 3), 0, 3, False),
     ValueError, r"\[grid_sampler_3d\] padding_mode must be 0 \(zeros\), 1 \(border\) or 2 \(reflection\), got 3"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 0, 2, 2), nd.zeros(1, 1, 1, 1, 3), 0, 0, False),
     ValueError, r"\[grid_sampler_3d\] expected input to have non-empty spatial dims"),
    (lambda: nd.grid_sampler_3d(nd.zeros(1, 1, 2, 2, 2, dtype=nd.int64), nd.zeros(1, 1, 1, 1, 3, dtype=nd.int64), 0, 0,
                                False), TypeError, r"\[grid_sampler_3d\] expected a floating point input, got int64"),
    (lambda: nd.grid_sampler_3d_backward(nd.zeros(1, 1, 2, 1, 1), nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 1, 3), 0,
                                         0, False, [1, 1]),
     ValueError, r"\[grid_sampler_3d_backward\] expected grad_output of shape \(1, 1, 1, 1, 1\), got \(1, 1, 2, 1, 1"),
    (lambda: nd.grid_sampler_2d(nd.zeros(1, 1, 2, 2), nd.zeros(1, 1, 1, 3), 0, 0, False),
     ValueError, r"\[grid_sampler_2d\] expected input of shape \(N, C, H, W\) and grid of shape \(N, H_out, W_out"),
    (lambda: F.grid_sample(nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 1, 3, dtype=nd.float64), "nearest", "zeros",
                           False),
     TypeError, r"\[grid_sample\] expected input and grid to have the same dtype"),
    (lambda: F.grid_sample(nd.zeros(1, 1, 2, 2, 2), nd.zeros(1, 1, 1, 3), "nearest", "zeros", False),
     ValueError, r"\[grid_sample\] expected grid of shape \(1, D_out, H_out, W_out, 3\)"),
]


@pytest.mark.parametrize("fn,exc,pattern", KERNEL_ERRORS, ids=[f"e{i}" for i in range(len(KERNEL_ERRORS))])
def test_kernel_errors(fn, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fn()


_ISA_CHILD = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import ndcore as nd
from _grid_ref import grid_sample_ref
from _nn_helpers import rng
worst = 0.0
for k in (2, 3):
    r = rng(80 + k)
    xs, gs = ((2, 3, 5, 6), (2, 7, 9, 2)) if k == 2 else ((2, 3, 4, 5, 6), (2, 3, 5, 7, 3))
    x, g = r.standard_normal(xs), r.uniform(-1.3, 1.3, gs)
    g.reshape(-1)[::17] = np.nan
    go = r.standard_normal(xs[:2] + gs[1:-1])
    fwd, bwd = ((nd.grid_sampler_2d, nd.grid_sampler_2d_backward) if k == 2
                else (nd.grid_sampler_3d, nd.grid_sampler_3d_backward))
    for m in (0, 1):
        for p in (0, 1, 2):
            for a in (False, True):
                mode, pad = ("bilinear", "nearest")[m], ("zeros", "border", "reflection")[p]
                y = fwd(nd.tensor(x), nd.tensor(g), m, p, a).numpy()
                gi, gg = bwd(nd.tensor(go), nd.tensor(x), nd.tensor(g), m, p, a, [1, 1])
                for u, v in zip((y, gi.numpy(), gg.numpy()), grid_sample_ref(x, g, mode, pad, a, go)):
                    assert np.array_equal(np.isnan(u), np.isnan(v)), (k, mode, pad, a)
                    worst = max(worst, float(np.nanmax(np.abs(u - v), initial=0.0)))
print(worst)
"""


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_every_isa_variant(level):
    # the engine's task bodies are compiled per ISA (simd_dispatch.h); a level above the CPU's is lowered
    code = _ISA_CHILD.format(here=str(pathlib.Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ND_SIMD=level), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-12
