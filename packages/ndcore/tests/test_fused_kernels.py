"""Backward kernels that replace multi-op formulas: gelu_backward, slice_backward, select_backward
and layer norm's float32 backward, against float64 NumPy, torch and gradcheck."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import ndcore as nd
import ndgrad

K, C = np.sqrt(2 / np.pi), 0.044715


def _gelu_grad_ref(x, approximate):
    if approximate == "tanh":
        t = np.tanh(K * (x + C * x ** 3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * C * x * x)
    return 0.5 * scipy.special.erfc(-x / np.sqrt(2)) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


# ---- gelu_backward ----------------------------------------------------------------------------


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "broadcast"])
def test_gelu_backward_matches_numpy(approximate, dtype, layout):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=1000) * 3, [-30.0, -8.0, -1e-3, 0.0, 1e-3, 8.0, 30.0]]).reshape(-1, 1)
    x = np.repeat(x, 3, 1)
    g = rng.normal(size=x.shape)
    xt, gt = nd.tensor(x).to(getattr(nd, dtype)), nd.tensor(g).to(getattr(nd, dtype))
    if layout == "strided":
        xt, gt, x, g = xt[::2], gt[::2], x[::2], g[::2]
    elif layout == "broadcast":
        gt, g = gt[:1], g[:1]
    got = nd.gelu_backward(gt, xt, approximate=approximate).double().numpy()
    xr, gr = xt.double().numpy(), gt.double().numpy()  # the 16-bit inputs as the kernel sees them
    tol = {"float32": 1e-5, "float64": 1e-12, "float16": 2e-3, "bfloat16": 1e-2}[dtype]
    np.testing.assert_allclose(got, gr * _gelu_grad_ref(xr, approximate), rtol=tol, atol=tol)


def test_gelu_backward_f32_accuracy_sweep():
    """The float32 erf form (a fitted erfcx polynomial sharing one exp) over a dense sweep."""
    x = np.linspace(-20, 20, 400001).astype(np.float32)
    want = _gelu_grad_ref(x.astype(np.float64), "none")
    got = nd.gelu_backward(nd.ones(x.size), nd.tensor(x)).numpy().astype(np.float64)
    err = np.abs(got - want)
    assert err.max() < 5e-7
    big = np.abs(want) > 1e-3
    assert (err[big] / np.abs(want[big])).max() < 2e-4  # Phi + x phi cancels for x < 0


def test_gelu_backward_nan_and_errors():
    # x * pdf(x) is inf * 0 at +-inf: NaN, as torch's gelu_backward gives
    x = [float("nan"), float("inf"), float("-inf"), 30.0, -30.0]
    for approximate in ("none", "tanh"):
        got = nd.gelu_backward(nd.ones(5), nd.tensor(x), approximate=approximate).tolist()
        assert all(np.isnan(got[:3])) and got[3:] == [1.0, 0.0]
    with pytest.raises(ValueError, match="gelu_backward"):
        nd.gelu_backward(nd.ones(2), nd.ones(2), approximate="erf")
    with pytest.raises(TypeError, match="gelu_backward"):
        nd.gelu_backward(nd.tensor([1, 2]), nd.tensor([1, 2]))
    with pytest.raises(ValueError, match="gelu_backward"):
        nd.gelu_backward(nd.ones(2), nd.ones(3))


def test_gelu_backward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, g = rng.normal(size=(64, 33)).astype(np.float32) * 3, rng.normal(size=(64, 33)).astype(np.float32)
    for approximate in ("none", "tanh"):
        want = torch.ops.aten.gelu_backward(torch.tensor(g), torch.tensor(x), approximate=approximate).numpy()
        got = nd.gelu_backward(nd.tensor(g), nd.tensor(x), approximate=approximate).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # tanh form: 1 + tanh cancels near -1


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_first_second_third_derivatives(approximate):
    """gelu's gradient is gelu_backward; gelu_backward's own formula gives double (and triple) backward."""
    x = nd.tensor(np.linspace(-4, 4, 9)).requires_grad_(True)
    f = lambda t: nd.gelu(t, approximate=approximate)
    assert ndgrad.gradcheck(f, (x,))
    assert ndgrad.gradgradcheck(f, (x,))
    g = nd.tensor(np.linspace(-1, 1, 9)).requires_grad_(True)
    assert ndgrad.gradgradcheck(lambda a, b: nd.gelu_backward(a, b, approximate=approximate), (g, x))


# ---- slice_backward / select_backward ---------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool", "float16"])
@pytest.mark.parametrize("args", [(1, 1, 5, 2), (0, -3, 10, 1), (2, 0, 2, 3), (1, 4, 4, 1), (-1, -100, 100, 2)])
def test_slice_backward_matches_numpy(dtype, args):
    dim, start, end, step = args
    shape = (4, 6, 5)
    base = np.zeros(shape)
    idx = [slice(None)] * 3
    idx[dim] = slice(start, end, step)
    view_shape = base[tuple(idx)].shape
    g = (np.arange(int(np.prod(view_shape))).reshape(view_shape) % 3).astype(dtype if dtype != "bool" else bool)
    want = np.zeros(shape, dtype=g.dtype)
    want[tuple(idx)] = g
    gt = nd.tensor(g)
    got = nd.slice_backward(gt, list(shape), dim, start, end, step)
    assert got.dtype == gt.dtype and got.shape == shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_slice_select_backward_strided_grad_and_errors():
    g = nd.arange(24.0).reshape(4, 6)[:, ::2]  # non-contiguous gradient
    got = nd.slice_backward(g, [4, 9], 1, 3, 9, 2)
    want = np.zeros((4, 9))
    want[:, 3:9:2] = g.numpy()
    np.testing.assert_array_equal(got.numpy(), want)
    got = nd.select_backward(g, [4, 5, 3], 1, -2)
    want = np.zeros((4, 5, 3))
    want[:, -2] = g.numpy()
    np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(ValueError, match="slice_backward"):
        nd.slice_backward(g, [4, 9], 1, 0, 9, 1)
    with pytest.raises(ValueError, match="slice_backward"):
        nd.slice_backward(g, [4, 9], 1, 3, 9, 0)
    with pytest.raises(IndexError, match="select_backward"):
        nd.select_backward(g, [4, 5, 3], 1, 5)
    with pytest.raises(ValueError, match="select_backward"):
        nd.select_backward(g, [4, 5, 3], 0, 1)
    assert nd.slice_backward(nd.zeros(0, 3), [2, 3], 0, 1, 1, 1).tolist() == [[0.0] * 3] * 2


def test_slice_select_backward_gradients():
    """Views' gradients now come from these kernels; they stay differentiable (double backward)."""
    x = nd.tensor(np.random.default_rng(2).normal(size=(5, 4))).requires_grad_(True)
    assert ndgrad.gradcheck(lambda t: t[1:4:2] * t[1:4:2], (x,))
    assert ndgrad.gradgradcheck(lambda t: t[1:4:2] * t[1:4:2], (x,))
    assert ndgrad.gradgradcheck(lambda t: t.select(1, 2) ** 2, (x,))
    assert ndgrad.gradgradcheck(lambda t: t.narrow(0, -3, 2) ** 3, (x,))


# ---- layer norm backward (float32 fast path) ----------------------------------------------------


def _ln_ref(x, w, b, g, eps):
    mu = x.mean(-1, keepdims=True)
    rs = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)
    xh = (x - mu) * rs
    gw = g * (1 if w is None else w)
    gi = rs * (gw - gw.mean(-1, keepdims=True) - xh * (gw * xh).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return gi, (g * xh).sum(lead), g.sum(lead)


@pytest.mark.parametrize("N", [1, 7, 16, 37, 256])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("mask", [(1, 1, 1), (1, 0, 0), (0, 1, 1)])
def test_layer_norm_backward_f32_matches_numpy(N, affine, mask):
    rng = np.random.default_rng(N)
    x, g = rng.normal(size=(3, 70, N)), rng.normal(size=(3, 70, N))
    w, b = (rng.normal(size=N), rng.normal(size=N)) if affine else (None, None)
    f = lambda a: None if a is None else nd.tensor(a).float()
    xt = f(x)
    _, mean, rstd = nd.native_layer_norm(xt, [N], f(w), f(b), 1e-5)
    gi, gw, gb = nd.native_layer_norm_backward(f(g), xt, [N], mean, rstd, f(w), f(b), list(mask))
    wi, ww, wb = _ln_ref(x, w, b, g, 1e-5)
    tol = 5e-4 if N > 1 else 1e-3
    if mask[0]:
        np.testing.assert_allclose(gi.numpy(), wi, rtol=tol, atol=tol)
    else:
        assert gi is None
    if affine and mask[1]:
        np.testing.assert_allclose(gw.numpy(), ww, rtol=tol, atol=tol)
        np.testing.assert_allclose(gb.numpy(), wb, rtol=tol, atol=tol)
    else:
        assert gw is None and gb is None


def test_layer_norm_gradients_one_kernel_call_and_double_backward():
    rng = np.random.default_rng(3)
    x = nd.tensor(rng.normal(size=(4, 6))).requires_grad_(True)
    w = nd.tensor(rng.normal(size=6)).requires_grad_(True)
    b = nd.tensor(rng.normal(size=6)).requires_grad_(True)
    f = lambda a, c, d: nd.layer_norm(a, [6], c, d)
    assert ndgrad.gradcheck(f, (x, w, b))
    assert ndgrad.gradgradcheck(f, (x, w, b))
    calls = []
    nd._C._set_profiler_hooks(lambda name, shapes: calls.append(name), lambda tok, name: None)
    try:
        f(x.float(), w.float(), b.float()).sum().backward()
    finally:
        nd._C._set_profiler_hooks(None, None)
    assert calls.count("native_layer_norm_backward") == 1


def test_layer_norm_backward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, g, w, b = (rng.normal(size=s).astype(np.float32) for s in ((8, 33, 48), (8, 33, 48), 48, 48))
    T = [torch.tensor(a) for a in (x, w, b)]
    _, tm, tr = torch.native_layer_norm(T[0], [48], T[1], T[2], 1e-5)
    want = torch.ops.aten.native_layer_norm_backward(torch.tensor(g), T[0], [48], tm, tr, T[1], T[2], [True] * 3)
    N = [nd.tensor(a) for a in (x, w, b)]
    _, m, r = nd.native_layer_norm(N[0], [48], N[1], N[2], 1e-5)
    got = nd.native_layer_norm_backward(nd.tensor(g), N[0], [48], m, r, N[1], N[2], [1, 1, 1])
    for a, c in zip(got, want):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("N", [1, 7, 16, 37, 256])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_forward_f32_matches_numpy(N, affine):
    rng = np.random.default_rng(N + 1)
    x = rng.normal(size=(2, 65, N)) * 3 + 1
    w = rng.normal(size=N) if affine != "none" else None
    b = rng.normal(size=N) if affine == "both" else None
    f = lambda a: None if a is None else nd.tensor(a).float()
    out, mean, rstd = nd.native_layer_norm(f(x), [N], f(w), f(b), 1e-5)
    mu = x.mean(-1, keepdims=True)
    rs = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    want = (x - mu) * rs * (1 if w is None else w) + (0 if b is None else b)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mean.numpy(), mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rstd.numpy(), rs, rtol=1e-4)


def test_layer_norm_forward_f32_nan_and_strided():
    x = np.random.default_rng(5).normal(size=(4, 40)).astype(np.float32)
    x[1, 3] = np.nan
    xt = nd.tensor(x)
    out = nd.native_layer_norm(xt, [40], None, None, 1e-5)[0].numpy()
    assert np.isnan(out[1]).all() and not np.isnan(out[[0, 2, 3]]).any()
    strided = nd.tensor(x.T.copy()).t()  # non-contiguous view of the same values
    np.testing.assert_allclose(nd.native_layer_norm(strided, [40], None, None, 1e-5)[0].numpy(), out, rtol=1e-6)


@pytest.mark.parametrize("level", ["baseline", "avx2"])
def test_isa_variants(level):
    """Every test above again with the float32 kernels capped at a lower ISA (ND_SIMD)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, ND_SIMD=level)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__, "-k",
                        "not isa_variants and not torch"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
