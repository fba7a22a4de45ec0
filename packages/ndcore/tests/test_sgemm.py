"""nd::sgemm (csrc/kernels/sgemm_avx512.cpp, Note [Packed SGEMM]) against NumPy float64: every
transpose combination, alpha/beta (beta == 0 ignores NaN in C), edge sizes around the 12x32
micro-tile and the cache blocks, leading dimensions wider than the rows, K = 0, long K, NaN and
inf, and the choice between nd's kernel and OpenBLAS (ND_SGEMM, ND_SIMD). The kernel is called
directly through ctypes (libndcore's nd_sgemm) so every BLAS argument can be set; the matmul ops
that route through it are checked too. ND_SGEMM=nd forces nd's kernel for every shape in a
subprocess, so its small-shape edges are exercised whatever the size threshold."""
from __future__ import annotations

import ctypes
import os
import pathlib
import subprocess
import sys
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing.opdb import to_np

_LIB = ctypes.CDLL(str(pathlib.Path(nd._C.__file__).with_name("libndcore.so")))
_LIB.nd_sgemm.restype = None
_LIB.nd_sgemm.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float,
                          ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float,
                          ctypes.c_void_p, ctypes.c_int64]
_LIB.nd_sgemm_backend.restype = ctypes.c_char_p
_LIB.nd_sgemm_backend.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
_LIB.nd_simd_level.restype = ctypes.c_char_p

AVX512 = _LIB.nd_simd_level().decode() == "avx512"
FORCED = os.environ.get("ND_SGEMM", "")


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _stored(mat, trans, pad):
    """A float32 buffer holding `mat` (or mat^T when trans) with `pad` extra columns, and its ld."""
    src = mat.T if trans else mat
    buf = np.full((src.shape[0], src.shape[1] + pad), np.float32(-7.5), np.float32)
    buf[:, :src.shape[1]] = src
    return buf, buf.shape[1]


def _sgemm(ta, tb, alpha, a, b, beta, c, pad=(0, 0, 0)):
    """C (float32, returned with its padding stripped) = alpha * a @ b + beta * c via nd_sgemm,
    a [M, K] and b [K, N] logical, each stored transposed when ta/tb, with ld = row + pad."""
    M, K = a.shape
    N = b.shape[1]
    abuf, lda = _stored(np.asarray(a, np.float32), ta, pad[0])
    bbuf, ldb = _stored(np.asarray(b, np.float32), tb, pad[1])
    cbuf = np.full((M, N + pad[2]), np.float32(123.0), np.float32)
    cbuf[:, :N] = c
    _LIB.nd_sgemm(int(ta), int(tb), M, N, K, alpha, abuf.ctypes.data if abuf.size else None, max(lda, 1),
                  bbuf.ctypes.data if bbuf.size else None, max(ldb, 1), beta, cbuf.ctypes.data if cbuf.size else None,
                  max(N + pad[2], 1))
    assert np.all(cbuf[:, N:] == np.float32(123.0)), "wrote past N into C's padding"
    return cbuf[:, :N]


def _ref(alpha, a, b, beta, c):
    r = alpha * (np.asarray(a, np.float64) @ np.asarray(b, np.float64))
    return r if beta == 0 else r + beta * np.asarray(c, np.float64)


def _check(out, ref, a, b, alpha, c, beta):
    # float32 rounding of K products and the sum: bound by K * eps * sum|a||b| (plus C's part).
    K = a.shape[1]
    mag = abs(alpha) * (np.abs(np.asarray(a, np.float64)) @ np.abs(np.asarray(b, np.float64)))
    if beta != 0:
        mag = mag + abs(beta) * np.abs(np.asarray(c, np.float64))
    tol = (2 * max(K, 1) ** 0.5 + 4) * np.finfo(np.float32).eps * (mag + 1e-30)
    err = np.abs(out.astype(np.float64) - ref)
    assert np.all(err <= tol), f"max err {err.max()} (tol {tol[err > tol].min()})"


SIZES = [1, 2, 15, 16, 17, 31, 33]
TRANS = [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M", SIZES + [12, 13, 24, 47])
def test_edge_sizes_all_transposes(M, ta, tb):
    for N in SIZES + [32, 48, 63]:
        for K in [1, 2, 15, 16, 17, 33]:
            r = _rng("edge", M, N, K, ta, tb)
            a = r.standard_normal((M, K)).astype(np.float32)
            b = r.standard_normal((K, N)).astype(np.float32)
            c = r.standard_normal((M, N)).astype(np.float32)
            out = _sgemm(ta, tb, 1.0, a, b, 0.0, c)
            _check(out, _ref(1.0, a, b, 0.0, c), a, b, 1.0, c, 0.0)


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("shape", [(130, 300, 100), (500, 257, 70), (13, 700, 1030), (1024, 256, 768),
                                   (64, 1000, 100), (1000, 64, 100), (97, 513, 45), (2101, 260, 40)])
def test_blocked_shapes(shape, ta, tb):
    """Shapes that cross the kKC and kNC block edges (balanced blocks, partial strips), with A
    stored [K, M] read in place or copied band by band (wide C, or a band spanning >= 2^18
    floats of A: 2101 x 130)."""
    M, K, N = shape
    r = _rng("blocked", shape, ta, tb)
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    c = r.standard_normal((M, N)).astype(np.float32)
    for alpha, beta in [(1.0, 0.0), (1.0, 1.0), (-0.5, 2.0)]:
        out = _sgemm(ta, tb, alpha, a, b, beta, c)
        _check(out, _ref(alpha, a, b, beta, c), a, b, alpha, c, beta)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_leading_dimensions_wider_than_rows(ta, tb):
    r = _rng("ld", ta, tb)
    for M, K, N in [(37, 45, 70), (12, 300, 33), (200, 20, 5)]:
        a = r.standard_normal((M, K)).astype(np.float32)
        b = r.standard_normal((K, N)).astype(np.float32)
        c = r.standard_normal((M, N)).astype(np.float32)
        for pad in [(1, 5, 3), (16, 0, 17), (0, 31, 1)]:
            out = _sgemm(ta, tb, 1.5, a, b, 0.5, c, pad)
            _check(out, _ref(1.5, a, b, 0.5, c), a, b, 1.5, c, 0.5)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_alpha_beta(ta, tb):
    r = _rng("ab", ta, tb)
    M, K, N = 45, 300, 70
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    c = r.standard_normal((M, N)).astype(np.float32)
    nan_c = np.full((M, N), np.nan, np.float32)
    # beta == 0 never reads C: NaN there must not reach the result
    out = _sgemm(ta, tb, 2.0, a, b, 0.0, nan_c)
    _check(out, _ref(2.0, a, b, 0.0, c), a, b, 2.0, c, 0.0)
    # beta == 1 accumulates (two K blocks: the second adds to the first's partial result)
    out = _sgemm(ta, tb, 1.0, a, b, 1.0, c)
    _check(out, _ref(1.0, a, b, 1.0, c), a, b, 1.0, c, 1.0)
    out = _sgemm(ta, tb, -1.0, a, b, -3.0, c)
    _check(out, _ref(-1.0, a, b, -3.0, c), a, b, -1.0, c, -3.0)
    # alpha == 0: C = beta * C, A and B not read (BLAS semantics), beta == 0 gives zeros
    nan_a = np.full_like(a, np.nan)
    np.testing.assert_array_equal(_sgemm(ta, tb, 0.0, nan_a, b, 2.0, c), np.float32(2.0) * c)
    np.testing.assert_array_equal(_sgemm(ta, tb, 0.0, nan_a, b, 0.0, nan_c), np.zeros((M, N), np.float32))


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_k_zero_and_empty(beta):
    r = _rng("k0", beta)
    c = r.standard_normal((5, 7)).astype(np.float32)
    a = np.zeros((5, 0), np.float32)
    b = np.zeros((0, 7), np.float32)
    for ta, tb in TRANS:
        np.testing.assert_array_equal(_sgemm(ta, tb, 1.0, a, b, beta, c), (np.float32(beta) * c) if beta else 0 * c)
    # empty M or N: nothing is written (the padding check in _sgemm would catch a write)
    for M, N in [(0, 7), (5, 0), (0, 0)]:
        out = _sgemm(False, False, 1.0, np.ones((M, 3), np.float32), np.ones((3, N), np.float32), beta,
                     np.ones((M, N), np.float32))
        assert out.shape == (M, N)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_long_k_accumulation(ta, tb):
    """K = 20000 (79 K blocks): the error stays within float32 tolerance, like OpenBLAS's."""
    r = _rng("longk", ta, tb)
    M, K, N = 20, 20000, 35
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    c = np.zeros((M, N), np.float32)
    out = _sgemm(ta, tb, 1.0, a, b, 0.0, c)
    ref = _ref(1.0, a, b, 0.0, c)
    _check(out, ref, a, b, 1.0, c, 0.0)
    # and comparable to float32 BLAS (numpy's OpenBLAS): within 4x its error
    blas = (a @ b).astype(np.float64)
    assert np.abs(out - ref).max() <= 4 * np.abs(blas - ref).max() + 1e-6


@pytest.mark.parametrize("ta,tb", TRANS)
def test_nan_inf_propagate(ta, tb):
    r = _rng("naninf", ta, tb)
    M, K, N = 30, 50, 40
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    a[3, 7] = np.nan
    a[20, 0] = np.inf
    b[9, 33] = -np.inf
    c = np.zeros((M, N), np.float32)
    out = _sgemm(ta, tb, 1.0, a, b, 0.0, c)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-4, atol=1e-4)


def test_backend_choice():
    """nd's kernel needs AVX-512; ND_SGEMM picks a backend for every shape when set."""
    got = _LIB.nd_sgemm_backend(0, 1, 1024, 768, 256).decode()
    if not AVX512 or FORCED == "openblas":
        assert got == "openblas"
    elif FORCED == "nd":
        assert _LIB.nd_sgemm_backend(0, 0, 2, 2, 2).decode() == "nd"
    else:
        assert got == "nd"


# Shapes (ta, tb, M, K, N) on both sides of use_nd's thresholds in sgemm_avx512.cpp, with the
# backend each takes when neither ND_SGEMM nor ND_SIMD overrides it.
THRESHOLDS = [
    ((False, False, 100, 100, 100), "openblas"),  # M*N*K = 1e6: OpenBLAS's small kernels
    ((False, False, 101, 100, 100), "nd"),
    ((True, True, 100, 101, 100), "nd"),
    ((False, False, 4096, 300, 15), "openblas"),  # N < 16
    ((True, False, 4096, 300, 16), "nd"),
    ((False, True, 511, 40, 15), "openblas"),  # A @ B^T: N < 16 and M < 512
    ((False, True, 512, 40, 15), "nd"),
    ((False, True, 3, 5, 16), "nd"),
]


@pytest.mark.parametrize("shape,want", THRESHOLDS)
def test_thresholds(shape, want):
    ta, tb, M, K, N = shape
    got = _LIB.nd_sgemm_backend(int(ta), int(tb), M, N, K).decode()
    if AVX512 and FORCED == "":
        assert got == want
    r = _rng("thr", shape)
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    c = r.standard_normal((M, N)).astype(np.float32)
    out = _sgemm(ta, tb, 0.75, a, b, 1.0, c)
    _check(out, _ref(0.75, a, b, 1.0, c), a, b, 0.75, c, 1.0)


def _run_forced(env_value, simd=None):
    """Runs the tests of this file that call nd_sgemm in a subprocess with ND_SGEMM set."""
    env = {**os.environ, "ND_SGEMM": env_value}
    if simd:
        env["ND_SIMD"] = simd
    args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", __file__, "-k",
            "edge_sizes or alpha_beta or k_zero or nan_inf or backend_choice or thresholds or matmul_ops"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(FORCED != "", reason="already inside a forced run")
@pytest.mark.parametrize("value,simd", [("nd", None), ("openblas", None), ("nd", "avx2")])
def test_forced_backends(value, simd):
    """Each backend over the same cases: nd's kernel below its size threshold, OpenBLAS, and the
    fallback taken when the CPU (here ND_SIMD) lacks AVX-512 even if nd's kernel is asked for."""
    proc = _run_forced(value, simd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("ta,tb", TRANS)
def test_matmul_ops(ta, tb):
    """mm / addmm / matmul / bmm reach nd::sgemm with the four layouts, 1 and 2 threads."""
    r = _rng("ops", ta, tb)
    M, K, N = 150, 260, 90
    a = r.standard_normal((M, K)).astype(np.float32)
    b = r.standard_normal((K, N)).astype(np.float32)
    bias = r.standard_normal((N,)).astype(np.float32)
    ta_ = nd.tensor(np.ascontiguousarray(a.T)).t() if ta else nd.tensor(a)
    tb_ = nd.tensor(np.ascontiguousarray(b.T)).t() if tb else nd.tensor(b)
    old = nd.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            nd.set_num_threads(threads)
            mm = to_np(nd.mm(ta_, tb_))
            _check(mm, _ref(1.0, a, b, 0, None), a, b, 1.0, None, 0)
            am = to_np(nd.addmm(nd.tensor(bias), ta_, tb_, beta=0.5, alpha=2.0))
            ref = 2.0 * (a.astype(np.float64) @ b) + 0.5 * bias
            _check(am, ref, a, b, 2.0, np.broadcast_to(bias, (M, N)), 0.5)
            outs.append(mm)
        if _LIB.nd_sgemm_backend(int(ta), int(tb), M, N, K).decode() == "nd":
            # nd's kernel sums each element in the same order wherever the split puts it
            np.testing.assert_array_equal(outs[0], outs[1])
        bm = to_np(nd.bmm(nd.stack([ta_, ta_]), nd.stack([tb_, tb_])))
        for i in range(2):
            _check(bm[i], _ref(1.0, a, b, 0, None), a, b, 1.0, None, 0)
    finally:
        nd.set_num_threads(old)


@pytest.mark.skipif(not AVX512 or FORCED == "openblas", reason="nd's kernel needs AVX-512")
@pytest.mark.parametrize("M", [1, 5, 13, 32])
@pytest.mark.parametrize("K,N", [(250, 1024), (784, 130), (257, 64), (3000, 200), (64, 4096)])
def test_short_a_reads_b_in_place_with_the_packed_kernels_bits(M, K, N):
    """A @ B with at most 32 rows skips packing B (sgemm_short) yet sums every element's products
    in the packed kernel's order (same K blocks, one FMA chain each): its rows equal those of the
    same product computed as part of 40 rows, which the packed kernel runs, bit for bit, and the
    columns past the last 64-wide strip too."""
    if _LIB.nd_sgemm_backend(0, 0, M, N, K).decode() != "nd":
        pytest.skip("OpenBLAS takes a product this small (ND_SGEMM=nd runs it)")
    rng = _rng("short", M, K, N)
    a40, b = rng.standard_normal((40, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
    zeros = np.zeros((M, N), np.float32)
    short = _sgemm(False, False, 1.0, a40[:M], b, 0.0, zeros)
    tall = _sgemm(False, False, 1.0, a40, b, 0.0, np.zeros((40, N), np.float32))
    np.testing.assert_array_equal(short, tall[:M])
    _check(short, _ref(1.0, a40[:M], b, 0.0, zeros), a40[:M], b, 1.0, zeros, 0.0)
