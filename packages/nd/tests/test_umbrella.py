"""`import nd`: ndcore's namespace, torch-style helper modules, and clear errors for packages
that are not installed."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import nd


def test_reexports_ndcore():
    import ndcore

    assert nd.Tensor is ndcore.Tensor
    x = nd.ones(2, 3)
    assert (x + x).sum().item() == 12.0
    assert nd.float32 is ndcore.float32


def test_array_api_namespace_through_the_umbrella():
    x = nd.ones(2, 3)
    xp = x.__array_namespace__()
    assert xp is nd.array_api
    assert nd.__array_api_version__ == "2024.12"
    assert nd.__array_namespace_info__().default_dtypes()["real floating"] == nd.float32
    assert xp.sum(x, axis=1).tolist() == [3.0, 3.0]


@pytest.mark.parametrize("name,package", [
    ("autograd", "ndgrad"), ("nn", "ndnn"), ("optim", "ndoptim"), ("distributed", "nddist"),
    ("onnx", "ndonnx"), ("profiler", "ndprof"),
])
def test_missing_package_names_what_to_install(name, package):
    if importlib.util.find_spec(package) is not None:
        mod = getattr(nd, name)
        assert mod is not None
        return
    with pytest.raises(ImportError, match=package):
        getattr(nd, name)


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        nd.definitely_not_an_attribute


def test_accelerator_and_cudnn_flags_on_cpu():
    assert nd.accelerator.is_available() in (True, False)
    if not nd.accelerator.is_available():
        assert nd.accelerator.current_accelerator() is None
        assert nd.accelerator.device_count() == 0
        with pytest.raises(RuntimeError):
            nd.accelerator.set_device_index(0)
    nd.backends.cudnn.benchmark = True
    nd.backends.cudnn.deterministic = True
    assert nd.backends.cudnn.benchmark and nd.backends.cudnn.deterministic
    nd.backends.cudnn.benchmark = False
    nd.backends.cudnn.deterministic = False


def test_accelerator_sees_a_registered_device():
    from ndcore.testing import register_fake_device

    register_fake_device()
    assert nd.accelerator.is_available()
    acc = nd.accelerator.current_accelerator()
    assert acc.type == "fake" and nd.accelerator.device_count() == 2
    nd.accelerator.set_device_index(1)
    assert nd.accelerator.current_device_index() == 1
    nd.accelerator.set_device_index(0)
    with pytest.raises(ValueError):
        nd.accelerator.set_device_index(5)


def test_seed_ndarray_snippet_runs():
    x = nd.empty(5, 5)
    y = x + x
    s = x[..., -1:]
    b = x + x[:, -1:]
    z = x.sigmoid()
    q = nd.abs(x)
    x.uniform_()
    i = x.long()
    assert tuple(y.shape) == (5, 5) and tuple(s.shape) == (5, 1) and tuple(b.shape) == (5, 5)
    assert z.dtype == nd.float32 and q.dtype == nd.float32 and i.dtype == nd.int64
    assert float(x.min()) >= 0.0 and float(x.max()) < 1.0
    x = nd.ones(5, 5)
    assert repr(x) == ("tensor([[1., 1., 1., 1., 1.],\n        [1., 1., 1., 1., 1.],\n        [1., 1., 1., 1., 1.],\n"
                       "        [1., 1., 1., 1., 1.],\n        [1., 1., 1., 1., 1.]])")
    arr = x.numpy()
    x += 1
    assert (arr == 2).all()
    np.add(arr, 1, out=arr)
    assert (x == 3).all()


def test_autograd_through_the_umbrella():
    x = nd.ones(1, requires_grad=True)
    (g,) = nd.autograd.grad(x ** 2 + x * 5 + 4, x)
    assert g.tolist() == [7.0]
    with nd.no_grad():
        assert not (x * 2).requires_grad
    assert nd.autograd.Function is not None and callable(nd.autograd.functional.jacobian)


def test_seed_model_loop_with_backward():
    def model(x, W, b):
        return nd.matmul(x, W) + b

    nd.manual_seed(0)
    data = nd.randn(20, 5)
    targets = data @ nd.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]]) + 0.5
    W = nd.randn(5, 1, requires_grad=True)
    b = nd.randn(1, requires_grad=True)
    lr = 0.05
    first = None
    for _ in range(20):
        for example, target in zip(data, targets):
            output = model(example, W, b)
            loss = (output - target) ** 2
            grad_W, grad_b = nd.autograd.grad(loss, (W, b))
            W.data -= grad_W * lr
            b.data -= grad_b * lr
        total = float(((model(data, W, b) - targets) ** 2).mean())
        first = total if first is None else first
    assert total < 1e-3 < first


def test_dotted_imports_reach_the_providing_packages():
    """torch scripts write `import torch.nn.functional as F` and `from torch.utils.data import
    DataLoader`; the same lines with nd must give the real modules of the nd packages."""
    import importlib
    import sys

    pairs = [("nd.autograd", "ndgrad.autograd"), ("nd.utils.checkpoint", "ndgrad.checkpoint")]
    for package, alias, real in [("ndnn", "nd.nn", "ndnn"), ("ndnn", "nd.nn.functional", "ndnn.functional"),
                                 ("ndoptim", "nd.optim", "ndoptim"), ("nddata", "nd.utils.data", "nddata")]:
        if importlib.util.find_spec(package) is not None:
            pairs.append((alias, real))
    for alias, real in pairs:
        mod = importlib.import_module(alias)
        assert mod is importlib.import_module(real)
        assert sys.modules[alias] is mod
        assert mod.__spec__.name == real  # the alias does not rename the real module
    if importlib.util.find_spec("nddist") is None:
        with pytest.raises(ImportError, match="nddist"):
            importlib.import_module("nd.distributed")


TORCH_MODULE_PATHS = [
    ("conv", "Conv2d"), ("conv", "ConvTranspose1d"), ("rnn", "LSTM"), ("rnn", "GRUCell"), ("linear", "Linear"),
    ("linear", "Identity"), ("linear", "Bilinear"), ("batchnorm", "BatchNorm2d"), ("pooling", "MaxPool2d"),
    ("pooling", "AdaptiveAvgPool2d"), ("activation", "ReLU"), ("activation", "MultiheadAttention"),
    ("activation", "Softmax"), ("loss", "CrossEntropyLoss"), ("dropout", "Dropout"), ("sparse", "Embedding"),
    ("sparse", "EmbeddingBag"), ("transformer", "TransformerEncoderLayer"), ("transformer", "Transformer"),
    ("container", "Sequential"), ("container", "ModuleList"), ("container", "ParameterDict"),
    ("normalization", "LayerNorm"), ("normalization", "GroupNorm"), ("instancenorm", "InstanceNorm2d"),
    ("upsampling", "Upsample"), ("pixelshuffle", "PixelShuffle"), ("padding", "ZeroPad2d"),
    ("distance", "CosineSimilarity"), ("flatten", "Flatten"), ("module", "Module"),
]


@pytest.mark.parametrize("submodule,name", TORCH_MODULE_PATHS)
def test_layers_live_at_torch_module_paths(submodule, name):
    """Scripts and allow-lists name classes by torch's module paths (nd.nn.modules.conv.Conv2d)."""
    import importlib

    pytest.importorskip("ndnn")
    import nd

    mod = importlib.import_module(f"nd.nn.modules.{submodule}")
    assert getattr(mod, name) is getattr(nd.nn, name)


def test_every_torch_layer_nd_has_is_at_torch_module_path():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ndnn")
    import importlib

    import nd

    checked = 0
    for name in dir(torch.nn):
        cls = getattr(torch.nn, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and hasattr(nd.nn, name)):
            continue
        path = cls.__module__.replace("torch.nn", "nd.nn", 1)
        assert getattr(importlib.import_module(path), name) is getattr(nd.nn, name), f"{path}.{name}"
        checked += 1
    assert checked > 100
