"""The Optimizer base: groups, state, state_dict round trips, hooks, zero_grad, errors, and the
multi-tensor kernels' contract (version bumps, not recorded by autograd)."""
from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndoptim


def _params(seed=0, shapes=((3, 2), (2,)), dtype=nd.float64):
    rng = np.random.default_rng(seed)
    return [nd.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in shapes]


def _set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = nd.tensor(rng.standard_normal(tuple(p.shape)), dtype=p.dtype)


def test_param_groups_fill_defaults_and_keep_group_options():
    a, b = _params()
    opt = ndoptim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.9}], lr=0.1)
    g0, g1 = opt.param_groups
    assert g0["params"] == [a] and g1["params"][0] is b
    assert (g0["lr"], g0["momentum"], g1["lr"], g1["momentum"]) == (0.1, 0, 0.5, 0.9)
    assert set(g0) == {"params", "lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach",
                       "differentiable", "fused"}
    assert "Parameter Group 1" in repr(opt) and "lr: 0.5" in repr(opt)


def test_group_lr_is_used_per_group():
    a, b = _params()
    opt = ndoptim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a0, b0 = a.detach().numpy().copy(), b.detach().numpy().copy()
    a.grad, b.grad = nd.ones(3, 2, dtype=nd.float64), nd.ones(2, dtype=nd.float64)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), a0 - 0.1)
    np.testing.assert_allclose(b.detach().numpy(), b0 - 1.0)


def test_named_parameters_record_param_names():
    a, b = _params()
    opt = ndoptim.Adam([("w", a), ("b", b)])
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [nd.zeros(2, requires_grad=True)]})


def test_add_param_group_and_errors():
    a, b = _params()
    opt = ndoptim.Adam([a], lr=0.01)
    opt.add_param_group({"params": [b], "lr": 0.1})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999) and opt.param_groups[1]["lr"] == 0.1
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([a])
    with pytest.raises(TypeError, match="ordered collections"):
        ndoptim.SGD([{"params": {a}}], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        ndoptim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        ndoptim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        ndoptim.SGD([a, 3.0], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        ndoptim.SGD([a * 2], lr=0.1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        ndoptim.SGD([b, b], lr=0.1)


@pytest.mark.parametrize("make,match", [
    (lambda p: ndoptim.SGD(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: ndoptim.SGD(p, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda p: ndoptim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (lambda p: ndoptim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: ndoptim.Adam(p, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda p: ndoptim.AdamW(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (lambda p: ndoptim.Adam(p, weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda p: ndoptim.NAdam(p, momentum_decay=-1), "Invalid momentum_decay value: -1"),
    (lambda p: ndoptim.RMSprop(p, alpha=-1), "Invalid alpha value: -1"),
    (lambda p: ndoptim.Adagrad(p, lr_decay=-1), "Invalid lr_decay value: -1"),
    (lambda p: ndoptim.Adadelta(p, rho=1.5), "Invalid rho value: 1.5"),
    (lambda p: ndoptim.SparseAdam(p, lr=0.0), "Invalid learning rate: 0.0"),
    (lambda p: ndoptim.Adam(p, lr=nd.tensor([0.1, 0.2])), "Tensor lr must be 1-element"),
    (lambda p: ndoptim.Rprop(p, etas=(1.2, 0.5)), "Invalid eta values: 1.2, 0.5"),
    (lambda p: ndoptim.ASGD(p, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
])
def test_hyperparameter_validation_matches_torch(make, match):
    with pytest.raises(ValueError, match=match):
        make(_params())


def test_flag_rules():
    p = _params()
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        ndoptim.Adam(p, fused=True, foreach=True)
    with pytest.raises(NotImplementedError, match=r"\[Adam\] differentiable=True"):
        ndoptim.Adam(p, differentiable=True)
    opt = ndoptim.AdamW(p, fused=True, capturable=True)  # accepted; always the fused kernel
    _set_grads(p, 1)
    opt.step()
    assert opt.state[p[0]]["step"].item() == 1


def test_adamw_defaults_like_torch():
    opt = ndoptim.AdamW(_params())
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["decoupled_weight_decay"], g["betas"], g["eps"]) == (1e-3, 1e-2, True,
                                                                                              (0.9, 0.999), 1e-8)
    assert ndoptim.SGD(_params()).param_groups[0]["lr"] == 1e-3


def test_lr_as_tensor():
    a, b = _params()
    opt = ndoptim.Adam([a], lr=nd.tensor(0.01))
    ref = ndoptim.Adam([b], lr=0.01)
    a.grad = nd.ones(3, 2, dtype=nd.float64)
    b.grad = nd.ones(2, dtype=nd.float64)
    opt.step()
    ref.step()
    np.testing.assert_allclose(opt.state[a]["exp_avg"].numpy(), 0.1)


def test_zero_grad_set_to_none_or_zero():
    p = _params()
    opt = ndoptim.SGD(p, lr=0.1)
    _set_grads(p, 0)
    grads = [q.grad for q in p]
    opt.zero_grad(set_to_none=False)
    for q, g in zip(p, grads):
        assert q.grad is g and not q.grad.numpy().any()
    opt.zero_grad()
    assert all(q.grad is None for q in p)


def test_params_without_grad_are_skipped_and_get_no_state():
    a, b = _params()
    opt = ndoptim.Adam([a, b], lr=0.1)
    b0 = b.detach().numpy().copy()
    a.grad = nd.ones(3, 2, dtype=nd.float64)
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), b0)
    assert b not in opt.state and opt.state[a]["step"].item() == 1


def test_sgd_momentum_buffer_starts_when_param_first_gets_grad():
    a, b = _params()
    opt = ndoptim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = nd.ones(3, 2, dtype=nd.float64)
    opt.step()
    b.grad = nd.full((2,), 2.0, dtype=nd.float64)
    opt.step()  # a's buffer continues, b's starts as a copy of its gradient
    np.testing.assert_allclose(opt.state[a]["momentum_buffer"].numpy(), 1.9)
    np.testing.assert_allclose(opt.state[b]["momentum_buffer"].numpy(), 2.0)
    assert "momentum_buffer" not in ndoptim.SGD([a], lr=0.1).state[a]


def test_step_bumps_versions_and_is_not_recorded():
    p = _params()
    opt = ndoptim.Adam(p, lr=0.1, amsgrad=True)
    _set_grads(p, 0)
    versions = [q._version for q in p]
    opt.step()  # grad mode on outside: the step still runs without recording
    assert all(q._version > v for q, v in zip(p, versions))
    assert all(q.is_leaf and q.grad_fn is None and q.requires_grad for q in p)
    st = opt.state[p[1]]
    before = {k: st[k]._version for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step")}
    _set_grads(p, 1)
    opt.step()
    assert all(st[k]._version > v for k, v in before.items())
    # a graph that saved a parameter now sees it was modified in place
    loss = (p[1] * p[1]).sum()
    _set_grads(p, 2)
    opt.step()
    with pytest.raises(Exception, match="modified by an inplace operation|version"):
        loss.backward()


def test_kernel_errors_name_the_op():
    from ndcore import _C
    a, b = _params()
    with pytest.raises(ValueError, match=r"\[_fused_adam_\] grads\[0\] has shape \(2,\) but params\[0\] has shape"):
        _C._fused_adam_([a], [b], [nd.zeros(3, 2, dtype=nd.float64)], [nd.zeros(3, 2, dtype=nd.float64)], [],
                        [nd.tensor(0.0)], lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8, amsgrad=False,
                        maximize=False)
    with pytest.raises(TypeError, match=r"exp_avgs\[0\] has dtype float32 but its parameter is float64"):
        _C._fused_adam_([a], [a], [nd.zeros(3, 2)], [nd.zeros(3, 2, dtype=nd.float64)], [], [nd.tensor(0.0)],
                        lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
    i = nd.zeros(3, dtype=nd.int64)
    i.grad = nd.zeros(3, dtype=nd.int64)
    with pytest.raises(TypeError, match=r"\[_fused_sgd_\] expected floating point params"):
        ndoptim.SGD([i], lr=0.1).step()


def _train(opt, params, seeds):
    for s in seeds:
        _set_grads(params, s)
        opt.step()


@pytest.mark.parametrize("make", [
    lambda p: ndoptim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: ndoptim.Adam(p, lr=0.1, amsgrad=True),
    lambda p: ndoptim.NAdam(p, lr=0.1),
    lambda p: ndoptim.RMSprop(p, lr=0.1, centered=True, momentum=0.5),
    lambda p: ndoptim.Adagrad(p, lr=0.1),
    lambda p: ndoptim.SparseAdam(p, lr=0.1),
    lambda p: ndoptim.Rprop(p, lr=0.1),
    lambda p: ndoptim.ASGD(p, lr=0.1, t0=1),
], ids=["SGD", "Adam", "NAdam", "RMSprop", "Adagrad", "SparseAdam", "Rprop", "ASGD"])
def test_state_dict_round_trip_resumes_identically(make):
    # float32 params: loading casts floating state to the param dtype (torch's policy), which
    # would turn NAdam's float32 mu_product into float64 for float64 params
    p1, p2 = _params(0, dtype=nd.float32), _params(0, dtype=nd.float32)
    o1 = make(p1)
    _train(o1, p1, [1, 2, 3])
    sd = o1.state_dict()
    assert sorted(sd["state"]) == [0, 1] and sd["param_groups"][0]["params"] == [0, 1]
    sd = pickle.loads(pickle.dumps(sd))  # plain dicts of tensors and numbers only
    for a, b in zip(p2, p1):
        with ndgrad.no_grad():
            a.copy_(b)
    o2 = make(p2)
    o2.load_state_dict(sd)
    _train(o1, p1, [4, 5])
    _train(o2, p2, [4, 5])
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_state_dict_round_trips_through_nd_save(tmp_path):
    serialization = pytest.importorskip("ndnn.serialization")
    p = _params()
    opt = ndoptim.Adam(p, lr=0.1)
    _train(opt, p, [1, 2])
    serialization.save(opt.state_dict(), tmp_path / "opt.pt")
    loaded = serialization.load(tmp_path / "opt.pt")
    opt2 = ndoptim.Adam(_params(), lr=0.5)
    opt2.load_state_dict(loaded)
    assert opt2.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(opt2.state[opt2.param_groups[0]["params"][0]]["exp_avg"].numpy(),
                                  opt.state[p[0]]["exp_avg"].numpy())


def test_load_state_dict_casts_state_and_keeps_step_dtype():
    a = nd.zeros(3, dtype=nd.float32, requires_grad=True)
    opt = ndoptim.Adam([a])
    sd = {"state": {0: {"step": nd.tensor(4.0), "exp_avg": nd.ones(3, dtype=nd.float64),
                        "exp_avg_sq": nd.ones(3, dtype=nd.float64)}},
          "param_groups": [dict(opt.state_dict()["param_groups"][0], lr=0.25)]}
    opt.load_state_dict(sd)
    st = opt.state[a]
    assert st["exp_avg"].dtype == nd.float32 and st["step"].dtype == nd.float32
    assert opt.param_groups[0]["lr"] == 0.25 and opt.param_groups[0]["params"][0] is a
    legacy = copy.deepcopy(sd)
    legacy["state"][0]["step"] = 7  # older checkpoints kept step as a number
    opt.load_state_dict(legacy)
    assert isinstance(opt.state[a]["step"], nd.Tensor) and opt.state[a]["step"].item() == 7
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    bad = copy.deepcopy(sd)
    bad["param_groups"][0]["params"] = [0, 1]
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(bad)


def test_loads_a_torch_state_dict_converted_to_nd():
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    t = torch.tensor(w, requires_grad=True)
    ot = torch.optim.Adam([t], lr=0.05)
    for s in range(3):
        t.grad = torch.tensor(np.random.default_rng(s).standard_normal((3, 2)).astype(np.float32))
        ot.step()
    sd = ot.state_dict()
    conv = {"state": {k: {n: nd.tensor(v.numpy()) for n, v in st.items()} for k, st in sd["state"].items()},
            "param_groups": sd["param_groups"]}
    a = nd.tensor(t.detach().numpy(), requires_grad=True)
    on = ndoptim.Adam([a], lr=0.05)
    on.load_state_dict(conv)
    g = np.random.default_rng(9).standard_normal((3, 2)).astype(np.float32)
    t.grad, a.grad = torch.tensor(g), nd.tensor(g)
    ot.step()
    on.step()
    np.testing.assert_allclose(a.detach().numpy(), t.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_step_hooks_and_state_dict_hooks():
    p = _params()
    opt = ndoptim.SGD(p, lr=0.1)
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    h2 = opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    hg = ndoptim.register_optimizer_step_pre_hook(lambda o, args, kwargs: calls.append("global"))
    _set_grads(p, 0)
    opt.step()
    assert calls == ["global", "pre", "post"]
    h1.remove()
    h2.remove()
    hg.remove()
    opt.step()
    assert calls == ["global", "pre", "post"]
    opt.register_state_dict_pre_hook(lambda o: calls.append("sd-pre"))
    opt.register_state_dict_post_hook(lambda o, sd: dict(sd, extra=1))
    assert opt.state_dict()["extra"] == 1 and calls[-1] == "sd-pre"
    seen = []
    opt.register_load_state_dict_pre_hook(lambda o, sd: seen.append("load-pre"))
    opt.register_load_state_dict_post_hook(lambda o: seen.append("load-post"), prepend=True)
    opt.load_state_dict(opt.state_dict())
    assert seen == ["load-pre", "load-post"]


def test_pre_hook_can_replace_step_args():
    p = _params()
    opt = ndoptim.SGD(p, lr=0.1)
    _set_grads(p, 0)
    opt.register_step_pre_hook(lambda o, args, kwargs: (args, {"closure": lambda: 42.0}))
    assert opt.step() == 42.0


def test_optimizer_pickles_and_deepcopies():
    p = _params()
    opt = ndoptim.Adam(p, lr=0.1)
    _train(opt, p, [1])
    clone = copy.deepcopy(opt)
    assert clone.param_groups[0]["lr"] == 0.1 and len(clone.state) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(pickle.dumps(opt)).step()


def test_foreach_list_ops_match_numpy():
    from ndcore import _C
    rng = np.random.default_rng(0)
    xs = [np.asarray(rng.standard_normal(s)) for s in [(40000,), (3, 5), ()]]
    ys = [np.asarray(rng.standard_normal(x.shape)) for x in xs]
    zs = [np.asarray(rng.random(x.shape) + 0.5) for x in xs]
    t = lambda arrs: [nd.tensor(a) for a in arrs]  # noqa: E731
    for fn, ref in [
        (lambda a: _C._foreach_add_(a, t(ys), alpha=0.5), lambda x, y, z: x + 0.5 * y),
        (lambda a: _C._foreach_mul_(a, 3.0), lambda x, y, z: 3 * x),
        (lambda a: _C._foreach_lerp_(a, t(ys), 0.25), lambda x, y, z: x + 0.25 * (y - x)),
        (lambda a: _C._foreach_lerp_(a, t(ys), 0.75), lambda x, y, z: y - (y - x) * 0.25),
        (lambda a: _C._foreach_addcmul_(a, t(ys), t(zs), value=2.0), lambda x, y, z: x + 2 * y * z),
        (lambda a: _C._foreach_addcdiv_(a, t(ys), t(zs), value=-1.0), lambda x, y, z: x - y / z),
        (lambda a: _C._foreach_copy_(a, t(ys)), lambda x, y, z: y),
        (lambda a: _C._foreach_zero_(a), lambda x, y, z: 0 * x),
    ]:
        a = t(xs)
        v = [q._version for q in a]
        fn(a)
        for q, x, y, z, v0 in zip(a, xs, ys, zs, v):
            np.testing.assert_allclose(q.numpy(), ref(x, y, z), rtol=1e-12, atol=1e-12)
            assert q._version > v0
    for ord_, ref in [(2, lambda x: np.linalg.norm(x.ravel())), (1, lambda x: np.abs(x).sum()),
                      (float("inf"), lambda x: np.abs(x).max()), (3, lambda x: (np.abs(x) ** 3).sum() ** (1 / 3))]:
        np.testing.assert_allclose(_C._foreach_norm(t(xs), ord_).numpy(), [ref(x) for x in xs], rtol=1e-10)
    with pytest.raises(ValueError, match=r"\[_foreach_add_\] expected other to have 3 tensors"):
        _C._foreach_add_(t(xs), t(ys[:2]))
    with pytest.raises(ValueError, match="non-empty list"):
        _C._foreach_zero_([])
