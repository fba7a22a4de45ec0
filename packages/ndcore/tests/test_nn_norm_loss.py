"""nn kernels of the op table: softmax/log_softmax, layer/batch/group/instance norm, nll_loss,
cross_entropy_loss, binary cross entropy (with logits), ctc_loss and native_dropout, forward
against NumPy references (and torch where installed), backward by gradcheck in float64."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special

import ndcore as nd

RTOL = {nd.float32: 1e-5, nd.float64: 1e-12}
ATOL = {nd.float32: 1e-6, nd.float64: 1e-12}
NP = {nd.float32: np.float32, nd.float64: np.float64}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _close(got, want, dtype=nd.float64, scale=1.0):
    np.testing.assert_allclose(got.numpy() if isinstance(got, nd.Tensor) else got, want,
                               rtol=RTOL[dtype] * scale, atol=ATOL[dtype] * scale)


def _gradcheck(fn, *arrays):
    ndgrad = pytest.importorskip("ndgrad")
    ts = [nd.tensor(a, dtype=nd.float64, requires_grad=True) for a in arrays]
    assert ndgrad.gradcheck(fn, tuple(ts))


# ---- softmax / log_softmax ------------------------------------------------------------------------
def _np_log_softmax(x, dim):
    return x - scipy.special.logsumexp(x, axis=dim, keepdims=True)


@pytest.mark.parametrize("dtype", [nd.float32, nd.float64])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 9), 1), ((5, 9), 0), ((3, 4, 300), 1), ((2, 3, 5), -1), ((4, 1), 1)])
def test_softmax_matches_numpy(dtype, shape, dim):
    x = _rng(1).standard_normal(shape).astype(NP[dtype]) * 4
    t = nd.tensor(x)
    ref = _np_log_softmax(x.astype(np.float64), dim)
    _close(nd.log_softmax(t, dim), ref, dtype, 10)
    _close(nd.softmax(t, dim), np.exp(ref), dtype)
    _close(t.softmax(dim), np.exp(ref), dtype)
    _close(nd._softmax(t, dim, False), np.exp(ref), dtype)


def test_softmax_non_contiguous_zero_d_empty_and_dtype():
    x = _rng(2).standard_normal((6, 5, 4))
    t = nd.tensor(x).permute(2, 0, 1)[:, ::2]  # strided
    _close(t.log_softmax(1), _np_log_softmax(x.transpose(2, 0, 1)[:, ::2], 1))
    assert nd.softmax(nd.tensor(3.0), 0).item() == 1.0 and nd.log_softmax(nd.tensor(3.0), -1).item() == 0.0
    assert nd.softmax(nd.zeros(0, 4), 1).shape == (0, 4)
    assert nd.softmax(nd.tensor([1, 2, 3]), 0, dtype=nd.float64).dtype == nd.float64
    with pytest.raises(TypeError, match=r"\[softmax\].*int64"):
        nd.softmax(nd.tensor([1, 2, 3]), 0)
    with pytest.raises(IndexError):
        nd.softmax(nd.ones(2, 3), 2)


def test_softmax_extremes_and_half_precision():
    t = nd.tensor([[1000.0, 0.0, -1000.0], [-math.inf, 0.0, 0.0]])
    np.testing.assert_allclose(t.softmax(1).numpy(), [[1, 0, 0], [0, 0.5, 0.5]])
    assert np.isnan(nd.tensor([[-math.inf, -math.inf]]).softmax(1).numpy()).all()  # as torch
    x = _rng(3).standard_normal((4, 33)).astype(np.float32)
    for dt in (nd.bfloat16, nd.float16):
        got = nd.tensor(x).to(dt).log_softmax(1)
        assert got.dtype == dt
        np.testing.assert_allclose(got.float().numpy(), _np_log_softmax(x, 1), rtol=2e-2, atol=3e-2)
    assert nd._softmax(nd.tensor(x).to(nd.bfloat16), 1, True).dtype == nd.float32


@pytest.mark.parametrize("n", [1, 15, 16, 17, 31, 32, 33, 100, 1000])
def test_softmax_float32_rows_of_every_tail(n):
    """Rows over the last dim run 16-lane vectors on AVX-512 (two at a time, then a masked tail)."""
    x = _rng(6).standard_normal((5, n)).astype(np.float32) * 6
    ref = _np_log_softmax(x.astype(np.float64), 1)
    t = nd.tensor(x)
    np.testing.assert_allclose(t.softmax(1).numpy(), np.exp(ref), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(t.log_softmax(1).numpy(), ref, rtol=2e-6, atol=2e-6)


def test_softmax_float32_long_rows_special_values():
    """A NaN or +inf anywhere makes its whole row NaN (the max skips NaN; the sum carries it), as
    torch; -inf entries and entries ~1000 below the max give exact zeros."""
    x = np.zeros((4, 50), np.float32)
    x[0, 37] = np.nan
    x[1, 3] = np.inf
    x[2, ::2] = -np.inf
    x[3, 1::2] = -1000.0
    for log in (False, True):
        t = nd.tensor(x)
        y = (t.log_softmax(1) if log else t.softmax(1)).numpy()
        assert np.isnan(y[:2]).all()
        p = np.exp(y[2:]) if log else y[2:]
        np.testing.assert_allclose(p[0], np.where(np.isinf(x[2]), 0.0, 1 / 25), rtol=1e-6)
        np.testing.assert_allclose(p[1], np.where(x[3] < 0, 0.0, 1 / 25), rtol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_gradients(dim):
    x = _rng(4).standard_normal((3, 4, 5))
    w = nd.tensor(_rng(5).standard_normal((3, 4, 5)))
    _gradcheck(lambda t: t.softmax(dim) * w, x)
    _gradcheck(lambda t: t.log_softmax(dim) * w, x)
    ndgrad = pytest.importorskip("ndgrad")
    t = nd.tensor(x, requires_grad=True)
    assert ndgrad.gradgradcheck(lambda a: (a.softmax(dim) * w).sum(dim).exp(), (t,))
    assert ndgrad.gradgradcheck(lambda a: (a.log_softmax(dim) * w).sin(), (t,))


def test_softmax_matches_torch_forward_and_backward():
    torch = pytest.importorskip("torch")
    ndgrad = pytest.importorskip("ndgrad")  # noqa: F841
    x = _rng(6).standard_normal((8, 10)).astype(np.float32)
    g = _rng(7).standard_normal((8, 10)).astype(np.float32)
    for fn in ("softmax", "log_softmax"):
        a, b = nd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ya, yb = getattr(a, fn)(1), getattr(b, fn)(1)
        np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-5, atol=1e-6)
        (ya * nd.tensor(g)).sum().backward()
        (yb * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6)


# ---- normalization ------------------------------------------------------------------------------------
def _np_layer_norm(x, k, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axes, keepdims=True)
    y = (x - mu) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


@pytest.mark.parametrize("dtype", [nd.float32, nd.float64])
def test_layer_norm_forward(dtype):
    r = _rng(8)
    x = r.standard_normal((4, 3, 6)).astype(NP[dtype]) * 3 + 1
    w, b = r.standard_normal((3, 6)).astype(NP[dtype]), r.standard_normal((3, 6)).astype(NP[dtype])
    _close(nd.layer_norm(nd.tensor(x), [6]), _np_layer_norm(x.astype(np.float64), 1), dtype, 10)
    _close(nd.layer_norm(nd.tensor(x), (3, 6), nd.tensor(w), nd.tensor(b)),
           _np_layer_norm(x.astype(np.float64), 2, w, b), dtype, 10)
    out, mean, rstd = nd.native_layer_norm(nd.tensor(x).transpose(0, 1), [6], None, None, 1e-5)
    assert mean.shape == (3, 4, 1) and rstd.shape == (3, 4, 1)
    _close(mean, x.transpose(1, 0, 2).mean(-1, keepdims=True), dtype, 10)
    _close(out, _np_layer_norm(x.transpose(1, 0, 2).astype(np.float64), 1), dtype, 10)
    with pytest.raises(ValueError, match=r"\[native_layer_norm\].*normalized_shape=\(5,\), expected input with shape \(\*, 5\)"):
        nd.layer_norm(nd.tensor(x), [5])
    with pytest.raises(ValueError, match="weight with 6 elements"):
        nd.layer_norm(nd.tensor(x), [6], nd.ones(5))


def test_layer_norm_gradients_and_torch():
    r = _rng(9)
    x, w, b = r.standard_normal((3, 2, 4)), r.standard_normal((2, 4)), r.standard_normal((2, 4))
    _gradcheck(lambda t, ww, bb: nd.layer_norm(t, [2, 4], ww, bb), x, w, b)
    _gradcheck(lambda t: nd.layer_norm(t, [4]) * nd.tensor(w[0]), x)
    torch = pytest.importorskip("torch")
    a, wa, ba = (nd.tensor(v, requires_grad=True) for v in (x, w, b))
    ta, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    (nd.layer_norm(a, [2, 4], wa, ba) ** 3).sum().backward()
    (torch.nn.functional.layer_norm(ta, [2, 4], tw, tb) ** 3).sum().backward()
    for mine, theirs in ((a, ta), (wa, tw), (ba, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def _np_batch_norm(x, mean, var, w, b, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("dtype", [nd.float32, nd.float64])
def test_batch_norm_training_updates_running_stats(dtype):
    r = _rng(10)
    x = r.standard_normal((5, 3, 4, 2)).astype(NP[dtype]) * 2 + 3
    w, b = r.standard_normal(3).astype(NP[dtype]), r.standard_normal(3).astype(NP[dtype])
    rm, rv = nd.zeros(3, dtype=dtype), nd.ones(3, dtype=dtype)
    v0 = rm._version if hasattr(rm, "_version") else None
    out = nd.batch_norm(nd.tensor(x), nd.tensor(w), nd.tensor(b), rm, rv, True, 0.1, 1e-5)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    _close(out, _np_batch_norm(x.astype(np.float64), mean, var, w, b), dtype, 10)
    _close(rm, 0.1 * mean, dtype, 10)
    _close(rv, 0.9 + 0.1 * x.var((0, 2, 3), ddof=1), dtype, 10)
    if v0 is not None:
        assert rm._version > v0
    _, smean, sinv = nd.native_batch_norm(nd.tensor(x), None, None, None, None, True, 0.1, 1e-5)
    _close(smean, mean, dtype, 10)
    _close(sinv, 1 / np.sqrt(var + 1e-5), dtype, 10)
    # eval uses the running statistics; save_mean/save_invstd are empty, as torch's CPU kernel
    out, sm, si = nd.native_batch_norm(nd.tensor(x), nd.tensor(w), nd.tensor(b), rm, rv, False, 0.1, 1e-5)
    _close(out, _np_batch_norm(x.astype(np.float64), rm.numpy(), rv.numpy(), w, b), dtype, 10)
    assert sm.shape == (0,) and si.shape == (0,)
    with pytest.raises(ValueError, match=r"\[native_batch_norm\] running_mean and running_var must be defined"):
        nd.batch_norm(nd.tensor(x), None, None, None, None, False, 0.1, 1e-5)
    with pytest.raises(ValueError, match="3 elements"):
        nd.batch_norm(nd.tensor(x), None, None, nd.zeros(4), nd.ones(4), True, 0.1, 1e-5)


def test_batch_norm_gradients_and_torch():
    r = _rng(11)
    x, w, b = r.standard_normal((4, 3, 5)), r.standard_normal(3), r.standard_normal(3)
    rm, rv = r.standard_normal(3), r.random(3) + 0.5
    _gradcheck(lambda t, ww, bb: nd.batch_norm(t, ww, bb, None, None, True, 0.1, 1e-5), x, w, b)
    _gradcheck(lambda t, ww, bb: nd.batch_norm(t, ww, bb, nd.tensor(rm), nd.tensor(rv), False, 0.1, 1e-5), x, w, b)
    _gradcheck(lambda t: nd.batch_norm(t[:, :, 0], None, None, None, None, True, 0.1, 1e-5) * nd.tensor(w), x)
    torch = pytest.importorskip("torch")
    a, wa, ba = (nd.tensor(v, requires_grad=True) for v in (x, w, b))
    ta, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    (nd.batch_norm(a, wa, ba, nd.zeros(3, dtype=nd.float64), nd.ones(3, dtype=nd.float64), True, 0.1, 1e-5).exp()).sum().backward()
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    (torch.nn.functional.batch_norm(ta, trm, trv, tw, tb, True).exp()).sum().backward()
    for mine, theirs in ((a, ta), (wa, tw), (ba, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-11)


def _np_group_norm(x, g, w, b, eps=1e-5):
    n, c = x.shape[:2]
    xs = x.reshape(n, g, -1)
    y = ((xs - xs.mean(-1, keepdims=True)) / np.sqrt(xs.var(-1, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * w.reshape(shape) + b.reshape(shape)


def test_group_and_instance_norm():
    r = _rng(12)
    x, w, b = r.standard_normal((3, 6, 2, 3)) * 2 + 1, r.standard_normal(6), r.standard_normal(6)
    _close(nd.group_norm(nd.tensor(x), 3, nd.tensor(w), nd.tensor(b)), _np_group_norm(x, 3, w, b))
    _close(nd.group_norm(nd.tensor(x).float(), 2).double(), _np_group_norm(x, 2, np.ones(6), np.zeros(6)), nd.float32, 10)
    out, mean, rstd = nd.native_group_norm(nd.tensor(x), None, None, 3, 6, 6, 3, 1e-5)
    assert mean.shape == (3, 3) and rstd.shape == (3, 3)
    with pytest.raises(ValueError, match=r"divisible by num_groups \(4\)"):
        nd.group_norm(nd.tensor(x), 4)
    _gradcheck(lambda t, ww, bb: nd.group_norm(t, 3, ww, bb), x[:2, :, :1], w, b)
    _gradcheck(lambda t: nd.group_norm(t, 2) * nd.tensor(x[:2, :, :1]), x[:2, :, :1])
    # instance norm is per-(sample, channel) batch norm
    _close(nd.instance_norm(nd.tensor(x), nd.tensor(w), nd.tensor(b), None, None, True, 0.1, 1e-5), _np_group_norm(x, 6, w, b))
    _gradcheck(lambda t: nd.instance_norm(t, None, None, None, None, True, 0.1, 1e-5) * nd.tensor(x[:2, :, :1]), x[:2, :, :1])


def test_norms_match_torch_with_running_stats():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = _rng(13)
    x, w, b = (r.standard_normal(s).astype(np.float32) for s in ((3, 4, 5), 4, 4))
    rm, rv, trm, trv = nd.zeros(4), nd.ones(4), torch.zeros(4), torch.ones(4)
    got = nd.instance_norm(nd.tensor(x), nd.tensor(w), nd.tensor(b), rm, rv, True, 0.2, 1e-3)
    want = F.instance_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b), True, 0.2, 1e-3)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nd.group_norm(nd.tensor(x), 2, nd.tensor(w), nd.tensor(b)).numpy(),
                               F.group_norm(torch.tensor(x), 2, torch.tensor(w), torch.tensor(b)).numpy(), rtol=1e-5, atol=1e-5)
    xb = nd.tensor(x).to(nd.bfloat16)
    assert nd.layer_norm(xb, [5]).dtype == nd.bfloat16 and nd.batch_norm(xb, None, None, None, None, True, 0.1, 1e-5).dtype == nd.bfloat16


# ---- nll_loss / cross entropy -------------------------------------------------------------------------
def _np_nll(logp, t, w=None, reduction="mean", ignore=-100):
    c = logp.shape[1] if logp.ndim > 1 else logp.shape[0]
    w = np.ones(c) if w is None else w
    lp = logp[None] if logp.ndim == 1 else logp
    tt = np.asarray(t).reshape(lp.shape[0], -1)
    lp = lp.reshape(lp.shape[0], c, -1)
    keep = tt != ignore
    safe = np.where(keep, tt, 0)
    picked = np.take_along_axis(lp, safe[:, None, :], 1)[:, 0]
    losses = np.where(keep, -w[safe] * picked, 0.0)
    if reduction == "none":
        return losses.reshape(np.shape(t))
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / np.where(keep, w[safe], 0.0).sum()


CASES = [((6, 5), (6,)), ((5,), ()), ((3, 4, 2, 3), (3, 2, 3))]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape,tshape", CASES)
def test_nll_loss(reduction, shape, tshape):
    r = _rng(14)
    c = shape[1] if len(shape) > 1 else shape[0]
    x = r.standard_normal(shape)
    t = r.integers(0, c, tshape)
    w = r.random(c) + 0.5
    for weight, ignore in ((None, -100), (w, 1)):
        got = nd.nll_loss(nd.tensor(x), nd.tensor(t), None if weight is None else nd.tensor(weight), reduction, ignore)
        _close(got, _np_nll(x, t, weight, reduction, ignore))
        if len(shape) != 1 or reduction != "mean" or ignore == -100 or t != 1:
            wt = None if weight is None else nd.tensor(weight)
            _gradcheck(lambda a, wt=wt, ignore=ignore: nd.nll_loss(a, nd.tensor(t), wt, reduction, ignore), x)
    # non-contiguous input
    xt = nd.tensor(np.ascontiguousarray(np.swapaxes(x, 0, -1))).transpose(0, -1)
    _close(nd.nll_loss(xt, nd.tensor(t), None, reduction), _np_nll(x, t, None, reduction))


def test_nll_loss_errors_and_empty_batch():
    x = nd.randn(4, 3)
    with pytest.raises(IndexError, match=r"\[nll_loss\] target 3 is out of bounds for 3 classes"):
        nd.nll_loss(x, nd.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"expected target of shape \(4,\) for input of shape \(4, 3\), got \(2,\)"):
        nd.nll_loss(x, nd.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        nd.nll_loss(x, nd.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="reduction must be"):
        nd.nll_loss(x, nd.tensor([0, 1, 2, 0]), None, "avg")
    empty = nd.zeros(0, 3)
    assert math.isnan(nd.nll_loss(empty, nd.zeros(0, dtype=nd.int64)).item())
    assert nd.nll_loss(empty, nd.zeros(0, dtype=nd.int64), None, "sum").item() == 0.0
    assert math.isnan(nd.cross_entropy_loss(empty, nd.zeros(0, dtype=nd.int64)).item())


def _np_cross_entropy(x, t, w=None, reduction="mean", ignore=-100, ls=0.0):
    cd = 0 if x.ndim == 1 else 1
    c = x.shape[cd]
    logp = _np_log_softmax(x, cd)
    wb = np.ones(c) if w is None else w
    wshape = [c] + [1] * (x.ndim - cd - 1)
    if np.issubdtype(np.asarray(t).dtype, np.floating):
        t = t * (1 - ls) + ls / c
        per = -(logp * t * wb.reshape(wshape)).sum(cd)
        return per if reduction == "none" else per.sum() if reduction == "sum" else per.sum() / (x.size / c)
    nll = _np_nll(logp, t, w, reduction, ignore)
    if ls == 0:
        return nll
    keep = np.asarray(t) != ignore
    smooth = np.where(keep, -(logp * wb.reshape(wshape)).sum(cd), 0.0)
    if reduction == "mean":
        smooth = smooth.sum() / np.where(keep, wb[np.where(keep, t, 0)], 0).sum()
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - ls) * nll + smooth * ls / c


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shape", [(6, 5), (5,), (3, 4, 2)])
def test_cross_entropy(reduction, shape):
    r = _rng(15)
    c = shape[1] if len(shape) > 1 else shape[0]
    x = r.standard_normal(shape) * 2
    t = r.integers(0, c, shape[:1] + shape[2:] if len(shape) > 1 else ())
    p = scipy.special.softmax(r.standard_normal(shape), axis=1 if len(shape) > 1 else 0)
    w = r.random(c) + 0.5
    for weight, ls in ((None, 0.0), (w, 0.0), (w, 0.2), (None, 0.1)):
        wt = None if weight is None else nd.tensor(weight)
        ignore = 2 if len(shape) > 1 else -100
        _close(nd.cross_entropy_loss(nd.tensor(x), nd.tensor(t), wt, reduction, ignore, ls),
               _np_cross_entropy(x, t, weight, reduction, ignore, ls))
        _close(nd.cross_entropy_loss(nd.tensor(x), nd.tensor(p), wt, reduction, -100, ls),
               _np_cross_entropy(x, p, weight, reduction, -100, ls))
    _gradcheck(lambda a: nd.cross_entropy_loss(a, nd.tensor(t), nd.tensor(w), reduction, -100, 0.1), x)
    _gradcheck(lambda a, b: nd.cross_entropy_loss(a, b, nd.tensor(w), reduction, -100, 0.1), x, p)


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = _rng(16)
    x = r.standard_normal((64, 10)).astype(np.float32)
    t = r.integers(0, 10, 64)
    t[::7] = 3
    w = (r.random(10) + 0.5).astype(np.float32)
    a, b = nd.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    la = nd.cross_entropy_loss(a, nd.tensor(t), nd.tensor(w), "mean", 3, 0.05)
    lb = F.cross_entropy(b, torch.tensor(t), torch.tensor(w), ignore_index=3, label_smoothing=0.05)
    np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-5)
    pytest.importorskip("ndgrad")
    la.backward()
    lb.backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-7)


# ---- binary cross entropy -----------------------------------------------------------------------------
def _np_bce(x, t, w=None, reduction="mean"):
    loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100)) * (1 if w is None else w)
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def _np_bce_logits(z, t, w=None, pw=None, reduction="mean"):
    lw = 1 if pw is None else 1 + (pw - 1) * t
    loss = ((1 - t) * z + lw * np.logaddexp(0, -z)) * (1 if w is None else w)
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_binary_cross_entropy(reduction):
    r = _rng(17)
    x, t, w = r.random((4, 5)) * 0.9 + 0.05, r.random((4, 5)), r.random(5)
    _close(nd.binary_cross_entropy(nd.tensor(x), nd.tensor(t), None, reduction), _np_bce(x, t, None, reduction))
    _close(nd.binary_cross_entropy(nd.tensor(x), nd.tensor(t), nd.tensor(w), reduction), _np_bce(x, t, w, reduction))
    _gradcheck(lambda a, b: nd.binary_cross_entropy(a, b, nd.tensor(w), reduction), x, t)
    # log is clamped at -100: an input of exactly 0 or 1 gives a finite loss
    edge = nd.binary_cross_entropy(nd.tensor([0.0, 1.0]), nd.tensor([1.0, 0.0]), None, "none")
    np.testing.assert_allclose(edge.numpy(), [100.0, 100.0])


def test_binary_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"\[binary_cross_entropy\] all elements of input should be between 0 and 1"):
        nd.binary_cross_entropy(nd.tensor([1.5]), nd.tensor([1.0]))
    with pytest.raises(ValueError, match="different to the input size"):
        nd.binary_cross_entropy(nd.tensor([0.5, 0.5]), nd.tensor([1.0]))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_binary_cross_entropy_with_logits(reduction):
    r = _rng(18)
    z, t, w, pw = r.standard_normal((4, 5)) * 4, r.random((4, 5)), r.random(5), r.random(5) + 0.5
    for weight, pos in ((None, None), (w, None), (None, pw), (w, pw)):
        args = [None if a is None else nd.tensor(a) for a in (weight, pos)]
        _close(nd.binary_cross_entropy_with_logits(nd.tensor(z), nd.tensor(t), *args, reduction),
               _np_bce_logits(z, t, weight, pos, reduction))
    _gradcheck(lambda a, b: nd.binary_cross_entropy_with_logits(a, b, nd.tensor(w), nd.tensor(pw), reduction), z, t)
    big = nd.binary_cross_entropy_with_logits(nd.tensor([1000.0, -1000.0, 30.0]), nd.tensor([0.0, 1.0, 1.0]), reduction="none")
    np.testing.assert_allclose(big.numpy(), [1000.0, 1000.0, np.log1p(np.exp(-30.0))], rtol=1e-6)  # float32


def test_bce_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    r = _rng(19)
    z, t, pw = r.standard_normal((8, 3)).astype(np.float32), r.random((8, 3)).astype(np.float32), np.float32([0.5, 2.0, 1.0])
    mine = nd.binary_cross_entropy_with_logits(nd.tensor(z), nd.tensor(t), pos_weight=nd.tensor(pw))
    theirs = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(t), pos_weight=torch.tensor(pw))
    np.testing.assert_allclose(mine.item(), theirs.item(), rtol=1e-6)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(nd.binary_cross_entropy(nd.tensor(s), nd.tensor(t), reduction="sum").item(),
                               F.binary_cross_entropy(torch.tensor(s), torch.tensor(t), reduction="sum").item(), rtol=1e-6)


# ---- CTC ------------------------------------------------------------------------------------------------
def _np_ctc(lp, targets, in_len, tg_len, blank=0):
    """Negative log likelihood per sample by the alpha recursion, for lp of shape (T, N, C)."""
    out = []
    for n in range(lp.shape[1]):
        ext = [blank]
        for c in targets[n][:tg_len[n]]:
            ext += [c, blank]
        s_len = len(ext)
        alpha = np.full(s_len, -np.inf)
        alpha[0] = lp[0, n, blank]
        if s_len > 1:
            alpha[1] = lp[0, n, ext[1]]
        for t in range(1, in_len[n]):
            new = np.full(s_len, -np.inf)
            for s in range(s_len):
                terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    terms.append(alpha[s - 2])
                new[s] = scipy.special.logsumexp(terms) + lp[t, n, ext[s]]
            alpha = new
        out.append(-scipy.special.logsumexp(alpha[-2:] if s_len > 1 else alpha[-1:]))
    return np.array(out)


def _ctc_data(seed=20):
    r = _rng(seed)
    lp = _np_log_softmax(r.standard_normal((10, 3, 5)), 2)
    targets = r.integers(1, 5, (3, 4))
    targets[0, 1] = targets[0, 0]  # a repeated label needs a blank between them
    return lp, targets, [10, 9, 6], [4, 2, 3]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_matches_alpha_recursion(reduction):
    lp, targets, il, tl = _ctc_data()
    ref = _np_ctc(lp, targets, il, tl)
    want = ref if reduction == "none" else ref.sum() if reduction == "sum" else (ref / np.array(tl)).mean()
    _close(nd.ctc_loss(nd.tensor(lp), nd.tensor(targets), il, tl, 0, reduction), want, scale=100)
    concat = np.concatenate([targets[n, :tl[n]] for n in range(3)])
    _close(nd.ctc_loss(nd.tensor(lp), nd.tensor(concat), nd.tensor(il), nd.tensor(tl), 0, reduction), want, scale=100)
    _gradcheck(lambda a: nd.ctc_loss(a, nd.tensor(targets), il, tl, 0, reduction), lp)


def test_ctc_loss_zero_infinity_unbatched_and_errors():
    lp, targets, _, _ = _ctc_data(21)
    il, tl = [2, 10, 10], [4, 1, 2]  # sample 0 cannot emit 4 labels in 2 frames
    assert math.isinf(nd.ctc_loss(nd.tensor(lp), nd.tensor(targets), il, tl, 0, "none")[0].item())
    z = nd.ctc_loss(nd.tensor(lp), nd.tensor(targets), il, tl, 0, "none", True)
    assert z[0].item() == 0.0
    a = nd.tensor(lp, requires_grad=True)
    if pytest.importorskip("ndgrad"):
        nd.ctc_loss(a, nd.tensor(targets), il, tl, 0, "sum", True).backward()
        assert np.isfinite(a.grad.numpy()).all() and (a.grad.numpy()[:, 0] == 0).all()
    single = nd.ctc_loss(nd.tensor(lp[:, 1]), nd.tensor(targets[1, :1]), [10], [1], 0, "none")
    _close(single, _np_ctc(lp[:, 1:2], targets[1:2], [10], [1])[0], scale=100)
    with pytest.raises(ValueError, match=r"\[_ctc_loss\] input_lengths\[0\] = 11"):
        nd.ctc_loss(nd.tensor(lp), nd.tensor(targets), [11, 1, 1], [1, 1, 1])
    with pytest.raises(IndexError, match="out of bounds for 5 classes"):
        nd.ctc_loss(nd.tensor(lp), nd.tensor(targets + 5), [10, 10, 10], [1, 1, 1])


def test_ctc_loss_matches_torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ndgrad")
    lp, targets, il, tl = _ctc_data(22)
    raw = np.log(np.exp(lp) * 3.0)  # unnormalised logits; both sides apply log_softmax
    a, b = nd.tensor(raw, requires_grad=True), torch.tensor(raw, requires_grad=True)
    la = nd.ctc_loss(a.log_softmax(2), nd.tensor(targets), il, tl)
    lb = torch.nn.functional.ctc_loss(b.log_softmax(2), torch.tensor(targets), torch.tensor(il), torch.tensor(tl))
    np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-10)
    la.backward()
    lb.backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-12)


# ---- dropout --------------------------------------------------------------------------------------------
def test_native_dropout_statistics_and_backward():
    nd.manual_seed(0)
    x = nd.tensor(_rng(23).standard_normal((300, 400)).astype(np.float32))
    out, mask = nd.native_dropout(x, 0.3, True)
    m = mask.numpy()
    assert mask.dtype == nd.bool and abs(m.mean() - 0.7) < 0.01
    np.testing.assert_allclose(out.numpy(), np.where(m, x.numpy() / 0.7, 0), rtol=1e-6)
    nd.manual_seed(0)
    assert (nd.native_dropout(x, 0.3, None)[1].numpy() == m).all()  # reproducible; train=None trains
    assert not (nd.native_dropout(x, 0.3, True)[1].numpy() == m).all()
    out, mask = nd.native_dropout(x, 0.3, False)
    assert mask.numpy().all() and (out.numpy() == x.numpy()).all()
    assert not nd.native_dropout(x, 1.0, True)[1].numpy().any() and nd.native_dropout(x, 0.0, True)[1].numpy().all()
    with pytest.raises(ValueError, match=r"\[native_dropout\] dropout probability has to be between 0 and 1"):
        nd.native_dropout(x, 1.5, True)
    g = nd.native_dropout_backward(nd.ones(300, 400), mask, 2.0)
    np.testing.assert_allclose(g.numpy(), 2.0)
    pytest.importorskip("ndgrad")
    xr = nd.tensor(x.numpy()[:5, :6].astype(np.float64), requires_grad=True)
    o, mk = nd.native_dropout(xr, 0.5, True)
    (o * 3).sum().backward()
    np.testing.assert_allclose(xr.grad.numpy(), mk.numpy() * 6.0)


def test_norm_second_derivatives():
    """Under create_graph the norms' formulas switch to differentiable ops (gradient penalties)."""
    ndgrad = pytest.importorskip("ndgrad")
    r = _rng(24)

    def t(*shape):
        return nd.tensor(r.standard_normal(shape), requires_grad=True)

    rm, rv = nd.tensor(r.standard_normal(3)), nd.tensor(r.random(3) + 0.5)
    assert ndgrad.gradgradcheck(lambda a, w, b: nd.layer_norm(a, [4], w, b), (t(3, 2, 4), t(4), t(4)))
    assert ndgrad.gradgradcheck(lambda a, w: nd.batch_norm(a, w, None, None, None, True, 0.1, 1e-5), (t(4, 3, 2), t(3)))
    assert ndgrad.gradgradcheck(lambda a, w: nd.batch_norm(a, w, None, rm, rv, False, 0.1, 1e-5), (t(4, 3, 2), t(3)))
    assert ndgrad.gradgradcheck(lambda a, w: nd.group_norm(a, 3, w), (t(2, 6, 3), t(6)))
    assert ndgrad.gradgradcheck(lambda a: nd.cross_entropy_loss(a, nd.tensor([1, 2]), None, "mean", -100, 0.1), (t(2, 4),))
