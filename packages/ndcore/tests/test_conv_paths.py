"""The convolution kernel's paths (csrc/kernels/conv.cpp, conv_lanes.cpp) against float64 NumPy
references and torch: the direct AVX-512 kernels behind patterns A, B and C of Note [Convolution
as three GEMM patterns] (samples in lanes, planes as one long row, output channels in lanes) and
the im2col/GEMM path they fall back to, with shapes on both sides of each selection threshold
(batch blocks and their padding lanes, column rows, small channels, kept fraction of a long row,
stride/padding for B) and the fallback forced by ND_SIMD below AVX-512."""
from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import ndcore as nd


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _per(v, d):
    return [v] * d if isinstance(v, int) else list(v)


# ---- float64 references: one strided slice of the padded big tensor per kernel offset --------

def _slices(k, s, d, out_sp):
    for kidx in np.ndindex(*k):
        yield kidx, tuple(slice(kidx[i] * d[i], kidx[i] * d[i] + s[i] * (out_sp[i] - 1) + 1, s[i]) for i in range(len(k)))


def ref_forward(x, w, b, s, p, d, groups):
    D = x.ndim - 2
    s, p, d = _per(s, D), _per(p, D), _per(d, D)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(q, q) for q in p])
    k = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(D)]
    O, cg = w.shape[0], w.shape[1]
    og = O // groups
    out = np.zeros((x.shape[0], O, *out_sp))
    for g in range(groups):
        for kidx, sl in _slices(k, s, d, out_sp):
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]
            out[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch, w[(slice(g * og, (g + 1) * og), slice(None)) + kidx])
    if b is not None:
        out += b.reshape((1, -1) + (1,) * D)
    return out


def ref_backward(go, x_shape, w, x, s, p, d, groups):
    """grad_input, grad_weight, grad_bias of the regular convolution."""
    D = len(x_shape) - 2
    s, p, d = _per(s, D), _per(p, D), _per(d, D)
    go = go.astype(np.float64)
    k = w.shape[2:]
    out_sp = go.shape[2:]
    O, cg = w.shape[0], w.shape[1]
    og = O // groups
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(q, q) for q in p])
    gxp = np.zeros_like(xp)
    gw = np.zeros(w.shape)
    for g in range(groups):
        gog = go[:, g * og:(g + 1) * og]
        for kidx, sl in _slices(k, s, d, out_sp):
            idx = (slice(None), slice(g * cg, (g + 1) * cg)) + sl
            wk = w[(slice(g * og, (g + 1) * og), slice(None)) + kidx].astype(np.float64)
            gxp[idx] += np.einsum("no...,oc->nc...", gog, wk)
            ax = [0] + list(range(2, 2 + D))
            gw[(slice(g * og, (g + 1) * og), slice(None)) + kidx] = np.tensordot(gog, xp[idx], axes=(ax, ax))
    gx = gxp[(slice(None), slice(None)) + tuple(slice(q, q + n) for q, n in zip(p, x_shape[2:]))]
    return gx, gw, go.sum(axis=tuple(i for i in range(go.ndim) if i != 1))


# ---- cases -----------------------------------------------------------------------------------
# (name, x shape, w shape, stride, padding, dilation, groups). float32 lanes hold 16 samples,
# float64 8; the lanes path needs N >= one block with <= 25% padding lanes, Cb/G * K >= 64 column
# rows, Cs <= 64 and K > 1; pattern B additionally needs stride 1 and padding <= d(k-1).
CASES = [
    ("seed_conv2", (64, 10, 12, 12), (20, 10, 5, 5), 1, 0, 1, 1),
    ("seed_conv1", (64, 1, 28, 28), (10, 1, 5, 5), 1, 0, 1, 1),
    ("n16_rows64", (16, 16, 6, 7), (5, 16, 2, 2), 1, 0, 1, 1),  # exactly at both thresholds
    ("n15", (15, 16, 6, 7), (5, 16, 2, 2), 1, 0, 1, 1),  # one lane short of a block
    ("n20_waste", (20, 8, 7, 6), (7, 8, 3, 3), 1, 1, 1, 1),  # 12 padding lanes of 32: falls back
    ("n52_ragged", (52, 8, 7, 9), (7, 8, 3, 3), 1, 1, 1, 1),  # 4 blocks, the last one holds 4 samples
    ("n33", (33, 8, 7, 9), (7, 8, 3, 3), 1, 1, 1, 1),  # float32: 15 padding lanes of 48 fall back
    ("rows63", (16, 7, 5, 5), (6, 7, 3, 3), 1, 0, 1, 1),  # 63 column rows: falls back
    ("cs64", (16, 8, 6, 6), (64, 8, 3, 3), 1, 1, 1, 1),
    ("cs65", (16, 8, 6, 6), (65, 8, 3, 3), 1, 1, 1, 1),
    ("odd_ch", (16, 9, 9, 11), (13, 9, 3, 3), 1, 1, 1, 1),  # 13 small channels: padded OB blocks
    ("cs1", (16, 16, 7, 7), (1, 16, 3, 3), 1, 1, 1, 1),
    ("stride2_pad1", (16, 8, 11, 10), (12, 8, 3, 3), 2, 1, 1, 1),  # lanes A and C, GEMM for B
    ("stride_hw", (16, 6, 13, 12), (9, 6, 3, 4), (2, 3), (1, 2), 1, 1),
    ("dilation", (16, 8, 12, 11), (10, 8, 3, 3), 1, 2, 2, 1),
    ("pad_gt_span", (16, 8, 6, 6), (6, 8, 3, 3), 1, 3, 1, 1),  # B: padding > d(k-1) falls back
    ("groups2", (16, 16, 9, 9), (16, 8, 3, 3), 1, 1, 1, 2),
    ("groups4_odd", (16, 36, 8, 7), (20, 9, 3, 3), 1, 0, 1, 4),
    ("depthwise", (16, 8, 9, 9), (16, 1, 3, 3), 1, 1, 1, 8),
    ("wide_out", (16, 4, 30, 31), (6, 4, 5, 5), 1, 2, 1, 1),
    ("n1", (1, 10, 12, 12), (20, 10, 5, 5), 1, 0, 1, 1),
    ("conv1d", (32, 16, 40), (12, 16, 5), 1, 2, 1, 1),
    ("conv1d_s2d2", (16, 12, 41), (8, 12, 7), 2, 3, 2, 1),
    ("conv3d", (16, 4, 5, 6, 6), (6, 4, 3, 3, 3), 1, 1, 1, 1),
    ("s2_gemm", (5, 8, 11, 10), (12, 8, 3, 3), 2, 1, 1, 1),  # strided, few samples and channels: GEMM
    ("s3_gemm", (5, 8, 14, 13), (12, 8, 3, 2), 3, (1, 0), 1, 1),
    # long rows (stride 1, any batch): kept positions OW >= 2/3 of the padded row Wp
    ("rows_n3", (3, 10, 12, 12), (20, 10, 5, 5), 1, 0, 1, 1),  # OW/Wp = 8/12, at the threshold
    ("rows_too_narrow", (3, 4, 9, 9), (6, 4, 5, 5), 1, 0, 1, 1),  # 5/9: falls back
    ("rows_pad_dil", (2, 6, 13, 17), (10, 6, 3, 3), 1, 2, 2, 1),
    ("rows_1d", (2, 8, 50), (12, 8, 5), 1, 2, 1, 1),
    ("rows_groups", (2, 12, 10, 11), (12, 4, 3, 3), 1, 1, 1, 3),
    # output channels in lanes (forward, few samples): Cs/G a multiple of 2 vectors, >= 32
    ("chan64_s2", (8, 16, 15, 14), (64, 16, 3, 3), 2, 1, 1, 1),
    ("chan32", (3, 8, 9, 9), (32, 8, 3, 3), 2, 0, 1, 1),
    ("chan48", (3, 8, 9, 9), (48, 8, 3, 3), 2, 0, 1, 1),  # float32: 48 is not 2 vectors: GEMM
    ("chan_groups", (4, 16, 9, 9), (64, 8, 3, 3), 2, 1, 1, 2),
    ("chan96_dil", (2, 8, 12, 12), (96, 8, 3, 3), 1, 2, 2, 1),
    # ... but under 100 positions per sample with >= 256 positions in the batch, im2col + GEMM
    ("chan_l100", (3, 8, 19, 19), (32, 8, 3, 3), 2, 1, 1, 1),  # 10x10 positions: lanes
    ("chan_l81_gemm", (4, 8, 17, 17), (32, 8, 3, 3), 2, 1, 1, 1),  # 9x9, 324 in the batch: GEMM
    ("chan_l81_n3", (3, 8, 17, 17), (32, 8, 3, 3), 2, 1, 1, 1),  # 9x9, 243 in the batch: lanes
]
IDS = [c[0] for c in CASES]


def _tol(dtype, ref):
    scale = 1.0 + float(np.abs(ref).max()) if ref.size else 1.0
    return {"float64": (1e-10, 1e-10 * scale), "float32": (1e-4, 2e-5 * scale),
            "float16": (2e-2, 1e-2 * scale), "bfloat16": (5e-2, 5e-2 * scale)}[dtype]


def _close(actual, expected, dtype):
    a = np.asarray(actual.to(nd.float64).numpy() if isinstance(actual, nd.Tensor) else actual, dtype=np.float64)
    assert a.shape == expected.shape, (a.shape, expected.shape)
    rtol, atol = _tol(dtype, expected)
    np.testing.assert_allclose(a, expected, rtol=rtol, atol=atol)


def _nd(a, dtype):
    return nd.tensor(np.ascontiguousarray(a)).to(getattr(nd, dtype))


def _inputs(case, dtype):
    name, xs, ws, s, p, d, g = case
    rng = _rng(name, dtype)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    if dtype in ("float16", "bfloat16"):  # the reference sees the rounded values
        x, w, b = (_nd(a, dtype).to(nd.float64).numpy() for a in (x, w, b))
    return x, w, b, s, p, d, g


def _attrs(case):
    _, xs, _, s, p, d, g = case
    D = len(xs) - 2
    return _per(s, D), _per(p, D), _per(d, D), g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_backward_match_reference(case, dtype):
    x, w, b, s, p, d, g = _inputs(case, dtype)
    S, P, Dl, G = _attrs(case)
    ref = ref_forward(x, w, b, S, P, Dl, g)
    out = nd.convolution(_nd(x, dtype), _nd(w, dtype), _nd(b, dtype), S, P, Dl, False, [0] * len(S), G)
    _close(out, ref, dtype)
    go = _rng(case[0], "go").standard_normal(ref.shape)
    gx, gw, gb = ref_backward(go, x.shape, w, x, S, P, Dl, g)
    ndgo, ndx, ndw = _nd(go, dtype), _nd(x, dtype), _nd(w, dtype)
    full = ndgo.convolution_backward(ndx, ndw, S, P, Dl, False, [0] * len(S), G, [1, 1, 1])
    for got, want in zip(full, (gx, gw, gb)):
        _close(got, want, dtype)
    for i, want in enumerate((gx, gw, gb)):  # one output at a time, as autograd asks for them
        mask = [int(j == i) for j in range(3)]
        _close(ndgo.convolution_backward(ndx, ndw, S, P, Dl, False, [0] * len(S), G, mask)[i], want, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("seed_conv2", "stride2_pad1", "groups2")],
                         ids=["seed_conv2", "stride2_pad1", "groups2"])
def test_half_dtypes_compute_in_float32(case, dtype):
    x, w, b, s, p, d, g = _inputs(case, dtype)
    S, P, Dl, G = _attrs(case)
    ref = ref_forward(x, w, b, S, P, Dl, g)
    out = nd.convolution(_nd(x, dtype), _nd(w, dtype), _nd(b, dtype), S, P, Dl, False, [0] * len(S), G)
    assert out.dtype == getattr(nd, dtype)
    _close(out, ref, dtype)
    go = _nd(_rng(case[0], "go").standard_normal(ref.shape), dtype)
    gx, gw, gb = ref_backward(go.to(nd.float64).numpy(), x.shape, w, x, S, P, Dl, g)
    res = go.convolution_backward(_nd(x, dtype), _nd(w, dtype), S, P, Dl, False, [0] * len(S), G, [1, 1, 1])
    for got, want in zip(res, (gx, gw, gb)):
        assert got.dtype == getattr(nd, dtype)
        _close(got, want, dtype)


TRANSPOSED = [  # (name, x shape, w shape (Cin, Cout/G, *k), stride, padding, output_padding, dilation, groups)
    ("t_lanes", (16, 20, 8, 8), (20, 10, 5, 5), 1, 0, 0, 1, 1),  # forward through lanes B
    ("t_pad", (16, 12, 7, 9), (12, 8, 3, 3), 1, 1, 0, 1, 1),
    ("t_stride2", (16, 12, 7, 7), (12, 8, 3, 3), 2, 1, 1, 1, 1),  # forward falls back to col2im
    ("t_groups", (16, 16, 6, 6), (16, 6, 3, 3), 1, 1, 0, 2, 2),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", TRANSPOSED, ids=[c[0] for c in TRANSPOSED])
def test_transposed_matches_reference(case, dtype):
    name, xs, ws, s, p, op, d, g = case
    rng = _rng(name, dtype)
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))
    b = rng.standard_normal(ws[1] * g)
    # a transposed conv's output is the grad_input of the regular conv whose weight it shares
    out_sp = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k in zip(xs[2:], ws[2:])]
    big = rng.standard_normal((xs[0], ws[1] * g, *out_sp))
    ref = ref_backward(x, big.shape, w, big, s, p, d, g)[0] + b.reshape(1, -1, 1, 1)
    args = ([s, s], [p, p], [d, d], True, [op, op], g)
    out = nd.convolution(_nd(x, dtype), _nd(w, dtype), _nd(b, dtype), *args)
    _close(out, ref, dtype)
    go = rng.standard_normal(ref.shape)
    # grad_input of a transposed conv is the regular conv of grad_output; grad_weight swaps roles
    gx = ref_forward(go, w, None, s, p, d, g)
    gw = ref_backward(x, go.shape, w, go, s, p, d, g)[1]
    res = _nd(go, dtype).convolution_backward(_nd(x, dtype), _nd(w, dtype), *args, [1, 1, 1])
    _close(res[0], gx, dtype)
    _close(res[1], gw, dtype)
    _close(res[2], go.sum(axis=(0, 2, 3)), dtype)


def test_non_contiguous_inputs():
    rng = _rng("noncontig")
    base = rng.standard_normal((12, 64, 14, 13)).astype(np.float32)
    x = nd.tensor(base).permute(1, 0, 2, 3)  # (64, 12, 14, 13), strided
    w = nd.tensor(rng.standard_normal((20, 12, 5, 5)).astype(np.float32)[:, :, :, ::-1].copy())
    wt = nd.tensor(rng.standard_normal((20, 5, 12, 5)).astype(np.float32)).permute(0, 2, 1, 3)
    xn = base.transpose(1, 0, 2, 3)
    for weight in (w, wt):
        assert not x.is_contiguous()
        ref = ref_forward(xn, weight.numpy(), None, 1, 1, 1, 1)
        _close(nd.convolution(x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1), ref, "float32")
        go = nd.tensor(rng.standard_normal(ref.shape[::-1]).astype(np.float32)).permute(3, 2, 1, 0)
        gx, gw, gb = ref_backward(go.numpy(), xn.shape, weight.numpy(), xn, 1, 1, 1, 1)
        res = go.convolution_backward(x, weight, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [1, 1, 1])
        for got, want in zip(res, (gx, gw, gb)):
            _close(got, want, "float32")


def test_nan_and_inf_propagate_like_the_reference():
    rng = _rng("nan")
    x = rng.standard_normal((16, 10, 12, 12)).astype(np.float32)
    x[3, 2, 5, 6] = np.nan
    x[7, 0, 0, 0] = np.inf
    w = rng.standard_normal((20, 10, 5, 5)).astype(np.float32)
    ref = ref_forward(x, w, None, 1, 0, 1, 1)
    out = nd.convolution(nd.tensor(x), nd.tensor(w), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape", [((3, 1, 12, 12), (4, 1, 5, 5)), ((16, 10, 12, 12), (20, 10, 5, 5))],
                         ids=["long_rows", "lanes"])
def test_grad_weight_with_inf_input_matches_reference(shape):
    """The long-row kernel multiplies dropped positions by zero; an Inf input must not turn into
    a NaN there (it falls back), and the lanes kernel never pairs padding with data."""
    xs, ws = shape
    rng = _rng("inf", xs)
    x = rng.standard_normal(xs).astype(np.float32)
    x[0, 0, 3, 11] = np.inf  # read only by dropped positions for kernel column 0
    w = rng.standard_normal(ws).astype(np.float32)
    go = rng.standard_normal((xs[0], ws[0], xs[2] - 4, xs[3] - 4)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        _, gw, _ = ref_backward(go, xs, w, x, 1, 0, 1, 1)
    got = nd.tensor(go).convolution_backward(nd.tensor(x), nd.tensor(w), [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                                             [0, 1, 0])[1].numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(gw))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(gw))
    fin = np.isfinite(gw)
    np.testing.assert_allclose(got[fin], gw[fin], rtol=1e-4, atol=1e-3)


def test_empty_batch():
    x = nd.zeros((0, 10, 12, 12))
    w = nd.ones((20, 10, 5, 5))
    assert tuple(nd.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1).shape) == (0, 20, 8, 8)
    go = nd.zeros((0, 20, 8, 8))
    gx, gw, gb = go.convolution_backward(x, w, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [1, 1, 1])
    assert tuple(gx.shape) == (0, 10, 12, 12) and float(gw.abs().sum()) == 0 and float(gb.abs().sum()) == 0


@pytest.mark.parametrize("level", ["avx2", "baseline"])
def test_other_isa_levels_take_the_gemm_path(level):
    """ND_SIMD below AVX-512 turns the lanes kernels off; the im2col/GEMM path gives the same."""
    code = (
        "import numpy as np, ndcore as nd\n"
        "r = np.random.default_rng(0)\n"
        "x = r.standard_normal((32, 10, 12, 12)).astype(np.float32)\n"
        "w = r.standard_normal((20, 10, 5, 5)).astype(np.float32)\n"
        "go = r.standard_normal((32, 20, 8, 8)).astype(np.float32)\n"
        "a = [nd.convolution(nd.tensor(x), nd.tensor(w), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1).numpy()]\n"
        "a += [t.numpy() for t in nd.tensor(go).convolution_backward(nd.tensor(x), nd.tensor(w), [1, 1], [0, 0],"
        " [1, 1], False, [0, 0], 1, [1, 1, 1])]\n"
        "np.savez(__import__('sys').argv[1], *a)\n"
    )
    outs = []
    for lvl in (level, "avx512"):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"nd_conv_paths_{lvl}_{os.getpid()}.npz")
        subprocess.run([sys.executable, "-c", code, path], check=True, env={**os.environ, "ND_SIMD": lvl})
        with np.load(path) as f:
            outs.append([f[k] for k in sorted(f.files)])
        os.remove(path)
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * (1 + np.abs(b).max()))


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("seed_conv2", "seed_conv1", "stride2_pad1", "groups4_odd",
                                                                "dilation", "conv1d_s2d2")],
                         ids=["seed_conv2", "seed_conv1", "stride2_pad1", "groups4_odd", "dilation", "conv1d_s2d2"])
def test_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b, s, p, d, g = _inputs(case, "float32")
    S, P, Dl, G = _attrs(case)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    fn = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[x.ndim - 2]
    yt = fn(xt, wt, bt, S, P, Dl, G)
    out = nd.convolution(nd.tensor(x), nd.tensor(w), nd.tensor(b), S, P, Dl, False, [0] * len(S), G)
    _close(out, yt.detach().double().numpy(), "float32")
    go = _rng(case[0], "go").standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(go))
    res = nd.tensor(go).convolution_backward(nd.tensor(x), nd.tensor(w), S, P, Dl, False, [0] * len(S), G, [1, 1, 1])
    for got, want in zip(res, (xt.grad, wt.grad, bt.grad)):
        _close(got, want.double().numpy(), "float32")
