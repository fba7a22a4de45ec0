"""DataParallel: transparent on one device, scatter/replicate/gather over several (FakeDevice)."""
from __future__ import annotations

import ndcore as nd
import numpy as np
import pytest

import ndnn
from ndnn import DataParallel, Module, Parameter, data_parallel
from ndnn.parallel import gather, scatter


class Affine(Module):
    def __init__(self):
        super().__init__()
        self.w = Parameter(nd.tensor([1.0, 2.0, 3.0]))
        self.b = Parameter(nd.tensor([0.5, 0.0, -0.5]))
        self.register_buffer("scale", nd.tensor([2.0]))

    def forward(self, x, shift=0.0):
        return (x * self.w + self.b).tanh() * self.scale + shift


@pytest.fixture
def fake():
    from ndcore.testing import register_fake_device
    return register_fake_device()


def test_transparent_wrapper_without_accelerator(monkeypatch):
    monkeypatch.setattr(nd.devices, "current_accelerator", lambda: None)  # as on a CPU-only machine
    m = Affine()
    dp = DataParallel(m)
    assert dp.module is m and dp.device_ids == []
    assert list(dp.state_dict()) == ["module.w", "module.b", "module.scale"]
    x = nd.randn(4, 3)
    np.testing.assert_array_equal(dp(x, shift=1.0).detach().numpy(), m(x, shift=1.0).detach().numpy())
    np.testing.assert_array_equal(data_parallel(m, x).detach().numpy(), m(x).detach().numpy())
    assert repr(dp) == "DataParallel(\n  (module): Affine()\n)"


def test_state_dict_prefix_matches_torch():
    torch = pytest.importorskip("torch")
    theirs = list(torch.nn.DataParallel(torch.nn.Linear(3, 2)).state_dict())
    ours = list(DataParallel(ndnn.Linear(3, 2)).state_dict())
    assert ours == theirs == ["module.weight", "module.bias"]


def test_scatter_and_gather_structures(fake):
    devs = [nd.device("fake", 0), nd.device("fake", 1)]
    x = nd.arange(10, dtype=nd.float32).reshape(5, 2)
    parts = scatter((x, {"k": x * 2, "n": 3}, [x]), devs)
    assert len(parts) == 2
    a, b = parts
    assert a[0].shape == (3, 2) and b[0].shape == (2, 2)  # torch.chunk sizes
    assert a[0].device == devs[0] and b[0].device == devs[1]
    assert a[1]["n"] == 3 and b[1]["k"].device == devs[1] and isinstance(b[2], list)
    out = gather([(a[0], {"y": a[0]}), (b[0], {"y": b[0]})], nd.device("cpu"))
    np.testing.assert_array_equal(out[0].numpy(), x.numpy())
    np.testing.assert_array_equal(out[1]["y"].numpy(), x.numpy())
    with pytest.warns(UserWarning, match="scalars"):
        v = gather([nd.tensor(1.0), nd.tensor(2.0)], "cpu")
    assert v.tolist() == [1.0, 2.0]


def test_multi_device_forward_and_backward_match_single(fake):
    m = Affine().to("fake:0")
    devices_seen = []
    m.register_forward_hook(lambda mod, args, out: devices_seen.append(str(args[0].device)))
    dp = DataParallel(m, output_device=-1)
    assert dp.device_ids == [0, 1] and dp.src_device_obj == nd.device("fake", 0)
    x = nd.tensor(np.random.default_rng(0).standard_normal((7, 3)), dtype=nd.float32)
    y = dp(x, shift=0.25)
    assert devices_seen == ["fake:0", "fake:1"]  # one replica per device
    assert y.is_cpu and y.shape == (7, 3)
    ref = Affine()
    y_ref = ref(x, shift=0.25)
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), rtol=1e-6)
    (y * y).sum().backward()
    (y_ref * y_ref).sum().backward()
    assert m.w.grad.device == nd.device("fake", 0)
    np.testing.assert_allclose(m.w.grad.cpu().numpy(), ref.w.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(m.b.grad.cpu().numpy(), ref.b.grad.numpy(), rtol=1e-5)
    out = data_parallel(m, x, output_device=-1)
    np.testing.assert_allclose(out.detach().numpy(), ref(x).detach().numpy(), rtol=1e-6)


def test_small_batch_uses_fewer_devices(fake):
    m = Affine().to("fake:0")
    dp = DataParallel(m, output_device=-1)
    y = dp(nd.ones(1, 3))
    assert y.shape == (1, 3)


def test_single_device_moves_module_and_checks_placement(fake):
    m = Affine()
    dp = DataParallel(m, device_ids=["fake:1"])
    assert m.w.device == nd.device("fake", 1) and dp.output_device == 1
    y = dp(nd.ones(2, 3))
    assert y.device == nd.device("fake", 1)
    m2 = Affine()  # left on the CPU
    dp2 = DataParallel(m2, device_ids=[0, 1])
    with pytest.raises(RuntimeError, match="must have its parameters and buffers on device fake:0"):
        dp2(nd.ones(2, 3))
    with pytest.raises(ValueError, match="expected a fake device"):
        DataParallel(Affine(), device_ids=["cpu"])
