"""Loss functions (torch's names, signatures and reductions).

Note [Loss shapes must match]: unlike torch, which only warns, the elementwise losses raise a
ValueError when ``input`` and ``target`` shapes differ, even if they would broadcast: ``(B, 1)``
against ``(B,)`` silently becomes a ``(B, B)`` loss, a classic silent bug.
"""
from __future__ import annotations

import math
import warnings

import ndcore as nd
import ndgrad

from ._distance import pairwise_distance
from ._utils import _reduce, _reduction_string

__all__ = [
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "cosine_embedding_loss",
    "margin_ranking_loss", "hinge_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
    "multilabel_soft_margin_loss", "multilabel_margin_loss", "multi_margin_loss", "soft_margin_loss", "ctc_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def _resolve(op, size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        return _reduction_string(size_average, reduce)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"[{op}] {reduction} is not a valid value for reduction "
                         "(expected 'none', 'mean' or 'sum')")
    return reduction


def _same_shape(op, input, target, names=("input", "target")):
    # See Note [Loss shapes must match].
    if input.shape != target.shape:
        a, b = tuple(input.shape), tuple(target.shape)
        try:
            hint = f"; they would broadcast silently to {tuple(nd.broadcast_shapes(a, b))}"
        except Exception:
            hint = ""
        raise ValueError(f"[{op}] {names[0]} of shape {a} and {names[1]} of shape {b} differ{hint}. "
                         f"Reshape them to the same shape.")


# ---------------------------------------------------------------- regression

def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error :math:`\\ell_i = (x_i - y_i)^2`, then ``reduction``.

    Args:
        input: Tensor of any shape.
        target: Tensor of the same shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: Optional per-element weight (broadcast to ``input``).
    """
    reduction = _resolve("mse_loss", size_average, reduce, reduction)
    _same_shape("mse_loss", input, target)
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "mse_loss")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error :math:`\\ell_i = |x_i - y_i|`, then ``reduction``.

    Args:
        input: Tensor of any shape.
        target: Tensor of the same shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: Optional per-element weight.
    """
    reduction = _resolve("l1_loss", size_average, reduce, reduction)
    _same_shape("l1_loss", input, target)
    loss = (input - target).abs()
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "l1_loss")


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """:math:`\\ell_i = 0.5 d_i^2 / \\beta` if :math:`d_i < \\beta` else :math:`d_i - 0.5\\beta`,
    with :math:`d_i = |x_i - y_i|` (L1 when ``beta == 0``).

    Args:
        input: Tensor of any shape.
        target: Tensor of the same shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        beta: Threshold between the quadratic and linear parts (non-negative).
    """
    reduction = _resolve("smooth_l1_loss", size_average, reduce, reduction)
    _same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"[smooth_l1_loss] smooth_l1_loss does not support negative values for beta, got {beta}")
    d = (input - target).abs()
    if beta == 0.0:
        loss = d
    else:
        # The quadratic branch sees min(d, beta), so both branches stay finite and agree at beta.
        q = d.clamp(max=beta)
        loss = nd.where(d < beta, q * q * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """:math:`\\ell_i = 0.5 d_i^2` if :math:`d_i < \\delta` else :math:`\\delta (d_i - 0.5\\delta)`.

    Args:
        input: Tensor of any shape.
        target: Tensor of the same shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        delta: Threshold (positive).
        weight: Optional per-element weight.
    """
    reduction = _resolve("huber_loss", None, None, reduction)
    _same_shape("huber_loss", input, target)
    if delta <= 0:
        raise ValueError(f"[huber_loss] delta must be positive, got {delta}")
    d = (input - target).abs()
    q = d.clamp(max=delta)
    loss = nd.where(d < delta, q * q * 0.5, (d - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "huber_loss")


# ---------------------------------------------------------------- classification

def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood :math:`\\ell_n = -w_{y_n} x_{n, y_n}`; ``'mean'`` divides by
    :math:`\\sum_n w_{y_n}` over non-ignored targets.

    Args:
        input: Log-probabilities ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
        target: Class indices ``(N,)``, ``()`` or ``(N, d1, ...)`` in ``[0, C)``.
        weight: Optional per-class weight ``(C,)``.
        ignore_index: Target value that contributes nothing.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction_string(size_average, reduce)
    # ndcore's loss ops check the target's shape, dtype and range against the input's.
    return nd.nll_loss(input, target, weight, reduction, ignore_index)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Cross entropy of unnormalised logits: ``nll_loss(log_softmax(input, 1), target)``, or with class
    probabilities as target :math:`\\ell_n = -\\sum_c w_c y_{n,c} \\log \\mathrm{softmax}(x_n)_c`.

    Args:
        input: Logits ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``.
        target: Class indices (like :func:`nll_loss`) or probabilities with ``input``'s shape.
        weight: Optional per-class weight ``(C,)``.
        ignore_index: Target index that contributes nothing (class-index targets only).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        label_smoothing: In ``[0, 1]``: mixes the target with the uniform distribution.
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction_string(size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"[cross_entropy] label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    return nd.cross_entropy_loss(input, target, weight, reduction, ignore_index, label_smoothing)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """:math:`\\ell_i = -w_i [y_i \\log x_i + (1 - y_i) \\log(1 - x_i)]` (logs clamped at -100).

    Args:
        input: Probabilities in ``[0, 1]``, any shape.
        target: Tensor of the same shape.
        weight: Optional weight broadcast to ``input``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("binary_cross_entropy", size_average, reduce, reduction)
    _same_shape("binary_cross_entropy", input, target)
    if weight is not None and weight.shape != input.shape:
        weight = weight.expand(input.shape)
    return nd.binary_cross_entropy(input, target, weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """Sigmoid + binary cross entropy in one stable expression:
    :math:`\\ell_i = -w_i [p\\, y_i \\log \\sigma(x_i) + (1 - y_i) \\log(1 - \\sigma(x_i))]`.

    Args:
        input: Logits, any shape.
        target: Tensor of the same shape (values in ``[0, 1]``).
        weight: Optional weight broadcast to ``input``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        pos_weight: Optional weight of positive examples, broadcast along the last (class) dim.
    """
    reduction = _resolve("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    return nd.binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence :math:`\\ell_i = y_i (\\log y_i - x_i)` with ``input`` in log space
    (``log_target=True``: :math:`e^{y_i} (y_i - x_i)`).

    Args:
        input: Log-probabilities.
        target: Probabilities (or log-probabilities with ``log_target``), same shape.
        reduction: ``'none'`` | ``'batchmean'`` | ``'sum'`` | ``'mean'``.
        log_target: ``target`` is given in log space.
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction_string(size_average, reduce)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    elif reduction not in ("none", "sum", "batchmean"):
        raise ValueError(f"[kl_div] {reduction} is not a valid value for reduction")
    _same_shape("kl_div", input, target)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # xlogy: 0 * log 0 is 0, and the log never sees the zeros (so neither does its gradient).
        pos = target > 0
        loss = nd.where(pos, target * nd.where(pos, target, 1.0).log(), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() else loss.sum()
    return _reduce(loss, reduction, "kl_div")


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """Poisson negative log-likelihood: :math:`e^{x} - y x` (``log_input``) or :math:`x - y \\log(x + \\epsilon)`;
    ``full`` adds Stirling's term :math:`y \\log y - y + \\tfrac12 \\log(2\\pi y)` where :math:`y > 1`.

    Args:
        input: Expected count (or its log), any shape.
        target: Observed counts, same shape.
        log_input: ``input`` is a log rate.
        full: Add the Stirling approximation term.
        eps: Keeps the log finite when ``log_input=False``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("poisson_nll_loss", size_average, reduce, reduction)
    _same_shape("poisson_nll_loss", input, target)
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        big = target > 1
        t = nd.where(big, target, 1.0)
        stirling = t * t.log() - t + 0.5 * (t * (2 * math.pi)).log()
        loss = loss + nd.where(big, stirling, 0.0)
    return _reduce(loss, reduction, "poisson_nll_loss")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Gaussian negative log-likelihood :math:`\\tfrac12 (\\log \\max(v, \\epsilon) + (x - y)^2 / \\max(v, \\epsilon))`
    (+ :math:`\\tfrac12 \\log 2\\pi` with ``full``).

    Args:
        input: Predicted means ``(N, *)``.
        target: Samples, same shape.
        var: Predicted variances: ``input``'s shape, or with one dim of size 1, or without the last dim.
        full: Add the constant term.
        eps: Lower clamp of ``var`` (the clamp passes gradients through unchanged).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("gaussian_nll_loss", None, None, reduction)
    _same_shape("gaussian_nll_loss", input, target)
    if isinstance(var, (int, float)):
        var = input.new_full(tuple(input.shape), float(var))
    if var.shape != input.shape:
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif input.dim() == var.dim() and sum(b for a, b in zip(input.shape, var.shape) if a != b) == 1:
            pass
        else:
            raise ValueError(f"[gaussian_nll_loss] var is of incorrect size: {tuple(var.shape)} for input of "
                             f"shape {tuple(input.shape)}")
    if bool((var < 0).any()):
        raise ValueError("[gaussian_nll_loss] var has negative entry/entries")
    var = var.clone()
    with ndgrad.no_grad():
        var.clamp_(min=eps)
    d = input - target
    loss = 0.5 * (var.log() + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction, "gaussian_nll_loss")


# ---------------------------------------------------------------- margin and embedding losses

def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """:math:`1 - \\cos(x_1, x_2)` where :math:`y = 1`, :math:`\\max(0, \\cos(x_1, x_2) - m)` where :math:`y = -1`.

    Args:
        input1: Tensor ``(N, D)`` or ``(D,)``.
        input2: Tensor of the same shape.
        target: Tensor ``(N,)`` or ``()`` of 1 / -1.
        margin: Margin :math:`m` in ``[-1, 1]``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("cosine_embedding_loss", size_average, reduce, reduction)
    _same_shape("cosine_embedding_loss", input1, input2, ("input1", "input2"))
    if input1.dim() not in (1, 2) or tuple(target.shape) != tuple(input1.shape[:-1]):
        raise ValueError(f"[cosine_embedding_loss] expected inputs (N, D) or (D,) and target (N,) or (), got "
                         f"{tuple(input1.shape)} and target {tuple(target.shape)}")
    eps = 1e-12
    prod = (input1 * input2).sum(-1)
    mag = ((input1 * input1).sum(-1) + eps) * ((input2 * input2).sum(-1) + eps)
    cos = prod / mag.sqrt()
    zeros = cos * 0.0
    loss = nd.where(target == 1, 1.0 - cos, zeros) + nd.where(target == -1, (cos - margin).clamp(min=0.0), zeros)
    return _reduce(loss, reduction, "cosine_embedding_loss")


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    """:math:`\\ell = \\max(0, -y (x_1 - x_2) + \\text{margin})`.

    Args:
        input1: Tensor ``(N,)`` or ``()``.
        input2: Tensor of the same shape.
        target: Tensor of 1 / -1, same shape.
        margin: Margin.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("margin_ranking_loss", size_average, reduce, reduction)
    if not (input1.shape == input2.shape == target.shape):
        raise ValueError(f"[margin_ranking_loss] All input tensors should have the same shape but got sizes: "
                         f"input1: {tuple(input1.shape)}, input2: {tuple(input2.shape)}, "
                         f"target: {tuple(target.shape)}")
    loss = (-target * (input1 - input2) + margin).clamp(min=0.0)
    return _reduce(loss, reduction, "margin_ranking_loss")


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """:math:`x` where :math:`y = 1`, :math:`\\max(0, \\text{margin} - x)` where :math:`y = -1`.

    Args:
        input: Tensor of any shape.
        target: Tensor of 1 / -1, same shape.
        margin: Margin.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("hinge_embedding_loss", size_average, reduce, reduction)
    _same_shape("hinge_embedding_loss", input, target)
    zeros = input * 0.0
    loss = (nd.where(target != 1, (margin - input).clamp(min=0.0), zeros)
            + nd.where(target != -1, input, zeros))
    return _reduce(loss, reduction, "hinge_embedding_loss")


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """:math:`\\max(d(a, p) - d(a, n) + \\text{margin}, 0)` with :math:`d` the p-norm distance.

    Args:
        anchor: Tensor ``(N, D)`` or ``(D,)``.
        positive: Same shape.
        negative: Same shape.
        margin: Margin.
        p: Norm degree.
        eps: Added to the differences (as :func:`pairwise_distance`).
        swap: Use :math:`\\min(d(a, n), d(p, n))` as the negative distance.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("triplet_margin_loss", size_average, reduce, reduction)
    if not (anchor.dim() == positive.dim() == negative.dim()):
        raise ValueError(f"[triplet_margin_loss] The anchor, positive, and negative tensors are expected to have "
                         f"the same number of dimensions, but got: anchor {anchor.dim()}D, positive "
                         f"{positive.dim()}D, and negative {negative.dim()}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = nd.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    loss = (margin + d_pos - d_neg).clamp(min=0.0)
    return _reduce(loss, reduction, "triplet_margin_loss")


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """:func:`triplet_margin_loss` with a custom distance (default :func:`pairwise_distance`).

    Args:
        anchor: Tensor ``(N, D)`` or ``(D,)``.
        positive: Same shape.
        negative: Same shape.
        distance_function: Callable ``(x1, x2) -> distances``.
        margin: Non-negative margin.
        swap: Use the smaller of the two negative distances.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("triplet_margin_with_distance_loss", None, None, reduction)
    if margin <= 0:
        raise ValueError(f"[triplet_margin_with_distance_loss] margin must be greater than 0, got {margin}")
    dist = pairwise_distance if distance_function is None else distance_function
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = nd.minimum(d_neg, dist(positive, negative))
    loss = (margin + d_pos - d_neg).clamp(min=0.0)
    return _reduce(loss, reduction, "triplet_margin_with_distance_loss")


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Two-class logistic loss :math:`\\log(1 + e^{-y x})`.

    Args:
        input: Tensor of any shape.
        target: Tensor of 1 / -1, same shape.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("soft_margin_loss", size_average, reduce, reduction)
    _same_shape("soft_margin_loss", input, target)
    return _reduce(nd.softplus(-target * input), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Multi-label one-versus-all logistic loss,
    :math:`\\ell_n = -\\frac1C \\sum_c w_c [y_c \\log\\sigma(x_c) + (1 - y_c) \\log\\sigma(-x_c)]`.

    Args:
        input: Tensor ``(N, C)`` or ``(C,)``.
        target: Tensor of 0 / 1, same shape.
        weight: Optional per-class weight ``(C,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("multilabel_soft_margin_loss", size_average, reduce, reduction)
    _same_shape("multilabel_soft_margin_loss", input, target)
    loss = -(target * -nd.softplus(-input) + (1 - target) * -nd.softplus(input))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(-1) / input.shape[-1]
    return _reduce(loss, reduction, "multilabel_soft_margin_loss")


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Multi-class multi-label hinge loss
    :math:`\\ell_n = \\sum_{j \\in Y} \\sum_{i \\notin Y} \\max(0, 1 - (x_j - x_i)) / C`, where ``target``
    lists the classes :math:`Y` and ends at the first -1.

    Args:
        input: Tensor ``(N, C)`` or ``(C,)``.
        target: Integer tensor of the same shape, class indices padded with -1.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("multilabel_margin_loss", size_average, reduce, reduction)
    _same_shape("multilabel_margin_loss", input, target)
    if input.dim() not in (1, 2):
        raise ValueError(f"[multilabel_margin_loss] expected input (N, C) or (C,), got {tuple(input.shape)}")
    squeeze = input.dim() == 1
    x = input.unsqueeze(0) if squeeze else input
    t = (target.unsqueeze(0) if squeeze else target).long()
    c = x.shape[1]
    if t.numel() and (int(t.max()) >= c or int(t.min()) < -1):
        raise ValueError(f"[multilabel_margin_loss] target values must be in [-1, {c - 1}]")
    valid = (t < 0).long().cumsum(1) == 0  # entries before the first -1
    tc = t.clamp(min=0)
    is_target = x.new_zeros(tuple(x.shape)).scatter_add(1, tc, valid.to(x.dtype)) > 0
    xj = x.gather(1, tc)  # (N, T)
    margins = (1.0 - xj.unsqueeze(2) + x.unsqueeze(1)).clamp(min=0.0)  # (N, T, C)
    mask = valid.unsqueeze(2).logical_and(is_target.logical_not().unsqueeze(1))
    loss = (margins * mask.to(x.dtype)).sum((1, 2)) / c
    if squeeze:
        loss = loss.squeeze(0)
    return _reduce(loss, reduction, "multilabel_margin_loss")


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """Multi-class hinge loss :math:`\\ell_n = \\sum_{i \\ne y} w_y \\max(0, \\text{margin} - x_y + x_i)^p / C`.

    Args:
        input: Tensor ``(N, C)`` or ``(C,)``.
        target: Class indices ``(N,)`` or ``()``.
        p: 1 or 2.
        margin: Margin.
        weight: Optional per-class weight ``(C,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """
    reduction = _resolve("multi_margin_loss", size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError(f"[multi_margin_loss] only p == 1 and p == 2 supported, got {p}")
    if input.dim() not in (1, 2) or tuple(target.shape) != tuple(input.shape[:-1]):
        raise ValueError(f"[multi_margin_loss] expected input (N, C) or (C,) and target (N,) or (), got "
                         f"{tuple(input.shape)} and {tuple(target.shape)}")
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != input.shape[-1]):
        raise ValueError(f"[multi_margin_loss] weight must be (C,) = ({input.shape[-1]},), "
                         f"got {tuple(weight.shape)}")
    squeeze = input.dim() == 1
    x = input.unsqueeze(0) if squeeze else input
    y = (target.unsqueeze(0) if squeeze else target).long().unsqueeze(1)
    c = x.shape[1]
    m = (margin - x.gather(1, y) + x).clamp(min=0.0)
    if p == 2:
        m = m * m
    if weight is not None:
        m = m * weight.gather(0, y.reshape(-1)).unsqueeze(1)
    not_y = x.new_ones(tuple(x.shape)).scatter_(1, y, 0.0)
    loss = (m * not_y).sum(1) / c
    if squeeze:
        loss = loss.squeeze(0)
    return _reduce(loss, reduction, "multi_margin_loss")


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist temporal classification loss (sum over all alignments of ``targets``).

    Args:
        log_probs: Log-probabilities ``(T, N, C)`` or ``(T, C)``.
        targets: Padded ``(N, S)`` or concatenated ``(sum(target_lengths),)`` class indices.
        input_lengths: ``(N,)`` lengths of the inputs (tensor or sequence).
        target_lengths: ``(N,)`` lengths of the targets.
        blank: Blank label.
        reduction: ``'none'`` | ``'mean'`` (each loss divided by its target length, then averaged) | ``'sum'``.
        zero_infinity: Replace infinite losses (impossible alignments) and their gradients by 0.
    """
    reduction = _resolve("ctc_loss", None, None, reduction)
    if isinstance(input_lengths, nd.Tensor):
        input_lengths = input_lengths.tolist()
    if isinstance(target_lengths, nd.Tensor):
        target_lengths = target_lengths.tolist()
    if isinstance(input_lengths, int):
        input_lengths = [input_lengths]
    if isinstance(target_lengths, int):
        target_lengths = [target_lengths]
    return nd.ctc_loss(log_probs, targets, list(input_lengths), list(target_lengths), blank, reduction,
                       zero_infinity)
