"""Convolution and pooling kernels (csrc/kernels/conv.cpp, pool.cpp) against direct-loop NumPy
references and torch when installed, over 1-3 spatial dims, batched/unbatched inputs, strides,
padding, dilation, groups, ceil_mode and non-contiguous layouts; gradients by gradcheck."""
from __future__ import annotations

import importlib.util
import itertools
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing.opdb import to_np

from _pool_refs import avg_pool_ref, max_pool_ref, pool_out_size  # noqa: F401

HAS_TORCH = importlib.util.find_spec("torch") is not None
OPS = {op.opname: op for op in OPDB}


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _close(actual, expected, opname, dtype):
    rtol, atol = OPS[opname].tol(dtype)
    actual = to_np(actual) if isinstance(actual, nd.Tensor) else actual
    assert actual.shape == np.shape(expected), (actual.shape, np.shape(expected))
    np.testing.assert_allclose(actual.astype(np.float64), np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol)


def _t(a, dtype="float32"):
    return nd.tensor(np.asarray(a)).to(getattr(nd, dtype))


def _per(v, d):
    return [v] * d if isinstance(v, int) else list(v)


# ---- NumPy references ---------------------------------------------------------------------

def conv_ref(x, w, b, stride, padding, dilation, groups):
    """Direct convolution: one strided slice of the padded input per kernel offset."""
    D = x.ndim - 2
    s, p, d = _per(stride, D), _per(padding, D), _per(dilation, D)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(q, q) for q in p])
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(D)]
    N, C, O = x.shape[0], x.shape[1], w.shape[0]
    out = np.zeros((N, O, *out_sp))
    cg, og = C // groups, O // groups
    for g in range(groups):
        for kidx in np.ndindex(*k):
            sl = tuple(slice(kidx[i] * d[i], kidx[i] * d[i] + s[i] * (out_sp[i] - 1) + 1, s[i]) for i in range(D))
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]
            out[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, w[(slice(g * og, (g + 1) * og), slice(None)) + kidx])
    if b is not None:
        out += b.reshape((1, -1) + (1,) * D)
    return out


def conv_transpose_ref(x, w, b, stride, padding, output_padding, groups, dilation):
    """Transposed convolution: each input element scatters weight * value, then the padding is cut."""
    D = x.ndim - 2
    s, p, op, d = _per(stride, D), _per(padding, D), _per(output_padding, D), _per(dilation, D)
    N, C = x.shape[:2]
    k = w.shape[2:]
    cg, og = C // groups, w.shape[1]
    full_sp = [(x.shape[2 + i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 + op[i] for i in range(D)]
    full = np.zeros((N, og * groups, *full_sp))
    for g in range(groups):
        for kidx in np.ndindex(*k):
            sl = tuple(slice(kidx[i] * d[i], kidx[i] * d[i] + s[i] * (x.shape[2 + i] - 1) + 1, s[i]) for i in range(D))
            full[(slice(None), slice(g * og, (g + 1) * og)) + sl] += np.einsum(
                "nc...,co->no...", x[:, g * cg:(g + 1) * cg].astype(np.float64), w[(slice(g * cg, (g + 1) * cg), slice(None)) + kidx])
    out = full[(slice(None), slice(None)) + tuple(slice(p[i], full_sp[i] - p[i]) for i in range(D))]
    if b is not None:
        out = out + b.reshape((1, -1) + (1,) * D)
    return out


def adaptive_ref(x, out_sp, reduce):
    D = len(out_sp)
    sp = x.shape[-D:]
    out = np.zeros(x.shape[:-D] + tuple(out_sp))
    idx = np.zeros(x.shape[:-D] + tuple(out_sp), np.int64)
    for o in np.ndindex(*out_sp):
        lo = [o[i] * sp[i] // out_sp[i] for i in range(D)]
        hi = [-(-(o[i] + 1) * sp[i] // out_sp[i]) for i in range(D)]
        win = x[(Ellipsis,) + tuple(slice(lo[i], hi[i]) for i in range(D))].astype(np.float64)
        flat = win.reshape(x.shape[:-D] + (-1,))
        if reduce == "avg":
            out[(Ellipsis,) + o] = flat.mean(-1)
        else:
            a = flat.argmax(-1)
            out[(Ellipsis,) + o] = np.take_along_axis(flat, a[..., None], -1)[..., 0]
            local = np.unravel_index(a, [hi[i] - lo[i] for i in range(D)])
            idx[(Ellipsis,) + o] = np.ravel_multi_index(tuple(local[i] + lo[i] for i in range(D)), sp)
    return out, idx


# ---- convolution --------------------------------------------------------------------------

# (dims, N (None: unbatched), C, O, spatial, kernel, stride, padding, dilation, groups, bias)
CONV_CASES = [
    (1, 2, 3, 4, (11,), (3,), 1, 0, 1, 1, True),
    (1, None, 4, 6, (9,), (2,), 2, 1, 2, 2, False),
    (2, 2, 3, 4, (9, 8), (3, 3), 1, 0, 1, 1, True),
    (2, 2, 4, 6, (9, 8), (3, 2), (2, 1), (1, 0), 1, 2, True),
    (2, 1, 3, 5, (10, 10), (7, 7), 2, 3, 1, 1, True),
    (2, 3, 6, 6, (9, 11), (3, 3), 1, 2, 2, 3, False),
    (2, 2, 4, 4, (7, 7), (1, 1), 1, 0, 1, 1, True),  # pointwise: one GEMM, no im2col
    (2, 2, 4, 8, (7, 7), (1, 1), 2, 0, 1, 1, False),
    (2, 2, 4, 4, (6, 6), (3, 3), 1, 1, 1, 4, True),  # depthwise: direct kernel, no GEMM
    (2, 3, 3, 6, (7, 8), (3, 2), (2, 1), 1, (1, 2), 3, True),  # depthwise with a channel multiplier
    (2, 2, 1, 3, (8, 7), (3, 3), 1, 0, 1, 1, True),  # one input channel: direct kernel
    (2, None, 3, 4, (6, 5), (3, 3), 1, 1, 1, 1, True),
    (2, 40, 2, 3, (5, 5), (3, 3), 1, 1, 1, 1, True),  # small planes: several samples per GEMM
    (3, 2, 2, 4, (5, 6, 4), (3, 2, 2), 1, 1, 1, 2, True),
    (3, None, 3, 2, (4, 5, 6), (2, 2, 3), (2, 1, 2), (0, 1, 1), (1, 2, 1), 1, False),
]


def _conv_inputs(case, dtype, transposed=False):
    dims, N, C, O, sp, k, s, p, d, g, bias = case
    rng = _rng("conv", case, dtype, transposed)
    shape = ((N,) if N else ()) + (C,) + sp
    x = rng.standard_normal(shape)
    w = rng.standard_normal((C, O // g) + k if transposed else (O, C // g) + k) / np.sqrt(C * np.prod(k))
    b = rng.standard_normal(O) if bias else None
    return x, w, b


def _fn(name):
    return getattr(nd, name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"c{i}" for i in range(len(CONV_CASES))])
def test_conv_matches_reference(case, dtype):
    dims, N, C, O, sp, k, s, p, d, g, bias = case
    x, w, b = _conv_inputs(case, dtype)
    xb = x if N else x[None]
    expected = conv_ref(xb, w, b, s, p, d, g)
    expected = expected if N else expected[0]
    out = _fn(f"conv{dims}d")(_t(x, dtype), _t(w, dtype), None if b is None else _t(b, dtype), s, p, d, g)
    assert out.dtype == getattr(nd, dtype)
    _close(out, expected, "convolution", dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[f"c{i}" for i in range(len(CONV_CASES))])
def test_conv_transpose_matches_reference(case, dtype):
    dims, N, C, O, sp, k, s, p, d, g, bias = case
    x, w, b = _conv_inputs(case, dtype, transposed=True)
    ks, ss, ps, ds = _per(k, dims), _per(s, dims), _per(p, dims), _per(d, dims)
    op = [min(1, max(si, di) - 1) for si, di in zip(ss, ds)]
    ps = [min(pi, (ki - 1) * di) for pi, ki, di in zip(ps, ks, ds)]  # keep the output non-empty
    xb = x if N else x[None]
    expected = conv_transpose_ref(xb, w, b, ss, ps, op, g, ds)
    expected = expected if N else expected[0]
    out = _fn(f"conv_transpose{dims}d")(_t(x, dtype), _t(w, dtype), None if b is None else _t(b, dtype), ss, ps, op, g, ds)
    _close(out, expected, "convolution", dtype)


def test_conv_non_contiguous_and_half_precision():
    rng = _rng("conv-layout")
    x = rng.standard_normal((3, 5, 9, 2))
    w = rng.standard_normal((4, 5, 3, 3)) / 6
    xt = _t(x).permute(3, 1, 2, 0)[:, :, ::2, :]  # (2, 5, 5, 3), strided
    expected = conv_ref(np.transpose(x, (3, 1, 2, 0))[:, :, ::2, :], w, None, 1, 1, 1, 1)
    _close(nd.conv2d(xt, _t(w), padding=1), expected, "convolution", "float32")
    for dtype in ("float16", "bfloat16"):
        out = nd.conv2d(xt.to(getattr(nd, dtype)), _t(w, dtype), padding=1)
        assert out.dtype == getattr(nd, dtype)
        _close(out, expected, "convolution", dtype)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (4, 1), (4, 2), ((2, 5), (3, 1))])
def test_conv_padding_strings(kernel, dilation):
    rng = _rng("same", kernel, dilation)
    x = rng.standard_normal((2, 3, 8, 9))
    k = _per(kernel, 2)
    w = rng.standard_normal((4, 3, *k))
    out = nd.conv2d(_t(x, "float64"), _t(w, "float64"), padding="same", dilation=dilation)
    assert tuple(out.shape) == (2, 4, 8, 9)
    d = _per(dilation, 2)
    total = [di * (ki - 1) for di, ki in zip(d, k)]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(t // 2, t - t // 2) for t in total])  # torch puts the odd element last
    _close(out, conv_ref(xp, w, None, 1, 0, d, 1), "convolution", "float64")
    valid = nd.conv2d(_t(x, "float64"), _t(w, "float64"), padding="valid", dilation=dilation)
    _close(valid, conv_ref(x, w, None, 1, 0, d, 1), "convolution", "float64")


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (0, 3, 5, 6, 8, 9, 10, 12, 13)], ids=lambda c: f"d{c[0]}-c{c[2]}-g{c[9]}")
def test_convolution_backward_matches_torch(case, transposed):
    torch = pytest.importorskip("torch")
    dims, N, C, O, sp, k, s, p, d, g, bias = case
    x, w, b = _conv_inputs(case, "float64", transposed)
    xb = x if N else x[None]
    ss, ds = _per(s, dims), _per(d, dims)
    op = [min(1, max(si, di) - 1) for si, di in zip(ss, ds)] if transposed else [0] * dims
    ps = [min(pi, (ki - 1) * di) for pi, ki, di in zip(_per(p, dims), _per(k, dims), ds)] if transposed else _per(p, dims)
    tx, tw = torch.tensor(xb, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if b is not None else None
    out = torch.ops.aten.convolution(tx, tw, tb, ss, ps, ds, transposed, op, g)
    go = _rng("go", case).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(go))
    gi, gw, gb = nd.convolution_backward(_t(go, "float64"), _t(xb, "float64"), _t(w, "float64"), ss, ps, ds, transposed, op, g, [1, 1, 1])
    _close(gi, tx.grad.numpy(), "convolution_backward", "float64")
    _close(gw, tw.grad.numpy(), "convolution_backward", "float64")
    if b is not None:
        _close(gb, tb.grad.numpy(), "convolution_backward", "float64")
    only_w = nd.convolution_backward(_t(go, "float64"), _t(xb, "float64"), _t(w, "float64"), ss, ps, ds, transposed, op, g, [0, 1, 0])
    assert only_w[0] is None and only_w[2] is None
    _close(only_w[1], tw.grad.numpy(), "convolution_backward", "float64")
    fwd = nd.convolution(_t(xb, "float64"), _t(w, "float64"), None if b is None else _t(b, "float64"), ss, ps, ds, transposed, op, g)
    _close(fwd, out.detach().numpy(), "convolution", "float64")


def test_conv7x7_stem_matches_torch():
    torch = pytest.importorskip("torch")
    rng = _rng("stem")
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    w = (rng.standard_normal((16, 3, 7, 7)) / 10).astype(np.float32)
    out = nd.conv2d(_t(x), _t(w), None, 2, 3)
    _close(out, torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), None, 2, 3).numpy(), "convolution", "float32")


# (name, fn, input shape, weight shape, out channels)
CONV_GRAD = [
    ("conv1d", lambda x, w, b: nd.conv1d(x, w, b, stride=2, padding=1, dilation=2), (2, 4, 9), (4, 4, 3), 4),
    ("conv1d_unbatched", lambda x, w, b: nd.conv1d(x[0], w, b, padding=1), (2, 4, 9), (3, 4, 3), 3),
    ("conv2d_groups", lambda x, w, b: nd.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2), (2, 4, 5, 4), (6, 2, 3, 2), 6),
    ("conv2d_pointwise", lambda x, w, b: nd.conv2d(x, w, b), (2, 3, 3, 4), (5, 3, 1, 1), 5),
    ("conv2d_depthwise", lambda x, w, b: nd.conv2d(x, w, b, stride=2, padding=1, groups=3), (2, 3, 5, 4), (6, 1, 3, 2), 6),
    ("conv2d_same_even", lambda x, w, b: nd.conv2d(x, w, b, padding="same"), (1, 2, 5, 5), (3, 2, 2, 4), 3),
    ("conv3d", lambda x, w, b: nd.conv3d(x, w, b, padding=(1, 0, 1)), (1, 2, 3, 4, 3), (3, 2, 2, 2, 2), 3),
    ("conv_transpose2d", lambda x, w, b: nd.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
     (2, 4, 3, 3), (4, 1, 3, 3), 2),
    ("conv_transpose1d_dil", lambda x, w, b: nd.conv_transpose1d(x, w, b, stride=3, dilation=2), (2, 2, 4), (2, 3, 2), 3),
]


@pytest.mark.parametrize("name,fn,xs,ws,oc", [CONV_GRAD[i] for i in (1, 2, 4, 6, 7)], ids=[CONV_GRAD[i][0] for i in (1, 2, 4, 6, 7)])
def test_conv_double_backward(name, fn, xs, ws, oc):
    ndgrad = pytest.importorskip("ndgrad")
    rng = _rng("gradgradcheck", name)
    x, w = (nd.tensor(rng.standard_normal(s), dtype=nd.float64, requires_grad=True) for s in (xs, ws))
    b = nd.tensor(rng.standard_normal(oc), dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradgradcheck(fn, (x, w, b))


@pytest.mark.parametrize("name,fn,xs,ws,oc", CONV_GRAD, ids=[c[0] for c in CONV_GRAD])
def test_conv_gradcheck(name, fn, xs, ws, oc):
    ndgrad = pytest.importorskip("ndgrad")
    rng = _rng("gradcheck", name)
    x = nd.tensor(rng.standard_normal(xs), dtype=nd.float64, requires_grad=True)
    w = nd.tensor(rng.standard_normal(ws), dtype=nd.float64, requires_grad=True)
    b = nd.tensor(rng.standard_normal(oc), dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(fn, (x, w, b))


CONV_ERRORS = [
    (lambda: nd.conv2d(nd.zeros(8, 4, 32, 32), nd.zeros(6, 3, 3, 3)), r"\[conv2d\].*C=3.*\(8, 4, 32, 32\)"),
    (lambda: nd.conv2d(nd.zeros(2, 4, 8, 8), nd.zeros(6, 2, 3, 3), groups=3), r"\[conv2d\].*groups"),
    (lambda: nd.conv2d(nd.zeros(2, 4, 8, 8), nd.zeros(5, 2, 3, 3), groups=2), r"\[conv2d\].*divisible by groups"),
    (lambda: nd.conv2d(nd.zeros(1, 1, 4, 4), nd.zeros(1, 1, 7, 7)), r"\[conv2d\].*greater than the padded input size \(4, 4\)"),
    (lambda: nd.conv2d(nd.zeros(1, 1, 4, 4), nd.zeros(1, 1, 3, 3), stride=2, padding="same"), r"\[conv2d\].*strided"),
    (lambda: nd.conv2d(nd.zeros(1, 1, 4, 4), nd.zeros(1, 1, 3, 3), stride=(1, 1, 1)), r"\[conv2d\].*stride"),
    (lambda: nd.conv2d(nd.zeros(4, 4), nd.zeros(1, 1, 3, 3)), r"\[conv2d\].*3D \(unbatched\) or 4D"),
    (lambda: nd.conv2d(nd.zeros(1, 1, 4, 4), nd.zeros(1, 1, 3, 3, dtype=nd.float64)), r"\[conv2d\].*same"),
    (lambda: nd.conv2d(nd.zeros(1, 1, 4, 4), nd.zeros(1, 1, 3, 3), nd.zeros(2)), r"\[conv2d\].*bias"),
    (lambda: nd.conv_transpose2d(nd.zeros(1, 2, 4, 4), nd.zeros(2, 1, 3, 3), stride=2, output_padding=2), r"output padding"),
    (lambda: nd.conv2d(nd.zeros(1, 1, 4, 4, dtype=nd.int64), nd.zeros(1, 1, 3, 3, dtype=nd.int64)), r"floating"),
]


@pytest.mark.parametrize("fn,pattern", CONV_ERRORS, ids=[f"e{i}" for i in range(len(CONV_ERRORS))])
def test_conv_errors(fn, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        fn()


# ---- pooling ------------------------------------------------------------------------------

# (dims, shape, kernel, stride, padding, dilation, ceil_mode)
POOL_CASES = [
    (1, (2, 3, 11), (3,), (2,), (1,), (1,), False),
    (1, (3, 10), (2,), (3,), (0,), (2,), True),
    (2, (2, 3, 9, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    (2, (2, 3, 10, 9), (3, 3), (2, 2), (1, 1), (1, 1), True),
    (2, (3, 7, 9), (3, 2), (1, 2), (1, 1), (2, 1), False),
    (2, (1, 2, 6, 6), (3, 3), (3, 3), (1, 1), (1, 1), True),
    (3, (2, 2, 5, 6, 4), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 1), True),
    (3, (2, 4, 5, 6), (2, 2, 2), (1, 2, 1), (0, 0, 1), (2, 1, 1), False),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int64"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[f"p{i}" for i in range(len(POOL_CASES))])
def test_max_pool_matches_reference(case, dtype):
    dims, shape, k, s, p, d, ceil = case
    rng = _rng("maxpool", case, dtype)
    x = rng.standard_normal(shape) * 50 if dtype.startswith("float") else rng.integers(0, 255, shape)
    x = x.astype(dtype)
    exp_v, exp_i = max_pool_ref(x, k, s, p, d, ceil)
    out, idx = getattr(nd, f"max_pool{dims}d_with_indices")(_t(x, dtype), k, s, p, d, ceil)
    assert out.dtype == getattr(nd, dtype) and idx.dtype == nd.int64
    np.testing.assert_array_equal(to_np(out), exp_v.astype(dtype))
    if dtype.startswith("float"):  # integer ties may pick any equal element; floats here are distinct
        np.testing.assert_array_equal(to_np(idx), exp_i)
    plain = getattr(nd, f"max_pool{dims}d")(_t(x, dtype), k, s, p, d, ceil)
    np.testing.assert_array_equal(to_np(plain), exp_v.astype(dtype))


def test_max_pool_nan_and_defaults():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    out, idx = nd.max_pool2d_with_indices(_t(x), 2)
    assert np.isnan(to_np(out)[0, 0, 0, 0]) and to_np(idx)[0, 0, 0, 0] == 4
    np.testing.assert_array_equal(to_np(nd.max_pool2d(_t(x), 2, stride=None))[0, 0, 1], [13, 15])


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"p{i}" for i in range(len(POOL_CASES))])
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool_matches_reference(case, include_pad):
    dims, shape, k, s, p, d, ceil = case
    p = tuple(min(pi, ki // 2) for pi, ki in zip(p, k))
    x = _rng("avgpool", case).standard_normal(shape)
    for dtype in ("float32", "float64"):
        out = getattr(nd, f"avg_pool{dims}d")(_t(x, dtype), k, s, p, ceil, include_pad)
        _close(out, avg_pool_ref(x, k, s, p, ceil, include_pad), f"avg_pool{dims}d", dtype)
    if dims > 1:
        out = getattr(nd, f"avg_pool{dims}d")(_t(x, "float64"), k, s, p, ceil, include_pad, 3)
        _close(out, avg_pool_ref(x, k, s, p, ceil, include_pad, 3), f"avg_pool{dims}d", "float64")


@pytest.mark.parametrize("dims,shape,out", [(1, (2, 3, 10), (4,)), (2, (2, 3, 7, 9), (3, 4)), (2, (3, 5, 5), (5, 2)),
                                            (2, (1, 2, 4, 6), (8, 1)), (3, (2, 2, 5, 4, 6), (2, 3, 4))])
def test_adaptive_pools_match_reference(dims, shape, out):
    x = _rng("adaptive", shape).standard_normal(shape)
    exp_avg, _ = adaptive_ref(x, out, "avg")
    exp_max, exp_idx = adaptive_ref(x, out, "max")
    for dtype in ("float32", "float64"):
        _close(getattr(nd, f"adaptive_avg_pool{dims}d")(_t(x, dtype), out), exp_avg, f"_adaptive_avg_pool{max(dims, 2)}d", dtype)
        v, i = getattr(nd, f"adaptive_max_pool{dims}d")(_t(x, dtype), out)
        _close(v, exp_max, f"adaptive_max_pool{max(dims, 2)}d", dtype)
        np.testing.assert_array_equal(to_np(i), exp_idx)
    if dims == 2:  # None keeps the input size
        _close(nd.adaptive_avg_pool2d(_t(x, "float64"), (None, out[1])), adaptive_ref(x, (shape[-2], out[1]), "avg")[0],
               "_adaptive_avg_pool2d", "float64")


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_inverts_max_pool(dims):
    shape = (2, 3) + (6, 7, 4)[:dims]
    x = _rng("unpool", dims).standard_normal(shape)
    k = [2] * dims
    out, idx = getattr(nd, f"max_pool{dims}d_with_indices")(_t(x, "float64"), k)
    size = list(shape[2:])
    args = (size, [2] * dims, [0] * dims) if dims == 3 else (size,)
    up = getattr(nd, f"max_unpool{dims}d")(out, idx, *args)
    expected = np.zeros(shape)
    flat = expected.reshape(shape[:2] + (-1,))
    np.put_along_axis(flat, to_np(idx).reshape(shape[:2] + (-1,)), to_np(out).reshape(shape[:2] + (-1,)), -1)
    np.testing.assert_array_equal(to_np(up), expected)


POOL_GRAD = [
    ("max_pool1d", lambda x: nd.max_pool1d(x[0], 3, 2, 1)),
    ("max_pool2d", lambda x: nd.max_pool2d(x, (2, 3), (2, 1), (1, 1), ceil_mode=True)),
    ("max_pool2d_dilated", lambda x: nd.max_pool2d(x, 2, 1, 0, 2)),
    ("max_pool3d", lambda x: nd.max_pool3d(x.unsqueeze(2).expand(2, 3, 2, 5, 6) * nd.tensor([1.0, 1.5]).reshape(2, 1, 1), 2)),
    ("avg_pool1d", lambda x: nd.avg_pool1d(x[0], 3, 2, 1, True, False)),
    ("avg_pool2d", lambda x: nd.avg_pool2d(x, 3, 2, 1, True, True)),
    ("avg_pool2d_divisor", lambda x: nd.avg_pool2d(x, 2, 1, 1, False, False, 3)),
    ("avg_pool3d", lambda x: nd.avg_pool3d(x.unsqueeze(1), (2, 2, 3), 1, (1, 0, 1))),
    ("adaptive_avg_pool1d", lambda x: nd.adaptive_avg_pool1d(x[:, 0], 4)),
    ("adaptive_avg_pool2d", lambda x: nd.adaptive_avg_pool2d(x, (3, 4))),
    ("adaptive_avg_pool3d", lambda x: nd.adaptive_avg_pool3d(x.unsqueeze(1), (1, 2, 4))),
    ("adaptive_max_pool1d", lambda x: nd.adaptive_max_pool1d(x[:, 1], 3)[0]),
    ("adaptive_max_pool2d", lambda x: nd.adaptive_max_pool2d(x, (2, 4))[0]),
    ("adaptive_max_pool3d", lambda x: nd.adaptive_max_pool3d(x.unsqueeze(1), (1, 3, 2))[0]),
    ("max_unpool2d", lambda x: nd.max_unpool2d(x[:, :, :2, :3], nd.tensor([[[[0, 7, 2], [13, 20, 29]]] * 3] * 2), [5, 6])),
]


@pytest.mark.parametrize("name,fn", POOL_GRAD, ids=[c[0] for c in POOL_GRAD])
def test_pool_gradcheck(name, fn):
    ndgrad = pytest.importorskip("ndgrad")
    x = nd.tensor(_rng("poolgrad", name).permutation(180).reshape(2, 3, 5, 6) / 7.0, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradcheck(fn, (x,))


def test_max_pool_double_backward():
    ndgrad = pytest.importorskip("ndgrad")
    x = nd.tensor(_rng("pool-gg").permutation(48).reshape(1, 3, 4, 4) / 5.0, dtype=nd.float64, requires_grad=True)
    assert ndgrad.gradgradcheck(lambda t: nd.max_pool2d(t, 2, 1), (x,))


POOL_TORCH = [
    ("max_pool2d", lambda m, x: m.nn.functional.max_pool2d(x, 3, 2, 1, 1, True, True) if m.__name__ == "torch"
     else nd.max_pool2d_with_indices(x, [3], [2], [1], [1], True)),
    ("avg_pool2d", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).avg_pool2d(x, (3, 2), (2, 1), (1, 1), True, False)),
    ("avg_pool3d", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).avg_pool3d(x, 2, 1, 1, False, True, 5)),
    ("adaptive_max_pool2d", lambda m, x: (m.nn.functional.adaptive_max_pool2d(x, (3, 5), True) if m.__name__ == "torch"
                                          else nd.adaptive_max_pool2d(x, (3, 5)))),
    ("adaptive_avg_pool3d", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).adaptive_avg_pool3d(x, (2, 3, 5))),
]


@pytest.mark.parametrize("name,fn", POOL_TORCH, ids=[c[0] for c in POOL_TORCH])
def test_pools_and_gradients_match_torch(name, fn):
    torch = pytest.importorskip("torch")
    shape = (2, 3, 4, 7, 9) if name.endswith("3d") else (2, 3, 7, 9)
    x = _rng("pooltorch", name).standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    theirs = fn(torch, tx)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    ours = fn(nd, _t(x, "float64"))
    for a, b in zip(ours if isinstance(ours, tuple) else (ours,), theirs):
        np.testing.assert_allclose(to_np(a), b.detach().numpy(), rtol=1e-12, atol=1e-12)
    if importlib.util.find_spec("ndgrad") is None:
        return
    import ndgrad  # noqa: F401  (records the graph)

    go = _rng("pooltorch-go", name).standard_normal(tuple(theirs[0].shape))
    theirs[0].backward(torch.tensor(go))
    leaf = _t(x, "float64").requires_grad_(True)
    out = fn(nd, leaf)
    (out[0] if isinstance(out, tuple) else out).backward(_t(go, "float64"))
    np.testing.assert_allclose(to_np(leaf.grad), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


POOL_ERRORS = [
    (lambda: nd.max_pool2d(nd.zeros(1, 1, 4, 4), 3, 1, 2), r"\[max_pool2d\].*pad should be at most half"),
    (lambda: nd.avg_pool2d(nd.zeros(1, 1, 4, 4), [3], [1], [2]), r"\[avg_pool2d\].*pad should be at most half"),
    (lambda: nd.max_pool2d(nd.zeros(1, 1, 2, 2), 3), r"\[max_pool2d\].*too small"),
    (lambda: nd.max_pool2d(nd.zeros(4, 4), 2), r"\[max_pool2d\].*3D \(unbatched\) or 4D"),
    (lambda: nd.max_pool2d(nd.zeros(1, 1, 4, 4), (2, 2, 2)), r"\[max_pool2d\].*kernel_size"),
    (lambda: nd.max_pool2d(nd.zeros(1, 1, 4, 4), 2, 0), r"\[max_pool2d\].*stride"),
    (lambda: nd.avg_pool2d(nd.zeros(1, 1, 4, 4), [2], [], [], False, True, 0), r"\[avg_pool2d\].*divisor"),
    (lambda: nd.avg_pool2d(nd.zeros(1, 1, 4, 4, dtype=nd.uint8), [2]), r"\[avg_pool2d\].*floating"),
    (lambda: nd.adaptive_avg_pool2d(nd.zeros(1, 1, 4, 4), (1, 2, 3)), r"\[adaptive_avg_pool2d\].*2 elements"),
    (lambda: nd.max_unpool2d(nd.zeros(1, 1, 2, 2), nd.full((1, 1, 2, 2), 9, dtype=nd.int64), [3, 3]), r"\[max_unpool2d\].*invalid"),
    (lambda: nd.max_pool2d(nd.zeros(1, 1, 4, 4, dtype=nd.bool), 2), r"\[max_pool2d\].*bool"),
]


@pytest.mark.parametrize("fn,pattern", POOL_ERRORS, ids=[f"e{i}" for i in range(len(POOL_ERRORS))])
def test_pool_errors(fn, pattern):
    with pytest.raises((ValueError, TypeError, IndexError), match=pattern):
        fn()


def test_pool_empty_batch_and_non_contiguous():
    out = nd.max_pool2d(nd.zeros(0, 3, 4, 4), 2)
    assert tuple(out.shape) == (0, 3, 2, 2)
    x = _rng("nc-pool").standard_normal((4, 5, 3, 2))
    xt = _t(x, "float64").permute(3, 2, 0, 1)  # (2, 3, 4, 5) strided
    xn = np.transpose(x, (3, 2, 0, 1))
    np.testing.assert_array_equal(to_np(nd.max_pool2d(xt, 2, 1)), max_pool_ref(xn, (2, 2), (1, 1), (0, 0), (1, 1), False)[0])
    _close(nd.avg_pool2d(xt, [2], [1]), avg_pool_ref(xn, (2, 2), (1, 1), (0, 0), False, True), "avg_pool2d", "float64")


def test_all_pool_combinations_match_torch_quickly():
    torch = pytest.importorskip("torch")
    x = _rng("combo").standard_normal((1, 2, 7, 6))
    for k, s, p, d, ceil in itertools.product((2, 3), (1, 2), (0, 1), (1, 2), (False, True)):
        if p > ((k - 1) * d + 1) // 2:
            continue
        ours = nd.max_pool2d_with_indices(_t(x, "float64"), [k], [s], [p], [d], ceil)
        theirs = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, d, ceil, True)
        np.testing.assert_array_equal(to_np(ours[0]), theirs[0].numpy())
        np.testing.assert_array_equal(to_np(ours[1]), theirs[1].numpy())
        if p <= k // 2:
            for cip in (False, True):
                a = nd.avg_pool2d(_t(x, "float64"), [k], [s], [p], ceil, cip)
                b = torch.nn.functional.avg_pool2d(torch.tensor(x), k, s, p, ceil, cip)
                np.testing.assert_allclose(to_np(a), b.numpy(), rtol=1e-12, atol=1e-12)


# Every row of the table's "nn: convolution, pooling, spatial" section, each exercised by name in
# this file or test_nn_kernels_spatial.py (backward rows through their forward's gradcheck).
K1_ROWS = [
    "convolution", "convolution_backward", "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "avg_pool2d_backward", "avg_pool3d_backward", "_adaptive_avg_pool2d", "_adaptive_avg_pool3d",
    "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward", "max_unpool2d", "max_unpool3d", "im2col", "col2im",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
    "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d",
    "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "grid_sampler_2d", "grid_sampler_2d_backward", "grid_sampler_3d", "grid_sampler_3d_backward",
]
# Backward rows reached through a forward op's formula (checked by the gradchecks above).
_VIA_FORMULA = {"max_pool2d_with_indices_backward": "max_pool2d", "max_pool3d_with_indices_backward": "max_pool3d",
                "avg_pool2d_backward": "avg_pool2d", "avg_pool3d_backward": "avg_pool3d",
                "_adaptive_avg_pool2d_backward": "adaptive_avg_pool2d", "_adaptive_avg_pool3d_backward": "adaptive_avg_pool3d",
                "adaptive_max_pool2d_backward": "adaptive_max_pool2d", "adaptive_max_pool3d_backward": "adaptive_max_pool3d"}


def test_every_row_of_the_section_is_tested():
    import pathlib

    here = pathlib.Path(__file__).parent
    text = (here / "test_nn_kernels.py").read_text() + (here / "test_nn_kernels_spatial.py").read_text()
    names = {op.opname for op in OPDB}
    for row in K1_ROWS:
        assert row in names, f"{row} is not in the op table"
        probe = _VIA_FORMULA.get(row, row.lstrip("_"))
        assert probe in text, f"{row} has no test"
        if not row.endswith("_backward"):
            assert OPS[row].differentiable, f"{row} should have a derivative formula"
    for pad in ("reflection", "replication"):  # their backward rows run in test_padding_gradcheck via the kind name
        assert all(f"{pad}_pad{d}d_backward" in names for d in (1, 2, 3))


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_grid_sampler_double_backward(mode):
    # grid_sampler_2d_backward differentiates ndgrad's composite sampler (the pooling/upsample/pad
    # backward rows: ndnn/tests/test_double_backward.py)
    ndgrad = pytest.importorskip("ndgrad")
    r = _rng("gg", "grid_sampler_2d")
    x = nd.tensor(r.standard_normal((1, 2, 4, 4)), dtype=nd.float64, requires_grad=True)
    grid = nd.tensor(r.uniform(-1.1, 1.1, (1, 3, 2, 2)), dtype=nd.float64, requires_grad=mode != 1)
    inputs = (x, grid) if mode != 1 else (x,)
    assert ndgrad.gradgradcheck(lambda a, b=grid: nd.grid_sampler_2d(a, b, mode, 1, False), inputs)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 9), (4, 5, 24, 24), (5, 6, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_fast_path_ties_and_nans(shape, dtype):
    """The 2x2/stride-2 path: the first maximum wins a tie, NaN wins over numbers (the last NaN,
    as torch's `val > max || isnan(val)` scan), odd edges are dropped (no ceil_mode)."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal(shape).astype(dtype)
    a[..., 1::3, ::2] = 1.0  # ties inside windows
    a.reshape(-1)[:2] = np.nan
    y, idx = nd.max_pool2d_with_indices(nd.tensor(a), [2, 2], [2, 2])
    h, w = shape[-2] // 2, shape[-1] // 2
    win = a[..., :2 * h, :2 * w].reshape(shape[:-2] + (h, 2, w, 2)).swapaxes(-3, -2).reshape(shape[:-2] + (h, w, 4))
    first = np.where(np.isnan(win).any(-1), 3 - np.argmax(np.isnan(win[..., ::-1]), -1), np.argmax(win, -1))
    rows = np.arange(h)[:, None] * 2 + first // 2
    cols = np.arange(w)[None, :] * 2 + first % 2
    np.testing.assert_array_equal(idx.numpy(), rows * shape[-1] + cols)
    expected = np.take_along_axis(win, first[..., None], -1)[..., 0]
    np.testing.assert_array_equal(y.numpy(), expected)
