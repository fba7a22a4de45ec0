"""Learning-rate schedulers: closed forms, torch's lr (and momentum) sequences, warnings, state."""
from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest

import ndcore as nd
import ndoptim
from ndoptim import lr_scheduler as S


def _opt(kind="sgd", lr=0.1, groups=1):
    ps = [nd.zeros(2, requires_grad=True) for _ in range(groups)]
    params = [{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)]
    return ndoptim.SGD(params, lr=lr, momentum=0.9) if kind == "sgd" else ndoptim.Adam(params, lr=lr)


def _run(sched, opt, steps=50, metric=None):
    """The lrs (and momentum / beta1) of every group after each of `steps` epochs."""
    out = []
    for i in range(steps):
        opt.step()
        sched.step(metric(i)) if metric else sched.step()
        row = []
        for g in opt.param_groups:
            row.append(float(g["lr"]))
            if "momentum" in g:
                row.append(g["momentum"])
            else:
                row.append(g["betas"][0])
        out.append(row)
    return np.array(out)


# name -> (factory over a scheduler module and optimizer, optimizer kind, metric or None)
CASES = {
    "StepLR": (lambda M, o: M.StepLR(o, step_size=7, gamma=0.5), "sgd", None),
    "MultiStepLR": (lambda M, o: M.MultiStepLR(o, milestones=[5, 5, 20, 33], gamma=0.3), "sgd", None),
    "ExponentialLR": (lambda M, o: M.ExponentialLR(o, gamma=0.93), "sgd", None),
    "CosineAnnealingLR": (lambda M, o: M.CosineAnnealingLR(o, T_max=12, eta_min=0.001), "sgd", None),
    "CosineAnnealingWarmRestarts": (lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-3),
                                    "sgd", None),
    "CyclicLR-triangular": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=4, step_size_down=6), "sgd", None),
    "CyclicLR-triangular2": (lambda M, o: M.CyclicLR(o, [0.01, 0.02], 0.1, step_size_up=5, mode="triangular2"),
                             "sgd", None),
    "CyclicLR-exp_range-adam": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, 5, mode="exp_range", gamma=0.97), "adam",
                                None),
    "CyclicLR-no-momentum": (lambda M, o: M.CyclicLR(o, 0.01, 0.1, 3, cycle_momentum=False), "sgd", None),
    "OneCycleLR-cos": (lambda M, o: M.OneCycleLR(o, max_lr=0.5, total_steps=60), "sgd", None),
    "OneCycleLR-linear-3phase-adam": (lambda M, o: M.OneCycleLR(o, max_lr=[0.5, 0.3], epochs=6, steps_per_epoch=10,
                                                                 anneal_strategy="linear", three_phase=True,
                                                                 pct_start=0.25), "adam", None),
    "LinearLR": (lambda M, o: M.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=10), "sgd", None),
    "ConstantLR": (lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=4), "sgd", None),
    "LambdaLR": (lambda M, o: M.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.9 ** e]), "sgd", None),
    "MultiplicativeLR": (lambda M, o: M.MultiplicativeLR(o, lambda e: 0.97), "sgd", None),
    "PolynomialLR": (lambda M, o: M.PolynomialLR(o, total_iters=20, power=2.0), "sgd", None),
    "SequentialLR": (lambda M, o: M.SequentialLR(o, [M.LinearLR(o, 0.1, 1.0, 5), M.ExponentialLR(o, 0.9),
                                                     M.CosineAnnealingLR(o, 10)], milestones=[5, 20]), "sgd", None),
    "ChainedScheduler": (lambda M, o: M.ChainedScheduler([M.ConstantLR(o, 0.5, 4), M.ExponentialLR(o, 0.95)]),
                         "sgd", None),
    "ReduceLROnPlateau-min-rel": (lambda M, o: M.ReduceLROnPlateau(o, patience=2, cooldown=1, min_lr=[1e-3, 2e-3]),
                                  "sgd", lambda i: 1.0 / (1 + min(i, 10))),
    "ReduceLROnPlateau-max-abs": (lambda M, o: M.ReduceLROnPlateau(o, "max", 0.5, patience=1, threshold=0.1,
                                                                   threshold_mode="abs", eps=1e-4),
                                  "sgd", lambda i: math.sin(i)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_sequence(name):
    torch = pytest.importorskip("torch")
    make, kind, metric = CASES[name]
    ours = _opt(kind, groups=2)
    sched = make(S, ours)
    ps = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    groups = [{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(ps)]
    theirs = torch.optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "sgd" else torch.optim.Adam(groups, lr=0.1)
    tsched = make(torch.optim.lr_scheduler, theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own deprecation chatter
        want = _run(tsched, theirs, metric=metric)
    got = _run(sched, ours, metric=metric)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert sched.get_last_lr() == tsched.get_last_lr()


def test_closed_forms_without_torch():
    t = np.arange(1, 41)
    cases = [
        (lambda o: S.StepLR(o, 7, 0.5), 0.1 * 0.5 ** (t // 7)),
        (lambda o: S.MultiStepLR(o, [5, 20], 0.3), 0.1 * 0.3 ** ((t >= 5).astype(int) + (t >= 20))),
        (lambda o: S.ExponentialLR(o, 0.93), 0.1 * 0.93 ** t),
        (lambda o: S.CosineAnnealingLR(o, 40, 0.001), 0.001 + (0.1 - 0.001) * (1 + np.cos(np.pi * t / 40)) / 2),
        (lambda o: S.LinearLR(o, 0.2, 0.9, 10), 0.1 * (0.2 + 0.7 * np.minimum(t, 10) / 10)),
        (lambda o: S.ConstantLR(o, 0.5, 4), 0.1 * np.where(t >= 4, 1.0, 0.5)),
        (lambda o: S.PolynomialLR(o, 20, 2.0), 0.1 * (1 - np.minimum(t, 20) / 20) ** 2),
        (lambda o: S.LambdaLR(o, lambda e: 1 / (1 + e)), 0.1 / (1 + t)),
        (lambda o: S.MultiplicativeLR(o, lambda e: 0.97), 0.1 * 0.97 ** t),
        (lambda o: S.CosineAnnealingWarmRestarts(o, 10), 0.1 * (1 + np.cos(np.pi * (t % 10) / 10)) / 2),
        (lambda o: S.CyclicLR(o, 0.01, 0.1, 5, cycle_momentum=False),
         0.01 + 0.09 * (1 - np.abs((t % 10) / 5 - 1))),
    ]
    for make, want in cases:
        opt = _opt()
        got = _run(make(opt), opt, steps=40)[:, 0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_one_cycle_endpoints_and_momentum():
    opt = _opt("adam")
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=100, pct_start=0.3, div_factor=10, final_div_factor=100)
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"][0]) == pytest.approx((0.1, 0.95))
    rows = _run(sched, opt, steps=99)
    assert rows[28, 0] == pytest.approx(1.0) and rows[28, 1] == pytest.approx(0.85)  # peak at step 29
    assert rows[-1, 0] == pytest.approx(0.1 / 100) and rows[-1, 1] == pytest.approx(0.95)
    opt.step()
    with pytest.raises(ValueError, match="Tried to step 101 times"):
        sched.step()
        sched.step()


def test_reduce_on_plateau_script():
    opt = _opt()
    sched = S.ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1, min_lr=0.02)
    lrs = []
    for m in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    # improve, improve; 2 bad -> halve; cooldown eats one; 2 bad -> halve; ...; floor at min_lr
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
    for _ in range(6):
        sched.step(0.9)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        S.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        S.ReduceLROnPlateau(opt, mode="avg")


def test_warns_when_scheduler_steps_before_optimizer():
    opt = _opt()
    sched = S.StepLR(opt, 3)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt = _opt()
    sched = S.StepLR(opt, 3)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
    assert hasattr(opt.step, "_wrapped_by_lr_sched") and opt._opt_called


def test_skipped_step_marked_by_grad_scaler_does_not_warn():
    """nd's GradScaler sets optimizer._step_skipped when it skips an inf/NaN step: no warning."""
    opt = _opt()
    sched = S.ExponentialLR(opt, 0.5)
    opt._step_skipped = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()


def test_skipped_step_with_real_grad_scaler():
    amp = pytest.importorskip("ndnn.amp")
    p = nd.ones(2, requires_grad=True)
    opt = ndoptim.SGD([p], lr=0.1)
    sched = S.StepLR(opt, 1)
    scaler = amp.GradScaler(init_scale=2.0 ** 16)
    p.grad = nd.tensor([float("inf"), 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the scaler's own "skipped" notice
        scaler.step(opt)
    scaler.update()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sched.step()
    np.testing.assert_array_equal(p.detach().numpy(), [1.0, 1.0])


def test_warns_when_optimizer_step_replaced():
    opt = _opt()
    sched = S.StepLR(opt, 3)
    opt.step = lambda closure=None: None
    with pytest.warns(UserWarning, match="has been overridden"):
        sched.step()


def test_get_lr_outside_step_warns_and_epoch_argument_is_deprecated():
    opt = _opt()
    sched = S.StepLR(opt, 3, gamma=0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(7)  # closed form
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)


def test_initial_lr_and_resume():
    opt = _opt()
    S.ExponentialLR(opt, 0.5)
    assert opt.param_groups[0]["initial_lr"] == 0.1
    with pytest.raises(KeyError, match="initial_lr"):
        S.ExponentialLR(_opt(), 0.5, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 3)


def test_scheduler_state_dict_round_trip():
    opt = _opt()
    sched = S.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        sched.step()
    sd = pickle.loads(pickle.dumps(sched.state_dict()))
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    opt2 = _opt()
    opt2.load_state_dict(opt.state_dict())
    sched2 = S.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(sd)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(3):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
    assert sched.get_last_lr() == sched2.get_last_lr()
    seq = S.SequentialLR(opt, [S.ConstantLR(opt, 0.5, 2), S.ExponentialLR(opt, 0.9)], [2])
    sd = seq.state_dict()
    assert len(sd["_schedulers"]) == 2 and "optimizer" not in sd["_schedulers"][0]
    lam = S.LambdaLR(_opt(), lambda e: 1.0)
    assert lam.state_dict()["lr_lambdas"] == [None]


def test_tensor_lr_is_filled_in_place():
    p = nd.zeros(2, requires_grad=True)
    lr = nd.tensor(0.1, dtype=nd.float64)
    opt = ndoptim.Adam([p], lr=lr)
    sched = S.ExponentialLR(opt, 0.5)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.05)
    assert opt.param_groups[0]["initial_lr"] is not lr


def test_composites_validate_children():
    opt = _opt()
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        S.SequentialLR(opt, [S.ConstantLR(opt), S.ReduceLROnPlateau(opt)], [2])
    with pytest.raises(ValueError, match="one more than the number of milestone points"):
        S.SequentialLR(opt, [S.ConstantLR(opt), S.ExponentialLR(opt, 0.9)], [2, 3])
    with pytest.raises(ValueError, match="belong to the same optimizer"):
        S.ChainedScheduler([S.ConstantLR(opt), S.ExponentialLR(_opt(), 0.9)])
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(ndoptim.Adagrad([nd.zeros(2, requires_grad=True)]), max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="total_steps OR"):
        S.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="positive integer T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
