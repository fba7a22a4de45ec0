"""nd: eager, Pythonic tensors and ML tools with PyTorch's names.

`import nd` gives ndcore's namespace plus lazily imported submodules from the other nd
packages; a submodule whose package is not installed raises an ImportError naming it.
"""
from __future__ import annotations

import importlib
import sys
import types

import ndcore as _ndcore
from ndcore import *  # noqa: F401,F403
from ndcore import __all__ as _core_all

from . import accelerator, backends, utils  # noqa: E402
from ._version import __version__  # noqa: E402

# Autograd is part of `import nd` whenever ndgrad is installed (torch's namespace has it
# unconditionally); without it, requires_grad=True raises an error naming ndgrad.
try:
    import ndgrad as _ndgrad
except ModuleNotFoundError as _e:  # pragma: no cover - depends on what is installed
    if _e.name != "ndgrad":
        raise
    _ndgrad = None
if _ndgrad is not None:
    from ndgrad import enable_grad, inference_mode, no_grad, set_grad_enabled  # noqa: F401
    from ndgrad import is_inference_mode_enabled  # noqa: F401

# submodule -> (providing package, module inside it)
_LAZY = {
    "autograd": ("ndgrad", "ndgrad.autograd"),
    "nn": ("ndnn", "ndnn"),
    "optim": ("ndoptim", "ndoptim"),
    "distributed": ("nddist", "nddist"),
    "onnx": ("ndonnx", "ndonnx"),
    "profiler": ("ndprof", "ndprof"),
    "datasets": ("nddata", "nddata.datasets"),
    "transforms": ("nddata", "nddata.transforms"),
    "cuda": ("ndcuda", "ndcuda"),
    "multiprocessing": ("ndcore", "ndcore.multiprocessing"),
}


def _missing(package: str, name: str) -> ImportError:
    return ImportError(f"nd.{name} needs the '{package}' package, which is not installed; "
                       f"install it from this repository (packages/{package}) or install ndstack with it")


def __getattr__(name: str):
    if name in _LAZY:
        package, target = _LAZY[name]
        try:
            mod = importlib.import_module(target)
        except ModuleNotFoundError as e:
            if e.name and (e.name == package or e.name.startswith(package + ".") or target.startswith(e.name)):
                raise _missing(package, name) from None
            raise
        sys.modules[f"nd.{name}"] = mod
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'nd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(set(_core_all) | {"accelerator", "backends", "utils"}
                 | ({"no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_inference_mode_enabled"}
                    if _ndgrad is not None else set()))
del types
