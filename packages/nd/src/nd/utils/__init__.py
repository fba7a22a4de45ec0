"""``nd.utils``: cpp_extension now; data loading arrives with nddata."""
from __future__ import annotations

import importlib

from . import cpp_extension

__all__ = ["cpp_extension", "data", "checkpoint"]


def __getattr__(name: str):
    if name == "checkpoint":
        try:
            mod = importlib.import_module("ndgrad.checkpoint")
        except ModuleNotFoundError as e:
            if e.name == "ndgrad":
                raise ImportError("nd.utils.checkpoint needs the 'ndgrad' package, which is not installed") from None
            raise
        globals()["checkpoint"] = mod
        return mod
    if name == "data":
        try:
            mod = importlib.import_module("nddata")
        except ModuleNotFoundError as e:
            if e.name == "nddata":
                raise ImportError("nd.utils.data needs the 'nddata' package, which is not installed") from None
            raise
        globals()["data"] = mod
        return mod
    raise AttributeError(name)
