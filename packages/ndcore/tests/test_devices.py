"""The dispatcher's device registry, exercised with the NumPy-backed fake device, and the debug
modes riding on the dispatcher's hooks (debug_nans, broadcast policy, requires_grad without
autograd)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing import OPDB, register_fake_device
from ndcore.testing.opdb import to_np

OPS = {op.name: op for op in OPDB}


@pytest.fixture(autouse=True)
def _restore_modes():
    yield
    nd.set_broadcast_policy("allow")
    nd.debug_nans(False)


@pytest.fixture(scope="module")
def fake():
    return register_fake_device()


def _pair(shape=(3, 4), seed=0, dtype=np.float32):
    a = np.random.default_rng(seed).uniform(-2, 2, size=shape).astype(dtype)
    return a, nd.tensor(a)


def _close(out, expected, name):
    assert out.is_cpu
    np.testing.assert_allclose(to_np(out), expected, *OPS[name].tol(out.dtype.name))


def test_to_fake_and_back(fake):
    a, x = _pair()
    f = x.to("fake")
    assert not f.is_cpu and f.device.type == "fake" and f.device.index == 0
    assert str(f.device) == "fake:0" and f.device == nd.device("fake:0") and f.device == nd.device("fake", 0)
    assert f.dtype == x.dtype and f.shape == x.shape
    back = f.cpu()
    assert back.is_cpu and str(back.device) == "cpu"
    np.testing.assert_array_equal(to_np(back), a)
    assert f.to("fake") is f and x.to("cpu") is x
    assert str(x.to("fake:1").device) == "fake:1"
    assert nd.ones(2, device="fake").device == nd.device("fake:0")
    assert f.to(nd.float64).dtype == nd.float64 and f.to(nd.float64).device.type == "fake"
    assert "fake" in nd.devices.device_types() and nd.devices.device_count("fake") == fake.count
    assert "device='fake:0'" in repr(f)


@pytest.mark.parametrize("name", ["add", "mul", "sub", "div", "exp", "neg", "sum", "sum_dim", "mean", "amax", "matmul",
                                  "mm", "clone"])
def test_fake_math_equals_cpu(fake, name):
    a, x = _pair(seed=1)
    b, y = _pair(seed=2)
    calls = {
        "add": lambda p, q: p + q, "mul": lambda p, q: nd.mul(p, q), "sub": lambda p, q: p.sub(q),
        "div": lambda p, q: p / q, "exp": lambda p, q: p.exp(), "neg": lambda p, q: -p,
        "sum": lambda p, q: p.sum(), "sum_dim": lambda p, q: p.sum(1, keepdim=True), "mean": lambda p, q: p.mean(0),
        "amax": lambda p, q: p.amax(1), "matmul": lambda p, q: p @ q.t(), "mm": lambda p, q: nd.mm(p, q.t()),
        "clone": lambda p, q: p.clone(),
    }
    before = len(fake.ops_run)
    out = calls[name](x.to("fake"), y.to("fake"))
    assert out.device == nd.device("fake:0")
    assert len(fake.ops_run) > before  # the backend ran it, not the CPU kernels
    op = {"sum_dim": "sum", "clone": "add"}.get(name, name)
    _close(out.cpu(), to_np(calls[name](x, y)), op)


def test_python_scalars_and_cpu_0d_mix_with_fake(fake):
    a, x = _pair(seed=3)
    f = x.to("fake")
    _close((f + 1).cpu(), a + 1, "add")
    _close((2.5 * f).cpu(), 2.5 * a, "mul")
    _close((f - nd.tensor(0.5)).cpu(), a - 0.5, "sub")  # a 0-d CPU tensor joins like a scalar (torch)
    assert (f * 2).device.type == "fake"


@pytest.mark.parametrize("order", ["fake_cpu", "cpu_fake"])
def test_mixing_devices_raises_naming_op_and_devices(fake, order):
    _, x = _pair()
    f = x.to("fake")
    args = (f, x) if order == "fake_cpu" else (x, f)
    with pytest.raises(RuntimeError, match=r"\[add\].*(fake:0.*cpu|cpu.*fake:0)"):
        nd.add(*args)
    with pytest.raises(RuntimeError, match=r"\[mul\].*fake:0.*cpu|\[mul\].*cpu.*fake:0"):
        args[0] * args[1]
    with pytest.raises(RuntimeError, match=r"\[add\].*fake:0.*fake:1"):
        f + x.to("fake:1")


def test_views_on_fake(fake):
    a, x = _pair((4, 6), seed=4)
    f = x.to("fake")
    cases = [(f.t(), a.T), (f[1], a[1]), (f[:, 1::2], a[:, 1::2]), (f.view(6, 4), a.reshape(6, 4)),
             (f.unsqueeze(0), a[None]), (f[None, :, 2], a[None, :, 2]), (f.permute(1, 0)[2:], a.T[2:])]
    for view, expected in cases:
        assert view.device.type == "fake" and view._is_view_of(f)
        np.testing.assert_array_equal(to_np(view.cpu()), expected)
    _close((f.t() + 1).cpu(), a.T + 1, "add")
    _close((f[:, ::2] * f[:, 1::2]).cpu(), a[:, ::2] * a[:, 1::2], "mul")
    assert f[1, 2].item() == a[1, 2] and f.tolist() == a.tolist()
    with pytest.raises(TypeError, match="cpu"):
        f.numpy()


@pytest.mark.parametrize("name", ["erf", "cumsum", "argmax"])
def test_op_missing_on_fake_raises(fake, name):
    f = nd.ones(3).to("fake")
    call = {"erf": lambda: f.erf(), "cumsum": lambda: f.cumsum(0), "argmax": lambda: f.argmax()}[name]
    with pytest.raises(NotImplementedError, match=rf"\[{name}\].*fake"):
        call()


def test_unknown_device_lists_registered(fake):
    for spec in ("gpu", "nope:0"):
        with pytest.raises(ValueError, match=r"cpu.*fake"):
            nd.ones(2).to(spec)
        with pytest.raises(ValueError, match=spec.split(":")[0]):
            nd.device(spec)


def test_register_device_validates_backend():
    with pytest.raises(TypeError, match="register_device"):
        nd.register_device("broken", object())


NAN_MAKERS = [("log", lambda: nd.tensor([-1.0]).log()), ("div", lambda: nd.zeros(2) / 0),
              ("div", lambda: nd.tensor([0.0]) / 0.0), ("sqrt", lambda: nd.tensor([-1.0]).sqrt()),
              ("exp", lambda: nd.tensor([1000.0]).exp())]


@pytest.mark.parametrize(("name", "make"), NAN_MAKERS, ids=["log", "x/0", "0/0", "sqrt", "exp_overflow"])
def test_debug_nans_raises_naming_op(name, make):
    nd.debug_nans(True)
    with pytest.raises(FloatingPointError, match=rf"'{name}'"):
        make()
    nd.debug_nans(False)
    assert not np.isfinite(to_np(make())).all()  # off again: NaN/inf flows through


def test_debug_nans_leaves_finite_and_int_ops_alone():
    with nd.debug_nans():
        assert nd.tensor([1.0, 2.0]).log().shape == (2,)
        assert (nd.tensor([1, 2]) // 0).tolist() == [0, 0]  # integer results are never NaN
        assert nd.zeros(0).log().numel() == 0


def test_debug_nans_is_scoped():
    with nd.debug_nans():
        with pytest.raises(FloatingPointError, match="log"):
            nd.tensor([-1.0]).log()
    assert np.isnan(nd.tensor([-1.0]).log().item())  # off after the block


def test_debug_nans_block_restores_enclosing_state():
    nd.debug_nans(True)
    with nd.debug_nans():
        pass
    with pytest.raises(FloatingPointError):  # still on: the block restores the mode it found
        nd.tensor([-1.0]).log()
    with nd.debug_nans(False):
        assert np.isnan(nd.tensor([-1.0]).log().item())
    with pytest.raises(FloatingPointError):
        nd.tensor([-1.0]).log()


def test_debug_nans_as_decorator_only_applies_inside():
    @nd.debug_nans()
    def f():
        return nd.tensor([-1.0]).log()

    assert np.isnan(nd.tensor([-1.0]).log().item())  # decorating alone must not switch it on
    with pytest.raises(FloatingPointError):
        f()
    assert np.isnan(nd.tensor([-1.0]).log().item())


def test_broadcast_policy_raise_warn_allow():
    assert nd.get_broadcast_policy() == "allow"
    nd.set_broadcast_policy("raise")
    with pytest.raises(ValueError, match=r"\[add\].*\(4, 1\).*\(4,\)"):
        nd.ones(4, 1) + nd.ones(4)
    with pytest.raises(ValueError, match=r"\[mul\].*\(3,\).*\(2, 3\)"):
        nd.mul(nd.ones(3), nd.ones(2, 3))
    # same rank, scalars and 0-d tensors never promote a rank
    assert (nd.ones(4, 3) + nd.ones(1, 3)).shape == (4, 3)
    assert (nd.ones(4, 3) + 1).shape == (4, 3) and (nd.ones(4, 3) * nd.tensor(2.0)).shape == (4, 3)
    nd.set_broadcast_policy("warn")
    assert nd.get_broadcast_policy() == "warn"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = nd.ones(4, 1) + nd.ones(4)
    assert out.shape == (4, 4)
    assert len(caught) == 1 and "(4, 1)" in str(caught[0].message) and "(4,)" in str(caught[0].message)
    nd.set_broadcast_policy("allow")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (nd.ones(4, 1) + nd.ones(4)).shape == (4, 4)
    with pytest.raises(ValueError, match="allow"):
        nd.set_broadcast_policy("sometimes")


def test_broadcast_warning_points_at_the_callers_line():
    nd.set_broadcast_policy("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nd.ones(4, 1) + nd.ones(4)
        nd.add(nd.ones(4, 1), nd.ones(4))
    assert [w.filename for w in caught] == [__file__, __file__]


def test_requires_grad_without_autograd_mentions_ndgrad():
    if nd._C._has_autograd():  # ndgrad was imported by another package's tests in this process
        assert nd.ones(2, requires_grad=True).requires_grad
        return
    with pytest.raises((ValueError, RuntimeError), match="ndgrad"):
        nd.ones(2, requires_grad=True)
    with pytest.raises((ValueError, RuntimeError), match="ndgrad"):
        nd.zeros(3).requires_grad_()
    assert not nd._C._has_autograd()


def test_tensor_requiring_grad_moves_to_fake(fake):
    pytest.importorskip("ndgrad")
    x = nd.ones(3, requires_grad=True)
    f = x.to("fake")
    assert f.requires_grad and f.device.type == "fake"
    np.testing.assert_array_equal(to_np(f.cpu().detach()), np.ones(3, np.float32))
