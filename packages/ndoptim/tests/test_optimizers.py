"""Every optimizer's update against a NumPy reference of its rule and, when installed, against torch.

Trajectories run 50 steps on a small deterministic problem (a quadratic plus a tiny tanh MLP
written with plain tensor ops, including a 0-d parameter); parameters are compared after every
step.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndoptim
from _refs import REFS

# (optimizer, options): every optimizer with its main option combinations.
CASES = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "amsgrad": True}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.02, "maximize": True, "amsgrad": True}),
    ("AdamW", {"lr": 0.05}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}),
    ("NAdam", {"lr": 0.05}),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.02, "maximize": True}),
    ("RAdam", {"lr": 0.05}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("Adamax", {"lr": 0.05}),
    ("Adamax", {"lr": 0.05, "weight_decay": 0.1, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1, "alpha": 0.9}),
    ("RMSprop", {"lr": 0.01, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "maximize": True, "eps": 1e-6}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.1, "rho": 0.5}),
    ("Adadelta", {"maximize": True}),
    ("Rprop", {}),
    ("Rprop", {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2), "maximize": True}),
    ("ASGD", {"lr": 0.05}),
    ("ASGD", {"lr": 0.05, "lambd": 1e-2, "alpha": 0.5, "t0": 10, "weight_decay": 0.1}),
    ("ASGD", {"lr": 0.02, "t0": 0, "maximize": True}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items()) or 'defaults'}" for name, opts in CASES]
SHAPES = [(3, 4), (5,), ()]


def _grads(seed, steps):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,opts", CASES, ids=IDS)
def test_matches_numpy_reference(name, opts, dtype):
    """Fed the same gradients, 50 steps track the NumPy rule (to float64 or float32 rounding)."""
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in SHAPES]
    params = [nd.tensor(a, dtype=getattr(nd, dtype), requires_grad=True) for a in init]
    opt = getattr(ndoptim, name)(params, **opts)
    ref = [a.copy() for a in init]
    ref_state = [{} for _ in SHAPES]
    tol = {"rtol": 1e-9, "atol": 1e-11} if dtype == "float64" else {"rtol": 2e-4, "atol": 2e-5}
    for step, grads in enumerate(_grads(2, 50)):
        for p, g in zip(params, grads):
            p.grad = nd.tensor(g, dtype=getattr(nd, dtype))
        opt.step()
        for r, g, st in zip(ref, grads, ref_state):
            REFS[name](r, g.astype(dtype).astype(np.float64), st, **opts)
        for p, r in zip(params, ref):
            np.testing.assert_allclose(p.detach().numpy(), r, **tol, err_msg=f"step {step}")


def _problem(lib, dtype, seed=0):
    """Parameters and loss of a quadratic plus a tiny tanh MLP, built the same way for nd and torch."""
    rng = np.random.default_rng(seed)
    arrays = {"q": rng.standard_normal(4), "W1": 0.5 * rng.standard_normal((3, 5)), "b1": 0.1 * rng.standard_normal(5),
              "W2": 0.5 * rng.standard_normal((5, 2)), "b2": np.array(0.3)}
    data = {"A": rng.standard_normal((6, 4)), "c": rng.standard_normal(6), "x": rng.standard_normal((8, 3)),
            "y": rng.standard_normal((8, 2))}
    dt = getattr(lib, dtype)
    params = {k: lib.tensor(v, dtype=dt, requires_grad=True) for k, v in arrays.items()}
    d = {k: lib.tensor(v, dtype=dt) for k, v in data.items()}

    def loss():
        quad = ((d["A"] @ params["q"] - d["c"]) ** 2).sum() * 0.1
        h = (d["x"] @ params["W1"] + params["b1"]).tanh()
        return quad + ((h @ params["W2"] + params["b2"] - d["y"]) ** 2).mean()

    return list(params.values()), loss


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,opts", CASES, ids=IDS)
def test_matches_torch_trajectory(name, opts, dtype):
    """50 steps of training a small problem follow torch.optim's trajectory, step by step."""
    torch = pytest.importorskip("torch")
    p_nd, loss_nd = _problem(nd, dtype)
    p_t, loss_t = _problem(torch, dtype)
    o_nd, o_t = getattr(ndoptim, name)(p_nd, **opts), getattr(torch.optim, name)(p_t, **opts)
    # float64 is the tight check; in float32, 1-ulp differences (FMA, BLAS sums in the backward)
    # near sign changes of the gradient get amplified by the adaptive denominators
    tol = {"rtol": 1e-8, "atol": 1e-10} if dtype == "float64" else {"rtol": 1e-3, "atol": 1e-3}
    sign = -1 if opts.get("maximize") else 1  # maximize -f: a stable problem, so rounding does not blow up
    for step in range(50):
        for o, f in ((o_nd, loss_nd), (o_t, loss_t)):
            o.zero_grad()
            (sign * f()).backward()
            o.step()
        for a, b in zip(p_nd, p_t):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **tol, err_msg=f"step {step}")
    # same state layout and values as torch's (what a user inspects or loads)
    s_nd, s_t = o_nd.state_dict(), o_t.state_dict()
    assert s_nd["param_groups"] == s_t["param_groups"]
    assert s_nd["state"].keys() == s_t["state"].keys()
    for i, st in s_t["state"].items():
        assert list(s_nd["state"][i]) == list(st), f"state keys of param {i}"
        for key, value in st.items():
            if dtype == "float64":  # normalized buffers (g / sqrt(v)) are too sensitive in float32
                np.testing.assert_allclose(np.asarray(s_nd["state"][i][key].numpy()), value.numpy(), **tol,
                                           err_msg=key)
            assert s_nd["state"][i][key].dtype.name == str(value.dtype).replace("torch.", ""), key


def test_closure_loss_and_adam_closure_under_grad():
    params, loss = _problem(nd, "float64")
    opt = ndoptim.Adam(params, lr=0.01)

    def closure():
        opt.zero_grad()
        out = loss()
        out.backward()  # needs autograd on inside step
        return out

    first = opt.step(closure)
    second = opt.step(closure)
    assert float(second) < float(first)


def test_lbfgs_matches_torch():
    torch = pytest.importorskip("torch")
    for line_search in (None, "strong_wolfe"):
        p_nd, loss_nd = _problem(nd, "float64")
        p_t, loss_t = _problem(torch, "float64")
        kw = {"lr": 0.5, "history_size": 5, "max_iter": 10, "line_search_fn": line_search}
        o_nd, o_t = ndoptim.LBFGS(p_nd, **kw), torch.optim.LBFGS(p_t, **kw)

        def closure(o, f):
            def run():
                o.zero_grad()
                out = f()
                out.backward()
                return out
            return run

        for step in range(5):
            l_nd, l_t = o_nd.step(closure(o_nd, loss_nd)), o_t.step(closure(o_t, loss_t))
            np.testing.assert_allclose(float(l_nd), float(l_t.detach()), rtol=1e-7)
            for a, b in zip(p_nd, p_t):
                np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-8,
                                           err_msg=f"{line_search} step {step}")
        st_nd, st_t = o_nd.state[p_nd[0]], o_t.state[p_t[0]]
        assert (st_nd["func_evals"], st_nd["n_iter"]) == (st_t["func_evals"], st_t["n_iter"])
        assert sorted(st_nd) == sorted(st_t) and len(st_nd["al"]) == len(st_t["al"]) == 5


def test_lbfgs_minimizes_quadratic_without_torch():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((6, 6))
    a_np = m @ m.T + 6 * np.eye(6)
    b_np = rng.standard_normal(6)
    a, b = nd.tensor(a_np), nd.tensor(b_np)
    x = nd.zeros(6, dtype=nd.float64, requires_grad=True)
    opt = ndoptim.LBFGS([x], line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x @ (a @ x)) - b @ x
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(x.detach().numpy(), np.linalg.solve(a_np, b_np), rtol=1e-6)
    with pytest.raises(ValueError, match="per-parameter options"):
        ndoptim.LBFGS([{"params": [x]}, {"params": [nd.zeros(2, requires_grad=True)]}])


def _row_sparse_grads(seed, steps, shape=(6, 3)):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        g = rng.standard_normal(shape)
        g[rng.random(shape[0]) < 0.5] = 0.0  # untouched rows, as an embedding's sparse gradient
        out.append(g)
    return out


@pytest.mark.parametrize("maximize", [False, True])
def test_sparse_adam_updates_only_touched_rows(maximize):
    init = np.random.default_rng(3).standard_normal((6, 3))
    p = nd.tensor(init, requires_grad=True)
    opt = ndoptim.SparseAdam([p], lr=0.05, maximize=maximize)
    ref, st = init.copy(), {}
    for g in _row_sparse_grads(4, 30):
        before = p.detach().numpy().copy()
        p.grad = nd.tensor(g)
        opt.step()
        REFS["SparseAdam"](ref, g, st, lr=0.05, maximize=maximize)
        untouched = ~np.any(g != 0, axis=1)
        np.testing.assert_array_equal(p.detach().numpy()[untouched], before[untouched])
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-10, atol=1e-12)
    assert opt.state[p]["step"] == 30


def test_sparse_adam_matches_torch_sparse_gradients():
    torch = pytest.importorskip("torch")
    init = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    a, b = nd.tensor(init, requires_grad=True), torch.tensor(init, requires_grad=True)
    oa, ob = ndoptim.SparseAdam([a], lr=0.05), torch.optim.SparseAdam([b], lr=0.05)
    for g in _row_sparse_grads(5, 50):
        a.grad = nd.tensor(g, dtype=nd.float32)
        b.grad = torch.tensor(g, dtype=torch.float32).to_sparse(1)
        oa.step()
        ob.step()
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_params_update_in_float32_math(dtype):
    """16-bit params: the update computes in float32 and rounds once into the parameter."""
    init = np.linspace(-1, 1, 12).reshape(3, 4)
    g = 1 + 0.5 * np.cos(np.arange(12.0)).reshape(3, 4)  # no underflow of g**2 * (1 - beta2) in 16 bits
    p = nd.tensor(init, dtype=getattr(nd, dtype), requires_grad=True)
    opt = ndoptim.Adam([p], lr=0.01)
    ref, st = p.detach().to(nd.float64).numpy().copy(), {}
    for _ in range(5):
        p.grad = nd.tensor(g, dtype=getattr(nd, dtype))
        opt.step()
        REFS["Adam"](ref, p.grad.to(nd.float64).numpy(), st, lr=0.01)
    assert p.dtype == getattr(nd, dtype) and opt.state[p]["exp_avg"].dtype == getattr(nd, dtype)
    np.testing.assert_allclose(p.detach().to(nd.float64).numpy(), ref, atol=2e-2 if dtype == "bfloat16" else 2e-3)


def test_non_contiguous_params_and_grads():
    base = nd.tensor(np.arange(24.0).reshape(4, 6) / 10, requires_grad=True)
    with __import__("ndgrad").no_grad():
        view = base.detach().t()  # a strided view, shares storage with base
    view.requires_grad_(True)
    g = nd.tensor(np.ones((4, 6)) * 0.5).t()
    view.grad = g
    expected = view.detach().numpy().copy()
    ref_st = {}
    REFS["SGD"](expected, g.numpy(), ref_st, lr=0.1, momentum=0.9)
    ndoptim.SGD([view], lr=0.1, momentum=0.9).step()
    np.testing.assert_allclose(view.detach().numpy(), expected)
    np.testing.assert_allclose(base.detach().numpy(), expected.T)
