"""Samplers: the order in which DataLoader visits a map-style dataset, as in
``torch.utils.data.sampler``. Random draws use ndcore's generators (``generator=`` takes an
``ndcore.Generator``; None means a fresh one seeded from the global generator per epoch)."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Generic, TypeVar

import ndcore

__all__ = [
    "BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
    "WeightedRandomSampler",
]

T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class: ``__iter__`` yields dataset keys (or lists of keys for batch samplers);
    ``__len__`` is optional but DataLoader's ``len()`` needs it."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """Yields ``0, 1, ..., len(data_source) - 1``.

    Args:
        data_source: The dataset to sample from (only its length is used).
    """

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


def _fresh_generator():
    # torch: a new generator per epoch, seeded from the global one, so seeding the global RNG
    # makes shuffling reproducible without sharing a stream with the model's own draws.
    seed = int(ndcore.empty((), dtype=ndcore.int64).random_().item())
    g = ndcore.Generator()
    g.manual_seed(seed)
    return g


def _gen_kwargs(generator) -> dict:
    return {} if generator is None else {"generator": generator}


class RandomSampler(Sampler[int]):
    """Yields the dataset's indices in random order.

    Args:
        data_source: The dataset to sample from.
        replacement: Draw with replacement (each draw uniform over the dataset).
        num_samples: How many indices to yield (default ``len(data_source)``); without
            replacement more than the length yields whole permutations one after another.
        generator: ``ndcore.Generator`` for the draws.
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator=None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={self.replacement}")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        # Draws stay lazy (nothing is drawn before the first next(), as with torch's generator),
        # but the indices come out of C-level list iterators: resuming a generator frame per
        # index costs as much as the whole permutation.
        return itertools.chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[int]]:
        n = len(self.data_source)
        generator = _fresh_generator() if self.generator is None else self.generator
        if self.replacement:
            for _ in range(self.num_samples // 32):
                yield ndcore.randint(0, n, (32,), dtype=ndcore.int64, generator=generator).tolist()
            yield ndcore.randint(0, n, (self.num_samples % 32,), dtype=ndcore.int64, generator=generator).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield ndcore.randperm(n, generator=generator).tolist()
            yield ndcore.randperm(n, generator=generator).tolist()[: self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """Yields the given indices in random order, without replacement.

    Args:
        indices: The indices to permute.
        generator: ``ndcore.Generator`` for the permutation.
    """

    def __init__(self, indices: Sequence[int], generator=None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        for i in ndcore.randperm(len(self.indices), **_gen_kwargs(self.generator)).tolist():
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


def _multinomial(weights, num_samples: int, replacement: bool, generator):
    """Indices drawn with probability proportional to ``weights`` (float64, 1-D), with torch's
    ``multinomial`` checks. With replacement: inverse CDF (searchsorted of uniform draws);
    without: the exponential race (the ``num_samples`` smallest ``-log(u) / w``, in arrival
    order), which has the law of sequential draws without replacement."""
    if not bool(ndcore.isfinite(weights).all()):
        raise RuntimeError("invalid multinomial distribution (encountering probability entry = infinity or NaN)")
    if bool((weights < 0).any()):
        raise RuntimeError("invalid multinomial distribution (encountering probability entry < 0)")
    n = weights.shape[0]
    if not replacement and num_samples > n:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if float(weights.sum()) <= 0:
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    kw = _gen_kwargs(generator)
    if replacement:
        cdf = weights.cumsum(0)
        u = ndcore.rand(num_samples, dtype=ndcore.float64, **kw) * cdf[-1]
        return ndcore.searchsorted(cdf, u, right=True).clamp(max=n - 1)
    if int((weights > 0).sum()) < num_samples:
        raise RuntimeError("invalid multinomial distribution (with replacement=False, not enough non-negative "
                           "category to sample)")
    u = ndcore.rand(n, dtype=ndcore.float64, **kw)
    keys = ndcore.log(u) / weights  # -key is the arrival time; zero weights arrive at +inf
    return ndcore.topk(keys, num_samples).indices


class WeightedRandomSampler(Sampler[int]):
    """Yields indices ``0..len(weights)-1`` drawn with probabilities proportional to ``weights``.

    Args:
        weights: Non-negative weights, one per index (need not sum to one).
        num_samples: How many indices to draw.
        replacement: Draw with replacement; without, an index is drawn at most once.
        generator: ``ndcore.Generator`` for the draws.
    """

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator=None) -> None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        weights_tensor = ndcore.as_tensor(weights, dtype=ndcore.float64)
        if len(weights_tensor.shape) != 1:
            raise ValueError("weights should be a 1d sequence but given "
                             f"weights have shape {tuple(weights_tensor.shape)}")
        self.weights = weights_tensor
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        yield from _multinomial(self.weights, self.num_samples, self.replacement, self.generator).tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list[int]]):
    """Groups another sampler's indices into lists of ``batch_size``.

    Args:
        sampler: The index sampler (any iterable of keys).
        batch_size: Indices per batch.
        drop_last: Drop the last batch when it is short.
    """

    def __init__(self, sampler: Sampler[int] | Iterable[int], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        sampler_iter = iter(self.sampler)
        if self.drop_last:
            for batch in zip(*[sampler_iter] * self.batch_size):
                yield [*batch]
        else:
            batch = [*itertools.islice(sampler_iter, self.batch_size)]
            while batch:
                yield batch
                batch = [*itertools.islice(sampler_iter, self.batch_size)]

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
