"""The op database: one OpInfo per row of ops/ops.yaml (see STYLE.md §2), with the dtypes to
test, the NumPy reference, the input domain, per-dtype tolerances and sample inputs covering
every layout (contiguous, transposed, broadcast, stride-0, negative strides, empty, 0-d, and
large enough to run on the thread pool)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import numpy as np

import ndcore

from ._opdb_gen import ROWS

ALL_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("uint8", "int8", "int16", "int32", "int64")
_GROUPS = {
    "float": FLOAT_DTYPES + INT_DTYPES,  # integer inputs promote to the default float dtype
    "numeric": INT_DTYPES + FLOAT_DTYPES,
    "all": ALL_DTYPES,
    "int": ("bool",) + INT_DTYPES,
    "bool_out": ALL_DTYPES,
}
# (rtol, atol) by the dtype results are compared in.
TOLERANCES = {
    "float64": (1e-7, 1e-9), "float32": (2e-5, 1e-5), "float16": (2e-3, 2e-3), "bfloat16": (2e-2, 2e-2),
}


def _resolve_ref(text):
    if text is None:
        return None
    import math

    env: dict[str, Any] = {"numpy": np, "math": math}
    try:
        import scipy.special  # noqa: F401
        import scipy

        env["scipy"] = scipy
    except ImportError:
        if "scipy" in text:
            return None
    return eval(text, env)  # the table is ours; refs are expressions over numpy/scipy


@dataclasses.dataclass
class OpInfo:
    name: str
    opname: str
    kind: str
    dtypes: tuple[str, ...]
    ref: Callable | None
    variants: list[str]
    test: dict
    differentiable: bool
    params: list

    @property
    def fn(self):
        if self.name.startswith("linalg_"):  # nd.linalg.inv for the row linalg_inv
            return getattr(ndcore.linalg, self.name[len("linalg_"):])
        return getattr(ndcore, self.name)

    @property
    def domain(self) -> tuple[float, float]:
        return tuple(self.test.get("domain", (-3, 3)))

    @property
    def other_domain(self) -> tuple[float, float]:
        return tuple(self.test.get("other_domain", self.domain))

    def tol(self, dtype: str) -> tuple[float, float]:
        """(rtol, atol) for results in `dtype`: the row's `test: {tol: {dtype: [rtol, atol]}}` if set."""
        own = self.test.get("tol", {}).get(dtype)
        return tuple(float(v) for v in own) if own else TOLERANCES.get(dtype, (0.0, 0.0))

    def make(self, rng: np.random.Generator, shape, dtype: str, domain=None) -> np.ndarray:
        """NumPy data of `shape` inside the op's domain (ints: small values; bool: random)."""
        lo, hi = domain or self.domain
        if dtype == "bool":
            return rng.random(shape) < 0.5
        if dtype in INT_DTYPES:
            lo_i, hi_i = int(np.floor(lo)), int(np.ceil(hi))
            if dtype == "uint8":
                lo_i = max(lo_i, 0)
            if hi_i <= lo_i:
                hi_i = lo_i + 1
            return rng.integers(lo_i, hi_i + 1, size=shape).astype(dtype)
        a = rng.uniform(lo, hi, size=shape)
        return a.astype(np.float32 if dtype == "bfloat16" else dtype)

    def unary_samples(self, rng, dtype) -> Iterator[tuple[str, np.ndarray, Callable]]:
        """(layout, base array, how to view it as a tensor of the same layout)."""
        base = self.make(rng, (5, 7), dtype)
        yield "contiguous", base, lambda t: t
        yield "transposed", base, lambda t: t.t()
        yield "sliced", base, lambda t: t[1:, ::2]
        yield "stride0", self.make(rng, (1, 7), dtype), lambda t: t.expand(4, 7)
        yield "empty", self.make(rng, (0, 3), dtype), lambda t: t
        yield "0d", self.make(rng, (), dtype), lambda t: t
        yield "large", self.make(rng, (70001,), dtype), lambda t: t

    def binary_samples(self, rng, dtype):
        a = self.make(rng, (5, 7), dtype)
        b = self.make(rng, (5, 7), dtype, self.other_domain)
        yield "contiguous", (a, b), lambda x, y: (x, y)
        yield "transposed", (a, b), lambda x, y: (x.t(), y.t())
        yield "broadcast", (self.make(rng, (5, 1), dtype), self.make(rng, (1, 7), dtype, self.other_domain)), lambda x, y: (x, y)
        yield "rank_broadcast", (a, self.make(rng, (7,), dtype, self.other_domain)), lambda x, y: (x, y)
        yield "0d_other", (a, self.make(rng, (), dtype, self.other_domain)), lambda x, y: (x, y)
        yield "empty", (self.make(rng, (0, 7), dtype), self.make(rng, (1, 7), dtype, self.other_domain)), lambda x, y: (x, y)
        yield "large", (self.make(rng, (70001,), dtype), self.make(rng, (70001,), dtype, self.other_domain)), lambda x, y: (x, y)


def to_nd(arr: np.ndarray, dtype: str):
    t = ndcore.tensor(arr)
    return t.to(getattr(ndcore, dtype)) if t.dtype.name != dtype else t


def to_np(t) -> np.ndarray:
    if t.dtype == ndcore.bfloat16:
        return t.float().numpy()
    return t.numpy()


OPDB: list[OpInfo] = []
for _row in ROWS:
    OPDB.append(OpInfo(
        name=_row["name"], opname=_row["opname"], kind=_row["kind"],
        dtypes=_GROUPS.get(_row["dtypes"], ALL_DTYPES) if _row["dtypes"] else FLOAT_DTYPES,
        ref=_resolve_ref(_row["ref"]), variants=_row["variants"], test=_row["test"],
        differentiable=_row["differentiable"], params=_row["params"]))

__all__ = ["OPDB", "OpInfo", "TOLERANCES", "to_nd", "to_np", "ALL_DTYPES", "FLOAT_DTYPES", "INT_DTYPES"]
