"""Loads OpenBLAS from the scipy-openblas32 wheel before the C extension needs it.

libndcore.so names libscipy_openblas.so as a dependency without a path (no rpath into the
build environment); loading the wheel's copy with RTLD_GLOBAL first lets the dynamic loader
resolve it by soname, for regular and editable installs alike.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os


def load_openblas() -> None:
    # find_spec locates the wheel without executing it (its __init__ imports importlib.metadata,
    # which alone costs a third of ndcore's import time)
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("ndcore needs the scipy-openblas32 package (pip install scipy-openblas32)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "lib", "libscipy_openblas.so")
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
