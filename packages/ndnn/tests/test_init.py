"""nd.nn.init: gains, fan computation, bounds and statistics of every initialiser."""
from __future__ import annotations

import math

import ndcore as nd
import ndgrad
import numpy as np
import pytest

from ndnn import Parameter, init


def gen(seed=0):
    return nd.Generator().manual_seed(seed)


@pytest.mark.parametrize("name,param,expected", [
    ("linear", None, 1), ("conv2d", None, 1), ("conv_transpose3d", None, 1), ("sigmoid", None, 1),
    ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("leaky_relu", 1, 1.0), ("selu", None, 0.75),
])
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected)


def test_calculate_gain_matches_torch_and_errors():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv1d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", "x")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape,fans", [((3, 4), (4, 3)), ((8, 2, 3, 5), (30, 120)), ((6, 4, 7), (28, 42))])
def test_fan_in_fan_out(shape, fans):
    assert init._calculate_fan_in_and_fan_out(nd.empty(*shape)) == fans


def test_fan_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(nd.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(nd.empty(3, 3), mode="fan_avg")


def _check_uniform(x, lo, hi):
    a = x.detach().numpy().astype(np.float64)
    assert a.min() >= lo and a.max() <= hi
    # the extremes come close to the bounds and the moments match U(lo, hi)
    width = hi - lo
    assert a.min() < lo + 0.01 * width and a.max() > hi - 0.01 * width
    assert abs(a.mean() - (lo + hi) / 2) < 0.02 * width
    assert abs(a.std() - width / math.sqrt(12)) < 0.02 * width


def _check_normal(x, mean, std):
    a = x.detach().numpy().astype(np.float64)
    assert abs(a.mean() - mean) < 0.02 * std + 1e-12
    assert abs(a.std() - std) < 0.02 * std


def test_uniform_normal_constant():
    w = Parameter(nd.empty(200, 300))
    assert init.uniform_(w, -2.0, 3.0, generator=gen()) is w
    _check_uniform(w, -2.0, 3.0)
    assert w.requires_grad and w.grad_fn is None  # filled under no_grad
    init.normal_(w, 1.5, 0.5, generator=gen())
    _check_normal(w, 1.5, 0.5)
    init.constant_(w, 0.25)
    assert np.all(w.detach().numpy() == 0.25)
    init.ones_(w)
    assert np.all(w.detach().numpy() == 1)
    init.zeros_(w)
    assert np.all(w.detach().numpy() == 0)


def test_generator_reproducibility():
    a = init.xavier_normal_(nd.empty(10, 10), generator=gen(5))
    b = init.xavier_normal_(nd.empty(10, 10), generator=gen(5))
    c = init.xavier_normal_(nd.empty(10, 10), generator=gen(6))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier(gain):
    w = nd.empty(400, 100, 3)  # fan_in 300, fan_out 1200
    bound = gain * math.sqrt(6 / 1500)
    init.xavier_uniform_(w, gain=gain, generator=gen())
    _check_uniform(w, -bound, bound)
    init.xavier_normal_(w, gain=gain, generator=gen())
    _check_normal(w, 0.0, gain * math.sqrt(2 / 1500))


@pytest.mark.parametrize("a,mode,nonlinearity", [(0, "fan_in", "relu"), (math.sqrt(5), "fan_in", "leaky_relu"),
                                                 (0.1, "fan_out", "leaky_relu"), (0, "FAN_OUT", "tanh")])
def test_kaiming(a, mode, nonlinearity):
    w = nd.empty(300, 50, 2, 2)  # fan_in 200, fan_out 1200
    fan = 200 if mode.lower() == "fan_in" else 1200
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    init.kaiming_uniform_(w, a=a, mode=mode, nonlinearity=nonlinearity, generator=gen())
    _check_uniform(w, -math.sqrt(3) * std, math.sqrt(3) * std)
    init.kaiming_normal_(w, a=a, mode=mode, nonlinearity=nonlinearity, generator=gen())
    _check_normal(w, 0.0, std)


def test_kaiming_zero_element_warns():
    with pytest.warns(UserWarning, match="no-op"):
        init.kaiming_uniform_(nd.empty(0, 3))


def test_trunc_normal():
    w = nd.empty(500, 400)
    init.trunc_normal_(w, mean=1.0, std=2.0, a=-1.0, b=2.0, generator=gen())
    x = w.numpy().astype(np.float64)
    assert x.min() >= -1.0 and x.max() <= 2.0
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = scipy_stats.truncnorm((-1.0 - 1.0) / 2.0, (2.0 - 1.0) / 2.0, loc=1.0, scale=2.0)
    assert abs(x.mean() - ref.mean()) < 0.01 and abs(x.std() - ref.std()) < 0.01
    with pytest.warns(UserWarning, match="more than 2 std"):
        init.trunc_normal_(nd.empty(3), mean=10.0)


def test_eye_and_dirac():
    w = init.eye_(Parameter(nd.empty(3, 5)))
    np.testing.assert_array_equal(w.detach().numpy(), np.eye(3, 5))
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(nd.empty(2, 2, 2))
    for shape, groups in (((4, 3, 5), 1), ((6, 2, 3, 3), 2), ((4, 4, 3, 3, 3), 2)):
        w = init.dirac_(nd.empty(*shape), groups=groups)
        ref = np.zeros(shape, np.float32)
        per = shape[0] // groups
        centre = tuple(s // 2 for s in shape[2:])
        for g in range(groups):
            for d in range(min(per, shape[1])):
                ref[(g * per + d, d, *centre)] = 1
        np.testing.assert_array_equal(w.numpy(), ref)
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac_(nd.empty(5, 2, 3), groups=2)


def test_dirac_conv_identity_matches_torch():
    torch = pytest.importorskip("torch")
    ours = init.dirac_(nd.empty(6, 4, 3, 3), groups=2).numpy()
    theirs = torch.nn.init.dirac_(torch.empty(6, 4, 3, 3), groups=2).numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shape", [(30, 20), (20, 30), (10, 4, 3), (7, 7)])
def test_orthogonal(shape):
    w = init.orthogonal_(Parameter(nd.empty(*shape)), gain=2.0, generator=gen())
    m = w.detach().numpy().reshape(shape[0], -1).astype(np.float64)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-4)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(nd.empty(3))


def test_sparse():
    w = init.sparse_(nd.empty(50, 40), sparsity=0.3, std=0.5, generator=gen())
    x = w.numpy()
    zeros = (x == 0).sum(axis=0)
    np.testing.assert_array_equal(zeros, np.full(40, math.ceil(0.3 * 50)))
    nz = x[x != 0]
    assert abs(nz.std() - 0.5) < 0.05
    # the zero rows differ from column to column
    assert len({tuple(np.flatnonzero(x[:, j] == 0)) for j in range(40)}) > 30
    with pytest.raises(ValueError, match="2 dimensions"):
        init.sparse_(nd.empty(2, 2, 2), 0.1)


def test_init_does_not_record_autograd():
    w = Parameter(nd.empty(4, 4))
    with ndgrad.enable_grad():
        init.kaiming_normal_(w, generator=gen())
        init.orthogonal_(w, generator=gen())
        init.trunc_normal_(w, generator=gen())
    assert w.is_leaf and w.grad_fn is None


def test_deprecated_aliases_warn():
    with pytest.warns(FutureWarning, match="deprecated in favor of `nn.init.xavier_uniform_`"):
        init.xavier_uniform(nd.empty(2, 2))
