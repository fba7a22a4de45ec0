"""Loads OpenBLAS from the scipy-openblas32 wheel before the C extension needs it.

libndcore.so names libscipy_openblas.so as a dependency without a path (no rpath into the
build environment); loading the wheel's copy with RTLD_GLOBAL first lets the dynamic loader
resolve it by soname, for regular and editable installs alike.
"""
from __future__ import annotations

import ctypes
import os


def load_openblas() -> None:
    import scipy_openblas32

    path = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
