"""Transformer layers and stacks against torch.nn (weights copied by state_dict), masks, grads."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndnn
from ndnn import functional as F


def _np(t):
    return t.detach().numpy()


def _load(tm, m):
    assert sorted(tm.state_dict()) == sorted(m.state_dict())
    m.load_state_dict({k: nd.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


def test_square_subsequent_mask():
    m = ndnn.Transformer.generate_square_subsequent_mask(4)
    ref = np.triu(np.full((4, 4), -np.inf, np.float32), 1)
    np.testing.assert_array_equal(m.numpy(), ref)
    assert m.dtype == nd.float32
    assert ndnn.Transformer.generate_square_subsequent_mask(2, dtype=nd.float64).dtype == nd.float64


def test_activation_and_structure():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        ndnn.TransformerEncoderLayer(8, 2, activation="tanh")
    layer = ndnn.TransformerEncoderLayer(8, 2, dim_feedforward=16, activation=F.gelu)
    enc = ndnn.TransformerEncoder(layer, 3, enable_nested_tensor=True)
    assert len(enc.layers) == 3 and enc.layers[0] is not layer
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    names = [n for n, _ in enc.named_parameters()]
    assert names[:4] == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.in_proj_bias",
                         "layers.0.self_attn.out_proj.weight", "layers.0.self_attn.out_proj.bias"]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_matches_torch(norm_first, activation, batch_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(dim_feedforward=16, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=batch_first)
    tl = torch.nn.TransformerEncoderLayer(8, 2, **kw).double()
    te = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(8).double(), enable_nested_tensor=False)
    ne = ndnn.TransformerEncoder(ndnn.TransformerEncoderLayer(8, 2, dtype=nd.float64, **kw), 2,
                                 norm=ndnn.LayerNorm(8, dtype=nd.float64))
    _load(te, ne)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 8) if batch_first else (5, 3, 8))
    kpm = np.zeros((3, 5), bool)
    kpm[2, 3:] = True
    mask = np.triu(np.full((5, 5), -np.inf), 1)
    tx, nx = torch.tensor(x, requires_grad=True), nd.tensor(x, requires_grad=True)
    to = te(tx, mask=torch.tensor(mask), src_key_padding_mask=torch.tensor(kpm))
    no = ne(nx, mask=nd.tensor(mask), src_key_padding_mask=nd.tensor(kpm))
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-9, atol=1e-10)
    g = rng.normal(size=x.shape)
    to.backward(torch.tensor(g))
    no.backward(nd.tensor(g))
    np.testing.assert_allclose(_np(nx.grad), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, p in te.named_parameters():
        np.testing.assert_allclose(_np(ne.get_parameter(name).grad), p.grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(norm_first):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
              norm_first=norm_first, batch_first=True)
    tt = torch.nn.Transformer(**kw).double()
    nt = ndnn.Transformer(**kw, dtype=nd.float64)
    _load(tt, nt)
    rng = np.random.default_rng(1)
    src, tgt = rng.normal(size=(2, 6, 8)), rng.normal(size=(2, 4, 8))
    tmask = tt.generate_square_subsequent_mask(4, dtype=torch.float64)
    mkpm = np.zeros((2, 6), bool)
    mkpm[0, 4:] = True
    ts, ntg = torch.tensor(src, requires_grad=True), nd.tensor(tgt, requires_grad=True)
    to = tt(ts, torch.tensor(tgt), tgt_mask=tmask, memory_key_padding_mask=torch.tensor(mkpm))
    ns = nd.tensor(src, requires_grad=True)
    no = nt(ns, ntg, tgt_mask=nd.tensor(tmask.numpy()), memory_key_padding_mask=nd.tensor(mkpm))
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-9, atol=1e-10)
    to.sum().backward()
    no.sum().backward()
    np.testing.assert_allclose(_np(ns.grad), ts.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, p in tt.named_parameters():
        np.testing.assert_allclose(_np(nt.get_parameter(name).grad), p.grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)


def test_decoder_layer_causal_hint_and_errors():
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    tl = torch.nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0).double()
    nl = ndnn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, dtype=nd.float64)
    _load(tl, nl)
    rng = np.random.default_rng(2)
    tgt, mem = rng.normal(size=(4, 2, 8)), rng.normal(size=(5, 2, 8))
    mask = np.triu(np.ones((4, 4), bool), 1)
    to = tl(torch.tensor(tgt), torch.tensor(mem), tgt_mask=torch.tensor(mask), tgt_is_causal=True)
    no = nl(nd.tensor(tgt), nd.tensor(mem), tgt_mask=nd.tensor(mask), tgt_is_causal=True)
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    t = ndnn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8)
    with pytest.raises(RuntimeError, match="batch number of src and tgt"):
        t(nd.zeros(3, 2, 8), nd.zeros(3, 1, 8))
    with pytest.raises(RuntimeError, match="feature number"):
        t(nd.zeros(3, 2, 4), nd.zeros(3, 2, 4))


def test_encoder_layer_gradcheck():
    nd.manual_seed(3)
    layer = ndnn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, dtype=nd.float64)
    x = nd.randn(3, 2, 4, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda x: layer(x), (x,))


def test_dropout_active_only_in_training():
    nd.manual_seed(4)
    layer = ndnn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.5)
    x = nd.randn(5, 2, 8)
    layer.eval()
    a = _np(layer(x))
    np.testing.assert_array_equal(a, _np(layer(x)))
    layer.train()
    assert not np.allclose(_np(layer(x)), a)
