"""nd.linalg: torch.linalg's functions over the LAPACK rows of the op table (``linalg_*``).

Every function takes float32/float64 matrices, batched over leading dims, and raises a
ValueError naming the op and the batch element for singular, non-positive-definite or
non-converging inputs. Multi-output functions return named tuples (``Q, R = qr(A)``,
``qr(A).R``) with the field names of the table's return names.

The array API standard's linalg extension is complete here: ``pinv``, ``matrix_rank``,
``matrix_power``, ``trace``, ``diagonal``, ``outer``, ``vecdot``, ``tensordot``, ``matmul`` and
``matrix_transpose`` are composed from the LAPACK rows and matmul; ``axis=``/``keepdims=`` are
accepted beside ``dim=``/``keepdim=``.
"""
from __future__ import annotations

from . import _C, _ops_gen

__all__ = ["cholesky", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv", "matmul", "matrix_norm", "matrix_power",
           "matrix_rank", "matrix_transpose", "norm", "outer", "pinv", "qr", "slogdet", "solve", "svd", "svdvals",
           "tensordot", "trace", "vecdot", "vector_norm"]


def _call(fn, *args, out=None, **kwargs):
    return fn(*args, **kwargs) if out is None else fn(*args, out=out, **kwargs)


def inv(A, *, out=None):
    """Inverse of square matrices.

    Args:
        A: tensor of shape (*, n, n).
    Returns:
        A^-1 of shape (*, n, n). Raises ValueError when a matrix is singular.
    """
    return _call(_C.linalg_inv, A, out=out)


def solve(A, B, *, left=True, out=None):
    """Solves AX = B (or XA = B with ``left=False``) for square A.

    Args:
        A: tensor of shape (*, n, n).
        B: tensor of shape (*, n, k), or (*, n) / (n,) for a batch of vectors; batch dims broadcast.
    Returns:
        X of B's shape (with the broadcast batch). Raises ValueError when A is singular.
    """
    return _call(_C.linalg_solve, A, B, left=left, out=out)


def det(A, *, out=None):
    """Determinant of square matrices, shape (*,), computed from an LU factorisation."""
    return _call(_C.linalg_det, A, out=out)


def slogdet(A, *, out=None):
    """Sign and log of the absolute determinant: a named tuple ``(sign, logabsdet)`` of shape (*,).

    A singular matrix gives sign 0 and logabsdet -inf.
    """
    return _call(_C.linalg_slogdet, A, out=out)


def cholesky(A, *, upper=False, out=None):
    """Cholesky factor L (A = L L^T) of symmetric positive-definite matrices.

    Args:
        A: tensor of shape (*, n, n); only its lower triangle is read (upper with ``upper=True``).
        upper: return U = L^T instead.
    Returns:
        The triangular factor, shape (*, n, n). Raises ValueError when A is not positive-definite.
    """
    return _call(_C.linalg_cholesky, A, upper=upper, out=out)


def qr(A, mode="reduced", *, out=None):
    """QR decomposition A = QR.

    Args:
        A: tensor of shape (*, m, n).
        mode: 'reduced' (Q (*, m, k), R (*, k, n), k = min(m, n)), 'complete' (Q (*, m, m),
            R (*, m, n)) or 'r' (R only; Q is empty).
    Returns:
        Named tuple ``(Q, R)``.
    """
    return _call(_C.linalg_qr, A, mode, out=out)


def svd(A, full_matrices=True, *, driver=None, out=None):
    """Singular value decomposition A = U diag(S) Vh, singular values in descending order.

    Args:
        A: tensor of shape (*, m, n).
        full_matrices: U (*, m, m) and Vh (*, n, n) when True, else (*, m, k) and (*, k, n).
        driver: accepted for torch compatibility; LAPACK's gesdd is always used.
    Returns:
        Named tuple ``(U, S, Vh)``.
    """
    return _call(_C.linalg_svd, A, full_matrices, driver=driver, out=out)


def svdvals(A, *, driver=None, out=None):
    """Singular values of A (*, m, n) in descending order, shape (*, min(m, n)); no vectors computed."""
    return _call(_C.linalg_svdvals, A, driver=driver, out=out)


def eigh(A, UPLO="L", *, out=None):
    """Eigen-decomposition of symmetric matrices: A = V diag(w) V^T.

    Args:
        A: tensor of shape (*, n, n); only the triangle named by UPLO ('L' or 'U') is read.
    Returns:
        Named tuple ``(eigenvalues, eigenvectors)``: eigenvalues ascending (*, n), eigenvectors
        as the columns of (*, n, n).
    """
    return _call(_C.linalg_eigh, A, UPLO, out=out)


def eigvalsh(A, UPLO="L", *, out=None):
    """Eigenvalues of symmetric matrices, ascending, shape (*, n); no vectors computed."""
    return _call(_C.linalg_eigvalsh, A, UPLO, out=out)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    """Vector norm sum(|x|^ord)^(1/ord) over `dim` (all elements when None); ord may be inf, -inf, 0.
    ``axis``/``keepdims`` are the array API's names of ``dim``/``keepdim``; ``axis=()`` gives |x|."""
    dim = dim if axis is None else axis
    keepdim = keepdim if keepdims is None else keepdims
    if isinstance(axis, (tuple, list)) and not axis:
        return _C.abs(x) if dtype is None else _C.abs(x).to(dtype)
    return _ops_gen.linalg_vector_norm(x, ord, dim, keepdim, dtype=dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, keepdims=None):
    """Matrix norm over the two dims `dim`: 'fro', 'nuc', inf, -inf, 1, -1, 2 or -2."""
    keepdim = keepdim if keepdims is None else keepdims
    return _ops_gen.linalg_matrix_norm(A, ord, list(dim), keepdim, dtype=dtype)


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """Vector norm, or matrix norm when `dim` has two dims or A is 2-D with an `ord` given."""
    return _ops_gen.linalg_norm(A, ord, dim, keepdim, dtype=dtype)


def cross(input, other, *, dim=-1, axis=None):
    """Cross product of 3-vectors along `dim` (``axis``; inputs broadcast)."""
    return _ops_gen.cross(input, other, dim if axis is None else axis)


# ---- the array API's linalg extension: composed from the ops above -------------------------------
def matmul(x1, x2, /):
    """Matrix product with broadcasting, as ``x1 @ x2``."""
    return _C.matmul(x1, x2)


def matrix_transpose(x, /):
    """Swaps the last two dims of (a stack of) matrices."""
    return x.mT


def diagonal(x, /, *, offset=0, dim1=-2, dim2=-1):
    """The ``offset`` diagonal of (a stack of) matrices: shape (*, k)."""
    return _C.diagonal(x, offset, dim1, dim2)


def trace(x, /, *, offset=0, dtype=None):
    """Sum of the ``offset`` diagonal of (a stack of) matrices: shape (*,); integers sum in int64."""
    return _C.sum(_C.diagonal(x, offset, -2, -1), [-1], dtype=dtype)


def outer(x1, x2, /):
    """Outer product of two 1-D arrays: shape (n, m)."""
    if x1.dim() != 1 or x2.dim() != 1:
        raise ValueError(f"[outer] expects two 1-D arrays, got shapes {tuple(x1.shape)} and {tuple(x2.shape)}")
    return _ops_gen.outer(x1, x2)


def tensordot(x1, x2, /, *, axes=2):
    """Contracts ``axes`` (an int, or two sequences of axes) of x1 and x2."""
    from ._array_api import tensordot as td
    return td(x1, x2, axes=axes)


def vecdot(x1, x2, /, *, axis=-1, dim=None):
    """Dot product of vectors along ``axis`` (``dim``), batch dims broadcast."""
    from ._array_api import vecdot as vd
    return vd(x1, x2, axis=axis if dim is None else dim)


def matrix_power(A, n, /):
    """A to the integer power n by repeated squaring (n < 0 inverts first; n = 0 gives identity)."""
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"[matrix_power] expects square matrices (*, n, n), got shape {tuple(A.shape)}")
    if not isinstance(n, int):
        raise TypeError(f"[matrix_power] exponent must be an int, got {type(n).__name__}")
    if n == 0:
        k = A.shape[-1]
        return _C.eye(k, dtype=A.dtype).expand(tuple(A.shape)).clone()
    base, n = (inv(A), -n) if n < 0 else (A, n)
    result = None
    while n:
        if n & 1:
            result = base if result is None else _C.matmul(result, base)
        n >>= 1
        if n:
            base = _C.matmul(base, base)
    return result


def _tolerance(S, shape, atol, rtol):
    # S: (*, k) descending singular values; the cutoff of numpy/torch: max(atol, rtol * S_max),
    # with rtol = max(m, n) * eps when neither tolerance is given.
    smax = S.narrow(-1, 0, 1) if S.shape[-1] else S.sum(-1, keepdim=True)
    if rtol is None:
        eps = 2.0 ** -52 if S.dtype == _C.float64 else 2.0 ** -23
        rtol = 0.0 if atol is not None else max(shape[-2], shape[-1]) * eps
    rtol = rtol.unsqueeze(-1) if isinstance(rtol, _C.Tensor) else rtol
    tol = smax * rtol
    if atol is not None:
        tol = _C.maximum(tol, atol.unsqueeze(-1) if isinstance(atol, _C.Tensor) else _C.full((), atol, dtype=S.dtype))
    return tol


def matrix_rank(A, /, *, atol=None, rtol=None, hermitian=False):
    """Number of singular values above max(atol, rtol * largest) for (a stack of) matrices."""
    S = svdvals(A) if not hermitian else _C.abs(eigvalsh(A)).sort(-1, True).values
    return (S > _tolerance(S, tuple(A.shape), atol, rtol)).sum(-1)


def pinv(A, /, *, atol=None, rtol=None, hermitian=False):
    """Moore-Penrose pseudo-inverse through the SVD, dropping singular values at or below the cutoff."""
    U, S, Vh = svd(A, False)
    keep = S > _tolerance(S, tuple(A.shape), atol, rtol)
    S_inv = _C.where(keep, 1.0 / _C.where(keep, S, _C.full((), 1, dtype=S.dtype)), _C.full((), 0, dtype=S.dtype))
    return _C.matmul(Vh.mT * S_inv.unsqueeze(-2), U.mT)
