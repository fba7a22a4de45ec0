"""DataLoader: argument checks (torch's messages), batching, samplers, iterable datasets,
workers (order, seeds, persistence, prefetch, shared-memory batches)."""
import os
import random
import time

import numpy as np
import pytest

import ndcore
from nddata import (
    BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler, TensorDataset, get_worker_info,
)
from nddata import _shm


class Range(Dataset):
    def __init__(self, n, shape=(3,)):
        self.n, self.shape = n, shape

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return ndcore.full(self.shape, float(i)), i


class Batched(Range):
    calls = 0

    def __getitems__(self, idx):
        t = ndcore.tensor([float(i) for i in idx]).reshape(len(idx), 1).expand(len(idx), *self.shape) * 1
        return [(t[k], -i) for k, i in enumerate(idx)]


class Stream(IterableDataset):
    def __init__(self, n, shard=True):
        self.n, self.shard = n, shard

    def __iter__(self):
        info = get_worker_info()
        if info is None or not self.shard:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


class Seeds(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return {"worker": info.id, "seed": info.seed, "py": random.random(), "np": float(np.random.rand()),
                "nd": float(ndcore.rand(1))}


def _gen(seed):
    g = ndcore.Generator()
    g.manual_seed(seed)
    return g


def _labels(loader):
    return [int(v) for b in loader for v in (b[1].tolist() if isinstance(b[1], ndcore.Tensor) else [b[1]])]


def _flat(loader):
    return [int(v) for b in loader for v in b.tolist()]


def _our_segments():
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"ndd_{os.getpid()}_")]


def test_argument_errors_match_torch():
    torch = pytest.importorskip("torch")
    td = torch.utils.data
    ds, its = Range(4), Stream(4)
    cases = [
        dict(num_workers=-1), dict(timeout=-1), dict(prefetch_factor=2), dict(num_workers=1, prefetch_factor=-1),
        dict(persistent_workers=True), dict(sampler=[0, 1], shuffle=True),
        dict(batch_sampler=[[0]], batch_size=2), dict(batch_sampler=[[0]], drop_last=True),
        dict(batch_size=None, drop_last=True), dict(multiprocessing_context="fork"),
        dict(num_workers=1, multiprocessing_context="nope"), dict(num_workers=1, multiprocessing_context=3),
    ]
    for kw in cases:
        with pytest.raises((ValueError, TypeError)) as ours:
            DataLoader(ds, **kw)
        with pytest.raises((ValueError, TypeError)) as ref:
            td.DataLoader(ds, **kw)
        assert type(ours.value) is type(ref.value), kw
        assert str(ours.value).replace("nddata", "torch") == str(ref.value), kw

    class TorchStream(td.IterableDataset):
        def __iter__(self):
            return iter(range(4))

    for kw in [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])]:
        with pytest.raises(ValueError) as ours:
            DataLoader(its, **kw)
        with pytest.raises(ValueError) as ref:
            td.DataLoader(TorchStream(), **kw)
        assert str(ours.value) == str(ref.value)
    dl = DataLoader(ds)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        dl.batch_size = 3


def test_len_and_batches():
    dl = DataLoader(Range(10), batch_size=4)
    assert len(dl) == 3
    batches = list(dl)
    assert [tuple(b[0].shape) for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert batches[1][1].tolist() == [4, 5, 6, 7] and batches[1][0][2].tolist() == [6.0] * 3
    assert len(DataLoader(Range(10), batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(Stream(10), batch_size=4)) == 3
    assert len(DataLoader(Stream(10), batch_size=4, drop_last=True)) == 2
    assert len(DataLoader(Stream(10), batch_size=None)) == 10


def test_batch_size_none_and_batch_sampler():
    out = list(DataLoader(Range(3), batch_size=None))
    assert [o[1] for o in out] == [0, 1, 2] and tuple(out[0][0].shape) == (3,)
    arr = list(DataLoader([np.arange(2), np.arange(2) + 5], batch_size=None))
    assert isinstance(arr[1], ndcore.Tensor) and arr[1].tolist() == [5, 6]
    bs = BatchSampler(SequentialSampler(range(7)), 3, True)
    assert _labels(DataLoader(Range(7), batch_sampler=bs)) == list(range(6))
    assert _labels(DataLoader(Range(5), batch_sampler=[[4, 0], [2]])) == [4, 0, 2]


def test_shuffle_is_permutation_and_follows_generator():
    a = _labels(DataLoader(Range(50), batch_size=8, shuffle=True, generator=_gen(1)))
    b = _labels(DataLoader(Range(50), batch_size=8, shuffle=True, generator=_gen(1)))
    assert a == b and sorted(a) == list(range(50)) and a != list(range(50))
    c = _labels(DataLoader(Range(50), batch_size=8, shuffle=True, num_workers=2, generator=_gen(1)))
    assert c == a  # the order comes from the sampler in this process, workers or not


def test_getitems_is_used():
    out = list(DataLoader(Batched(10), batch_size=4))
    assert out[0][1].tolist() == [0, -1, -2, -3] and out[2][0].tolist() == [[8.0] * 3, [9.0] * 3]
    out2 = list(DataLoader(Batched(10), batch_size=4, num_workers=2))
    assert [o[1].tolist() for o in out2] == [o[1].tolist() for o in out]


@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_dataset(workers):
    got = _flat(DataLoader(Stream(11), batch_size=3, num_workers=workers))
    assert sorted(got) == list(range(11))
    if workers:
        # batches alternate between the workers: worker 0 holds evens, worker 1 odds
        first = list(DataLoader(Stream(11), batch_size=3, num_workers=2))
        assert first[0].tolist() == [0, 2, 4] and first[1].tolist() == [1, 3, 5]
        # without sharding every worker yields everything
        dup = _flat(DataLoader(Stream(5, shard=False), batch_size=2, num_workers=2))
        assert sorted(dup) == sorted(list(range(5)) * 2)
        dl = DataLoader(Stream(11), batch_size=3, num_workers=2, drop_last=True)
        assert sorted(_flat(dl)) == [0, 1, 2, 3, 4, 5, 6, 8, 10]  # worker 1 drops its short tail [7, 9]
    else:
        assert got == list(range(11))


def test_worker_seeds_distinct_and_reproducible():
    def run(seed):
        batches = list(DataLoader(Seeds(), batch_size=2, num_workers=2, generator=_gen(seed)))
        return [{k: (v.tolist() if isinstance(v, ndcore.Tensor) else v) for k, v in b.items()} for b in batches]

    a, b = run(3), run(3)
    assert a == b
    by_worker = {}
    for batch in a:
        for w, s, py, n, d in zip(batch["worker"], batch["seed"], batch["py"], batch["np"], batch["nd"]):
            by_worker.setdefault(w, []).append((s, py, n, d))
    assert sorted(by_worker) == [0, 1]
    s0, s1 = by_worker[0][0][0], by_worker[1][0][0]
    assert s1 == s0 + 1  # base_seed + worker_id
    random.seed(s0)
    assert by_worker[0][0][1] == pytest.approx(random.random())
    np.random.seed(s0 % 2**32)
    assert by_worker[0][0][2] == pytest.approx(np.random.rand())
    assert {x[1] for x in by_worker[0]}.isdisjoint({x[1] for x in by_worker[1]})
    assert run(4) != a


def test_persistent_workers_keep_processes():
    class Pid(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return os.getpid()

    dl = DataLoader(Pid(), batch_size=2, num_workers=2, persistent_workers=True)
    e1 = sorted({p for b in dl for p in b.tolist()})
    it = iter(dl)
    next(it)  # break out early; the next epoch must still be complete
    e2 = sorted({p for b in dl for p in b.tolist()})
    assert e1 == e2 and len(e1) == 2 and os.getpid() not in e1
    sdl = DataLoader(Stream(7), batch_size=2, num_workers=2, persistent_workers=True)
    assert sorted(_flat(sdl)) == list(range(7)) and sorted(_flat(sdl)) == list(range(7))
    del dl, it, sdl
    assert _our_segments() == []


def test_prefetch_bound():
    import multiprocessing

    count = multiprocessing.get_context("fork").Value("i", 0)

    class Counting(Dataset):
        def __len__(self):
            return 200

        def __getitem__(self, i):
            with count.get_lock():
                count.value += 1
            return i

    it = iter(DataLoader(Counting(), batch_size=1, num_workers=2, prefetch_factor=3))
    next(it)
    deadline = time.monotonic() + 10
    while count.value < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # room to overshoot, were the bound not enforced
    # 2 workers x 3 batches in flight, one of them replaced after the first was taken
    assert 6 <= count.value <= 7
    del it


def test_in_order_false_yields_ready_batches_first():
    class Slow(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 0:
                time.sleep(1.0)
            return i

    ordered = [int(b) for b in DataLoader(Slow(), batch_size=None, num_workers=2)]
    assert ordered == list(range(8))
    loose = [int(b) for b in DataLoader(Slow(), batch_size=None, num_workers=2, in_order=False)]
    assert sorted(loose) == list(range(8)) and loose[0] != 0


def test_batches_come_through_shared_memory_and_outlive_the_loader():
    dl = DataLoader(Range(40, shape=(16, 16)), batch_size=8, num_workers=2)
    batches = list(dl)
    assert _our_segments() == []  # names are unlinked as soon as they are mapped
    del dl
    import gc
    gc.collect()
    for k, (x, y) in enumerate(batches):
        assert y.tolist() == list(range(8 * k, 8 * k + 8))
        np.testing.assert_array_equal(x.numpy(), np.repeat(np.arange(8 * k, 8 * k + 8, dtype=np.float32),
                                                           256).reshape(8, 16, 16))
    # mutating one batch leaves the others intact (no segment reused while a batch lives)
    batches[0][0].fill_(-1)
    assert float(batches[1][0].sum()) == sum(range(8, 16)) * 256


def test_pool_reuses_segments():
    pool = _shm.WorkerPool(_shm.segment_prefix() + "0_", max_segments=4)
    rcv = _shm.Receiver()
    names = set()
    try:
        for k in range(6):
            pool.begin()
            from nddata import default_collate
            data = default_collate([(ndcore.full((100,), float(k)), "s", np.arange(3) + k) for _ in range(4)])
            name, bufs, body, retired = pool.pack(data)
            names.add(name)
            out = rcv.unpack(name, bufs, body, retired)
            assert out[0].tolist() == [[float(k)] * 100] * 4 and out[1] == ("s",) * 4
            assert out[2].tolist() == [[k, k + 1, k + 2]] * 4
            del out  # frees the segment for the next batch
        assert len(pool.segments) <= 2 and len(names) <= 2
        held = []
        for k in range(3):  # held batches force fresh segments
            pool.begin()
            name, bufs, body, retired = pool.pack(default_collate([ndcore.full((10,), float(k))]))
            held.append(rcv.unpack(name, bufs, body, retired))
        assert [h.tolist() for h in held] == [[[float(k)] * 10] for k in range(3)]
        assert len({id(s) for s in pool.segments}) >= 3
    finally:
        pool.close()
        rcv.close()
    assert _our_segments() == []


def test_non_tensor_payloads_through_workers():
    def collate(batch):
        return {"np": np.stack([np.full((4,), i, dtype=np.int16) for i in batch]), "names": [f"n{i}" for i in batch],
                "bf": ndcore.tensor([1.0, 2.0]).to(ndcore.bfloat16) if hasattr(ndcore, "bfloat16") else None,
                "obj": np.array([{"k": i} for i in batch], dtype=object)}

    out = list(DataLoader(list(range(6)), batch_size=3, num_workers=2, collate_fn=collate))
    assert out[1]["np"].tolist() == [[3] * 4, [4] * 4, [5] * 4] and out[1]["np"].dtype == np.int16
    assert out[0]["names"] == ["n0", "n1", "n2"] and out[1]["obj"][2] == {"k": 5}
    assert out[0]["bf"].float().tolist() == [1.0, 2.0]


def test_pin_memory_without_accelerator_warns_and_passes_through():
    with pytest.warns(UserWarning, match="no accelerator is found"):
        out = list(DataLoader(Range(4), batch_size=2, pin_memory=True))
    assert out[1][1].tolist() == [2, 3]


def test_single_process_rejects_timeout():
    with pytest.raises(ValueError, match="timeout option should be 0 for single-process loading"):
        iter(DataLoader(Range(2), timeout=1))


def test_spawn_context():
    x = ndcore.arange(12, dtype=ndcore.float32).reshape(6, 2)
    dl = DataLoader(TensorDataset(x), batch_size=3, num_workers=1, multiprocessing_context="spawn")
    out = [b[0].tolist() for b in dl]
    assert out == [x[:3].tolist(), x[3:].tolist()]
