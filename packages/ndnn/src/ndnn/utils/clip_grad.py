"""Gradient clipping: ``clip_grad_norm_``, ``clip_grad_value_``, ``get_total_norm``, ``clip_grads_with_norm_``."""
from __future__ import annotations

import functools
import types
import warnings

import ndcore
import ndgrad
from ndcore import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _no_grad(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with ndgrad.no_grad():
            return fn(*args, **kwargs)
    return wrapper


def _as_list(tensors) -> list:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _groups(tensors):
    # tensors of one device and dtype go through one foreach call
    groups: dict = {}
    for t in tensors:
        groups.setdefault((str(t.device), t.dtype), []).append(t)
    return groups.values()


def _use_foreach(foreach, group) -> bool:
    cpu = group[0].is_cpu
    if foreach and not cpu:
        raise RuntimeError(f"foreach=True was passed, but can't use the foreach API on {group[0].device.type} tensors")
    return cpu and foreach is not False


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The norm of the concatenation of ``tensors`` (computed as the norm of their norms).

    Args:
        tensors: A Tensor or an iterable of Tensors.
        norm_type: Order of the p-norm; ``inf`` for the max-abs norm. Default: 2.
        error_if_nonfinite: Raise if the total norm is nan or inf. Default: False.
        foreach: Use the fused ``_foreach_norm`` (default on CPU); False computes per tensor.

    Returns:
        A 0-d tensor on the first tensor's device.
    """
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return ndcore.tensor(0.0)
    first_device = tensors[0].device
    norms = []
    for group in _groups(tensors):
        if _use_foreach(foreach, group):
            norms.append(ndcore._foreach_norm(group, norm_type))
        else:
            norms.append(ndcore.stack([ndcore.linalg.vector_norm(g, norm_type) for g in group]))
    total = ndcore.linalg.vector_norm(ndcore.cat([n.to(first_device) for n in norms]), norm_type)
    if error_if_nonfinite and bool(total.isnan() | total.isinf()):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           f"it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           f"norm anyway, set `error_if_nonfinite=False`")
    return total


@_no_grad
def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    """Scales gradients in place by ``min(max_norm / (total_norm + 1e-6), 1)``.

    Args:
        parameters: A Tensor or an iterable of Tensors whose ``.grad`` is scaled.
        max_norm: The largest allowed norm.
        total_norm: The precomputed total norm (``get_total_norm``).
        foreach: Use ``_foreach_mul_`` (default on CPU).
    """
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    coef = (float(max_norm) / (total_norm + 1e-6)).clamp(max=1.0)
    for group in _groups(grads):
        c = coef.to(group[0].device)
        if _use_foreach(foreach, group) and len(group) > 1:
            ndcore._foreach_mul_(group, c.item())
        else:
            for g in group:
                g.mul_(c)


@_no_grad
def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Rescales the gradients of ``parameters`` so that their total norm is at most ``max_norm``.

    grad <- grad * min(max_norm / (||(||g_1||, ..., ||g_n||)||_p + 1e-6), 1)

    Args:
        parameters: A Tensor or an iterable of Tensors with gradients.
        max_norm: The largest allowed total norm.
        norm_type: Order of the p-norm; ``inf`` for the max-abs norm. Default: 2.
        error_if_nonfinite: Raise if the total norm is nan or inf. Default: False.
        foreach: Use the fused foreach kernels (default on CPU).

    Returns:
        The total norm of the gradients before clipping (a 0-d tensor).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_`."""
    warnings.warn("`nd.nn.utils.clip_grad_norm` is now deprecated in favor of `nd.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


@_no_grad
def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamps every gradient of ``parameters`` in place to [-clip_value, clip_value].

    Args:
        parameters: A Tensor or an iterable of Tensors with gradients.
        clip_value: The largest allowed absolute value.
        foreach: Accepted for torch compatibility (each gradient is clamped by one kernel).
    """
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            p.grad.clamp_(min=-clip_value, max=clip_value)
