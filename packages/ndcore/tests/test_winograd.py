"""Winograd F(2x2, 3x3) convolution (csrc/kernels/winograd.cpp): the float32 3x3 stride-1 path of
conv2d and of its input gradient, against float64 NumPy references (and torch for autograd).
Shapes cover tile edges (odd/even sizes 1..9), padding 0..3, N=1 and N>1, channel and tile counts
around the thresholds below which the kernel declines (im2col then runs), both input-transform
paths (narrow images via a padded copy, wide ones in place), one and two threads, blocks split
over output channels, non-contiguous inputs, non-finite values (which make the kernel fall back
to im2col for direct-conv semantics), every ISA variant, and the accuracy bar on the ResNet-18
layers (within 4x of float32 im2col + GEMM)."""
from __future__ import annotations

import itertools
import json
import os
import pathlib
import subprocess
import sys
import zlib

import numpy as np
import pytest

import ndcore as nd


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def conv_ref(x, w, b, padding):
    """Float64 direct 2-D cross-correlation, stride 1: one slice of the padded input per tap."""
    p = padding
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (p, p), (p, p)])
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for kh, kw in itertools.product(range(3), range(3)):
        out += np.einsum("nchw,oc->nohw", xp[:, :, kh:kh + oh, kw:kw + ow], w[:, :, kh, kw].astype(np.float64))
    if b is not None:
        out += b.astype(np.float64).reshape(1, -1, 1, 1)
    return out


def grad_input_ref(gy, w, padding, hw):
    """Float64 input gradient of conv_ref: gy padded by 2 (full correlation) with the kernel flipped
    and its channel roles swapped, then the padding cropped off."""
    full = conv_ref(gy, np.flip(w, (2, 3)).transpose(1, 0, 2, 3), None, 2)
    p = padding
    return full[:, :, p:p + hw[0], p:p + hw[1]]


def _data(key, n, c, o, h, w, scale=None):
    r = _rng(*key)
    x = r.standard_normal((n, c, h, w)).astype(np.float32)
    s = np.sqrt(2.0 / (9 * c)) if scale is None else scale  # kaiming: outputs of order 1
    wt = (r.standard_normal((o, c, 3, 3)) * s).astype(np.float32)
    b = r.standard_normal(o).astype(np.float32)
    return x, wt, b


def _fwd(x, w, b, p):
    return nd.conv2d(nd.tensor(x), nd.tensor(w), None if b is None else nd.tensor(b), 1, p).numpy()


def _bwd(gy, x, w, p):
    gi = nd.convolution_backward(nd.tensor(gy), nd.tensor(x), nd.tensor(w), [1, 1], [p, p], [1, 1], False, [0, 0], 1,
                                 [1, 0, 0])[0]
    return gi.numpy()


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = nd.get_num_threads()
    nd.set_num_threads(request.param)
    yield request.param
    nd.set_num_threads(old)


# Input sizes 1..9 and outputs 1..11 (odd and even: partial last tiles) with padding 0..2, channel
# counts at and around the threshold of 64, batch 1 to 3, and the tile-count thresholds for wide
# layers.
EDGE_CASES = [
    # (N, Cin, Cout, H, W, padding)
    *[(2, 64, 64, h, w, p) for h, w, p in [(1, 1, 1), (2, 3, 1), (3, 3, 0), (4, 5, 2), (5, 4, 0), (6, 6, 1), (7, 9, 2),
                                           (8, 8, 0), (9, 7, 1), (3, 8, 2), (5, 5, 1), (6, 9, 0), (4, 4, 0)]],
    (1, 64, 64, 9, 9, 0),
    (3, 64, 65, 6, 7, 1),
    (1, 63, 64, 8, 8, 1),    # Cin below the threshold: im2col
    (1, 64, 63, 8, 8, 1),    # Cout below the threshold: im2col
    (2, 65, 96, 11, 13, 2),
    (1, 64, 80, 9, 8, 0),
    (1, 64, 64, 3, 3, 1),    # output below 4x4: im2col
    (1, 64, 64, 3, 3, 3),    # padding wider than the kernel
    (1, 64, 64, 37, 41, 1),  # several tile blocks for one image (>= 16 tiles wide: the in-place path)
    (3, 64, 64, 28, 20, 1),  # narrow images (the padded-copy path), blocks ending mid-row
    (1, 128, 128, 16, 16, 1),  # one block (64 tiles): split over output channels with 2 threads
    (1, 128, 128, 14, 14, 1),  # 49 tiles, too few for 128x128 channels: im2col
]


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_forward_matches_float64(case, bias, threads):
    n, c, o, h, w, p = case
    x, wt, b = _data(("fwd",) + case, n, c, o, h, w)
    b = b if bias else None
    np.testing.assert_allclose(_fwd(x, wt, b, p), conv_ref(x, wt, b, p), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: "x".join(map(str, c)))
def test_backward_input_matches_float64(case, threads):
    n, c, o, h, w, p = case
    x, wt, _ = _data(("bwd",) + case, n, c, o, h, w)
    oh, ow = h + 2 * p - 2, w + 2 * p - 2
    if oh < 1 or ow < 1:
        pytest.skip("empty output")
    gy = _rng("gy", *case).standard_normal((n, o, oh, ow)).astype(np.float32)
    np.testing.assert_allclose(_bwd(gy, x, wt, p), grad_input_ref(gy, wt, p, (h, w)), rtol=1e-5, atol=2e-5)


def test_backward_input_padding_above_two_falls_back():
    # padding 3 would need a negative padding for the gradient conv: the kernel declines it
    x, wt, _ = _data(("pad3",), 1, 64, 64, 6, 5)
    gy = _rng("gy3").standard_normal((1, 64, 10, 9)).astype(np.float32)
    np.testing.assert_allclose(_bwd(gy, x, wt, 3), grad_input_ref(gy, wt, 3, (6, 5)), rtol=1e-5, atol=2e-5)


def test_non_contiguous_input():
    r = _rng("noncontig")
    base = r.standard_normal((2, 128, 24, 17)).astype(np.float32)
    wt = (r.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    x = nd.tensor(base)[:, ::2, :, 1:].transpose(2, 3)  # (2, 64, 16, 24): every stride uneven
    assert not x.is_contiguous()
    xn = base[:, ::2, :, 1:].transpose(0, 1, 3, 2)
    out = nd.conv2d(x, nd.tensor(wt), None, 1, 1).numpy()
    np.testing.assert_allclose(out, conv_ref(xn, wt, None, 1), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_give_direct_conv_semantics(value):
    # Winograd mixes a tile's inputs, so it would spread NaN/inf further than direct conv (and
    # turn inf into NaN); the kernel detects it and im2col recomputes the whole output.
    x, wt, b = _data(("nonfinite", str(value)), 2, 64, 64, 8, 9)
    x[0, 3, 2, 5] = value
    x[1, 0, 7, 0] = value
    got, want = _fwd(x, wt, b, 1), conv_ref(x, wt, b, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=2e-5)
    gy = _rng("gy-nonfinite").standard_normal(got.shape).astype(np.float32)
    wt2 = wt.copy()
    wt2[3, 5, 1, 2] = value
    gi, gref = _bwd(gy, x, wt2, 1), grad_input_ref(gy, wt2, 1, x.shape[2:])
    np.testing.assert_array_equal(np.isnan(gi), np.isnan(gref))
    np.testing.assert_array_equal(np.isinf(gi), np.isinf(gref))


def im2col_gemm(x, w, padding):
    """im2col + one GEMM in x's dtype: the algorithm of conv.cpp's general path (float32: sgemm)."""
    p = padding
    win = np.lib.stride_tricks.sliding_window_view(np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)]), (3, 3), axis=(2, 3))
    n, c, oh, ow = win.shape[:4]
    cols = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3).reshape(c * 9, n * oh * ow))
    return (w.reshape(w.shape[0], -1) @ cols).reshape(w.shape[0], n, oh, ow).transpose(1, 0, 2, 3)


# The 3x3 stride-1 layers of ResNet-18 with kaiming-scaled weights, and the same shapes with
# N(0, 1) weights; batches just large enough for the kernel to take them.
RESNET_LAYERS = [(1, 64, 56), (1, 128, 28), (2, 256, 14), (8, 512, 7)]


@pytest.mark.parametrize("n,c,s", RESNET_LAYERS, ids=lambda v: str(v))
@pytest.mark.parametrize("scale", [None, 1.0], ids=["kaiming", "unit"])
def test_resnet_layers_accuracy_vs_im2col(n, c, s, scale):
    # The bar: Winograd's max error against float64 stays within 4x that of float32 im2col + GEMM
    # (measured 0.5-1.5x), forward and input gradient.
    x, wt, _ = _data(("resnet", c, s, str(scale)), n, c, c, s, s, scale)
    gy = _rng("resnet-gy", c, s).standard_normal((n, c, s, s)).astype(np.float32)
    ref = im2col_gemm(x.astype(np.float64), wt.astype(np.float64), 1)
    err_nd, err_im2col = np.abs(_fwd(x, wt, None, 1) - ref).max(), np.abs(im2col_gemm(x, wt, 1) - ref).max()
    assert err_nd <= 4 * err_im2col, (err_nd, err_im2col)
    wf = np.ascontiguousarray(np.flip(wt, (2, 3)).transpose(1, 0, 2, 3))  # the input gradient's kernel
    gref = im2col_gemm(gy.astype(np.float64), wf.astype(np.float64), 1)
    err_nd, err_im2col = np.abs(_bwd(gy, x, wt, 1) - gref).max(), np.abs(im2col_gemm(gy, wf, 1) - gref).max()
    assert err_nd <= 4 * err_im2col, (err_nd, err_im2col)


def test_autograd_input_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ndgrad")
    F = pytest.importorskip("ndnn.functional")
    x, wt, b = _data(("autograd",), 2, 64, 72, 10, 11)
    xn = nd.tensor(x).requires_grad_()
    out = F.conv2d(xn, nd.tensor(wt), nd.tensor(b), padding=1)
    out.sum().backward()
    xt = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.conv2d(xt, torch.from_numpy(wt), torch.from_numpy(b), padding=1).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), padding=1).numpy(), rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=2e-5)


_ISA_CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, {here!r})
from test_winograd import _bwd, _data, _fwd, _rng, conv_ref, grad_input_ref
x, wt, b = _data(("isa",), 2, 64, 72, 9, 10)
gy = _rng("isa-gy").standard_normal((2, 72, 9, 10)).astype(np.float32)
ef = float(np.abs(_fwd(x, wt, b, 1) - conv_ref(x, wt, b, 1)).max())
eb = float(np.abs(_bwd(gy, x, wt, 1) - grad_input_ref(gy, wt, 1, (9, 10))).max())
print(json.dumps([ef, eb]))
"""


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_every_isa_variant_of_the_transforms(level):
    # The transforms are compiled per ISA (simd_dispatch.h); ND_SIMD caps the level in a child.
    code = _ISA_CHILD.format(here=str(pathlib.Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ND_SIMD=level), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    ef, eb = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ef < 2e-5 and eb < 2e-5, (ef, eb)
