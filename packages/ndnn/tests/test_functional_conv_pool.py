"""nd.nn.functional convolutions and pooling: NumPy references, torch forward/backward, gradcheck, errors."""
from __future__ import annotations

import numpy as np
import pytest
from _nn_helpers import check_vs_torch, close, rng, t, tt

import ndcore as nd
import ndgrad
import ndnn.functional as F


def _np_conv(x, w, b, stride, padding, dilation, groups):
    """Direct N-d cross-correlation: out[n, o, p] = b[o] + sum_{c,k} w[o, c, k] x[n, g*Cg + c, p*s + k*d - pad]."""
    nsp = x.ndim - 2
    x = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    n, cin = x.shape[:2]
    cout, cg = w.shape[:2]
    ks = w.shape[2:]
    out_sp = [(x.shape[2 + i] - dilation[i] * (ks[i] - 1) - 1) // stride[i] + 1 for i in range(nsp)]
    out = np.zeros((n, cout, *out_sp))
    og = cout // groups
    for o in range(cout):
        g = o // og
        for kidx in np.ndindex(*ks):
            sl = tuple(slice(kidx[i] * dilation[i], kidx[i] * dilation[i] + stride[i] * (out_sp[i] - 1) + 1, stride[i])
                       for i in range(nsp))
            patch = x[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]
            out[:, o] += np.tensordot(patch, w[o][(slice(None),) + kidx], axes=([1], [0]))
        if b is not None:
            out[:, o] += b[o]
    return out


CONV_CASES = [
    # (dims, N, Cin, Cout, spatial, k, stride, padding, dilation, groups)
    (1, 2, 4, 6, (9,), 3, 2, 1, 1, 2),
    (2, 2, 3, 4, (7, 8), (3, 2), 1, (1, 0), 1, 1),
    (2, 1, 4, 4, (9, 9), 3, 2, 2, 2, 4),
    (3, 2, 2, 3, (4, 5, 5), 2, 1, 1, 1, 1),
]


def _conv_fn(dims):
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]


def _tup(v, n):
    return tuple(v) if isinstance(v, tuple) else (v,) * n


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_numpy(case):
    dims, n, cin, cout, sp, k, s, p, d, g = case
    r = rng(0)
    x = r.standard_normal((n, cin, *sp)).astype(np.float32)
    w = r.standard_normal((cout, cin // g, *_tup(k, dims))).astype(np.float32)
    b = r.standard_normal(cout).astype(np.float32)
    out = _conv_fn(dims)(t(x), t(w), t(b), s, p, d, g)
    ref = _np_conv(x.astype(np.float64), w.astype(np.float64), b, _tup(s, dims), _tup(p, dims), _tup(d, dims), g)
    close(out, ref.astype(np.float32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_backward_vs_torch(case):
    torch = pytest.importorskip("torch")
    dims, n, cin, cout, sp, k, s, p, d, g = case
    r = rng(1)
    x = r.standard_normal((n, cin, *sp)).astype(np.float32)
    w = r.standard_normal((cout, cin // g, *_tup(k, dims))).astype(np.float32)
    b = r.standard_normal(cout).astype(np.float32)
    tf = getattr(torch.nn.functional, f"conv{dims}d")
    check_vs_torch(lambda a, ww, bb: _conv_fn(dims)(a, ww, bb, s, p, d, g),
                   lambda a, ww, bb: tf(a, ww, bb, s, p, d, g), [x, w, b], grad=(0, 1, 2), rtol=1e-4, atol=1e-4)


def test_conv_gradcheck():
    r = rng(2)
    x = t(r.standard_normal((1, 2, 5, 4)), requires_grad=True)
    w = t(r.standard_normal((2, 1, 2, 3)), requires_grad=True)
    b = t(r.standard_normal(2), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, ww, bb: F.conv2d(a, ww, bb, stride=(2, 1), padding=1, groups=2), (x, w, b))


@pytest.mark.parametrize("k,dil", [(3, 1), (4, 1), (2, 3)])
def test_conv_padding_same_and_valid(k, dil):
    torch = pytest.importorskip("torch")
    r = rng(3)
    x = r.standard_normal((2, 3, 9, 10)).astype(np.float32)
    w = r.standard_normal((5, 3, k, k)).astype(np.float32)
    for mode in ("same", "valid"):
        out = check_vs_torch(lambda a, ww: F.conv2d(a, ww, padding=mode, dilation=dil),
                             lambda a, ww: torch.nn.functional.conv2d(a, ww, padding=mode, dilation=dil), [x, w],
                             grad=(0, 1), rtol=1e-4, atol=1e-4)
        if mode == "same":
            assert tuple(out.shape[2:]) == (9, 10)


def test_conv_unbatched_input():
    r = rng(4)
    x = r.standard_normal((3, 6, 6)).astype(np.float32)
    w = r.standard_normal((2, 3, 3, 3)).astype(np.float32)
    out = F.conv2d(t(x), t(w))
    assert tuple(out.shape) == (2, 4, 4)
    close(out, F.conv2d(t(x[None]), t(w))[0])


def test_conv_errors_name_shapes():
    x = t(np.zeros((8, 4, 32, 32), np.float32))
    w = t(np.zeros((16, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[conv2d\] expected input of shape \(N, C, H, W\) with C=3 "
                                         r"\(weight \(16, 3, 3, 3\), groups=1\), got \(8, 4, 32, 32\)"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match=r"\[conv2d\] expected 3D \(unbatched\) or 4D \(batched\) input"):
        F.conv2d(t(np.zeros((4, 32), np.float32)), w)
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        F.conv2d(t(np.zeros((1, 3, 5, 5), np.float32)), w, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string"):
        F.conv2d(t(np.zeros((1, 3, 5, 5), np.float32)), w, padding="full")


TRANSPOSE_CASES = [
    (1, (2, 4, 5), (4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    (2, (2, 4, 5, 4), (4, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0), groups=2)),
    (2, (1, 2, 3, 3), (2, 3, 2, 2), dict(stride=3, dilation=2, output_padding=1)),
    (3, (1, 2, 3, 3, 2), (2, 2, 2, 2, 2), dict(stride=2)),
]


@pytest.mark.parametrize("dims,xs,ws,kw", TRANSPOSE_CASES)
def test_conv_transpose_vs_torch(dims, xs, ws, kw):
    torch = pytest.importorskip("torch")
    r = rng(5)
    x = r.standard_normal(xs).astype(np.float32)
    w = r.standard_normal(ws).astype(np.float32)
    b = r.standard_normal(ws[1] * kw.get("groups", 1)).astype(np.float32)
    nf = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[dims]
    tf = getattr(torch.nn.functional, f"conv_transpose{dims}d")
    check_vs_torch(lambda a, ww, bb: nf(a, ww, bb, **kw), lambda a, ww, bb: tf(a, ww, bb, **kw), [x, w, b],
                   grad=(0, 1, 2), rtol=1e-4, atol=1e-4)


def test_conv_transpose_gradcheck():
    r = rng(6)
    x = t(r.standard_normal((1, 2, 3, 2)), requires_grad=True)
    w = t(r.standard_normal((2, 1, 2, 2)), requires_grad=True)
    assert ndgrad.gradcheck(lambda a, ww: F.conv_transpose2d(a, ww, stride=2, padding=1, output_padding=1), (x, w))


# ---------------------------------------------------------------- pooling

def _np_max_pool2d(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s])
    return out


def _np_avg_pool2d(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(k):
        for j in range(k):
            out += x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
    return out / (k * k)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 1), (3, 2)])
def test_pool2d_matches_numpy(k, s):
    x = rng(7).standard_normal((2, 3, 7, 8)).astype(np.float32)
    close(F.max_pool2d(t(x), k, s), _np_max_pool2d(x, k, s).astype(np.float32))
    close(F.avg_pool2d(t(x), k, s), _np_avg_pool2d(x.astype(np.float64), k, s).astype(np.float32), atol=1e-6)


POOL_CASES = [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (2, 3, 7, 8), dict(kernel_size=(3, 2), stride=(2, 1), padding=1, dilation=(1, 2))),
    ("max_pool2d", (3, 6, 6), dict(kernel_size=2)),
    ("max_pool3d", (1, 2, 5, 6, 5), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ("avg_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 7, 8), dict(kernel_size=2, divisor_override=3)),
    ("avg_pool3d", (1, 2, 5, 6, 5), dict(kernel_size=(2, 3, 2), stride=1, padding=(1, 1, 0))),
    ("adaptive_avg_pool1d", (2, 3, 10), dict(output_size=4)),
    ("adaptive_avg_pool2d", (2, 3, 7, 9), dict(output_size=(3, None))),
    ("adaptive_avg_pool3d", (1, 2, 5, 6, 7), dict(output_size=(2, 3, 4))),
    ("adaptive_max_pool1d", (2, 3, 10), dict(output_size=3)),
    ("adaptive_max_pool2d", (2, 3, 7, 9), dict(output_size=4)),
    ("adaptive_max_pool3d", (1, 2, 5, 6, 7), dict(output_size=2)),
    ("lp_pool1d", (2, 3, 9), dict(norm_type=2, kernel_size=3, stride=2)),
    ("lp_pool2d", (2, 3, 6, 8), dict(norm_type=1.5, kernel_size=2)),
]


@pytest.mark.parametrize("name,shape,kw", POOL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(POOL_CASES)])
def test_pool_vs_torch(name, shape, kw):
    torch = pytest.importorskip("torch")
    x = rng(8).standard_normal(shape).astype(np.float32)
    if name.startswith("lp"):
        x = np.abs(x) + 0.1  # fractional powers of negatives are NaN in both libraries
    check_vs_torch(lambda a: getattr(F, name)(a, **kw), lambda a: getattr(torch.nn.functional, name)(a, **kw), [x],
                   grad=(0,), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fn", [
    lambda a: F.max_pool2d(a, 2, 1),
    lambda a: F.avg_pool2d(a, 2, 1, padding=1, count_include_pad=False),
    lambda a: F.adaptive_avg_pool2d(a, (2, 3)),
    lambda a: F.adaptive_max_pool1d(a[0], 2),
    lambda a: F.lp_pool2d(a, 2, 2),
])
def test_pool_gradcheck(fn):
    x = rng(9).uniform(0.1, 2.0, size=(1, 2, 4, 5))
    x[..., 0, 0] += 0.5  # distinct maxima keep max pooling differentiable at the sample point
    assert ndgrad.gradcheck(fn, (t(x, requires_grad=True),))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_pool_indices_and_unpool_vs_torch(dims):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    shape = {1: (2, 3, 8), 2: (2, 3, 6, 8), 3: (1, 2, 4, 6, 4)}[dims]
    x = rng(10).standard_normal(shape).astype(np.float32)
    pool = getattr(F, f"max_pool{dims}d")
    unpool = getattr(F, f"max_unpool{dims}d")
    out, idx = pool(t(x), 2, return_indices=True)
    out_t, idx_t = getattr(tf, f"max_pool{dims}d")(torch.from_numpy(x), 2, return_indices=True)
    close(out, out_t)
    close(idx, idx_t)
    close(unpool(out, idx, 2), getattr(tf, f"max_unpool{dims}d")(out_t, idx_t, 2))
    big = tuple(s + 1 for s in shape[2:])
    close(unpool(out, idx, 2, output_size=big), getattr(tf, f"max_unpool{dims}d")(out_t, idx_t, 2, output_size=big))


def test_unpool_errors():
    out, idx = F.max_pool2d(t(np.zeros((1, 1, 4, 4), np.float32)), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"\[max_unpool2d\] invalid output_size"):
        F.max_unpool2d(out, idx, 2, output_size=(9, 9))
    with pytest.raises(ValueError, match="indices of shape"):
        F.max_unpool2d(out, idx[:, :, :1], 2)


def test_pool_rank_errors():
    with pytest.raises(ValueError, match=r"\[max_pool2d\] expected 3D \(unbatched\) or 4D \(batched\) input"):
        F.max_pool2d(t(np.zeros((4, 4), np.float32)), 2)
    with pytest.raises(ValueError, match=r"\[avg_pool1d\]"):
        F.avg_pool1d(t(np.zeros((1, 1, 1, 4), np.float32)), 2)


FRACTIONAL = [
    (2, (2, 3, 9, 11), 2, dict(output_size=(5, 4))),
    (2, (3, 10, 10), (3, 2), dict(output_size=(4, 6))),
    (2, (2, 2, 9, 8), 2, dict(output_ratio=(0.5, 0.4))),
    (3, (1, 2, 7, 8, 9), 2, dict(output_size=(3, 4, 5))),
]


@pytest.mark.parametrize("n,shape,k,kw", FRACTIONAL, ids=[f"frac{i}" for i in range(len(FRACTIONAL))])
def test_fractional_max_pool_vs_torch(n, shape, k, kw):
    torch = pytest.importorskip("torch")
    r = rng(11)
    x = r.standard_normal(shape).astype(np.float32)
    nb = 1 if len(shape) == n + 1 else shape[0]
    u = r.uniform(size=(nb, shape[-n - 1], n)).astype(np.float32)
    fn, tf = getattr(F, f"fractional_max_pool{n}d"), getattr(torch.nn.functional, f"fractional_max_pool{n}d")
    # the same random offsets give the same windows, values, indices and gradients
    check_vs_torch(lambda a, s: fn(a, k, **kw, _random_samples=s), lambda a, s: tf(a, k, **kw, _random_samples=s),
                   [x, u], grad=(0,))
    _, idx = fn(t(x), k, **kw, return_indices=True, _random_samples=t(u))
    _, idx_t = tf(tt(x), k, **kw, return_indices=True, _random_samples=tt(u))
    close(idx, idx_t)


def test_fractional_max_pool_windows_and_errors():
    nd.manual_seed(0)
    x = rng(12).standard_normal((2, 3, 10, 10))
    out, idx = F.fractional_max_pool2d(t(x), 2, output_size=5, return_indices=True)
    # every output is the max of the 2x2 window starting at its argmax's window
    flat = x.reshape(2, 3, -1)
    close(out, np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), 2).reshape(2, 3, 5, 5))
    assert ndgrad.gradcheck(lambda a: F.fractional_max_pool2d(a, 2, output_size=3, _random_samples=t(
        np.full((1, 2, 2), 0.3))), (t(x[:1, :2, :6, :6], requires_grad=True),))
    with pytest.raises(ValueError, match="requires specifying either an output_size or an output_ratio"):
        F.fractional_max_pool2d(t(x), 2)
    with pytest.raises(ValueError, match="is larger than the input size"):
        F.fractional_max_pool2d(t(x), 3, output_size=9)
