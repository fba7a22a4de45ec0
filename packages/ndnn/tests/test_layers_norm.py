"""Normalisation layers and functionals: NumPy formulas, torch forward/backward, running statistics, reprs."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_helpers import check_module_vs_torch, close, rng, t

import ndcore as nd
import ndgrad
import ndnn as nn
import ndnn.functional as F


def _torch():
    return pytest.importorskip("torch")


def _np_norm(x, axes, eps):
    m = x.mean(axes, keepdims=True)
    v = x.var(axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


# ---------------------------------------------------------------- functional

def test_layer_norm_numpy_and_gradcheck():
    x = rng(0).standard_normal((3, 4, 5)).astype(np.float64)
    w = rng(1).standard_normal((4, 5))
    b = rng(2).standard_normal((4, 5))
    close(F.layer_norm(t(x), (4, 5), t(w), t(b)), _np_norm(x, (1, 2), 1e-5) * w + b, atol=1e-10)
    close(F.layer_norm(t(x), 5, eps=0.1), _np_norm(x, (2,), 0.1), atol=1e-10)
    args = [t(a[:2, :2, :3] if a.ndim == 3 else a[:2, :3], requires_grad=True) for a in (x, w, b)]
    assert ndgrad.gradcheck(lambda a, ww, bb: F.layer_norm(a, (2, 3), ww, bb), tuple(args))
    with pytest.raises(ValueError, match=r"\[layer_norm\] Given normalized_shape=\[4\], expected input with shape "
                                         r"\[\*, 4\], but got input of size \[3, 4, 5\]"):
        F.layer_norm(t(x), 4)


def test_batch_norm_functional_numpy():
    x = rng(3).standard_normal((6, 3, 4)).astype(np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    rmn, rvn = t(rm), t(rv)
    out = F.batch_norm(t(x), rmn, rvn, training=True, momentum=0.2)
    close(out, _np_norm(x, (0, 2), 1e-5), atol=1e-10)
    close(rmn, 0.8 * rm + 0.2 * x.mean((0, 2)), atol=1e-12)
    close(rvn, 0.8 * rv + 0.2 * x.var((0, 2), ddof=1), atol=1e-12)  # running variance is unbiased
    w, b = rng(4).standard_normal(3), rng(5).standard_normal(3)
    ev = F.batch_norm(t(x), rmn, rvn, t(w), t(b), training=False)
    ref = (x - rmn.numpy()[:, None]) / np.sqrt(rvn.numpy()[:, None] + 1e-5) * w[:, None] + b[:, None]
    close(ev, ref, atol=1e-10)
    xs = t(x[:3, :2, :2], requires_grad=True)
    assert ndgrad.gradcheck(lambda a, ww, bb: F.batch_norm(a, None, None, ww, bb, training=True),
                            (xs, t(w[:2], requires_grad=True), t(b[:2], requires_grad=True)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        F.batch_norm(t(np.zeros((1, 3))), None, None, training=True)


def test_group_and_instance_norm_numpy():
    x = rng(6).standard_normal((2, 6, 5)).astype(np.float64)
    g = _np_norm(x.reshape(2, 3, 10), (2,), 1e-5).reshape(2, 6, 5)
    close(F.group_norm(t(x), 3), g, atol=1e-10)
    close(F.instance_norm(t(x)), _np_norm(x, (2,), 1e-5), atol=1e-10)
    assert ndgrad.gradcheck(lambda a: F.group_norm(a, 2), (t(x[:1, :4, :3], requires_grad=True),))
    assert ndgrad.gradcheck(lambda a: F.instance_norm(a), (t(x[:1, :2, :3], requires_grad=True),))
    with pytest.raises(ValueError, match=r"divisible by num_groups.*\[2, 6, 5\] and num_groups=4"):
        F.group_norm(t(x), 4)


def test_rms_norm_numpy_and_torch():
    torch = _torch()
    x = rng(7).standard_normal((3, 4, 5)).astype(np.float32)
    w = rng(8).standard_normal(5).astype(np.float32)
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6) * w
    close(F.rms_norm(t(x), (5,), t(w), 1e-6), ref.astype(np.float32), atol=1e-5)
    m, mt = nn.RMSNorm([4, 5]), torch.nn.RMSNorm([4, 5])
    assert repr(m) == repr(mt)
    check_module_vs_torch(m, mt, [x])
    assert ndgrad.gradcheck(lambda a: F.rms_norm(a, 3), (t(x[:2, 0, :3].astype(np.float64), requires_grad=True),))


def test_local_response_norm_vs_torch():
    torch = _torch()
    for shape in ((2, 6, 5), (2, 6, 3, 4), (1, 5, 2, 3, 2)):
        x = rng(9).standard_normal(shape).astype(np.float32)
        m, mt = nn.LocalResponseNorm(3, alpha=0.1, beta=0.6, k=2.0), torch.nn.LocalResponseNorm(3, 0.1, 0.6, 2.0)
        assert repr(m) == repr(mt)
        check_module_vs_torch(m, mt, [x])


# ---------------------------------------------------------------- batch norm layers

BN_CASES = [
    ("BatchNorm1d", 3, {}, (8, 3)),
    ("BatchNorm1d", 3, {"momentum": None}, (4, 3, 5)),
    ("BatchNorm2d", 4, {"affine": False}, (5, 4, 3, 3)),
    ("BatchNorm2d", 4, {"eps": 1e-3, "momentum": 0.3, "bias": False}, (2, 4, 3, 5)),
    ("BatchNorm3d", 2, {"track_running_stats": False}, (2, 2, 3, 2, 2)),
]


@pytest.mark.parametrize("name,c,kw,shape", BN_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BN_CASES)])
def test_batchnorm_running_stats_vs_torch(name, c, kw, shape):
    torch = _torch()
    m, mt = getattr(nn, name)(c, **kw), getattr(torch.nn, name)(c, **kw)
    assert repr(m) == repr(mt)
    assert list(m.state_dict()) == list(mt.state_dict())
    for step in range(4):  # training steps: batch statistics, running stats and num_batches_tracked updated
        x = (rng(10 + step).standard_normal(shape) * (step + 1) + step).astype(np.float32)
        check_module_vs_torch(m, mt, [x], copy=step == 0)
    if m.track_running_stats:
        assert int(m.num_batches_tracked) == 4
    m.eval()
    mt.eval()
    check_module_vs_torch(m, mt, [rng(20).standard_normal(shape).astype(np.float32)], copy=False)


def test_batchnorm_input_checks_and_reset():
    m = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"\[BatchNorm2d\] expected 4D input \(got 3D input"):
        m(t(np.zeros((2, 3, 4), np.float32)))
    with pytest.raises(ValueError, match=r"expected input with 3 channels"):
        m(t(np.zeros((2, 4, 2, 2), np.float32)))
    m(t(rng(21).standard_normal((4, 3, 2, 2)).astype(np.float32)))
    assert np.abs(m.running_mean.numpy()).sum() > 0
    m.reset_running_stats()
    close(m.running_mean, np.zeros(3, np.float32))
    close(m.running_var, np.ones(3, np.float32))
    assert int(m.num_batches_tracked) == 0
    assert m.num_batches_tracked.dtype == nd.int64


def test_batchnorm_state_dict_loads_from_torch():
    torch = _torch()
    mt = torch.nn.BatchNorm1d(3)
    mt(torch.randn(5, 3))
    m = nn.BatchNorm1d(3)
    m.load_state_dict({k: t(v.numpy()) for k, v in mt.state_dict().items()})
    close(m.running_mean, mt.running_mean)
    assert int(m.num_batches_tracked) == 1


# ---------------------------------------------------------------- other norm layers

@pytest.mark.parametrize("kw", [{}, {"elementwise_affine": False}, {"bias": False, "eps": 1e-3}])
def test_layernorm_vs_torch(kw):
    torch = _torch()
    m, mt = nn.LayerNorm([3, 4], **kw), torch.nn.LayerNorm([3, 4], **kw)
    assert repr(m) == repr(mt)
    if m.weight is not None:
        with ndgrad.no_grad():
            m.weight.copy_(t(rng(22).standard_normal((3, 4)).astype(np.float32)))
    check_module_vs_torch(m, mt, [rng(23).standard_normal((2, 5, 3, 4)).astype(np.float32)])


@pytest.mark.parametrize("kw", [{}, {"affine": False}, {"eps": 1e-2}])
def test_groupnorm_vs_torch(kw):
    torch = _torch()
    m, mt = nn.GroupNorm(2, 6, **kw), torch.nn.GroupNorm(2, 6, **kw)
    assert repr(m) == repr(mt)
    check_module_vs_torch(m, mt, [rng(24).standard_normal((3, 6, 4, 2)).astype(np.float32)])
    with pytest.raises(ValueError, match=r"num_channels \(5\) must be divisible by num_groups \(2\)"):
        nn.GroupNorm(2, 5)


INSTANCE_CASES = [
    ("InstanceNorm1d", {}, (3, 4, 6)),
    ("InstanceNorm1d", {"affine": True}, (4, 6)),
    ("InstanceNorm2d", {"track_running_stats": True}, (2, 4, 3, 3)),
    ("InstanceNorm3d", {"affine": True, "track_running_stats": True, "momentum": 0.3}, (2, 4, 2, 3, 2)),
]


@pytest.mark.parametrize("name,kw,shape", INSTANCE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(INSTANCE_CASES)])
def test_instancenorm_vs_torch(name, kw, shape):
    torch = _torch()
    m, mt = getattr(nn, name)(4, **kw), getattr(torch.nn, name)(4, **kw)
    assert repr(m) == repr(mt)
    for step in range(2):
        check_module_vs_torch(m, mt, [rng(25 + step).standard_normal(shape).astype(np.float32) + step],
                              copy=step == 0)
    m.eval()
    mt.eval()
    check_module_vs_torch(m, mt, [rng(30).standard_normal(shape).astype(np.float32)], copy=False)


def test_instancenorm_channel_mismatch():
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features \(4\)"):
        nn.InstanceNorm1d(4, affine=True)(t(np.zeros((2, 3, 5), np.float32)))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm1d(4)(t(rng(31).standard_normal((2, 3, 5)).astype(np.float32)))
    with pytest.raises(ValueError, match=r"\[InstanceNorm2d\] expected 3D \(unbatched\) or 4D"):
        nn.InstanceNorm2d(4)(t(np.zeros((2, 4), np.float32)))
