"""nn kernels: softmax / log_softmax over a [4096, 1000] float32 matrix (forward), layer norm of
[64, 128, 256] over the last dim and cross entropy at the seed MNIST size ([64, 10]) and at
[4096, 1000], forward + backward (nd with ndgrad vs torch.autograd; NumPy forward where natural).
"""

from ..registry import workload

S_ROWS, S_COLS = 4096, 1000
_SOFTMAX_IO = {"bytes_per_call": 8 * S_ROWS * S_COLS}


def _functional(ctx):
    """(module with layer_norm/cross_entropy, system-specific names) for nd and torch."""
    if ctx.system.name == "nd":
        import ndgrad  # noqa: F401  (registers the autograd recorder)

        lib = ctx.lib
        return lib.layer_norm, lambda x, t: lib.cross_entropy_loss(x, t)
    F = ctx.lib.nn.functional
    return F.layer_norm, F.cross_entropy


@workload("softmax_4096x1000", "nd", "torch", **_SOFTMAX_IO)
def _softmax(ctx):
    x = ctx.randn(S_ROWS, S_COLS)
    return lambda: x.softmax(-1)


@workload("softmax_4096x1000", "numpy", **_SOFTMAX_IO)
def _softmax_numpy(ctx):
    np = ctx.lib
    x = ctx.randn(S_ROWS, S_COLS)

    def run():
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return run


@workload("log_softmax_4096x1000", "nd", "torch", **_SOFTMAX_IO)
def _log_softmax(ctx):
    x = ctx.randn(S_ROWS, S_COLS)
    return lambda: x.log_softmax(-1)


@workload("log_softmax_4096x1000", "numpy", **_SOFTMAX_IO)
def _log_softmax_numpy(ctx):
    np = ctx.lib
    x = ctx.randn(S_ROWS, S_COLS)

    def run():
        shifted = x - x.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    return run


@workload("softmax_dim0_4096x1000", "nd", "torch", **_SOFTMAX_IO)
def _softmax_dim0(ctx):
    x = ctx.randn(S_ROWS, S_COLS)
    return lambda: x.softmax(0)


@workload("layer_norm_64x128x256_fwd_bwd", "nd", "torch")
def _layer_norm(ctx):
    layer_norm, _ = _functional(ctx)
    x = ctx.system.randn(64, 128, 256).requires_grad_(True)
    w = ctx.system.randn(256).requires_grad_(True)
    b = ctx.system.randn(256).requires_grad_(True)
    g = ctx.randn(64, 128, 256)

    def run():
        x.grad = w.grad = b.grad = None
        layer_norm(x, (256,), w, b, 1e-5).backward(g)

    return run


def _cross_entropy(ctx, n, c):
    _, cross_entropy = _functional(ctx)
    x = ctx.system.randn(n, c).requires_grad_(True)
    lib = ctx.lib
    lib.manual_seed(1)
    t = lib.randint(0, c, (n,))

    def run():
        x.grad = None
        cross_entropy(x, t).backward()

    return run


@workload("cross_entropy_64x10_fwd_bwd", "nd", "torch")
def _ce_small(ctx):
    return _cross_entropy(ctx, 64, 10)


@workload("cross_entropy_4096x1000_fwd_bwd", "nd", "torch")
def _ce_large(ctx):
    return _cross_entropy(ctx, S_ROWS, S_COLS)
