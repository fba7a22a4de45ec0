"""Losses (functional and modules): NumPy formulas, torch forward/backward, reductions, gradcheck, errors."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _nn_helpers import check_vs_torch, close, rng, t, tt

import ndcore as nd
import ndgrad
import ndnn
import ndnn.functional as F

R = rng(0)
X = R.standard_normal((4, 5)).astype(np.float32)
Y = R.standard_normal((4, 5)).astype(np.float32)
P = R.uniform(0.05, 0.95, (4, 5)).astype(np.float32)
B01 = (R.uniform(size=(4, 5)) > 0.5).astype(np.float32)
PM1 = np.where(R.uniform(size=(4, 5)) > 0.5, 1.0, -1.0).astype(np.float32)
PM1_N = np.array([1.0, -1.0, -1.0, 1.0], np.float32)
CLS = np.array([0, 3, 4, 1])


def _sp(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _lsm(x, axis=1):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


# name -> (functional call, NumPy per-element/per-sample loss, torch call, inputs)
ELEMENTWISE = {
    "mse_loss": (F.mse_loss, lambda x, y: (x - y) ** 2, "mse_loss", (X, Y)),
    "l1_loss": (F.l1_loss, lambda x, y: np.abs(x - y), "l1_loss", (X, Y)),
    "smooth_l1_loss": (lambda x, y, **k: F.smooth_l1_loss(x, y, beta=0.5, **k),
                       lambda x, y: np.where(np.abs(x - y) < 0.5, 0.5 * (x - y) ** 2 / 0.5, np.abs(x - y) - 0.25),
                       ("smooth_l1_loss", {"beta": 0.5}), (X, Y)),
    "huber_loss": (lambda x, y, **k: F.huber_loss(x, y, delta=0.7, **k),
                   lambda x, y: np.where(np.abs(x - y) < 0.7, 0.5 * (x - y) ** 2, 0.7 * (np.abs(x - y) - 0.35)),
                   ("huber_loss", {"delta": 0.7}), (X, Y)),
    "soft_margin_loss": (F.soft_margin_loss, lambda x, y: _sp(-y * x), "soft_margin_loss", (X, PM1)),
    "binary_cross_entropy": (F.binary_cross_entropy, lambda p, y: -(y * np.log(p) + (1 - y) * np.log(1 - p)),
                             "binary_cross_entropy", (P, B01)),
    "bce_with_logits": (F.binary_cross_entropy_with_logits, lambda x, y: (1 - y) * x + _sp(-x),
                        "binary_cross_entropy_with_logits", (X, P)),
    "kl_div_log_target": (lambda x, y, **k: F.kl_div(x, y, log_target=True, **k),
                          lambda x, y: np.exp(y) * (y - x), ("kl_div", {"log_target": True}), (X, Y)),
    "poisson_nll_loss": (F.poisson_nll_loss, lambda x, y: np.exp(x) - y * x, "poisson_nll_loss",
                         (X, np.abs(Y) * 3)),
    "poisson_nll_loss_full": (lambda x, y, **k: F.poisson_nll_loss(x, y, log_input=False, full=True, **k),
                              lambda x, y: x - y * np.log(x + 1e-8) + np.where(
                                  y > 1, y * np.log(np.maximum(y, 1)) - y + 0.5 * np.log(2 * np.pi * np.maximum(y, 1)),
                                  0),
                              ("poisson_nll_loss", {"log_input": False, "full": True}), (P * 4, np.round(Y ** 2 * 3))),
    "hinge_embedding_loss": (F.hinge_embedding_loss, lambda x, y: np.where(y == 1, x, np.maximum(0, 1 - x)),
                             "hinge_embedding_loss", (X, PM1)),
}

# targets that are labels or counts (torch gives NaN target grads for counts <= 1): input grads only
LABEL_TARGETS = {"soft_margin_loss", "hinge_embedding_loss", "binary_cross_entropy", "poisson_nll_loss_full"}


def _torch_call(torch, spec):
    name, kw = spec if isinstance(spec, tuple) else (spec, {})
    fn = getattr(torch.nn.functional, name)
    return lambda *a, **k: fn(*a, **kw, **k)


pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_elementwise_loss_numpy(name, reduction):
    fn, ref, _, inputs = ELEMENTWISE[name]
    r = ref(*(a.astype(np.float64) for a in inputs))
    expected = {"none": r, "mean": r.mean(), "sum": r.sum()}[reduction]
    close(fn(*(t(a) for a in inputs), reduction=reduction), np.float32(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_elementwise_loss_vs_torch(name, reduction):
    torch = pytest.importorskip("torch")
    fn, _, spec, inputs = ELEMENTWISE[name]
    tf = _torch_call(torch, spec)
    check_vs_torch(lambda *a: fn(*a, reduction=reduction), lambda *a: tf(*a, reduction=reduction), list(inputs),
                   grad=(0,) if name in LABEL_TARGETS else (0, 1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_loss_gradcheck(name):
    fn, _, _, inputs = ELEMENTWISE[name]
    xs = [t(a[:2, :3].astype(np.float64), requires_grad=True) for a in inputs]
    if name in LABEL_TARGETS:
        xs[1].requires_grad_(False)
    assert ndgrad.gradcheck(lambda *a: fn(*a, reduction="sum"), tuple(xs))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_loss_rejects_broadcasting_shapes(name):
    # See Note [Loss shapes must match]: (B, 1) vs (B,) would silently become a (B, B) loss.
    fn, _, _, inputs = ELEMENTWISE[name]
    a = t(inputs[0][:, :1])
    b = t(inputs[1][:, 0])
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\).*broadcast silently to \(4, 4\)"):
        fn(a, b)


def test_legacy_size_average_reduce():
    x, y = t(X), t(Y)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        s = F.mse_loss(x, y, size_average=False)
    close(s, F.mse_loss(x, y, reduction="sum"))
    with pytest.warns(UserWarning):
        close(F.l1_loss(x, y, reduce=False), F.l1_loss(x, y, reduction="none"))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.mse_loss(x, y, reduction="avg")


def test_mse_weight():
    w = np.array([1.0, 2.0, 0.0, 0.5, 1.0], np.float32)
    close(F.mse_loss(t(X), t(Y), weight=t(w), reduction="sum"), np.float32(((X - Y) ** 2 * w).sum()), rtol=1e-5)


# ---------------------------------------------------------------- classification

@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss_numpy(reduction):
    lp = _lsm(X.astype(np.float64))
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    tgt = np.array([0, 3, -100, 1])
    keep = tgt != -100
    per = np.where(keep, -lp[np.arange(4), np.where(keep, tgt, 0)] * w[np.where(keep, tgt, 0)], 0)
    expected = {"none": per, "sum": per.sum(), "mean": per.sum() / w[tgt[keep]].sum()}[reduction]
    out = F.nll_loss(t(lp.astype(np.float32)), t(tgt), weight=t(w.astype(np.float32)), reduction=reduction)
    close(out, np.float32(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.2}, {"ignore_index": 3}, {"reduction": "sum"},
                                {"reduction": "none", "label_smoothing": 0.1}])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices_vs_torch(kw, weighted):
    torch = pytest.importorskip("torch")
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], np.float32)
    arrays = [X, CLS] + ([w] if weighted else [])
    check_vs_torch(lambda x, y, *ww: F.cross_entropy(x, y, *ww, **kw),
                   lambda x, y, *ww: torch.nn.functional.cross_entropy(x, y, *ww, **kw), arrays, grad=(0,))


def test_cross_entropy_numpy_and_probability_targets():
    torch = pytest.importorskip("torch")
    lp = _lsm(X.astype(np.float64))
    close(F.cross_entropy(t(X), t(CLS)), np.float32(-lp[np.arange(4), CLS].mean()), rtol=1e-5)
    probs = np.exp(_lsm(Y.astype(np.float64))).astype(np.float32)
    close(F.cross_entropy(t(X), t(probs)), np.float32(-(probs * lp).sum(1).mean()), rtol=1e-5)
    check_vs_torch(lambda x, y: F.cross_entropy(x, y, label_smoothing=0.3),
                   lambda x, y: torch.nn.functional.cross_entropy(x, y, label_smoothing=0.3), [X, probs], grad=(0,))


def test_cross_entropy_spatial_and_gradcheck():
    torch = pytest.importorskip("torch")
    x = rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    y = rng(2).integers(0, 4, (2, 3, 3))
    for red in ("none", "mean"):
        check_vs_torch(lambda a, b: F.cross_entropy(a, b, reduction=red),
                       lambda a, b: torch.nn.functional.cross_entropy(a, b, reduction=red), [x, y], grad=(0,))
        check_vs_torch(lambda a, b: F.nll_loss(a, b, reduction=red),
                       lambda a, b: torch.nn.functional.nll_loss(a, b, reduction=red), [x, y], grad=(0,))
    xd = t(x[:1, :, :2, :2].astype(np.float64), requires_grad=True)
    yd = t(y[:1, :2, :2])
    assert ndgrad.gradcheck(lambda a: F.cross_entropy(a, yd, label_smoothing=0.1), (xd,))


def test_class_target_shape_errors():
    with pytest.raises(ValueError, match=r"expected target of shape \(4,\) for input of shape \(4, 5\), got \(3,\)"):
        F.cross_entropy(t(X), t(CLS[:3]))
    with pytest.raises(ValueError, match=r"\[nll_loss\] expected target of shape \(4,\)"):
        F.nll_loss(t(X), t(CLS.reshape(4, 1)))
    with pytest.raises(ValueError, match=r"\[cross_entropy_loss\] expected a probability target of the input's "
                                         r"shape \(4, 5\), got \(4, 4\)"):
        F.cross_entropy(t(X), t(X[:, :4]))
    with pytest.raises(TypeError, match=r"\[nll_loss\] expected an integer \(class index\) target"):
        F.nll_loss(t(X), t(X[:, 0]))
    with pytest.raises(IndexError, match="out of bounds"):
        F.nll_loss(t(X), t(CLS + 1))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(t(X), t(CLS), label_smoothing=1.5)


def test_bce_weight_and_pos_weight_vs_torch():
    torch = pytest.importorskip("torch")
    w = np.array([1.0, 0.5, 2.0, 1.0, 0.0], np.float32)
    pw = np.array([3.0, 1.0, 0.5, 2.0, 1.0], np.float32)
    check_vs_torch(lambda p, y, ww: F.binary_cross_entropy(p, y, ww),
                   lambda p, y, ww: torch.nn.functional.binary_cross_entropy(p, y, ww), [P, B01, w], grad=(0,))
    check_vs_torch(lambda x, y, ww, pp: F.binary_cross_entropy_with_logits(x, y, ww, pos_weight=pp),
                   lambda x, y, ww, pp: torch.nn.functional.binary_cross_entropy_with_logits(x, y, ww, pos_weight=pp),
                   [X, P, w, pw], grad=(0, 1))
    expected = -(pw * P * np.log(1 / (1 + np.exp(-X))) + (1 - P) * np.log(1 - 1 / (1 + np.exp(-X)))).mean()
    close(F.binary_cross_entropy_with_logits(t(X), t(P), pos_weight=t(pw)), np.float32(expected), rtol=1e-5)


def test_kl_div_reductions():
    torch = pytest.importorskip("torch")
    lp = _lsm(X).astype(np.float32)
    q = np.exp(_lsm(Y)).astype(np.float32)
    q[0, 0] = 0.0  # 0 log 0 = 0
    per = np.where(q > 0, q * (np.log(np.where(q > 0, q, 1)) - lp), 0)
    close(F.kl_div(t(lp), t(q), reduction="batchmean"), np.float32(per.sum() / 4), rtol=1e-5)
    close(F.kl_div(t(lp), t(q), reduction="none"), per.astype(np.float32), atol=1e-6)
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(t(lp), t(q))
    for red in ("batchmean", "sum", "none"):
        # torch's target gradient is NaN at q = 0; compare input gradients, check ours is finite
        check_vs_torch(lambda a, b: F.kl_div(a, b, reduction=red),
                       lambda a, b: torch.nn.functional.kl_div(a, b, reduction=red), [lp, q], grad=(0,))
    qn = t(q, requires_grad=True)
    F.kl_div(t(lp), qn, reduction="sum").backward()
    assert np.all(np.isfinite(qn.grad.numpy()))
    check_vs_torch(lambda a, b: F.kl_div(a, b, reduction="sum"),
                   lambda a, b: torch.nn.functional.kl_div(a, b, reduction="sum"), [lp, q + 0.01], grad=(0, 1))


def test_gaussian_nll_loss():
    torch = pytest.importorskip("torch")
    var = R.uniform(0.1, 2.0, (4, 5)).astype(np.float32)
    expected = 0.5 * (np.log(var) + (X - Y) ** 2 / var)
    close(F.gaussian_nll_loss(t(X), t(Y), t(var), reduction="none"), expected, rtol=1e-5, atol=1e-6)
    for v, kw in [(var, {}), (var[:, :1], {"full": True}), (var[:, 0], {"reduction": "sum"}),
                  (np.full((4, 5), 1e-9, np.float32), {})]:
        check_vs_torch(lambda a, b, c: F.gaussian_nll_loss(a, b, c, **kw),
                       lambda a, b, c: torch.nn.functional.gaussian_nll_loss(a, b, c, **kw), [X, Y, v], grad=(0, 2))
    with pytest.raises(ValueError, match="var has negative"):
        F.gaussian_nll_loss(t(X), t(Y), t(-var))
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(t(X), t(Y), t(var[:2]))


def test_margin_losses_vs_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x1, x2 = X[:, 0], Y[:, 0]
    check_vs_torch(lambda a, b, c: F.margin_ranking_loss(a, b, c, margin=0.3),
                   lambda a, b, c: tf.margin_ranking_loss(a, b, c, margin=0.3), [x1, x2, PM1_N], grad=(0, 1))
    close(F.margin_ranking_loss(t(x1), t(x2), t(PM1_N), 0.3, reduction="none"),
          np.maximum(0, -PM1_N * (x1 - x2) + 0.3))
    for red in ("none", "mean"):
        check_vs_torch(lambda a, b, c: F.cosine_embedding_loss(a, b, c, margin=0.1, reduction=red),
                       lambda a, b, c: tf.cosine_embedding_loss(a, b, c, margin=0.1, reduction=red),
                       [X, Y, PM1_N], grad=(0, 1))
    cos = (X * Y).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(Y, axis=1)
    close(F.cosine_embedding_loss(t(X), t(Y), t(PM1_N), reduction="none"),
          np.where(PM1_N == 1, 1 - cos, np.maximum(cos, 0)), atol=1e-6)
    neg = R.standard_normal((4, 5)).astype(np.float32)
    for kw in ({}, {"swap": True, "p": 1, "margin": 2.0}):
        check_vs_torch(lambda a, b, c: F.triplet_margin_loss(a, b, c, **kw),
                       lambda a, b, c: tf.triplet_margin_loss(a, b, c, **kw), [X, Y, neg], grad=(0, 1, 2))
    check_vs_torch(lambda a, b, c: F.triplet_margin_with_distance_loss(
        a, b, c, distance_function=lambda u, v: 1 - F.cosine_similarity(u, v), swap=True),
        lambda a, b, c: tf.triplet_margin_with_distance_loss(
            a, b, c, distance_function=lambda u, v: 1 - tf.cosine_similarity(u, v), swap=True),
        [X, Y, neg], grad=(0, 1, 2))
    d = lambda u, v: np.linalg.norm(u - v + 1e-6, axis=1)  # noqa: E731
    close(F.triplet_margin_loss(t(X), t(Y), t(neg), reduction="none"), np.maximum(1 + d(X, Y) - d(X, neg), 0),
          atol=1e-5)


def test_multiclass_margin_losses_vs_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], np.float32)
    for kw in ({}, {"p": 2, "margin": 0.5}, {"weight": w}):
        arrays = [X, CLS] + ([kw["weight"]] if "weight" in kw else [])
        extra = {k: v for k, v in kw.items() if k != "weight"}
        check_vs_torch(lambda a, b, *ww: F.multi_margin_loss(a, b, weight=ww[0] if ww else None, **extra),
                       lambda a, b, *ww: tf.multi_margin_loss(a, b, weight=ww[0] if ww else None, **extra), arrays,
                       grad=(0,))
    m = np.maximum(0, 1 - X[np.arange(4), CLS][:, None] + X)
    m[np.arange(4), CLS] = 0
    close(F.multi_margin_loss(t(X), t(CLS), reduction="none"), m.sum(1) / 5, atol=1e-6)
    tgt = np.array([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [-1, 1, 2, 3, 4], [4, 4, -1, 0, 0]])
    for red in ("none", "mean"):
        check_vs_torch(lambda a, b: F.multilabel_margin_loss(a, b, reduction=red),
                       lambda a, b: tf.multilabel_margin_loss(a, b, reduction=red), [X, tgt], grad=(0,))
    check_vs_torch(lambda a, b: F.multilabel_margin_loss(a, b), lambda a, b: tf.multilabel_margin_loss(a, b),
                   [X[0], tgt[0]], grad=(0,))
    for kw in ({}, {"weight": w}):
        arrays = [X, B01] + ([w] if kw else [])
        check_vs_torch(lambda a, b, *ww: F.multilabel_soft_margin_loss(a, b, *ww),
                       lambda a, b, *ww: tf.multilabel_soft_margin_loss(a, b, *ww), arrays, grad=(0, 1))


def test_margin_losses_gradcheck():
    x = t(X[:2, :4].astype(np.float64), requires_grad=True)
    y = t(Y[:2, :4].astype(np.float64), requires_grad=True)
    z = t(R.standard_normal((2, 4)), requires_grad=True)
    c = t(CLS[:2] % 4)
    assert ndgrad.gradcheck(lambda a: F.multi_margin_loss(a, c, p=2), (x,))
    assert ndgrad.gradcheck(lambda a: F.multilabel_margin_loss(a, t(np.array([[1, -1, 0, 0], [2, 3, -1, 0]]))), (x,))
    assert ndgrad.gradcheck(lambda a, b, n: F.triplet_margin_loss(a, b, n, swap=True), (x, y, z))
    assert ndgrad.gradcheck(lambda a, b: F.cosine_embedding_loss(a, b, t(np.array([1.0, -1.0]))), (x, y))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ctc_loss_vs_torch(reduction):
    torch = pytest.importorskip("torch")
    logits = rng(3).standard_normal((6, 2, 4)).astype(np.float32)
    lp = _lsm(logits, axis=2).astype(np.float32)
    targets = np.array([[1, 2, 2], [3, 1, 0]])
    il, tl = [6, 5], [3, 2]
    # Gradients are compared through log_softmax, as CTC is used: torch's gradient with respect to
    # log_probs itself is the logits' one (exp(lp) - posterior), which only agrees after it.
    check_vs_torch(lambda a, b: F.ctc_loss(F.log_softmax(a, 2), b, il, tl, reduction=reduction),
                   lambda a, b: torch.nn.functional.ctc_loss(a.log_softmax(2), b, il, tl, reduction=reduction),
                   [logits, targets], grad=(0,), rtol=1e-4, atol=1e-4)
    out = F.ctc_loss(t(lp), t(targets), t(np.array(il)), t(np.array(tl)), reduction=reduction)
    close(out, torch.nn.functional.ctc_loss(tt(lp), tt(targets), il, tl, reduction=reduction), rtol=1e-4)


# ---------------------------------------------------------------- loss modules

MODULES = [
    ("L1Loss", {}, (X, Y)), ("MSELoss", {"reduction": "sum"}, (X, Y)),
    ("SmoothL1Loss", {"beta": 0.3}, (X, Y)), ("HuberLoss", {"delta": 2.0}, (X, Y)),
    ("SoftMarginLoss", {}, (X, PM1)), ("KLDivLoss", {"reduction": "batchmean", "log_target": True}, (X, Y)),
    ("PoissonNLLLoss", {"log_input": True}, (X, np.abs(Y))),
    ("HingeEmbeddingLoss", {"margin": 0.5}, (X, PM1)),
    ("BCELoss", {}, (P, B01)), ("BCEWithLogitsLoss", {}, (X, P)),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, (X, CLS)),
    ("NLLLoss", {"ignore_index": 1}, (X, CLS)), ("MultiMarginLoss", {"p": 2}, (X, CLS)),
    ("MultiLabelSoftMarginLoss", {}, (X, B01)),
    ("MarginRankingLoss", {"margin": 0.2}, (X[:, 0], Y[:, 0], PM1_N)),
    ("CosineEmbeddingLoss", {"margin": 0.2}, (X, Y, PM1_N)),
    ("TripletMarginLoss", {"margin": 0.5, "p": 1.0}, (X, Y, P)),
    ("TripletMarginWithDistanceLoss", {"swap": True}, (X, Y, P)),
    ("GaussianNLLLoss", {"full": True}, (X, Y, P)),
]


@pytest.mark.parametrize("name,kw,inputs", MODULES, ids=[m[0] for m in MODULES])
def test_loss_module_vs_torch_and_repr(name, kw, inputs):
    torch = pytest.importorskip("torch")
    m, mt = getattr(ndnn, name)(**kw), getattr(torch.nn, name)(**kw)
    assert repr(m) == repr(mt)
    assert m.reduction == mt.reduction
    grad = tuple(i for i, a in enumerate(inputs) if a.dtype == np.float32 and a is not PM1 and a is not PM1_N
                 and a is not B01 and not (name == "KLDivLoss" and i == 1))
    check_vs_torch(m, mt, list(inputs), grad=grad, rtol=1e-4, atol=1e-5)


def test_weighted_loss_modules_register_weight_buffer():
    torch = pytest.importorskip("torch")
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], np.float32)
    m = ndnn.CrossEntropyLoss(weight=t(w))
    assert list(m.state_dict()) == list(torch.nn.CrossEntropyLoss(weight=tt(w)).state_dict()) == ["weight"]
    mb = ndnn.BCEWithLogitsLoss(pos_weight=t(w))
    assert sorted(dict(mb.named_buffers())) == ["pos_weight"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ndnn.MSELoss(size_average=False).reduction == "sum"
        assert ndnn.L1Loss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="only p == 1 and p == 2"):
        ndnn.MultiMarginLoss(p=3)
    with pytest.raises(ValueError, match="margin"):
        ndnn.TripletMarginWithDistanceLoss(margin=0)


def test_ctc_module_and_integer_lengths():
    torch = pytest.importorskip("torch")
    lp = _lsm(rng(4).standard_normal((5, 3)), axis=1).astype(np.float32)  # unbatched (T, C)
    tgt = np.array([1, 2])
    m = ndnn.CTCLoss(blank=0, zero_infinity=True)
    assert repr(m) == repr(torch.nn.CTCLoss(zero_infinity=True))
    close(m(t(lp), t(tgt), 5, 2), torch.nn.CTCLoss(zero_infinity=True)(tt(lp), tt(tgt), (5,), (2,)), rtol=1e-4)


def test_loss_values_are_scalars_with_grad():
    x = t(X, requires_grad=True)
    loss = ndnn.MSELoss()(x, t(Y))
    assert loss.dim() == 0 and loss.requires_grad
    loss.backward()
    close(x.grad, 2 * (X - Y) / X.size, atol=1e-6)
    assert math.isfinite(float(loss))
    assert nd.is_tensor(loss)
