"""Leaf-gradient accumulation: an unshared fresh gradient becomes ``.grad`` without a copy (as
torch's AccumulateGrad steals it), and a shared one is copied, so later in-place updates of
``.grad`` (optimizers) never reach anything else; custom Functions free what they saved."""
from __future__ import annotations

import collections
import gc
import weakref

import numpy as np
import pytest

import ndcore as nd
import ndgrad  # noqa: F401  (registers the recorder)
from ndgrad import Function


def _op_counts(fn):
    ops = collections.Counter()
    nd._C._set_profiler_hooks(lambda name, shapes: name, lambda token, name: ops.update([name]))
    try:
        fn()
    finally:
        nd._C._set_profiler_hooks(None, None)
    return ops


def test_fresh_gradients_are_taken_without_a_copy():
    x = nd.randn(4, 4, requires_grad=True)
    w = nd.randn(4, 4, requires_grad=True)
    ops = _op_counts(lambda: (x @ w).relu().sum().backward())
    assert ops["clone"] == 0
    ref = (np.maximum(x.detach().numpy() @ w.detach().numpy(), 0) > 0).astype(np.float32)
    np.testing.assert_allclose(x.grad.numpy(), ref @ w.detach().numpy().T, rtol=1e-5, atol=1e-6)


def test_linear_weight_gradients_are_taken_without_a_copy():
    # Linear multiplies by W.t(): W's gradient is computed laid out like W (torch's
    # mm_mat2_backward), so it arrives as a view that alone holds its base and is kept as is
    rng = np.random.default_rng(0)
    xv, wv, bv = (rng.standard_normal(s).astype(np.float32) for s in ((5, 3), (4, 3), (4,)))
    x = nd.tensor(xv)
    for make in (lambda w, b: nd.addmm(b, x, w.t()), lambda w, b: x.mm(w.t()) + b,
                 lambda w, b: x.matmul(w.t()) + b):
        w, b = nd.tensor(wv, requires_grad=True), nd.tensor(bv, requires_grad=True)
        y = make(w, b)
        ops = _op_counts(lambda: (y * y).sum().backward())
        assert ops["clone"] == 0
        assert w.grad.is_contiguous() and w.grad._base is None and w.grad.stride() == (3, 1)
        gy = 2 * (xv @ wv.T + bv)
        np.testing.assert_allclose(w.grad.numpy(), gy.T @ xv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b.grad.numpy(), gy.sum(0), rtol=1e-5, atol=1e-5)


def test_a_kept_view_of_the_weight_gradient_is_not_stolen():
    w = nd.randn(4, 3, requires_grad=True)
    x = nd.randn(5, 3)
    kept = []
    w.register_hook(kept.append)
    x.mm(w.t()).sum().backward()
    w.grad.add_(100)
    np.testing.assert_allclose(kept[0].numpy(), np.ones((5, 4), np.float32).T @ x.numpy(), rtol=1e-5)


def test_a_user_gradient_passed_through_is_copied():
    x = nd.randn(4, requires_grad=True)
    v = nd.ones(4)
    (x + 0).backward(v)
    v.add_(1)
    assert x.grad.tolist() == [1.0] * 4


def test_two_leaves_given_one_tensor_do_not_share_it():
    a = nd.randn(4, requires_grad=True)
    b = nd.randn(4, requires_grad=True)
    (a * 1 + b * 1).sum().backward()
    a.grad.add_(100)
    assert b.grad.tolist() == [1.0] * 4
    a.grad = b.grad = None
    (a + b).backward(nd.ones(4) * 2)
    a.grad.add_(100)
    assert b.grad.tolist() == [2.0] * 4


def test_a_gradient_kept_by_a_hook_is_copied():
    x = nd.randn(3, requires_grad=True)
    kept = []
    x.register_hook(kept.append)
    (x * 2).sum().backward()
    x.grad.add_(100)
    assert kept[0].tolist() == [2.0] * 3


def test_broadcast_gradients_become_dense_grads():
    x = nd.randn(3, 2, requires_grad=True)
    x.sum().backward()  # the formula's gradient is an expanded view
    assert x.grad.is_contiguous() and x.grad.stride() == (2, 1)
    x.grad.add_(1)
    assert x.grad.tolist() == [[2.0, 2.0]] * 3


def test_accumulation_into_an_existing_grad_is_in_place():
    x = nd.randn(3, requires_grad=True)
    (x * 2).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad is first and x.grad.tolist() == [5.0] * 3


class _SavesOutput(Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


def test_function_saved_output_is_freed_with_its_graph_without_the_cycle_collector():
    gc.disable()
    try:
        x = nd.randn(8, requires_grad=True)
        y = _SavesOutput.apply(x)
        probe = weakref.ref(y)
        y.sum().backward()
        del y
        assert probe() is None
        np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()), rtol=1e-6)
    finally:
        gc.enable()


def test_function_saved_tensors_still_work_with_retain_graph():
    x = nd.randn(5, requires_grad=True)
    y = _SavesOutput.apply(x)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.detach().numpy()), rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()
