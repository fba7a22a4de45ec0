"""What runs inside a DataLoader worker process: its identity (``get_worker_info``), the
fetchers shared with single-process loading, and the task loop.

A worker talks to the main process over one duplex pipe. It receives ``(task, indices)``,
``_RESUME`` (persistent workers: restart the iterable dataset) or ``None`` (exit), and answers
``("ok", task, segment, buffers, body, retired)`` (see Note [DataLoader shared memory] in
_shm.py), ``("err", task, ExceptionWrapper)`` or ``("stop", task)`` when its iterable dataset
is exhausted.
"""
from __future__ import annotations

import os
import pickle
import random
import signal
import sys
import traceback

__all__ = ["WorkerInfo", "get_worker_info"]

_RESUME = "resume"
_IDLE_CHECK_S = 1.0  # how often an idle worker checks that its parent is still alive
_MAX_TRACE = 32 * 1024

_worker_info: "WorkerInfo | None" = None


class WorkerInfo:
    """Read-only facts about the current DataLoader worker.

    Attributes:
        id: This worker's index, in ``range(num_workers)``.
        num_workers: How many workers the loader runs.
        seed: This worker's seed (``base_seed + id``), already applied to ndcore, NumPy and random.
        dataset: This worker's copy of the dataset.
    """

    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs.keys())
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError(f"Cannot assign attributes to {self.__class__.__name__} objects")
        return super().__setattr__(key, val)

    def __repr__(self):
        items = [f"{k}={getattr(self, k)}" for k in self.__keys]
        return f"{self.__class__.__name__}({', '.join(items)})"


def get_worker_info() -> WorkerInfo | None:
    """The current worker's ``WorkerInfo`` inside a DataLoader worker process, else None.

    Use it in ``IterableDataset.__iter__`` or a ``worker_init_fn`` to give each worker its own
    shard of the data.
    """
    return _worker_info


class ExceptionWrapper:
    """An exception caught in a worker, with its traceback text, that can cross the pipe."""

    def __init__(self, exc_info=None, where: str = "in background"):
        if exc_info is None:
            exc_info = sys.exc_info()
        self.exc_type = exc_info[0]
        self.type_name = self.exc_type.__name__
        self.exc_msg = "".join(traceback.format_exception(*exc_info))[-_MAX_TRACE:]
        self.where = where

    def __reduce__(self):
        # A type the main process can't find by name (a local class) comes back as None and is
        # raised as RuntimeError; the message keeps its name and the traceback.
        exc_type = self.exc_type
        try:
            pickle.loads(pickle.dumps(exc_type))
        except Exception:
            exc_type = None
        return _rebuild_wrapper, (exc_type, self.type_name, self.exc_msg, self.where)

    def reraise(self):
        """Raises the worker's exception type (RuntimeError when that can't be built) here."""
        msg = f"Caught {self.type_name} {self.where}.\nOriginal {self.exc_msg}"
        exc_type = self.exc_type or RuntimeError
        if exc_type is KeyError:
            msg = KeyError(msg)  # KeyError repr()s its message; keep the traceback readable
        try:
            exception = exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exception


def _rebuild_wrapper(exc_type, type_name, exc_msg, where):
    w = ExceptionWrapper.__new__(ExceptionWrapper)
    w.exc_type, w.type_name, w.exc_msg, w.where = exc_type, type_name, exc_msg, where
    return w


class _MapDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        getitems = getattr(dataset, "__getitems__", None)
        self.getitems = getitems if callable(getitems) else None

    def fetch(self, index):
        if self.auto_collation:
            if self.getitems is not None:
                data = self.getitems(index)
            else:
                ds = self.dataset
                data = [ds[i] for i in index]
        else:
            data = self.dataset[index]
        return self.collate_fn(data)


class _IterableDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset_iter = iter(dataset)
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.ended = False

    def fetch(self, index):
        if self.ended:
            raise StopIteration
        if self.auto_collation:
            data = []
            for _ in index:
                try:
                    data.append(next(self.dataset_iter))
                except StopIteration:
                    self.ended = True
                    break
            if len(data) == 0 or (self.drop_last and len(data) < len(index)):
                raise StopIteration
        else:
            data = next(self.dataset_iter)
        return self.collate_fn(data)


def create_fetcher(iterable: bool, dataset, auto_collation, collate_fn, drop_last):
    cls = _IterableDatasetFetcher if iterable else _MapDatasetFetcher
    return cls(dataset, auto_collation, collate_fn, drop_last)


def _seed_all(seed: int) -> None:
    import ndcore

    random.seed(seed)
    ndcore.manual_seed(seed)
    try:
        import numpy
    except ImportError:  # pragma: no cover
        return
    numpy.random.seed(seed % 2**32)


def _describe(iterable: bool, task: int, index) -> str:
    if iterable:
        return f"batch {task} of its iterable dataset"
    if isinstance(index, list) and len(index) > 16:
        return f"indices {index[:16]} ... ({len(index)} in all)"
    return f"indices {index}" if isinstance(index, list) else f"index {index!r}"


def worker_loop(conn, iterable, dataset, auto_collation, collate_fn, drop_last, base_seed, init_fn,
                worker_id, num_workers, shm_prefix, max_segments, parent_pid):
    """The body of worker ``worker_id``; returns when told to, or when its parent is gone."""
    global _worker_info
    import ndcore

    from . import _shm

    def _terminate(signum, frame):
        raise SystemExit(128 + signum)  # unwind, so the finally below removes our segments

    signal.signal(signal.SIGTERM, _terminate)
    try:
        ndcore.set_num_threads(1)  # the workers are the parallelism; ndcore's pool would oversubscribe
        seed = base_seed + worker_id
        _seed_all(seed)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)
        pool = _shm.WorkerPool(f"{shm_prefix}{worker_id}_", max_segments) if shm_prefix else None
        init_error = None
        fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = create_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
        except Exception:
            init_error = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")
        iteration_end = False
        while True:
            if not conn.poll(_IDLE_CHECK_S):
                if os.getppid() != parent_pid:
                    break
                continue
            msg = conn.recv()
            if msg is None:
                break
            if msg == _RESUME:
                if init_error is None:
                    fetcher = create_fetcher(iterable, dataset, auto_collation, collate_fn, drop_last)
                iteration_end = False
                continue
            if iteration_end:
                continue  # the main process skips tasks sent to an exhausted worker
            task, index = msg
            data = None
            if init_error is not None:
                conn.send(("err", task, init_error))
                init_error = None
                continue
            try:
                if pool is not None:
                    pool.begin()
                data = fetcher.fetch(index)
                reply = ("ok", task) + (pool.pack(data) if pool is not None else (None, [], _dumps(data), []))
            except StopIteration:
                if pool is not None:
                    pool.abort()
                iteration_end = True
                reply = ("stop", task)
            except Exception:
                if pool is not None:
                    pool.abort()
                where = f"in DataLoader worker process {worker_id} while fetching {_describe(iterable, task, index)}"
                reply = ("err", task, ExceptionWrapper(where=where))
            conn.send(reply)
            del data, reply
    except KeyboardInterrupt:
        pass  # the main process is shutting us down
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass  # the main process is gone
    finally:
        if "pool" in locals() and pool is not None:
            pool.close()


def _dumps(data) -> bytes:
    return pickle.dumps(data, protocol=5)
