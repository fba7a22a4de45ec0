"""nd: eager, Pythonic tensors and ML tools with PyTorch's names.

`import nd` gives ndcore's namespace plus lazily imported submodules from the other nd
packages; a submodule whose package is not installed raises an ImportError naming it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

import ndcore as _ndcore
from ndcore import *  # noqa: F401,F403
from ndcore import __all__ as _core_all
from ndcore import __array_api_version__, __array_namespace_info__  # noqa: F401  (dunders: not star-imported)

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
    "serialization": ("ndnn", "ndnn.serialization"),
    "amp": ("ndnn", "ndnn.amp"),
    "models": ("ndnn", "ndnn.models"),  # torchvision.models' role: definitions, no weight downloads
}

# top-level functions and classes that live in a higher package: name -> (package, module)
_LAZY_ATTRS = {
    "save": ("ndnn", "ndnn.serialization"),
    "load": ("ndnn", "ndnn.serialization"),
    "autocast": ("ndnn", "ndnn.amp"),
}


class _AliasLoader(importlib.abc.Loader):
    """Gives the real module for an alias such as ``nd.nn.functional`` -> ``ndnn.functional``."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._real_spec  # the import machinery stamped the alias's spec on it


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Lets ``import nd.nn.functional as F`` and ``from nd.utils.data import DataLoader`` work,
    as in torch scripts, although the modules live in separately installed packages."""

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if parts[0] != "nd" or len(parts) < 2:
            return None
        for prefix_len in (3, 2):  # longest alias prefix first: nd.utils.data before nd.utils
            prefix = ".".join(parts[1:prefix_len])
            if prefix in _ALIASES and len(parts) >= prefix_len:
                package, real = _ALIASES[prefix]
                real_name = ".".join([real, *parts[prefix_len:]])
                if importlib.util.find_spec(package) is None:
                    raise _missing(package, prefix)
                return importlib.util.spec_from_loader(fullname, _AliasLoader(real_name))
        return None


def _missing(package: str, name: str) -> ImportError:
    return ImportError(f"nd.{name} needs the '{package}' package, which is not installed; "
                       f"install it from this repository (packages/{package}) or install ndstack with it")


# dotted nd.* names -> (package, real module); `import nd.<alias>.rest` resolves through these
_ALIASES = {name: (package, target) for name, (package, target) in _LAZY.items() if name != "multiprocessing"}
_ALIASES["utils.data"] = ("nddata", "nddata")
_ALIASES["utils.checkpoint"] = ("ndgrad", "ndgrad.checkpoint")
sys.meta_path.insert(0, _AliasFinder())  # before PathFinder, which would load a second copy via nd.nn.__path__


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
    if name in _LAZY_ATTRS:
        package, target = _LAZY_ATTRS[name]
        try:
            mod = importlib.import_module(target)
        except ModuleNotFoundError as e:
            if e.name and (e.name == package or e.name.startswith(package + ".")):
                raise _missing(package, name) from None
            raise
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_ATTRS))


__all__ = sorted(set(_core_all) | {"accelerator", "backends", "utils"}
                 | ({"no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_inference_mode_enabled"}
                    if _ndgrad is not None else set()))
del types
