"""Mixed precision: autocast's op lists, nesting and gradients; GradScaler against torch's."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import ndcore as nd
import ndgrad
from ndnn import amp


class TinySGD:
    """A minimal optimizer with torch's duck type (param_groups, step)."""

    def __init__(self, params, lr=0.1):
        self.param_groups = [{"params": list(params), "lr": lr}]
        self.steps = 0

    def step(self):
        self.steps += 1
        with ndgrad.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p -= group["lr"] * p.grad
        return "stepped"


def _inputs(seed=0):
    r = np.random.default_rng(seed)
    return {k: nd.tensor(r.standard_normal(s).astype(np.float32)) for k, s in
            (("x", (4, 8)), ("w", (8, 8)), ("b3", (2, 4, 8)), ("w3", (2, 8, 8)), ("v", (8,)))}


LOWER = {
    "mm": lambda t: nd.mm(t["x"], t["w"]),
    "matmul": lambda t: t["x"] @ t["w"],
    "bmm": lambda t: nd.bmm(t["b3"], t["w3"]),
    "addmm": lambda t: nd.addmm(t["v"], t["x"], t["w"]),
    "baddbmm": lambda t: nd.baddbmm(t["b3"], t["b3"], t["w3"]),
    "conv2d": lambda t: nd.conv2d(t["b3"].reshape(2, 1, 4, 8), t["w3"][:, :3, :3].reshape(2, 1, 3, 3)),
}
FP32 = {
    "nll_loss": lambda t: nd.nll_loss(t["x"].to(nd.bfloat16), nd.tensor([0, 1, 2, 3])),
    "cross_entropy_loss": lambda t: nd.cross_entropy_loss(t["x"].to(nd.bfloat16), nd.tensor([0, 1, 2, 3])),
    "binary_cross_entropy": lambda t: nd.binary_cross_entropy(t["x"].sigmoid().to(nd.bfloat16), t["x"].sigmoid().to(nd.bfloat16)),
    "binary_cross_entropy_with_logits": lambda t: nd.binary_cross_entropy_with_logits(t["x"].to(nd.bfloat16), t["x"].sigmoid()),
    "prod": lambda t: t["x"].to(nd.bfloat16).prod(),
    "cdist": lambda t: nd.cdist(t["x"].to(nd.bfloat16), t["x"].to(nd.bfloat16)),
}
UNLISTED = {  # neither list on CPU (as torch): the input dtype is kept
    "softmax": lambda t: t["x"].to(nd.bfloat16).softmax(-1),
    "softmax32": lambda t: t["x"].softmax(-1),
    "layer_norm": lambda t: nd.layer_norm(t["x"].to(nd.bfloat16), [8]),
    "exp": lambda t: t["x"].to(nd.bfloat16).exp(),
    "sum": lambda t: t["x"].to(nd.bfloat16).sum(),
}
PROMOTE = {
    "cat": lambda t: nd.cat([t["x"], t["x"].to(nd.bfloat16)]),
    "stack": lambda t: nd.stack([t["x"], t["x"].to(nd.bfloat16)]),
}


@pytest.mark.parametrize("name", sorted(LOWER))
def test_lower_precision_ops(name):
    if name == "conv2d" and not hasattr(nd, "conv2d"):
        pytest.skip("no conv2d in this ndcore")
    t = _inputs()
    with amp.autocast("cpu"):
        assert LOWER[name](t).dtype == nd.bfloat16
    with amp.autocast("cpu", dtype=nd.float16):
        assert LOWER[name](t).dtype == nd.float16
    assert LOWER[name](t).dtype == nd.float32
    with amp.autocast():
        t64 = {k: v.double() for k, v in t.items()}
        assert LOWER[name](t64).dtype == nd.float64  # float64 is never cast


def test_fp32_unlisted_and_promote_ops():
    t = _inputs()
    with amp.autocast():
        for name, fn in FP32.items():
            assert fn(t).dtype == nd.float32, name
        for name, fn in UNLISTED.items():
            assert fn(t).dtype == (nd.float32 if name == "softmax32" else nd.bfloat16), name
        for name, fn in PROMOTE.items():
            assert fn(t).dtype == nd.float32, name


def test_output_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(1)
    x, w = r.standard_normal((4, 8)).astype(np.float32), r.standard_normal((8, 8)).astype(np.float32)
    cases = [
        (lambda m, a, b: m.mm(a, b), lambda a: a), (lambda m, a, b: a.double() @ b.double(), lambda a: a),
        (lambda m, a, b: (a @ b).softmax(-1), lambda a: a), (lambda m, a, b: m.cat([a, (a @ b)]), lambda a: a),
        (lambda m, a, b: (a @ b).prod(), lambda a: a), (lambda m, a, b: (a @ b).exp(), lambda a: a),
    ]
    for fn, _ in cases:
        with amp.autocast():
            mine = fn(nd, nd.tensor(x), nd.tensor(w)).dtype
        with torch.autocast("cpu"):
            theirs = fn(torch, torch.tensor(x), torch.tensor(w)).dtype
        assert str(mine).split(".")[-1] == str(theirs).split(".")[-1]
    with amp.autocast():
        mine = nd.cross_entropy_loss(nd.tensor(x) @ nd.tensor(w), nd.tensor([0, 1, 2, 3])).dtype
    with torch.autocast("cpu"):
        theirs = torch.nn.functional.cross_entropy(torch.tensor(x) @ torch.tensor(w), torch.tensor([0, 1, 2, 3])).dtype
    assert mine == nd.float32 and theirs == torch.float32


def test_nesting_disabled_decorator_and_threads():
    t = _inputs()
    assert not amp.is_autocast_enabled()
    with amp.autocast():
        assert amp.is_autocast_enabled() and amp.get_autocast_dtype("cpu") == nd.bfloat16
        with amp.autocast(enabled=False):
            assert not amp.is_autocast_enabled() and LOWER["mm"](t).dtype == nd.float32
            with amp.autocast(dtype=nd.float16):
                assert LOWER["mm"](t).dtype == nd.float16
            assert LOWER["mm"](t).dtype == nd.float32
        assert LOWER["mm"](t).dtype == nd.bfloat16
        seen = []
        th = threading.Thread(target=lambda: seen.append(LOWER["mm"](t).dtype))  # state is per thread
        th.start()
        th.join()
        assert seen == [nd.float32]
    assert not amp.is_autocast_enabled() and LOWER["mm"](t).dtype == nd.float32

    @amp.autocast()
    def run(a, b):
        return a @ b

    assert run(t["x"], t["w"]).dtype == nd.bfloat16 and not amp.is_autocast_enabled()
    with pytest.raises(ZeroDivisionError):  # the state is restored when the body raises
        with amp.autocast():
            1 / 0
    assert not amp.is_autocast_enabled()
    with pytest.warns(UserWarning, match="Disabling autocast"):
        ctx = amp.autocast(dtype=nd.float64)
    with ctx:
        assert not amp.is_autocast_enabled()
    with pytest.raises(ValueError, match="unknown device type"):
        amp.autocast("tpu")


def test_gradients_reach_float32_parameters():
    r = np.random.default_rng(2)
    x = nd.tensor(r.standard_normal((16, 8)).astype(np.float32))
    target = nd.tensor(r.integers(0, 4, 16))
    w0, b0 = r.standard_normal((8, 4)).astype(np.float32) * 0.3, r.standard_normal(4).astype(np.float32)
    w, b = nd.tensor(w0, requires_grad=True), nd.tensor(b0, requires_grad=True)
    with amp.autocast():
        logits = nd.addmm(b, x, w)
        assert logits.dtype == nd.bfloat16
        loss = nd.cross_entropy_loss(logits, target)
        assert loss.dtype == nd.float32
    loss.backward()
    assert w.grad.dtype == nd.float32 and b.grad.dtype == nd.float32
    w32, b32 = nd.tensor(w0, requires_grad=True), nd.tensor(b0, requires_grad=True)
    nd.cross_entropy_loss(nd.addmm(b32, x, w32), target).backward()
    np.testing.assert_allclose(w.grad.numpy(), w32.grad.numpy(), rtol=0.05, atol=0.01)  # bfloat16 forward
    np.testing.assert_allclose(b.grad.numpy(), b32.grad.numpy(), rtol=0.05, atol=0.01)


# ---- GradScaler ------------------------------------------------------------------------------------
def _model(seed=3):
    r = np.random.default_rng(seed)
    return [nd.tensor(r.standard_normal((3, 2)).astype(np.float32), requires_grad=True),
            nd.tensor(r.standard_normal(2).astype(np.float32), requires_grad=True)]


def _run_scaler(lib, scaler_cls, bad_steps, n_steps=7):
    """Trains the tiny model; on bad_steps an inf is injected into the loss. Returns the scale
    after each update, the optimizer's step count and the final parameters."""
    r = np.random.default_rng(4)
    xs = r.standard_normal((n_steps, 5, 3)).astype(np.float32)
    params = [lib.tensor(p.detach().numpy(), requires_grad=True) for p in _model()]
    if lib is nd:
        opt = TinySGD(params, lr=0.05)
    else:
        import torch

        opt = torch.optim.SGD(params, lr=0.05)
    scaler = scaler_cls("cpu", init_scale=256.0, growth_factor=2.0, backoff_factor=0.25, growth_interval=2)
    scales = []
    for i in range(n_steps):
        for p in params:
            p.grad = None
        loss = ((lib.tensor(xs[i]) @ params[0] + params[1]) ** 2).mean()
        if i in bad_steps:
            loss = loss * float("inf")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, [p.detach().numpy() for p in params], scaler


def test_grad_scaler_backoff_and_growth():
    with pytest.warns(RuntimeWarning, match="skipped optimizer.step"):
        scales, params, scaler = _run_scaler(nd, amp.GradScaler, bad_steps={2, 5})
    assert scales == [256.0, 512.0, 128.0, 128.0, 256.0, 64.0, 64.0]
    assert scaler._get_growth_tracker() == 1
    assert all(np.isfinite(p).all() for p in params)


def test_grad_scaler_matches_torch():
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = _run_scaler(nd, amp.GradScaler, bad_steps={0, 3, 4})
        theirs = _run_scaler(torch, torch.amp.GradScaler, bad_steps={0, 3, 4})
    assert mine[0] == theirs[0]
    for a, b in zip(mine[1], theirs[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert mine[2].state_dict() == theirs[2].state_dict()


def test_grad_scaler_skip_is_recorded_and_warned_once():
    params = _model()
    opt = TinySGD(params)
    scaler = amp.GradScaler(init_scale=4.0)
    for p in params:
        p.grad = nd.full(p.shape, float("nan"))
    with pytest.warns(RuntimeWarning, match="inf or NaN"):
        assert scaler.step(opt) is None
    assert opt.steps == 0 and opt._step_skipped is True
    scaler.update()
    assert scaler.get_scale() == 2.0
    for p in params:
        p.grad = nd.full(p.shape, float("inf"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second skip does not warn again
        scaler.step(opt)
    scaler.update()
    for p in params:
        p.grad = nd.ones(p.shape) * 2.0
    scaler.unscale_(opt)
    np.testing.assert_allclose(params[0].grad.numpy(), 2.0)  # 2 / scale 1.0
    assert scaler.step(opt) == "stepped" and opt.steps == 1 and opt._step_skipped is False
    with pytest.raises(RuntimeError, match="already been called since the last update"):
        scaler.step(opt)
    scaler.update()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="closure"):
        scaler.step(opt, closure=lambda: 0)


def test_grad_scaler_state_dict_disabled_and_manual_scale():
    scaler = amp.GradScaler(init_scale=8.0, growth_interval=3)
    sd = scaler.state_dict()
    assert sd == {"scale": 8.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3, "_growth_tracker": 0}
    other = amp.GradScaler()
    other.load_state_dict({**sd, "scale": 32.0, "_growth_tracker": 2})
    assert other.get_scale() == 32.0 and other._get_growth_tracker() == 2 and other.get_growth_interval() == 3
    loss = nd.tensor(1.5)
    assert other.scale(loss).item() == 48.0
    assert [t.item() for t in other.scale([loss, loss])] == [48.0, 48.0]
    other.update(new_scale=4.0)
    assert other.get_scale() == 4.0
    off = amp.GradScaler(enabled=False)
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {} and not off.is_enabled()
    opt = TinySGD(_model())
    assert off.step(opt) == "stepped"
    with pytest.raises(RuntimeError, match="empty"):
        other.load_state_dict({})
    with pytest.raises(ValueError, match="growth_factor"):
        amp.GradScaler(growth_factor=0.5)
    torch = pytest.importorskip("torch")
    other.load_state_dict(torch.amp.GradScaler("cpu", init_scale=16.0).state_dict())
    assert other.get_scale() == 16.0


def test_amp_kernels_directly():
    found, inv = nd.zeros(1), nd.full((1,), 0.5)
    a = nd.ones(4, 6)
    b = nd.full((6, 4), 4.0).t()  # non-contiguous grads are unscaled in place too
    nd._amp_foreach_non_finite_check_and_unscale_([a, b], found, inv)
    assert found.item() == 0.0 and (a.numpy() == 0.5).all() and (b.numpy() == 2.0).all()
    c = nd.tensor([1.0, float("nan")], dtype=nd.bfloat16)
    nd._amp_foreach_non_finite_check_and_unscale_([a, c], found, inv)
    assert found.item() == 1.0 and c[0].item() == 0.5
    scale, tracker = nd.full((1,), 3e38), nd.zeros(1, dtype=nd.int32)
    nd._amp_update_scale_(scale, tracker, nd.zeros(1), 2.0, 0.5, 1)
    assert scale.item() == pytest.approx(3e38, rel=1e-6) and tracker.item() == 0  # growth would overflow float32
    nd._amp_update_scale_(scale, tracker, nd.ones(1), 2.0, 0.5, 1)
    assert scale.item() == pytest.approx(1.5e38, rel=1e-6)


def test_grad_scaler_with_ndoptim():
    ndoptim = pytest.importorskip("ndoptim")
    params = _model()
    opt = ndoptim.SGD(params, lr=0.1)
    scaler = amp.GradScaler(init_scale=2.0 ** 10)
    before = params[0].detach().numpy().copy()
    total = params[0].sum() + params[1].sum()
    (scaler.scale(total ** 2)).backward()
    scaler.step(opt)
    scaler.update()
    expected = before - 0.1 * 2 * float(total.item())  # d(total^2)/dp = 2 * total, unscaled
    np.testing.assert_allclose(params[0].detach().numpy(), expected, rtol=1e-5)


# ---- modules and functionals whose fused kernels compute in float32 under autocast -------------
def _rnn_cases():
    import ndnn

    return [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("LSTM", {"proj_size": 2}),
            ("LSTM", {"num_layers": 2, "bidirectional": True}), ("GRU", {"num_layers": 2, "batch_first": True})], ndnn


def _dtype_name(t):
    return str(t.dtype).split(".")[-1]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("fed", ["float32", "bfloat16", "packed"])
def test_recurrent_layers_under_autocast_match_torch_dtypes_and_values(fed):
    """Recurrent layers run in their weights' dtype with autocast suspended and round their
    results to the dtype torch's take (bfloat16 for LSTM on padded input and RNN; GRU and a
    packed LSTM stay float32 unless fed bfloat16); the values are the float32 results rounded."""
    torch = pytest.importorskip("torch")
    from ndnn.utils.rnn import pack_padded_sequence

    cases, ndnn = _rnn_cases()
    r = np.random.default_rng(2)
    for kind, kw in cases:
        nd.manual_seed(0)
        m = getattr(ndnn, kind)(4, 3, **kw)
        tm = getattr(torch.nn, kind)(4, 3, **kw)
        x = r.standard_normal((2, 5, 4) if kw.get("batch_first") else (5, 2, 4)).astype(np.float32)

        def run(lib, module, a):
            if fed == "packed":
                if lib is torch:
                    return module(torch.nn.utils.rnn.pack_padded_sequence(a, [5, 3], kw.get("batch_first", False)))
                return module(pack_padded_sequence(a, [5, 3], kw.get("batch_first", False)))
            return module(a.bfloat16() if fed == "bfloat16" else a)

        with amp.autocast():
            out, state = run(nd, m, nd.tensor(x))
        with torch.autocast("cpu"):
            tout, tstate = run(torch, tm, torch.tensor(x))
        mine = [out.data if fed == "packed" else out] + list(state if isinstance(state, tuple) else (state,))
        theirs = [tout.data if fed == "packed" else tout] + list(tstate if isinstance(tstate, tuple) else (tstate,))
        assert [_dtype_name(a) for a in mine] == [_dtype_name(b) for b in theirs], (kind, kw)
        # the values: the float32 module's results, rounded to the output dtype
        ref_in = nd.tensor(x).bfloat16().float() if fed == "bfloat16" else nd.tensor(x)
        ref_out, ref_state = run(nd, m, ref_in) if fed == "packed" else m(ref_in)
        refs = [ref_out.data if fed == "packed" else ref_out] + list(
            ref_state if isinstance(ref_state, tuple) else (ref_state,))
        for a, b in zip(mine, refs):
            np.testing.assert_array_equal(_np32(a), _np32(b.to(a.dtype)))


def test_recurrent_cells_under_autocast_match_torch():
    """LSTMCell and GRUCell (fused cells in torch, not lowered) compute in float32 and return the
    input's dtype; RNNCell's two products run lowered, as torch's."""
    torch = pytest.importorskip("torch")
    import ndnn

    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    for kind in ("LSTMCell", "GRUCell", "RNNCell"):
        m, tm = getattr(ndnn, kind)(4, 3), getattr(torch.nn, kind)(4, 3)
        for low in (False, True):
            a = nd.tensor(x).bfloat16() if low else nd.tensor(x)
            with amp.autocast():
                mine = first(m(a))
            with torch.autocast("cpu"):
                theirs = first(tm(torch.tensor(x).bfloat16() if low else torch.tensor(x)))
            assert _dtype_name(mine) == _dtype_name(theirs), (kind, low)
            if kind != "RNNCell":
                np.testing.assert_array_equal(_np32(mine), _np32(first(m(a.float())).to(mine.dtype)))


def _np32(t):
    return t.float().detach().numpy()


def test_attention_and_prelu_under_autocast_match_torch():
    torch = pytest.importorskip("torch")
    import ndnn.functional as F

    r = np.random.default_rng(4)
    q, k, v = (r.standard_normal((2, 3, 6, 8)).astype(np.float32) for _ in range(3))
    mask = r.standard_normal((6, 6)).astype(np.float32)
    for kw in ({}, {"is_causal": True}, {"attn_mask": "mask"}):
        args = {key: (mask if val == "mask" else val) for key, val in kw.items()}
        with amp.autocast():
            mine = F.scaled_dot_product_attention(nd.tensor(q), nd.tensor(k).bfloat16(), nd.tensor(v),
                                                  **{a: nd.tensor(b) if isinstance(b, np.ndarray) else b
                                                     for a, b in args.items()})
        with torch.autocast("cpu"):
            theirs = torch.nn.functional.scaled_dot_product_attention(
                torch.tensor(q), torch.tensor(k).bfloat16(), torch.tensor(v),
                **{a: torch.tensor(b) if isinstance(b, np.ndarray) else b for a, b in args.items()})
        assert mine.dtype == nd.bfloat16 and theirs.dtype == torch.bfloat16
        np.testing.assert_allclose(_np32(mine), theirs.float().numpy(), atol=3e-2, rtol=3e-2)
    x, a = r.standard_normal((3, 4)).astype(np.float32), np.array([0.25], np.float32)
    with amp.autocast():
        mine = F.prelu(nd.tensor(x), nd.tensor(a))
        wide = F.prelu(nd.tensor(x).double(), nd.tensor(a).double())
    assert mine.dtype == nd.bfloat16 and wide.dtype == nd.float64
    np.testing.assert_array_equal(_np32(mine), _np32(nd.tensor(np.where(x > 0, x, x * a)).bfloat16()))
