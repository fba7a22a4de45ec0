"""The fused LSTM/GRU layer kernels (_lstm_layer, _gru_layer and their backward) against NumPy.

The reference is a float64 NumPy time loop with hand-written backpropagation through time. The
float32 LSTM shapes cover the AVX-512 loops of csrc/kernels/rnn_fast.cpp (unit blocks of 16 and
64 with tails, 5-row tiles with remainders, one and two threads) and their OpenBLAS fallback
(batch over 256, float64, and ND_SIMD below AVX-512 in a child process).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import ndcore as nd
from ndcore import _C


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _lstm_ref(x, h0, c0, w_ih, w, b, reverse, gout, ghn, gcn):
    """Forward and backward of one LSTM direction in float64 (b: b_ih + b_hh or None); returns
    (out, hn, cn, dx, dh0, dc0, dw_ih, dw, db)."""
    T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    gx = x @ w_ih.T + (0 if b is None else b)
    order = list(reversed(range(T))) if reverse else list(range(T))
    h, c = h0, c0
    out, acts, cells, hprev, cprev = np.zeros((T, B, H)), {}, {}, {}, {}
    for t in order:
        a = gx[t] + h @ w.T
        i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
        hprev[t], cprev[t] = h, c
        c = f * c + i * g
        h = o * np.tanh(c)
        acts[t], cells[t], out[t] = (i, f, g, o), c, h
    hn, cn = h, c
    dh, dc = ghn.copy(), gcn.copy()
    dgx, dw = np.zeros_like(gx), np.zeros_like(w)
    for t in reversed(order):
        i, f, g, o = acts[t]
        tc = np.tanh(cells[t])
        dhv = dh + gout[t]
        dcv = dc + dhv * o * (1 - tc * tc)
        da = np.concatenate([dcv * g * i * (1 - i), dcv * cprev[t] * f * (1 - f), dcv * i * (1 - g * g),
                             dhv * tc * o * (1 - o)], axis=1)
        dgx[t] = da
        dw += da.T @ hprev[t]
        dh, dc = da @ w, dcv * f
    dg2 = dgx.reshape(T * B, 4 * H)
    dx = dgx @ w_ih
    dw_ih = dg2.T @ x.reshape(T * B, x.shape[2])
    return out, hn, cn, dx, dh, dc, dw_ih, dw, dg2.sum(0)


def _run_lstm(T, B, H, dtype, reverse, I=None, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    I = H if I is None else I
    x = rng.normal(size=(T, B, I))
    h0, c0 = rng.normal(size=(B, H)) * 0.5, rng.normal(size=(B, H)) * 0.5
    w_ih = rng.normal(size=(4 * H, I)) / np.sqrt(max(I, 1))
    w = rng.normal(size=(4 * H, H)) / np.sqrt(H)
    b_ih, b_hh = rng.normal(size=4 * H), rng.normal(size=4 * H)
    gout, ghn, gcn = rng.normal(size=(T, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    arrays = [a.astype(dtype) for a in (x, h0, c0, w_ih, w, b_ih, b_hh, gout, ghn, gcn)]
    cast = [nd.tensor(a) for a in arrays]
    bi, bh = (cast[5], cast[6]) if bias else (None, None)
    out, hn, cn, gates, cells = _C._lstm_layer(*cast[:5], bi, bh, reverse)
    g = _C._lstm_layer_backward(*cast[7:], *cast[:5], out, gates, cells, reverse, bias, True)
    got = [t.numpy() for t in (out, hn, cn, *g[:5])]
    if bias:
        assert np.array_equal(g[5].numpy(), g[6].numpy())
        got.append(g[5].numpy())
    else:
        assert g[5] is None and g[6] is None
    # the reference runs on the inputs as the kernel saw them (rounded to dtype)
    f64 = [a.astype(np.float64) for a in arrays]
    ref = _lstm_ref(*f64[:5], f64[5] + f64[6] if bias else None, reverse, *f64[7:])
    return got, ref if bias else ref[:-1]


def _check(got, ref, tol):
    names = ["output", "hn", "cn", "grad_input", "grad_h0", "grad_c0", "grad_w_ih", "grad_w_hh", "grad_bias"]
    assert len(got) == len(ref)
    for name, a, b in zip(names, got, ref):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * (1 + np.abs(b).max(initial=0)), err_msg=name)


@pytest.fixture
def threads():
    before = nd.get_num_threads()
    yield nd.set_num_threads
    nd.set_num_threads(before)


# (T, B, H, I): the bench shape (input projected inside the loop, I <= H); unit tails (16- and
# 64-unit blocks) with a row remainder; tiny hidden sizes; inputs wider than the hidden state
# (projected by one GEMM first); a single step; a batch over 256 (OpenBLAS loop).
SHAPES = [(6, 20, 256, 64), (5, 23, 100, 100), (4, 3, 5, 9), (3, 1, 16, 3), (1, 7, 64, 80), (3, 300, 24, 8)]


@pytest.mark.parametrize("T,B,H,I", SHAPES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_lstm_layer_float32_matches_numpy(T, B, H, I, reverse, nthreads, threads):
    threads(nthreads)
    got, ref = _run_lstm(T, B, H, np.float32, reverse, I)
    _check(got, ref, 2e-5)


@pytest.mark.parametrize("I", [3, 40])
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_layer_without_bias(I, reverse):
    got, ref = _run_lstm(4, 6, 20, np.float32, reverse, I, bias=False)
    _check(got, ref, 2e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_layer_float64_matches_numpy(reverse, bias):
    got, ref = _run_lstm(4, 5, 7, np.float64, reverse, 3, bias=bias)
    _check(got, ref, 1e-12)


def test_lstm_layer_zero_length_empty_batch_and_input():
    for T, B, I in ((0, 3, 4), (2, 0, 4), (3, 2, 0)):
        got, ref = _run_lstm(T, B, 8, np.float32, False, I)
        _check(got, ref, 1e-6)


def test_lstm_layer_backward_skips_input_grad():
    x, h0, w_ih, w = nd.randn(3, 2, 4), nd.zeros(2, 5), nd.randn(20, 4), nd.randn(20, 5)
    out, hn, cn, gates, cells = _C._lstm_layer(x, h0, h0, w_ih, w, None, None, False)
    g = _C._lstm_layer_backward(nd.ones_like(out), nd.zeros_like(hn), nd.zeros_like(cn), x, h0, h0, w_ih, w, out,
                                gates, cells, False, False, False)
    assert g[0] is None and g[3] is not None


def test_lstm_layer_errors():
    x = nd.zeros((3, 2, 4))
    h = nd.zeros((2, 2))
    with pytest.raises(ValueError, match=r"_lstm_layer.*w_hh"):
        _C._lstm_layer(x, h, h, nd.zeros((8, 4)), nd.zeros((8, 3)), None, None, False)
    with pytest.raises(ValueError, match=r"_lstm_layer.*w_ih"):
        _C._lstm_layer(x, h, h, nd.zeros((8, 5)), nd.zeros((8, 2)), None, None, False)
    with pytest.raises(ValueError, match=r"_lstm_layer.*b_hh"):
        _C._lstm_layer(x, h, h, nd.zeros((8, 4)), nd.zeros((8, 2)), nd.zeros(8), nd.zeros(7), False)
    with pytest.raises(ValueError, match=r"_lstm_layer.*input \(T, B, I\)"):
        _C._lstm_layer(nd.zeros((3, 4)), h, h, nd.zeros((8, 4)), nd.zeros((8, 2)), None, None, False)
    with pytest.raises(TypeError, match=r"_lstm_layer.*dtype"):
        _C._lstm_layer(x, h.double(), h, nd.zeros((8, 4)), nd.zeros((8, 2)), None, None, False)
    with pytest.raises(TypeError, match=r"_lstm_layer.*dtype"):
        _C._lstm_layer(x, h, h, nd.zeros((8, 4)), nd.zeros((8, 2)), nd.zeros(8, dtype=nd.float64), None, False)


@pytest.mark.parametrize("level", ["avx2", "baseline"])
def test_lstm_layer_other_isa_levels(level):
    """ND_SIMD below AVX-512 takes the OpenBLAS loop with the gate math in that ISA variant."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import test_rnn_kernels as t\n"
        "for T, B, H, I in [(6, 20, 256, 64), (5, 23, 100, 100), (4, 3, 5, 9)]:\n"
        "    for rev in (False, True):\n"
        "        t._check(*t._run_lstm(T, B, H, t.np.float32, rev, I), 2e-5)\n"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", code, here], env={**os.environ, "ND_SIMD": level},
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("H,I", [(32, 8), (20, 90)])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_lstm_layer_float32_saturated_gates(H, I, nthreads, threads):
    """Pre-activations far out on both sides (|x| up to ~300): the AVX-512 gate math clamps its
    exp argument and must still give 0/1 gates and finite gradients, as the float64 reference.
    I = 8 projects the input inside the loop, I = 90 by one GEMM first."""
    threads(nthreads)
    rng = np.random.default_rng(1)
    T, B = 4, 7
    x = rng.normal(size=(T, B, I)) * 80 / np.sqrt(I)
    h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    w_ih, w = rng.normal(size=(4 * H, I)), rng.normal(size=(4 * H, H))
    b_ih, b_hh = rng.normal(size=4 * H) * 40, rng.normal(size=4 * H)
    gout, ghn, gcn = rng.normal(size=(T, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    f32 = [a.astype(np.float32) for a in (x, h0, c0, w_ih, w, b_ih, b_hh, gout, ghn, gcn)]
    cast = [nd.tensor(a) for a in f32]
    for reverse in (False, True):
        out, hn, cn, gates, cells = _C._lstm_layer(*cast[:7], reverse)
        assert np.abs(gates.numpy()).max() == 1.0  # some gates saturate
        g = _C._lstm_layer_backward(*cast[7:], *cast[:5], out, gates, cells, reverse, True, True)
        got = [t.numpy() for t in (out, hn, cn, *g[:6])]
        assert all(np.isfinite(a).all() for a in got)
        f64 = [a.astype(np.float64) for a in f32]
        with np.errstate(over="ignore"):
            ref = _lstm_ref(*f64[:5], f64[5] + f64[6], reverse, *f64[7:])
        # outputs and state gradients only; the weight gradients sum ~T*B such terms of size ~|w| * |h|
        _check(got[:3] + got[4:6], ref[:3] + ref[4:6], 1e-4)


@pytest.mark.parametrize("I", [4, 200])
def test_lstm_layer_float32_nan_propagates(I):
    """A NaN in the input reaches every unit of its batch row at that step (the vector gate math
    must not clamp it away); the steps before it and the other rows stay finite."""
    T, B, H = 3, 5, 32
    x = np.zeros((T, B, I), np.float32)
    x[1, 2, 0] = np.nan
    rng = np.random.default_rng(2)
    w_ih = nd.tensor(rng.normal(size=(4 * H, I)).astype(np.float32))
    out, hn, cn, gates, cells = _C._lstm_layer(nd.tensor(x), nd.zeros((B, H)), nd.zeros((B, H)), w_ih,
                                               nd.zeros((4 * H, H)), None, None, False)
    o = out.numpy()
    assert np.isfinite(o[0]).all()
    assert np.isnan(o[1, 2]).all() and np.isnan(gates.numpy()[1, 2]).all()
    assert np.isfinite(np.delete(o[1], 2, axis=0)).all()
