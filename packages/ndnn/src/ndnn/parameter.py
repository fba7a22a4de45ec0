"""``Parameter``, ``Buffer`` and ``UninitializedParameter``: the tensors a Module registers.

A Parameter *is* an ``ndcore.Tensor`` (a Python subclass of the one tensor type, no wrapper):
it shares storage with the tensor it was made from, every op accepts it, and the results of
ops on it are plain tensors, as in torch.
"""
from __future__ import annotations

import ndcore
from ndcore import Tensor

# is_lazy is importable from here (as in torch.nn.parameter) but not re-exported by nd.nn
__all__ = ["Parameter", "UninitializedParameter", "Buffer", "UninitializedBuffer"]


def _alias_into(obj, data) -> None:
    # The pybind11 constructor copies the impl it gets: a fresh TensorImpl over data's storage,
    # with its own autograd slots (torch's `_make_subclass(cls, data.detach())`).
    Tensor.__init__(obj, data._detach_alias(), dtype=data.dtype)


def _make_subclass(cls, data, requires_grad: bool):
    if not isinstance(data, Tensor):
        raise TypeError(f"[Parameter] data must be a Tensor, got {type(data).__name__}")
    obj = Tensor.__new__(cls)
    _alias_into(obj, data)
    if requires_grad:
        obj.requires_grad_(True)
    return obj


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter when assigned as an attribute.

    Args:
        data: The parameter's tensor (its storage is shared, not copied). Default: an empty tensor.
        requires_grad: Whether the parameter requires gradient (also inside ``no_grad``).
            Default: True.
    """

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = ndcore.empty(0)
        return _make_subclass(cls, data, requires_grad)

    def __init__(self, *args, **kwargs):  # all the work happens in __new__
        pass

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.data.clone(), self.requires_grad)
        memo[id(self)] = result
        return result

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce_ex__(self, proto):
        return _rebuild_parameter, (self.data, self.requires_grad, type(self))


def _rebuild_parameter(data, requires_grad, cls=Parameter):
    return cls(data, requires_grad)


class _UninitializedMixin:
    """Shape-less placeholder behaviour; ``materialize`` turns it into ``cls_to_become``."""

    cls_to_become: type = Tensor

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Gives the tensor real storage of ``shape`` (on ``device``/``dtype`` if given)."""
        device = self.data.device if device is None else device
        dtype = self.data.dtype if dtype is None else dtype
        self.data = ndcore.empty(tuple(shape), device=device, dtype=dtype)
        self.__class__ = self.cls_to_become

    @property
    def shape(self):
        raise RuntimeError("Can't access the shape of an uninitialized parameter or buffer. This error usually happens "
                           "in `load_state_dict` when trying to load an uninitialized parameter into an initialized "
                           "one. Call `forward` to initialize the parameters before accessing their attributes.")

    def share_memory_(self):
        raise RuntimeError("Can't share memory on an uninitialized parameter or buffer. Call `forward` to initialize "
                           "the parameters before calling `module.share_memory()`.")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    __str__ = __repr__


class UninitializedParameter(_UninitializedMixin, Parameter):
    """A Parameter whose shape is not known yet (lazy modules); ``materialize`` makes it a Parameter.

    Args:
        requires_grad: Whether the materialized parameter requires gradient. Default: True.
        device: Device of the placeholder (and default for ``materialize``).
        dtype: Dtype of the placeholder (and default for ``materialize``).
    """

    cls_to_become = Parameter

    def __new__(cls, requires_grad=True, device=None, dtype=None):
        return _make_subclass(cls, ndcore.empty(0, device=device, dtype=dtype), requires_grad)

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.requires_grad, self.data.device, self.data.dtype)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, proto):
        return type(self), (self.requires_grad, None, self.data.dtype)


class UninitializedBuffer(_UninitializedMixin, Tensor):
    """A buffer whose shape is not known yet; ``materialize`` makes it a plain Tensor.

    Args:
        requires_grad: Whether the materialized buffer requires gradient. Default: False.
        device: Device of the placeholder.
        dtype: Dtype of the placeholder.
    """

    cls_to_become = Tensor

    def __new__(cls, requires_grad=False, device=None, dtype=None):
        return _make_subclass(cls, ndcore.empty(0, device=device, dtype=dtype), requires_grad)

    def __init__(self, *args, **kwargs):
        pass

    def __reduce_ex__(self, proto):
        return type(self), (self.requires_grad, None, self.data.dtype)


def is_lazy(param) -> bool:
    """Whether ``param`` is an ``UninitializedParameter`` or ``UninitializedBuffer``."""
    return isinstance(param, _UninitializedMixin)


class _BufferMeta(type(Tensor)):
    # Buffer(...) returns a plain Tensor flagged `_is_buffer`; this makes isinstance see the flag.
    def __instancecheck__(cls, instance) -> bool:
        if cls is Buffer and isinstance(instance, Tensor) and getattr(instance, "_is_buffer", False):
            return True
        return super().__instancecheck__(instance)


class Buffer(Tensor, metaclass=_BufferMeta):
    """A Tensor that a Module registers as a buffer when assigned as an attribute.

    ``Buffer(t)`` returns a plain Tensor sharing ``t``'s storage, flagged so that
    ``isinstance(b, Buffer)`` holds, as in torch.

    Args:
        data: The buffer's tensor. Default: an empty tensor.
        persistent: Whether the buffer is part of the module's ``state_dict``. Default: True.
    """

    def __new__(cls, data=None, *, persistent=True):
        if data is None:
            data = ndcore.empty(0)
        t = data.detach()
        if data.requires_grad:
            t.requires_grad_(True)
        t.persistent = persistent
        t._is_buffer = True
        return t
