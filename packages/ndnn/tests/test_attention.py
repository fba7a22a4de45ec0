"""scaled_dot_product_attention and MultiheadAttention against NumPy, torch and gradcheck."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndnn
import ndnn.functional as F


def _np(t):
    return t.detach().numpy()


def _sdpa_ref(q, k, v, mask=None, is_causal=False, scale=None):
    """NumPy attention; a query with no allowed key outputs zeros (torch's CPU kernels)."""
    s = (q @ np.swapaxes(k, -1, -2)) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    L, S = s.shape[-2:]
    bias = np.zeros((L, S))
    if is_causal:
        bias = np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf)
    if mask is not None:
        bias = bias + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    s = s + bias
    dead = np.isneginf(s).all(-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    return np.where(dead, 0.0, (e / e.sum(-1, keepdims=True)) @ v)


@pytest.fixture
def qkv():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(2, 3, 6, 7))


@pytest.mark.parametrize("case", ["plain", "bool", "float", "causal", "scale", "dead_rows", "dead_float"])
def test_sdpa_matches_numpy(qkv, case):
    q, k, v = qkv
    rng = np.random.default_rng(1)
    mask, is_causal, scale = None, False, None
    if case == "bool":
        mask = rng.random((4, 6)) > 0.3
    elif case == "float":
        mask = rng.normal(size=(2, 1, 4, 6))
    elif case == "scale":
        scale = 0.7
    elif case == "dead_rows":
        mask = rng.random((4, 6)) > 0.3
        mask[1] = False
    elif case == "dead_float":
        mask = np.where(rng.random((2, 3, 4, 6)) > 0.3, 0.0, -np.inf)
        mask[0, 1, 2] = -np.inf
    is_causal = case == "causal"
    out = F.scaled_dot_product_attention(nd.tensor(q), nd.tensor(k), nd.tensor(v),
                                         attn_mask=None if mask is None else nd.tensor(mask), is_causal=is_causal,
                                         scale=scale)
    ref = _sdpa_ref(q, k, v, mask, is_causal, scale)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    if case == "dead_rows":
        assert np.all(out.numpy()[:, :, 1] == 0)
    if case == "dead_float":
        assert np.all(out.numpy()[0, 1, 2] == 0)


def test_sdpa_float32_and_gqa(qkv):
    q, k, v = (a.astype(np.float32) for a in qkv)
    out = F.scaled_dot_product_attention(nd.tensor(q), nd.tensor(k), nd.tensor(v), is_causal=True)
    np.testing.assert_allclose(out.numpy(), _sdpa_ref(q, k, v, is_causal=True), rtol=1e-5, atol=1e-6)
    q6 = np.concatenate([q, q * 0.5], 1)  # 6 query heads over 3 key/value heads
    out = F.scaled_dot_product_attention(nd.tensor(q6), nd.tensor(k), nd.tensor(v), enable_gqa=True)
    ref = _sdpa_ref(q6, np.repeat(k, 2, 1), np.repeat(v, 2, 1))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_sdpa_errors():
    q = nd.zeros(2, 4, 5)
    with pytest.raises(ValueError, match="incompatible shapes"):
        F.scaled_dot_product_attention(q, nd.zeros(2, 6, 3), nd.zeros(2, 6, 3))
    with pytest.raises(TypeError, match="same dtype"):
        F.scaled_dot_product_attention(q, nd.zeros(2, 6, 5, dtype=nd.float64), nd.zeros(2, 6, 5))
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=nd.ones(4, 4, dtype=nd.bool), is_causal=True)
    with pytest.raises(TypeError, match="attn_mask must be bool or floating"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=nd.zeros(4, 4, dtype=nd.int64))


def test_sdpa_dropout_changes_weights_but_keeps_scale():
    nd.manual_seed(0)
    q = nd.zeros(1, 1, 200, 8)  # uniform attention: each output is the mean of v
    v = nd.ones(1, 1, 50, 8)
    out = F.scaled_dot_product_attention(q, nd.zeros(1, 1, 50, 8), v, dropout_p=0.5).numpy()
    assert not np.allclose(out, 1.0)
    assert abs(out.mean() - 1.0) < 0.05  # inverted dropout keeps the expectation


@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "causal"])
def test_sdpa_gradcheck(mask_kind):
    rng = np.random.default_rng(2)
    q, k, v = (nd.tensor(rng.normal(size=s), requires_grad=True) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    mask = None
    if mask_kind == "bool":
        m = rng.random((3, 5)) > 0.4
        m[:, 0] = True
        mask = nd.tensor(m)
    elif mask_kind == "float":
        mask = nd.tensor(rng.normal(size=(3, 5)))
    causal = mask_kind == "causal"
    assert ndgrad.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask, is_causal=causal), (q, k, v))


def test_sdpa_matches_torch_with_grads(qkv):
    torch = pytest.importorskip("torch")
    q, k, v = qkv
    mask = np.random.default_rng(3).random((4, 6)) > 0.5
    mask[2] = False
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    nq, nk, nv = (nd.tensor(a, requires_grad=True) for a in (q, k, v))
    to = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask))
    no = F.scaled_dot_product_attention(nq, nk, nv, attn_mask=nd.tensor(mask))
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(4).normal(size=to.shape)
    to.backward(torch.tensor(g))
    no.backward(nd.tensor(g))
    for a, b in ((nq, tq), (nk, tk), (nv, tv)):
        np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), rtol=1e-9, atol=1e-11)


# ---- MultiheadAttention -------------------------------------------------------------------------
def _mha_pair(torch, **kw):
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(8, 2, **kw).double()
    m = ndnn.MultiheadAttention(8, 2, dtype=nd.float64, **kw)
    assert sorted(tm.state_dict()) == sorted(m.state_dict())
    m.load_state_dict({k: nd.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, m


@pytest.mark.parametrize("kw", [dict(), dict(bias=False), dict(add_bias_kv=True, add_zero_attn=True),
                                dict(kdim=5, vdim=3), dict(batch_first=True)])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_mha_matches_torch(kw, need_weights, average):
    torch = pytest.importorskip("torch")
    tm, m = _mha_pair(torch, **kw)
    rng = np.random.default_rng(5)
    bf = kw.get("batch_first", False)
    shape = lambda L, E: (3, L, E) if bf else (L, 3, E)  # noqa: E731
    q = rng.normal(size=shape(4, 8))
    k = rng.normal(size=shape(6, kw.get("kdim", 8)))
    v = rng.normal(size=shape(6, kw.get("vdim", 8)))
    kpm = np.zeros((3, 6), bool)
    kpm[1, 4:] = True
    attn = rng.normal(size=(4, 6))
    ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    ns = [nd.tensor(a, requires_grad=True) for a in (q, k, v)]
    to, tw = tm(*ts, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(attn), need_weights=need_weights, average_attn_weights=average)
    no, nw = m(*ns, key_padding_mask=nd.tensor(kpm), attn_mask=nd.tensor(attn), need_weights=need_weights,
               average_attn_weights=average)
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    if need_weights:
        np.testing.assert_allclose(_np(nw), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    else:
        assert nw is None and tw is None
    to.sum().backward()
    no.sum().backward()
    for a, b in zip(ns, ts):
        np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in tm.named_parameters():
        np.testing.assert_allclose(_np(m.get_parameter(name).grad), p.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


def test_mha_self_attention_masks_and_unbatched():
    torch = pytest.importorskip("torch")
    tm, m = _mha_pair(torch)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 2, 8))
    causal = np.triu(np.ones((5, 5), bool), 1)
    kpm = np.zeros((2, 5), bool)
    kpm[0, 3:] = True
    tx, nx = torch.tensor(x), nd.tensor(x)
    for kw_t, kw_n in [
        (dict(attn_mask=torch.tensor(causal), is_causal=True, need_weights=False),
         dict(attn_mask=nd.tensor(causal), is_causal=True, need_weights=False)),
        (dict(attn_mask=torch.tensor(causal), key_padding_mask=torch.tensor(kpm)),
         dict(attn_mask=nd.tensor(causal), key_padding_mask=nd.tensor(kpm))),
        (dict(attn_mask=torch.tensor(rng.normal(size=(4, 5, 5)))), None),
    ]:
        if kw_n is None:
            kw_n = dict(attn_mask=nd.tensor(kw_t["attn_mask"].numpy()))
        to, _ = tm(tx, tx, tx, **kw_t)
        no, _ = m(nx, nx, nx, **kw_n)
        np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    to, tw = tm(tx[:, 0], tx[:, 0], tx[:, 0])
    no, nw = m(nx[:, 0], nx[:, 0], nx[:, 0])
    np.testing.assert_allclose(_np(no), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(nw), tw.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_mha_errors_and_structure():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ndnn.MultiheadAttention(10, 3)
    m = ndnn.MultiheadAttention(8, 2)
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert tuple(m.in_proj_weight.shape) == (24, 8) and float(m.in_proj_bias.abs().sum()) == 0
    x = nd.zeros(3, 1, 8)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        m(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match="2D attn_mask"):
        m(x, x, x, attn_mask=nd.zeros(2, 2))
    with pytest.raises(ValueError, match="embedding dimension of 8"):
        m(nd.zeros(3, 1, 4), nd.zeros(3, 1, 4), nd.zeros(3, 1, 4))
