"""nd.nn.functional activations: forward vs NumPy formulas and torch, gradients vs torch, gradcheck."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from _nn_helpers import close, rng, t, tt

import ndcore as nd
import ndgrad
import ndnn.functional as F

SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x, beta=1.0, th=20.0):
    return np.where(x * beta > th, x, np.log1p(np.exp(np.minimum(x * beta, th))) / beta)


def _erf(x):
    from scipy.special import erf

    return erf(x)


# name -> (nd call, NumPy reference, torch name, kwargs shared by nd and torch)
CASES = {
    "relu": (F.relu, lambda x: np.maximum(x, 0), "relu", {}),
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6), "relu6", {}),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x), "leaky_relu", {"negative_slope": 0.2}),
    "elu": (F.elu, lambda x: np.where(x > 0, x, 1.5 * np.expm1(x)), "elu", {"alpha": 1.5}),
    "selu": (F.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)), "selu", {}),
    "celu": (F.celu, lambda x: np.where(x > 0, x, 0.7 * np.expm1(x / 0.7)), "celu", {"alpha": 0.7}),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), "gelu", {}),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
                  "gelu", {"approximate": "tanh"}),
    "silu": (F.silu, lambda x: x * _sig(x), "silu", {}),
    "mish": (F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), "mish", {}),
    "sigmoid": (F.sigmoid, _sig, "sigmoid", {}),
    "tanh": (F.tanh, np.tanh, "tanh", {}),
    "hardtanh": (F.hardtanh, lambda x: np.clip(x, -0.5, 2.0), "hardtanh", {"min_val": -0.5, "max_val": 2.0}),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6, "hardswish", {}),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1), "hardsigmoid", {}),
    "softplus": (F.softplus, lambda x: _softplus(x, 2.0, 3.0), "softplus", {"beta": 2.0, "threshold": 3.0}),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x)), "softsign", {}),
    "threshold": (lambda x: F.threshold(x, 0.3, -2.0), lambda x: np.where(x > 0.3, x, -2.0), "threshold",
                  {"threshold": 0.3, "value": -2.0}),
    "logsigmoid": (F.logsigmoid, lambda x: -np.log1p(np.exp(-x)), "logsigmoid", {}),
    "tanhshrink": (F.tanhshrink, lambda x: x - np.tanh(x), "tanhshrink", {}),
    "softshrink": (F.softshrink, lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
                   "softshrink", {"lambd": 0.5}),
    "hardshrink": (F.hardshrink, lambda x: np.where(np.abs(x) > 0.5, x, 0), "hardshrink", {"lambd": 0.5}),
    "rrelu_eval": (lambda x: F.rrelu(x, 0.1, 0.3, training=False), lambda x: np.where(x > 0, x, 0.2 * x), "rrelu",
                   {"lower": 0.1, "upper": 0.3, "training": False}),
}


def _input(shape=(3, 7), seed=0, dtype=np.float32):
    x = rng(seed).uniform(-4, 4, size=shape).astype(dtype)
    # keep clear of the kinks, where finite differences and subgradient conventions disagree
    for k in (0.0, 0.3, 0.5, -0.5, 3.0, -3.0, -0.5, 2.0, 1.5):
        x = np.where(np.abs(x - k) < 1e-2, x + 0.05, x)
    return x


def _call_nd(name, x):
    fn, _, _, kw = CASES[name]
    if name in ("gelu_tanh", "threshold", "rrelu_eval"):
        return fn(x)
    return fn(x, **kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_matches_numpy(name):
    x = _input()
    out = _call_nd(name, t(x))
    close(out, CASES[name][1](x.astype(np.float64)).astype(np.float32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_backward_match_torch(name):
    torch = pytest.importorskip("torch")
    x = _input(seed=1)
    xn = t(x, requires_grad=True)
    xt = tt(x, requires_grad=True)
    out = _call_nd(name, xn)
    fn = getattr(torch.nn.functional, CASES[name][2])
    out_t = fn(xt, **CASES[name][3])
    close(out, out_t, rtol=1e-5, atol=1e-5)
    g = rng(2).standard_normal(x.shape).astype(np.float32)
    out.backward(t(g))
    out_t.backward(tt(g))
    close(xn.grad, xt.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    x = t(_input(shape=(2, 5), seed=3, dtype=np.float64), requires_grad=True)
    assert ndgrad.gradcheck(lambda a: _call_nd(name, a), (x,))


@pytest.mark.parametrize("name,fn,ref", [
    ("relu_", F.relu_, lambda x: np.maximum(x, 0)),
    ("leaky_relu_", lambda x: F.leaky_relu_(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    ("elu_", F.elu_, lambda x: np.where(x > 0, x, np.expm1(x))),
    ("hardtanh_", F.hardtanh_, lambda x: np.clip(x, -1, 1)),
    ("threshold_", lambda x: F.threshold_(x, 0.1, 9.0), lambda x: np.where(x > 0.1, x, 9.0)),
    ("silu(inplace)", lambda x: F.silu(x, inplace=True), lambda x: x * _sig(x)),
    ("hardswish(inplace)", lambda x: F.hardswish(x, inplace=True), lambda x: x * np.clip(x + 3, 0, 6) / 6),
])
def test_inplace_variants_write_into_input(name, fn, ref):
    x = _input()
    xn = t(x)
    out = fn(xn)
    assert out is xn
    close(xn, ref(x.astype(np.float64)).astype(np.float32), atol=1e-5)


def test_inplace_on_intermediate_keeps_gradient():
    torch = pytest.importorskip("torch")
    x = _input(seed=4)
    xn = t(x, requires_grad=True)
    xt = tt(x, requires_grad=True)
    F.leaky_relu_(xn * 2.0, 0.1).sum().backward()
    torch.nn.functional.leaky_relu_(xt * 2.0, 0.1).sum().backward()
    close(xn.grad, xt.grad)


def test_prelu_per_channel():
    torch = pytest.importorskip("torch")
    x = _input(shape=(2, 3, 4), seed=5)
    w = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    xn, wn = t(x, requires_grad=True), t(w, requires_grad=True)
    xt, wt = tt(x, True), tt(w, True)
    out = F.prelu(xn, wn)
    close(out, np.where(x > 0, x, w[None, :, None] * x))
    out.sum().backward()
    torch.nn.functional.prelu(xt, wt).sum().backward()
    close(xn.grad, xt.grad)
    close(wn.grad, wt.grad, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[prelu\] weight has 3 elements.*\(2, 4, 4\)"):
        F.prelu(t(np.zeros((2, 4, 4), np.float32)), wn)
    xd = t(x.astype(np.float64), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, b: F.prelu(a, b), (xd, t(w.astype(np.float64), requires_grad=True)))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family(dim):
    torch = pytest.importorskip("torch")
    x = _input(shape=(3, 4, 5), seed=6)
    e = np.exp(x - x.max(dim, keepdims=True))
    close(F.softmax(t(x), dim), e / e.sum(dim, keepdims=True), atol=1e-6)
    close(F.log_softmax(t(x), dim), torch.log_softmax(tt(x), dim), atol=1e-5)
    close(F.softmin(t(x), dim), torch.nn.functional.softmin(tt(x), dim), atol=1e-6)
    xd = t(x[:2, :2, :3].astype(np.float64), requires_grad=True)
    assert ndgrad.gradcheck(lambda a: F.log_softmax(a, dim), (xd,))
    assert ndgrad.gradcheck(lambda a: F.softmin(a, dim), (xd,))


@pytest.mark.parametrize("ndim,expected", [(1, 0), (2, 1), (3, 0), (4, 1)])
def test_softmax_implicit_dim_warns_and_follows_torch(ndim, expected):
    x = _input(shape=(2, 3, 2, 2)[:ndim], seed=7)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = F.softmax(t(x))
    close(out, F.softmax(t(x), expected))


def test_softmax_dtype_argument():
    x = _input(seed=8)
    out = F.softmax(t(x), 1, dtype=nd.float64)
    assert out.dtype == nd.float64


def test_glu():
    x = _input(shape=(2, 6), seed=9)
    close(F.glu(t(x)), x[:, :3] * _sig(x[:, 3:]), atol=1e-6)
    close(F.glu(t(x), 0), x[:1] * _sig(x[1:]), atol=1e-6)
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(t(np.zeros((2, 5), np.float32)))
    assert ndgrad.gradcheck(F.glu, (t(x.astype(np.float64), requires_grad=True),))


def test_rrelu_training_slopes_in_range():
    nd.manual_seed(0)
    x = -np.ones((2000,), np.float32)
    out = F.rrelu(t(x), 0.1, 0.3, training=True).numpy()
    slopes = -out
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.01 and slopes.std() > 0.03


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(t(np.zeros(2, np.float32)), approximate="fast")


def test_hardtanh_bounds_checked():
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(t(np.zeros(2, np.float32)), 2.0, 1.0)


def test_normalize():
    torch = pytest.importorskip("torch")
    x = _input(shape=(3, 4), seed=10)
    close(F.normalize(t(x)), x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), atol=1e-6)
    close(F.normalize(t(x), p=1, dim=0), torch.nn.functional.normalize(tt(x), p=1, dim=0), atol=1e-6)
    z = np.zeros((2, 3), np.float32)
    close(F.normalize(t(z)), z)  # eps keeps zero vectors finite
    assert ndgrad.gradcheck(F.normalize, (t(x.astype(np.float64), requires_grad=True),))


def test_one_hot():
    idx = np.array([[0, 2], [1, 3]])
    out = F.one_hot(t(idx))
    assert out.dtype == nd.int64
    close(out, np.eye(4, dtype=np.int64)[idx])
    close(F.one_hot(t(idx), 6), np.eye(6, dtype=np.int64)[idx])
    with pytest.raises(ValueError, match="smaller than num_classes"):
        F.one_hot(t(idx), 3)
    with pytest.raises(TypeError, match="index tensor"):
        F.one_hot(t(np.zeros(2, np.float32)))


def test_gumbel_softmax():
    nd.manual_seed(0)
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 4000, np.float32))
    soft = F.gumbel_softmax(t(logits), tau=0.5).numpy()
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
    x = t(logits, requires_grad=True)
    hard = F.gumbel_softmax(x, hard=True)
    h = hard.detach().numpy()
    assert set(np.unique(h)) == {0.0, 1.0} and np.all(h.sum(-1) == 1)
    # argmax of logits + Gumbel noise is a sample of the categorical distribution
    np.testing.assert_allclose(h.mean(0), [0.7, 0.2, 0.1], atol=0.03)
    (hard * t(np.arange(3, dtype=np.float32))).sum().backward()
    assert x.grad is not None and np.abs(x.grad.numpy()).sum() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.gumbel_softmax(t(logits[:2]))


def test_elu_gradient_finite_for_large_inputs():
    x = t(np.array([100.0, -100.0, 0.5], np.float32), requires_grad=True)
    F.elu(x).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    close(x.grad, [1.0, np.exp(-100.0), 1.0], atol=1e-6)


# the points _input avoids: where each activation's pieces meet, torch's gradients pick a side
KINK_CASES = {
    "relu6": (F.relu6, "relu6", {}), "hardtanh": (lambda x: F.hardtanh(x, -3.0, 3.0), "hardtanh", {}),
    "hardsigmoid": (F.hardsigmoid, "hardsigmoid", {}), "hardswish": (F.hardswish, "hardswish", {}),
    "relu": (F.relu, "relu", {}), "leaky_relu": (F.leaky_relu, "leaky_relu", {}),
    "rrelu_eval": (lambda x: F.rrelu(x, training=False), "rrelu", {}), "elu": (F.elu, "elu", {}),
    "threshold": (lambda x: F.threshold(x, 0.0, -1.0), "threshold", {}),
    "hardshrink": (F.hardshrink, "hardshrink", {}), "softshrink": (F.softshrink, "softshrink", {}),
}
KINKS = np.array([-7.0, -6.0, -4.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 4.0, 6.0, 7.0], np.float32)


@pytest.mark.parametrize("name", sorted(KINK_CASES))
@pytest.mark.parametrize("inplace", [False, True])
def test_gradients_at_the_kinks_match_torch(name, inplace):
    torch = pytest.importorskip("torch")
    fn, tname, _ = KINK_CASES[name]
    tfn = {"hardtanh": lambda x: torch.nn.functional.hardtanh(x, -3.0, 3.0),
           "rrelu_eval": lambda x: torch.nn.functional.rrelu(x, training=False),
           "threshold": lambda x: torch.nn.functional.threshold(x, 0.0, -1.0)}.get(name, getattr(torch.nn.functional,
                                                                                               tname))
    x = nd.tensor(KINKS, requires_grad=True)
    if inplace and name in ("relu6", "hardtanh"):
        out = (F.relu6(x.clone(), inplace=True) if name == "relu6" else F.hardtanh(x.clone(), -3.0, 3.0, inplace=True))
    else:
        out = fn(x)
    ndgrad.backward(out.sum())
    tx = torch.tensor(KINKS, requires_grad=True)
    tout = tfn(tx)
    tout.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-6, atol=1e-7)
    # elu's gradient away from 0 goes through expm1's (result + 1), ~1e-5 relative at x = -7
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-4 if name == "elu" else 1e-6, err_msg=name)
