"""Datasets and their combinators, against torch.utils.data where it is installed."""
import warnings

import numpy as np
import pytest

import ndcore
from nddata import (
    ChainDataset, ConcatDataset, DataLoader, Dataset, IterableDataset, StackDataset, Subset, TensorDataset,
    get_worker_info, random_split,
)


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i * i

    def __len__(self):
        return self.n


class Count(IterableDataset):
    def __init__(self, start, stop):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self):
        return self.stop - self.start


def test_tensor_dataset():
    x = ndcore.arange(12).reshape(4, 3)
    y = ndcore.tensor([10, 11, 12, 13])
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    xi, yi = ds[2]
    assert xi.tolist() == [6, 7, 8] and yi.item() == 12
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(x, ndcore.zeros(3))


def test_concat_dataset():
    a, b = Squares(3), Squares(2)
    ds = ConcatDataset([a, b])
    assert len(ds) == 5 and ds.cumulative_sizes == [3, 5]
    assert [ds[i] for i in range(5)] == [0, 1, 4, 0, 1]
    assert ds[-1] == 1 and ds[-5] == 0
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        ds[-6]
    assert [(a + b)[i] for i in range(5)] == [0, 1, 4, 0, 1]
    with pytest.raises(AssertionError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(AssertionError, match="does not support IterableDataset"):
        ConcatDataset([a, Count(0, 2)])


def test_chain_dataset():
    ds = ChainDataset([Count(0, 3), Count(10, 12)])
    assert list(ds) == [0, 1, 2, 10, 11] and len(ds) == 5
    assert list(Count(0, 2) + Count(5, 6)) == [0, 1, 5]
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(ChainDataset([Squares(2)]))


def test_subset():
    s = Subset(Squares(10), [9, 2, 4])
    assert len(s) == 3 and [s[i] for i in range(3)] == [81, 4, 16]
    assert s.__getitems__([2, 0]) == [16, 81]

    class Batched(Squares):
        def __getitems__(self, idx):
            return [("b", i) for i in idx]

    assert Subset(Batched(10), [9, 2, 4]).__getitems__([0, 2]) == [("b", 9), ("b", 4)]


def test_stack_dataset():
    ds = StackDataset(Squares(3), Squares(3))
    assert ds[2] == (4, 4) and len(ds) == 3
    dd = StackDataset(a=Squares(3), b=TensorDataset(ndcore.arange(3)))
    item = dd[1]
    assert item["a"] == 1 and item["b"][0].item() == 1
    assert dd.__getitems__([0, 2])[1]["a"] == 4
    assert StackDataset(Squares(3), Squares(3)).__getitems__([1, 2]) == [(1, 1), (4, 4)]
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(Squares(3), Squares(4))
    with pytest.raises(ValueError, match="At least one dataset should be passed"):
        StackDataset()
    with pytest.raises(ValueError, match="both types are given"):
        StackDataset(Squares(1), b=Squares(1))


def test_stack_dataset_matches_torch():
    torch = pytest.importorskip("torch")
    ours = StackDataset(Squares(4), Squares(4))
    ref = torch.utils.data.StackDataset(Squares(4), Squares(4))
    assert [ours[i] for i in range(4)] == [ref[i] for i in range(4)]
    assert ours.__getitems__([3, 1]) == ref.__getitems__([3, 1])


def test_random_split_lengths():
    ds = Squares(10)
    g = ndcore.Generator()
    g.manual_seed(0)
    parts = random_split(ds, [3, 7], generator=g)
    assert [len(p) for p in parts] == [3, 7]
    idx = sorted(parts[0].indices + parts[1].indices)
    assert idx == list(range(10))  # a partition of a permutation
    g2 = ndcore.Generator()
    g2.manual_seed(0)
    assert random_split(ds, [3, 7], generator=g2)[0].indices == parts[0].indices
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset!"):
        random_split(ds, [3, 3])


@pytest.mark.parametrize("n,fracs", [(10, [0.5, 0.5]), (11, [0.3, 0.3, 0.4]), (7, [0.1, 0.9]), (30, [0.25] * 4),
                                     (5, [1 / 3] * 3)])
def test_random_split_fractions_like_torch(n, fracs):
    torch = pytest.importorskip("torch")
    ours = random_split(Squares(n), fracs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.utils.data.random_split(range(n), fracs)
    assert [len(p) for p in ours] == [len(p) for p in ref]
    assert sorted(sum((list(p.indices) for p in ours), [])) == list(range(n))


def test_random_split_fraction_errors():
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(Squares(4), [1.5, -0.5])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(Squares(2), [0.9, 0.1])


def test_worker_info_outside_workers():
    assert get_worker_info() is None


class Sharded(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


def test_worker_info_in_workers():
    seen = []

    def init(worker_id):
        info = get_worker_info()
        assert info.id == worker_id and info.num_workers == 2
        assert isinstance(info.dataset, Sharded)
        with pytest.raises(RuntimeError, match="Cannot assign attributes to WorkerInfo objects"):
            info.id = 5

    g = ndcore.Generator()
    g.manual_seed(1)
    out = list(DataLoader(Sharded(10), batch_size=None, num_workers=2, worker_init_fn=init, generator=g))
    seen = [int(x) for x in out]
    assert sorted(seen) == list(range(10))
    assert seen[:4] == [0, 1, 2, 3]  # in order: workers alternate


def test_dataset_base_errors():
    with pytest.raises(NotImplementedError):
        Dataset()[0]
    with pytest.raises(NotImplementedError):
        iter(IterableDataset())
