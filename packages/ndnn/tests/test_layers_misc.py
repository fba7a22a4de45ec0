"""Pooling, padding, embedding, resize, fold, shuffle and distance layers vs torch (and NumPy where simple)."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_helpers import check_module_vs_torch, close, copy_into_torch, rng, t, tt

import ndcore as nd
import ndgrad
import ndnn as nn


def _torch():
    return pytest.importorskip("torch")


POOL_LAYERS = [
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1}, (2, 3, 9)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", ((3, 2),), {"stride": 1, "dilation": (1, 2), "ceil_mode": True}, (1, 2, 6, 7)),
    ("MaxPool3d", (2,), {"return_indices": True}, (1, 2, 4, 4, 4)),
    ("AvgPool1d", (3,), {"stride": 1, "padding": 1, "count_include_pad": False}, (2, 3, 7)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 7, 6)),
    ("AvgPool2d", (2,), {"divisor_override": 3}, (2, 3, 4, 4)),
    ("AvgPool3d", ((2, 1, 2),), {}, (1, 2, 4, 3, 4)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 10)),
    ("AdaptiveAvgPool2d", ((None, 3),), {}, (2, 3, 5, 7)),
    ("AdaptiveAvgPool3d", (2,), {}, (1, 2, 5, 4, 3)),
    ("AdaptiveMaxPool1d", (3,), {}, (2, 3, 10)),
    ("AdaptiveMaxPool2d", ((2, 3),), {"return_indices": True}, (2, 3, 5, 7)),
    ("AdaptiveMaxPool3d", (2,), {}, (1, 2, 5, 4, 3)),
    ("LPPool1d", (2, 3), {"stride": 2}, (2, 3, 9)),
    ("LPPool2d", (1.5, 2), {"ceil_mode": True}, (2, 3, 5, 5)),
    ("LPPool3d", (2, 2), {}, (1, 2, 4, 4, 4)),
]


@pytest.mark.parametrize("name,args,kw,shape", POOL_LAYERS, ids=[f"{p[0]}-{i}" for i, p in enumerate(POOL_LAYERS)])
def test_pool_layers_vs_torch(name, args, kw, shape):
    torch = _torch()
    m, mt = getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    assert repr(m) == repr(mt)
    x = rng(0).uniform(0.1, 2.0, shape).astype(np.float32)
    check_module_vs_torch(m, mt, [x])
    if kw.get("return_indices"):
        close(m(t(x))[1], mt(tt(x))[1])


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_layers(dims):
    torch = _torch()
    shape = {1: (2, 3, 8), 2: (2, 3, 6, 8), 3: (1, 2, 4, 6, 4)}[dims]
    pool = getattr(nn, f"MaxPool{dims}d")(2, return_indices=True)
    unpool, unpool_t = getattr(nn, f"MaxUnpool{dims}d")(2), getattr(torch.nn, f"MaxUnpool{dims}d")(2)
    assert repr(unpool) == repr(unpool_t)
    x = rng(1).standard_normal(shape).astype(np.float32)
    out, idx = pool(t(x))
    out_t, idx_t = getattr(torch.nn, f"MaxPool{dims}d")(2, return_indices=True)(tt(x))
    close(unpool(out, idx), unpool_t(out_t, idx_t))
    size = [s + 1 for s in shape]
    close(unpool(out, idx, output_size=size), unpool_t(out_t, idx_t, output_size=size))


PAD_LAYERS = [
    ("ZeroPad1d", (2,), (2, 3, 4)), ("ZeroPad2d", ((1, 0, 2, 1),), (2, 3, 4, 4)), ("ZeroPad3d", (1,), (1, 2, 2, 3, 2)),
    ("ConstantPad1d", ((2, 1), 3.5), (3, 4)), ("ConstantPad2d", (1, -1.0), (2, 3, 4, 4)),
    ("ConstantPad3d", ((1, 0, 0, 1, 2, 0), 2.0), (1, 2, 2, 3, 2)),
    ("ReflectionPad1d", (2,), (2, 3, 4)), ("ReflectionPad2d", ((1, 2, 2, 1),), (2, 3, 4, 4)),
    ("ReflectionPad3d", (1,), (1, 2, 3, 3, 3)), ("ReplicationPad1d", ((3, 1),), (2, 3, 4)),
    ("ReplicationPad2d", (2,), (3, 4, 4)), ("ReplicationPad3d", ((1, 0, 2, 0, 0, 1),), (1, 2, 2, 3, 2)),
    ("CircularPad1d", (2,), (2, 3, 4)), ("CircularPad2d", ((1, 2, 0, 3),), (2, 3, 4, 4)),
    ("CircularPad3d", (1,), (1, 2, 2, 3, 2)),
]


@pytest.mark.parametrize("name,args,shape", PAD_LAYERS, ids=[p[0] for p in PAD_LAYERS])
def test_padding_layers_vs_torch(name, args, shape):
    torch = _torch()
    m, mt = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(m) == repr(mt)
    assert m.padding == mt.padding
    check_module_vs_torch(m, mt, [rng(2).standard_normal(shape).astype(np.float32)])


def test_circular_pad_numpy_and_errors():
    x = rng(3).standard_normal((1, 2, 5)).astype(np.float32)
    close(nn.CircularPad1d((2, 1))(t(x)), np.pad(x, [(0, 0), (0, 0), (2, 1)], mode="wrap"))
    with pytest.raises(ValueError, match=r"\[CircularPad2d\] expected 3D or 4D input"):
        nn.CircularPad2d(1)(t(x[0, 0]))
    with pytest.raises(ValueError, match="wrapping around more than once"):
        nn.CircularPad1d(7)(t(x))


# ---------------------------------------------------------------- embeddings

def test_embedding_lookup_and_padding_idx_grad():
    torch = _torch()
    nd.manual_seed(0)
    m, mt = nn.Embedding(10, 4, padding_idx=2), torch.nn.Embedding(10, 4, padding_idx=2)
    assert repr(m) == repr(mt)
    close(m.weight[2], np.zeros(4, np.float32))  # the padding row starts at zero
    w = m.weight.detach().numpy()
    assert abs(w.std() - 1) < 0.35  # N(0, 1) init
    idx = np.array([[1, 2, 3], [2, 9, 1]])
    close(m(t(idx)), w[idx])
    check_module_vs_torch(m, mt, [idx], grad_inputs=())
    close(m.weight.grad[2], np.zeros(4, np.float32))


def test_embedding_options_vs_torch():
    torch = _torch()
    idx = np.array([[1, 3, 1, 1], [0, 3, 4, 1]])
    for kw in ({"scale_grad_by_freq": True}, {"padding_idx": -1, "scale_grad_by_freq": True},
               {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0}):
        m, mt = nn.Embedding(5, 3, **kw), torch.nn.Embedding(5, 3, **kw)
        assert repr(m) == repr(mt)
        # max_norm renormalises the looked-up rows of the weight in place, before the lookup
        check_module_vs_torch(m, mt, [idx], grad_inputs=())
        close(m.weight, mt.weight, atol=1e-6)


def test_embedding_from_pretrained_and_errors():
    w = rng(4).standard_normal((4, 3)).astype(np.float32)
    m = nn.Embedding.from_pretrained(t(w))
    assert not m.weight.requires_grad and m.num_embeddings == 4 and m.embedding_dim == 3
    close(m(t(np.array([3, 0]))), w[[3, 0]])
    assert nn.Embedding.from_pretrained(t(w), freeze=False).weight.requires_grad
    with pytest.raises(IndexError, match=r"\[embedding\] index out of range.*\[0, 4\)"):
        m(t(np.array([4])))
    with pytest.raises(TypeError, match="integer index tensor"):
        m(t(np.array([1.0])))
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings"):
        nn.Embedding(3, 2, padding_idx=3)
    x = t(rng(5).standard_normal((5, 2)), requires_grad=True)
    assert ndgrad.gradcheck(lambda ww: nn.functional.embedding(t(np.array([[0, 4], [4, 4]])), ww), (x,))


BAG_CASES = [
    ({"mode": "sum"}, np.array([[1, 2, 4], [4, 3, 2]]), None, None),
    ({"mode": "mean"}, np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 2, 2, 5]), None),
    ({"mode": "max"}, np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 3, 3, 4]), None),
    ({"mode": "sum"}, np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 3, 5]), "psw"),
    ({"mode": "mean", "padding_idx": 2}, np.array([1, 2, 4, 2, 4, 3, 2, 9]), np.array([0, 3, 4, 6]), None),
    ({"mode": "max", "padding_idx": 4}, np.array([[1, 4, 4], [4, 4, 4], [0, 7, 4]]), None, None),
    ({"mode": "sum", "include_last_offset": True}, np.array([1, 2, 4, 5, 4, 3, 2, 9]), np.array([0, 3, 5, 8]), None),
]


@pytest.mark.parametrize("kw,inp,offsets,psw", BAG_CASES, ids=[f"bag{i}" for i in range(len(BAG_CASES))])
def test_embedding_bag_vs_torch(kw, inp, offsets, psw):
    torch = _torch()
    m, mt = nn.EmbeddingBag(10, 3, **kw), torch.nn.EmbeddingBag(10, 3, **kw)
    assert repr(m) == repr(mt)
    arrays = [inp] + ([offsets] if offsets is not None else [None])
    if psw:
        arrays.append(rng(6).standard_normal(inp.shape).astype(np.float32))
    check_module_vs_torch(m, mt, arrays, grad_inputs=(2,) if psw else ())


def test_embedding_bag_numpy_mean_and_errors():
    w = rng(7).standard_normal((6, 2)).astype(np.float32)
    m = nn.EmbeddingBag.from_pretrained(t(w), mode="mean")
    out = m(t(np.array([0, 1, 5, 5])), t(np.array([0, 3])))
    close(out, np.stack([w[[0, 1, 5]].mean(0), w[[5]].mean(0)]), atol=1e-6)
    with pytest.raises(ValueError, match="offsets has to be None"):
        m(t(np.array([[0, 1]])), t(np.array([0])))
    with pytest.raises(NotImplementedError, match="only supported for mode='sum'"):
        m(t(np.array([0, 1])), t(np.array([0])), per_sample_weights=t(np.ones(2, np.float32)))


# ---------------------------------------------------------------- resize, fold, shuffle, distance

UPSAMPLE = [
    (nn.Upsample, {"scale_factor": 2}, (1, 2, 3, 4)), (nn.Upsample, {"size": (5, 7), "mode": "bilinear"}, (1, 2, 3, 4)),
    (nn.Upsample, {"scale_factor": 1.5, "mode": "bicubic", "align_corners": True}, (1, 2, 4, 4)),
    (nn.Upsample, {"scale_factor": (2, 1, 3), "mode": "trilinear"}, (1, 2, 2, 3, 2)),
    (nn.Upsample, {"size": 7, "mode": "linear"}, (2, 3, 4)), (nn.Upsample, {"scale_factor": 3, "mode": "nearest-exact"},
                                                               (1, 2, 3)),
    (nn.UpsamplingNearest2d, {"scale_factor": 2}, (1, 2, 3, 4)),
    (nn.UpsamplingBilinear2d, {"size": (4, 6)}, (1, 2, 3, 4)),
]


@pytest.mark.parametrize("cls,kw,shape", UPSAMPLE, ids=[f"{u[0].__name__}-{i}" for i, u in enumerate(UPSAMPLE)])
def test_upsample_layers_vs_torch(cls, kw, shape):
    torch = _torch()
    m, mt = cls(**kw), getattr(torch.nn, cls.__name__)(**kw)
    assert repr(m) == repr(mt)
    check_module_vs_torch(m, mt, [rng(8).standard_normal(shape).astype(np.float32)])


def test_pixel_and_channel_shuffle():
    torch = _torch()
    x = rng(9).standard_normal((2, 8, 3, 2)).astype(np.float32)
    ref = x.reshape(2, 2, 2, 2, 3, 2).transpose(0, 1, 4, 2, 5, 3).reshape(2, 2, 6, 4)
    close(nn.PixelShuffle(2)(t(x)), ref)
    for m, mt, a in ((nn.PixelShuffle(2), torch.nn.PixelShuffle(2), x),
                     (nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2), ref.copy()),
                     (nn.ChannelShuffle(4), torch.nn.ChannelShuffle(4), x)):
        assert repr(m) == repr(mt)
        check_module_vs_torch(m, mt, [a])
    close(nn.PixelUnshuffle(2)(nn.PixelShuffle(2)(t(x))), x)
    close(nn.ChannelShuffle(2)(t(x)), x.reshape(2, 2, 4, 3, 2).transpose(0, 2, 1, 3, 4).reshape(2, 8, 3, 2))
    with pytest.raises(ValueError, match="divisible by the square of upscale_factor"):
        nn.PixelShuffle(3)(t(x))


def test_fold_unfold_layers():
    torch = _torch()
    x = rng(10).standard_normal((2, 3, 5, 6)).astype(np.float32)
    u, ut = nn.Unfold((2, 3), dilation=1, padding=1, stride=2), torch.nn.Unfold((2, 3), dilation=1, padding=1, stride=2)
    assert repr(u) == repr(ut)
    cols = check_module_vs_torch(u, ut, [x])
    f, ft = nn.Fold((5, 6), (2, 3), padding=1, stride=2), torch.nn.Fold((5, 6), (2, 3), padding=1, stride=2)
    assert repr(f) == repr(ft)
    check_module_vs_torch(f, ft, [cols.detach().numpy()])
    # unfold of a 1x1 kernel is a reshape
    close(nn.Unfold(1)(t(x)), x.reshape(2, 3, 30))


def test_distance_layers():
    torch = _torch()
    a = rng(11).standard_normal((4, 5)).astype(np.float32)
    b = rng(12).standard_normal((4, 5)).astype(np.float32)
    close(nn.PairwiseDistance()(t(a), t(b)), np.linalg.norm(a - b + 1e-6, axis=1), atol=1e-5)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    close(nn.CosineSimilarity()(t(a), t(b)), cos, atol=1e-6)
    for m, mt in ((nn.PairwiseDistance(p=1.0, keepdim=True), torch.nn.PairwiseDistance(p=1.0, keepdim=True)),
                  (nn.CosineSimilarity(dim=0), torch.nn.CosineSimilarity(dim=0))):
        assert repr(m) == repr(mt)
        check_module_vs_torch(m, mt, [a, b], grad_inputs=(0, 1))
    copy_into_torch(nn.PairwiseDistance(), torch.nn.PairwiseDistance())


def test_fractional_max_pool_layers():
    torch = _torch()
    for name, kw, shape in (("FractionalMaxPool2d", dict(kernel_size=2, output_ratio=0.5), (2, 3, 8, 10)),
                            ("FractionalMaxPool3d", dict(kernel_size=2, output_size=(2, 3, 3)), (1, 2, 5, 6, 6))):
        n = 2 if "2d" in name else 3
        u = rng(13).uniform(size=(shape[0], shape[1], n)).astype(np.float32)
        m = getattr(nn, name)(**kw, _random_samples=t(u))
        mt = getattr(torch.nn, name)(**kw, _random_samples=tt(u))
        assert repr(m) == repr(mt)
        check_module_vs_torch(m, mt, [rng(14).standard_normal(shape).astype(np.float32)])
    with pytest.raises(ValueError, match="output_ratio must be between 0 and 1"):
        nn.FractionalMaxPool2d(2, output_ratio=1.5)
    with pytest.raises(ValueError, match="only one of output_size and output_ratio"):
        nn.FractionalMaxPool2d(2, output_size=3, output_ratio=0.5)
