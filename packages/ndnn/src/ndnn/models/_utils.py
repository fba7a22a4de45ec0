"""Shared helpers of the model definitions."""
from __future__ import annotations


def _no_weights(name, weights, kwargs):
    """Pretrained weights are never downloaded: ``weights`` must be None."""
    if weights is not None:
        raise ValueError(f"[{name}] pretrained weights are not available (no downloads): pass weights=None and load a "
                         f"state_dict yourself, got weights={weights!r}")
    kwargs.pop("progress", None)
    return kwargs
