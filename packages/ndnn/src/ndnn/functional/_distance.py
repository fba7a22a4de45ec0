"""Distances between vectors: ``pairwise_distance``, ``cosine_similarity``, ``pdist``."""
from __future__ import annotations

import ndcore as nd

__all__ = ["pairwise_distance", "cosine_similarity", "pdist"]


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """:math:`\\lVert x_1 - x_2 + \\epsilon \\rVert_p` along the last dim (inputs broadcast).

    Args:
        x1: Tensor ``(N, D)`` or ``(D,)``.
        x2: Tensor broadcastable with ``x1``.
        p: Norm degree.
        eps: Added to the difference to avoid a zero norm's undefined gradient.
        keepdim: Keep the reduced dim.
    """
    if x1.dim() == 0 or x2.dim() == 0:
        raise ValueError(f"[pairwise_distance] inputs must have at least 1 dim, got {tuple(x1.shape)} and "
                         f"{tuple(x2.shape)}")
    return (x1 - x2 + eps).norm(p, -1, keepdim=keepdim)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """Cosine similarity along ``dim``:
    :math:`\\frac{x_1 \\cdot x_2}{\\max(\\lVert x_1 \\rVert, \\epsilon)\\,\\max(\\lVert x_2 \\rVert, \\epsilon)}`.

    Args:
        x1: Tensor.
        x2: Tensor broadcastable with ``x1``.
        dim: Dimension of the vectors.
        eps: Lower bound of each norm.
    """
    if x1.shape != x2.shape:
        # norms are taken over the broadcast vectors, as torch does
        x1, x2 = nd.broadcast_tensors(x1, x2)
    n1 = x1.norm(2, dim, keepdim=True).clamp(min=eps)
    n2 = x2.norm(2, dim, keepdim=True).clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pdist(input, p=2):
    """p-norm distances between every pair of rows of ``input`` ``(N, M)``: the upper triangle of
    the ``(N, N)`` distance matrix, row by row, shape ``(N (N - 1) / 2,)``.

    Args:
        input: Tensor ``(N, M)``.
        p: Norm degree (non-negative).
    """
    if input.dim() != 2:
        raise ValueError(f"[pdist] pdist only supports 2D tensors, got: {input.dim()}D of shape "
                         f"{tuple(input.shape)}")
    if p < 0:
        raise ValueError(f"[pdist] pdist only supports non-negative p values, got {p}")
    n = input.shape[0]
    if n < 2:
        return input.new_zeros((0,))
    ij = input.new_ones((n, n), dtype=nd.int64).triu(1).nonzero()
    diff = input.index_select(0, ij[:, 0]) - input.index_select(0, ij[:, 1])
    return diff.norm(p, -1)
