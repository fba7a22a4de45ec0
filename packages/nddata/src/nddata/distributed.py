"""``DistributedSampler``: each of ``num_replicas`` processes sees its own equal share of a
dataset, as ``torch.utils.data.distributed``."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TypeVar

import ndcore

from .dataset import Dataset
from .sampler import Sampler

__all__ = ["DistributedSampler"]

T_co = TypeVar("T_co", covariant=True)


def _default_group(what: str) -> int:
    # nddist sits above nddata in the stack; look it up only when the caller leaves the
    # replica count or rank to the process group, and only if it is installed.
    try:
        import nddist
    except ModuleNotFoundError:
        nddist = None
    if nddist is None or not nddist.is_initialized():
        raise ValueError(
            "Default process group has not been initialized, please make sure to call init_process_group "
            f"(nddist) or pass num_replicas and rank to DistributedSampler explicitly (missing: {what}).")
    return nddist.get_world_size() if what == "num_replicas" else nddist.get_rank()


class DistributedSampler(Sampler[T_co]):
    """Restricts sampling to this replica's share of the dataset.

    Every replica gets ``ceil(len / num_replicas)`` indices: the index list is padded by
    repeating its head (``drop_last=False``) or cut to a multiple of ``num_replicas``
    (``drop_last=True``), then replica ``rank`` takes every ``num_replicas``-th index from
    ``rank``. Call ``set_epoch`` before each epoch so shuffling differs between epochs.

    Args:
        dataset: The dataset to share out.
        num_replicas: Number of processes (default: the nddist process group's world size).
        rank: This process's rank (default: its rank in the nddist process group).
        shuffle: Permute the indices, with seed ``seed + epoch`` (the same on every replica).
        seed: Base seed; must be equal on all replicas.
        drop_last: Drop the tail so that all replicas get the same count without padding.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None:
            num_replicas = _default_group("num_replicas")
        if rank is None:
            rank = _default_group("rank")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        if self.drop_last and len(self.dataset) % self.num_replicas != 0:
            self.num_samples = math.ceil((len(self.dataset) - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(len(self.dataset) / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[T_co]:
        if self.shuffle:
            g = ndcore.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = ndcore.randperm(len(self.dataset), generator=g).tolist()
        else:
            indices = list(range(len(self.dataset)))
        if not self.drop_last:
            padding_size = self.total_size - len(indices)
            if padding_size <= len(indices):
                indices += indices[:padding_size]
            else:
                indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
        else:
            indices = indices[: self.total_size]
        if len(indices) != self.total_size:
            raise AssertionError(f"Number of indices ({len(indices)}) does not match total_size ({self.total_size})")
        indices = indices[self.rank: self.total_size: self.num_replicas]
        if len(indices) != self.num_samples:
            raise AssertionError(f"Number of subsampled indices ({len(indices)}) does not match num_samples "
                                 f"({self.num_samples})")
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which offsets the shuffling seed so each epoch has its own order."""
        self.epoch = epoch
