"""Optimizer step workloads (ndoptim vs torch.optim with its default implementation).

One ``step()`` over a fixed set of parameters whose ``.grad`` is already filled: a
resnet18-shaped set (62 tensors, 11.7M floats: memory-bound, the fused multi-tensor kernel
reads and writes each element once) and the seed MNIST Net's 8 tensors (1.2M floats, a few
large and several tiny tensors). torch's default on CPU is the single-tensor for-loop
implementation (``foreach``/``fused`` unset).
"""

import math

from ..registry import workload


def _resnet18_shapes():
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            first_in = cin if block == 0 else cout
            shapes += [(cout, first_in, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if block == 0 and (stride != 1 or first_in != cout):
                shapes += [(cout, first_in, 1, 1), (cout,), (cout,)]
        cin = cout
    return shapes + [(1000, 512), (1000,)]


RESNET18 = _resnet18_shapes()  # 62 tensors, 11,689,512 floats
MNIST_NET = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 9216), (128,), (10, 128), (10,)]


def _params(ctx, shapes):
    params = []
    for s in shapes:
        p = ctx.system.randn(*s).requires_grad_(True)  # private copies: the step writes them
        p.grad = ctx.system.randn(*s) * 1e-3
        params.append(p)
    return params


def _optim(ctx):
    if ctx.system.name == "nd":
        import ndoptim

        return ndoptim
    return ctx.lib.optim


def _register(name, shapes, make):
    nbytes = sum(math.prod(s) for s in shapes) * 4

    @workload(name, "nd", "torch", bytes_per_call=nbytes * make.traffic)
    def _setup(ctx):
        opt = make(_optim(ctx), _params(ctx, shapes))
        opt.step()  # creates the state outside the timed region
        return opt.step


def _adam(optim, params):
    return optim.Adam(params, lr=1e-3)


def _sgd(optim, params):
    return optim.SGD(params, lr=1e-3, momentum=0.9)


_adam.traffic = 7  # reads param, grad, exp_avg, exp_avg_sq; writes param, exp_avg, exp_avg_sq
_sgd.traffic = 5  # reads param, grad, buffer; writes param, buffer

_register("adam_step_resnet18", RESNET18, _adam)
_register("sgd_momentum_step_resnet18", RESNET18, _sgd)
_register("adam_step_mnist_net", MNIST_NET, _adam)
_register("sgd_momentum_step_mnist_net", MNIST_NET, _sgd)
