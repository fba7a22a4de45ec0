"""Flatten parameters into one vector and back (``parameters_to_vector``, ``vector_to_parameters``)."""
from __future__ import annotations

import ndcore
from ndcore import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_same_device(param, old_device):
    if old_device is not None and param.device != old_device:
        raise TypeError(f"Found two parameters on different devices, this is currently not supported "
                        f"({old_device} and {param.device})")
    return param.device


def parameters_to_vector(parameters) -> Tensor:
    """Concatenates the flattened parameters into one 1-D tensor.

    Args:
        parameters: An iterable of Tensors (all on one device).
    """
    device = None
    vec = []
    for param in parameters:
        device = _check_same_device(param, device)
        vec.append(param.reshape(-1))
    return ndcore.cat(vec)


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copies consecutive slices of ``vec`` into the parameters' ``.data`` (as torch does).

    Args:
        vec: A 1-D tensor with as many elements as the parameters together.
        parameters: An iterable of Tensors.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected nd.Tensor, but got: {type(vec).__name__}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.dim() != 1 or vec.numel() != total:
        raise ValueError(f"[vector_to_parameters] expected a 1-D vector of {total} elements, got shape "
                         f"{tuple(vec.shape)}")
    device = None
    pointer = 0
    for param in params:
        device = _check_same_device(param, device)
        n = param.numel()
        param.data = vec[pointer:pointer + n].view_as(param).data
        pointer += n
