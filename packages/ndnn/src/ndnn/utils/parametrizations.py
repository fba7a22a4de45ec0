"""Parametrizations built on ``parametrize``: ``weight_norm``, ``spectral_norm``, ``orthogonal``."""
from __future__ import annotations

import math

import ndcore
import ndgrad
from ndcore import Tensor

from ..modules.module import Module
from . import parametrize
from .weight_norm import _norm_except_dim, _weight_norm

__all__ = ["orthogonal", "spectral_norm", "weight_norm"]


def _normalize(x, eps: float):
    return x / ndcore.linalg.vector_norm(x, 2).clamp(min=eps)


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g, weight_v):
        return _weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight):
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Reparametrizes ``module.<name>`` as g * v / ||v|| (g = ``original0``, v = ``original1``).

    Args:
        module: The module.
        name: The parameter. Default: ``"weight"``.
        dim: The dim kept by the norm (None or -1: the whole tensor). Default: 0.

    Returns:
        The module. State dicts of the hook-based ``nn.utils.weight_norm`` (``weight_g``,
        ``weight_v``) load into it.
    """
    weight = module._parameters.get(name)
    if weight is not None and dim is not None and dim < -1:
        dim += weight.dim()
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)

    def compat_hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        g_key, v_key = f"{prefix}{name}_g", f"{prefix}{name}_v"
        if g_key in state_dict and v_key in state_dict:
            state_dict[f"{prefix}parametrizations.{name}.original0"] = state_dict.pop(g_key)
            state_dict[f"{prefix}parametrizations.{name}.original1"] = state_dict.pop(v_key)

    module._register_load_state_dict_pre_hook(compat_hook)
    return module


class _SpectralNorm(Module):
    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.dim()
        if dim >= ndim or dim < -ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{ndim}, {ndim - 1}] but got "
                             f"{dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:
            self.n_power_iterations = n_power_iterations
            mat = self._reshape_weight_to_matrix(weight)
            h, w = mat.shape
            with ndgrad.no_grad():
                self.register_buffer("_u", _normalize(mat.new_empty(h).normal_(0, 1), eps))
                self.register_buffer("_v", _normalize(mat.new_empty(w).normal_(0, 1), eps))
            self._power_method(mat, 15)

    def _reshape_weight_to_matrix(self, weight):
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.dim()) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, mat, n: int) -> None:
        with ndgrad.no_grad():
            mat = mat.detach()
            for _ in range(n):
                # in place: the buffers carry the estimate across forwards (and into state_dict)
                self._u.copy_(_normalize(mat @ self._v, self.eps))
                self._v.copy_(_normalize(mat.t() @ self._u, self.eps))

    def forward(self, weight):
        if weight.dim() == 1:
            return _normalize(weight, self.eps)
        mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(mat, self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()
        sigma = (u * (mat @ v)).sum()
        return weight / sigma

    def right_inverse(self, value):
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Reparametrizes ``module.<name>`` as W / sigma(W), sigma estimated by power iteration (one step
    per training forward; buffers ``_u``, ``_v`` of the parametrization).

    Args:
        module: The module.
        name: The parameter. Default: ``"weight"``.
        n_power_iterations: Power-iteration steps per training forward. Default: 1.
        eps: Floor of the vector norms. Default: 1e-12.
        dim: The output dim (1 for ConvTranspose, else 0 when None).
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        from ..modules.conv import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
        dim = 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) else 0
    parametrize.register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


def _matrix_exp(a):
    # scaling and squaring of a degree-18 Taylor polynomial, in differentiable nd ops
    bound = float(a.detach().abs().sum((-2, -1)).max()) if a.numel() else 0.0
    s = max(0, math.ceil(math.log2(bound)) + 1) if bound > 0.5 else 0
    a = a / (2 ** s)
    eye = ndcore.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    result = term = eye
    for k in range(1, 19):
        term = (term @ a) / k
        result = result + term
    for _ in range(s):
        result = result @ result
    return result


def _householder_product(v, tau):
    # H_1 H_2 ... H_k, H_i = I - tau_i v_i v_i^T: one matrix update per reflection
    n = v.shape[-2]
    q = ndcore.eye(n, dtype=v.dtype, device=v.device)
    for i in range(v.shape[-1]):
        vi = v[..., :, i:i + 1]
        q = q - (q @ vi) @ (vi.mT * tau[..., i:i + 1].unsqueeze(-1))
    return q


def _make_orthogonal(a):
    q, r = ndcore.linalg.qr(a)
    return q * r.diagonal(dim1=-2, dim2=-1).sign().unsqueeze(-2)


class _Orthogonal(Module):
    def __init__(self, weight: Tensor, orthogonal_map: str, *, use_trivialization: bool = True) -> None:
        super().__init__()
        self.shape = tuple(weight.shape)
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, x):
        n, k = x.shape[-2:]
        transposed = n < k
        if transposed:
            x = x.mT
            n, k = k, n
        if self.orthogonal_map in ("matrix_exp", "cayley"):
            a = x.tril()
            if n != k:  # embed the n x k lower part into an n x n skew-symmetric matrix
                a = ndcore.cat([a, a.new_zeros(*a.shape[:-1], n - k)], -1)
            a = a - a.mT
            if self.orthogonal_map == "matrix_exp":
                q = _matrix_exp(a)
            else:  # the Cayley retraction (I - A/2)^-1 (I + A/2)
                eye = ndcore.eye(n, dtype=a.dtype, device=a.device)
                q = ndcore.linalg.solve(eye - a * 0.5, eye + a * 0.5)
            q = q[..., :k]
        else:
            a = x.tril(-1)
            tau = 2.0 / (1.0 + (a * a).sum(-2))
            v = a + ndcore.eye(n, k, dtype=a.dtype, device=a.device)
            q = _householder_product(v, tau)[..., :k]
            # x's diagonal holds the signs (+-1); it is not trained (trunc has no gradient)
            q = q * x.diagonal(dim1=-2, dim2=-1).trunc().unsqueeze(-2)
        if self.__dict__["_buffers"].get("base") is not None:
            q = self.base @ q
        return q.mT if transposed else q

    def right_inverse(self, q):
        if tuple(q.shape) != self.shape:
            raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. Got a tensor of shape "
                             f"{tuple(q.shape)}.")
        with ndgrad.no_grad():
            q_init = q
            n, k = q.shape[-2:]
            transpose = n < k
            if transpose:
                q = q.mT
                n, k = k, n
            if "base" not in self._buffers:
                if self.orthogonal_map != "householder":
                    raise NotImplementedError("It is not possible to assign to the matrix exponential or the Cayley "
                                              "parametrizations when use_trivialization=False.")
                # the Householder vectors of q's QR (R's diagonal made positive), diagonal = signs
                a = _householder_vectors(q)
                return a.mT if transpose else a
            if n == k:
                eye = ndcore.eye(k, dtype=q.dtype, device=q.device)
                eps = 10 * n * (1.2e-7 if q.dtype == ndcore.float32 else 2.3e-16)
                ortho = bool(((q.mT @ q - eye).abs() <= eps).all())
                q = q.clone() if ortho else _make_orthogonal(q)
            else:
                extra = ndcore.randn(*q.shape[:-1], n - k, dtype=q.dtype, device=q.device)
                q = _make_orthogonal(ndcore.cat([q, extra], -1))
            self.base = q
            # householder(-I) = I, and exp/Cayley of the skew part of -I (zero) is I
            neg_id = ndcore.zeros(q_init.shape, dtype=q_init.dtype, device=q_init.device)
            neg_id.diagonal(dim1=-2, dim2=-1).fill_(-1.0)
            return neg_id


def _householder_vectors(q):
    # A with strict lower part = normalized Householder vectors of q = H_1...H_k R and unit signs on
    # the diagonal, so that forward(A) reproduces q's orthonormal factor
    n, k = q.shape[-2:]
    r_cols = []
    x = q
    vs, taus = [], []
    for i in range(k):
        col = x[..., i:, i]
        alpha = -col[..., :1].sign().where(col[..., :1] != 0, ndcore.ones_like(col[..., :1])) * \
            ndcore.linalg.vector_norm(col, 2, -1, keepdim=True)
        u = col.clone()
        u[..., 0] = u[..., 0] - alpha[..., 0]
        u = u / u[..., :1].where(u[..., :1] != 0, ndcore.ones_like(u[..., :1]))
        full = ndcore.cat([ndcore.zeros(*u.shape[:-1], i, dtype=q.dtype, device=q.device), u], -1)
        tau = 2.0 / (full * full).sum(-1, keepdim=True)
        x = x - full.unsqueeze(-1) * (tau.unsqueeze(-1) * (full.unsqueeze(-2) @ x))
        vs.append(full)
        r_cols.append(alpha)
    a = ndcore.stack(vs, -1).tril(-1)
    signs = ndcore.cat(r_cols, -1).sign()
    a = a + ndcore.eye(n, k, dtype=q.dtype, device=q.device) * signs.unsqueeze(-2)
    return a


def orthogonal(module: Module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True) -> Module:
    """Constrains ``module.<name>`` (viewed as matrices) to have orthonormal columns or rows.

    Maps: ``"matrix_exp"`` (exp of a skew-symmetric matrix), ``"cayley"`` ((I - A/2)^-1 (I + A/2))
    and ``"householder"`` (a product of reflections; the default for non-square matrices).
    With ``use_trivialization`` the current value is kept as a base and the parameter starts at
    the preimage of the identity.

    Args:
        module: The module.
        name: The parameter. Default: ``"weight"``.
        orthogonal_map: One of the maps above; default ``"matrix_exp"`` for square matrices.
        use_trivialization: Keep a base matrix (so assigning works). Default: True.
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.dim() < 2:
        raise ValueError(f"Expected a matrix or batch of matrices. Got a tensor of {weight.dim()} dimensions.")
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.size(-2) == weight.size(-1) else "householder"
    if orthogonal_map not in ("matrix_exp", "cayley", "householder"):
        raise ValueError(f'orthogonal_map has to be one of "matrix_exp", "cayley", "householder". Got: '
                         f"{orthogonal_map}")
    orth = _Orthogonal(weight, orthogonal_map, use_trivialization=use_trivialization)
    parametrize.register_parametrization(module, name, orth, unsafe=True)
    return module
