"""Weight normalization as a forward pre-hook (torch's classic ``weight_norm`` API).

w = g * v / ||v||, the norm taken over every dim except ``dim`` (over the whole tensor when
``dim`` is None or -1, as in torch).
"""
from __future__ import annotations

import warnings

import ndcore

from ..parameter import Parameter, UninitializedParameter

__all__ = ["WeightNorm", "weight_norm", "remove_weight_norm"]


def _norm_except_dim(v, dim: int):
    if dim == -1:
        return ndcore.linalg.vector_norm(v, 2)
    dims = [d for d in range(v.dim()) if d != dim]
    return ndcore.linalg.vector_norm(v, 2, dims, keepdim=True) if dims else v.abs()


def _weight_norm(v, g, dim: int):
    return v * (g / _norm_except_dim(v, dim))


class WeightNorm:
    """The pre-hook that recomputes ``module.<name>`` from ``<name>_g`` and ``<name>_v``."""

    def __init__(self, name: str, dim: int) -> None:
        self.name = name
        self.dim = -1 if dim is None else dim

    def compute_weight(self, module):
        return _weight_norm(getattr(module, self.name + "_v"), getattr(module, self.name + "_g"), self.dim)

    @staticmethod
    def apply(module, name: str, dim: int) -> WeightNorm:
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and hook.name == name:
                raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
        fn = WeightNorm(name, dim)
        weight = getattr(module, name)
        if isinstance(weight, UninitializedParameter):
            raise ValueError("The module passed to `WeightNorm` can't have uninitialized parameters. Make sure to run "
                             "the dummy forward before applying weight normalization")
        if fn.dim != -1 and not -weight.dim() <= fn.dim < weight.dim():
            raise IndexError(f"[weight_norm] dim {dim} is out of range for a weight with {weight.dim()} dims")
        if fn.dim < -1:
            fn.dim += weight.dim()
        del module._parameters[name]
        module.register_parameter(name + "_g", Parameter(_norm_except_dim(weight, fn.dim).data))
        module.register_parameter(name + "_v", Parameter(weight.data))
        setattr(module, name, fn.compute_weight(module))
        module.register_forward_pre_hook(fn)
        return fn

    def remove(self, module) -> None:
        weight = self.compute_weight(module)
        delattr(module, self.name)
        del module._parameters[self.name + "_g"]
        del module._parameters[self.name + "_v"]
        setattr(module, self.name, Parameter(weight.data))

    def __call__(self, module, inputs) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module, name: str = "weight", dim: int = 0):
    """Replaces ``module.<name>`` by ``<name>_g * <name>_v / ||<name>_v||``, recomputed before each forward.

    Args:
        module: The module holding the parameter.
        name: Name of the weight parameter. Default: ``"weight"``.
        dim: The dim kept by the norm (per output channel for 0); None or -1 for the whole tensor.

    Returns:
        The module, with parameters ``<name>_g`` and ``<name>_v``.
    """
    warnings.warn("`nd.nn.utils.weight_norm` is deprecated in favor of `nd.nn.utils.parametrizations.weight_norm`.",
                  FutureWarning, stacklevel=2)
    WeightNorm.apply(module, name, dim)
    return module


def remove_weight_norm(module, name: str = "weight"):
    """Removes the weight-norm hook, leaving a plain Parameter ``<name>`` with the current weight."""
    for k, hook in module._forward_pre_hooks.items():
        if isinstance(hook, WeightNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[k]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
