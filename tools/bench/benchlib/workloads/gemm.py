"""Float32 products at the shapes models make: conv-as-GEMM, small-M linear layers, and the GPT
bench step's linear forward/backward and attention products (transposed operands as views)."""

from ..registry import workload


def _mm(m: int, k: int, n: int, ta: bool = False, tb: bool = False, bias: bool = False) -> None:
    name = f"gemm_{m}x{k}x{n}" + ("_ta" if ta else "") + ("_tb" if tb else "") + ("_bias" if bias else "")

    @workload(name, "nd", "torch", flops_per_call=2 * m * k * n)
    def _setup(ctx):
        a = ctx.randn(k, m).t() if ta else ctx.randn(m, k)
        b = ctx.randn(n, k).t() if tb else ctx.randn(k, n)
        lib = ctx.lib
        if bias:
            c = ctx.randn(n)
            return lambda: lib.addmm(c, a, b)
        return lambda: lib.mm(a, b)


_mm(64, 576, 3136)  # 3x3 conv, 64 channels, 56x56
_mm(20, 250, 1024)  # small-M: one row block, many columns
_mm(1024, 256, 768, tb=True, bias=True)  # GPT qkv projection forward
_mm(768, 1024, 256, ta=True)  # its weight gradient
_mm(1024, 1024, 256)  # GPT MLP down-projection input gradient


@workload("gemm_attn_qk_b8h4_t128_d64", "nd", "torch", flops_per_call=2 * 32 * 128 * 64 * 128)
def _attn_qk(ctx):
    """q @ k^T on head views of one fused projection, as scaled_dot_product_attention runs it."""
    x = ctx.randn(8, 128, 3 * 256)
    q = x[:, :, :256].reshape(8, 128, 4, 64).transpose(1, 2)
    k = x[:, :, 256:512].reshape(8, 128, 4, 64).transpose(1, 2)
    kt = k.transpose(-2, -1)
    return lambda: q.matmul(kt)
