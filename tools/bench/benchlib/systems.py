"""The systems under test: how a worker imports each one, makes inputs and describes itself.

Only the worker process imports the libraries; the parent reads names and modules from here.
"""

from __future__ import annotations

import importlib
import os

# Kernel choice differs with these set (see /work/shared/NOTES.md); workers run with both unset.
OPENBLAS_ENV_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class System:
    """Adapter for one array library; subclasses fill in the library-specific parts."""

    name = ""
    module = ""

    def __init__(self):
        self.lib = None

    def load(self):
        self.lib = importlib.import_module(self.module)
        return self.lib

    def randn(self, *shape):
        raise NotImplementedError

    def info(self) -> dict:
        info = {"version": getattr(self.lib, "__version__", None)}
        info["env"] = {k: os.environ.get(k) for k in OPENBLAS_ENV_UNSET}
        return info

    def set_threads(self, n: int) -> None:
        raise NotImplementedError


def _openblas_pools() -> list[dict]:
    try:
        import threadpoolctl
    except ImportError:
        return []
    return [p for p in threadpoolctl.threadpool_info() if p.get("internal_api") == "openblas"]


class NdSystem(System):
    name = "nd"
    module = "ndcore"

    def randn(self, *shape):
        return self.lib.randn(*shape)

    def info(self) -> dict:
        info = super().info()
        nd = self.lib
        if hasattr(nd, "get_num_threads"):
            info["threads"] = nd.get_num_threads()
        core = _nd_blas_corename()
        if core is not None:
            info["blas_core"] = core
        return info

    def set_threads(self, n: int) -> None:
        self.lib.set_num_threads(n)


def _nd_blas_corename():
    try:
        c_ext = importlib.import_module("ndcore._C")
    except ImportError:
        return None
    if not hasattr(c_ext, "blas_corename"):
        return None
    core = c_ext.blas_corename()
    return core.decode() if isinstance(core, bytes) else core


class NumpySystem(System):
    name = "numpy"
    module = "numpy"

    def __init__(self):
        super().__init__()
        self._limits = None

    def randn(self, *shape):
        rng = self.lib.random.default_rng(0)
        return rng.standard_normal(shape, dtype=self.lib.float32)

    def info(self) -> dict:
        info = super().info()
        pools = _openblas_pools()
        if pools:
            info["threads"] = pools[0].get("num_threads")
            info["blas_core"] = pools[0].get("architecture")
        return info

    def set_threads(self, n: int) -> None:
        import threadpoolctl

        # Kept alive on purpose: the limit lasts as long as this object.
        self._limits = threadpoolctl.threadpool_limits(n)


class TorchSystem(System):
    name = "torch"
    module = "torch"

    def randn(self, *shape):
        self.lib.manual_seed(0)
        return self.lib.randn(*shape)

    def info(self) -> dict:
        info = super().info()
        torch = self.lib
        info["threads"] = torch.get_num_threads()
        info["interop_threads"] = torch.get_num_interop_threads()
        # torch's x86 wheels do BLAS in MKL, so there is no OpenBLAS core to report.
        info["blas"] = "mkl" if torch.backends.mkl.is_available() else None
        return info

    def set_threads(self, n: int) -> None:
        self.lib.set_num_threads(n)


SYSTEMS = {cls.name: cls for cls in (NdSystem, NumpySystem, TorchSystem)}
ALL = tuple(SYSTEMS)
