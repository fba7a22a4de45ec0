"""Datasets: the map-style and iterable-style bases and their combinators, as in
``torch.utils.data.dataset``."""
from __future__ import annotations

import bisect
import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Generic, Iterable, Iterator, TypeVar

import ndcore

__all__ = [
    "ChainDataset", "ConcatDataset", "Dataset", "IterableDataset", "StackDataset", "Subset", "TensorDataset",
    "random_split",
]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: ``dataset[key]`` returns one sample.

    Subclasses implement ``__getitem__`` and usually ``__len__`` (which the default samplers
    need). A subclass may also implement ``__getitems__(indices) -> list`` to fetch a whole batch
    at once with vectorised ops; DataLoader then calls it instead of ``__getitem__`` per index.
    """

    def __getitem__(self, index) -> T_co:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: "Dataset") -> "ConcatDataset":
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """An iterable-style dataset: ``iter(dataset)`` yields the samples.

    With ``num_workers > 0`` every worker iterates its own copy; use ``get_worker_info()`` in
    ``__iter__`` to give each worker its own shard, or the samples repeat once per worker.
    """

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other: Dataset) -> "ChainDataset":
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the ``index``-th rows of the given tensors (same first dimension).

    Args:
        *tensors: Tensors whose first dimension is the dataset's length.
    """

    def __init__(self, *tensors) -> None:
        if not all(tensors[0].size(0) == t.size(0) for t in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].size(0)


class StackDataset(Dataset):
    """Stacks datasets of equal length into samples of tuples (positional) or dicts (keyword).

    Args:
        *args: Datasets; a sample is ``(args[0][i], args[1][i], ...)``.
        **kwargs: Datasets; a sample is ``{key: kwargs[key][i], ...}``. Not with ``args``.
    """

    def __init__(self, *args: Dataset, **kwargs: Dataset) -> None:
        if args:
            if kwargs:
                raise ValueError("Supported either ``tuple``- (via ``args``) or``dict``- (via ``kwargs``) like "
                                 "input/output, but both types are given.")
            self._length = len(args[0])
            if any(self._length != len(dataset) for dataset in args):
                raise ValueError("Size mismatch between datasets")
            self.datasets = args
        elif kwargs:
            tmp = list(kwargs.values())
            self._length = len(tmp[0])
            if any(self._length != len(dataset) for dataset in tmp):
                raise ValueError("Size mismatch between datasets")
            self.datasets = kwargs
        else:
            raise ValueError("At least one dataset should be passed")

    def __getitem__(self, index):
        if isinstance(self.datasets, dict):
            return {k: dataset[index] for k, dataset in self.datasets.items()}
        return tuple(dataset[index] for dataset in self.datasets)

    def __getitems__(self, indices: list):
        # Forward to the members' own __getitems__ where they have one, as torch does.
        batch: list = [{} if isinstance(self.datasets, dict) else [] for _ in indices]
        items = self.datasets.items() if isinstance(self.datasets, dict) else enumerate(self.datasets)
        for key, dataset in items:
            if callable(getattr(dataset, "__getitems__", None)):
                samples = dataset.__getitems__(indices)
                if len(samples) != len(indices):
                    raise ValueError("Nested dataset's output size mismatch. "
                                     f"Expected {len(indices)}, got {len(samples)}")
            else:
                samples = [dataset[i] for i in indices]
            for data, sample in zip(batch, samples):
                if isinstance(data, dict):
                    data[key] = sample
                else:
                    data.append(sample)
        return batch if isinstance(self.datasets, dict) else [tuple(b) for b in batch]

    def __len__(self) -> int:
        return self._length


class ConcatDataset(Dataset):
    """The concatenation of several map-style datasets.

    Args:
        datasets: The datasets, in order (none may be an IterableDataset).
    """

    datasets: list
    cumulative_sizes: list

    @staticmethod
    def cumsum(sequence):
        r, s = [], 0
        for e in sequence:
            s += len(e)
            r.append(s)
        return r

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if len(self.datasets) == 0:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = self.cumsum(self.datasets)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx if dataset_idx == 0 else idx - self.cumulative_sizes[dataset_idx - 1]
        return self.datasets[dataset_idx][sample_idx]


class ChainDataset(IterableDataset):
    """Chains iterable-style datasets one after another (assembled lazily, on iteration).

    Args:
        datasets: The iterable-style datasets to chain.
    """

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        super().__init__()
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise AssertionError("ChainDataset only supports IterableDataset")
            total += len(d)
        return total


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``.

    Args:
        dataset: The whole dataset.
        indices: Indices into it, in the order the subset presents them.
    """

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[idx] for idx in indices])
        return [self.dataset[self.indices[idx]] for idx in indices]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Splits ``dataset`` into non-overlapping random subsets of the given lengths.

    Args:
        dataset: The dataset to split.
        lengths: Lengths of the splits, or fractions summing to 1: each split then gets
            ``floor(frac * len(dataset))`` and the remainder goes one by one, round-robin, to
            the splits from the first on (as torch does).
        generator: ``ndcore.Generator`` for the permutation (default: the global generator).

    Returns:
        One ``Subset`` per length; together they hold a permutation of the dataset's indices.
    """
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        subset_lengths: list[int] = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            subset_lengths.append(int(math.floor(len(dataset) * frac)))
        remainder = len(dataset) - sum(subset_lengths)
        for i in range(remainder):
            subset_lengths[i % len(subset_lengths)] += 1
        lengths = subset_lengths
        for i, length in enumerate(lengths):
            if length == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              stacklevel=2)
    if sum(lengths) != len(dataset):
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    kwargs = {} if generator is None else {"generator": generator}
    indices = ndcore.randperm(sum(lengths), **kwargs).tolist()
    return [Subset(dataset, indices[offset - length: offset])
            for offset, length in zip(itertools.accumulate(lengths), lengths)]
