"""Loss layers: each holds its options and calls the matching :mod:`ndnn.functional` loss.

The elementwise losses raise on mismatched input/target shapes (see Note [Loss shapes must match]
in ``functional/_loss.py``).
"""
from __future__ import annotations

from .. import functional as F
from ..functional._utils import _reduction_string
from .distance import PairwiseDistance
from .module import Module

__all__ = [
    "L1Loss", "NLLLoss", "PoissonNLLLoss", "GaussianNLLLoss", "KLDivLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss",
    "HingeEmbeddingLoss", "MultiLabelMarginLoss", "SmoothL1Loss", "HuberLoss", "SoftMarginLoss", "CrossEntropyLoss",
    "MultiLabelSoftMarginLoss", "CosineEmbeddingLoss", "MarginRankingLoss", "MultiMarginLoss", "TripletMarginLoss",
    "TripletMarginWithDistanceLoss", "CTCLoss",
]


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            self.reduction = _reduction_string(size_average, reduce)
        else:
            self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean absolute error :math:`\\ell_i = |x_i - y_i|`, reduced by ``reduction``.

    Args:
        size_average: Deprecated (see ``reduction``).
        reduce: Deprecated (see ``reduction``).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities: :math:`\\ell_n = -w_{y_n} x_{n, y_n}`.

    Args:
        weight: Optional per-class weight ``(C,)``.
        size_average: Deprecated.
        ignore_index: Target value that contributes nothing.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` (weighted mean) | ``'sum'``.
    """

    __constants__ = ["ignore_index", "reduction"]

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """Poisson negative log-likelihood :math:`e^{x} - y x` (``log_input``) or :math:`x - y \\log(x + \\epsilon)`.

    Args:
        log_input: ``input`` is a log rate.
        full: Add the Stirling term.
        size_average: Deprecated.
        eps: Keeps the log finite when ``log_input=False``.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["log_input", "full", "eps", "reduction"]

    def __init__(self, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input = log_input
        self.full = full
        self.eps = eps

    def forward(self, log_input, target):
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                  reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """Gaussian negative log-likelihood :math:`\\tfrac12 (\\log v + (x - y)^2 / v)`, ``v`` clamped at ``eps``.

    Args:
        full: Add :math:`\\tfrac12 \\log 2\\pi`.
        eps: Lower clamp of the variance.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["full", "eps", "reduction"]

    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        super().__init__(None, None, reduction)
        self.full = full
        self.eps = eps

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence :math:`y (\\log y - x)` with ``input`` as log-probabilities.

    Args:
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'batchmean'`` | ``'sum'`` | ``'mean'``.
        log_target: ``target`` is in log space.
    """

    __constants__ = ["reduction"]

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MSELoss(_Loss):
    """Mean squared error :math:`\\ell_i = (x_i - y_i)^2`, reduced by ``reduction``.

    Args:
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities :math:`-w [y \\log x + (1 - y) \\log(1 - x)]`.

    Args:
        weight: Optional weight broadcast to the input.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy, computed stably from logits.

    Args:
        weight: Optional weight broadcast to the input.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        pos_weight: Optional weight of positive examples (per class, broadcast along the last dim).
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    """:math:`x` where :math:`y = 1`, :math:`\\max(0, \\Delta - x)` where :math:`y = -1`.

    Args:
        margin: The margin :math:`\\Delta`.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["margin", "reduction"]

    def __init__(self, margin=1.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input, target):
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    """Multi-label hinge loss over the target classes listed in ``target`` (ended by -1).

    Args:
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above: :math:`0.5 d^2 / \\beta` or :math:`d - 0.5 \\beta`.

    Args:
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        beta: The threshold.
    """

    __constants__ = ["reduction"]

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """:math:`0.5 d^2` below ``delta``, :math:`\\delta (d - 0.5 \\delta)` above.

    Args:
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        delta: The threshold.
    """

    __constants__ = ["reduction", "delta"]

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SoftMarginLoss(_Loss):
    """Two-class logistic loss :math:`\\log(1 + e^{-y x})`.

    Args:
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits: :math:`\\ell_n = -w_{y_n} \\log \\mathrm{softmax}(x_n)_{y_n}` (class indices)
    or :math:`-\\sum_c w_c y_{n,c} \\log \\mathrm{softmax}(x_n)_c` (probabilities).

    Args:
        weight: Optional per-class weight ``(C,)``.
        size_average: Deprecated.
        ignore_index: Target index that contributes nothing.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        label_smoothing: Mix the target with the uniform distribution by this amount.
    """

    __constants__ = ["ignore_index", "reduction", "label_smoothing"]

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Multi-label one-versus-all logistic loss, averaged over classes.

    Args:
        weight: Optional per-class weight ``(C,)``.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["reduction"]

    def forward(self, input, target):
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


class CosineEmbeddingLoss(_Loss):
    """:math:`1 - \\cos(x_1, x_2)` for :math:`y = 1`, :math:`\\max(0, \\cos(x_1, x_2) - m)` for :math:`y = -1`.

    Args:
        margin: The margin :math:`m`.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["margin", "reduction"]

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """:math:`\\max(0, -y (x_1 - x_2) + \\text{margin})`.

    Args:
        margin: The margin.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["margin", "reduction"]

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge loss :math:`\\sum_{i \\ne y} \\max(0, \\text{margin} - x_y + x_i)^p / C`.

    Args:
        p: 1 or 2.
        margin: The margin.
        weight: Optional per-class weight ``(C,)``.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["p", "margin", "reduction"]

    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError("only p == 1 and p == 2 supported")
        if weight is not None and weight.dim() != 1:
            raise ValueError(f"MultiMarginLoss: expected weight to be None or 1D tensor, got {weight.dim()}D instead")
        self.p = p
        self.margin = margin

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                   reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """:math:`\\max(d(a, p) - d(a, n) + \\text{margin}, 0)` with the p-norm distance.

    Args:
        margin: The margin.
        p: Norm degree.
        eps: Added to the differences.
        swap: Use the smaller of the two negative distances.
        size_average: Deprecated.
        reduce: Deprecated.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["margin", "p", "eps", "swap", "reduction"]

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got {margin} instead")
        self.margin = margin
        self.p = p
        self.eps = eps
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    """:class:`TripletMarginLoss` with a custom distance function (default pairwise distance).

    Args:
        distance_function: Callable ``(x1, x2) -> distances``.
        margin: The (positive) margin.
        swap: Use the smaller of the two negative distances.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    """

    __constants__ = ["margin", "swap", "reduction"]

    def __init__(self, *, distance_function=None, margin=1.0, swap=False, reduction="mean"):
        super().__init__(size_average=None, reduce=None, reduction=reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginWithDistanceLoss: expected margin to be greater than 0, got {margin} "
                             "instead")
        self.distance_function = distance_function if distance_function is not None else PairwiseDistance()
        self.margin = margin
        self.swap = swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_with_distance_loss(anchor, positive, negative,
                                                   distance_function=self.distance_function, margin=self.margin,
                                                   swap=self.swap, reduction=self.reduction)


class CTCLoss(_Loss):
    """Connectionist temporal classification loss.

    Args:
        blank: Blank label.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        zero_infinity: Replace infinite losses and their gradients by zero.
    """

    __constants__ = ["blank", "reduction"]

    def __init__(self, blank=0, reduction="mean", zero_infinity=False):
        super().__init__(reduction=reduction)
        self.blank = blank
        self.zero_infinity = zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction,
                          self.zero_infinity)
