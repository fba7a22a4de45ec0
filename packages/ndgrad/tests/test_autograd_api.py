"""ndgrad's API: backward/grad semantics, Function, grad modes, hooks, in-place rules, errors,
higher-order and functional derivatives, anomaly detection, and the C++ extension boundary."""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

import ndcore as nd
import ndgrad
from ndgrad import Function, functional


def test_seed_grad_example():
    def f(x):
        return x ** 2 + x * 5 + 4

    x = nd.ones(1, requires_grad=True)
    (g,) = ndgrad.grad(f(x), x)
    assert g.tolist() == [7.0]


def test_seed_two_layer_net_matches_manual_gradients():
    nd.manual_seed(0)
    w1 = nd.randn(20, 8, dtype=nd.float64, requires_grad=True)
    w2 = nd.randn(8, 3, dtype=nd.float64, requires_grad=True)
    x, y = nd.randn(5, 20, dtype=nd.float64), nd.randn(5, 3, dtype=nd.float64)
    h = x.mm(w1)
    y_pred = h.clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    gy = 2 * (y_pred - y).detach()
    hr = h.detach().clamp(min=0)
    np.testing.assert_allclose(w2.grad.numpy(), (hr.t() @ gy).numpy(), rtol=1e-10)
    gh = (gy @ w2.detach().t()) * (h.detach() > 0)
    np.testing.assert_allclose(w1.grad.numpy(), (x.t() @ gh).numpy(), rtol=1e-10)
    # the seed's manual update through .data
    w1.data -= 1e-3 * w1.grad.data
    w1.grad.data.zero_()
    assert float(w1.grad.abs().sum()) == 0.0 and w1.is_leaf


def test_grads_accumulate_and_graph_is_freed():
    w = nd.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    assert w.grad.tolist() == [6.0, 6.0]
    y = (w * w).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = (w * w).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert w.grad.tolist() == [6.0 + 2 + 2 + 2, 6.0 + 4 + 4 + 4]


def test_backward_on_non_scalar_needs_gradient():
    x = nd.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(nd.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]


def test_grad_allow_unused_and_materialize():
    x, y = nd.ones(2, requires_grad=True), nd.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        ndgrad.grad((x * 2).sum(), [x, y])
    gx, gy = ndgrad.grad((x * 2).sum(), [x, y], allow_unused=True)
    assert gx.tolist() == [2.0, 2.0] and gy is None
    _, gy = ndgrad.grad((x * 2).sum(), [x, y], materialize_grads=True)
    assert gy.tolist() == [0.0, 0.0]
    assert x.grad is None  # grad() never touches .grad


def test_grad_of_intermediate_and_inputs_argument():
    x = nd.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    out = (h * 3).sum()
    (gh,) = ndgrad.grad(out, h, retain_graph=True)
    assert gh.tolist() == [3.0, 3.0]
    out.backward(inputs=[x])
    assert x.grad.tolist() == [6.0, 12.0]


def test_no_grad_enable_grad_set_grad_enabled_inference_mode():
    x = nd.ones(2, requires_grad=True)
    with ndgrad.no_grad():
        y = x * 2
        with ndgrad.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @ndgrad.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    with ndgrad.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    with ndgrad.inference_mode():
        assert not (x * 2).requires_grad and ndgrad.is_inference_mode_enabled()
    assert ndgrad.is_grad_enabled()


def test_inplace_rules():
    leaf = nd.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        leaf.add_(1)
    a = nd.ones(3, requires_grad=True)
    b = a * 2
    b.mul_(3)  # in-place on a non-leaf is recorded
    b.sum().backward()
    assert a.grad.tolist() == [6.0, 6.0, 6.0]
    x = nd.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.add_(1)  # modifies the output exp saved
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[exp\].*version"):
        y.sum().backward()


def test_inplace_saves_overwritten_value():
    x = nd.tensor([2.0, 3.0], requires_grad=True)
    y = x * 1
    y.mul_(y.detach() + 1)  # d/dy of y*(c) uses the old y only through c
    z = x * 1
    z.pow_(2)  # grad needs the value before the op: 2 * x
    (y.sum() + z.sum()).backward()
    assert x.grad.tolist() == [3.0 + 4.0, 4.0 + 6.0]


def test_hooks_and_retain_grad():
    x = nd.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x.register_hook(lambda g: seen.append(g.tolist()))
    y = x * 3
    y.retain_grad()
    y.register_hook(lambda g: g * 2)  # doubles what flows back
    y.sum().backward()
    assert y.grad.tolist() == [1.0, 1.0] or y.grad.tolist() == [2.0, 2.0]
    assert x.grad.tolist() == [6.0, 6.0] and seen == [[6.0, 6.0]]
    h.remove()
    node_calls = []
    z = x * 2
    z.grad_fn.register_hook(lambda gi, go: node_calls.append(len(gi)))
    z.sum().backward()
    assert node_calls == [2] and len(seen) == 1
    bad = x * 2
    bad.register_hook(lambda g: nd.ones(5))
    with pytest.raises(RuntimeError, match="shape"):
        bad.sum().backward()


class NormPdf(Function):
    """The seed's example: forward in NumPy/SciPy via from_numpy."""

    @staticmethod
    def forward(ctx, x, loc=0.0, scale=1.0):
        scipy_stats = pytest.importorskip("scipy.stats")
        y = nd.from_numpy(scipy_stats.norm.pdf(x, loc, scale))  # NumPy reads x through __array__
        ctx.loc, ctx.scale = loc, scale
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, y = ctx.saved_variables
        norm_x = (x - ctx.loc) / ctx.scale ** 2
        return -grad_y * y * norm_x, None, None


def test_function_normpdf_seed_example_gradcheck():
    norm_pdf = NormPdf.apply
    x = nd.tensor([-1.0, 0.3, 2.0], dtype=nd.float64, requires_grad=True)
    y = norm_pdf(x)
    assert y.grad_fn is not None and y.grad_fn.name() == "NormPdfBackward"
    assert ndgrad.gradcheck(lambda t: NormPdf.apply(t, 0.5, 1.0), (x,))


def test_function_ctx_features():
    class Scale(Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            assert ctx.needs_input_grad == (True, False)
            ctx.set_materialize_grads(False)
            return x * k, (x > 0)

        @staticmethod
        def backward(ctx, g, _unused):
            return g * ctx.k, None

    x = nd.tensor([1.0, -1.0], requires_grad=True)
    y, mask = Scale.apply(x, 4.0)
    assert not mask.requires_grad
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]


def test_higher_order_and_functional():
    x = nd.tensor([0.5, 1.5], dtype=nd.float64, requires_grad=True)
    (g,) = ndgrad.grad((x ** 3).sum(), x, create_graph=True)
    (gg,) = ndgrad.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.detach().numpy())
    f = lambda t: (t.sin() * t).sum()  # noqa: E731
    H = functional.hessian(f, x.detach())
    xv = x.detach().numpy()
    np.testing.assert_allclose(np.diag(H.numpy()), 2 * np.cos(xv) - xv * np.sin(xv), rtol=1e-10)
    J = functional.jacobian(lambda t: t * t, x.detach())
    np.testing.assert_allclose(J.numpy(), np.diag(2 * xv))
    v = nd.tensor([1.0, -1.0], dtype=nd.float64)
    _, jv = functional.jvp(lambda t: t * t, x.detach(), v)
    _, vj = functional.vjp(lambda t: t * t, x.detach(), v)
    np.testing.assert_allclose(jv.numpy(), 2 * xv * v.numpy())
    np.testing.assert_allclose(vj.numpy(), 2 * xv * v.numpy())
    _, hv = functional.hvp(f, x.detach(), v)
    np.testing.assert_allclose(hv.numpy(), (2 * np.cos(xv) - xv * np.sin(xv)) * v.numpy(), rtol=1e-10)


def test_detect_anomaly_names_forward_op():
    x = nd.tensor([0.0, 1.0], requires_grad=True)
    with ndgrad.detect_anomaly():
        y = x.sqrt()  # d/dx sqrt at 0 is inf
        with pytest.raises(RuntimeError, match=r"SqrtBackward0.*nan/inf(?s:.*)test_autograd_api.py"):
            y.sum().backward()


def test_gradcheck_reports_worst_entry():
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    x = nd.tensor([1.0, 2.0], dtype=nd.float64, requires_grad=True)
    with pytest.raises(ndgrad.GradcheckError, match=r"numerical: .*1\.99.*\nanalytical: .*3\.0"):
        ndgrad.gradcheck(Wrong.apply, (x,))


def test_graph_memory_does_not_grow():
    w = nd.randn(16, 16, requires_grad=True)
    x = nd.randn(4, 16)
    gc.collect()
    import tracemalloc

    tracemalloc.start()
    for i in range(2000):
        loss = (x @ w).tanh().sum()
        loss.backward()
        w.grad = None
        if i == 200:
            gc.collect()
            base = tracemalloc.get_traced_memory()[0]
    gc.collect()
    now = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert now - base < 200_000, f"Python memory grew by {now - base} bytes over 1800 steps"


def test_cpp_extension_ops_are_differentiable(tmp_path, monkeypatch):
    monkeypatch.setenv("ND_EXTENSIONS_DIR", str(tmp_path))
    from ndcore import cpp_extension

    src = Path(__file__).resolve().parents[3] / "examples" / "jacobi_extension.cpp"
    ext = cpp_extension.load(name="jacobi_grad_ext", sources=[str(src)])
    nd.manual_seed(0)
    A = nd.randn(6, 6, dtype=nd.float64) + 6 * nd.eye(6, dtype=nd.float64)
    b = nd.randn(6, dtype=nd.float64, requires_grad=True)
    x = ext.jacobi_solve(A, b, 200)
    assert x.grad_fn is not None
    (gb,) = ndgrad.grad(x.sum(), b)
    expected = np.linalg.solve(A.numpy().T, np.ones(6))  # A^-T 1
    np.testing.assert_allclose(gb.numpy(), expected, rtol=1e-8, atol=1e-10)


def test_register_formula_for_foreign_op():
    calls = []

    def formula(grads, inputs, attrs, results, needs):
        calls.append(True)
        return (grads[0] * 0,)

    ndgrad.register_formula("custom_op_for_test", formula, ["self"])
    assert "custom_op_for_test" in ndgrad._engine.FORMULAS
    del ndgrad._engine.FORMULAS["custom_op_for_test"]


def _views_program(lib):
    w = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    x = lib.zeros(4, 3)
    x[1] = w[0] * 2  # copy into a view of a tensor that did not require grad
    x[2:4] = w.sin()
    x[0, 1:] += w[1, :2] ** 2  # in-place through a view
    x[3].mul_(2.0)
    loss = (x * 1.5 * lib.arange(12.0).reshape(4, 3)).sum()
    loss.backward()
    return w.grad


def test_inplace_through_views_rebases_the_graph():
    g = _views_program(nd)
    # closed form: d/dw of the program above
    w = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    c = 1.5 * np.arange(12.0).reshape(4, 3)
    expected = np.zeros((2, 3))
    expected[0] += 2 * c[1]
    expected += np.cos(w) * c[2:4] * np.array([[1.0], [2.0]])
    expected[1, :2] += 2 * w[1, :2] * c[0, 1:]
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-6)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(g.numpy(), _views_program(torch).numpy(), rtol=1e-6)


def test_saved_view_modified_through_base_raises_like_torch():
    w = nd.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    x = nd.zeros(4, 3)
    x[2:4] = w.sin()
    x[2].div_(x[2].norm())  # norm saved x[2]; div_ then rewrites it (torch raises here too)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        x.sum().backward()
    leaf = nd.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf"):
        leaf[1:].mul_(2)


def test_checkpoint_matches_plain_backward_and_saves_nothing():
    from ndgrad.checkpoint import checkpoint

    nd.manual_seed(0)
    w1 = nd.randn(6, 6, dtype=nd.float64, requires_grad=True)
    w2 = nd.randn(6, 6, dtype=nd.float64, requires_grad=True)
    x = nd.randn(3, 6, dtype=nd.float64)

    def block(h):
        return (h @ w1).tanh().sigmoid() @ w2

    block(x).sum().backward()
    ref1, ref2 = w1.grad.clone(), w2.grad.clone()
    w1.grad = w2.grad = None
    calls = []

    def counted(h):
        calls.append(1)
        return block(h)

    y = checkpoint(counted, x, use_reentrant=False)
    assert len(calls) == 1
    y.sum().backward()
    assert len(calls) == 2  # recomputed once in backward
    np.testing.assert_allclose(w1.grad.numpy(), ref1.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w2.grad.numpy(), ref2.numpy(), rtol=1e-12)
    g1, = ndgrad.grad(checkpoint(block, x, use_reentrant=False).sum(), w1)
    np.testing.assert_allclose(g1.numpy(), ref1.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="non-reentrant"):
        checkpoint(block, x, use_reentrant=True)


def test_saved_tensors_hooks_see_every_saved_tensor():
    from ndgrad.graph import saved_tensors_hooks

    packed = []
    x = nd.tensor([1.0, 2.0], requires_grad=True)
    with saved_tensors_hooks(lambda t: packed.append(tuple(t.shape)) or t, lambda t: t):
        y = (x.exp() * x).sum()
    y.backward()
    assert packed and x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))), rtol=1e-6)


def test_function_returning_its_input_gets_its_own_node():
    class TimesThreeGrad(ndgrad.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 3

    x = nd.ones(3, requires_grad=True)
    y = TimesThreeGrad.apply(x)
    assert y is not x and x.grad_fn is None and y.grad_fn is not None
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0, 3.0]


def test_deepcopy_keeps_leaves_grads_and_shared_tensors():
    import copy

    w = nd.ones(3, requires_grad=True)
    (w * 2).sum().backward()
    tied = copy.deepcopy({"a": w, "b": w})
    assert tied["a"] is tied["b"] and tied["a"] is not w
    assert tied["a"].requires_grad and tied["a"].is_leaf and tied["a"].grad.tolist() == [2.0, 2.0, 2.0]
    with ndgrad.no_grad():
        tied["a"].add_(1)
    assert w.tolist() == [1.0, 1.0, 1.0]  # independent storage
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(w * 2)


def test_only_outputs_a_formula_reads_are_version_checked():
    """native_batch_norm's formula reads save_mean/save_invstd, not its output: an in-place op on
    the output (torchvision's ReLU(inplace=True) after BatchNorm) must not trip the check, while
    writing to a saved output still must."""
    x = nd.randn(4, 3, 5, dtype=nd.float64, requires_grad=True)
    w = nd.ones(3, dtype=nd.float64, requires_grad=True)
    out, mean, invstd = nd.native_batch_norm(x, w, None, None, None, True, 0.1, 1e-5)
    out.relu_()
    out.sum().backward()
    assert x.grad is not None and w.grad is not None
    out, mean, invstd = nd.native_batch_norm(x, w, None, None, None, True, 0.1, 1e-5)
    with ndgrad.no_grad():
        invstd.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
