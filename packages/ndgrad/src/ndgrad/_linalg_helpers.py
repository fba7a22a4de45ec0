"""Derivatives of the LAPACK-backed ops (nd.linalg) and of repeat, for the op table's formulas.

References for the matrix calculus: M. Giles, "An extended collection of matrix derivative
results" (2008); I. Murray, "Differentiation of the Cholesky decomposition" (2016);
J. Townsend, "Differentiating the singular value decomposition" (2016)."""
from __future__ import annotations

import ndcore as nd
from ndcore import linalg

__all__ = [
    "_linalg_solve_backward", "_linalg_det_backward", "_linalg_slogdet_backward", "_linalg_cholesky_backward",
    "_linalg_qr_backward", "_linalg_svd_backward", "_linalg_svdvals_backward", "_linalg_eigh_backward",
    "_linalg_eigvalsh_backward", "_repeat_backward",
]


def _diag_embed(v):
    return v.unsqueeze(-1) * nd.eye(v.shape[-1], dtype=v.dtype)


def _is_vector_rhs(A, B):
    return B.dim() == 1 or (B.dim() == A.dim() - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


def _linalg_solve_backward(grad, A, B, X, left, which):
    vec = _is_vector_rhs(A, B)
    g, x = (grad.unsqueeze(-1), X.unsqueeze(-1)) if vec else (grad, X)
    if left:  # X = A^-1 B
        gB = linalg.solve(A.mT, g)
        if which == 1:
            return gB.squeeze(-1) if vec else gB
        return -(gB @ x.mT)
    gB = linalg.solve(A, g.mT).mT  # X = B A^-1
    if which == 1:
        return gB.squeeze(-1) if vec else gB
    return -(x.mT @ gB)


def _linalg_det_backward(grad, A, det):
    return (grad * det).unsqueeze(-1).unsqueeze(-1) * linalg.inv(A).mT


def _linalg_slogdet_backward(grads, A, sign, logabsdet):
    return grads[1].unsqueeze(-1).unsqueeze(-1) * linalg.inv(A).mT


def _phi(x):
    """Lower triangle with the diagonal halved."""
    return x.tril() - 0.5 * _diag_embed(x.diagonal(0, -2, -1))


def _linalg_cholesky_backward(grad, L, upper):
    if upper:
        L, grad = L.mT, grad.mT
    L_inv = linalg.inv(L)
    S = L_inv.mT @ _phi(L.mT @ grad) @ L_inv
    return 0.5 * (S + S.mT)


def _copyltu(M):
    return M.tril() + M.tril(-1).mT


def _linalg_qr_backward(grads, Q, R, mode):
    if mode == "r":
        raise RuntimeError("[linalg_qr] the derivative is not implemented when mode='r'; use mode='reduced'")
    gQ, gR = grads
    m, n = Q.shape[-2], R.shape[-1]
    if m < n:
        raise RuntimeError("[linalg_qr] the derivative is implemented for tall or square inputs (m >= n) only")
    k = R.shape[-2]
    Q, gQ = Q[..., :, :k], gQ[..., :, :k]
    M = R @ gR.mT - gQ.mT @ Q
    b = gQ + Q @ _copyltu(M)
    return b @ linalg.inv(R).mT  # (gQ + Q copyltu(M)) R^-T


def _linalg_svd_backward(grads, U, S, Vh, full_matrices):
    gU, gS, gVh = grads
    k = S.shape[-1]
    U, Vh = U[..., :, :k], Vh[..., :k, :]
    gU, gVh = gU[..., :, :k], gVh[..., :k, :]
    V, gV = Vh.mT, gVh.mT
    s2 = S * S
    diff = s2.unsqueeze(-2) - s2.unsqueeze(-1)  # s_j^2 - s_i^2
    eye = nd.eye(k, dtype=S.dtype)
    F = (1 - eye) / (diff + eye)
    Sm = _diag_embed(S)
    S_inv = _diag_embed(1 / S)
    UtgU, VtgV = U.mT @ gU, V.mT @ gV
    inner = (F * (UtgU - UtgU.mT)) @ Sm + _diag_embed(gS) + Sm @ (F * (VtgV - VtgV.mT))
    gA = U @ inner @ Vh
    m, n = U.shape[-2], V.shape[-2]
    if m > k:
        gA = gA + (nd.eye(m, dtype=S.dtype) - U @ U.mT) @ gU @ S_inv @ Vh
    if n > k:
        gA = gA + U @ S_inv @ gV.mT @ (nd.eye(n, dtype=S.dtype) - V @ Vh)
    return gA


def _linalg_svdvals_backward(grad, A):
    U, _, Vh = linalg.svd(A, full_matrices=False)
    return U @ _diag_embed(grad) @ Vh


def _linalg_eigh_backward(grads, w, V):
    gw, gV = grads
    n = w.shape[-1]
    eye = nd.eye(n, dtype=w.dtype)
    diff = w.unsqueeze(-2) - w.unsqueeze(-1)  # w_j - w_i
    F = (1 - eye) / (diff + eye)
    return V @ (_diag_embed(gw) + F * (V.mT @ gV)) @ V.mT


def _linalg_eigvalsh_backward(grad, A, UPLO):
    _, V = linalg.eigh(A, UPLO)
    return V @ _diag_embed(grad) @ V.mT


def _repeat_backward(grad, self, repeats):
    repeats = list(repeats)
    shape = [1] * (len(repeats) - self.dim()) + list(self.shape)
    split = []
    for r, s in zip(repeats, shape):
        split += [r, s]
    g = grad.reshape(split).sum(list(range(0, len(split), 2)))
    return g.reshape(tuple(self.shape))
