"""Tensor creation from Python data and the size-varargs factories (zeros, ones, rand, ...).

Python data crosses into nd through NumPy (the interop boundary); every fill and sample runs
in the C++ ops (full, uniform_, normal_, random_, ...)."""
from __future__ import annotations

import ctypes
import numbers

from ._lazy import np

from . import _C

Tensor = _C.Tensor


def _sizes(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    if len(size) == 1 and isinstance(size[0], Tensor):
        return tuple(size[0].tolist())
    return tuple(size)


def _finish(t, requires_grad):
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(arr: np.ndarray):
    kind = arr.dtype.kind
    if kind == "f":
        return _C.get_default_dtype()
    if kind in "iu":
        return _C.int64
    if kind == "b":
        return _C.bool
    raise TypeError(f"[tensor] can't infer a dtype for data of numpy dtype {arr.dtype}")


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """Copies ``data`` (nested sequences, scalars, NumPy arrays, tensors) into a new tensor.

    Args:
        data: The values; Python floats become the default dtype, ints int64, bools bool.
        dtype: Result dtype; inferred from ``data`` when None.
        device: Result device (default cpu).
        requires_grad: Whether autograd records operations on the result.
    """
    if isinstance(data, Tensor):
        t = data.detach().clone()
    else:
        if isinstance(data, (np.ndarray, np.generic)):  # a NumPy scalar keeps its dtype, as in torch
            arr = np.array(data, copy=True)
            inferred = None if arr.dtype.kind in "fiub" else _infer_dtype(arr)
        else:
            if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in _flat_first(data)):
                data = _to_nested_list(data)
            arr = np.array(data)
            if arr.dtype == object:
                raise TypeError(f"[tensor] could not convert data of type {type(data).__name__} to a tensor (ragged or non-numeric)")
            inferred = _infer_dtype(arr)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
            arr = arr.astype(np.int64)
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
            arr = arr.astype(np.float64)
        t = _C._tensor_from_array(np.require(arr, requirements="C"))
        if inferred is not None and dtype is None:
            dtype = inferred
    if dtype is not None and t.dtype != dtype:
        t = _C._to_copy(t, dtype=dtype)
    if device is not None:
        t = t.to(device)
    return _finish(t, requires_grad)


def _flat_first(data):
    x = data
    while isinstance(x, (list, tuple)) and x:
        yield from (e for e in x if isinstance(e, Tensor))
        x = x[0]


def _to_nested_list(data):
    if isinstance(data, Tensor):
        return data.tolist()
    if isinstance(data, (list, tuple)):
        return [_to_nested_list(x) for x in data]
    return data


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with ``data`` when it already fits (tensor or ndarray)."""
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device) if (dtype or device) else data
    if (isinstance(data, np.ndarray) and data.dtype.kind in "fiub" and data.dtype.isnative
            and (data.dtype.kind != "u" or data.dtype.itemsize == 1)):
        t = _C.from_numpy(data) if all(s >= 0 for s in data.strides) else tensor(data)
        return t.to(dtype=dtype, device=device) if (dtype or device) else t
    return tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def _into_out(op, out, t):
    # out= takes the result (cast to out's dtype; an empty out is resized), as torch's out= does
    return _C._write_out(op, out, t)


def _like_create(make, input, memory_format):
    """make(shape) laid out as a *_like result: by default torch's preserve_format (a non-overlapping
    dense input's exact strides, else dense strides in the input's stride order), row-major for
    contiguous_format, or an explicit memory_format."""
    fmt = None if memory_format is None else str(memory_format)
    if fmt in (None, "preserve_format") and input.dim() > 1 and not input.is_contiguous():
        # a dense input's own strides, else dense ones in its stride order (Note [Memory formats]):
        # the result is made flat in memory order, then given those strides as a plain tensor
        strides = tuple(input._preserve_format_strides())
        return make((input.numel(),)).as_strided(tuple(input.shape), strides)._detach_alias()
    t = make(tuple(input.shape))
    if fmt not in (None, "preserve_format", "contiguous_format"):
        t = t.contiguous(memory_format=memory_format)
    return t


def empty_strided(size, stride, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """An uninitialised tensor with the given sizes and strides (in elements), over a storage just
    large enough for its farthest element (torch.empty_strided)."""
    size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
    if len(size) != len(stride):
        raise ValueError(f"[empty_strided] mismatch in length of strides and shape: {len(stride)} strides for "
                         f"shape {size}")
    if any(v < 0 for v in size) or any(v < 0 for v in stride):
        raise ValueError(f"[empty_strided] expected non-negative sizes and strides, got {size} and {stride}")
    span = 0 if 0 in size else 1 + sum((n - 1) * st for n, st in zip(size, stride))
    t = _C.empty((span,), dtype=dtype, device=device).as_strided(size, stride)
    return _finish(t, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, out=None, pin_memory=False, memory_format=None):
    if out is not None:
        if tuple(out.shape) != tuple(_sizes(size)):
            _into_out("empty", out, _C.empty(_sizes(size), dtype=out.dtype))
        return out
    return _C.empty(_sizes(size), dtype=dtype, device=device, requires_grad=requires_grad, memory_format=memory_format)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, out=None):
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    t = _C.full(tuple(size) if not isinstance(size, int) else (size,), fill_value, dtype=dtype)
    if device is not None:
        t = t.to(device)
    if out is not None:
        return _into_out("full", out, t)
    return _finish(t, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None):
    return full(_sizes(size), 0.0 if dtype is None else 0, dtype=dtype or _C.get_default_dtype(), device=device,
                requires_grad=requires_grad, out=out)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None):
    return full(_sizes(size), 1.0 if dtype is None else 1, dtype=dtype or _C.get_default_dtype(), device=device,
                requires_grad=requires_grad, out=out)


def _like(fn):
    def like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None, **kw):
        t = _like_create(lambda shape: fn(shape, dtype=dtype or input.dtype, device=device or input.device, **kw),
                         input, memory_format)
        return _finish(t, requires_grad)
    like.__name__ = fn.__name__ + "_like"
    return like


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False, memory_format=None):
    t = _like_create(lambda shape: full(shape, fill_value, dtype=dtype or input.dtype, device=device or input.device),
                     input, memory_format)
    return _finish(t, requires_grad)


def _random_tensor(size, dtype, device, requires_grad, fill, out=None):
    dtype = dtype or (out.dtype if out is not None else _C.get_default_dtype())
    t = _C.empty(_sizes(size), dtype=dtype)
    fill(t)
    if out is not None:
        return _into_out("empty", out, t)
    if device is not None:
        t = t.to(device)
    return _finish(t, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None):
    """Uniform samples on [0, 1)."""
    return _random_tensor(size, dtype, device, requires_grad, lambda t: t.uniform_(0.0, 1.0, generator=generator), out)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None):
    """Standard normal samples."""
    return _random_tensor(size, dtype, device, requires_grad, lambda t: t.normal_(0.0, 1.0, generator=generator), out)


def randint(low, high=None, size=None, *, generator=None, out=None, dtype=None, device=None, requires_grad=False):
    """Integers uniform on [low, high)."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("[randint] missing the size argument")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    t = _C.empty(tuple(size), dtype=dtype or (out.dtype if out is not None else _C.int64))
    t.random_(int(low), int(high), generator=generator)
    if out is not None:
        return _into_out("random_", out, t)
    if device is not None:
        t = t.to(device)
    return _finish(t, requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Normal samples; tensor ``mean``/``std`` broadcast, floats need ``size``."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        m = mean if isinstance(mean, Tensor) else _C._wrap_scalar(float(mean))
        s = std if isinstance(std, Tensor) else _C._wrap_scalar(float(std))
        shape = _C.broadcast_shapes(tuple(m.shape), tuple(s.shape))
        z = randn(*shape, generator=generator, dtype=(m if isinstance(mean, Tensor) else s).dtype)
        return _finish(z * s + m, requires_grad)
    if size is None:
        raise TypeError("[normal] size is required when mean and std are numbers")
    t = _C.empty(tuple(size), dtype=dtype or _C.get_default_dtype())
    t.normal_(float(mean), float(std), generator=generator)
    return _finish(t if device is None else t.to(device), requires_grad)


def randperm(n, *, generator=None, out=None, dtype=None, device=None, requires_grad=False):
    if out is not None:
        return _into_out("randperm", out, _C.randperm(n, generator=generator, dtype=dtype or out.dtype))
    return _C.randperm(n, generator=generator, dtype=dtype or _C.int64, device=device)


def manual_seed(seed: int):
    """Seeds the default generator; returns it."""
    return _C.default_generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def seed() -> int:
    return _C.default_generator().seed()


def initial_seed() -> int:
    return _C.default_generator().initial_seed()


def get_rng_state():
    s, off = _C.default_generator().get_state()
    return tensor([s & 0x7FFFFFFFFFFFFFFF, s >> 63, off], dtype=_C.int64)


def set_rng_state(state) -> None:
    lo, hi, off = (int(v) for v in state.tolist())
    _C.default_generator().set_state((lo | (hi << 63), off))


def share_memory_(self):
    """Moves the tensor's storage into named POSIX shared memory; a no-op if it is already shared
    or the tensor is not on the CPU.

    The memory works for fork and spawn children alike: ``ndcore.multiprocessing`` sends such a
    tensor by segment name, never by value, and the segment is unlinked once no process holds it
    (Note [Shared memory segments] in ndcore/multiprocessing/_shm.py). The whole storage moves,
    so sizes, strides, offset, dtype and requires_grad are kept.

    Known limitation: only this tensor object is rebound. Views taken *before* the call keep the
    old private storage and no longer see its writes; share first, then take views.

    Returns:
        The tensor itself.
    """
    if self.is_shared() or not self.is_cpu:
        return self
    from .multiprocessing import _shm

    _shm.check_dtype(self.dtype)
    nbytes = self._storage_nbytes()
    _name, data = _shm.create(nbytes)
    if nbytes:
        # The storage is copied as raw bytes (any dtype); `self` keeps it alive meanwhile.
        ctypes.memmove(data.ctypes.data, self._storage_ptr(), nbytes)
    self._set_data(_shm.tensor_over(data, self.dtype, self.shape, self.stride(), self.storage_offset()))
    return self


def _legacy_new(*args, dtype=None, device=None):
    """``nd.Tensor(2, 3)``, ``nd.Tensor([1, 2])``, ``nd.LongTensor(...)`` as old scripts write them."""
    dtype = dtype or _C.get_default_dtype()
    if len(args) == 0:
        return _C.empty((0,), dtype=dtype)
    if len(args) == 1 and isinstance(args[0], Tensor):
        return args[0] if args[0].dtype == dtype else args[0].to(dtype)
    if all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in args):
        return _C.empty(tuple(int(a) for a in args), dtype=dtype)
    if len(args) == 1:
        return tensor(args[0], dtype=dtype)
    raise TypeError(f"Tensor(): invalid arguments {args!r}")


def legacy_type(dtype, name):
    def ctor(*args, device=None):
        return _legacy_new(*args, dtype=dtype, device=device)
    ctor.__name__ = name
    ctor.__qualname__ = name
    return ctor
