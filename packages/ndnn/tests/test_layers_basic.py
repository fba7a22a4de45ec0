"""Linear, convolution, activation, dropout and shape layers vs torch; init, reprs, train/eval, the seed Net."""
from __future__ import annotations

import math

import numpy as np
import pytest
from _nn_helpers import check_module_vs_torch, close, copy_into_torch, rng, t, tt

import ndcore as nd
import ndgrad
import ndnn as nn
import ndnn.functional as F


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- linear

def test_linear_forward_backward_vs_numpy_and_torch():
    torch = _torch()
    nd.manual_seed(0)
    m = nn.Linear(5, 3)
    x = rng(0).standard_normal((4, 5)).astype(np.float32)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    close(m(t(x)), x @ w.T + b, atol=1e-6)
    check_module_vs_torch(m, torch.nn.Linear(5, 3), [x])
    check_module_vs_torch(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False),
                          [rng(1).standard_normal((2, 3, 5)).astype(np.float32)])


def test_linear_init_bounds_and_attributes():
    nd.manual_seed(1)
    m = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = m.weight.detach().numpy()
    assert w.shape == (300, 400) and m.bias.shape == (300,)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # U(-b, b) has std b / sqrt(3)
    assert np.abs(m.bias.detach().numpy()).max() <= bound
    assert m.in_features == 400 and m.out_features == 300
    assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
    assert nn.Linear(3, 2, bias=False).bias is None


def test_linear_dtype_and_gradcheck():
    m = nn.Linear(3, 2, dtype=nd.float64)
    assert m.weight.dtype == nd.float64
    x = t(rng(2).standard_normal((2, 3)), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, w, b: F.linear(a, w, b), (x, m.weight, m.bias))
    with pytest.raises(ValueError, match=r"\[linear\] input of shape \(2, 4\) does not match weight of shape \(2, 3\)"):
        m(t(np.zeros((2, 4))))


def test_bilinear_and_identity():
    torch = _torch()
    m = nn.Bilinear(3, 4, 2)
    a = rng(3).standard_normal((5, 3)).astype(np.float32)
    b = rng(4).standard_normal((5, 4)).astype(np.float32)
    w, bias = m.weight.detach().numpy(), m.bias.detach().numpy()
    close(m(t(a), t(b)), np.einsum("ni,kij,nj->nk", a, w, b) + bias, atol=1e-5)
    check_module_vs_torch(m, torch.nn.Bilinear(3, 4, 2), [a, b], grad_inputs=(0, 1))
    assert repr(m) == repr(torch.nn.Bilinear(3, 4, 2))
    ident = nn.Identity(54, unused="x")
    x = t(a)
    assert ident(x) is x


def test_lazy_linear_infers_in_features():
    m = nn.LazyLinear(4)
    out = m(t(rng(5).standard_normal((2, 7)).astype(np.float32)))
    assert tuple(out.shape) == (2, 4)
    assert type(m) is nn.Linear and m.in_features == 7 and tuple(m.weight.shape) == (4, 7)


# ---------------------------------------------------------------- conv

CONV_LAYERS = [
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1, groups=2), (2, 4, 9)),
    ("Conv2d", (3, 5, (3, 2)), dict(padding=(1, 0), dilation=(1, 2)), (2, 3, 7, 8)),
    ("Conv2d", (3, 4, 3), dict(padding="same", padding_mode="reflect"), (2, 3, 6, 7)),
    ("Conv2d", (3, 4, 3), dict(padding=2, padding_mode="circular", bias=False), (1, 3, 5, 5)),
    ("Conv2d", (2, 4, 2), dict(padding=1, padding_mode="replicate"), (3, 2, 4, 4)),
    ("Conv2d", (3, 4, 4), dict(padding="same"), (2, 3, 6, 7)),
    ("Conv3d", (2, 3, 2), dict(stride=(1, 2, 1), padding="valid"), (1, 2, 4, 5, 4)),
    ("ConvTranspose1d", (4, 2, 3), dict(stride=2, output_padding=1), (2, 4, 5)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, groups=2, dilation=1), (2, 4, 4, 5)),
    ("ConvTranspose3d", (2, 2, 2), dict(stride=2, bias=False), (1, 2, 2, 3, 2)),
]


@pytest.mark.parametrize("name,args,kw,shape", CONV_LAYERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONV_LAYERS)])
def test_conv_layers_vs_torch(name, args, kw, shape):
    torch = _torch()
    m, mt = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    assert repr(m) == repr(mt)
    assert m.kernel_size == mt.kernel_size and m.stride == mt.stride and m.padding == mt.padding
    assert tuple(m.weight.shape) == tuple(mt.weight.shape)
    check_module_vs_torch(m, mt, [rng(6).standard_normal(shape).astype(np.float32)], rtol=1e-4, atol=1e-4)


def test_conv_transpose_output_size():
    torch = _torch()
    m, mt = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    copy_into_torch(m, mt)
    x = rng(7).standard_normal((1, 2, 4, 4)).astype(np.float32)
    for size in ([7, 7], [8, 8], [1, 3, 8, 7]):
        out = m(t(x), output_size=size)
        close(out, mt(tt(x), output_size=size), atol=1e-5)
    with pytest.raises(ValueError, match="requested an output size of"):
        m(t(x), output_size=[10, 10])


def test_conv_constructor_errors_and_init():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="not supported for strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    nd.manual_seed(2)
    m = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)
    w = m.weight.detach().numpy()
    assert w.shape == (32, 16, 3, 3) and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(m.bias.detach().numpy()).max() <= bound
    assert m.kernel_size == (3, 3) and m.padding == (0, 0) and m._reversed_padding_repeated_twice == (0, 0, 0, 0)
    assert tuple(nn.ConvTranspose2d(4, 6, 3, groups=2).weight.shape) == (4, 3, 3, 3)


# ---------------------------------------------------------------- activations

ACTIVATIONS = [
    ("ReLU", {}), ("ReLU", {"inplace": True}), ("ReLU6", {}), ("LeakyReLU", {"negative_slope": 0.2}),
    ("ELU", {"alpha": 0.5}), ("SELU", {}), ("CELU", {"alpha": 2.0}), ("GELU", {}), ("GELU", {"approximate": "tanh"}),
    ("SiLU", {}), ("Mish", {}), ("Sigmoid", {}), ("Tanh", {}), ("Hardtanh", {"min_val": -2.0, "max_val": 0.5}),
    ("Hardswish", {}), ("Hardsigmoid", {}), ("Softplus", {"beta": 2.0, "threshold": 5.0}), ("Softsign", {}),
    ("Softmax", {"dim": 1}), ("LogSoftmax", {"dim": -1}), ("Softmin", {"dim": 0}), ("Softmax2d", {}),
    ("GLU", {"dim": 1}), ("Threshold", {"threshold": 0.1, "value": 20.0}), ("LogSigmoid", {}), ("Tanhshrink", {}),
    ("Softshrink", {"lambd": 0.3}), ("Hardshrink", {"lambd": 0.3}), ("RReLU", {"lower": 0.1, "upper": 0.2}),
    ("PReLU", {"num_parameters": 4, "init": 0.1}), ("PReLU", {}),
]


@pytest.mark.parametrize("name,kw", ACTIVATIONS, ids=[f"{a[0]}-{i}" for i, a in enumerate(ACTIVATIONS)])
def test_activation_modules_vs_torch(name, kw):
    torch = _torch()
    m, mt = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
    assert repr(m) == repr(mt)
    if name == "RReLU":
        m.eval()
        mt.eval()
    x = rng(8).uniform(-3, 3, (2, 4, 3, 2)).astype(np.float32)
    if kw.get("inplace"):
        close(m(t(x) * 1.0), mt(tt(x) * 1.0))
        return
    check_module_vs_torch(m, mt, [x], rtol=1e-5, atol=1e-5)


def test_module_reprs_of_a_model():
    torch = _torch()
    def build(lib):
        return lib.Sequential(lib.Conv2d(1, 32, 3, 1), lib.ReLU(inplace=True), lib.MaxPool2d(2, ceil_mode=True),
                              lib.Dropout2d(0.25), lib.Flatten(), lib.Linear(9216, 128), lib.GELU(),
                              lib.Dropout(0.5), lib.Linear(128, 10), lib.LogSoftmax(dim=1), lib.Unflatten(1, (2, 5)))
    assert repr(build(nn)) == repr(build(torch.nn))


# ---------------------------------------------------------------- dropout

def test_dropout_train_eval():
    nd.manual_seed(3)
    m = nn.Dropout(0.3)
    assert repr(m) == "Dropout(p=0.3, inplace=False)"
    x = t(np.ones((200, 100), np.float32), requires_grad=True)
    out = m(x)
    v = out.detach().numpy()
    assert set(np.unique(v)).issubset({0.0, np.float32(1 / 0.7)})
    assert abs((v == 0).mean() - 0.3) < 0.02
    out.sum().backward()
    close(x.grad, (v != 0) / 0.7, atol=1e-6)  # the gradient uses the same mask
    m.eval()
    assert m(x) is x
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)
    assert F.dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize("name,shape,mask_dims", [("Dropout1d", (8, 50, 6), 2), ("Dropout2d", (8, 50, 3, 4), 2),
                                                  ("Dropout3d", (8, 50, 2, 2, 3), 2), ("Dropout1d", (400, 6), 1),
                                                  ("Dropout3d", (400, 2, 2, 3), 1)])
def test_feature_dropout_zeroes_whole_channels(name, shape, mask_dims):
    nd.manual_seed(4)
    m = getattr(nn, name)(0.4)
    v = m(t(np.ones(shape, np.float32))).numpy()
    flat = v.reshape(shape[:mask_dims] + (-1,))
    assert np.all(flat.min(-1) == flat.max(-1))  # one draw per channel
    assert abs((flat[..., 0] == 0).mean() - 0.4) < 0.1
    np.testing.assert_allclose(np.unique(flat), [0.0, 1 / 0.6], rtol=1e-6)
    m.eval()
    close(m(t(np.ones(shape, np.float32))), np.ones(shape, np.float32))


def test_alpha_dropout_keeps_statistics():
    nd.manual_seed(5)
    x = t(rng(9).standard_normal((400000,)).astype(np.float32))
    for m in (nn.AlphaDropout(0.2), nn.FeatureAlphaDropout(0.2)):
        xin = x.reshape(4000, 100) if isinstance(m, nn.FeatureAlphaDropout) else x
        v = m(xin).numpy()
        assert abs(v.mean()) < 0.02 and abs(v.std() - 1) < 0.02
        m.eval()
        assert m(xin) is xin


# ---------------------------------------------------------------- flatten

def test_flatten_unflatten():
    torch = _torch()
    x = rng(10).standard_normal((2, 3, 4, 5)).astype(np.float32)
    close(nn.Flatten()(t(x)), x.reshape(2, -1))
    close(nn.Flatten(0, 2)(t(x)), x.reshape(24, 5))
    close(nn.Unflatten(1, (3, 1))(t(x)), x.reshape(2, 3, 1, 4, 5))
    assert repr(nn.Unflatten(1, [3, 1])) == repr(torch.nn.Unflatten(1, [3, 1]))
    with pytest.raises(TypeError, match="unflattened_size"):
        nn.Unflatten(1, 3.0)


# ---------------------------------------------------------------- the seed MNIST Net

def _seed_nets(torch):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout2d(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = F.relu(self.fc1(self.dropout1(x).flatten(1)))
            return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)

    tn, tf = torch.nn, torch.nn.functional

    class TNet(tn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tn.Conv2d(1, 32, 3, 1)
            self.conv2 = tn.Conv2d(32, 64, 3, 1)
            self.dropout1 = tn.Dropout2d(0.25)
            self.dropout2 = tn.Dropout(0.5)
            self.fc1 = tn.Linear(9216, 128)
            self.fc2 = tn.Linear(128, 10)

        def forward(self, x):
            x = tf.relu(self.conv1(x))
            x = tf.max_pool2d(tf.relu(self.conv2(x)), 2)
            x = tf.relu(self.fc1(self.dropout1(x).flatten(1)))
            return tf.log_softmax(self.fc2(self.dropout2(x)), dim=1)

    return Net(), TNet()


def test_seed_net_matches_torch_and_learns():
    torch = _torch()
    nd.manual_seed(0)
    net, tnet = _seed_nets(torch)
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    net.eval()
    tnet.eval()
    x = rng(11).standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = rng(12).integers(0, 10, 8)
    copy_into_torch(net, tnet)
    loss = F.nll_loss(net(t(x)), t(y))
    loss_t = torch.nn.functional.nll_loss(tnet(tt(x)), tt(y))
    close(loss, loss_t, rtol=1e-4)
    loss.backward()
    loss_t.backward()
    tp = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        close(p.grad, tp[name].grad, rtol=1e-3, atol=1e-5)
    # a few SGD steps in training mode (dropout on) drive the loss down on a fixed batch
    net.train()
    first = None
    for _ in range(12):
        for p in net.parameters():
            p.grad = None
        loss = F.cross_entropy(net.fc2(F.relu(net.fc1(F.max_pool2d(F.relu(net.conv2(F.relu(net.conv1(t(x))))), 2)
                                                        .flatten(1)))), t(y))
        loss.backward()
        with ndgrad.no_grad():
            for p in net.parameters():
                p.sub_(p.grad * 0.05)
        first = float(loss) if first is None else first
    assert float(loss) < 0.6 * first
