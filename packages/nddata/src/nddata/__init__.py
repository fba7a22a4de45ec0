"""nddata: datasets, samplers, DataLoader and transforms (``nd.utils.data``); needs ndcore only."""
from __future__ import annotations

from .version import __version__

__all__ = ["__version__"]
