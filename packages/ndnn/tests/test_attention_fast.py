"""The fused attention path of scaled_dot_product_attention (_fused_attention and its backward)
against float64 NumPy, torch, gradcheck and gradgradcheck, plus the fallbacks to the composite path."""
from __future__ import annotations

import numpy as np
import pytest

import ndcore as nd
import ndgrad
import ndnn.functional as F
from ndnn.functional._attention import _fused_mask, _split_last


def _sdpa_ref(q, k, v, mask=None, is_causal=False, scale=None):
    """float64 NumPy attention; a query with no visible key outputs zeros (torch's CPU kernels)."""
    s = (q @ np.swapaxes(k, -1, -2)) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    L, S = s.shape[-2:]
    if is_causal:
        s = s + np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf)
    if mask is not None:
        s = s + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    dead = np.isneginf(s).all(-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    return np.where(dead, 0.0, (e / e.sum(-1, keepdims=True)) @ v)


def _sdpa_grads_ref(q, k, v, g, mask=None, is_causal=False, scale=None):
    """float64 NumPy gradients of _sdpa_ref w.r.t. q, k, v for the output gradient g."""
    sc = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ np.swapaxes(k, -1, -2)) * sc
    L, S = s.shape[-2:]
    if is_causal:
        s = s + np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf)
    if mask is not None:
        s = s + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    dead = np.isneginf(s).all(-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    p = np.where(dead, 0.0, e / e.sum(-1, keepdims=True))
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    return (ds @ k) * sc, (np.swapaxes(ds, -1, -2) @ q) * sc, dv


def _t(a, dtype, grad=False):
    t = nd.tensor(np.ascontiguousarray(a)).to(dtype)
    return t.requires_grad_(True) if grad else t


def _run(q, k, v, g, dtype, **kw):
    qt, kt, vt = (_t(a, dtype, True) for a in (q, k, v))
    mask = kw.pop("attn_mask", None)
    mt = None if mask is None else (nd.tensor(mask) if mask.dtype == bool else _t(mask, dtype))
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mt, **kw)
    out.backward(_t(g, dtype))
    return out.detach().numpy(), qt.grad.numpy(), kt.grad.numpy(), vt.grad.numpy()


CASES = {
    "plain": dict(),
    "causal": dict(is_causal=True),
    "scale": dict(scale=0.37),
    "bool_mask": dict(attn_mask="bool"),
    "float_mask": dict(attn_mask="float"),
    "dead_rows": dict(attn_mask="dead"),
}


def _check_case_against_numpy(case, shape, dtype, seed, tol):
    """Forward and the three gradients of one CASES entry on random q/k/v of `shape`."""
    B, H, L, S, E, Ev = shape
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(B, H, L, E)), rng.normal(size=(B, H, S, E)), rng.normal(size=(B, H, S, Ev))
    g = rng.normal(size=(B, H, L, Ev))
    kw = dict(CASES[case])
    if kw.get("attn_mask") == "bool":
        kw["attn_mask"] = rng.random((L, S)) > 0.3
    elif kw.get("attn_mask") == "float":
        kw["attn_mask"] = rng.normal(size=(B, 1, L, S))
    elif kw.get("attn_mask") == "dead":
        m = rng.random((B, H, L, S)) > 0.3
        m[..., 0, :] = False  # first query of every head sees nothing
        kw["attn_mask"] = m
    got = _run(q, k, v, g, dtype, **kw)
    want = (_sdpa_ref(q, k, v, kw.get("attn_mask"), kw.get("is_causal", False), kw.get("scale")),
            *_sdpa_grads_ref(q, k, v, g, kw.get("attn_mask"), kw.get("is_causal", False), kw.get("scale")))
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shape", [(2, 3, 5, 7, 8, 4), (1, 2, 130, 130, 16, 16), (2, 1, 70, 3, 5, 9),
                                   (1, 1, 3, 150, 64, 32)],
                         ids=["small", "two_blocks", "L_gt_S", "S_gt_L"])
def test_fused_sdpa_matches_numpy(dtype, case, shape):
    """Forward and all three gradients, across one and several query blocks and L != S."""
    _check_case_against_numpy(case, shape, getattr(nd, dtype), sum(shape), 2e-4 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shape", [(1, 2, 130, 130, 24, 64), (2, 1, 65, 200, 64, 128), (1, 1, 3, 63, 7, 64),
                                   (2, 2, 128, 128, 64, 64)],
                         ids=["three_blocks", "S_gt_L_wide_v", "S_below_64", "gpt_head"])
def test_fused_sdpa_tiles_matches_numpy(case, shape):
    """float32 with Ev a multiple of 64: the register-tile forward on AVX-512 CPUs (Note [Attention
    register tiles]), keys padded to 64 and several query blocks; test_isa_variants reruns it on the
    GEMM path."""
    _check_case_against_numpy(case, shape, nd.float32, sum(shape) + 1, 5e-4)


def test_fused_sdpa_strided_views_and_3d():
    """q/k/v as column slices of one packed projection (GPT's layout), and 3-D (batch, L, E) inputs."""
    rng = np.random.default_rng(1)
    B, T, H, hs = 2, 9, 3, 4
    x = rng.normal(size=(B, T, 3 * H * hs))
    xt = nd.tensor(x).requires_grad_(True)
    q, k, v = (t.reshape(B, T, H, hs).transpose(1, 2) for t in _split_last(xt, [H * hs] * 3))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # the output is stored (B, T, H, hs): transposing back is free
    assert out.transpose(1, 2).is_contiguous()
    qn, kn, vn = (np.swapaxes(a.reshape(B, T, H, hs), 1, 2) for a in np.split(x, 3, -1))
    np.testing.assert_allclose(out.detach().numpy(), _sdpa_ref(qn, kn, vn, is_causal=True), atol=1e-12)
    g = rng.normal(size=(B, H, T, hs))
    out.backward(nd.tensor(g))
    dq, dk, dv = _sdpa_grads_ref(qn, kn, vn, g, is_causal=True)
    want = np.concatenate([np.swapaxes(d, 1, 2).reshape(B, T, H * hs) for d in (dq, dk, dv)], -1)
    np.testing.assert_allclose(xt.grad.numpy(), want, atol=1e-12)
    q3, k3, v3 = rng.normal(size=(4, 6, 5)), rng.normal(size=(4, 8, 5)), rng.normal(size=(4, 8, 2))
    got = F.scaled_dot_product_attention(nd.tensor(q3), nd.tensor(k3), nd.tensor(v3))
    np.testing.assert_allclose(got.numpy(), _sdpa_ref(q3, k3, v3), atol=1e-12)
    # a head dim that is not unit-stride (copied once by the kernel)
    qt = nd.tensor(np.swapaxes(q3, -1, -2).copy()).transpose(-2, -1)
    assert qt.stride(-1) != 1
    got = F.scaled_dot_product_attention(qt, nd.tensor(k3), nd.tensor(v3), is_causal=True)
    np.testing.assert_allclose(got.numpy(), _sdpa_ref(q3, k3, v3, is_causal=True), atol=1e-12)
    mask = rng.normal(size=(6, 1))  # broadcast over keys
    got = F.scaled_dot_product_attention(nd.tensor(q3), nd.tensor(k3), nd.tensor(v3), attn_mask=nd.tensor(mask))
    np.testing.assert_allclose(got.numpy(), _sdpa_ref(q3, k3, v3, mask), atol=1e-12)


@pytest.mark.parametrize("case", ["plain", "causal", "float_mask", "dead_rows"])
def test_fused_sdpa_gradcheck_and_gradgradcheck(case):
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(1, 2, 4, 3)), rng.normal(size=(1, 2, 5, 3)), rng.normal(size=(1, 2, 5, 2))
    qt, kt, vt = (nd.tensor(a).requires_grad_(True) for a in (q, k, v))
    mask = None
    if case == "float_mask":
        mask = nd.tensor(rng.normal(size=(4, 5)))
    elif case == "dead_rows":
        m = rng.random((4, 5)) > 0.4
        m[1] = False
        mask = nd.tensor(m)
    causal = case == "causal"

    def f(a, b, c):
        return F.scaled_dot_product_attention(a, b, c, attn_mask=mask, is_causal=causal)

    assert ndgrad.gradcheck(f, (qt, kt, vt))
    assert ndgrad.gradgradcheck(f, (qt, kt, vt))


def test_fused_path_selection():
    """The fused kernel runs for float32/64 CPU inputs without dropout; the rest take the composite path."""
    q = nd.randn(2, 3, 4, 5)
    assert _fused_mask(q, q, q, None, 0.0) is None
    assert _fused_mask(q, q, q, None, 0.1) is False  # dropout
    h = q.to(nd.float16)
    assert _fused_mask(h, h, h, None, 0.0) is False
    assert _fused_mask(q, nd.randn(1, 3, 4, 5), nd.randn(1, 3, 4, 5), None, 0.0) is False  # broadcast batch
    assert _fused_mask(q, nd.randn(2, 3, 0, 5), nd.randn(2, 3, 0, 5), None, 0.0) is False  # empty
    assert _fused_mask(q, q, q, nd.randn(4, 4).requires_grad_(True), 0.0) is False  # the mask needs a gradient
    assert _fused_mask(q, q, q, nd.randn(1, 1, 2, 3, 4, 4), 0.0) is False  # the mask broadcasts the output up
    assert _fused_mask(q[:1], q[:1], q[:1], nd.randn(2, 3, 4, 4), 0.0) is False  # the same, batch dim 1 -> 2
    assert _fused_mask(q, q, q, nd.randn(3, 1, 4), 0.0).shape == (3, 1, 4)  # broadcasts within the batch
    m = _fused_mask(q, q, q, nd.tensor([[True, False], [False, False]]), 0.0)
    assert m.dtype == nd.float32 and m.tolist() == [[0.0, float("-inf")], [float("-inf"), float("-inf")]]


def test_fallback_paths_agree():
    """Broadcast batch dims, empty keys and float16 give the composite path's results."""
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(1, 3, 6, 5)), rng.normal(size=(1, 3, 6, 2))
    got = F.scaled_dot_product_attention(nd.tensor(q), nd.tensor(k), nd.tensor(v), is_causal=True)
    kb, vb = np.broadcast_to(k, (2, 3, 6, 5)), np.broadcast_to(v, (2, 3, 6, 2))
    np.testing.assert_allclose(got.numpy(), _sdpa_ref(q, kb, vb, is_causal=True), atol=1e-12)
    empty = F.scaled_dot_product_attention(nd.tensor(q), nd.zeros(2, 3, 0, 5, dtype=nd.float64),
                                           nd.zeros(2, 3, 0, 2, dtype=nd.float64))
    assert empty.shape == (2, 3, 4, 2) and not empty.numpy().any()
    h = F.scaled_dot_product_attention(*(nd.tensor(a).to(nd.float16) for a in (q, q, q)))
    np.testing.assert_allclose(h.float().numpy(), _sdpa_ref(q, q, q), atol=2e-2)


def test_fused_attention_op_errors():
    q = nd.randn(2, 4, 5)
    with pytest.raises(TypeError, match="_fused_attention"):
        nd._fused_attention(q.to(nd.float16), q.to(nd.float16), q.to(nd.float16), None, False, 1.0)
    with pytest.raises(ValueError, match="_fused_attention"):
        nd._fused_attention(q, nd.randn(3, 4, 5), nd.randn(3, 4, 5), None, False, 1.0)
    with pytest.raises(TypeError, match="attn_mask"):
        nd._fused_attention(q, q, q, nd.zeros(4, 4, dtype=nd.float64), False, 1.0)
    with pytest.raises(ValueError, match="_fused_attention"):
        nd._fused_attention(q, q, q, nd.zeros(3, 3), False, 1.0)


def test_fused_sdpa_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    B, H, L, S, E = 2, 4, 70, 70, 16
    q, k, v = (rng.normal(size=(B, H, n, E)).astype(np.float32) for n in (L, S, S))
    g = rng.normal(size=(B, H, L, E)).astype(np.float32)
    for causal in (False, True):
        got = _run(q, k, v, g, nd.float32, is_causal=causal)
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        to = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
        to.backward(torch.tensor(g))
        for a, b in zip(got, (to.detach(), tq.grad, tk.grad, tv.grad)):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)


def test_split_last_backward_is_one_cat():
    """_split_last's gradient (including pieces without one) equals the plain split's."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 9))
    xt = nd.tensor(x).requires_grad_(True)
    a, b, c = _split_last(xt, [2, 3, 4])
    (a * 2).sum().backward(retain_graph=True)
    (c * c).sum().backward()
    want = np.zeros_like(x)
    want[..., :2] = 2
    want[..., 5:] = 2 * x[..., 5:]
    np.testing.assert_allclose(xt.grad.numpy(), want)
    x0 = nd.tensor(x[0]).requires_grad_(True)
    assert ndgrad.gradgradcheck(lambda t: tuple(p * p for p in _split_last(t, [4, 5])), (x0,))
    with ndgrad.no_grad():
        assert all(p.grad_fn is None for p in _split_last(xt, [4, 5]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("Ev", [16, 64])
def test_fused_sdpa_nan_rows(dtype, Ev):
    """NaN scores make their query's output row NaN (as torch); a NaN key spreads only to the
    queries that see it (torch's CPU kernel spreads it to causally hidden ones too), and the rest
    match NumPy. Both the GEMM and the register-tile forward (Ev = 64)."""
    rng = np.random.default_rng(7)
    q, k, v = rng.normal(size=(1, 2, 70, 8)), rng.normal(size=(1, 2, 70, 8)), rng.normal(size=(1, 2, 70, Ev))
    q[0, 1, 3, 2] = np.nan  # one query row of head 1
    k[0, 0, 5, 1] = np.nan  # key 5 of head 0: queries 5.. see it
    dt = getattr(nd, dtype)
    got = F.scaled_dot_product_attention(_t(q, dt), _t(k, dt), _t(v, dt), is_causal=True).numpy()
    nan_rows = np.zeros((1, 2, 70), bool)
    nan_rows[0, 1, 3] = True
    nan_rows[0, 0, 5:] = True
    np.testing.assert_array_equal(np.isnan(got).any(-1), nan_rows)
    assert np.isnan(got[nan_rows]).all()
    want = _sdpa_ref(np.nan_to_num(q), np.nan_to_num(k), v, is_causal=True)
    np.testing.assert_allclose(got[~nan_rows], want[~nan_rows], rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_packed_qkv_gradient_needs_no_cat(dtype):
    """q/k/v split from one projection get their gradients as blocks of one buffer, which the
    split's backward passes on as is (no cat); other layouts still concatenate."""
    rng = np.random.default_rng(6)
    B, T, H, hs = 2, 70, 2, 8
    x = rng.normal(size=(B, T, 3 * H * hs))
    g = rng.normal(size=(B, H, T, hs))
    names = []
    ops = nd._C

    def run(xt, pieces):
        q, k, v = (t.reshape(B, T, H, hs).transpose(1, 2) for t in pieces)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        names.clear()
        ops._set_profiler_hooks(lambda name, shapes: names.append(name), lambda tok, name: None)
        try:
            out.backward(_t(g, getattr(nd, dtype)))
        finally:
            ops._set_profiler_hooks(None, None)
        return xt.grad.numpy()

    xt = _t(x, getattr(nd, dtype), True)
    got = run(xt, _split_last(xt, [H * hs] * 3))
    assert "cat" not in names
    qn, kn, vn = (np.swapaxes(a.reshape(B, T, H, hs), 1, 2) for a in np.split(x, 3, -1))
    dq, dk, dv = _sdpa_grads_ref(qn, kn, vn, g, is_causal=True)
    want = np.concatenate([np.swapaxes(d, 1, 2).reshape(B, T, H * hs) for d in (dq, dk, dv)], -1)
    tol = 2e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # the same split with the pieces out of order: not one buffer's blocks, so one cat
    xt2 = _t(x, getattr(nd, dtype), True)
    a, b, c = _split_last(xt2, [H * hs] * 3)
    got2 = run(xt2, (b, a, c))
    assert "cat" in names
    want2 = np.concatenate([np.swapaxes(d, 1, 2).reshape(B, T, H * hs) for d in (dk, dq, dv)], -1)
    qn, kn, vn = (np.swapaxes(t.reshape(B, T, H, hs), 1, 2) for t in (x[..., H * hs:2 * H * hs], x[..., :H * hs],
                                                                      x[..., 2 * H * hs:]))
    dq, dk, dv = _sdpa_grads_ref(qn, kn, vn, g, is_causal=True)
    want2 = np.concatenate([np.swapaxes(d, 1, 2).reshape(B, T, H * hs) for d in (dk, dq, dv)], -1)
    np.testing.assert_allclose(got2, want2, rtol=tol, atol=tol)
    if dtype == "float64":
        def attn(t):
            q, k, v = (p.reshape(1, 5, 2, 3).transpose(1, 2) for p in _split_last(t, [6, 6, 6]))
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        assert ndgrad.gradcheck(attn, (_t(rng.normal(size=(1, 5, 18)), nd.float64, True),))


@pytest.mark.parametrize("level", ["baseline", "avx2"])
def test_isa_variants(level):
    """The NumPy comparisons again with the float32 softmax loops capped at a lower ISA (ND_SIMD)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, ND_SIMD=level)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__, "-k",
                        "(matches_numpy and float32) or tiles_matches_numpy"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and "passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
