"""Samplers: index sequences against torch.utils.data (deterministic ones exactly, random ones
by their laws), argument checks, and DistributedSampler's partitions."""
import collections

import numpy as np
import pytest

import ndcore
from nddata import (
    BatchSampler, DistributedSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
    WeightedRandomSampler,
)


def _gen(seed):
    g = ndcore.Generator()
    g.manual_seed(seed)
    return g


def test_sequential():
    assert list(SequentialSampler(range(7))) == list(range(7))
    assert len(SequentialSampler(range(7))) == 7
    assert list(SequentialSampler([])) == []


@pytest.mark.parametrize("n,bs,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True),
                                            (0, 4, False)])
def test_batch_sampler_matches_torch(n, bs, drop_last):
    torch = pytest.importorskip("torch")
    ours = BatchSampler(SequentialSampler(range(n)), bs, drop_last)
    ref = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), bs, drop_last)
    assert list(ours) == list(ref)
    assert len(ours) == len(ref)


def test_batch_sampler_args():
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but got batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        BatchSampler(range(3), True, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value, but got drop_last=1"):
        BatchSampler(range(3), 2, 1)
    # any iterable of keys works as the inner sampler
    assert list(BatchSampler(["a", "b", "c"], 2, False)) == [["a", "b"], ["c"]]


def test_random_sampler_is_permutation_and_reproducible():
    s = RandomSampler(range(100), generator=_gen(3))
    a = list(s)
    assert sorted(a) == list(range(100)) and a != list(range(100))
    assert list(RandomSampler(range(100), generator=_gen(3))) == a
    # a shared generator advances: the next epoch differs
    assert list(s) != a
    # no generator: a fresh one seeded from the global RNG, so manual_seed makes it reproducible
    ndcore.manual_seed(5)
    b = list(RandomSampler(range(50)))
    ndcore.manual_seed(5)
    assert list(RandomSampler(range(50))) == b and sorted(b) == list(range(50))


def test_random_sampler_draws_lazily():
    # as torch's generator: iter() draws nothing, so a DataLoader can take its base seed from
    # the global RNG between iter(sampler) and the first index
    ndcore.manual_seed(7)
    it = iter(RandomSampler(range(20)))
    a = ndcore.rand(4).tolist()
    ndcore.manual_seed(7)
    assert ndcore.rand(4).tolist() == a
    first = [next(it) for _ in range(3)]
    assert sorted(first + list(it)) == list(range(20))
    g = _gen(2)
    it = iter(RandomSampler(range(10), generator=g))
    assert ndcore.randperm(10, generator=_gen(2)).tolist() == list(RandomSampler(range(10), generator=_gen(2)))
    assert list(it) == ndcore.randperm(10, generator=_gen(2)).tolist()


def test_random_sampler_num_samples_and_replacement():
    s = RandomSampler(range(10), num_samples=25, generator=_gen(0))
    out = list(s)
    assert len(out) == len(s) == 25
    # without replacement: whole permutations first, then a partial one
    assert sorted(out[:10]) == list(range(10)) and sorted(out[10:20]) == list(range(10))
    assert len(set(out[20:])) == 5
    r = list(RandomSampler(range(4), replacement=True, num_samples=4000, generator=_gen(1)))
    assert len(r) == 4000 and set(r) == {0, 1, 2, 3}
    counts = np.bincount(r, minlength=4) / 4000
    np.testing.assert_allclose(counts, 0.25, atol=0.04)
    with pytest.raises(TypeError, match="replacement should be a boolean value, but got replacement=0"):
        RandomSampler(range(3), replacement=0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        RandomSampler([])


def test_subset_random_sampler():
    idx = [3, 9, 12, 40]
    out = list(SubsetRandomSampler(idx, generator=_gen(2)))
    assert sorted(out) == idx and len(SubsetRandomSampler(idx)) == 4
    assert list(SubsetRandomSampler(idx, generator=_gen(2))) == out


def test_weighted_with_replacement_law():
    w = [0.1, 0.0, 0.3, 0.6]
    out = list(WeightedRandomSampler(w, 20000, generator=_gen(0)))
    freq = np.bincount(out, minlength=4) / 20000
    np.testing.assert_allclose(freq, w, atol=0.02)
    assert freq[1] == 0  # zero weight is never drawn


def test_weighted_without_replacement():
    w = [5.0, 1.0, 0.0, 2.0, 1.0]
    s = WeightedRandomSampler(w, 4, replacement=False, generator=_gen(1))
    out = list(s)
    assert len(out) == 4 and len(set(out)) == 4 and 2 not in out
    # the first draw follows the weights: index 0 first with probability 5/9
    firsts = collections.Counter(next(iter(WeightedRandomSampler(w, 1, replacement=False, generator=_gen(i))))
                                 for i in range(3000))
    assert abs(firsts[0] / 3000 - 5 / 9) < 0.04
    assert abs(firsts[3] / 3000 - 2 / 9) < 0.04
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        list(WeightedRandomSampler(w, 6, replacement=False))
    with pytest.raises(RuntimeError, match="not enough non-negative category"):
        list(WeightedRandomSampler(w, 5, replacement=False))


def test_weighted_args():
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, but got num_samples=-1"):
        WeightedRandomSampler([1.0], -1)
    with pytest.raises(ValueError, match="replacement should be a boolean value, but got replacement=None"):
        WeightedRandomSampler([1.0], 1, replacement=None)
    with pytest.raises(ValueError, match=r"weights should be a 1d sequence but given weights have shape \(1, 2\)"):
        WeightedRandomSampler([[1.0, 2.0]], 1)
    with pytest.raises(RuntimeError, match="probability entry < 0"):
        list(WeightedRandomSampler([1.0, -1.0], 1))
    with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
        list(WeightedRandomSampler([0.0, 0.0], 1))
    with pytest.raises(RuntimeError, match="infinity or NaN"):
        list(WeightedRandomSampler([1.0, float("nan")], 1))


def test_sampler_base():
    class Evens(Sampler):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(0, self.n, 2))

    assert list(BatchSampler(Evens(9), 2, False)) == [[0, 2], [4, 6], [8]]
    with pytest.raises(NotImplementedError):
        iter(Sampler())


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (2, 5, False),
                                                  (11, 4, True), (1, 3, False)])
def test_distributed_partitions_match_torch(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchDS

    seen = []
    for rank in range(replicas):
        ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        ref = TorchDS(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(ref)
        assert len(ours) == len(ref)
        seen.append(list(ours))
    assert len({len(s) for s in seen}) == 1  # every rank the same count


def test_distributed_shuffle_epochs():
    n, replicas = 23, 4
    def parts(epoch, seed=0):
        out = []
        for rank in range(replicas):
            s = DistributedSampler(range(n), num_replicas=replicas, rank=rank, seed=seed)
            s.set_epoch(epoch)
            out.append(list(s))
        return out
    p0 = parts(0)
    flat = sum(p0, [])
    assert len(flat) == 24 and set(flat) == set(range(n))  # one padded repeat
    assert parts(0) == p0  # the same on every replica and every call
    assert parts(1) != p0 and set(sum(parts(1), [])) == set(range(n))
    assert parts(0, seed=7) != p0


def test_distributed_args():
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval \[0, 2\]"):
        DistributedSampler(range(4), num_replicas=3, rank=3)
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(4))
    with pytest.raises(ValueError, match="pass num_replicas and rank"):
        DistributedSampler(range(4), num_replicas=2)
