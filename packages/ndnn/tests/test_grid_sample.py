"""grid_sample beyond the bilinear/nearest 2-D kernel: bicubic (2-D) and 5-D input (3-D sampling)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
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
