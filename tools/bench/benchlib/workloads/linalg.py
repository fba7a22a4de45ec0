"""Square float32 matrix products (compute-bound; BLAS kernel choice shows here)."""

from ..registry import workload


def _register_matmul(n: int) -> None:
    @workload(f"matmul_{n}", "nd", "numpy", "torch", flops_per_call=2 * n**3)
    def _matmul(ctx):
        a, b = ctx.randn(n, n), ctx.randn(n, n)
        matmul = ctx.lib.matmul
        return lambda: matmul(a, b)


_register_matmul(1024)
_register_matmul(2048)
