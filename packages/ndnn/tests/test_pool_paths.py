"""Which max-pooling kernel ndnn runs: values only unless autograd will need the indices (torch's
rule), and gradients that stay right either way (including through the values-only op itself)."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndnn
import ndnn.functional as F


@contextlib.contextmanager
def _ops_called():
    names = []
    nd._C._set_profiler_hooks(lambda name, shapes: names.append(name), lambda token, name: None)
    try:
        yield names
    finally:
        nd._C._set_profiler_hooks(None, None)


CALLS = [
    (1, lambda x: F.max_pool1d(x, 3, 2, 1), (2, 3, 17)),
    (2, lambda x: F.max_pool2d(x, 2), (2, 3, 8, 10)),
    (2, lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), (2, 3, 9, 11)),
    (2, lambda x: ndnn.MaxPool2d(3, 1, 1, dilation=2)(x), (1, 2, 9, 9)),
    (3, lambda x: F.max_pool3d(x, 2, 1), (1, 2, 4, 5, 6)),
]


def _x(shape, requires_grad):
    x = nd.tensor(np.random.default_rng(len(shape)).standard_normal(shape))
    return x.requires_grad_(True) if requires_grad else x


@pytest.mark.parametrize("dims,fn,shape", CALLS, ids=[f"c{i}" for i in range(len(CALLS))])
def test_values_only_without_a_graph(dims, fn, shape):
    for requires_grad, grad_mode in ((True, False), (False, True), (False, False)):
        x = _x(shape, requires_grad)
        ctx = ndgrad.no_grad() if not grad_mode else contextlib.nullcontext()
        with ctx, _ops_called() as names:
            y = fn(x)
        assert f"_max_pool{dims}d_values" in names and f"max_pool{dims}d_with_indices" not in names, names
        assert not y.requires_grad


@pytest.mark.parametrize("dims,fn,shape", CALLS, ids=[f"c{i}" for i in range(len(CALLS))])
def test_indices_when_autograd_needs_them(dims, fn, shape):
    x = _x(shape, True)
    with _ops_called() as names:
        y = fn(x)
    assert f"max_pool{dims}d_with_indices" in names and f"_max_pool{dims}d_values" not in names, names
    assert y.requires_grad
    # same values as the no-graph path
    with ndgrad.no_grad():
        np.testing.assert_array_equal(fn(x).numpy(), y.detach().numpy())


@pytest.mark.parametrize("dims,fn,shape", CALLS, ids=[f"c{i}" for i in range(len(CALLS))])
def test_gradients(dims, fn, shape):
    x = _x(shape, True)
    assert ndgrad.gradcheck(fn, (x,))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_values_op_records_its_own_gradient(dims):
    # the values-only op is differentiable too (its formula recomputes the indices), so a direct
    # call still trains correctly, to second order
    shape = (2, 2) + (7,) * dims
    x = _x(shape, True)
    op = getattr(nd._C, f"_max_pool{dims}d_values")
    fn = lambda t: op(t, [3], [2], [1], [1], True)  # noqa: E731
    assert ndgrad.gradcheck(fn, (x,))
    assert ndgrad.gradgradcheck(fn, (x,))
    full = getattr(nd, f"max_pool{dims}d_with_indices")
    (g1,) = ndgrad.grad(fn(x).sum(), [x])
    (g2,) = ndgrad.grad(full(x, [3], [2], [1], [1], True)[0].sum(), [x])
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())


def test_matches_torch_training_and_eval():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((3, 4, 12, 13)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    xt = torch.tensor(x, requires_grad=True)
    xn = nd.tensor(x).requires_grad_(True)
    yt = torch.nn.functional.max_pool2d(xt, 3, 2, 1, ceil_mode=True)
    yn = F.max_pool2d(xn, 3, 2, 1, ceil_mode=True)
    np.testing.assert_array_equal(yn.detach().numpy(), yt.detach().numpy())
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g))
    yn.backward(nd.tensor(g))
    np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
    with torch.no_grad(), ndgrad.no_grad():
        np.testing.assert_array_equal(F.max_pool2d(xn, 2).numpy(), torch.nn.functional.max_pool2d(xt, 2).numpy())
