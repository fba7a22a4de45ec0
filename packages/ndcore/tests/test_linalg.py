"""nd.linalg (the LAPACK rows of the op table) against NumPy, and torch when importable: every
function over float32/float64 and layouts (contiguous, transposed, sliced, batched, expanded
batch, empty), decompositions through their reconstructions, norms, out=, and the errors for
singular, non-positive-definite, non-square and wrongly typed inputs."""
from __future__ import annotations

import importlib.util
import zlib

import numpy as np
import pytest

import ndcore as nd
from ndcore.testing import OPDB
from ndcore.testing.opdb import to_np

HAS_TORCH = importlib.util.find_spec("torch") is not None
OPS = {op.name: op for op in OPDB}
DTYPES = ["float32", "float64"]
INF = float("inf")


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _tol(name, dtype):
    rtol, atol = OPS[name].tol(dtype)
    return {"rtol": rtol, "atol": atol}


def _close(actual, expected, name, dtype):
    actual = to_np(actual) if isinstance(actual, nd.Tensor) else actual
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64), **_tol(name, dtype))


def _matrices(kind, rng, shape):
    """Well-conditioned test matrices: general, symmetric or symmetric positive-definite."""
    n = shape[-1]
    x = rng.standard_normal(shape)
    if kind == "general":
        return x + n * np.eye(n) if shape[-1] == shape[-2] else x
    sym = (x + np.swapaxes(x, -1, -2)) / 2
    return sym if kind == "symmetric" else x @ np.swapaxes(x, -1, -2) + n * np.eye(n)


# layout -> (shape of the matrices as NumPy builds them, the array stored in the tensor, the nd
# view of it that holds those matrices, the same view in NumPy)
LAYOUTS = {
    "contiguous": ((4, 4), lambda m: m, lambda t: t, lambda m: m),
    "transposed": ((4, 4), lambda m: m.T.copy(), lambda t: t.mT, lambda m: m),
    "sliced": ((4, 4), lambda m: np.kron(m, np.ones((2, 2))), lambda t: t[::2, 1::2], lambda m: m),
    "batched": ((2, 3, 5, 5), lambda m: m, lambda t: t, lambda m: m),
    "batch_permuted": ((2, 5, 5), lambda m: m.transpose(1, 0, 2).copy(), lambda t: t.permute(1, 0, 2), lambda m: m),
    "expanded": ((1, 3, 3), lambda m: m, lambda t: t.expand(4, 3, 3), lambda m: np.broadcast_to(m, (4, 3, 3))),
    "empty_batch": ((0, 3, 3), lambda m: m, lambda t: t, lambda m: m),
    "empty_matrix": ((0, 0), lambda m: m, lambda t: t, lambda m: m),
}
SQUARE_OPS = {  # name -> (matrix kind, nd call, NumPy reference)
    "linalg_inv": ("general", nd.linalg.inv, np.linalg.inv),
    "linalg_det": ("general", nd.linalg.det, np.linalg.det),
    "linalg_slogdet": ("general", lambda t: nd.linalg.slogdet(t).logabsdet, lambda a: np.linalg.slogdet(a)[1]),
    "linalg_cholesky": ("spd", nd.linalg.cholesky, np.linalg.cholesky),
    "linalg_eigvalsh": ("symmetric", nd.linalg.eigvalsh, np.linalg.eigvalsh),
    "linalg_svdvals": ("general", nd.linalg.svdvals, lambda a: np.linalg.svd(a, compute_uv=False)),
}


def _sample(kind, dtype, layout, *key):
    shape, store, view, np_view = LAYOUTS[layout]
    m = _matrices(kind, _rng(kind, dtype, layout, *key), shape).astype(dtype)
    return view(nd.tensor(store(m))), np_view(m)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SQUARE_OPS))
def test_square_ops_match_numpy(name, dtype, layout):
    kind, fn, ref = SQUARE_OPS[name]
    x, a = _sample(kind, dtype, layout, name)
    out = fn(x)
    expected = ref(a.astype(np.float64))
    assert out.dtype == x.dtype
    assert tuple(out.shape) == np.shape(expected)
    _close(out, expected, name, dtype)


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "batched", "expanded", "empty_batch"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_matches_numpy(dtype, layout):
    A, a = _sample("general", dtype, layout, "solve")
    b = _rng("rhs", dtype, layout).standard_normal(a.shape[:-1] + (2,)).astype(dtype)
    _close(nd.linalg.solve(A, nd.tensor(b)), np.linalg.solve(a.astype(np.float64), b), "linalg_solve", dtype)
    xt = nd.linalg.solve(A, nd.tensor(b.swapaxes(-1, -2).copy()), left=False)  # X A = B
    _close(xt, np.swapaxes(np.linalg.solve(np.swapaxes(a, -1, -2).astype(np.float64), b), -1, -2), "linalg_solve", dtype)


# (A shape, B shape, left, result shape): torch's vector rule and batch broadcasting
SOLVE_SHAPES = [((3, 3), (3,), True, (3,)), ((2, 3, 3), (3,), True, (2, 3)), ((2, 3, 3), (2, 3), True, (2, 3)),
                ((2, 3, 3), (4, 1, 3, 2), True, (4, 2, 3, 2)), ((3, 3), (2, 3), False, (2, 3)),
                ((3, 3), (3, 0), True, (3, 0))]


@pytest.mark.parametrize(("sa", "sb", "left", "want"), SOLVE_SHAPES)
def test_solve_broadcasting(sa, sb, left, want):
    rng = _rng("solve-bcast", sa, sb)
    a, b = _matrices("general", rng, sa), rng.standard_normal(sb)
    x = nd.linalg.solve(nd.tensor(a), nd.tensor(b), left=left)
    assert tuple(x.shape) == want
    vector = len(sb) == 1 or sb == sa[:-1]
    col = b[..., None] if vector else b
    t = lambda m: np.swapaxes(m, -1, -2)  # noqa: E731
    expected = np.linalg.solve(a, col) if left else t(np.linalg.solve(t(a), t(col)))
    _close(x, expected[..., 0] if vector else expected, "linalg_solve", "float64")
    if HAS_TORCH:
        import torch

        assert tuple(torch.linalg.solve(torch.tensor(a), torch.tensor(b), left=left).shape) == want


QR_SHAPES = [(5, 3), (3, 5), (4, 4), (2, 4, 3), (2, 3, 4), (0, 3), (3, 0), (2, 0, 0)]


@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
@pytest.mark.parametrize("shape", QR_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_qr_reconstructs(dtype, shape, mode):
    a = _rng("qr", dtype, shape).standard_normal(shape).astype(dtype)
    A = nd.tensor(a).mT.contiguous().mT  # a column-major layout
    Q, R = nd.linalg.qr(A, mode)
    m, n = shape[-2:]
    k = min(m, n)
    rows = m if mode == "complete" else k
    assert tuple(R.shape) == shape[:-2] + (rows, n)
    r = to_np(R)
    np.testing.assert_array_equal(np.triu(r), r)
    if mode == "r":
        assert tuple(Q.shape) == (0,)
        _close(np.abs(r), np.abs(np.linalg.qr(a.astype(np.float64), "r")), "linalg_qr", dtype)
        return
    q = to_np(Q)
    assert q.shape == shape[:-2] + (m, rows)
    _close(Q @ R, a, "linalg_qr", dtype)
    _close(Q.mT @ Q, np.broadcast_to(np.eye(rows), q.shape[:-2] + (rows, rows)), "linalg_qr", dtype)


SVD_SHAPES = [(5, 3), (3, 5), (4, 4), (2, 3, 4, 2), (0, 3), (3, 0), (1, 1)]


@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("shape", SVD_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_svd_reconstructs(dtype, shape, full):
    a = _rng("svd", dtype, shape).standard_normal(shape).astype(dtype)
    U, S, Vh = nd.linalg.svd(nd.tensor(a).mT.mT, full_matrices=full)
    m, n = shape[-2:]
    k = min(m, n)
    assert tuple(U.shape) == shape[:-2] + (m, m if full else k)
    assert tuple(Vh.shape) == shape[:-2] + (n if full else k, n)
    _close(S, np.linalg.svd(a.astype(np.float64), compute_uv=False), "linalg_svd", dtype)
    us = U[..., :, :k] * S.unsqueeze(-2)
    _close(us @ Vh[..., :k, :], a, "linalg_svd", dtype)
    for M in (U, Vh.mT):  # orthonormal columns, identities for the empty full bases
        _close(M.mT @ M, np.broadcast_to(np.eye(M.shape[-1]), tuple(M.shape[:-2]) + (M.shape[-1],) * 2),
               "linalg_svd", dtype)


@pytest.mark.parametrize("uplo", ["L", "U"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "batched", "empty_matrix"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_eigh_reconstructs(dtype, layout, uplo):
    A, a = _sample("general", dtype, layout, "eigh")
    w, V = nd.linalg.eigh(A, UPLO=uplo)
    sym = np.tril(a) if uplo == "L" else np.triu(a)  # only that triangle is read
    sym = (sym + np.swapaxes(sym, -1, -2) - sym * np.eye(a.shape[-1], dtype=dtype)).astype(dtype)
    _close(w, np.linalg.eigvalsh(sym.astype(np.float64)), "linalg_eigh", dtype)
    assert np.all(np.diff(to_np(w), axis=-1) >= 0)
    _close(nd.tensor(sym) @ V, to_np(V * w.unsqueeze(-2)), "linalg_eigh", dtype)
    _close(nd.linalg.eigvalsh(A, uplo), to_np(w), "linalg_eigvalsh", dtype)


@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_reconstructs(dtype, upper):
    a = _matrices("spd", _rng("chol", dtype), (3, 5, 5)).astype(dtype)
    F = nd.linalg.cholesky(nd.tensor(a), upper=upper)
    f = to_np(F)
    np.testing.assert_array_equal(f, np.triu(f) if upper else np.tril(f))
    _close(F.mT @ F if upper else F @ F.mT, a, "linalg_cholesky", dtype)


def test_det_slogdet_singular_and_sign():
    a = np.array([[[1.0, 2.0], [2.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]], [[2.0, 0.0], [0.0, -3.0]]])
    assert nd.linalg.det(nd.tensor(a)).tolist() == pytest.approx([0.0, -1.0, -6.0])
    sign, logabs = nd.linalg.slogdet(nd.tensor(a))
    assert sign.tolist() == [0.0, -1.0, -1.0]
    assert logabs.tolist()[0] == -INF and logabs.tolist()[2] == pytest.approx(np.log(6.0))


def test_large_and_many_small_matrices():
    # n > 64 runs one matrix at a time (OpenBLAS threads inside); many small ones use the pool
    rng = _rng("sizes")
    big = _matrices("general", rng, (130, 130))
    np.testing.assert_allclose(to_np(nd.linalg.inv(nd.tensor(big))), np.linalg.inv(big), **_tol("linalg_inv", "float64"))
    small = _matrices("spd", rng, (64, 6, 6)).astype(np.float32)
    _close(nd.linalg.cholesky(nd.tensor(small)), np.linalg.cholesky(small.astype(np.float64)), "linalg_cholesky", "float32")


def test_nan_input_gives_nan_not_an_argument_error():
    x = nd.tensor([[float("nan"), 1.0], [1.0, 2.0]])
    assert np.isnan(to_np(nd.linalg.det(x)))
    assert np.isnan(to_np(nd.linalg.solve(x, nd.ones(2)))).any()


def test_out_and_named_tuples():
    a = _matrices("general", _rng("out"), (3, 3))
    out = nd.empty(0, dtype=nd.float64)
    assert nd.linalg.inv(nd.tensor(a), out=out) is out and tuple(out.shape) == (3, 3)
    np.testing.assert_allclose(to_np(out), np.linalg.inv(a), **_tol("linalg_inv", "float64"))
    q, r = nd.empty(0, dtype=nd.float64), nd.empty(0, dtype=nd.float64)
    nd.linalg.qr(nd.tensor(a), out=(q, r))
    np.testing.assert_allclose(to_np(q @ r), a, **_tol("linalg_qr", "float64"))
    res = nd.linalg.qr(nd.tensor(a))
    assert res._fields == ("Q", "R") and res.Q is res[0]
    assert nd.linalg.svd(nd.tensor(a))._fields == ("U", "S", "Vh")
    assert nd.linalg.eigh(nd.tensor(a))._fields == ("eigenvalues", "eigenvectors")
    assert nd.linalg.slogdet(nd.tensor(a))._fields == ("sign", "logabsdet")
    assert not hasattr(nd, "linalg_inv") and "linalg" in nd.__all__


VECTOR_ORDS = [2, 1, INF, -INF, 0, 3, 0.5]
MATRIX_ORDS = ["fro", "nuc", 1, -1, 2, -2, INF, -INF]


def _np_vector_norm(a, ord, dim, keepdim):
    x = np.abs(a)
    if ord == INF:
        return x.max(axis=dim, keepdims=keepdim)
    if ord == -INF:
        return x.min(axis=dim, keepdims=keepdim)
    if ord == 0:
        return (x != 0).sum(axis=dim, keepdims=keepdim).astype(a.dtype)
    return (x ** ord).sum(axis=dim, keepdims=keepdim) ** (1.0 / ord)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ord", VECTOR_ORDS)
def test_vector_norm(ord, dtype):
    a = _rng("vnorm", ord, dtype).standard_normal((3, 4, 5)).astype(dtype)
    x = nd.tensor(a)
    for dim, keepdim in [(None, False), (1, False), ((0, 2), True), (-1, True)]:
        out = nd.linalg.vector_norm(x, ord, dim, keepdim)
        want = _np_vector_norm(a.astype(np.float64), ord, dim, keepdim)
        assert tuple(out.shape) == want.shape
        _close(out, want, "linalg_vector_norm", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ord", MATRIX_ORDS)
def test_matrix_norm(ord, dtype):
    a = _rng("mnorm", ord, dtype).standard_normal((2, 4, 3)).astype(dtype)
    x = nd.tensor(a)
    want = np.linalg.norm(a.astype(np.float64), ord, axis=(-2, -1))
    _close(nd.linalg.matrix_norm(x, ord), want, "linalg_matrix_norm", dtype)
    _close(nd.linalg.matrix_norm(x, ord, dim=(0, 2), keepdim=True),
           np.linalg.norm(a.astype(np.float64), ord, axis=(0, 2), keepdims=True), "linalg_matrix_norm", dtype)
    _close(nd.linalg.norm(x[0], ord), np.linalg.norm(a[0].astype(np.float64), ord), "linalg_norm", dtype)
    if HAS_TORCH:
        import torch

        _close(nd.linalg.matrix_norm(x, ord), torch.linalg.matrix_norm(torch.tensor(a), ord).numpy(), "linalg_matrix_norm", dtype)


def test_norm_dispatch_and_cross():
    a = _rng("norm").standard_normal((2, 3, 3))
    x = nd.tensor(a)
    np.testing.assert_allclose(to_np(nd.linalg.norm(x)), np.linalg.norm(a.ravel()))
    np.testing.assert_allclose(to_np(nd.linalg.norm(x, dim=(1, 2))), np.linalg.norm(a, axis=(1, 2)))
    np.testing.assert_allclose(to_np(nd.linalg.norm(x, 1, dim=-1)), np.linalg.norm(a, 1, axis=-1))
    _close(nd.linalg.cross(x, x.flip([-1])), np.cross(a, a[..., ::-1]), "cross", "float64")


def _mat(*shape, dtype=nd.float32):
    return nd.ones(*shape, dtype=dtype)


SINGULAR = nd.tensor([[1.0, 2.0], [2.0, 4.0]])
NOT_PD = nd.tensor([[1.0, 2.0], [2.0, 1.0]])
# (id, call, exception type, regexes the message must all match)
ERRORS = [
    ("inv_singular", lambda: nd.linalg.inv(SINGULAR), ValueError,
     [r"^\[linalg_inv\] The diagonal element 2 is zero", "singular"]),
    ("inv_singular_batch", lambda: nd.linalg.inv(nd.stack([nd.eye(2), SINGULAR])), ValueError,
     [r"^\[linalg_inv\] \(Batch element 1\): The diagonal element 2 is zero"]),
    ("solve_singular", lambda: nd.linalg.solve(SINGULAR, nd.ones(2)), ValueError, [r"^\[linalg_solve\]", "singular"]),
    ("cholesky_not_pd", lambda: nd.linalg.cholesky(NOT_PD), ValueError,
     [r"^\[linalg_cholesky\]", "not positive-definite", "order 2"]),
    ("cholesky_batch", lambda: nd.linalg.cholesky(nd.stack([NOT_PD, nd.eye(2)])), ValueError,
     [r"\(Batch element 0\)", "positive-definite"]),
    ("inv_not_square", lambda: nd.linalg.inv(_mat(2, 3)), ValueError,
     [r"^\[linalg_inv\]", "square", "2 by 3", r"\(2, 3\)"]),
    ("det_not_square", lambda: nd.linalg.det(_mat(4, 2, 3)), ValueError, [r"^\[linalg_det\]", r"\(4, 2, 3\)"]),
    ("eigh_not_square", lambda: nd.linalg.eigh(_mat(2, 3)), ValueError, [r"^\[linalg_eigh\]", "square"]),
    ("inv_1d", lambda: nd.linalg.inv(_mat(3)), ValueError, [r"^\[linalg_inv\]", "at least 2 dimensions", r"\(3,\)"]),
    ("svd_0d", lambda: nd.linalg.svd(nd.tensor(1.0)), ValueError, [r"^\[linalg_svd\]", r"\(\)"]),
    ("inv_int", lambda: nd.linalg.inv(_mat(2, 2, dtype=nd.int64)), TypeError, [r"^\[linalg_inv\]", "int64"]),
    ("qr_half", lambda: nd.linalg.qr(_mat(2, 2, dtype=nd.float16)), TypeError, [r"^\[linalg_qr\]", "float16"]),
    ("qr_mode", lambda: nd.linalg.qr(_mat(2, 2), "x"), ValueError, [r"^\[linalg_qr\]", "'x'", "complete"]),
    ("eigh_uplo", lambda: nd.linalg.eigh(_mat(2, 2), "X"), ValueError, [r"^\[linalg_eigh\]", "UPLO", "'X'"]),
    ("solve_shapes", lambda: nd.linalg.solve(_mat(3, 3), _mat(4, 2)), ValueError,
     [r"^\[linalg_solve\]", r"\(3, 3\)", r"\(4, 2\)"]),
    ("solve_dtypes", lambda: nd.linalg.solve(_mat(2, 2), _mat(2, dtype=nd.float64)), TypeError,
     [r"^\[linalg_solve\]", "float32", "float64"]),
    ("solve_batch", lambda: nd.linalg.solve(_mat(2, 3, 3), _mat(4, 3, 1)), ValueError, [r"^\[linalg_solve\]"]),
    ("vector_norm_int", lambda: nd.linalg.vector_norm(_mat(3, dtype=nd.int64)), TypeError, [r"^\[linalg_vector_norm\]"]),
    ("matrix_norm_1d", lambda: nd.linalg.matrix_norm(_mat(3)), ValueError, [r"^\[linalg_matrix_norm\]", r"\(3,\)"]),
    ("matrix_norm_ord", lambda: nd.linalg.matrix_norm(_mat(2, 2), 3), ValueError, [r"^\[linalg_matrix_norm\]", "order 3"]),
    ("norm_3d_ord", lambda: nd.linalg.norm(_mat(2, 2, 2), 2), ValueError, [r"^\[linalg_norm\]", r"\(2, 2, 2\)"]),
]


@pytest.mark.parametrize(("call", "exc", "patterns"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(call, exc, patterns):
    with pytest.raises(exc) as info:
        call()
    for p in patterns:
        assert __import__("re").search(p, str(info.value)), (p, str(info.value))


def test_empty_svd_bases_and_torch():
    # empty inputs: no singular values, identity full bases (as torch returns)
    for shape in [(0, 3), (3, 0)]:
        U, S, Vh = nd.linalg.svd(nd.zeros(*shape))
        assert tuple(S.shape) == (0,)
        np.testing.assert_array_equal(to_np(U), np.eye(shape[0]))
        np.testing.assert_array_equal(to_np(Vh), np.eye(shape[1]))
    if not HAS_TORCH:
        return
    import torch

    a = _matrices("general", _rng("torch"), (2, 4, 4))
    s = _matrices("spd", _rng("torch-spd"), (2, 4, 4))
    x, t = nd.tensor(a), torch.tensor(a)
    for name, ours, theirs in [
            ("linalg_inv", nd.linalg.inv(x), torch.linalg.inv(t)), ("linalg_det", nd.linalg.det(x), torch.linalg.det(t)),
            ("linalg_slogdet", nd.linalg.slogdet(x).logabsdet, torch.linalg.slogdet(t).logabsdet),
            ("linalg_svdvals", nd.linalg.svdvals(x), torch.linalg.svdvals(t)),
            ("linalg_cholesky", nd.linalg.cholesky(nd.tensor(s)), torch.linalg.cholesky(torch.tensor(s))),
            ("linalg_eigvalsh", nd.linalg.eigvalsh(nd.tensor(s)), torch.linalg.eigvalsh(torch.tensor(s))),
            ("linalg_qr", nd.linalg.qr(x, "r").R.abs(), torch.linalg.qr(t, "r").R.abs())]:
        _close(ours, theirs.numpy(), name, "float64")
