"""Recording through ndcore's fast entry points (operator and number slots, vectorcall methods,
``x.float()``, ``x[i]``) and the slotted OpNode that ``record`` fills in place: every path must
still build the node, save what its formula reads, check versions and run hooks."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndgrad


def _leaf(values, dtype=nd.float64):
    return nd.tensor(values, dtype=dtype).requires_grad_(True)


def test_operator_slots_record():
    x = _leaf([1.0, 2.0, 3.0])
    y = ((-x) * 2.5 + 1) / 4 - abs(x) ** 2 + (2 - x) * (3 / x)
    assert y.grad_fn is not None and y.grad_fn.name() == "AddBackward0"
    y.sum().backward()
    v = np.array([1.0, 2.0, 3.0])
    want = -2.5 / 4 - 2 * v + (-(3 / v) - (2 - v) * 3 / v**2)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12)


def test_python_numbers_keep_float16_grads():
    x = _leaf([0.5, 1.5], nd.float16)
    y = (x * 0.1 + 1e4 - x / 3).sum()
    y.backward()
    assert x.grad.dtype == nd.float16
    np.testing.assert_allclose(x.grad.float().numpy(), [0.1 - 1 / 3] * 2, rtol=1e-2)


def test_dtype_method_and_getitem_record():
    x = _leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x.float()[1] * 2
    assert x.double() is x
    y.sum().backward()
    assert x.grad.dtype == nd.float64
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [2, 2]])


def test_inplace_slots_record_and_check_versions():
    x = _leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x += 1
    h = x * 1
    h *= 3
    h.add_(1)
    assert h.grad_fn.name() == "AddBackward0"
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3])

    z = _leaf([1.0, 2.0])
    s = z.sin()
    w = s * s
    s += 1
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[mul\]"):
        w.sum().backward()


def test_node_slots_hooks_and_anomaly():
    x = _leaf([1.0, 2.0])
    y = x * 3
    node = y.grad_fn
    assert not hasattr(node, "__dict__") or "op" not in node.__dict__  # fields are slots
    assert node.next_functions[0][0].variable is x
    seen = []
    node.register_prehook(lambda grads: seen.append("pre"))
    node.register_hook(lambda gi, go: seen.append("post"))
    y.sum().backward()
    assert seen == ["pre", "post"]
    with ndgrad.detect_anomaly():
        z = x.log() - 1
    assert z.grad_fn.stack and any("test_record_paths" in line for line in z.grad_fn.stack)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def test_no_grad_skips_recording_on_fast_paths():
    x = _leaf([1.0])
    with ndgrad.no_grad():
        assert (x + 1).grad_fn is None and x.float().grad_fn is None and (-x).grad_fn is None
    with ndgrad.inference_mode():
        assert not (x * 2).requires_grad
