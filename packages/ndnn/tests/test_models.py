"""The model zoo: torchvision's published parameter counts and state_dict names, output shapes,
blocks against torch functional re-computations, the seed's MNIST Net and the GPT LM vs torch."""
from __future__ import annotations

import math

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndnn
from ndnn import models


def _np(t):
    return t.detach().numpy()


def _count(m):
    return sum(p.numel() for p in m.parameters())


# torchvision's published numbers (1000 classes)
@pytest.mark.parametrize("name,count", [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
                                        ("alexnet", 61_100_840),
                                        ("squeezenet1_1", 1_235_496), ("squeezenet1_0", 1_248_424),
                                        ("mobilenet_v2", 3_504_872)])
def test_parameter_counts_match_torchvision(name, count):
    nd.manual_seed(0)
    assert _count(getattr(models, name)()) == count


def test_state_dict_names_match_torchvision():
    sd = models.resnet18().state_dict()
    for k in ["conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias", "fc.weight"]:
        assert k in sd, k
    assert len(sd) == 122
    sd = models.resnet50().state_dict()
    assert "layer3.5.conv3.weight" in sd and "layer1.0.bn3.weight" in sd and len(sd) == 320
    sd = models.mobilenet_v2().state_dict()
    for k in ["features.0.0.weight", "features.0.1.running_mean", "features.1.conv.0.0.weight",
              "features.1.conv.1.weight", "features.2.conv.3.bias", "features.18.0.weight", "classifier.1.weight"]:
        assert k in sd, k
    sd = models.squeezenet1_1().state_dict()
    assert {"features.0.weight", "features.3.squeeze.weight", "features.12.expand3x3.bias",
            "classifier.1.weight"} <= set(sd)
    assert {"features.0.weight", "features.10.bias", "classifier.1.weight", "classifier.6.bias"} <= \
        set(models.alexnet().state_dict())
    bn_trunk = models.vgg.make_layers(models.vgg._CFGS["A"], batch_norm=True).state_dict()
    assert tuple(bn_trunk["1.running_mean"].shape) == (64,) and "25.weight" in bn_trunk


def test_vgg11_count_names_and_shape():
    """One instance (its 100M-parameter classifier is slow to initialise) checks all three."""
    nd.manual_seed(8)
    m = models.vgg11(num_classes=1000)
    assert _count(m) == 132_863_336
    sd = m.state_dict()
    assert {"features.0.weight", "features.18.bias", "classifier.0.weight", "classifier.6.bias"} <= set(sd)
    assert abs(float(m.classifier[0].weight[:64].std()) - 0.01) < 0.001
    m.eval()
    with ndgrad.no_grad():
        assert tuple(m(nd.randn(1, 3, 32, 32)).shape) == (1, 1000)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "alexnet", "squeezenet1_1", "mobilenet_v2"])
def test_forward_shapes(name):
    nd.manual_seed(1)
    m = getattr(models, name)(num_classes=7)
    m.eval()
    with ndgrad.no_grad():
        y = m(nd.randn(1, 3, 64, 64))
    assert tuple(y.shape) == (1, 7)
    assert np.isfinite(y.numpy()).all()


def test_weights_argument_and_options():
    with pytest.raises(ValueError, match="pretrained weights are not available"):
        models.resnet18(weights="IMAGENET1K_V1")
    m = models.resnet18(weights=None, progress=False, zero_init_residual=True)
    assert float(m.layer1[0].bn2.weight.abs().sum()) == 0 and float(m.layer1[0].bn1.weight.sum()) == 64
    m = models.resnet50(zero_init_residual=True)
    assert float(m.layer2[1].bn3.weight.abs().sum()) == 0
    half = models.mobilenet_v2(width_mult=0.5)
    assert tuple(half.features[0][0].weight.shape) == (16, 3, 3, 3) and half.last_channel == 1280
    assert tuple(half.classifier[1].weight.shape) == (1000, 1280)


def test_resnet_train_step_reaches_every_parameter():
    nd.manual_seed(2)
    m = models.resnet18(num_classes=5)
    logits = m(nd.randn(2, 3, 32, 32))
    ndnn.functional.cross_entropy(logits, nd.tensor([1, 3])).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), name


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("training", [False, True])
def test_residual_blocks_match_torch_functional(block, training):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    nd.manual_seed(3)
    down = ndnn.Sequential(models.resnet.conv1x1(4, 8 if block == "basic" else 16, 2), ndnn.BatchNorm2d(
        8 if block == "basic" else 16))
    blk = (models.BasicBlock(4, 8, stride=2, downsample=down) if block == "basic"
           else models.Bottleneck(4, 4, stride=2, downsample=down))
    for mod in blk.modules():
        if isinstance(mod, ndnn.BatchNorm2d):  # non-trivial affine parameters and running stats
            mod.weight.data.copy_(nd.rand(*mod.weight.shape) + 0.5)
            mod.bias.data.copy_(nd.randn(*mod.bias.shape))
            mod.running_mean.copy_(nd.randn(*mod.running_mean.shape))
    blk.train(training)
    x = np.random.default_rng(3).normal(size=(2, 4, 9, 9)).astype(np.float32)
    sd = {k: torch.tensor(_np(v)) for k, v in blk.state_dict().items()}

    def bn(t, p):
        return tF.batch_norm(t, sd[p + ".running_mean"].clone(), sd[p + ".running_var"].clone(), sd[p + ".weight"],
                             sd[p + ".bias"], training=training)

    tx = torch.tensor(x)
    if block == "basic":
        out = tF.relu(bn(tF.conv2d(tx, sd["conv1.weight"], stride=2, padding=1), "bn1"))
        out = bn(tF.conv2d(out, sd["conv2.weight"], padding=1), "bn2")
    else:
        out = tF.relu(bn(tF.conv2d(tx, sd["conv1.weight"]), "bn1"))
        out = tF.relu(bn(tF.conv2d(out, sd["conv2.weight"], stride=2, padding=1), "bn2"))
        out = bn(tF.conv2d(out, sd["conv3.weight"]), "bn3")
    ref = tF.relu(out + bn(tF.conv2d(tx, sd["downsample.0.weight"], stride=2), "downsample.1"))
    np.testing.assert_allclose(_np(blk(nd.tensor(x))), ref.numpy(), rtol=1e-4, atol=1e-5)


def _torch_net(torch):
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d()
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = F.relu(self.fc1(x.view(-1, 320)))
            x = F.dropout(x, training=self.training)
            return F.log_softmax(self.fc2(x), dim=1)

    return Net()


def test_mnist_net_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    tnet, net = _torch_net(torch), models.Net()
    assert sorted(tnet.state_dict()) == sorted(net.state_dict())
    net.load_state_dict({k: nd.tensor(v.numpy()) for k, v in tnet.state_dict().items()})
    tnet.eval()
    net.eval()
    x = np.random.default_rng(4).normal(size=(3, 1, 28, 28)).astype(np.float32)
    tx, nx = torch.tensor(x), nd.tensor(x)
    to, no = tnet(tx), net(nx)
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.exp(_np(no)).sum(1), 1.0, rtol=1e-5)
    to[:, 3].sum().backward()
    no[:, 3].sum().backward()
    for name, p in tnet.named_parameters():
        np.testing.assert_allclose(_np(net.get_parameter(name).grad), p.grad.numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)
    net.train()
    assert tuple(net(nx).shape) == (3, 10)


# ---- GPT --------------------------------------------------------------------------------------
def _torch_gpt(torch, V, T, L, H, C):
    nn, F = torch.nn, torch.nn.functional

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)

        def forward(self, x):
            B, T_, _ = x.shape
            q, k, v = (t.view(B, T_, H, C // H).transpose(1, 2) for t in self.c_attn(x).split(C, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T_, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn, self.ln_2, self.mlp = nn.LayerNorm(C), Attn(), nn.LayerNorm(C), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(V, C), wpe=nn.Embedding(T, C),
                                                  h=nn.ModuleList([Block() for _ in range(L)]), ln_f=nn.LayerNorm(C)))
            self.lm_head = nn.Linear(C, V, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, targets):
            x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.shape[1]))
            for b in self.transformer.h:
                x = b(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            return logits, F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)

    return GPT()


def test_gpt_structure_and_loss():
    nd.manual_seed(5)
    g = models.GPT(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=8)
    assert g.transformer.wte.weight is g.lm_head.weight
    assert _count(g) == 20 * 8 + 8 * 8 + 2 * (12 * 8 * 8 + 13 * 8) + 2 * 8
    assert abs(float(g.transformer.h[0].attn.c_proj.weight.std()) - 0.02 / math.sqrt(4)) < 0.006
    idx = nd.randint(0, 20, (3, 8))
    logits, loss = g(idx, idx)
    lg = _np(logits).reshape(-1, 20).astype(np.float64)
    logp = lg - np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1, keepdims=True)) - lg.max(1, keepdims=True)
    ref = -logp[np.arange(24), idx.numpy().reshape(-1)].mean()
    assert abs(float(loss) - ref) < 1e-5
    assert g(idx)[1] is None
    with pytest.raises(ValueError, match="block size is only 8"):
        g(nd.zeros(1, 9, dtype=nd.int64))


def test_gpt_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(6)
    tg = _torch_gpt(torch, 30, 8, 2, 2, 8).double()
    g = models.GPT(30, 8, n_layer=2, n_head=2, n_embd=8)
    g = g.to(nd.float64)
    assert sorted(tg.state_dict()) == sorted(g.state_dict())
    g.load_state_dict({k: nd.tensor(v.numpy()) for k, v in tg.state_dict().items()})
    rng = np.random.default_rng(6)
    idx = rng.integers(0, 30, size=(2, 7))
    tgt = rng.integers(0, 30, size=(2, 7))
    tgt[0, 0] = -1
    tl, tloss = tg(torch.tensor(idx), torch.tensor(tgt))
    nl, nloss = g(nd.tensor(idx), nd.tensor(tgt))
    np.testing.assert_allclose(_np(nl), tl.detach().numpy(), rtol=1e-9, atol=1e-11)
    assert abs(nloss.item() - tloss.item()) < 1e-10
    tloss.backward()
    nloss.backward()
    for name, p in tg.named_parameters():
        np.testing.assert_allclose(_np(g.get_parameter(name).grad), p.grad.numpy(), rtol=1e-7, atol=1e-10,
                                   err_msg=name)


def test_gpt_generate():
    nd.manual_seed(7)
    g = models.GPT(vocab_size=16, block_size=4, n_layer=1, n_head=2, n_embd=8)
    g.eval()
    idx = nd.tensor([[1, 2, 3]])
    greedy = g.generate(idx, 4, temperature=0)
    assert tuple(greedy.shape) == (1, 7) and greedy.numpy()[0, :3].tolist() == [1, 2, 3]
    cur = idx
    for _ in range(4):
        with ndgrad.no_grad():
            logits, _ = g(cur[:, -4:])
        cur = nd.cat([cur, logits[:, -1].argmax(-1, keepdim=True)], 1)
    np.testing.assert_array_equal(greedy.numpy(), cur.numpy())
    np.testing.assert_array_equal(g.generate(idx, 4, top_k=1).numpy(), greedy.numpy())
    sampled = g.generate(nd.tensor([[1], [2]]), 6, temperature=1.5, top_k=5).numpy()
    assert sampled.shape == (2, 7) and sampled.min() >= 0 and sampled.max() < 16
