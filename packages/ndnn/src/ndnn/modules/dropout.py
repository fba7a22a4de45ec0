"""Dropout layers: active in training mode (``module.train()``), identity in ``eval()``."""
from __future__ import annotations

from .. import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class _DropoutNd(Module):
    __constants__ = ["p", "inplace"]

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zeroes each element with probability ``p`` during training and scales the rest by :math:`1/(1-p)`.

    Args:
        p: Probability of an element being zeroed.
        inplace: Operate in place.
    """

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zeroes whole channels of ``(N, C, L)`` / ``(C, L)`` input with probability ``p`` during training.

    Args:
        p: Probability of a channel being zeroed.
        inplace: Operate in place.
    """

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of ``(N, C, H, W)`` input with probability ``p`` during training.

    Args:
        p: Probability of a channel being zeroed.
        inplace: Operate in place.
    """

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(_DropoutNd):
    """Zeroes whole channels of ``(N, C, D, H, W)`` input with probability ``p`` during training.

    Args:
        p: Probability of a channel being zeroed.
        inplace: Operate in place.
    """

    def forward(self, input):
        return F.dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Dropout for SELU networks that keeps zero mean and unit variance (see :func:`~ndnn.functional.alpha_dropout`).

    Args:
        p: Probability of an element being dropped.
        inplace: Operate in place.
    """

    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels.

    Args:
        p: Probability of a channel being dropped.
        inplace: Operate in place.
    """

    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)
