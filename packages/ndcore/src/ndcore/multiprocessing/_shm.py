"""Named POSIX shared-memory segments that back shared tensors, and their lifetime.

Note [Shared memory segments]
A segment is a POSIX shm object ``/nd_<creator pid>_<random>`` (a file under /dev/shm on
Linux) laid out as a 64-byte header followed by the storage bytes, so the data starts 64-byte
aligned. The header's first 8 bytes count the references that keep the *name* alive:

* one per process holding a counted attachment (the creator, and each process that attached
  by name when it unpickled a tensor);
* one per pickled tensor in flight (added by the sender when it reduces the tensor, dropped by
  the receiver right after it attached), so a sender may drop its tensor as soon as
  ``Queue.put`` has pickled it, as torch users expect.

The count is read and written under ``flock`` on the shm file (across processes) and ``_lock``
(across threads). The process that brings it to zero unlinks the name; mappings already made
stay valid, so unlinking only stops further attaches. A process releases its attachment when
the last array over its mapping dies, or at exit (``multiprocessing.util.Finalize`` with an
exit priority runs in the main process at exit and in every multiprocessing child when it
finishes). A fork child inherits its parent's mappings and registry without a count of its
own: it *borrows* them (the memory stays valid for its whole life); only re-sending such a
tensor after every counted holder has released it fails, with an error that says so.

A process killed by a signal never releases its counts; each segment is also registered with
multiprocessing's resource tracker, which unlinks whatever is left when the whole process
family has exited (and prints a "leaked shared_memory objects" warning). A message that is
pickled but never unpickled keeps its segment until then too.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import secrets
import struct
import threading
import weakref
from multiprocessing import resource_tracker, util

import numpy as np

from .. import _C

try:
    import _posixshmem
except ImportError:  # pragma: no cover - POSIX only (Windows has no named POSIX shm)
    _posixshmem = None

HEADER = 64
PREFIX = "nd_"
_COUNT = struct.Struct("=q")
_EXIT_PRIORITY = -10  # release after multiprocessing has joined this process's children

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value

_lock = threading.RLock()
# name -> _Segment for every mapping this process holds (created, attached or inherited by fork)
_segments: dict[str, "_Segment"] = {}


class _Segment:
    __slots__ = ("name", "nbytes", "addr", "pid", "data_ref")

    def __init__(self, name: str, nbytes: int, data: np.ndarray, pid: int, base: int, size: int):
        self.name = name
        self.nbytes = nbytes
        self.addr = base + HEADER
        self.pid = pid  # the process whose count this mapping holds; != getpid() means borrowed by fork
        self.data_ref = weakref.ref(data, lambda ref: _unmap(name, ref, base, size))


def _unmap(name: str, ref, base: int, size: int, munmap=_libc.munmap, segments=_segments) -> None:
    # The last array over the mapping died (in whichever process holds it, fork children too).
    # Defaults bind what is needed, as this may run late in interpreter shutdown.
    if segments.get(name) is not None and segments[name].data_ref is ref:
        segments.pop(name, None)
    munmap(base, size)


def _require_posix():
    if _posixshmem is None:
        raise RuntimeError("[share_memory_] named POSIX shared memory is not available on this platform")


def _shm_path(name: str) -> str:
    return "/" + name


def _open(name: str, flags: int) -> int:
    return _posixshmem.shm_open(_shm_path(name), flags, mode=0o600)


def _update_count(name: str, delta: int, *, missing_ok: bool = False) -> int | None:
    """Adds ``delta`` to the segment's count; unlinks the name when it reaches zero.

    Returns the new count, or None when the name no longer exists and ``missing_ok``."""
    with _lock:
        try:
            fd = _open(name, os.O_RDWR)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            (count,) = _COUNT.unpack(os.pread(fd, _COUNT.size, 0))
            count += delta
            if count <= 0:
                # Unlink while holding the lock, so nobody attaches to a dying name.
                _posixshmem.shm_unlink(_shm_path(name))
                _untrack(name)
            else:
                os.pwrite(fd, _COUNT.pack(count), 0)
            return count
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _track(name: str) -> None:
    try:
        resource_tracker.register(_shm_path(name), "shared_memory")
    except Exception:  # pragma: no cover - the tracker is a safety net only
        pass


def _untrack(name: str) -> None:
    try:
        resource_tracker.unregister(_shm_path(name), "shared_memory")
    except Exception:  # pragma: no cover
        pass


def _release(name: str) -> None:
    _update_count(name, -1, missing_ok=True)


def _map(name: str, fd: int, nbytes: int, pid: int) -> np.ndarray:
    # libc's mmap rather than the mmap module, which would keep a dup of `fd` open for as long
    # as the mapping lives: one descriptor per shared tensor, and it would carry our flock.
    size = HEADER + nbytes
    base = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if base is None or base == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"[share_memory_] mmap of shared memory segment {name} failed: {os.strerror(err)}")
    data = np.frombuffer((ctypes.c_uint8 * size).from_address(base), dtype=np.uint8, count=nbytes, offset=HEADER)
    _segments[name] = _Segment(name, nbytes, data, pid, base, size)
    # Runs when `data` dies, or at exit (main process and multiprocessing children alike); the
    # mapping itself goes with `data` (see _unmap), never at exit, when tensors may still live.
    util.Finalize(data, _release, args=(name,), exitpriority=_EXIT_PRIORITY)
    return data


def _allocate(fd: int, size: int) -> None:
    # Reserve the pages now: a plain ftruncate succeeds on a full /dev/shm and the first write
    # past the space left then kills the process with SIGBUS.
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise OSError(e.errno, f"[share_memory_] not enough shared memory for {size} bytes: /dev/shm is full or "
                                   "too small (in a container, raise its --shm-size)") from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)
    except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
        os.ftruncate(fd, size)


def create(nbytes: int) -> tuple[str, np.ndarray]:
    """Creates a segment of ``nbytes`` data bytes with this process's counted attachment.

    Returns its name and a writable uint8 array over the data (the mapping lives as long as it)."""
    _require_posix()
    pid = os.getpid()
    with _lock:
        for _ in range(100):
            name = f"{PREFIX}{pid}_{secrets.token_hex(4)}"
            try:
                fd = _open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise RuntimeError("[share_memory_] could not find a free shared memory name")
        try:
            try:
                _allocate(fd, HEADER + nbytes)
                os.pwrite(fd, _COUNT.pack(1), 0)
                _track(name)
                return name, _map(name, fd, nbytes, pid)
            except BaseException:
                _posixshmem.shm_unlink(_shm_path(name))
                _untrack(name)
                raise
        finally:
            os.close(fd)


def attach(name: str, nbytes: int) -> np.ndarray:
    """The data of segment ``name`` in this process: the existing mapping if there is one (counted
    or borrowed), else a new counted attachment. The caller must hold a count on the name."""
    _require_posix()
    with _lock:
        seg = _segments.get(name)
        data = seg.data_ref() if seg is not None else None
        if data is not None:
            return data
        try:
            fd = _open(name, os.O_RDWR)
        except FileNotFoundError:
            raise RuntimeError(f"[share_memory_] shared memory segment {name} no longer exists: every process "
                               "that held it has released it (was a message unpickled twice?)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            (count,) = _COUNT.unpack(os.pread(fd, _COUNT.size, 0))
            data = _map(name, fd, nbytes, os.getpid())
            os.pwrite(fd, _COUNT.pack(count + 1), 0)
            return data
        finally:
            # Unlock explicitly: the mapping holds the open file, so closing fd would not.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def incref(name: str) -> None:
    """Adds a reference for a pickled tensor in flight (the receiver drops it with ``decref``)."""
    if _update_count(name, +1, missing_ok=True) is None:
        raise RuntimeError(
            f"[share_memory_] can't send a tensor in shared memory segment {name}: every process that held a "
            "counted reference released it (a fork child borrows its parent's segments and can't re-send them "
            "once the parent dropped them); send a .clone() instead")


def decref(name: str) -> None:
    _update_count(name, -1, missing_ok=True)


def find(ptr: int) -> tuple[_Segment, np.ndarray] | None:
    """The live segment of this process whose data contains address ``ptr``, with its data array."""
    with _lock:
        for seg in list(_segments.values()):
            if seg.addr <= ptr < seg.addr + max(seg.nbytes, 1):
                data = seg.data_ref()
                if data is not None:
                    return seg, data
    return None


# Storage dtype as NumPy sees it; bfloat16 rides in an int16 buffer and is reinterpreted.
_NUMPY_DTYPES = {
    "bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float16": np.float16, "float32": np.float32, "float64": np.float64, "bfloat16": np.int16,
}


def check_dtype(dtype) -> None:
    """Raises TypeError, before anything is allocated, for a dtype shared memory can't hold yet."""
    if dtype.name not in _NUMPY_DTYPES:
        raise TypeError(f"[share_memory_] unsupported dtype {dtype.name}")
    if _NUMPY_DTYPES[dtype.name] is np.int16 and dtype != _C.int16:
        try:
            _C.empty((0,), dtype=_C.int16).view(dtype)
        except TypeError:
            raise TypeError(f"[share_memory_] {dtype.name} tensors can't be placed in shared memory yet: it needs "
                            f"Tensor.view(dtype) to reinterpret an int16 buffer as {dtype.name}") from None


def tensor_over(data: np.ndarray, dtype, sizes, strides, offset: int):
    """A tensor of ``dtype`` viewing the bytes ``data`` with the given sizes, strides and offset
    (in elements), its storage marked shared. ``data`` must stay a view of a segment."""
    check_dtype(dtype)
    np_dtype = np.dtype(_NUMPY_DTYPES[dtype.name])
    flat = data[: data.size - data.size % np_dtype.itemsize].view(np_dtype)
    base = _C.from_numpy(flat)
    if base.dtype != dtype:
        base = base.view(dtype)
    base._mark_shared()
    return _C.as_strided(base, list(sizes), list(strides), int(offset))


def segment_names() -> list[str]:
    """Names of the segments this process maps (for tests and debugging)."""
    with _lock:
        return sorted(n for n, s in _segments.items() if s.data_ref() is not None)


def _before_fork() -> None:
    # A fork child that creates segments must report to the family's resource tracker, not
    # start its own: start it here, in the parent, before the first fork.
    try:
        resource_tracker.ensure_running()
    except Exception:  # pragma: no cover - the tracker is a safety net only
        pass
    _lock.acquire()


def _after_fork_parent() -> None:
    _lock.release()


def _after_fork_child() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent,
                        after_in_child=_after_fork_child)
