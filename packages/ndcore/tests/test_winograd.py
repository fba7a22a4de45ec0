"""Winograd F(2x2, 3x3) convolution (csrc/kernels/winograd.cpp): the float32 3x3 stride-1 path of
conv2d and of its input and weight gradients, against float64 NumPy references (and torch for
autograd), and the cache of transformed weights (in-place and NumPy-view writes, weights of one
shape, freed weights, threads).
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
from test_winograd import _bwd, _bwd_w, _data, _fwd, _rng, conv_ref, grad_input_ref, grad_weight_ref
x, wt, b = _data(("isa",), 2, 64, 72, 9, 10)
gy = _rng("isa-gy").standard_normal((2, 72, 9, 10)).astype(np.float32)
ef = float(np.abs(_fwd(x, wt, b, 1) - conv_ref(x, wt, b, 1)).max())
eb = float(np.abs(_bwd(gy, x, wt, 1) - grad_input_ref(gy, wt, 1, (9, 10))).max())
gw = grad_weight_ref(gy, x, 1)
ew = float(np.abs(_bwd_w(gy, x, wt, 1) - gw).max() / (1 + np.abs(gw).max()))
print(json.dumps([ef, eb, ew]))
"""


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_every_isa_variant_of_the_transforms(level):
    # The transforms are compiled per ISA (simd_dispatch.h); ND_SIMD caps the level in a child.
    code = _ISA_CHILD.format(here=str(pathlib.Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, ND_SIMD=level), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    ef, eb, ew = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ef < 2e-5 and eb < 2e-5 and ew < 1e-5, (ef, eb, ew)


# ---- weight gradient (Note [Winograd weight gradient]) -----------------------------------------

def grad_weight_ref(gy, x, padding):
    """Float64 weight gradient of conv_ref: per tap, gy against the matching slice of padded x."""
    p = padding
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (p, p), (p, p)])
    oh, ow = gy.shape[2:]
    gw = np.zeros((gy.shape[1], x.shape[1], 3, 3))
    for kh, kw in itertools.product(range(3), range(3)):
        gw[:, :, kh, kw] = np.einsum("nohw,nchw->oc", gy.astype(np.float64), xp[:, :, kh:kh + oh, kw:kw + ow])
    return gw


def _bwd_w(gy, x, w, p):
    return nd.convolution_backward(nd.tensor(gy), nd.tensor(x), nd.tensor(w), [1, 1], [p, p], [1, 1], False, [0, 0], 1,
                                   [0, 1, 0])[1].numpy()


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: "x".join(map(str, c)))
def test_backward_weight_matches_float64(case, threads):
    n, c, o, h, w, p = case
    x, wt, _ = _data(("bwdw",) + case, n, c, o, h, w)
    oh, ow = h + 2 * p - 2, w + 2 * p - 2
    gy = _rng("gyw", *case).standard_normal((n, o, oh, ow)).astype(np.float32)
    want = grad_weight_ref(gy, x, p)
    np.testing.assert_allclose(_bwd_w(gy, x, wt, p), want, rtol=1e-5, atol=1e-5 * (1 + np.abs(want).max()))


@pytest.mark.parametrize("n,c,s", RESNET_LAYERS, ids=lambda v: str(v))
def test_backward_weight_accuracy_vs_im2col(n, c, s):
    x, wt, _ = _data(("resnet-w", c, s), n, c, c, s, s)
    gy = _rng("resnet-gyw", c, s).standard_normal((n, c, s, s)).astype(np.float32)
    ref = grad_weight_ref(gy, x, 1)
    # im2col's weight gradient is gy (C x positions) @ cols^T in float32
    win = np.lib.stride_tricks.sliding_window_view(np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)]), (3, 3), axis=(2, 3))
    cols = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3).reshape(c * 9, -1))
    g2 = np.ascontiguousarray(gy.transpose(1, 0, 2, 3).reshape(c, -1))
    err_im2col = np.abs((g2 @ cols.T).reshape(ref.shape) - ref).max()
    err_nd = np.abs(_bwd_w(gy, x, wt, 1) - ref).max()
    assert err_nd <= 4 * err_im2col, (err_nd, err_im2col)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_backward_weight_non_finite_gives_direct_conv_semantics(value):
    x, wt, _ = _data(("nonfinite-w", str(value)), 2, 64, 64, 8, 9)
    x[1, 2, 3, 4] = value
    gy = _rng("gy-nonfinite-w").standard_normal((2, 64, 8, 9)).astype(np.float32)
    got, want = _bwd_w(gy, x, wt, 1), grad_weight_ref(gy, x, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=1e-4)


# ---- the transformed-weight cache (Note [Transformed weight cache]) ----------------------------

CACHE_SHAPE = (2, 64, 64, 8, 8)  # N, Cin, Cout, H, W: taken by the kernel


def _check_fwd(x, w_nd, p=1):
    got = nd.conv2d(nd.tensor(x), w_nd, None, 1, p).numpy()
    np.testing.assert_allclose(got, conv_ref(x, w_nd.numpy(), None, p), rtol=1e-5, atol=2e-5)


def _check_bwd(gy, x, w_nd, p=1):
    got = nd.convolution_backward(nd.tensor(gy), nd.tensor(x), w_nd, [1, 1], [p, p], [1, 1], False, [0, 0], 1,
                                  [1, 0, 0])[0].numpy()
    np.testing.assert_allclose(got, grad_input_ref(gy, w_nd.numpy(), p, x.shape[2:]), rtol=1e-5, atol=2e-5)


def test_cache_sees_in_place_updates(threads):
    x, wt, _ = _data(("cache-inplace",), *CACHE_SHAPE)
    gy = _rng("cache-gy").standard_normal((2, 64, 8, 8)).astype(np.float32)
    w = nd.tensor(wt)
    _check_fwd(x, w)
    _check_bwd(gy, x, w)  # the input gradient reads the forward's cached transform
    w.mul_(-0.5)  # bumps the version: the cached transform is stale
    _check_fwd(x, w)
    _check_bwd(gy, x, w)
    w[3, 7, 1, 2] = 4.0  # one element, through indexing
    _check_fwd(x, w)
    _check_bwd(gy, x, w)


def test_cache_sees_writes_through_a_numpy_view():
    # A NumPy view shares the storage and bypasses the version counter: the fingerprint catches it.
    x, wt, _ = _data(("cache-numpy",), *CACHE_SHAPE)
    w = nd.tensor(wt)
    _check_fwd(x, w)
    view = w.numpy()
    view[10, 20, 0, 0] += 1.0
    _check_fwd(x, w)
    view[:] = -view
    _check_fwd(x, w)


def test_cache_keeps_weights_of_the_same_shape_apart():
    x, wa, _ = _data(("cache-a",), *CACHE_SHAPE)
    _, wb, _ = _data(("cache-b",), *CACHE_SHAPE)
    a, b = nd.tensor(wa), nd.tensor(wb)
    for w in (a, b, a, b):
        _check_fwd(x, w)
    # two weights in one storage, at different offsets
    both = nd.tensor(np.stack([wa, wb]))
    _check_fwd(x, both[0])
    _check_fwd(x, both[1])
    _check_fwd(x, both[0])


def test_cache_never_serves_a_freed_weight():
    # A new weight may get a freed one's address (and version 0): the entry must not match it.
    x, _, _ = _data(("cache-freed",), *CACHE_SHAPE)
    for i in range(6):
        _, wt, _ = _data(("cache-freed", i), *CACHE_SHAPE)
        w = nd.tensor(wt)
        _check_fwd(x, w)
        del w


def test_cache_entries_go_with_their_weights_and_with_empty_cache():
    x, wt, _ = _data(("cache-size",), *CACHE_SHAPE)
    nd._C.empty_cache()
    assert nd._C._winograd_cache_entries() == 0
    w = nd.tensor(wt)
    _check_fwd(x, w)
    assert nd._C._winograd_cache_entries() == 1
    other = nd.tensor(wt * 2)
    del w
    _check_fwd(x, other)  # the lookup drops the freed weight's entry
    assert nd._C._winograd_cache_entries() == 1
    nd._C.empty_cache()
    assert nd._C._winograd_cache_entries() == 0
    _check_fwd(x, other)


def test_cache_is_thread_safe():
    import threading
    x, _, _ = _data(("cache-threads",), *CACHE_SHAPE)
    weights = [nd.tensor(_data(("cache-threads", i), *CACHE_SHAPE)[1]) for i in range(4)]
    want = [conv_ref(x, w.numpy(), None, 1) for w in weights]
    errors = []

    def work(k):
        try:
            for r in range(6):
                i = (k + r) % len(weights)
                got = nd.conv2d(nd.tensor(x), weights[i], None, 1, 1).numpy()
                np.testing.assert_allclose(got, want[i], rtol=1e-5, atol=2e-5)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


def test_float64_gradcheck_is_unaffected():
    # float64 never takes the Winograd path; its gradients stay exact to gradcheck's tolerance
    ndgrad = pytest.importorskip("ndgrad")
    F = pytest.importorskip("ndnn.functional")
    r = _rng("gradcheck")
    x = nd.tensor(r.standard_normal((1, 2, 5, 5))).requires_grad_()
    w = nd.tensor(r.standard_normal((3, 2, 3, 3))).requires_grad_()
    assert ndgrad.gradcheck(lambda a, b: F.conv2d(a, b, None, 1, 1), (x, w))
