"""ndgrad: reverse-mode autograd for ndcore tensors.

Importing ndgrad registers its recorder in ndcore's dispatcher (no wrapper class): every
differentiable op on tensors that require grad, called from Python or from C++ extension
code, builds a graph node whose derivative comes from the op table.

Another library can depend on ndgrad alone: define ops with ``Function``, run ``grad`` /
``backward``, and register derivative formulas for its own ops with ``register_formula``.
"""
from __future__ import annotations

from . import _api, _engine, checkpoint, functional, graph
from ._api import backward, grad
from ._engine import Node
from ._function import Function, FunctionCtx, once_differentiable
from ._grad_mode import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad,
                         set_grad_enabled)
from ._gradcheck import GradcheckError, gradcheck, gradgradcheck
from .anomaly import detect_anomaly, set_detect_anomaly
from .version import __version__

__all__ = [
    "backward", "grad", "Function", "FunctionCtx", "once_differentiable", "no_grad", "enable_grad",
    "set_grad_enabled", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled", "gradcheck",
    "gradgradcheck", "GradcheckError", "detect_anomaly", "set_detect_anomaly", "functional", "Node",
    "register_formula", "checkpoint", "graph", "__version__",
]

_REQUIRED_NDCORE = "0.1.0"


def _check_ndcore() -> None:
    import ndcore

    if ndcore.__version__ != _REQUIRED_NDCORE:
        raise ImportError(f"ndgrad {__version__} needs ndcore=={_REQUIRED_NDCORE}, but ndcore {ndcore.__version__} is "
                          f"installed; install matching versions from the same nd release")


def register_formula(op_name: str, formula, input_names, reads=(), list_inputs=(), metadata_only=()) -> None:
    """Registers the derivative of an op (e.g. one a C++ extension adds to the dispatcher).

    Args:
        op_name: The op's dispatcher name.
        formula: ``formula(grads, inputs, attrs, results, needs) -> tuple`` of one gradient (or
            None) per tensor input, written in nd ops.
        input_names: Names of the op's tensor inputs, in order.
        reads: Which inputs/results the formula reads (they are saved and version-checked).
        list_inputs: Names among ``input_names`` that are lists of tensors.
        metadata_only: Inputs the formula reads only for shape/dtype (no version check).
    """
    _engine.FORMULAS[op_name] = (formula, tuple(input_names), tuple(reads), tuple(list_inputs), tuple(metadata_only))


_check_ndcore()
_api.install()
