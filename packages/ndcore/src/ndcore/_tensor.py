"""The Python-side methods of ``ndcore.Tensor``: operators, conversions, reshaping helpers,
printing and pickling. Compute stays in the C++ ops; these only route arguments."""
from __future__ import annotations

import copy

from ._lazy import np

from . import _C
from ._size import Size
from ._tensor_str import format_tensor

Tensor = _C.Tensor

_LEGACY_TYPE_NAMES = {
    _C.float32: "FloatTensor", _C.float64: "DoubleTensor", _C.float16: "HalfTensor", _C.bfloat16: "BFloat16Tensor",
    _C.int64: "LongTensor", _C.int32: "IntTensor", _C.int16: "ShortTensor", _C.int8: "CharTensor",
    _C.uint8: "ByteTensor", _C.bool: "BoolTensor",
}


def _scalar(x):
    return _C._wrap_scalar(x)


def _is_operand(x) -> bool:
    return isinstance(x, (Tensor, int, float, bool)) or isinstance(x, (np.number, np.bool_))


def _parse_to(args, kwargs):
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    memory_format = kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"[to] unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, _C.dtype):
            dtype = a
        elif isinstance(a, (str, _C.device, int)):
            device = a
        elif isinstance(a, bool):
            copy = a
        else:
            raise TypeError(f"[to] received an invalid argument {a!r}")
    return dtype, device, copy, memory_format


def to(self, *args, **kwargs):
    """Returns the tensor with the requested dtype, device and/or memory_format; itself if nothing
    changes. The copy keeps the layout unless memory_format asks for another (torch's rule)."""
    dtype, device, copy, memory_format = _parse_to(args, dict(kwargs))
    if device is not None and not isinstance(device, _C.device):
        device = _C.device(device)
    same_dtype = dtype is None or dtype == self.dtype
    same_device = device is None or device == self.device
    fmt = None if memory_format is None or str(memory_format) == "preserve_format" else str(memory_format)
    if same_dtype and same_device and not copy:
        return self if fmt is None else self.contiguous(memory_format=fmt)
    out = _C._to_copy(self, dtype=dtype, device=device)
    return out if fmt is None else out.contiguous(memory_format=fmt)


def _type(self, dtype=None, non_blocking=False):
    if dtype is None:
        return "nd." + _LEGACY_TYPE_NAMES[self.dtype]
    if isinstance(dtype, str):
        name = dtype.rsplit(".", 1)[-1]
        matches = [d for d, n in _LEGACY_TYPE_NAMES.items() if n == name]
        if not matches:
            raise ValueError(f"[type] invalid type {dtype!r}")
        dtype = matches[0]
    return self.to(dtype)


def _repr(self, *, tensor_contents=None):
    t = self.detach() if self.requires_grad else self
    if t.dtype == _C.bfloat16:
        values = t.float().numpy(force=True)
    else:
        values = t.numpy(force=True)
    suffixes = []
    if self.grad_fn is not None:
        name = getattr(self.grad_fn, "name", None)
        suffixes.append(f"grad_fn=<{name() if callable(name) else type(self.grad_fn).__name__}>")
    elif self.requires_grad:
        suffixes.append("requires_grad=True")
    dev = self.device
    device = str(dev)
    return format_tensor(values, dtype_name=self.dtype.name, default_dtype_name=_C.get_default_dtype().name,
                         device=device, extra_suffixes=tuple(suffixes), dtype_prefix="nd.")


def _array(self, dtype=None, copy=None):
    arr = self.detach().numpy(force=True) if self.requires_grad else self.numpy(force=True)
    if dtype is not None and arr.dtype != np.dtype(dtype):
        return arr.astype(dtype)
    if copy:
        return arr.copy()
    return arr


def _iter(self):
    if self.dim() == 0:
        raise TypeError("iteration over a 0-d tensor")
    return iter(self.unbind(0))


def _rebuild(arr, dtype_name, requires_grad):
    t = _C.from_numpy(arr)
    dt = getattr(_C, dtype_name)
    if t.dtype != dt:
        t = t.to(dt)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _reduce_ex(self, proto):
    t = self.detach() if self.requires_grad else self
    arr = (t.float() if t.dtype == _C.bfloat16 else t).numpy(force=True).copy()
    return (_rebuild, (arr, self.dtype.name, self.requires_grad))


def flatten(self, start_dim=0, end_dim=-1):
    nd_ = max(self.dim(), 1)
    for d in (start_dim, end_dim):
        if not -nd_ <= d < nd_:
            raise IndexError(f"[flatten] dimension out of range (expected to be in range of [{-nd_}, {nd_ - 1}], but got {d})")
    if self.dim() == 0:
        return self.reshape(1)
    s = start_dim % nd_
    e = end_dim % nd_
    if s > e:
        raise IndexError(f"[flatten] start_dim ({start_dim}) cannot come after end_dim ({end_dim})")
    shape = list(self.shape)
    n = 1
    for v in shape[s:e + 1]:
        n *= v
    return self.reshape(shape[:s] + [n] + shape[e + 1:])


def unflatten(self, dim, sizes):
    shape = list(self.shape)
    d = dim % max(self.dim(), 1)
    return self.reshape(shape[:d] + list(sizes) + shape[d + 1:])


def narrow(self, dim, start, length):
    n = self.shape[dim]
    if start < 0:
        start += n
    if start < 0 or length < 0 or start + length > n:
        raise IndexError(f"[narrow] start ({start}) + length ({length}) exceeds dimension size ({n})")
    return _C.slice(self, dim, start, start + length, 1)


def split(self, split_size_or_sections, dim=0):
    n = self.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0 and n > 0:
            raise ValueError(f"[split] split_size must be positive, got {step}")
        bounds = [(i, min(i + step, n)) for i in range(0, n, step)] if n else [(0, 0)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"[split] split sizes {sizes} don't sum to the dim size {n}")
        bounds, pos = [], 0
        for s in sizes:
            bounds.append((pos, pos + s))
            pos += s
    return tuple(_C.slice(self, dim, a, b, 1) for a, b in bounds)


def chunk(self, chunks, dim=0):
    if chunks <= 0:
        raise ValueError(f"[chunk] chunks must be positive, got {chunks}")
    n = self.shape[dim]
    step = -(-n // chunks) if n else 1
    return self.split(step, dim)


def unbind(self, dim=0):
    return tuple(self.select(dim, i) for i in range(self.shape[dim]))


def t(self):
    if self.dim() > 2:
        raise ValueError(f"[t] expects a tensor with <= 2 dimensions, but self is {self.dim()}D")
    return self if self.dim() < 2 else self.transpose(0, 1)


def contiguous(self, memory_format=None):
    """Itself if already laid out in ``memory_format`` (row-major by default), else a copy that is."""
    fmt = "contiguous_format" if memory_format is None else str(memory_format)
    if fmt == "preserve_format":
        raise ValueError("[contiguous] preserve_format is not a layout a tensor can be made contiguous in: expected "
                         "contiguous_format, channels_last or channels_last_3d")
    return self if self.is_contiguous(memory_format=fmt) else self.clone(memory_format=fmt)


def detach(self):
    out = self._detach_alias()
    return out


def detach_(self):
    self._set_requires_grad_raw(False)
    self.grad_fn = None
    return self


def requires_grad_(self, requires_grad=True):
    self.requires_grad = requires_grad
    return self


def _get_data(self):
    return self._detach_alias()


def _set_data(self, value):
    self._set_data(value)


def copy_(self, src, non_blocking=False):
    if not isinstance(src, Tensor):
        src = _C._wrap_scalar(src) if _is_operand(src) else _C._tensor_from_array(np.asarray(src))
    return _C._copy_from(src, self, non_blocking=non_blocking)


def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    from ._creation import tensor
    return tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)


def _new_factory(fn):
    def method(self, *size, dtype=None, device=None, requires_grad=False, **kw):
        return fn(*size, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad, **kw)
    return method


def _format(self, spec):
    if self.dim() == 0:
        return self.item().__format__(spec)
    return object.__format__(self, spec)


def _dlpack(self, *, stream=None, max_version=None, dl_device=None, copy=None):
    # Exported through NumPy's DLPack support: zero-copy for CPU tensors.
    if not self.is_cpu:
        raise BufferError(f"[__dlpack__] only cpu tensors can be exported, this one is on {self.device}")
    arr = self.detach().numpy() if self.requires_grad else self.numpy()
    kwargs = {} if max_version is None else {"max_version": max_version}
    return arr.__dlpack__(stream=stream, **kwargs)


def from_dlpack(ext_tensor):
    """Wraps a DLPack-exporting CPU array (NumPy, torch, ...) without copying."""
    if isinstance(ext_tensor, Tensor):
        return ext_tensor
    return _C.from_numpy(np.from_dlpack(ext_tensor))


def _deepcopy(self, memo):
    """copy.deepcopy of a tensor: a detached copy that keeps requires_grad and grad, as torch's;
    the memo keeps a tensor referenced twice (tied weights) a single copy."""
    if id(self) in memo:
        return memo[id(self)]
    if getattr(self, "grad_fn", None) is not None:
        raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                           "protocol at the moment.  If you were attempting to deepcopy a module, this may be "
                           "because of a torch.nn.utils.weight_norm usage, see "
                           "https://github.com/pytorch/pytorch/pull/103001")
    new = self.detach().clone()
    memo[id(self)] = new
    if self.requires_grad:
        new.requires_grad_(True)
        if self.grad is not None:
            new.grad = copy.deepcopy(self.grad, memo)
    return new


def install(creation) -> None:
    """Attach the Python-level methods to the C++ Tensor class."""
    T = Tensor
    T.__invert__ = lambda self: _C.bitwise_not(self) if self.dtype != _C.bool else _C.logical_not(self)
    T.__hash__ = object.__hash__
    T.__repr__ = _repr
    T.__str__ = _repr
    T.__format__ = _format
    T.__array__ = _array
    T.__array_priority__ = 1000
    T.__dlpack__ = _dlpack
    T.__dlpack_device__ = lambda self: (1, 0) if self.is_cpu else (_C.device_types().index(self.device.type), self.device.index or 0)
    T.__iter__ = _iter
    T.__reduce_ex__ = _reduce_ex
    T.__deepcopy__ = _deepcopy
    T.__array_namespace__ = lambda self, api_version=None: __import__("ndcore")
    T.to = to
    T.type = _type
    T.cpu = lambda self: self.to("cpu")
    T.cuda = lambda self, device=None, non_blocking=False: self.to(
        "cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))
    T.to_device = lambda self, device, stream=None: self.to(device)
    T.astype = lambda self, dtype, copy=True: self.to(dtype, copy=copy)
    T.T = property(lambda self: self.permute(list(range(self.dim() - 1, -1, -1))))
    T.mT = property(lambda self: self.transpose(-2, -1))
    T.H = property(lambda self: self.T)
    T.mH = property(lambda self: self.mT)
    T.t = t
    T.flatten = flatten
    T.unflatten = unflatten
    T.narrow = narrow
    T.split = split
    T.chunk = chunk
    T.unbind = unbind
    T.contiguous = contiguous
    T.detach = detach
    T.detach_ = detach_
    T.requires_grad_ = requires_grad_
    T.data = property(_get_data, _set_data)
    T.copy_ = copy_
    T.expand_as = lambda self, other: self.expand(other.shape)
    T.view_as = lambda self, other: self.view(other.shape)
    T.reshape_as = lambda self, other: self.reshape(other.shape)
    T.type_as = lambda self, other: self.to(other.dtype)
    T.new_tensor = new_tensor
    T.new_zeros = _new_factory(creation.zeros)
    T.new_ones = _new_factory(creation.ones)
    T.new_empty = _new_factory(creation.empty)
    T.new_full = lambda self, size, fill_value, dtype=None, device=None, requires_grad=False: creation.full(
        size, fill_value, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)
    T.clamp_min = lambda self, min: self.clamp(min=min)
    T.clamp_max = lambda self, max: self.clamp(max=max)
    T.clip = lambda self, min=None, max=None: self.clamp(min, max)
    T.absolute = lambda self: self.abs()
    T.negative = lambda self: self.neg()
    T.permute_dims = lambda self, *axes: self.permute(*axes)
    T.swapaxes = lambda self, a, b: self.transpose(a, b)
    T.is_floating_point = lambda self: self.dtype.is_floating_point
    T.is_complex = lambda self: False
    T.share_memory_ = creation.share_memory_
