"""``nd.nn.parallel``: single-process data parallelism over the registered devices."""
from __future__ import annotations

from .data_parallel import DataParallel, data_parallel, gather, parallel_apply, replicate, scatter  # noqa: F401

__all__ = ["DataParallel", "data_parallel"]
