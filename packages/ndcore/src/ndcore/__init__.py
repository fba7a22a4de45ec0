"""ndcore: nd's C++ tensor library, a NumPy-like array package with PyTorch's names.

One Tensor type for the whole nd stack. Every op goes through one C++ dispatch point with hook
slots (autograd, profiler, debug checks) and a device registry; see DESIGN.md.
"""
from __future__ import annotations

import math as _math

from ._load import load_openblas as _load_openblas

_load_openblas()

from . import _C  # noqa: E402
from ._C import (  # noqa: E402
    Generator, NdTypeError, NdValueError, Tensor, bfloat16, bool, broadcast_shapes, can_cast, device, dtype,
    float16, float32, float64, from_numpy, get_default_dtype, get_num_threads, int8, int16, int32, int64,
    is_grad_enabled, promote_types, set_default_dtype, set_num_threads, uint8,
)
from . import _creation, _ops_gen, _tensor  # noqa: E402
from ._creation import (  # noqa: E402
    as_tensor, asarray, empty, empty_strided, full, full_like, get_rng_state, initial_seed, manual_seed, normal, ones,
    rand, randint, randn, randperm, seed, set_rng_state, tensor, zeros,
)
from ._memory_format import (  # noqa: E402
    channels_last, channels_last_3d, contiguous_format, memory_format, preserve_format,
)
from ._size import Size  # noqa: E402
from ._tensor_str import get_printoptions, printoptions, set_printoptions  # noqa: E402
from .version import __version__  # noqa: E402

_C._set_size_type(Size)
_C._set_legacy_new(_creation._legacy_new)
_tensor.install(_creation)

# Aliases / common spellings of float dtypes, as torch and the array API name them.
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
short = int16

# ---- table-driven ops: every C++ op of ops/ops.yaml is already an _C function/method ----------
# linalg_* rows live in the nd.linalg namespace (linalg.py), as in torch.
_OP_NAMES = sorted({n.split(".")[0] for n in _C.op_names()} - {"_copy_from", "_to_copy", "fill_", "zero_", "slice"})
for _name in _OP_NAMES:
    if hasattr(_C, _name) and not _name.startswith("linalg_"):
        globals()[_name] = getattr(_C, _name)

# Composite ops (Python bodies of primitives, generated from the table).
for _name, (_fn, _variants) in _ops_gen.COMPOSITES.items():
    if "function" in _variants and not _name.startswith("linalg_"):
        globals()[_name] = _fn
    if "method" in _variants:
        setattr(Tensor, _name, _fn)


def _packed(fn, fixed):
    # torch's varargs spellings (meshgrid(a, b), einsum(eq, a, b), x.tile(2, 3)) for composites
    # whose table signature takes one list after `fixed` leading arguments
    def op(*args, **kwargs):
        head, rest = args[:fixed], args[fixed:]
        if not rest:
            return fn(*head, **kwargs)
        if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
            rest = rest[0]
        return fn(*head, list(rest), **kwargs)

    op.__name__ = fn.__name__
    op.__doc__ = fn.__doc__
    return op


meshgrid = _packed(_ops_gen.meshgrid, 0)
einsum = _packed(_ops_gen.einsum, 1)
Tensor.tile = _packed(_ops_gen.tile, 1)


def where(condition, input=None, other=None, *, out=None):
    """``where(c, x, y)`` selects elementwise; ``where(c)`` is ``nonzero(c, as_tuple=True)``."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    return _C.where(condition, input, other) if out is None else _C.where(condition, input, other, out=out)


def nonzero(input, *, as_tuple=False, out=None):
    idx = _C.nonzero(input) if out is None else _C.nonzero(input, out=out)
    if as_tuple:
        return tuple(idx.select(1, i) for i in range(idx.shape[1])) if input.dim() else (idx.reshape(-1),)
    return idx


Tensor.where = lambda self, condition, other: _C.where(condition, self, other)
Tensor.nonzero = lambda self, *, as_tuple=False: nonzero(self, as_tuple=as_tuple)


def cat(tensors, dim=0, *, axis=None, out=None):
    """Concatenates tensors along an existing dim (``concat``/``concatenate`` are aliases)."""
    d = dim if axis is None else axis
    return _C.cat(list(tensors), d) if out is None else _C.cat(list(tensors), d, out=out)


concat = concatenate = cat


def hstack(tensors):
    tensors = list(tensors)
    return cat(tensors, 0 if tensors[0].dim() == 1 else 1)


def vstack(tensors):
    return cat([t.reshape(1, -1) if t.dim() < 2 else t for t in tensors], 0)


def broadcast_to(input, size):
    return input.expand(size)


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*[tuple(t.shape) for t in tensors])
    return tuple(t.expand(shape) for t in tensors)


def split(tensor, split_size_or_sections, dim=0):
    return tensor.split(split_size_or_sections, dim)


def chunk(input, chunks, dim=0):
    return input.chunk(chunks, dim)


def unbind(input, dim=0):
    return input.unbind(dim)


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


def narrow(input, dim, start, length):
    return input.narrow(dim, start, length)


def t(input):
    return input.t()


def numel(input):
    return input.numel()


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input) -> bool:
    return input.dtype.is_floating_point


def permute_dims(x, axes):
    return x.permute(axes)


def clip(input, min=None, max=None):
    return input.clamp(min, max)


from_dlpack = _tensor.from_dlpack


def astype(x, dtype, /, *, copy=True, device=None):
    """Array-API cast: a new tensor of ``dtype`` (the input itself when ``copy=False`` allows)."""
    return x.to(dtype=dtype, device=device, copy=copy)


def matrix_transpose(x):
    return x.mT


def expand_dims(x, axis=0):
    return x.unsqueeze(axis)


def _dtype_by_name(name):
    return getattr(_C, name)  # unpickling an nd.dtype


zeros_like = _creation._like(zeros)
ones_like = _creation._like(ones)
empty_like = _creation._like(empty)
rand_like = _creation._like(rand)
randn_like = _creation._like(randn)


def randint_like(input, low, high=None, *, dtype=None, device=None, requires_grad=False):
    return randint(low, high, tuple(input.shape), dtype=dtype or input.dtype, device=device or input.device)


FloatTensor = _creation.legacy_type(float32, "FloatTensor")
DoubleTensor = _creation.legacy_type(float64, "DoubleTensor")
HalfTensor = _creation.legacy_type(float16, "HalfTensor")
BFloat16Tensor = _creation.legacy_type(bfloat16, "BFloat16Tensor")
LongTensor = _creation.legacy_type(int64, "LongTensor")
IntTensor = _creation.legacy_type(int32, "IntTensor")
ShortTensor = _creation.legacy_type(int16, "ShortTensor")
CharTensor = _creation.legacy_type(int8, "CharTensor")
ByteTensor = _creation.legacy_type(uint8, "ByteTensor")
BoolTensor = _creation.legacy_type(bool, "BoolTensor")

from . import linalg  # noqa: E402
from . import devices as _devices  # noqa: E402
from ._debug import debug_nans, set_broadcast_policy, get_broadcast_policy  # noqa: E402
from .devices import register_device  # noqa: E402

e = 2.718281828459045
pi = 3.141592653589793
inf = _math.inf
nan = _math.nan
newaxis = None

# The array API standard's names and spellings; see Note [Array API spellings] in _array_api.py.
from . import _array_api  # noqa: E402
for _name in _array_api.EXPORTS:
    globals()[_name] = getattr(_array_api, _name)
_array_api.install()
from . import array_api  # noqa: E402

__all__ = sorted(
    {k for k in globals() if not k.startswith("_") and k not in ("annotations",)}
)
