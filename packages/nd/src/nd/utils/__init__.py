"""``nd.utils``: cpp_extension; ``data`` (nddata), ``checkpoint`` (ndgrad), ``save_image``/``make_grid`` (nddata)."""
from __future__ import annotations

import importlib

from . import cpp_extension

__all__ = ["cpp_extension", "data", "checkpoint", "save_image", "make_grid"]

# attribute -> (module to import, package that provides it)
_LAZY = {"data": ("nddata", "nddata"), "checkpoint": ("ndgrad.checkpoint", "ndgrad")}
# attribute -> (module that defines it, package that provides it)
_LAZY_ATTRS = {"save_image": ("nddata.utils", "nddata"), "make_grid": ("nddata.utils", "nddata")}


def __getattr__(name: str):
    if name not in _LAZY and name not in _LAZY_ATTRS:
        raise AttributeError(name)
    target, package = _LAZY.get(name) or _LAZY_ATTRS[name]
    try:
        mod = importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name == package:
            raise ImportError(f"nd.utils.{name} needs the '{package}' package, which is not installed") from None
        raise
    value = getattr(mod, name) if name in _LAZY_ATTRS else mod
    globals()[name] = value
    return value
