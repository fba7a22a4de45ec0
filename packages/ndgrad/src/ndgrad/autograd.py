"""``nd.autograd``: torch.autograd's namespace over ndgrad."""
from __future__ import annotations

from . import functional, graph
from ._api import backward, grad
from ._function import Function, FunctionCtx, once_differentiable
from ._gradcheck import gradcheck, gradgradcheck
from ._grad_mode import enable_grad, inference_mode, no_grad, set_grad_enabled
from .anomaly import detect_anomaly, set_detect_anomaly

__all__ = ["backward", "grad", "Function", "FunctionCtx", "once_differentiable", "gradcheck", "gradgradcheck",
           "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "detect_anomaly", "set_detect_anomaly",
           "functional", "graph"]
