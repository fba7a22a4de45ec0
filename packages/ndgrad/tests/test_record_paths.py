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


# ---- nodes ndcore builds itself (Note [Autograd fast recorder]) --------------------------------
from ndcore import _C  # noqa: E402
from ndgrad import _engine  # noqa: E402


def _graph_signature(t):
    """Names and edge structure of the graph behind t, plus the saved values' versions."""
    seen, out, stack = set(), [], [t.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        saved = getattr(n, "saved", None)
        vers = None
        if saved:
            vers = ([None if s is None else (s.name, s.version, s.out_nr) for s in saved["inputs"]],
                    None if saved["results"] is _engine._NO_RESULTS
                    else [None if s is None else (s.name, s.version, s.out_nr) for s in saved["results"]])
        out.append((n.name(), [None if f is None else f.name() for f, _ in n.next_functions],
                    [nr for _, nr in n.next_functions], getattr(n, "needs", None),
                    getattr(n, "attrs", None), getattr(n, "out_meta", None), vers))
        stack.extend(f for f, _ in n.next_functions)
    return out


def _program(x, w):
    a = (x @ w).sigmoid() * x.sum(1, keepdim=True)      # result-reading and input-reading formulas
    values, _ = a.max(1)                                   # two outputs, one integer
    parts = a.split(1, dim=1)                              # list output
    b = nd.cat([p * 2 for p in parts], 1)                  # list input: the Python recorder
    return (values.exp().sum() + b.tanh().mean() + a.clamp(min=0.3).pow(2).sum(), a)


def test_fast_nodes_match_python_recorder():
    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    results = []
    for fast in (True, False):
        if not fast:
            _C._set_autograd_fast_recorder(None)
        try:
            x, w = _leaf(xv), _leaf(wv)
            loss, a = _program(x, w)
            sig = _graph_signature(loss)
            loss.backward()
            results.append((sig, x.grad.numpy(), w.grad.numpy(), a.grad_fn.seq > x.grad_fn.seq if x.grad_fn else None))
        finally:
            _engine.install_fast_recorder()
    (sig_f, gx_f, gw_f, _), (sig_p, gx_p, gw_p, _) = results
    assert sig_f == sig_p
    np.testing.assert_array_equal(gx_f, gx_p)
    np.testing.assert_array_equal(gw_f, gw_p)


def test_fast_nodes_check_versions_of_inputs_and_results():
    x = _leaf([0.5, 1.0])
    h = x * 1
    y = h.sigmoid()          # reads its result
    z = h * h                # reads its inputs
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"\[sigmoid\] input 'result'.*version 1; expected version 0"):
        y.sum().backward()
    h.mul_(2)
    with pytest.raises(RuntimeError, match=r"\[mul\] input '(self|other)'.*expected version 0"):
        z.sum().backward()


def test_fast_recorder_gives_way_to_saved_tensor_hooks_and_anomaly():
    packed = []
    x = _leaf([1.0, 2.0])
    with ndgrad.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = (x * x).sum()
    assert sum(p is x for p in packed) == 2  # mul's two inputs went through the pack hook
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    with ndgrad.detect_anomaly():
        z = x.sin()
    assert z.grad_fn.stack  # the forward stack anomaly mode reports
    assert (x.cos()).grad_fn.stack is None


def test_fast_recorder_sees_a_reregistered_formula():
    x = _leaf([1.0, 2.0])
    (x.sin()).sum().backward()  # records sin through the fast path first
    old = _engine.FORMULAS["sin"]
    calls = []

    def formula(grads, inputs, attrs, results, needs):
        calls.append(1)
        return (grads[0] * 7,)

    try:
        ndgrad.register_formula("sin", formula, ["self"])
        x.grad = None
        x.sin().sum().backward()
        assert calls == [1]
        np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])
    finally:
        _engine.FORMULAS["sin"] = old
    x.grad = None
    x.sin().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos([1.0, 2.0]))


def test_node_order_is_shared_with_python_nodes():
    class Double(ndgrad.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = _leaf([1.0])
    a = x.exp()
    b = Double.apply(a)
    c = b.sin()
    assert a.grad_fn.seq < b.grad_fn.seq < c.grad_fn.seq


def test_fast_recorder_rejects_unslotted_classes():
    class NoSlots:
        pass

    with pytest.raises(TypeError, match="not a __slots__ member"):
        _C._set_autograd_fast_recorder((NoSlots, _engine._Saved, {}, [], {}, lambda op: (None,), (None,)))
    _engine.install_fast_recorder()
    x = _leaf([1.0])
    assert x.exp().grad_fn is not None
