"""The device registry's Python face: register a device type, query accelerators.

A backend is any object with these methods (ndcuda's CuPy backend and
``ndcore.testing.FakeDevice`` are the two in this repo):

- ``allocate(nbytes, index) -> (int data_pointer, owner)``: owner keeps the memory alive;
- ``copy_from_cpu(dst, src)`` / ``copy_to_cpu(dst, src)``: src/dst are contiguous CPU tensors;
- ``run(op_name, inputs, attrs, outputs, inplace) -> Tensor | list[Tensor]``: compute one op of
  the table; ``outputs`` holds ``out=``/in-place targets (or is empty);
- ``device_count() -> int``.
"""
from __future__ import annotations

from . import _C

__all__ = ["register_device", "device_types", "device_count", "is_available", "current_accelerator",
           "set_device_index", "current_device_index"]

_current_index: dict[str, int] = {}


def register_device(name: str, backend) -> int:
    """Registers a device type implemented in Python; returns its type id."""
    for method in ("allocate", "copy_from_cpu", "copy_to_cpu", "run", "device_count"):
        if not callable(getattr(backend, method, None)):
            raise TypeError(f"[register_device] backend for {name!r} lacks a callable {method}()")
    return _C.register_device(name, backend)


def device_types() -> list[str]:
    return list(_C.device_types())


def device_count(name: str | None = None) -> int:
    acc = current_accelerator() if name is None else None
    kind = name or (acc.type if acc is not None else None)
    return _C.device_count(kind) if kind else 0


def current_accelerator():
    """The first registered non-cpu device type that has devices, as an ``nd.device``; else None."""
    for name in device_types()[1:]:
        if _C.device_count(name) > 0:
            return _C.device(name, _current_index.get(name, 0))
    return None


def is_available() -> bool:
    return current_accelerator() is not None


def set_device_index(index: int) -> None:
    acc = current_accelerator()
    if acc is None:
        raise RuntimeError("set_device_index: no accelerator is available")
    if not 0 <= index < _C.device_count(acc.type):
        raise ValueError(f"set_device_index: index {index} out of range for {_C.device_count(acc.type)} {acc.type} devices")
    _current_index[acc.type] = index


def current_device_index() -> int:
    acc = current_accelerator()
    return 0 if acc is None else _current_index.get(acc.type, 0)
