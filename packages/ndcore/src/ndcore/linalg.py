"""nd.linalg: torch.linalg's functions over the LAPACK rows of the op table (``linalg_*``).

Every function takes float32/float64 matrices, batched over leading dims, and raises a
ValueError naming the op and the batch element for singular, non-positive-definite or
non-converging inputs. Multi-output functions return named tuples (``Q, R = qr(A)``,
``qr(A).R``) with the field names of the table's return names.
"""
from __future__ import annotations

from . import _C, _ops_gen

__all__ = ["cholesky", "cross", "det", "eigh", "eigvalsh", "inv", "matrix_norm", "norm", "qr", "slogdet", "solve", "svd",
           "svdvals", "vector_norm"]


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


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """Vector norm sum(|x|^ord)^(1/ord) over `dim` (all elements when None); ord may be inf, -inf, 0."""
    return _ops_gen.linalg_vector_norm(x, ord, dim, keepdim, dtype=dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """Matrix norm over the two dims `dim`: 'fro', 'nuc', inf, -inf, 1, -1, 2 or -2."""
    return _ops_gen.linalg_matrix_norm(A, ord, list(dim), keepdim, dtype=dtype)


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """Vector norm, or matrix norm when `dim` has two dims or A is 2-D with an `ord` given."""
    return _ops_gen.linalg_norm(A, ord, dim, keepdim, dtype=dtype)


def cross(input, other, *, dim=-1):
    """Cross product of 3-vectors along `dim` (inputs broadcast)."""
    return _ops_gen.cross(input, other, dim)
