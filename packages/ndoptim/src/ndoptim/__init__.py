"""ndoptim: optimizers and learning-rate schedulers (``nd.optim``), with torch.optim's API.

Every optimizer updates a parameter group with one multi-tensor C++ kernel
(``ndcore._C._fused_*_``); see the package README for the list and the math of each.
"""
from __future__ import annotations

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import Optimizer, register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD
from .sparse_adam import SparseAdam
from .version import __version__

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "Adamax", "RMSprop", "Adagrad", "Adadelta", "LBFGS",
    "SparseAdam", "Rprop", "ASGD", "lr_scheduler", "register_optimizer_step_pre_hook",
    "register_optimizer_step_post_hook", "__version__",
]
