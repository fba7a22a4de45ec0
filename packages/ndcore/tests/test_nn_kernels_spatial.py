"""Spatial kernels (csrc/kernels/spatial.cpp and im2col/col2im in conv.cpp): upsampling,
padding, grid_sampler_2d, unfold/fold and the pixel/channel shuffles, against NumPy references
written with torch's index math and against torch when installed; gradients by gradcheck."""
from __future__ import annotations

import importlib.util
import math
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing.opdb import to_np

OPS = {op.opname: op for op in OPDB}


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _close(actual, expected, opname, dtype):
    rtol, atol = OPS[opname].tol(dtype)
    actual = to_np(actual)
    assert actual.shape == np.shape(expected), (actual.shape, np.shape(expected))
    np.testing.assert_allclose(actual.astype(np.float64), np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol)


def _t(a, dtype="float32"):
    return nd.tensor(np.asarray(a)).to(getattr(nd, dtype))


# ---- NumPy references: per-dim source indices and weights, applied separably ---------------

def _scale(n_in, n_out, align, scale, dtype=np.float32):
    if align:
        return dtype((n_in - 1) / (n_out - 1)) if n_out > 1 else dtype(0)
    return dtype(1.0 / scale) if scale else dtype(n_in) / dtype(n_out)


def taps(mode, n_in, n_out, align=False, scale=None, dtype=np.float32):
    """(indices, weights) of shape (n_out, taps) for one dim."""
    o = np.arange(n_out)
    if mode in ("nearest", "nearest-exact"):
        sc = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
        if mode == "nearest-exact":
            src = np.floor((o.astype(np.float32) + np.float32(0.5)) * sc)
        elif n_out == n_in:
            src = o
        elif n_out == 2 * n_in:
            src = o // 2
        else:
            src = np.floor(o.astype(np.float32) * sc)
        return np.minimum(src.astype(np.int64), n_in - 1)[:, None], np.ones((n_out, 1))
    sc = _scale(n_in, n_out, align, scale, dtype)
    real = sc * o.astype(dtype) if align else sc * (o.astype(dtype) + dtype(0.5)) - dtype(0.5)
    if mode == "linear" and not align:
        real = np.maximum(real, 0)
    base = np.minimum(np.floor(real).astype(np.int64), n_in - 1)
    t = np.clip(real - base, 0, 1).astype(np.float64)
    if mode == "linear":
        return np.stack([base, base + (base < n_in - 1)], 1), np.stack([1 - t, t], 1)
    A = -0.75
    c1 = lambda x: ((A + 2) * x - (A + 3)) * x * x + 1  # noqa: E731
    c2 = lambda x: ((A * x - 5 * A) * x + 8 * A) * x - 4 * A  # noqa: E731
    w = np.stack([c2(t + 1), c1(t), c1(1 - t), c2(2 - t)], 1)
    idx = np.clip(base[:, None] - 1 + np.arange(4), 0, n_in - 1)
    return idx, w


def resample_ref(x, dim_taps):
    """Applies per-dim (indices, weights) to the trailing dims of x."""
    out = x.astype(np.float64)
    D = len(dim_taps)
    for i, (idx, w) in enumerate(dim_taps):
        ax = out.ndim - D + i
        g = np.take(out, idx, axis=ax)  # (..., n_out, taps, ...)
        shape = [1] * g.ndim
        shape[ax], shape[ax + 1] = w.shape
        out = (g * w.reshape(shape)).sum(ax + 1)
    return out


def resample_backward_ref(go, in_shape, dim_taps):
    """Adjoint of resample_ref: scatters each output gradient back through the taps."""
    D = len(dim_taps)
    gi = np.zeros(in_shape)
    lead = in_shape[:-D]
    for o in np.ndindex(*go.shape[-D:]):
        for t in np.ndindex(*[w.shape[1] for _, w in dim_taps]):
            src = tuple(dim_taps[i][0][o[i], t[i]] for i in range(D))
            wt = np.prod([dim_taps[i][1][o[i], t[i]] for i in range(D)])
            gi[(Ellipsis,) + src] += wt * go[(Ellipsis,) + o]
    assert gi.shape[:-D] == lead
    return gi


# (name, op, mode, input shape, output size, align_corners or None, scales or None)
UPSAMPLE = [
    ("nearest1d", "upsample_nearest1d", "nearest", (2, 3, 7), (12,), None, None),
    ("nearest1d_scale", "upsample_nearest1d", "nearest", (2, 3, 7), (11,), None, (1.7,)),
    ("nearest2d_double", "upsample_nearest2d", "nearest", (2, 3, 5, 4), (10, 8), None, None),
    ("nearest2d_down", "upsample_nearest2d", "nearest", (1, 2, 9, 7), (4, 3), None, None),
    ("nearest2d_scale", "upsample_nearest2d", "nearest", (1, 2, 5, 7), (8, 2), None, (1.7, 0.35)),
    ("nearest3d", "upsample_nearest3d", "nearest", (1, 2, 3, 4, 5), (5, 4, 9), None, None),
    ("nearest_exact1d", "_upsample_nearest_exact1d", "nearest-exact", (2, 2, 6), (9,), None, None),
    ("nearest_exact2d", "_upsample_nearest_exact2d", "nearest-exact", (1, 2, 5, 7), (8, 3), None, None),
    ("nearest_exact3d", "_upsample_nearest_exact3d", "nearest-exact", (1, 1, 3, 4, 5), (4, 7, 2), None, None),
    ("linear1d", "upsample_linear1d", "linear", (2, 3, 6), (11,), False, None),
    ("linear1d_ac", "upsample_linear1d", "linear", (2, 3, 6), (4,), True, None),
    ("bilinear2d", "upsample_bilinear2d", "linear", (2, 3, 5, 7), (9, 4), False, None),
    ("bilinear2d_ac", "upsample_bilinear2d", "linear", (2, 3, 5, 7), (9, 13), True, None),
    ("bilinear2d_scale", "upsample_bilinear2d", "linear", (1, 2, 5, 7), (8, 11), False, (1.7, 1.6)),
    ("bicubic2d", "upsample_bicubic2d", "cubic", (2, 2, 5, 6), (9, 4), False, None),
    ("bicubic2d_ac", "upsample_bicubic2d", "cubic", (1, 2, 5, 6), (7, 13), True, None),
    ("trilinear3d", "upsample_trilinear3d", "linear", (1, 2, 3, 4, 5), (5, 3, 8), False, None),
    ("trilinear3d_ac", "upsample_trilinear3d", "linear", (1, 2, 3, 4, 5), (5, 7, 2), True, None),
]


def _up_args(out_size, align, scales, D):
    args = [list(out_size)]
    if align is not None:
        args.append(align)
    return args + list(scales or [None] * D)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,op,mode,shape,size,align,scales", UPSAMPLE, ids=[u[0] for u in UPSAMPLE])
def test_upsample_matches_reference(name, op, mode, shape, size, align, scales, dtype):
    D = len(size)
    x = _rng("up", name).standard_normal(shape)
    npd = np.float64 if dtype == "float64" else np.float32
    dim_taps = [taps(mode, shape[-D + i], size[i], bool(align), scales[i] if scales else None, npd) for i in range(D)]
    out = getattr(nd, op)(_t(x, dtype), *_up_args(size, align, scales, D))
    _close(out, resample_ref(x, dim_taps), op, dtype)
    if dtype == "float64":
        go = _rng("up-go", name).standard_normal(tuple(out.shape))
        gi = getattr(nd, op + "_backward")(_t(go, dtype), list(size), list(shape), *_up_args(size, align, scales, D)[1:])
        _close(gi, resample_backward_ref(go, shape, dim_taps), op + "_backward", dtype)


@pytest.mark.parametrize("dtype", ["uint8", "int64", "float16", "bfloat16"])
def test_nearest_upsample_other_dtypes(dtype):
    x = _rng("up-int", dtype).integers(0, 200, (2, 3, 5, 4)).astype(np.float32)
    out = nd.upsample_nearest2d(_t(x, dtype), [7, 9])
    assert out.dtype == getattr(nd, dtype)
    idx = [taps("nearest", n, m)[0][:, 0] for n, m in ((5, 7), (4, 9))]
    np.testing.assert_array_equal(to_np(out).astype(np.float32), x[:, :, idx[0]][:, :, :, idx[1]])


@pytest.mark.parametrize("name,op,mode,shape,size,align,scales", UPSAMPLE[::2], ids=[u[0] for u in UPSAMPLE[::2]])
def test_upsample_matches_torch(name, op, mode, shape, size, align, scales):
    torch = pytest.importorskip("torch")
    D = len(size)
    x = _rng("up-torch", name).standard_normal(shape).astype(np.float32)
    kw = {"scale_factor": scales} if scales else {"size": size}
    tmode = {"linear": ("linear", "bilinear", "trilinear")[D - 1], "cubic": "bicubic"}.get(mode, mode)
    if align is not None:
        kw["align_corners"] = align
    expected = torch.nn.functional.interpolate(torch.tensor(x), mode=tmode, **kw)
    out = getattr(nd, op)(_t(x), *_up_args(size, align, scales, D))
    _close(out, expected.numpy(), op, "float32")


UP_GRAD = [
    ("nearest2d", lambda x: nd.upsample_nearest2d(x, [7, 5])),
    ("nearest_exact1d", lambda x: nd._upsample_nearest_exact1d(x[0], [7])),
    ("nearest3d", lambda x: nd.upsample_nearest3d(x.unsqueeze(2), [2, 3, 5])),
    ("linear1d", lambda x: nd.upsample_linear1d(x[0], [9], False)),
    ("bilinear2d", lambda x: nd.upsample_bilinear2d(x, [5, 7], False)),
    ("bilinear2d_ac", lambda x: nd.upsample_bilinear2d(x, [3, 6], True)),
    ("bicubic2d", lambda x: nd.upsample_bicubic2d(x, [6, 5], False)),
    ("trilinear3d", lambda x: nd.upsample_trilinear3d(x.unsqueeze(2), [2, 5, 3], True)),
]


@pytest.mark.parametrize("name,fn", UP_GRAD, ids=[g[0] for g in UP_GRAD])
def test_upsample_gradcheck(name, fn):
    ndgrad = pytest.importorskip("ndgrad")
    x = nd.tensor(_rng("up-grad", name).standard_normal((2, 2, 4, 3)), dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(fn, (x,))


# ---- padding ------------------------------------------------------------------------------

def _np_pad_width(pad, ndim):
    width = [(0, 0)] * ndim
    for i in range(len(pad) // 2):
        width[ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return width


def pad_ref(x, pad, mode, value=0.0):
    """numpy.pad for non-negative pads; negative pads crop afterwards."""
    width = _np_pad_width(pad, x.ndim)
    pos = [(max(a, 0), max(b, 0)) for a, b in width]
    kw = {"constant_values": value} if mode == "constant" else {}
    out = np.pad(x, pos, mode={"reflection": "reflect", "replication": "edge", "constant": "constant"}[mode], **kw)
    sl = tuple(slice(-min(a, 0), out.shape[i] + min(b, 0)) for i, (a, b) in enumerate(width))
    return out[sl]


PADS = [
    ("reflection", 1, (2, 3, 6), (2, 3)), ("reflection", 1, (3, 6), (-1, 2)), ("reflection", 2, (2, 3, 5, 4), (1, 2, 3, 4)),
    ("reflection", 3, (1, 2, 3, 4, 5), (1, 2, 0, 3, 2, 1)), ("replication", 1, (2, 3, 4), (3, 5)),
    ("replication", 2, (3, 5, 4), (0, 2, 4, 1)), ("replication", 3, (1, 2, 3, 4, 2), (2, 1, 1, 0, 3, 3)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "uint8"])
@pytest.mark.parametrize("kind,dims,shape,pad", PADS, ids=[f"{p[0]}{p[1]}d-{i}" for i, p in enumerate(PADS)])
def test_padding_matches_reference(kind, dims, shape, pad, dtype):
    x = (_rng("pad", kind, shape).standard_normal(shape) * 40).astype(dtype)
    out = getattr(nd, f"{kind}_pad{dims}d")(_t(x, dtype), list(pad))
    assert out.dtype == getattr(nd, dtype)
    np.testing.assert_array_equal(to_np(out), pad_ref(x, pad, kind))


@pytest.mark.parametrize("kind,dims,shape,pad", PADS, ids=[f"{p[0]}{p[1]}d-{i}" for i, p in enumerate(PADS)])
def test_padding_gradcheck(kind, dims, shape, pad):
    ndgrad = pytest.importorskip("ndgrad")
    x = nd.tensor(_rng("padgrad", kind, shape).standard_normal(shape), dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda t: getattr(nd, f"{kind}_pad{dims}d")(t, list(pad)), (x,))


@pytest.mark.parametrize("pad,value", [((1, 2), 0.0), ((1, -2, 0, 3), 2.5), ((2, 2, 1, 1, 1, 0), -1.0), ((-1, -1), 0.0)])
def test_constant_pad_nd(pad, value):
    x = _rng("cpad", pad).standard_normal((2, 3, 5))
    _close(nd.constant_pad_nd(_t(x, "float64"), list(pad), value), pad_ref(x, pad, "constant", value), "constant_pad_nd", "float64")
    xi = (x * 10).astype(np.int32)
    np.testing.assert_array_equal(to_np(nd.constant_pad_nd(_t(xi, "int32"), list(pad), int(value))), pad_ref(xi, pad, "constant", int(value)))
    strided = _t(x, "float64").transpose(0, 2)
    _close(strided.constant_pad_nd(list(pad), value), pad_ref(np.swapaxes(x, 0, 2), pad, "constant", value), "constant_pad_nd", "float64")
    ndgrad = pytest.importorskip("ndgrad")
    leaf = nd.tensor(x, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda t: nd.constant_pad_nd(t, list(pad), value), (leaf,))


PAD_ERRORS = [
    (lambda: nd.reflection_pad1d(nd.zeros(1, 3), [3, 0]), r"\[reflection_pad1d\].*less than the corresponding input dimension"),
    (lambda: nd.reflection_pad2d(nd.zeros(1, 3), [1, 1, 1, 1]), r"\[reflection_pad2d\].*4D \(batched\) or 3D \(unbatched\)"),
    (lambda: nd.replication_pad1d(nd.zeros(1, 3), [1]), r"\[replication_pad1d\].*2 elements"),
    (lambda: nd.constant_pad_nd(nd.zeros(2, 3), [1, 1, 1]), r"\[constant_pad_nd\].*divisible by 2"),
    (lambda: nd.constant_pad_nd(nd.zeros(3), [1, 1, 1, 1]), r"\[constant_pad_nd\].*too large"),
    (lambda: nd.constant_pad_nd(nd.zeros(3), [-2, -2]), r"\[constant_pad_nd\].*negative output size"),
    (lambda: nd.upsample_bilinear2d(nd.zeros(1, 1, 2, 2, dtype=nd.int64), [3, 3], False), r"\[upsample_bilinear2d\].*floating"),
    (lambda: nd.upsample_nearest2d(nd.zeros(1, 1, 2, 2), [3]), r"\[upsample_nearest2d\].*2 elements"),
    (lambda: nd.upsample_nearest2d(nd.zeros(1, 1, 2, 2), [0, 3]), r"\[upsample_nearest2d\].*greater than 0"),
    (lambda: nd.grid_sampler_2d(nd.zeros(1, 1, 2, 2), nd.zeros(1, 3, 3, 3), 0, 0, False), r"\[grid_sampler_2d\].*\(N, H_out, W_out, 2\)"),
    (lambda: nd.grid_sampler_2d(nd.zeros(1, 1, 2, 2), nd.zeros(1, 3, 3, 2), 0, 5, False), r"\[grid_sampler_2d\].*padding_mode"),
    (lambda: nd.im2col(nd.zeros(1, 1, 2, 2), [3, 3], [1, 1], [0, 0], [1, 1]), r"\[im2col\].*too small"),
    (lambda: nd.col2im(nd.zeros(1, 4, 5), [3, 3], [2, 2], [1, 1], [0, 0], [1, 1]), r"\[col2im\].*sliding blocks"),
    (lambda: nd.pixel_shuffle(nd.zeros(1, 3, 2, 2), 2), r"\[pixel_shuffle\].*divisible"),
    (lambda: nd.pixel_unshuffle(nd.zeros(1, 3, 3, 2), 2), r"\[pixel_unshuffle\].*divisible"),
    (lambda: nd.channel_shuffle(nd.zeros(1, 3, 2, 2), 2), r"\[channel_shuffle\].*divisible"),
]


@pytest.mark.parametrize("fn,pattern", PAD_ERRORS, ids=[f"e{i}" for i in range(len(PAD_ERRORS))])
def test_spatial_errors(fn, pattern):
    with pytest.raises((ValueError, TypeError, NotImplementedError), match=pattern):
        fn()


# ---- grid_sampler_2d ----------------------------------------------------------------------

def _source(coord, size, pad, align):
    x = ((coord + 1) / 2) * (size - 1) if align else ((coord + 1) * size - 1) / 2
    if pad == 1:
        x = min(size - 1, max(x, 0))
    elif pad == 2:
        lo, hi = (0, 2 * (size - 1)) if align else (-1, 2 * size - 1)
        if lo == hi:
            x = 0
        else:
            mn, span = lo / 2, (hi - lo) / 2
            v = abs(x - mn)
            extra, flips = math.fmod(v, span), math.floor(v / span)
            x = extra + mn if flips % 2 == 0 else span - extra + mn
        x = min(size - 1, max(x, 0))
    return x


def grid_sample_ref(x, grid, mode, pad, align):
    N, C, H, W = x.shape
    out = np.zeros((N, C) + grid.shape[1:3])
    for n, i, j in np.ndindex(N, *grid.shape[1:3]):
        ix, iy = _source(grid[n, i, j, 0], W, pad, align), _source(grid[n, i, j, 1], H, pad, align)
        if mode == 1:
            xr, yr = int(np.rint(ix)), int(np.rint(iy))
            if 0 <= xr < W and 0 <= yr < H:
                out[n, :, i, j] = x[n, :, yr, xr]
            continue
        x0, y0 = math.floor(ix), math.floor(iy)
        for yy, xx, wt in ((y0, x0, (x0 + 1 - ix) * (y0 + 1 - iy)), (y0, x0 + 1, (ix - x0) * (y0 + 1 - iy)),
                           (y0 + 1, x0, (x0 + 1 - ix) * (iy - y0)), (y0 + 1, x0 + 1, (ix - x0) * (iy - y0))):
            if 0 <= xx < W and 0 <= yy < H:
                out[n, :, i, j] += wt * x[n, :, yy, xx]
    return out


GRID_CASES = [(m, p, a) for m in (0, 1) for p in (0, 1, 2) for a in (False, True)]


@pytest.mark.parametrize("mode,pad,align", GRID_CASES, ids=[f"m{m}-p{p}-a{int(a)}" for m, p, a in GRID_CASES])
def test_grid_sampler_matches_reference(mode, pad, align):
    rng = _rng("grid", mode, pad, align)
    x = rng.standard_normal((2, 3, 5, 6))
    grid = rng.uniform(-1.4, 1.4, (2, 4, 3, 2))
    for dtype in ("float32", "float64"):
        out = nd.grid_sampler_2d(_t(x, dtype), _t(grid, dtype), mode, pad, align)
        _close(out, grid_sample_ref(x, grid.astype(dtype).astype(np.float64), mode, pad, align), "grid_sampler_2d", dtype)


@pytest.mark.parametrize("mode,pad,align", GRID_CASES[::2] + [GRID_CASES[1]], ids=lambda v: str(v))
def test_grid_sampler_matches_torch_with_gradients(mode, pad, align):
    torch = pytest.importorskip("torch")
    rng = _rng("grid-torch", mode, pad, align)
    x, grid = rng.standard_normal((2, 3, 5, 6)), rng.uniform(-1.4, 1.4, (2, 4, 3, 2))
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(grid, requires_grad=True)
    out = torch.nn.functional.grid_sample(tx, tg, ("bilinear", "nearest")[mode], ("zeros", "border", "reflection")[pad], align)
    go = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(go))
    _close(nd.grid_sampler_2d(_t(x, "float64"), _t(grid, "float64"), mode, pad, align), out.detach().numpy(), "grid_sampler_2d", "float64")
    gi, gg = nd.grid_sampler_2d_backward(_t(go, "float64"), _t(x, "float64"), _t(grid, "float64"), mode, pad, align, [1, 1])
    _close(gi, tx.grad.numpy(), "grid_sampler_2d_backward", "float64")
    _close(gg, tg.grad.numpy(), "grid_sampler_2d_backward", "float64")


@pytest.mark.parametrize("mode,pad", [(m, p) for m in (0, 1) for p in (0, 1, 2)])
def test_grid_sampler_3d_on_a_flat_volume(mode, pad):
    # a depth-1 volume sampled at z = 0 with align_corners is the 2-D sampler: forward against the 2-D
    # reference, grid_sampler_3d_backward against grid_sampler_2d_backward (z's grad_grid is 0 there)
    rng = _rng("grid3d", mode, pad)
    x = rng.standard_normal((2, 3, 5, 6))
    grid = rng.uniform(-1.4, 1.4, (2, 4, 3, 2))
    g3 = np.concatenate([grid, np.zeros(grid.shape[:-1] + (1,))], -1)[:, None]
    for dtype in ("float32", "float64"):
        out = nd.grid_sampler_3d(_t(x[:, :, None], dtype), _t(g3, dtype), mode, pad, True)
        _close(out.reshape(2, 3, 4, 3), grid_sample_ref(x, grid.astype(dtype).astype(np.float64), mode, pad, True),
               "grid_sampler_3d", dtype)
    go = rng.standard_normal((2, 3, 1, 4, 3))
    gi3, gg3 = nd.grid_sampler_3d_backward(_t(go, "float64"), _t(x[:, :, None], "float64"), _t(g3, "float64"),
                                           mode, pad, True, [1, 1])
    gi2, gg2 = nd.grid_sampler_2d_backward(_t(go[:, :, 0], "float64"), _t(x, "float64"), _t(grid, "float64"),
                                           mode, pad, True, [1, 1])
    _close(gi3.reshape(x.shape), gi2.numpy(), "grid_sampler_3d_backward", "float64")
    _close(gg3[:, 0, :, :, :2], gg2.numpy(), "grid_sampler_3d_backward", "float64")
    assert not gg3.numpy()[..., 2].any()


@pytest.mark.parametrize("pad,align", [(0, False), (1, True), (2, False), (2, True)])
def test_grid_sampler_gradcheck(pad, align):
    ndgrad = pytest.importorskip("ndgrad")
    rng = _rng("grid-gc", pad, align)
    x = nd.tensor(rng.standard_normal((1, 2, 4, 5)), dtype=nd.float64, requires_grad=True)
    # keep samples away from integer pixel positions and clip edges, where the bilinear map has kinks
    g = rng.uniform(-0.85, 0.85, (1, 3, 2, 2))
    grid = nd.tensor(g, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda a, b: nd.grid_sampler_2d(a, b, 0, pad, align), (x, grid))


# ---- im2col / col2im, pixel and channel shuffles -------------------------------------------

def unfold_ref(x, k, d, p, s):
    N, C, H, W = x.shape
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])])
    oh = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = np.zeros((N, C, k[0], k[1], oh, ow))
    for a, b in np.ndindex(*k):
        cols[:, :, a, b] = xp[:, :, a * d[0]:a * d[0] + s[0] * (oh - 1) + 1:s[0], b * d[1]:b * d[1] + s[1] * (ow - 1) + 1:s[1]]
    return cols.reshape(N, C * k[0] * k[1], oh * ow)


def fold_ref(cols, size, k, d, p, s):
    N, CK, L = cols.shape
    C = CK // (k[0] * k[1])
    H, W = size
    oh = (H + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (W + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    c = cols.reshape(N, C, k[0], k[1], oh, ow)
    out = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]))
    for a, b in np.ndindex(*k):
        out[:, :, a * d[0]:a * d[0] + s[0] * (oh - 1) + 1:s[0], b * d[1]:b * d[1] + s[1] * (ow - 1) + 1:s[1]] += c[:, :, a, b]
    return out[:, :, p[0]:p[0] + H, p[1]:p[1] + W]


FOLD_CASES = [((2, 3), (1, 1), (0, 0), (1, 1)), ((3, 2), (1, 2), (1, 0), (2, 1)), ((2, 2), (2, 1), (1, 1), (1, 3))]


@pytest.mark.parametrize("k,d,p,s", FOLD_CASES, ids=[f"f{i}" for i in range(len(FOLD_CASES))])
def test_im2col_col2im(k, d, p, s):
    rng = _rng("fold", k, d, p, s)
    x = rng.standard_normal((2, 3, 7, 8))
    for dtype in ("float32", "float64"):
        _close(nd.im2col(_t(x, dtype), list(k), list(d), list(p), list(s)), unfold_ref(x, k, d, p, s), "im2col", dtype)
        _close(nd.im2col(_t(x[0], dtype), list(k), list(d), list(p), list(s)), unfold_ref(x, k, d, p, s)[0], "im2col", dtype)
    cols = rng.standard_normal(unfold_ref(x, k, d, p, s).shape)
    _close(nd.col2im(_t(cols, "float64"), [7, 8], list(k), list(d), list(p), list(s)), fold_ref(cols, (7, 8), k, d, p, s), "col2im", "float64")
    ndgrad = pytest.importorskip("ndgrad")
    xs = nd.tensor(x[:1, :2], dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda t: nd.im2col(t, list(k), list(d), list(p), list(s)), (xs,))
    cs = nd.tensor(cols[:1, : cols.shape[1] // 3], dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(lambda t: nd.col2im(t, [7, 8], list(k), list(d), list(p), list(s)), (cs,))


def test_pixel_and_channel_shuffle():
    x = _rng("shuffle").standard_normal((2, 8, 3, 5))
    ps = nd.pixel_shuffle(_t(x, "float64"), 2)
    expected = x.reshape(2, 2, 2, 2, 3, 5).transpose(0, 1, 4, 2, 5, 3).reshape(2, 2, 6, 10)
    np.testing.assert_array_equal(to_np(ps), expected)
    np.testing.assert_array_equal(to_np(nd.pixel_unshuffle(ps, 2)), x)
    np.testing.assert_array_equal(to_np(nd.pixel_shuffle(_t(x[0], "float64"), 2)), expected[0])
    cs = nd.channel_shuffle(_t(x, "float64"), 4)
    np.testing.assert_array_equal(to_np(cs), x.reshape(2, 4, 2, 3, 5).transpose(0, 2, 1, 3, 4).reshape(2, 8, 3, 5))
    if importlib.util.find_spec("torch"):
        import torch

        tx = torch.tensor(x)
        np.testing.assert_array_equal(to_np(ps), torch.nn.functional.pixel_shuffle(tx, 2).numpy())
        np.testing.assert_array_equal(to_np(cs), torch.nn.functional.channel_shuffle(tx, 4).numpy())
        np.testing.assert_array_equal(to_np(nd.pixel_unshuffle(_t(x, "float64"), 1)), torch.nn.functional.pixel_unshuffle(tx, 1).numpy())
