"""Finite-difference checks of analytic gradients (float64, central differences)."""
from __future__ import annotations

import numpy as np

import ndcore as nd

from ._api import grad as _grad


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _numeric_jacobian(fn, inputs, idx, eps):
    x = inputs[idx]
    flat = x.detach().reshape(-1)
    cols = []
    base_outs = [o.detach() for o in _as_tuple(fn(*inputs))]
    for j in range(flat.numel()):
        orig = float(flat[j])
        flat[j] = orig + eps
        plus = [o.detach().clone() for o in _as_tuple(fn(*inputs))]
        flat[j] = orig - eps
        minus = [o.detach().clone() for o in _as_tuple(fn(*inputs))]
        flat[j] = orig
        cols.append(np.concatenate([((p - m) / (2 * eps)).reshape(-1).numpy() for p, m in zip(plus, minus)]))
    n_out = sum(o.numel() for o in base_outs)
    return np.stack(cols, axis=1) if cols else np.zeros((n_out, 0))


def _analytic_jacobian(fn, inputs, idx):
    outs = [o for o in _as_tuple(fn(*inputs))]
    rows = []
    for oi, o in enumerate(outs):
        if not o.requires_grad:
            rows.append(np.zeros((o.numel(), inputs[idx].numel())))
            continue
        flat = o.reshape(-1)
        for k in range(flat.numel()):
            (g,) = _grad(flat[k], inputs[idx], retain_graph=True, allow_unused=True)
            rows.append((np.zeros(inputs[idx].numel()) if g is None else g.reshape(-1).numpy())[None, :])
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, inputs[idx].numel()))


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_ignored):
    """Compares autograd's Jacobian of ``func`` at ``inputs`` with central differences.

    Args:
        func: Function of tensors returning a tensor or tuple of tensors.
        inputs: Tensor or tuple; those with requires_grad are checked (use float64).

    Returns:
        True, or raises GradcheckError naming the input, the worst entry and both values.
    """
    inputs = _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, nd.Tensor) or not x.requires_grad:
            continue
        if x.dtype != nd.float64:
            import warnings

            warnings.warn(f"gradcheck: input {i} is {x.dtype}, not float64; the check may be too imprecise",
                          stacklevel=2)
        numeric = _numeric_jacobian(func, inputs, i, eps)
        analytic = _analytic_jacobian(func, inputs, i)
        if numeric.shape != analytic.shape:
            raise GradcheckError(f"Jacobian shape mismatch for input {i}: numeric {numeric.shape}, analytic {analytic.shape}")
        err = np.abs(numeric - analytic) - (atol + rtol * np.abs(numeric))
        if err.size and err.max() > 0:
            r, c = np.unravel_index(np.argmax(err), err.shape)
            msg = (f"Jacobian mismatch for output element {r} with respect to input {i}, element {c}:\n"
                   f"numerical: {numeric[r, c]!r}\nanalytical: {analytic[r, c]!r}\n"
                   f"(max |difference| {np.abs(numeric - analytic).max():.3e}, atol={atol}, rtol={rtol})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, **_ignored):
    """gradcheck of the first derivative: checks second-order gradients of ``func``."""
    inputs = _as_tuple(inputs)
    outs = _as_tuple(func(*inputs))
    if grad_outputs is None:
        gen = nd.Generator().manual_seed(0)
        grad_outputs = tuple(nd.randn(*o.shape, dtype=o.dtype, generator=gen).requires_grad_(True) for o in outs)
    grad_outputs = _as_tuple(grad_outputs)

    def first_derivative(*args):
        xs, gos = args[:len(inputs)], args[len(inputs):]
        os = _as_tuple(func(*xs))
        diff = [x for x in xs if isinstance(x, nd.Tensor) and x.requires_grad]
        gs = _grad(os, diff, gos, create_graph=True, allow_unused=True)
        return tuple(g if g is not None else nd.zeros_like(x) for g, x in zip(gs, diff))

    return gradcheck(first_derivative, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
