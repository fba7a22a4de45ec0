"""How DataLoader workers hand batches to the main process through shared memory.

Note [DataLoader shared memory]
Each worker owns a small pool of POSIX shm segments named ``<prefix><worker>_<n>`` (the
prefix names the main process and the iterator, see ``segment_prefix``). A segment is a
64-byte header and the data; header word 0 is the segment's state: 0 free, 1 lent to the main
process. For a batch the worker takes a free segment (creating one when none is free or big
enough), collates tensors straight into it (``_collate._out_allocator``), copies in whatever
else holds bulk data (other tensors, NumPy buffers through pickle protocol 5), and sends only
a pickle of the structure with (offset, dtype, shape) placeholders.

The main process maps a segment the first time it sees it and unlinks its name right away:
from then on only the two mappings keep it, so nothing is left in /dev/shm whatever happens
later. Every batch's tensors and arrays are views of one per-batch buffer object; when the
last of them dies a finalizer writes state 0, and the worker may reuse the segment. The
worker never writes to a lent segment, so a batch stays valid for as long as the user holds
it, even after the loader is gone. Names created but never mapped (a worker killed mid-batch,
a shutdown with batches in flight) are removed by the worker at exit and by the main process's
prefix sweep when it shuts the workers down.
"""
from __future__ import annotations

import ctypes
import errno
import io
import itertools
import mmap
import os
import pickle
import threading
import weakref

import numpy as np

import ndcore

from . import _collate

try:
    import _posixshmem
except ImportError:  # pragma: no cover - POSIX only
    _posixshmem = None

HEADER = 64
_ALIGN = 64
_SHM_DIR = "/dev/shm"
_MIN_CAPACITY = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value

# ndcore dtype name -> NumPy dtype of the same bytes (bfloat16 has none: it travels by value)
_NP_DTYPES = {
    "bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float16": np.float16, "float32": np.float32, "float64": np.float64,
}
_uid = itertools.count()


def available() -> bool:
    return _posixshmem is not None


def segment_prefix() -> str:
    """A fresh name prefix for one DataLoader iterator's segments in this process."""
    return f"ndd_{os.getpid()}_{next(_uid)}_"


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _map(fd: int, size: int) -> np.ndarray:
    # libc mmap, not the mmap module: that one keeps a dup of the descriptor open per mapping.
    base = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if base is None or base == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"[DataLoader] mmap of a shared memory segment failed: {os.strerror(err)}")
    arr = np.frombuffer((ctypes.c_uint8 * size).from_address(base), dtype=np.uint8)
    weakref.finalize(arr, _libc.munmap, base, size)
    return arr


def create(name: str, nbytes: int) -> np.ndarray:
    """Creates segment ``name`` with room for ``nbytes`` of data; returns the whole mapping."""
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        try:
            # Reserve the pages now: ftruncate alone succeeds on a full /dev/shm and the first
            # write past the space left kills the worker with SIGBUS.
            os.posix_fallocate(fd, 0, HEADER + nbytes)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise OSError(e.errno, f"[DataLoader] not enough shared memory for a {nbytes}-byte batch: /dev/shm is "
                                       "full or too small (in a container, raise its --shm-size)") from None
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.ftruncate(fd, HEADER + nbytes)
        return _map(fd, HEADER + nbytes)
    except BaseException:
        unlink(name)
        raise
    finally:
        os.close(fd)


def attach_and_unlink(name: str) -> np.ndarray:
    """Maps segment ``name`` and removes its name (the mapping keeps the memory)."""
    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    try:
        return _map(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
        unlink(name)


def unlink(name: str) -> None:
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def sweep(prefix: str) -> None:
    """Unlinks every segment whose name starts with ``prefix``."""
    try:
        names = os.listdir(_SHM_DIR)
    except OSError:  # pragma: no cover - no /dev/shm listing on this platform
        return
    for name in names:
        if name.startswith(prefix):
            unlink(name)


class _Segment:
    __slots__ = ("name", "mapping", "state", "capacity", "addr")

    def __init__(self, name: str, mapping: np.ndarray):
        self.name = name
        self.mapping = mapping
        self.state = mapping[:8].view(np.int64)
        self.capacity = mapping.size - HEADER
        self.addr = mapping.ctypes.data + HEADER


class WorkerPool:
    """A worker's segments and the bump allocator for the batch being built.

    Args:
        prefix: This worker's segment name prefix.
        max_segments: Free segments kept for reuse beyond this are unmapped.
    """

    def __init__(self, prefix: str, max_segments: int):
        self.prefix = prefix
        self.max_segments = max_segments
        self.segments: list[_Segment] = []
        self.created: set[str] = set()
        self.retired: list[str] = []
        self.counter = 0
        self.expect = _MIN_CAPACITY  # size of the last batch, the guess for the next
        self.current: _Segment | None = None
        self.used = 0
        self.tensors: dict[int, tuple] = {}  # id(tensor) -> (tensor, offset) allocated in `current`

    def _acquire(self, nbytes: int) -> _Segment:
        best = None
        for seg in self.segments:
            if seg.state[0] == 0 and seg.capacity >= nbytes and (best is None or seg.capacity < best.capacity):
                best = seg
        if best is None:
            # Drop free segments that are too small to be useful before growing the pool.
            for seg in [s for s in self.segments if s.state[0] == 0 and s.capacity < nbytes]:
                self._retire(seg)
            cap = max(_MIN_CAPACITY, (nbytes + nbytes // 8 + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE)
            name = f"{self.prefix}{self.counter}"
            self.counter += 1
            best = _Segment(name, create(name, cap))
            self.created.add(name)
            self.segments.append(best)
            if len(self.segments) > self.max_segments:
                for seg in [s for s in self.segments if s.state[0] == 0 and s is not best]:
                    if len(self.segments) <= self.max_segments:
                        break
                    self._retire(seg)
        best.state[0] = 1  # ours until sent; the main process sets 0 when the batch dies
        return best

    def _retire(self, seg: _Segment) -> None:
        # Free, so the main process mapped it already or never will: the name can go.
        self.segments.remove(seg)
        self.created.discard(seg.name)
        unlink(seg.name)
        self.retired.append(seg.name)

    def begin(self) -> None:
        """Starts a batch: takes a segment for it and routes default_collate's stacks there."""
        self.current = self._acquire(self.expect)
        self.used = 0
        self.tensors = {}
        _collate._out_allocator = self.allocate

    def allocate(self, shape, dtype):
        """A contiguous tensor in the current segment, or None when it does not fit."""
        np_dtype = _NP_DTYPES.get(dtype.name)
        seg = self.current
        if np_dtype is None or seg is None:
            return None
        n = 1
        for s in shape:
            n *= s
        nbytes = n * np.dtype(np_dtype).itemsize
        off = _align(self.used)
        if off + nbytes > seg.capacity:
            return None
        self.used = off + nbytes
        arr = seg.mapping[HEADER + off: HEADER + off + nbytes].view(np_dtype)
        t = ndcore.from_numpy(arr).view(tuple(shape))
        self.tensors[id(t)] = (t, off)
        return t

    def abort(self) -> None:
        """Gives the current segment back unused (the batch failed)."""
        _collate._out_allocator = None
        if self.current is not None:
            self.current.state[0] = 0
        self.current, self.tensors = None, {}

    def pack(self, data) -> tuple:
        """Places the bulk of ``data`` in shared memory; returns the message body ``(segment
        name or None, buffer offsets, pickled structure, names retired since the last message)``."""
        _collate._out_allocator = None
        seg = self.current
        self.current = None
        try:
            jobs: list = []  # (offset, tensor or raw memoryview)
            pickler = _Pickler(self, jobs)
            pickler.dump(data)
            end = pickler.end
            if jobs and end > seg.capacity:
                # Too big for the segment we guessed: move everything into one that fits.
                seg.state[0] = 0
                seg = self._acquire(end)
            if not jobs:
                seg.state[0] = 0
                name = None
            else:
                name = seg.name
                for off, obj in jobs:
                    _write(seg, off, obj)
                self.expect = max(_MIN_CAPACITY, end)
        except BaseException:
            if seg is not None:
                seg.state[0] = 0
            self.tensors = {}
            raise
        self.tensors = {}
        retired, self.retired = self.retired, []
        return name, pickler.buffers_meta, pickler.buf.getvalue(), retired

    def close(self) -> None:
        _collate._out_allocator = None
        for name in self.created:
            unlink(name)


def _write(seg: _Segment, off: int, obj) -> None:
    if isinstance(obj, ndcore.Tensor):
        if obj.data_ptr() == seg.addr + off:
            return  # collated in place
        np_dtype = _NP_DTYPES[obj.dtype.name]
        dst = seg.mapping[HEADER + off: HEADER + off + obj.numel() * np.dtype(np_dtype).itemsize].view(np_dtype)
        ndcore.from_numpy(dst).view(tuple(obj.shape)).copy_(obj)
    else:
        raw = obj  # a contiguous byte memoryview from pickle protocol 5
        seg.mapping[HEADER + off: HEADER + off + raw.nbytes] = np.frombuffer(raw, dtype=np.uint8)


class _Pickler(pickle.Pickler):
    """Pickles a batch with its tensors and NumPy buffers replaced by segment offsets."""

    def __init__(self, pool: WorkerPool, jobs: list):
        self.buf = io.BytesIO()
        super().__init__(self.buf, protocol=5, buffer_callback=self._buffer)
        self.pool = pool
        self.jobs = jobs
        self.end = pool.used  # in-place tensors occupy [0, used)
        self.buffers_meta: list = []  # (offset, nbytes) of each out-of-band buffer, in pickle order

    def _place(self, nbytes: int) -> int:
        off = _align(self.end)
        self.end = off + nbytes
        return off

    def _buffer(self, pb) -> bool:
        try:
            raw = pb.raw()
        except BufferError:
            return True  # not contiguous: pickle it in-band
        off = self._place(raw.nbytes)
        self.jobs.append((off, raw))
        self.buffers_meta.append((off, raw.nbytes))
        return False

    def reducer_override(self, obj):
        if type(obj) is not ndcore.Tensor or obj.dtype.name not in _NP_DTYPES or not obj.is_cpu:
            return NotImplemented
        if obj.requires_grad and not obj.is_leaf:
            raise RuntimeError(
                "Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd does not "
                "support crossing process boundaries. If you just want to transfer the data, call detach() on "
                "the tensor before serializing (e.g., putting it on the queue).")
        entry = self.pool.tensors.get(id(obj))
        if entry is not None and entry[0] is obj:
            off = entry[1]
        else:
            off = self._place(obj.numel() * obj.element_size())
        self.jobs.append((off, obj))
        return _rebuild_tensor, (off, obj.dtype.name, tuple(obj.shape), bool(obj.requires_grad))


_local = threading.local()


def _rebuild_tensor(off, dtype_name, shape, requires_grad):
    np_dtype = np.dtype(_NP_DTYPES[dtype_name])
    n = 1
    for s in shape:
        n *= s
    arr = _local.token[off: off + n * np_dtype.itemsize].view(np_dtype)
    t = ndcore.from_numpy(arr).view(shape)
    if requires_grad:
        t._set_requires_grad_raw(True)
    return t


def _release(state: np.ndarray) -> None:
    state[0] = 0


class Receiver:
    """The main process's side: mappings of the workers' segments, and batch unpacking."""

    def __init__(self):
        self.maps: dict[str, np.ndarray] = {}

    def unpack(self, name: str | None, buffers_meta: list, body: bytes, retired: list):
        """The batch a worker's ``WorkerPool.pack`` described."""
        for r in retired:
            self.maps.pop(r, None)
        if name is None:
            return pickle.loads(body)
        mapping = self.maps.get(name)
        if mapping is None:
            mapping = self.maps[name] = attach_and_unlink(name)
        # One buffer object per batch, so its death (all tensors and arrays of the batch gone)
        # tells the worker the segment is free again. A ctypes array over the data: NumPy views
        # of it keep *it* as their base, whereas views of `mapping` would collapse onto `mapping`.
        cbuf = (ctypes.c_uint8 * (mapping.size - HEADER)).from_address(mapping.ctypes.data + HEADER)
        token = np.frombuffer(cbuf, dtype=np.uint8)
        token.flags.writeable = True
        weakref.finalize(token, _release, mapping[:8].view(np.int64))
        _local.token = token
        try:
            buffers = [memoryview(token[off: off + nb]) for off, nb in buffers_meta]
            return pickle.loads(body, buffers=buffers)
        finally:
            _local.token = None

    def discard(self, name: str | None, retired: list) -> None:
        """Hands an unread batch's segment back to its worker."""
        for r in retired:
            self.maps.pop(r, None)
        if name is not None:
            mapping = self.maps.get(name)
            if mapping is None:
                mapping = self.maps[name] = attach_and_unlink(name)
            mapping[:8].view(np.int64)[0] = 0

    def close(self) -> None:
        self.maps.clear()
