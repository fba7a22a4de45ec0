"""Reductions over a [4096, 4096] float32 matrix."""

from ..registry import same_op, workload

S = 4096
_READ = {"bytes_per_call": 4 * S * S}


def _matrix(ctx):
    return (ctx.randn(S, S),)


@workload("sum_dim1_4096", "nd", "torch", **_READ)
def _sum_dim1(ctx):
    (x,) = _matrix(ctx)
    return lambda: x.sum(dim=1)


@workload("sum_dim1_4096", "numpy", **_READ)
def _sum_dim1_numpy(ctx):
    (x,) = _matrix(ctx)
    return lambda: x.sum(axis=1)


same_op("sum_all_4096", lambda x: x.sum(), _matrix, **_READ)


@workload("amax_dim0_4096", "nd", "torch", **_READ)
def _amax_dim0(ctx):
    (x,) = _matrix(ctx)
    return lambda: x.amax(dim=0)


@workload("amax_dim0_4096", "numpy", **_READ)
def _amax_dim0_numpy(ctx):
    (x,) = _matrix(ctx)
    return lambda: x.max(axis=0)


@workload("max_dim0_4096", "nd", "torch", **_READ)
def _max_dim0(ctx):
    (x,) = _matrix(ctx)
    return lambda: x.max(dim=0)


@workload("max_dim0_4096", "numpy", **_READ)
def _max_dim0_numpy(ctx):
    # NumPy has no fused values+indices reduction; two passes is what a user would write.
    (x,) = _matrix(ctx)
    return lambda: (x.max(axis=0), x.argmax(axis=0))
