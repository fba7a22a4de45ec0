"""``DataLoader``: batches from a dataset, in this process or in worker processes, as
``torch.utils.data.DataLoader``.

With ``num_workers > 0`` each worker gets whole index batches over its own pipe and returns
whole collated batches in shared memory (Note [DataLoader shared memory] in _shm.py), so
nothing per sample crosses a process boundary and no tensor payload is pickled.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import warnings
import weakref
from typing import Any, Callable, Iterable

import ndcore

from . import _worker
from ._collate import default_collate, default_convert
from .dataset import Dataset, IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader"]

_JOIN_TIMEOUT_S = 1.0
_STATUS_CHECK_S = 1.0  # wait slice while the user asked for no timeout; also bounds death detection


class _InfiniteConstantSampler(Sampler):
    """The sampler of an iterable-style dataset: None forever (the dataset decides the order)."""

    def __iter__(self):
        while True:
            yield None


def _default_context():
    # fork is the fastest start and shares the dataset's pages; the standard default changes
    # away from it in Python 3.14, so name it.
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class DataLoader:
    """Iterates over a dataset in batches.

    Args:
        dataset: A map-style ``Dataset`` (``__getitem__``/``__len__``, optionally
            ``__getitems__``) or an ``IterableDataset``.
        batch_size: Samples per batch; None turns automatic batching off.
        shuffle: Reshuffle every epoch (map-style only; default False).
        sampler: Order of the keys (not with ``shuffle``).
        batch_sampler: Yields whole lists of keys (not with batch_size, shuffle, sampler,
            drop_last).
        num_workers: Worker processes; 0 loads in this process.
        collate_fn: Merges a list of samples into a batch (default ``default_collate``, or
            ``default_convert`` without batching).
        pin_memory: Pin batches for faster host-to-device copies when a device backend that
            provides ``Tensor.pin_memory`` is registered; otherwise a warned no-op.
        drop_last: Drop the last batch when it is short.
        timeout: Seconds to wait for a batch from the workers before raising (0: no limit).
        worker_init_fn: Called as ``fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: Start method name or context (default 'fork' on Linux).
        generator: ``ndcore.Generator`` for the shuffling sampler and the workers' base seed.
        prefetch_factor: Batches in flight per worker (default 2 with workers).
        persistent_workers: Keep the workers across epochs.
        pin_memory_device: Deprecated (as in torch); accepted and ignored.
        in_order: Deliver batches in sampler order; False yields whichever is ready first.
    """

    __initialized = False

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable | None = None, batch_sampler: Sampler | Iterable | None = None,
                 num_workers: int = 0, collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable | None = None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True) -> None:
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None.")
        elif num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = "iterable"
            if shuffle not in {False, None}:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
            self._dataset_kind = "map"

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                                 "and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")

        if sampler is None:
            if self._dataset_kind == "iterable":
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self.__initialized = True
        self._IterableDataset_len_called = None
        self._iterator = None
        self.check_worker_number_rationality()

    @property
    def multiprocessing_context(self):
        return self.__multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, multiprocessing_context) -> None:
        if multiprocessing_context is not None:
            if self.num_workers <= 0:
                raise ValueError("multiprocessing_context can only be used with multi-process loading "
                                 f"(num_workers > 0), but got num_workers={self.num_workers}")
            if isinstance(multiprocessing_context, str):
                valid = multiprocessing.get_all_start_methods()
                if multiprocessing_context not in valid:
                    raise ValueError(f"multiprocessing_context option should specify a valid start method in "
                                     f"{valid!r}, but got multiprocessing_context={multiprocessing_context!r}")
                multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
            if not isinstance(multiprocessing_context, multiprocessing.context.BaseContext):
                raise TypeError("multiprocessing_context option should be a valid context object or a string "
                                "specifying the start method, but got "
                                f"multiprocessing_context={multiprocessing_context}")
        self.__multiprocessing_context = multiprocessing_context

    def __setattr__(self, attr, val) -> None:
        if self.__initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
                                           "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after {self.__class__.__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        self.check_worker_number_rationality()
        return _MultiProcessingDataLoaderIter(self)

    def __iter__(self):
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None:
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    def __len__(self) -> int:
        if self._dataset_kind == "iterable":
            length = self._IterableDataset_len_called = len(self.dataset)
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last else -(-length // self.batch_size)
            return length
        return len(self._index_sampler)

    def check_worker_number_rationality(self) -> None:
        """Warns when more workers are asked for than CPUs this process may use."""
        if not self.num_workers:
            return
        try:
            max_workers = len(os.sched_getaffinity(0))
            cpuset_checked = True
        except AttributeError:  # pragma: no cover - not Linux
            max_workers = os.cpu_count()
            cpuset_checked = False
        if max_workers is None or self.num_workers > max_workers:
            suggest = (f"Our suggested max number of worker in current system is {max_workers}"
                       f"{'' if cpuset_checked else ' (`cpuset` is not taken into account)'}, which is smaller than "
                       "what this DataLoader is going to create.") if max_workers is not None else (
                "DataLoader is not able to compute a suggested max number of worker in current system.")
            warnings.warn(f"This DataLoader will create {self.num_workers} worker processes in total. {suggest} "
                          "Please be aware that excessive worker creation might get DataLoader running slow or even "
                          "freeze, lower the worker number to avoid potential slowness/freeze if necessary.",
                          stacklevel=2)


def _pin(data):
    """Pins every tensor in ``data`` through the device backend's ``Tensor.pin_memory``."""
    if isinstance(data, ndcore.Tensor):
        return data.pin_memory()
    if isinstance(data, dict):
        return type(data)({k: _pin(v) for k, v in data.items()}) if type(data) is dict else \
            {k: _pin(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(_pin(d) for d in data))
    if isinstance(data, (list, tuple)):
        return type(data)(_pin(d) for d in data)
    return data


class _BaseDataLoaderIter:
    def __init__(self, loader: DataLoader) -> None:
        self._dataset = loader.dataset
        self._dataset_kind = loader._dataset_kind
        self._IterableDataset_len_called = loader._IterableDataset_len_called
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._pin_memory = False
        if loader.pin_memory:
            if loader.pin_memory_device:
                warnings.warn("pin_memory_device is deprecated, the current accelerator will be used as the device,"
                              f"ignore pin_memory_device='{loader.pin_memory_device}'.", stacklevel=3)
            from ndcore import devices

            if devices.is_available() and callable(getattr(ndcore.Tensor, "pin_memory", None)):
                self._pin_memory = True
            else:
                warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device pinned "
                              "memory won't be used.", stacklevel=3)
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._sampler_iter = iter(self._index_sampler)
        self._base_seed = int(ndcore.empty((), dtype=ndcore.int64).random_(
            **({} if loader.generator is None else {"generator": loader.generator})).item())
        self._persistent_workers = loader.persistent_workers
        self._num_yielded = 0

    def __iter__(self):
        return self

    def _reset(self, loader, first_iter: bool = False) -> None:
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._IterableDataset_len_called = loader._IterableDataset_len_called

    def _next_index(self):
        return next(self._sampler_iter)

    def _next_data(self):
        raise NotImplementedError

    def __next__(self) -> Any:
        data = self._next_data()
        self._num_yielded += 1
        if (self._dataset_kind == "iterable" and self._IterableDataset_len_called is not None
                and self._num_yielded > self._IterableDataset_len_called):
            msg = (f"Length of IterableDataset {self._dataset} was reported to be {self._IterableDataset_len_called}"
                   f"(when accessing len(dataloader)), but {self._num_yielded} samples have been fetched. ")
            if self._num_workers > 0:
                msg += ("For multiprocessing data-loading, this could be caused by not properly configuring the "
                        "IterableDataset replica at each worker.")
            warnings.warn(msg, stacklevel=2)
        return data

    def __len__(self) -> int:
        return len(self._index_sampler)

    def __getstate__(self):
        raise NotImplementedError(f"{self.__class__.__name__} cannot be pickled")


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader: DataLoader) -> None:
        super().__init__(loader)
        if self._timeout != 0:
            raise ValueError("timeout option should be 0 for single-process loading")  # as torch's assert
        self._fetcher = _worker.create_fetcher(self._dataset_kind == "iterable", self._dataset,
                                               self._auto_collation, self._collate_fn, self._drop_last)

    def _next_data(self):
        index = next(self._sampler_iter)
        data = self._fetcher.fetch(index)
        return _pin(data) if self._pin_memory else data


class _Workers:
    """The worker processes, their pipes and segments: everything shutting down needs.

    Kept apart from the iterator so a ``weakref.finalize`` can own it: when the iterator is
    collected (also inside a reference cycle, e.g. one through an exception's traceback) or the
    interpreter exits, the finalizer still holds live pipes; the iterator's own attributes may
    already have been finalized by then.
    """

    def __init__(self, shm_prefix: str | None):
        from . import _shm  # ctypes and the shm machinery load only when workers start

        self.processes: list = []
        self.conns: list = []
        self.shm_prefix = shm_prefix
        self.receiver = _shm.Receiver()
        self.owner_pid = os.getpid()  # a fork child may collect a copy of the iterator: not its workers to stop
        self.done = False

    def shutdown(self, graceful: bool = True) -> None:
        """Stops the workers: asks them to exit (``graceful``: waits a moment for them to
        finish), then SIGTERM (they unwind and remove their segments), then SIGKILL."""
        if self.done or os.getpid() != self.owner_pid:
            return
        self.done = True
        for c in self.conns:
            try:
                c.send(None)
            except (OSError, ValueError):
                pass
        for wait_s, stop in ((_JOIN_TIMEOUT_S if graceful else 0.0, "terminate"), (_JOIN_TIMEOUT_S, "kill"),
                             (None, None)):
            deadline = time.monotonic() + (wait_s or 0.0)
            for w in self.processes:
                w.join(None if wait_s is None else max(0.0, deadline - time.monotonic()))
            alive = [w for w in self.processes if w.is_alive()]
            if not alive:
                break
            for w in alive:
                getattr(w, stop)()
        for c in self.conns:
            c.close()
        if self.shm_prefix is not None:
            from . import _shm

            _shm.sweep(self.shm_prefix)
        self.receiver.close()


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader: DataLoader) -> None:
        super().__init__(loader)
        self._prefetch_factor = loader.prefetch_factor
        self._in_order = loader.in_order
        if self._prefetch_factor == 0:
            raise ValueError("prefetch_factor must be positive when num_workers > 0")
        ctx = loader.multiprocessing_context or _default_context()
        from . import _shm

        self._shm_prefix = _shm.segment_prefix() if _shm.available() else None
        self._w = _Workers(self._shm_prefix)
        self._receiver = self._w.receiver
        self._workers = self._w.processes
        self._conns = self._w.conns
        # Runs when the iterator is collected or at interpreter exit (before multiprocessing's
        # own exit handler, registered earlier, terminates daemonic children).
        self._finalizer = weakref.finalize(self, self._w.shutdown)
        try:
            for i in range(self._num_workers):
                parent_conn, child_conn = ctx.Pipe(duplex=True)
                w = ctx.Process(
                    target=_worker.worker_loop, daemon=True,
                    args=(child_conn, self._dataset_kind == "iterable", self._dataset, self._auto_collation,
                          self._collate_fn, self._drop_last, self._base_seed, loader.worker_init_fn, i,
                          self._num_workers, self._shm_prefix, self._prefetch_factor + 3, os.getpid()))
                w.start()
                child_conn.close()
                self._workers.append(w)
                self._conns.append(parent_conn)
        except BaseException:
            self._shutdown_workers()
            raise
        self._by_conn = {c: i for i, c in enumerate(self._conns)}
        self._by_sentinel = {w.sentinel: i for i, w in enumerate(self._workers)}
        self._reset(loader, first_iter=True)

    def _reset(self, loader, first_iter: bool = False) -> None:
        super()._reset(loader, first_iter)
        if not first_iter:
            # Persistent workers: collect what the last epoch left in flight (its segments go
            # back to the workers unread), then restart iterable datasets.
            for info in self._task_info.values():
                if len(info) == 2:
                    self._discard(info[1])
            while sum(self._outstanding) > 0:
                worker, reply = self._get_reply(self._timeout or None)
                if reply[0] == "stop":
                    self._outstanding[worker] = 0
                self._discard(reply)
            for c in self._conns:
                c.send(_worker._RESUME)
        self._send_idx = 0  # next task number to send
        self._rcvd_idx = 0  # next task number to yield (in order)
        self._task_info: dict[int, tuple] = {}  # task -> (worker,) pending, (worker, reply) arrived
        self._outstanding = [0] * self._num_workers
        self._workers_status = [True] * self._num_workers
        self._next_worker = 0
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    def _discard(self, reply) -> None:
        if reply[0] == "ok":
            self._receiver.discard(reply[2], reply[5])

    def _try_put_index(self) -> None:
        for _ in range(self._num_workers):
            w = self._next_worker
            self._next_worker = (w + 1) % self._num_workers
            if self._workers_status[w] and self._outstanding[w] < self._prefetch_factor:
                break
        else:
            return
        try:
            index = self._next_index()
        except StopIteration:
            return
        self._conns[w].send((self._send_idx, index))
        self._task_info[self._send_idx] = (w,)
        self._outstanding[w] += 1
        self._send_idx += 1

    def _get_reply(self, timeout: float | None):
        """Waits for one reply from any worker; raises if a worker died or time ran out."""
        deadline = None if not timeout else time.monotonic() + timeout
        while True:
            left = _STATUS_CHECK_S if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(self._conns + list(self._by_sentinel), timeout=left)
            for r in ready:
                i = self._by_conn.get(r)
                if i is not None:
                    try:
                        reply = r.recv()
                    except (EOFError, OSError):
                        self._workers[i].join(_JOIN_TIMEOUT_S)  # its pipe closed: it is exiting
                        self._worker_died(i)
                    self._outstanding[i] -= 1
                    return i, reply
            for r in ready:
                i = self._by_sentinel.get(r)
                if i is not None:
                    self._worker_died(i)
            if not ready and deadline is not None and time.monotonic() >= deadline:
                self._w.shutdown(graceful=False)
                raise RuntimeError(f"DataLoader timed out after {timeout} seconds")

    def _worker_died(self, i: int) -> None:
        w = self._workers[i]
        w.join(0.1)
        code = w.exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited unexpectedly with exit code {code}"
        self._w.shutdown(graceful=False)
        raise RuntimeError(f"DataLoader worker {i} (pid {w.pid}) {how}. This may be a crash in native code, the "
                           "out-of-memory killer, or a worker killed from outside; run with num_workers=0 to see "
                           "the error in this process.")

    def _next_data(self):
        while True:
            if self._shutdown:
                raise StopIteration
            # Skip tasks whose worker has run out of data (iterable datasets).
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._workers_status[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration
            if self._in_order:
                info = self._task_info[self._rcvd_idx]
                if len(info) == 2:
                    del self._task_info[self._rcvd_idx]
                    self._rcvd_idx += 1
                    return self._process(info[1])
            worker, reply = self._get_reply(self._timeout or None)
            task = reply[1]
            if reply[0] == "stop":
                # The worker ignores whatever else it was sent until it is resumed.
                self._workers_status[worker] = False
                self._outstanding[worker] = 0
                self._task_info.pop(task, None)
                continue
            if not self._in_order or task == self._rcvd_idx:
                self._task_info.pop(task, None)
                if task == self._rcvd_idx:
                    self._rcvd_idx += 1
                return self._process(reply)
            self._task_info[task] = (worker, reply)

    def _process(self, reply):
        self._try_put_index()
        if reply[0] == "err":
            reply[2].reraise()
        _, _, name, buffers, body, retired = reply
        data = self._receiver.unpack(name, buffers, body, retired)
        return _pin(data) if self._pin_memory else data

    def _shutdown_workers(self) -> None:
        self._finalizer()

    @property
    def _shutdown(self) -> bool:
        return self._w.done
