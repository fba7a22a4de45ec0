"""Autograd workloads (ndgrad vs torch.autograd; NumPy with hand-written backward)."""

import operator

from ..registry import workload

N, D_IN, H, D_OUT, ITERS = 64, 1000, 100, 10, 500


def _nd_autograd(ctx):
    import ndgrad  # noqa: F401  (registers the recorder)

    return ctx.lib


@workload("seed_two_layer_500", "nd", "torch")
def _two_layer_grad(ctx):
    lib = _nd_autograd(ctx) if ctx.system.name == "nd" else ctx.lib

    def run():
        w1 = lib.randn(D_IN, H, requires_grad=True)
        w2 = lib.randn(H, D_OUT, requires_grad=True)
        lr = 1e-6
        for _ in range(ITERS):
            x = lib.randn(N, D_IN)
            y = lib.randn(N, D_OUT)
            y_pred = x.mm(w1).clamp(min=0).mm(w2)
            loss = (y_pred - y).pow(2).sum()
            loss.backward()
            w1.data -= lr * w1.grad.data
            w2.data -= lr * w2.grad.data
            w1.grad.data.zero_()
            w2.grad.data.zero_()

    return run


@workload("seed_two_layer_500", "numpy")
def _two_layer_numpy(ctx):
    np = ctx.lib
    rng = np.random.default_rng(0)

    def run():
        w1 = rng.standard_normal((D_IN, H), dtype=np.float32)
        w2 = rng.standard_normal((H, D_OUT), dtype=np.float32)
        lr = 1e-6
        for _ in range(ITERS):
            x = rng.standard_normal((N, D_IN), dtype=np.float32)
            y = rng.standard_normal((N, D_OUT), dtype=np.float32)
            h = x @ w1
            h_relu = np.maximum(h, 0)
            y_pred = h_relu @ w2
            grad_y = 2.0 * (y_pred - y)
            grad_w2 = h_relu.T @ grad_y
            grad_h = grad_y @ w2.T
            grad_h[h < 0] = 0
            grad_w1 = x.T @ grad_h
            w1 -= lr * grad_w1
            w2 -= lr * grad_w2

    return run


@workload("grad_add_latency", "nd", "torch")
def _grad_add(ctx):
    lib = _nd_autograd(ctx) if ctx.system.name == "nd" else ctx.lib
    a = lib.randn(1, requires_grad=True)
    b = lib.randn(1, requires_grad=True)
    return lambda: operator.add(a, b)


@workload("chain100_fwd_bwd", "nd", "torch")
def _chain(ctx):
    lib = _nd_autograd(ctx) if ctx.system.name == "nd" else ctx.lib
    x = lib.randn(1, requires_grad=True)

    def run():
        y = x
        for _ in range(25):
            y = (y * 1.001 + 0.5).sin() - 0.1
        y.sum().backward()
        x.grad = None

    return run
