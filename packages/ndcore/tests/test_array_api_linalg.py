"""The array API's linear algebra on ndcore (main-namespace functions and the ``linalg``
extension), and SciPy running on ndcore tensors through ``__array_namespace__``; NumPy is the
reference, as in test_array_api.py."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import ndcore as nd
from ndcore import array_api as xp
from _array_api_helpers import FLOATS, check, rng, sample, seeded, t  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ---- linear algebra --------------------------------------------------------------------------------------
def test_main_namespace_linalg():
    for dt in ("int32", "float32", "float64"):
        a, b = sample((2, 3, 4), dt), sample((4, 5), dt)
        check(xp.matmul(t(a), t(b)), np.matmul(a, b), rtol=1e-5)
        check(t(a) @ t(b), a @ b, rtol=1e-5)
        check(xp.matrix_transpose(t(a)), np.matrix_transpose(a))
        check(xp.tensordot(t(a), t(b), axes=1), np.tensordot(a, b, axes=1), rtol=1e-5)
        c = sample((4, 3, 6), dt)
        check(xp.tensordot(t(a), t(c), axes=((1, -1), (1, 0))), np.tensordot(a, c, axes=((1, -1), (1, 0))),
              rtol=1e-5)
        check(xp.tensordot(t(a), t(a), axes=0), np.tensordot(a, a, axes=0))
        v1, v2 = sample((2, 1, 4), dt), sample((3, 4), dt)
        check(xp.vecdot(t(v1), t(v2)), np.vecdot(v1, v2), rtol=1e-5)
        check(xp.vecdot(t(a), t(a), axis=-2), np.vecdot(a, a, axis=-2), rtol=1e-5)
    with pytest.raises(ValueError, match="vecdot"):
        xp.vecdot(nd.ones(3), nd.ones(4))


def spd(n, batch=()):
    m = rng().standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


@pytest.mark.parametrize("dt", FLOATS)
def test_linalg_extension(dt):
    la, rt = xp.linalg, (1e-4 if dt == "float32" else 1e-9)
    A = spd(4, (2,)).astype(dt)
    G = rng().standard_normal((2, 5, 3)).astype(dt)
    check(la.cholesky(t(A)), np.linalg.cholesky(A), rtol=rt, atol=rt)
    check(la.cholesky(t(A), upper=True), np.linalg.cholesky(A, upper=True), rtol=rt, atol=rt)
    u, v = sample((2, 3), dt), sample((4, 2, 3), dt)
    check(la.cross(t(u), t(v)), np.linalg.cross(u, v), rtol=rt, atol=rt)
    check(la.cross(t(u.T.copy()), t(u.T.copy()), axis=0), np.cross(u.T, u.T, axis=0), atol=rt)
    check(la.det(t(A)), np.linalg.det(A), rtol=rt)
    check(la.diagonal(t(G), offset=-1), np.linalg.diagonal(G, offset=-1))
    w, V = la.eigh(t(A))
    check(w, np.linalg.eigvalsh(A), rtol=rt)
    check(V @ (w.unsqueeze(-1) * V.mT), A, rtol=rt, atol=rt * 10)
    check(la.eigvalsh(t(A)), np.linalg.eigvalsh(A), rtol=rt)
    check(la.inv(t(A)), np.linalg.inv(A), rtol=rt, atol=rt)
    check(la.matmul(t(G), t(A[:, :3, :3])), np.linalg.matmul(G, A[:, :3, :3]), rtol=rt)
    for ord_ in ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf):
        for kd in (False, True):
            check(la.matrix_norm(t(G), ord=ord_, keepdims=kd), np.linalg.matrix_norm(G, ord=ord_, keepdims=kd),
                  rtol=rt)
    for n in (-2, -1, 0, 1, 2, 3, 5):
        check(la.matrix_power(t(A), n), np.linalg.matrix_power(A, n), rtol=rt * 10, atol=rt)
    R = (rng().standard_normal((3, 5, 2)) @ rng().standard_normal((3, 2, 4))).astype(dt)  # rank 2
    # float32 round-off puts the zero singular values of R near the default cutoff: pass rtol there
    r_tol = None if dt == "float64" else 1e-4
    check(la.matrix_rank(t(R), rtol=r_tol), np.linalg.matrix_rank(R, rtol=r_tol))
    check(la.matrix_rank(t(G)), np.linalg.matrix_rank(G))
    check(la.matrix_rank(t(R), rtol=0.5), np.linalg.matrix_rank(R, rtol=0.5))
    check(la.matrix_rank(t(R), atol=1.0), np.linalg.matrix_rank(R, tol=1.0))
    check(la.matrix_transpose(t(G)), np.linalg.matrix_transpose(G))
    check(la.outer(t(u[0]), t(v[0, 0])), np.linalg.outer(u[0], v[0, 0]))
    check(la.pinv(t(G)), np.linalg.pinv(G), rtol=rt * 10, atol=rt)
    check(la.pinv(t(R), rtol=r_tol), np.linalg.pinv(R, rtol=r_tol), rtol=rt * 100, atol=rt * 10)
    for mode in ("reduced", "complete"):
        Q, Rr = la.qr(t(G), mode=mode)
        nq, nr = np.linalg.qr(G, mode=mode)
        check(Q @ Rr, G, rtol=rt, atol=rt)
        assert Q.shape == nq.shape and Rr.shape == nr.shape
        check(xp.abs(Rr), np.abs(nr), rtol=rt, atol=rt)
    s, ld = la.slogdet(t(A))
    ns, nld = np.linalg.slogdet(A)
    check(s, ns)
    check(ld, nld, rtol=rt)
    B, b = sample((2, 4, 3), dt), sample((4,), dt)
    check(la.solve(t(A), t(B)), np.linalg.solve(A, B), rtol=rt, atol=rt)
    check(la.solve(t(A), t(b)), np.linalg.solve(A, b), rtol=rt, atol=rt)
    A3, B3 = spd(4, (4,)).astype(dt), sample((4, 4), dt)  # B3: one matrix for the standard, vectors for torch
    check(la.solve(t(A3), t(B3)), np.linalg.solve(A3, B3), rtol=rt, atol=rt)
    U, S, Vh = la.svd(t(G), full_matrices=False)
    check(S, np.linalg.svd(G, compute_uv=False), rtol=rt)
    check(U @ (S.unsqueeze(-1) * Vh), G, rtol=rt, atol=rt)
    assert la.svd(t(G)).U.shape == (2, 5, 5)
    check(la.svdvals(t(G)), np.linalg.svdvals(G), rtol=rt)
    check(la.tensordot(t(G), t(G), axes=((1, 2), (1, 2))), np.linalg.tensordot(G, G, axes=((1, 2), (1, 2))), rtol=rt)
    for off in (-1, 0, 2):
        check(la.trace(t(G), offset=off), np.linalg.trace(G, offset=off), rtol=rt, atol=rt)
    check(la.trace(t(G), dtype=xp.float64), np.linalg.trace(G, dtype="float64"), rtol=rt)
    check(la.vecdot(t(G), t(G), axis=-2), np.linalg.vecdot(G, G, axis=-2), rtol=rt)
    for ord_ in (1, 2, 3, 0, math.inf, -math.inf):
        for ax in (None, -1, (0, 2)):
            check(la.vector_norm(t(G), axis=ax, keepdims=True, ord=ord_),
                  np.linalg.vector_norm(G, axis=ax, keepdims=True, ord=ord_), rtol=rt)


def test_errors_name_the_function():
    with pytest.raises(ValueError, match="moveaxis"):
        xp.moveaxis(nd.ones(2, 3), (0, 1), 0)
    with pytest.raises(IndexError, match="flip"):
        xp.flip(nd.ones(2, 3), axis=2)
    with pytest.raises(ValueError, match="matrix_power"):
        xp.linalg.matrix_power(nd.ones(2, 3), 2)
    with pytest.raises(ValueError, match="outer"):
        xp.linalg.outer(nd.ones(2, 3), nd.ones(3))
    with pytest.raises(ValueError, match="isdtype"):
        xp.isdtype(xp.int8, "integer")
    with pytest.raises(ValueError, match="diff"):
        xp.diff(nd.tensor(1.0))


def test_linalg_int_trace():
    a = sample((2, 3, 3), "int8")
    check(xp.linalg.trace(t(a)), np.linalg.trace(a))


# ---- a real array API consumer --------------------------------------------------------------------------
_SCIPY_SCRIPT = """
import numpy as np, ndcore as nd
from scipy import cluster, special, stats
a = np.random.default_rng(0).standard_normal((4, 5))
x = nd.tensor(a)
for name, fn in [("logsumexp", lambda m: special.logsumexp(m, axis=1)), ("zscore", lambda m: stats.zscore(m, axis=1)),
                 ("skew", lambda m: stats.skew(m, axis=0)), ("rankdata", lambda m: stats.rankdata(m, axis=1)),
                 ("whiten", lambda m: cluster.vq.whiten(m)), ("sem", lambda m: stats.sem(m, axis=1))]:
    got = fn(x)
    assert isinstance(got, nd.Tensor), (name, type(got))
    np.testing.assert_allclose(got.numpy(), fn(a), rtol=1e-10, atol=1e-12, err_msg=name)
"""


def test_scipy_through_array_api():
    # SciPy's array API mode dispatches on x.__array_namespace__(); it reads SCIPY_ARRAY_API at
    # import, hence the subprocess
    import subprocess
    import sys

    pytest.importorskip("scipy")
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    r = subprocess.run([sys.executable, "-c", _SCIPY_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
