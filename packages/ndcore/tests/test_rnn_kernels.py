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


def _lstm_ref(gx, h0, c0, w, reverse, gout, ghn, gcn):
    """Forward and backward of one LSTM direction in float64; returns (out, hn, cn, dgx, dh0, dc0, dw)."""
    T, B, H = gx.shape[0], h0.shape[0], h0.shape[1]
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
    return out, hn, cn, dgx, dh, dc, dw


def _run_lstm(T, B, H, dtype, reverse, seed=0):
    rng = np.random.default_rng(seed)
    gx = rng.normal(size=(T, B, 4 * H))
    h0, c0 = rng.normal(size=(B, H)) * 0.5, rng.normal(size=(B, H)) * 0.5
    w = rng.normal(size=(4 * H, H)) / np.sqrt(H)
    gout, ghn, gcn = rng.normal(size=(T, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    cast = [nd.tensor(a.astype(dtype)) for a in (gx, h0, c0, w, gout, ghn, gcn)]
    out, hn, cn, gates, cells = _C._lstm_layer(cast[0], cast[1], cast[2], cast[3], reverse)
    g = _C._lstm_layer_backward(cast[4], cast[5], cast[6], cast[1], cast[2], cast[3], out, gates, cells, reverse)
    got = [t.numpy() for t in (out, hn, cn, *g)]
    # the reference runs on the inputs as the kernel saw them (rounded to dtype)
    ref = _lstm_ref(*(a.astype(dtype).astype(np.float64) for a in (gx, h0, c0, w)), reverse,
                    *(a.astype(dtype).astype(np.float64) for a in (gout, ghn, gcn)))
    return got, ref


def _check(got, ref, tol):
    names = ["output", "hn", "cn", "grad_gates_x", "grad_h0", "grad_c0", "grad_w_hh"]
    for name, a, b in zip(names, got, ref):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * (1 + np.abs(b).max(initial=0)), err_msg=name)


@pytest.fixture
def threads():
    before = nd.get_num_threads()
    yield nd.set_num_threads
    nd.set_num_threads(before)


# (T, B, H): the bench shape; unit tails (16- and 64-unit blocks) with a row remainder; tiny
# hidden sizes; a single step; a batch over 256 (OpenBLAS loop).
SHAPES = [(6, 20, 256), (5, 23, 100), (4, 3, 5), (3, 1, 16), (1, 7, 64), (3, 300, 24)]


@pytest.mark.parametrize("T,B,H", SHAPES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_lstm_layer_float32_matches_numpy(T, B, H, reverse, nthreads, threads):
    threads(nthreads)
    got, ref = _run_lstm(T, B, H, np.float32, reverse)
    _check(got, ref, 2e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_layer_float64_matches_numpy(reverse):
    got, ref = _run_lstm(4, 5, 7, np.float64, reverse)
    _check(got, ref, 1e-12)


def test_lstm_layer_zero_length_and_empty_batch():
    for T, B in ((0, 3), (2, 0)):
        got, ref = _run_lstm(T, B, 8, np.float32, False)
        _check(got, ref, 1e-6)


def test_lstm_layer_errors():
    x = nd.zeros((3, 2, 8))
    with pytest.raises(ValueError, match=r"_lstm_layer.*w_hh"):
        _C._lstm_layer(x, nd.zeros((2, 2)), nd.zeros((2, 2)), nd.zeros((8, 3)), False)
    with pytest.raises(TypeError, match=r"_lstm_layer.*dtype"):
        _C._lstm_layer(x, nd.zeros((2, 2), dtype=nd.float64), nd.zeros((2, 2)), nd.zeros((8, 2)), False)


@pytest.mark.parametrize("level", ["avx2", "baseline"])
def test_lstm_layer_other_isa_levels(level):
    """ND_SIMD below AVX-512 takes the OpenBLAS loop with the gate math in that ISA variant."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import test_rnn_kernels as t\n"
        "for shape in [(6, 20, 256), (5, 23, 100), (4, 3, 5)]:\n"
        "    for rev in (False, True):\n"
        "        t._check(*t._run_lstm(*shape, t.np.float32, rev), 2e-5)\n"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", code, here], env={**os.environ, "ND_SIMD": level},
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("H", [32, 20])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_lstm_layer_float32_saturated_gates(H, nthreads, threads):
    """Pre-activations far out on both sides (|x| up to ~300): the AVX-512 gate math clamps its
    exp argument and must still give 0/1 gates and finite gradients, as the float64 reference."""
    threads(nthreads)
    rng = np.random.default_rng(1)
    T, B = 4, 7
    gx = rng.normal(size=(T, B, 4 * H)) * 80
    h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    w = rng.normal(size=(4 * H, H))
    gout, ghn, gcn = rng.normal(size=(T, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    f32 = [a.astype(np.float32) for a in (gx, h0, c0, w, gout, ghn, gcn)]
    cast = [nd.tensor(a) for a in f32]
    for reverse in (False, True):
        out, hn, cn, gates, cells = _C._lstm_layer(cast[0], cast[1], cast[2], cast[3], reverse)
        g = _C._lstm_layer_backward(cast[4], cast[5], cast[6], cast[1], cast[2], cast[3], out, gates, cells, reverse)
        got = [t.numpy() for t in (out, hn, cn, *g)]
        assert all(np.isfinite(a).all() for a in got)
        with np.errstate(over="ignore"):
            ref = _lstm_ref(*(a.astype(np.float64) for a in f32[:4]), reverse, *(a.astype(np.float64) for a in f32[4:]))
        # outputs and gate gradients only; dW sums ~T*B such terms of size ~|w| * |h|
        _check(got[:6], ref[:6], 1e-4)


def test_lstm_layer_float32_nan_propagates():
    """A NaN pre-activation reaches the output of its unit at that step (the vector gate math
    must not clamp it away) and the steps before it stay finite."""
    T, B, H = 3, 5, 32
    gx = np.zeros((T, B, 4 * H), np.float32)
    gx[1, 2, 5] = np.nan  # input gate of unit 5, batch row 2, step 1
    out, hn, cn, gates, cells = _C._lstm_layer(nd.tensor(gx), nd.zeros((B, H)), nd.zeros((B, H)),
                                               nd.zeros((4 * H, H)), False)
    o = out.numpy()
    assert np.isfinite(o[0]).all()
    assert np.isnan(o[1, 2, 5]) and np.isnan(gates.numpy()[1, 2, 5])
    assert np.isfinite(np.delete(o[1], 2, axis=0)).all()
