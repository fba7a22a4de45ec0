"""Distance layers: ``PairwiseDistance`` and ``CosineSimilarity``."""
from __future__ import annotations

from .. import functional as F
from .module import Module

__all__ = ["PairwiseDistance", "CosineSimilarity"]


class PairwiseDistance(Module):
    """:math:`\\lVert x_1 - x_2 + \\epsilon \\rVert_p` along the last dim.

    Args:
        p: Norm degree.
        eps: Added to the difference.
        keepdim: Keep the reduced dim.
    """

    __constants__ = ["norm", "eps", "keepdim"]

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm = p
        self.eps = eps
        self.keepdim = keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class CosineSimilarity(Module):
    """Cosine similarity along ``dim``:
    :math:`\\frac{x_1 \\cdot x_2}{\\max(\\lVert x_1 \\rVert, \\epsilon) \\max(\\lVert x_2 \\rVert, \\epsilon)}`.

    Args:
        dim: Dimension of the vectors.
        eps: Lower bound of each norm.
    """

    __constants__ = ["dim", "eps"]

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)
