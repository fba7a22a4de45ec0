"""Convolution and pooling kernels (nd vs torch; NumPy as a naive im2col + matmul for the stem):
the ResNet stem conv (3->64, 7x7, stride 2, padding 3) on [32, 3, 224, 224] forward and
forward + backward (weight and image gradients, and the weight gradient alone as in a network's
first layer), ResNet-18 3x3 and 1x1 convs at batch 8, and max pooling (3x3, stride 2,
padding 1) on [32, 64, 112, 112] forward and forward + backward.
"""

from ..registry import workload

STEM_X, STEM_W = (32, 3, 224, 224), (64, 3, 7, 7)
R18_3X3 = {"r18_conv3x3_64x56": (64, 56), "r18_conv3x3_256x14": (256, 14), "r18_conv3x3_512x7": (512, 7)}
POOL_X = (32, 64, 112, 112)


def _conv(ctx):
    """(conv2d, max_pool2d) of the system: nd's table ops (with ndgrad recording) or torch's."""
    if ctx.system.name == "nd":
        import ndgrad  # noqa: F401  (registers the autograd recorder)

        return ctx.lib.conv2d, ctx.lib.max_pool2d
    F = ctx.lib.nn.functional
    return F.conv2d, F.max_pool2d


def _leaf(ctx, t):
    return t.clone().requires_grad_(True)


@workload("conv7x7_s2_32x3x224_fwd", "nd", "torch")
def _stem_fwd(ctx):
    conv, _ = _conv(ctx)
    x, w = ctx.randn(*STEM_X), ctx.randn(*STEM_W)
    return lambda: conv(x, w, None, 2, 3)


@workload("conv7x7_s2_32x3x224_fwd", "numpy")
def _stem_fwd_numpy(ctx):
    np = ctx.lib
    x, w = ctx.randn(*STEM_X), ctx.randn(*STEM_W)
    N, C, H, W = STEM_X
    O, _, K, _ = STEM_W
    out = (H + 6 - K) // 2 + 1

    def run():
        xp = np.pad(x, [(0, 0), (0, 0), (3, 3), (3, 3)])
        view = np.lib.stride_tricks.sliding_window_view(xp, (K, K), axis=(2, 3))[:, :, ::2, ::2]
        cols = view.transpose(0, 2, 3, 1, 4, 5).reshape(N * out * out, C * K * K)
        return (cols @ w.reshape(O, -1).T).reshape(N, out, out, O).transpose(0, 3, 1, 2)

    return run


@workload("conv7x7_s2_32x3x224_fwd_bwd", "nd", "torch")
def _stem_fwd_bwd(ctx):
    conv, _ = _conv(ctx)
    x, w = _leaf(ctx, ctx.randn(*STEM_X)), _leaf(ctx, ctx.randn(*STEM_W))

    def run():
        conv(x, w, None, 2, 3).sum().backward()
        x.grad = w.grad = None

    return run


@workload("conv7x7_s2_32x3x224_fwd_bwd_weight", "nd", "torch")
def _stem_fwd_bwd_weight(ctx):
    conv, _ = _conv(ctx)
    x, w = ctx.randn(*STEM_X), _leaf(ctx, ctx.randn(*STEM_W))

    def run():
        conv(x, w, None, 2, 3).sum().backward()
        w.grad = None

    return run


def _r18(name, c, hw):
    @workload(f"{name}_b8_fwd_bwd", "nd", "torch")
    def _case(ctx):
        conv, _ = _conv(ctx)
        x, w = _leaf(ctx, ctx.randn(8, c, hw, hw)), _leaf(ctx, ctx.randn(c, c, 3, 3))

        def run():
            conv(x, w, None, 1, 1).sum().backward()
            x.grad = w.grad = None

        return run

    return _case


for _name, (_c, _hw) in R18_3X3.items():
    _r18(_name, _c, _hw)


@workload("r18_conv1x1_s2_256to512_b8_fwd_bwd", "nd", "torch")
def _downsample(ctx):
    conv, _ = _conv(ctx)
    x, w = _leaf(ctx, ctx.randn(8, 256, 14, 14)), _leaf(ctx, ctx.randn(512, 256, 1, 1))

    def run():
        conv(x, w, None, 2, 0).sum().backward()
        x.grad = w.grad = None

    return run


@workload("maxpool3x3_s2_32x64x112_fwd", "nd", "torch")
def _maxpool(ctx):
    _, pool = _conv(ctx)
    x = ctx.randn(*POOL_X)
    return lambda: pool(x, 3, 2, 1)


@workload("maxpool3x3_s2_32x64x112_fwd_bwd", "nd", "torch")
def _maxpool_bwd(ctx):
    _, pool = _conv(ctx)
    x = _leaf(ctx, ctx.randn(*POOL_X))

    def run():
        pool(x, 3, 2, 1).sum().backward()
        x.grad = None

    return run
