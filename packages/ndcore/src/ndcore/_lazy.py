"""A module proxy imported on first attribute access: NumPy is the interop boundary, not a
dependency of `import ndcore` itself, and importing it eagerly would double ndcore's import
time."""
from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)


np = LazyModule("numpy")
