"""nd.nn.functional: linear, dropout, embedding, distances and the vision helpers (pad, interpolate, grids)."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_helpers import check_vs_torch, close, rng, t, tt

import ndcore as nd
import ndgrad
import ndnn.functional as F


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- linear

def test_linear_bilinear_gradcheck_and_torch():
    torch = _torch()
    r = rng(0)
    x, w, b = r.standard_normal((3, 4)), r.standard_normal((2, 4)), r.standard_normal(2)
    assert ndgrad.gradcheck(F.linear, tuple(t(a, requires_grad=True) for a in (x, w, b)))
    x3 = r.standard_normal((2, 3, 4)).astype(np.float32)
    check_vs_torch(F.linear, torch.nn.functional.linear, [x3, w.astype(np.float32), b.astype(np.float32)],
                   grad=(0, 1, 2))
    check_vs_torch(F.linear, torch.nn.functional.linear, [x3, w[0].astype(np.float32)], grad=(0, 1))
    x1, x2, wb = r.standard_normal((3, 2)), r.standard_normal((3, 4)), r.standard_normal((5, 2, 4))
    assert ndgrad.gradcheck(F.bilinear, tuple(t(a, requires_grad=True) for a in (x1, x2, wb, r.standard_normal(5))))
    check_vs_torch(F.bilinear, torch.nn.functional.bilinear,
                   [r.standard_normal((2, 3, 2)).astype(np.float32), r.standard_normal((2, 3, 4)).astype(np.float32),
                    wb.astype(np.float32)], grad=(0, 1, 2))
    with pytest.raises(ValueError, match=r"\[bilinear\] inputs of shapes \(3, 2\) and \(3, 3\)"):
        F.bilinear(t(x1), t(x2[:, :3]), t(wb))


# ---------------------------------------------------------------- dropout

def test_dropout_functional():
    nd.manual_seed(1)
    x = t(np.ones((100, 100), np.float32))
    for p in (0.1, 0.5, 0.9):
        v = F.dropout(x, p).numpy()
        assert abs((v == 0).mean() - p) < 0.03
        np.testing.assert_allclose(np.unique(v[v != 0]), 1 / (1 - p), rtol=1e-6)
    close(F.dropout(x, 1.0), np.zeros((100, 100), np.float32))
    assert F.dropout(x, 0.0) is x
    y = t(np.ones((50, 50), np.float32))
    assert F.dropout(y, 0.5, inplace=True) is y and (y.numpy() == 0).any()
    for fn in (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got -0.1"):
            fn(t(np.ones((2, 2, 2, 2, 2), np.float32)), -0.1, True)
    with pytest.raises(RuntimeError, match=r"\[dropout1d\] Expected 2D or 3D input"):
        F.dropout1d(t(np.ones((2, 2, 2, 2), np.float32)), 0.5)
    with pytest.warns(UserWarning, match="dropout2d: Received a 3D input"):
        F.dropout2d(t(np.ones((2, 3, 4), np.float32)), 0.5)


def test_dropout_is_seeded():
    x = t(np.ones((20, 20), np.float32))
    nd.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    nd.manual_seed(7)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)


# ---------------------------------------------------------------- embedding

def test_embedding_functional_padding_and_freq():
    torch = _torch()
    w = rng(2).standard_normal((6, 3)).astype(np.float32)
    idx = np.array([[0, 5, 5], [2, 0, 5]])
    for kw in ({}, {"padding_idx": 5}, {"scale_grad_by_freq": True}, {"padding_idx": 0, "scale_grad_by_freq": True}):
        check_vs_torch(lambda a, ww: F.embedding(a, ww, **kw), lambda a, ww: torch.nn.functional.embedding(a, ww, **kw),
                       [idx, w], grad=(1,))
    wn = t(w.copy())
    wt = torch.from_numpy(w.copy())
    F.embedding(t(idx), wn, max_norm=0.5)
    torch.nn.functional.embedding(tt(idx), wt, max_norm=0.5)
    close(wn, wt, atol=1e-6)
    norms = np.linalg.norm(wn.numpy(), axis=1)
    assert np.all(norms[[0, 2, 5]] <= 0.5 + 1e-5)
    close(wn[1], w[1])  # rows not looked up are untouched
    with pytest.raises(NotImplementedError, match="sparse"):
        F.embedding(t(idx), wn, sparse=True)


def test_embedding_bag_functional_gradcheck():
    w = t(rng(3).standard_normal((5, 2)), requires_grad=True)
    psw = t(rng(4).standard_normal(6), requires_grad=True)
    inp, off = t(np.array([0, 1, 4, 4, 2, 3])), t(np.array([0, 2, 2, 5]))
    for mode in ("sum", "mean", "max"):
        assert ndgrad.gradcheck(lambda ww: F.embedding_bag(inp, ww, off, mode=mode), (w,))
    assert ndgrad.gradcheck(lambda ww, p: F.embedding_bag(inp, ww, off, mode="sum", per_sample_weights=p), (w, psw))
    out = F.embedding_bag(inp, w, off, mode="max")
    close(out[1], np.zeros(2))  # an empty bag gives zeros


# ---------------------------------------------------------------- distances

def test_distances_numpy_torch_gradcheck():
    torch = _torch()
    r = rng(5)
    a, b = r.standard_normal((4, 3)).astype(np.float32), r.standard_normal((4, 3)).astype(np.float32)
    close(F.pdist(t(a)), np.array([np.linalg.norm(a[i] - a[j]) for i in range(4) for j in range(i + 1, 4)]), atol=1e-5)
    for p in (1.0, 2.0, 3.0):
        check_vs_torch(lambda u: F.pdist(u, p), lambda u: torch.nn.functional.pdist(u, p), [a], grad=(0,))
        check_vs_torch(lambda u, v: F.pairwise_distance(u, v, p), lambda u, v: torch.nn.functional.pairwise_distance(
            u, v, p), [a, b], grad=(0, 1))
    check_vs_torch(lambda u, v: F.cosine_similarity(u, v, 0), lambda u, v: torch.nn.functional.cosine_similarity(
        u, v, 0), [a, b[:1]], grad=(0, 1))
    z = np.zeros((2, 3), np.float32)
    close(F.cosine_similarity(t(z), t(z)), np.zeros(2, np.float32))
    ad = t(a.astype(np.float64), requires_grad=True)
    assert ndgrad.gradcheck(F.pdist, (ad,))
    assert ndgrad.gradcheck(lambda u: F.cosine_similarity(u, u * 2.0 + 1.0), (ad,))
    with pytest.raises(ValueError, match=r"\[pdist\] pdist only supports 2D tensors, got: 3D"):
        F.pdist(t(np.zeros((1, 2, 3))))
    assert tuple(F.pdist(t(a[:1])).shape) == (0,)


# ---------------------------------------------------------------- padding

@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pad", [((2, 3, 5), (2, 1)), ((2, 3, 4, 5), (1, 2, 0, 3)), ((3, 4, 5), (1, 1, 2, 2)),
                                       ((1, 2, 3, 3, 4), (1, 0, 2, 1, 1, 2))])
def test_pad_vs_torch(mode, shape, pad):
    torch = _torch()
    x = rng(6).standard_normal(shape).astype(np.float32)
    check_vs_torch(lambda a: F.pad(a, pad, mode), lambda a: torch.nn.functional.pad(a, pad, mode), [x], grad=(0,))
    ref_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    n = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(n))]
    close(F.pad(t(x), pad, mode), np.pad(x, widths, mode=ref_mode))


def test_pad_constant_value_crop_and_errors():
    x = rng(7).standard_normal((2, 4)).astype(np.float32)
    close(F.pad(t(x), (1, 1), value=7.0), np.pad(x, [(0, 0), (1, 1)], constant_values=7.0))
    close(F.pad(t(x), (-1, 0, 1, 0)), np.pad(x, [(1, 0), (0, 0)])[:, 1:])
    assert ndgrad.gradcheck(lambda a: F.pad(a, (2, 1, 1, 0), "reflect"),
                            (t(rng(8).standard_normal((1, 1, 3, 4)), requires_grad=True),))
    torch = _torch()
    x4 = rng(9).standard_normal((1, 2, 5, 6)).astype(np.float32)
    for pad in [(2, -2, 1, -1), (0, 0, -2, 3), (3, -1, 5, 0)]:  # circular crops, then wraps what is left
        close(F.pad(t(x4), pad, "circular"), torch.nn.functional.pad(tt(x4), pad, "circular"))
    with pytest.raises(ValueError, match="Padding length must be divisible by 2"):
        F.pad(t(x), (1,))
    with pytest.raises(ValueError, match="doesn't take in value"):
        F.pad(t(x[None]), (1, 1), "reflect", value=2.0)
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode"):
        F.pad(t(x), (1, 1), "mirror")


# ---------------------------------------------------------------- interpolation

INTERP = [
    ((1, 2, 5), dict(scale_factor=2.5, mode="linear", align_corners=False)),
    ((1, 2, 5), dict(size=3, mode="linear", align_corners=True)),
    ((2, 2, 4, 5), dict(size=(7, 3), mode="bilinear")),
    ((2, 2, 4, 5), dict(scale_factor=(1.5, 0.5), mode="bilinear", align_corners=True)),
    ((2, 2, 4, 5), dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)),
    ((1, 2, 4, 5), dict(scale_factor=2, mode="bicubic")),
    ((1, 2, 3, 4, 3), dict(size=(5, 5, 4), mode="trilinear", align_corners=True)),
    ((2, 2, 4, 5), dict(scale_factor=1.7, mode="nearest")),
    ((1, 2, 7), dict(size=3, mode="nearest")),
    ((1, 2, 3, 3, 3), dict(scale_factor=2, mode="nearest")),
    ((2, 2, 4, 5), dict(size=(6, 9), mode="nearest-exact")),
    ((2, 2, 9, 10), dict(size=(4, 3), mode="area")),
    ((2, 2, 9), dict(scale_factor=0.5, mode="area")),
    ((2, 3, 17, 13), dict(size=(5, 4), mode="bilinear", antialias=True)),
    ((2, 3, 17, 13), dict(scale_factor=(0.5, 2.5), mode="bicubic", antialias=True)),
    ((1, 2, 9, 8), dict(size=(4, 3), mode="bicubic", align_corners=True, antialias=True)),
]


@pytest.mark.parametrize("shape,kw", INTERP, ids=[f"{k['mode']}-{i}" for i, (_, k) in enumerate(INTERP)])
def test_interpolate_vs_torch(shape, kw):
    torch = _torch()
    x = rng(9).standard_normal(shape).astype(np.float32)
    check_vs_torch(lambda a: F.interpolate(a, **kw), lambda a: torch.nn.functional.interpolate(a, **kw), [x],
                   grad=(0,), rtol=1e-4, atol=1e-5)


def test_interpolate_numpy_gradcheck_and_errors():
    x = rng(10).standard_normal((1, 1, 2, 3))
    close(F.interpolate(t(x), scale_factor=2), x.repeat(2, 2).repeat(2, 3))
    assert ndgrad.gradcheck(lambda a: F.interpolate(a, size=(3, 5), mode="bilinear", align_corners=False),
                            (t(x, requires_grad=True),))
    assert ndgrad.gradcheck(lambda a: F.interpolate(a, size=(1, 2), mode="bicubic", antialias=True),
                            (t(x, requires_grad=True),))
    with pytest.raises(ValueError, match="Anti-alias option is restricted to bilinear and bicubic"):
        F.interpolate(t(x), size=3, antialias=True)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(t(x), size=3, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(t(x))
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(t(x), size=3, align_corners=True)
    with pytest.raises(NotImplementedError, match="Got 4D input, but linear mode needs 3D input"):
        F.interpolate(t(x), size=3, mode="linear")
    with pytest.raises(ValueError, match="same number of spatial dimensions"):
        F.interpolate(t(x), size=(3, 3, 3))
    with pytest.warns(UserWarning, match="deprecated"):
        F.upsample_nearest(t(x), scale_factor=2)


# ---------------------------------------------------------------- grids, pixel shuffle, unfold

@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_and_affine_grid_vs_torch(mode, padding_mode, align):
    torch = _torch()
    r = rng(11)
    x = r.standard_normal((2, 3, 5, 6)).astype(np.float32)
    theta = (np.eye(2, 3)[None] + 0.3 * r.standard_normal((2, 2, 3))).astype(np.float32)
    grid = check_vs_torch(lambda th: F.affine_grid(th, (2, 3, 4, 7), align_corners=align),
                          lambda th: torch.nn.functional.affine_grid(th, (2, 3, 4, 7), align_corners=align), [theta],
                          grad=(0,))
    g = grid.detach().numpy() * 1.2  # reach outside [-1, 1] so the padding mode matters
    check_vs_torch(lambda a, gg: F.grid_sample(a, gg, mode, padding_mode, align),
                   lambda a, gg: torch.nn.functional.grid_sample(a, gg, mode, padding_mode, align), [x, g],
                   grad=(0, 1) if mode != "nearest" else (0,), rtol=1e-4, atol=1e-4)


def test_affine_grid_identity_and_3d():
    torch = _torch()
    grid = F.affine_grid(t(np.eye(2, 3, dtype=np.float32)[None]), (1, 1, 2, 3), align_corners=True)
    xs, ys = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 2))
    close(grid, np.stack([xs, ys], -1)[None].astype(np.float32), atol=1e-6)
    theta = rng(12).standard_normal((2, 3, 4)).astype(np.float32)
    check_vs_torch(lambda th: F.affine_grid(th, (2, 1, 3, 4, 5), align_corners=False),
                   lambda th: torch.nn.functional.affine_grid(th, (2, 1, 3, 4, 5), align_corners=False), [theta],
                   grad=(0,))
    with pytest.raises(ValueError, match="Nx2x3"):
        F.affine_grid(t(theta), (2, 1, 3, 4), align_corners=False)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.affine_grid(t(theta[:, :2, :3]), (2, 1, 3, 4))


def test_unfold_fold_functional():
    torch = _torch()
    x = rng(13).standard_normal((2, 3, 6, 5)).astype(np.float32)
    kw = dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2))
    cols = check_vs_torch(lambda a: F.unfold(a, **kw), lambda a: torch.nn.functional.unfold(a, **kw), [x], grad=(0,))
    check_vs_torch(lambda c: F.fold(c, (6, 5), **kw), lambda c: torch.nn.functional.fold(c, (6, 5), **kw),
                   [cols.detach().numpy()], grad=(0,))
    # fold(unfold(x)) multiplies each pixel by the number of blocks covering it
    ones = np.ones_like(x)
    cover = F.fold(F.unfold(t(ones), **kw), (6, 5), **kw).numpy()
    close(F.fold(F.unfold(t(x), **kw), (6, 5), **kw), x * cover, atol=1e-5)
    with pytest.raises(NotImplementedError, match="Only 3D or 4D input"):
        F.unfold(t(x[0, 0]), 2)


def test_zero_vectors_have_torch_gradients_through_norms():
    """normalize / cosine_similarity / pairwise_distance on zero rows (padding): torch's finite
    gradients, not NaN from the norm's root at 0."""
    torch = pytest.importorskip("torch")
    zeros, ones = np.zeros((2, 3)), np.ones((2, 3))
    cases = [
        lambda m, a: m.nn.functional.normalize(a).sum(),
        lambda m, a: m.nn.functional.cosine_similarity(a, m.tensor(ones)).sum(),
        lambda m, a: m.nn.functional.pairwise_distance(a, m.tensor(zeros)).sum(),
        lambda m, a: a.norm(dim=1).sum(),
    ]
    for fn in cases:
        x = nd.tensor(zeros, requires_grad=True)
        ndgrad.backward(fn(_nd_namespace(), x))
        tx = torch.tensor(zeros, requires_grad=True)
        fn(torch, tx).backward()
        assert np.isfinite(x.grad.numpy()).all()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def _nd_namespace():
    import types

    import ndnn

    return types.SimpleNamespace(nn=types.SimpleNamespace(functional=F), tensor=nd.tensor, ndnn=ndnn)
