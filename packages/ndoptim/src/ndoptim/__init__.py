"""ndoptim: optimizers and learning-rate schedulers (``nd.optim``)."""
from __future__ import annotations

from .version import __version__

__all__ = ["__version__"]
