"""``nd.utils``: cpp_extension now; data loading arrives with nddata, checkpoint comes from ndgrad."""
from __future__ import annotations

import importlib

from . import cpp_extension

__all__ = ["cpp_extension", "data", "checkpoint"]

# attribute -> (module to import, package that provides it)
_LAZY = {"data": ("nddata", "nddata"), "checkpoint": ("ndgrad.checkpoint", "ndgrad")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(name)
    target, package = _LAZY[name]
    try:
        mod = importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name == package:
            raise ImportError(f"nd.utils.{name} needs the '{package}' package, which is not installed") from None
        raise
    globals()[name] = mod
    return mod
