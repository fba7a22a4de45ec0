"""Elementwise and broadcast workloads on float32 data (memory-bound)."""

import functools

from ..registry import same_op, workload

N = 10_000_000
F32 = 4


def _two(ctx):
    return ctx.randn(N), ctx.randn(N)


def _one(ctx):
    return (ctx.randn(N),)


# Each call allocates a fresh output, so allocator/page-fault cost is part of the result.
same_op("add_1e7", lambda x, y: x + y, _two, bytes_per_call=3 * F32 * N, flops_per_call=N)
same_op("mul_1e7", lambda x, y: x * y, _two, bytes_per_call=3 * F32 * N, flops_per_call=N)
same_op("fma_1e7", lambda x, y: x * y + 1, _two, bytes_per_call=3 * F32 * N, flops_per_call=2 * N)

_SIGMOID = {"bytes_per_call": 2 * F32 * N}


@workload("sigmoid_1e7", "nd", "torch", **_SIGMOID)
def _sigmoid_method(ctx):
    (x,) = _one(ctx)
    return x.sigmoid


@workload("sigmoid_1e7", "numpy", **_SIGMOID)
def _sigmoid_numpy(ctx):
    np = ctx.lib
    (x,) = _one(ctx)
    return lambda: 1 / (1 + np.exp(-x))


_ADD_OUT = {"bytes_per_call": 3 * F32 * N, "flops_per_call": N}


@workload("add_out_1e7", "nd", "numpy", "torch", **_ADD_OUT)
def _add_out(ctx):
    x, y = _two(ctx)
    out = ctx.system.randn(N)  # written to, so not a shared cached input
    add = ctx.lib.add
    return lambda: add(x, y, out=out)


def _bcast_inputs(ctx):
    return ctx.randn(4096, 4096), ctx.randn(4096, 1)


same_op(
    "bcast_add_4096",
    lambda x, c: x + c,
    _bcast_inputs,
    bytes_per_call=2 * F32 * 4096 * 4096,
    flops_per_call=4096 * 4096,
)


# Transcendental unary ops (vectorised polynomial kernels in nd; SLEEF-style in torch; NumPy's
# own SIMD exp/log/tanh and scipy's scalar erf).
_UNARY = {"bytes_per_call": 2 * F32 * N}


def _unary(fn_name, positive=False):
    def setup(ctx):
        lib = ctx.lib
        (x,) = _one(ctx)
        if positive:
            x = lib.abs(x) + 1e-3  # built once here, not per call
        if fn_name == "erf" and getattr(lib, "__name__", "") == "numpy":
            import scipy.special

            return functools.partial(scipy.special.erf, x)
        return functools.partial(getattr(lib, fn_name), x)

    return setup


for _fn, _pos in (("exp", False), ("log", True), ("tanh", False), ("erf", False)):
    workload(f"{_fn}_1e7", "nd", "torch", "numpy", **_UNARY)(_unary(_fn, _pos))
