"""Workload registry: one setup function per (workload, system).

A setup function receives a Context and returns a zero-argument callable, the thing timed.
A `custom` workload instead returns the per-call sample times itself (e.g. import time).
Workload modules live in benchlib/workloads/ and are discovered by `load_all`; adding a family
(autograd, conv, dataloader) means adding one file there.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from .systems import ALL


@dataclass
class Workload:
    """One benchmark case; `impls` maps a system name to its setup function.

    Args:
        bytes_per_call: memory traffic of one call, used to print achieved bandwidth.
        flops_per_call: floating-point operations of one call, used to print GFLOP/s.
        custom: the setup function measures by itself and returns its samples (in `unit`).
        unit: what the samples count: "ns" (time) or "B" (bytes, from a custom workload that
            measures memory). Either way lower is better, so medians and ratios are computed
            alike; the JSON keeps the key names (`samples_ns`, `median_ns`) and adds "unit".
        hidden: measured, but reported apart from the main table (e.g. copy bandwidth).
    """

    name: str
    impls: dict[str, Callable] = field(default_factory=dict)
    bytes_per_call: float | None = None
    flops_per_call: float | None = None
    custom: bool = False
    unit: str = "ns"
    hidden: bool = False


REGISTRY: dict[str, Workload] = {}


@dataclass
class Context:
    """What a setup function may use inside the worker."""

    system: object  # a systems.System with the library loaded
    plan: object  # the timing.TimingPlan in force
    state: dict  # survives between requests in one worker (the input cache)
    slot: int = 0  # how many inputs the current setup has asked for

    @property
    def lib(self):
        return self.system.lib

    def begin(self) -> None:
        self.slot = 0

    def randn(self, *shape):
        """A float32 standard-normal input, shared with later requests: do not modify it.

        Generating 1e7 normals costs NumPy ~0.3 s, more than the timing itself in --quick
        runs, so inputs are cached by (shape, order of request within the setup). A workload
        that writes into its inputs calls ctx.system.randn for a private copy.
        """
        key = (shape, self.slot)
        self.slot += 1
        cache = self.state.setdefault("inputs", {})
        if key not in cache:
            cache[key] = self.system.randn(*shape)
        return cache[key]


def _get(name: str, meta: dict) -> Workload:
    wl = REGISTRY.get(name)
    if wl is None:
        wl = REGISTRY[name] = Workload(name, **meta)
        return wl
    for key, value in meta.items():
        if getattr(wl, key) != value:
            raise ValueError(f"[bench] workload {name}: conflicting {key}")
    return wl


def workload(name: str, *systems: str, **meta):
    """Decorator registering `fn(ctx) -> callable` for each named system."""

    def register(fn):
        wl = _get(name, meta)
        for system in systems:
            if system in wl.impls:
                raise ValueError(f"[bench] workload {name} already has a {system} version")
            wl.impls[system] = fn
        return fn

    return register


def same_op(name: str, op: Callable, make_inputs: Callable, systems=ALL, **meta) -> None:
    """Registers `op(*make_inputs(ctx))` for systems whose APIs agree on it (e.g. x + y)."""

    def setup(ctx):
        return functools.partial(op, *make_inputs(ctx))

    workload(name, *systems, **meta)(setup)


# Listed first so the table follows this order; other modules in the package come after.
_ORDER = ("elementwise", "reductions", "linalg", "overhead")


def load_all() -> dict[str, Workload]:
    """Imports every workload module once and returns the registry."""
    from . import workloads

    found = {m.name for m in pkgutil.iter_modules(workloads.__path__)}
    names = [n for n in _ORDER if n in found] + sorted(found - set(_ORDER))
    for name in names:
        importlib.import_module(f"{workloads.__name__}.{name}")
    return REGISTRY
