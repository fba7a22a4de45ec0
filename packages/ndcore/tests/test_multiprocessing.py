"""Tensors shared between processes (ndcore.multiprocessing): share_memory_, tensors through
queues and process arguments by reference, Hogwild-style updates, spawn(), and no /dev/shm
segment left behind. Every child is joined or terminated; every wait is bounded."""
from __future__ import annotations

import gc
import os
import pickle
import time
from multiprocessing.reduction import ForkingPickler

import pytest

import ndcore as nd
import ndcore.multiprocessing as mp
from ndcore.multiprocessing import _shm

pytestmark = pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs POSIX shared memory in /dev/shm")

TIMEOUT = 60  # seconds for any one wait; a hang fails the test instead of the run
CONTEXTS = [m for m in ("fork", "spawn") if m in mp.get_all_start_methods()]


def _segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(_shm.PREFIX)}


def _creator(name: str) -> int:
    return int(name[len(_shm.PREFIX):].split("_")[0])


def _stop(procs) -> None:
    for p in procs:
        p.join(TIMEOUT)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(5)
        if p.is_alive():
            p.kill()
            p.join(5)


@pytest.fixture
def procs():
    """Starts processes, always stops them, then checks that no segment created by this process or
    by them during the test is left in /dev/shm (other test runs may share the machine)."""
    started = []
    before = _segments()

    def start(ctx, target, *args):
        p = ctx.Process(target=target, args=args, daemon=True)
        p.start()
        started.append(p)
        return p

    try:
        yield start
    finally:
        _stop(started)
    gc.collect()
    pids = {os.getpid()} | {p.pid for p in started}
    leaked = {n for n in _segments() - before if _creator(n) in pids}
    assert not leaked, f"shared memory segments left behind: {sorted(leaked)}"


def _join_ok(p) -> None:
    p.join(TIMEOUT)
    assert not p.is_alive(), "child timed out"
    assert p.exitcode == 0, f"child failed with exit code {p.exitcode}"


# ---- children (module level so spawn can import them) ------------------------------------------

def _child_fill(t, value):
    t.fill_(value)


def _child_roundtrip(q_in, q_out):
    x = q_in.get(timeout=TIMEOUT)
    q_out.put((tuple(x.shape), x.stride(), x.storage_offset(), x.dtype.name, x.requires_grad, x.is_shared()))
    x.detach().add_(1)  # the parent must see this ...
    q_out.put("written")
    assert q_in.get(timeout=TIMEOUT) == "parent wrote"
    q_out.put(x.tolist())  # ... and we must see the parent's write


def _child_view(q_in, q_out):
    v = q_in.get(timeout=TIMEOUT)
    q_out.put((tuple(v.shape), v.stride(), v.storage_offset(), v.dtype.name, v.tolist()))
    v[0, 0] = -1


def _child_send_back_view(t, q):
    q.put(t[1:])  # fork: a tensor the child inherited (borrowed); spawn: one it attached


def _child_send_temporaries(q, n):
    for k in range(n):
        q.put(nd.full((3,), float(k)))  # dropped by the child as soon as the queue pickled it
    q.put(None)


def _hogwild(rank, counter, width, steps):
    part = counter[rank * width:(rank + 1) * width]
    for _ in range(steps):
        part.add_(1)


def _pool_fill(args):
    t, i = args
    t[i] = i + 1
    return i


def _spawn_fails(rank):
    if rank == 1:
        raise ValueError("rank one failed on purpose")


# ---- tests -----------------------------------------------------------------------------------

def test_share_memory_keeps_view_and_values():
    x = nd.arange(12.0).reshape(3, 4).t()
    x.share_memory_()
    assert x.is_shared()
    assert x.stride() == (1, 4) and tuple(x.shape) == (4, 3)
    assert x.tolist() == nd.arange(12.0).reshape(3, 4).t().tolist()
    y = nd.arange(10, dtype=nd.int64)[2:8:2].share_memory_()
    assert y.is_shared() and y.storage_offset() == 2 and y.tolist() == [2, 4, 6]
    assert x.share_memory_() is x  # already shared: a no-op


def test_share_memory_views_taken_before_keep_old_storage():
    # Known limitation (see share_memory_'s docstring): only the tensor itself is rebound.
    x = nd.zeros(4)
    before = x[:2]
    x.share_memory_()
    after = x[:2]
    x.fill_(1.0)
    assert not before.is_shared() and before.tolist() == [0.0, 0.0]
    assert after.is_shared() and after.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
                                   "float64"])
def test_share_memory_dtypes(dtype):
    dt = getattr(nd, dtype)
    x = nd.ones(2, 3, dtype=dt)
    x.share_memory_()
    assert x.is_shared() and x.dtype == dt and x.tolist() == nd.ones(2, 3, dtype=dt).tolist()


def test_share_memory_bfloat16():
    x = nd.ones(3, dtype=nd.bfloat16)
    x.share_memory_()
    assert x.is_shared() and x.dtype == nd.bfloat16 and x.float().tolist() == [1.0, 1.0, 1.0]


def test_share_memory_empty():
    x = nd.zeros(0, 3).share_memory_()
    assert x.is_shared() and tuple(x.shape) == (0, 3)


def test_plain_pickle_copies_by_value():
    for x in (nd.arange(4.0), nd.arange(4.0).share_memory_()):
        y = pickle.loads(pickle.dumps(x))
        y.fill_(9.0)
        assert x.tolist() == [0.0, 1.0, 2.0, 3.0]
        assert not y.is_shared()


def test_non_leaf_requiring_grad_is_refused():
    x = nd.ones(2)
    x._set_requires_grad_raw(True)  # the flag alone; ndgrad is not needed for this check
    x.grad_fn = object()
    with pytest.raises(RuntimeError, match="non-leaf"):
        ForkingPickler.dumps(x)


@pytest.mark.parametrize("method", CONTEXTS)
def test_child_write_visible_in_parent(procs, method):
    ctx = mp.get_context(method)
    t = nd.zeros(4).share_memory_()
    _join_ok(procs(ctx, _child_fill, t, 7.0))
    assert t.tolist() == [7.0] * 4


def test_spawn_arg_moves_to_shared_memory(procs):
    # spawn pickles the process arguments: a plain tensor is moved to shared memory, not copied
    t = nd.zeros(3)
    _join_ok(procs(mp.get_context("spawn"), _child_fill, t, 2.0))
    assert t.is_shared() and t.tolist() == [2.0] * 3


@pytest.mark.parametrize("method", CONTEXTS)
def test_queue_is_zero_copy_both_ways(procs, method):
    ctx = mp.get_context(method)
    q_in, q_out = ctx.Queue(), ctx.Queue()
    procs(ctx, _child_roundtrip, q_in, q_out)
    t = nd.zeros(2, 3, dtype=nd.float64)  # not shared yet: put() moves it
    t._set_requires_grad_raw(True)  # a leaf that requires grad; the flag must travel
    q_in.put(t)
    assert q_out.get(timeout=TIMEOUT) == ((2, 3), (3, 1), 0, "float64", True, True)
    assert q_out.get(timeout=TIMEOUT) == "written"
    assert t.is_shared()
    assert t.detach().tolist() == [[1.0] * 3] * 2
    t.detach().fill_(5.0)
    q_in.put("parent wrote")
    assert q_out.get(timeout=TIMEOUT) == [[5.0] * 3] * 2


@pytest.mark.parametrize("method", CONTEXTS)
def test_queue_keeps_strides_offset_dtype(procs, method):
    ctx = mp.get_context(method)
    q_in, q_out = ctx.Queue(), ctx.Queue()
    p = procs(ctx, _child_view, q_in, q_out)
    base = nd.arange(12, dtype=nd.int32).reshape(3, 4).share_memory_()
    view = base[1:, ::2]
    q_in.put(view)
    assert q_out.get(timeout=TIMEOUT) == ((2, 2), (4, 2), 4, "int32", [[4, 6], [8, 10]])
    _join_ok(p)
    assert base[1, 0].item() == -1


@pytest.mark.parametrize("method", CONTEXTS)
def test_child_sends_back_a_view_of_parent_memory(procs, method):
    ctx = mp.get_context(method)
    q = ctx.Queue()
    t = nd.arange(4.0).share_memory_()
    p = procs(ctx, _child_send_back_view, t, q)
    back = q.get(timeout=TIMEOUT)
    _join_ok(p)
    assert back.tolist() == [1.0, 2.0, 3.0] and back.is_shared()
    back[0] = 42.0
    assert t[1].item() == 42.0


@pytest.mark.parametrize("method", CONTEXTS)
def test_tensors_outlive_their_sender(procs, method):
    # the child drops each tensor right after put() and exits before we read: the in-flight
    # reference must keep the segment alive until we attach
    ctx = mp.get_context(method)
    q = ctx.Queue()
    p = procs(ctx, _child_send_temporaries, q, 3)
    _join_ok(p)
    got = []
    while (x := q.get(timeout=TIMEOUT)) is not None:
        assert x.is_shared()
        got.append(x.tolist())
    assert got == [[float(k)] * 3 for k in range(3)]


@pytest.mark.parametrize("method", CONTEXTS)
def test_hogwild_disjoint_slices(procs, method):
    width, steps = 8, 100
    counter = nd.zeros(2 * width, dtype=nd.int64).share_memory_()
    context = mp.start_processes(_hogwild, args=(counter, width, steps), nprocs=2, join=False, start_method=method)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not context.join(timeout=max(deadline - time.monotonic(), 0)):
            assert time.monotonic() < deadline, "hogwild workers timed out"
    finally:
        _stop(context.processes)
    assert counter.tolist() == [steps] * (2 * width)


@pytest.mark.parametrize("method", CONTEXTS)
def test_pool_workers_write_shared_tensor(procs, method):
    t = nd.zeros(4).share_memory_()
    with mp.get_context(method).Pool(2) as pool:
        assert pool.map_async(_pool_fill, [(t, i) for i in range(4)]).get(TIMEOUT) == [0, 1, 2, 3]
        pool.close()
        pool.join()
    assert t.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_spawn_raises_child_error(procs):
    with pytest.raises(mp.ProcessRaisedException, match="rank one failed on purpose") as info:
        mp.spawn(_spawn_fails, nprocs=2)
    assert info.value.error_index == 1


def test_umbrella_and_reexports():
    import multiprocessing

    import nd

    assert nd.multiprocessing is mp
    for name in ("Process", "Queue", "Pool", "get_context", "set_start_method", "spawn", "SimpleQueue"):
        assert name in mp.__all__ and hasattr(mp, name)
    assert mp.Process is multiprocessing.Process
    assert mp.get_sharing_strategy() in mp.get_all_sharing_strategies()


def test_segment_unlinked_when_last_reference_dies():
    x = nd.ones(5).share_memory_()
    name = _shm.find(x._storage_ptr())[0].name
    assert os.path.exists(f"/dev/shm/{name}")
    y = pickle.loads(ForkingPickler.dumps(x))  # an in-process round trip shares too
    y[0] = 3.0
    assert x[0].item() == 3.0
    del x
    gc.collect()
    assert os.path.exists(f"/dev/shm/{name}")  # y still holds it
    del y
    gc.collect()
    assert not os.path.exists(f"/dev/shm/{name}")
