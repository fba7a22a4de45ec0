"""nddata (``nd.utils.data``): datasets, samplers, collation and a multiprocess DataLoader;
needs ndcore only.

``nddata.datasets``, ``nddata.transforms`` and ``nddata.utils`` are submodules imported on first
use, so ``import nddata`` stays light.
"""
from __future__ import annotations

import importlib

from . import distributed
from ._collate import collate, default_collate, default_collate_fn_map, default_convert
from ._worker import WorkerInfo, get_worker_info
from .dataloader import DataLoader
from .dataset import (
    ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset, TensorDataset, random_split,
)
from .distributed import DistributedSampler
from .flat_buffer import FlatBuffer
from .sampler import (
    BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler, WeightedRandomSampler,
)
from .version import __version__

_LAZY_SUBMODULES = ("datasets", "transforms", "utils")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler", "FlatBuffer",
    "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "StackDataset", "Subset",
    "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "__version__", "collate",
    "default_collate", "default_collate_fn_map", "default_convert", "distributed", "get_worker_info",
    "random_split",
]
