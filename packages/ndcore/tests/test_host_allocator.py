"""The caching host allocator (Note [Caching large host blocks] in csrc/core/tensor.cpp): blocks
of 1 MB and more are split from shared segments and merge again when freed; smaller ones are
kept per size class. Addresses are read with data_ptr() to see which block a tensor got."""
import os
import random
import threading

import numpy as np
import pytest

import ndcore as nd
from ndcore import _C

MB = 1 << 20


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _filled(nbytes, value):
    return nd.full((nbytes // 4,), float(value), dtype=nd.float32)


def _check(t, value):
    a = t.numpy()
    assert a.min() == value and a.max() == value


def test_freed_large_block_is_reused():
    _C.empty_cache()  # no other free block of the same size to pick instead
    a = _filled(3 * MB, 1)
    p = a.data_ptr()
    del a
    b = _filled(3 * MB, 2)
    assert b.data_ptr() == p
    _check(b, 2)


def test_small_requests_split_a_freed_segment_and_merge_back():
    # A freed 4 MB gradient-sized block serves four 1 MB activations (best fit: no new memory)...
    _C.empty_cache()
    big = _filled(4 * MB, 0)
    lo = big.data_ptr()
    del big
    parts = [_filled(MB, i + 1) for i in range(4)]
    assert all(lo <= t.data_ptr() < lo + 4 * MB for t in parts)
    assert len({t.data_ptr() for t in parts}) == 4
    for i in range(4):
        _check(parts[i], i + 1)
    # ... and once they are all freed, in any order, the 4 MB block is whole again.
    for i in (2, 0, 3, 1):
        parts[i] = None
    again = _filled(4 * MB, 7)
    assert again.data_ptr() == lo
    _check(again, 7)


def test_sizes_around_the_thresholds_keep_their_values():
    sizes = [MB - 4, MB, MB + 4, 4 * MB - 4, 4 * MB, 4 * MB + 65536, 5 * MB + 12]
    kept = []
    for rep in range(3):
        for i, n in enumerate(sizes):
            t = _filled(n, rep * 100 + i)
            if (rep + i) % 2:
                kept.append((t, rep * 100 + i))
    for t, v in kept:
        _check(t, v)
    _C.empty_cache()


def test_random_alloc_free_pattern_keeps_contents():
    rng = random.Random(0)
    live = {}
    for step in range(400):
        if live and rng.random() < 0.45:
            del live[rng.choice(list(live))]
        else:
            n = rng.choice([300, 4096, 200_000, MB - 8, MB, 2 * MB + 4, 4 * MB, 9 * MB + 16])
            live[step] = _filled(n, step)
        if step % 50 == 0:
            for v, t in live.items():
                _check(t, v)
    for v, t in live.items():
        _check(t, v)
    live.clear()
    _C.empty_cache()


def test_no_growth_over_many_training_like_steps():
    # forward: 1 MB activations; backward: 4 MB gradients while activations are freed
    def step():
        acts = [_filled(MB, i) for i in range(16)]
        grads = []
        while acts:
            acts.pop()
            grads.append(_filled(4 * MB, 1))
        return grads

    grads = step()
    del grads
    step()
    base = _rss()
    for _ in range(30):
        grads = step()
        del grads
    assert _rss() - base < 8 * MB
    _C.empty_cache()


def test_one_phase_memory_serves_the_next():
    # 64 MB of 4 MB blocks freed, then 64 MB of 1 MB blocks: the second set fits in the first's
    # memory instead of adding to it (a cache keyed by size held both).
    grads = [_filled(4 * MB, 1) for _ in range(16)]
    del grads
    before = _rss()
    acts = [_filled(MB, 2) for _ in range(64)]
    assert _rss() - before < 8 * MB
    for t in acts:
        _check(t, 2)
    del acts
    _C.empty_cache()


def test_empty_cache_returns_whole_segments():
    # 40 MB: above glibc's largest mmap threshold, so free() unmaps them whatever glibc's state
    _C.empty_cache()
    base = _rss()
    ts = [_filled(40 * MB, i) for i in range(4)]
    assert _rss() - base > 120 * MB
    del ts
    assert _rss() - base > 120 * MB  # cached, pages still mapped
    _C.empty_cache()
    assert _rss() - base < 40 * MB
    # a segment part of which is still lent keeps that part; the cache stays usable
    keep = _filled(MB, 3)
    t = _filled(2 * MB, 4)
    del t
    _C.empty_cache()
    _check(keep, 3)
    _check(_filled(2 * MB, 5), 5)


def test_threads_share_the_cache():
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for i in range(150):
                n = rng.choice([512, 70_000, MB, 3 * MB, 4 * MB + 8])
                v = seed * 1000 + i
                t = _filled(n, v)
                u = t + 1
                _check(t, v)
                _check(u, v + 1)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_allocates_while_threads_use_the_cache():
    # A DataLoader worker forks while other threads may hold the cache's lock.
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            t = _filled(2 * MB, 1)
            del t

    th = threading.Thread(target=churn)
    th.start()
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:
                ok = True
                try:
                    t = _filled(3 * MB, 9)
                    ok = float(t.sum()) == 9.0 * t.numel()
                finally:
                    os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        th.join()


def test_dataloader_workers_allocate_large_batches():
    nddata = pytest.importorskip("nddata")

    class Big(nddata.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return nd.full((MB // 4 + 3,), float(i))

    loader = nddata.DataLoader(Big(), batch_size=2, num_workers=2)
    for rep in range(2):
        got = [b.numpy() for b in loader]
        assert len(got) == 4
        for k, b in enumerate(got):
            np.testing.assert_array_equal(b[:, 0], [2 * k, 2 * k + 1])
            assert (b == b[:, :1]).all()
