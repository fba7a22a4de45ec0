"""``spawn``/``start_processes``: run ``fn(i, *args)`` in ``nprocs`` processes, as
``torch.multiprocessing.spawn`` does, and turn a child's failure into an exception here."""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import sys
import traceback

_MAX_TRACE = 32 * 1024  # a traceback must fit the pipe, or the failing child blocks on put()


class ProcessException(Exception):
    __slots__ = ["error_index", "pid"]

    def __init__(self, msg: str, error_index: int, pid: int):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.pid = pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """A spawned process raised an exception; the message carries its traceback."""


class ProcessExitedException(ProcessException):
    """A spawned process exited with a non-zero code or was killed by a signal."""

    __slots__ = ["exit_code", "signal_name"]

    def __init__(self, msg: str, error_index: int, error_pid: int, exit_code: int, signal_name: str | None = None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid, self.exit_code, self.signal_name)


def _wrap(fn, i, args, error_queue):
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # the parent is shutting us down
    except Exception:
        error_queue.put(traceback.format_exc()[-_MAX_TRACE:])
        sys.exit(1)


class ProcessContext:
    """The processes ``start_processes`` started; ``join`` waits and raises a child's failure."""

    def __init__(self, processes, error_queues):
        self.error_queues = error_queues
        self.processes = processes
        self.sentinels = {p.sentinel: i for i, p in enumerate(processes)}

    def pids(self) -> list[int]:
        return [int(p.pid) for p in self.processes]

    def join(self, timeout: float | None = None) -> bool:
        """Waits up to ``timeout`` seconds for the processes.

        Returns:
            True when all of them exited successfully, False if some are still running.

        Raises:
            ProcessRaisedException: a process raised; the others are terminated first.
            ProcessExitedException: a process exited non-zero or died of a signal.
        """
        if not self.sentinels:
            return True
        ready = multiprocessing.connection.wait(list(self.sentinels), timeout=timeout)
        error_index = None
        for sentinel in ready:
            index = self.sentinels.pop(sentinel)
            proc = self.processes[index]
            proc.join()
            if proc.exitcode != 0:
                error_index = index
                break
        if error_index is None:
            return not self.sentinels
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.sentinels.clear()
        failed = self.processes[error_index]
        if self.error_queues[error_index].empty():
            code = failed.exitcode
            if code < 0:
                name = signal.Signals(-code).name
                raise ProcessExitedException(f"process {error_index} terminated with signal {name}",
                                             error_index, failed.pid, code, name)
            raise ProcessExitedException(f"process {error_index} terminated with exit code {code}",
                                         error_index, failed.pid, code)
        trace = self.error_queues[error_index].get()
        msg = f"\n\n-- Process {error_index} terminated with the following error:\n{trace}"
        raise ProcessRaisedException(msg, error_index, failed.pid)


def start_processes(fn, args=(), nprocs: int = 1, join: bool = True, daemon: bool = False,
                    start_method: str = "spawn"):
    """Starts ``nprocs`` processes running ``fn(i, *args)`` for i in range(nprocs).

    Args:
        fn: A picklable (module-level) function called as ``fn(i, *args)``.
        args: Further arguments for ``fn``; tensors in them travel through shared memory.
        nprocs: How many processes to start.
        join: Wait for all of them (and raise on failure) before returning.
        daemon: The processes' daemon flag.
        start_method: 'spawn', 'fork' or 'forkserver'.

    Returns:
        None when ``join``, else the ``ProcessContext``.
    """
    ctx = multiprocessing.get_context(start_method)
    error_queues, processes = [], []
    for i in range(nprocs):
        error_queue = ctx.SimpleQueue()
        proc = ctx.Process(target=_wrap, args=(fn, i, args, error_queue), daemon=daemon)
        proc.start()
        error_queues.append(error_queue)
        processes.append(proc)
    context = ProcessContext(processes, error_queues)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(fn, args=(), nprocs: int = 1, join: bool = True, daemon: bool = False, start_method: str = "spawn"):
    """``start_processes`` with the 'spawn' start method by default, like ``torch.multiprocessing.spawn``."""
    return start_processes(fn, args, nprocs, join, daemon, start_method)
