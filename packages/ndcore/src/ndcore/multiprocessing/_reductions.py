"""Sending tensors between processes through shared memory instead of by value.

``reduce_tensor`` is registered with ``multiprocessing.reduction.ForkingPickler``, the pickler
behind Queue, Pipe, Pool and spawn's process arguments; plain ``pickle`` keeps using
``Tensor.__reduce_ex__`` and copies. See Note [Shared memory segments] in _shm.py for who
unlinks a segment when.
"""
from __future__ import annotations

from .. import _C
from . import _shm

Tensor = _C.Tensor


def reduce_tensor(t):
    """ForkingPickler reducer: moves ``t``'s storage to shared memory (``share_memory_``, which
    rebinds ``t`` itself) unless it is there already, and pickles the segment name and the view
    (dtype, sizes, strides, offset, requires_grad). The receiver maps the same bytes.

    Tensors on other devices travel by value, as plain pickle sends them."""
    if t.requires_grad and not t.is_leaf:
        raise RuntimeError(
            "Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd does not support "
            "crossing process boundaries. If you just want to transfer the data, call detach() on the tensor "
            "before serializing (e.g., putting it on the queue).")
    if not t.is_cpu:
        return t.__reduce_ex__(2)
    found = _shm.find(t._storage_ptr())
    if found is None:
        t.share_memory_()
        found = _shm.find(t._storage_ptr())
        if found is None:
            raise RuntimeError("[share_memory_] the tensor's storage is marked shared but was not placed in shared "
                               "memory by ndcore, so it can't be sent to another process by reference")
    seg, _data = found  # _data keeps the mapping alive until the in-flight reference is taken
    byte_off = t._storage_ptr() - seg.addr
    nbytes = t._storage_nbytes()
    if byte_off + nbytes > seg.nbytes:
        raise RuntimeError(f"[share_memory_] the tensor's storage runs past its shared memory segment {seg.name}")
    _shm.incref(seg.name)
    meta = (t.dtype.name, tuple(t.shape), tuple(t.stride()), t.storage_offset(), bool(t.requires_grad))
    return (_rebuild_shared_tensor, (seg.name, seg.nbytes, byte_off, nbytes, meta))


def _rebuild_shared_tensor(name, seg_nbytes, byte_off, nbytes, meta):
    try:
        data = _shm.attach(name, seg_nbytes)
    finally:
        _shm.decref(name)  # the in-flight reference reduce_tensor took; our attachment now holds the name
    dtype_name, sizes, strides, offset, requires_grad = meta
    t = _shm.tensor_over(data[byte_off:byte_off + nbytes], getattr(_C, dtype_name), sizes, strides, offset)
    if requires_grad:
        # The sender's tensor was a leaf that required grad; the flag alone needs no autograd here.
        t._set_requires_grad_raw(True)
    return t


def init_reductions() -> None:
    """Registers ``reduce_tensor`` for ``ndcore.Tensor`` (idempotent; done on import)."""
    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(Tensor, reduce_tensor)
