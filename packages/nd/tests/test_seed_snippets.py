"""The snippets of ../shared/seed/pytorch-slides.md that today's packages cover, run with
`torch` replaced by `nd` (snippets for nn, optim, data, distributed, onnx, profiler and CUDA
arrive with their packages and are tested there)."""
from __future__ import annotations

import numpy
import pytest

import nd


def test_pil_image_to_tensor(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    rng = numpy.random.default_rng(0)
    PIL.fromarray(rng.integers(0, 256, size=(8, 10, 3), dtype=numpy.uint8)).save(tmp_path / "dog.png")
    arr = numpy.asarray(PIL.open(tmp_path / "dog.png"))
    x = nd.from_numpy(arr.copy())
    assert x.dtype == nd.uint8 and tuple(x.shape) == (8, 10, 3)
    assert x.tolist() == arr.tolist()
    assert repr(x).startswith("tensor([[[")


def test_two_layer_net_with_backward_and_data_updates():
    N, D_in, H, D_out = 64, 1000, 100, 10
    nd.manual_seed(0)
    w1 = nd.randn(D_in, H, requires_grad=True)
    w2 = nd.randn(H, D_out, requires_grad=True)
    learning_rate = 1e-6
    x = nd.randn(N, D_in)
    y = nd.randn(N, D_out)
    losses = []
    for t in range(50):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        w1.data -= learning_rate * w1.grad.data
        w2.data -= learning_rate * w2.grad.data
        w1.grad.data.zero_()
        w2.grad.data.zero_()
    assert losses[-1] < 0.5 * losses[0]  # fixed data: plain gradient descent must make progress


def test_model_loop_with_backward():
    def model(x, W, b):
        return nd.matmul(x, W) + b

    nd.manual_seed(1)
    data = nd.randn(16, 5)
    targets = data @ nd.tensor([[0.5], [1.0], [-1.0], [2.0], [0.0]])
    W = nd.randn(5, 1, requires_grad=True)
    b = nd.randn(1, requires_grad=True)
    lr = 0.05
    for _ in range(30):
        for example, target in zip(data, targets):
            output = model(example, W, b)
            loss = (output - target) ** 2
            loss.backward()
            W.data -= W.grad.data * lr
            b.data -= b.grad.data * lr
            W.grad.data.zero_()
            b.grad.data.zero_()
    assert float(((model(data, W, b) - targets) ** 2).mean()) < 1e-4
