"""Vectorised gelu/softplus (contiguous float32 fast path vs the strided libm loop) and
threshold_backward (relu's gradient) against float64 NumPy/SciPy references and torch."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import ndcore as nd
import ndgrad

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.0, -88.0, 1e4, -1e4, 3e38, -3e38])


@np.errstate(invalid="ignore", over="ignore")
def _gelu_ref(x, approximate):
    x = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * scipy.special.erfc(-x / np.sqrt(2))


def _softplus_ref(x, beta, threshold):
    x = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        soft = np.logaddexp(0, beta * x) / beta
    return np.where(beta * x > threshold, x, soft)


def _inputs(n=20011, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-12, 12, n), rng.standard_normal(n) * 2, SPECIAL]).astype(np.float32)


def _check(got, ref, rtol, atol):
    ref = ref.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_gelu_float32(approximate, layout):
    a = _inputs()
    t = nd.tensor(a)
    if layout == "strided":  # every other element: the libm loop, same reference
        a2 = np.repeat(a, 2)
        t = nd.tensor(a2)[::2]
    got = nd.gelu(t, approximate=approximate).numpy()
    _check(got, _gelu_ref(a, approximate), 2e-6, 2e-7)


def test_gelu_fast_and_strided_paths_agree():
    a = _inputs(seed=1)
    fast = nd.gelu(nd.tensor(a)).numpy()
    slow = nd.gelu(nd.tensor(np.repeat(a, 2))[::2]).numpy()
    np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=2e-7, equal_nan=True)


@pytest.mark.parametrize("beta,threshold", [(1, 20), (2.0, 5.0), (0.5, 1.0)])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_softplus_float32(beta, threshold, layout):
    a = _inputs(seed=2)
    t = nd.tensor(a) if layout == "contiguous" else nd.tensor(np.repeat(a, 2))[::2]
    got = nd.softplus(t, beta, threshold).numpy()
    _check(got, _softplus_ref(a, beta, threshold), 2e-6, 1e-30)


@pytest.mark.parametrize("name", ["gelu", "softplus"])
def test_float64_unchanged_precision(name):
    a = np.random.default_rng(3).uniform(-10, 10, 1000)
    got = getattr(nd, name)(nd.tensor(a)).numpy()
    ref = _gelu_ref(a, "none") if name == "gelu" else _softplus_ref(a, 1, 20)
    # float64 keeps libm's 1 + erf(x), whose absolute error is ~1 ulp of 1 for x << 0
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-15)


def _tb_ref(g, x, threshold):
    return np.where(x <= threshold, 0, g).astype(np.result_type(g, x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "broadcast"])
@pytest.mark.parametrize("threshold", [0, 0.5, -1.0])
def test_threshold_backward_matches_numpy(dtype, layout, threshold):
    rng = np.random.default_rng(4)
    g = rng.standard_normal((6, 7, 9)).astype(dtype)
    x = rng.uniform(-2, 2, (6, 7, 9)).astype(dtype)
    x.flat[:len(SPECIAL)] = SPECIAL
    x[0, 0, :3] = threshold  # ties drop the gradient
    if layout == "strided":  # a sliced grad and a transposed-then-sliced self
        gn, xn = g[:, ::2, :], x[:, ::2, :]
        gt = nd.tensor(g)[:, ::2, :]
        xt = nd.tensor(np.ascontiguousarray(x.transpose(2, 1, 0))).transpose(0, 2)[:, ::2, :]
    elif layout == "broadcast":
        gn, xn = g[:1], x
        gt, xt = nd.tensor(gn), nd.tensor(xn)
    else:
        gn, xn = g, x
        gt, xt = nd.tensor(g), nd.tensor(x)
    got = nd.threshold_backward(gt, xt, threshold)
    assert got.dtype == getattr(nd, dtype)
    np.testing.assert_array_equal(got.numpy(), _tb_ref(gn, xn, threshold))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_threshold_backward_half(dtype):
    rng = np.random.default_rng(5)
    g = rng.standard_normal(257).astype(np.float32)
    x = rng.uniform(-1, 1, 257).astype(np.float32)
    got = nd.threshold_backward(nd.tensor(g).to(getattr(nd, dtype)), nd.tensor(x).to(getattr(nd, dtype)), 0)
    assert got.dtype == getattr(nd, dtype)
    gh = nd.tensor(g).to(getattr(nd, dtype)).float().numpy()
    xh = nd.tensor(x).to(getattr(nd, dtype)).float().numpy()
    np.testing.assert_array_equal(got.float().numpy(), _tb_ref(gh, xh, 0))


def test_threshold_backward_promotes_and_rejects_ints():
    g = nd.tensor(np.ones(4, np.float32))
    x = nd.tensor(np.array([-1.0, 0.0, 1.0, 2.0]))
    out = nd.threshold_backward(g, x, 0)
    assert out.dtype == nd.float64
    np.testing.assert_array_equal(out.numpy(), [0, 0, 1, 1])
    with pytest.raises(TypeError, match="threshold_backward"):
        nd.threshold_backward(nd.tensor([1, 2]), nd.tensor([1, 2]), 0)


def test_threshold_backward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    g = rng.standard_normal((64, 20, 8, 8)).astype(np.float32)
    x = rng.standard_normal((64, 20, 8, 8)).astype(np.float32)
    x.flat[:len(SPECIAL)] = SPECIAL
    for thr in (0, 0.3):
        want = torch.ops.aten.threshold_backward(torch.from_numpy(g), torch.from_numpy(x), thr).numpy()
        np.testing.assert_array_equal(nd.threshold_backward(nd.tensor(g), nd.tensor(x), thr).numpy(), want)


def test_relu_grad_uses_threshold_backward_and_gradchecks():
    rng = np.random.default_rng(7)
    a = rng.uniform(-2, 2, (5, 6))
    a[np.abs(a) < 0.05] = 0.5  # keep finite differences away from the kink
    x = nd.tensor(a, requires_grad=True)
    assert ndgrad.gradcheck(nd.relu, (x,))
    assert ndgrad.gradgradcheck(nd.relu, (x,))
    g = nd.tensor(rng.standard_normal((5, 6)))
    (gx,) = ndgrad.grad(nd.relu(x), (x,), g)
    np.testing.assert_array_equal(gx.numpy(), np.where(a > 0, g.numpy(), 0))


def test_threshold_backward_double_backward():
    rng = np.random.default_rng(8)
    g = nd.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    x = nd.tensor(rng.uniform(-2, 2, (4, 5)))
    assert ndgrad.gradcheck(lambda t: nd.threshold_backward(t, x, 0.25), (g,))


def test_threshold_backward_on_fake_device():
    from ndcore.testing import register_fake_device

    register_fake_device()
    g = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    x = np.array([-1.0, 0.0, 0.5, 2.0], np.float32)
    out = nd.threshold_backward(nd.tensor(g).to("fake"), nd.tensor(x).to("fake"), 0.25)
    assert out.device.type == "fake"
    np.testing.assert_array_equal(out.to("cpu").numpy(), [0, 0, 3, 4])
