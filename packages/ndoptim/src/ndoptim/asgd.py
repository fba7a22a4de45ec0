"""ASGD: averaged stochastic gradient descent."""
from __future__ import annotations

import ndcore
from ndcore import _C

from .optimizer import Optimizer, _check_flags, _new_step, _scalar_dtype, _tensor_steps, _to_float, _use_no_grad, \
    _validate, _zeros_like

__all__ = ["ASGD"]


class ASGD(Optimizer):
    r"""Averaged SGD, as ``torch.optim.ASGD`` (Polyak & Juditsky, 1992).

    .. math::
        g_t &\leftarrow g_t + \lambda_{wd}\theta_{t-1}, \qquad
            \theta_t = (1 - \lambda\eta_t)\theta_{t-1} - \eta_t g_t \\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_t(\theta_t - \bar\theta_{t-1}) \\
        \eta_{t+1} &= \frac{\gamma}{(1 + \lambda\gamma t)^\alpha}, \qquad \mu_{t+1} = \frac{1}{\max(1, t - t_0)}

    State per parameter: ``step``, ``eta``, ``mu`` (0-d tensors) and ``ax`` (the average
    :math:`\bar\theta`).

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 1e-2).
        lambd: Decay term :math:`\lambda` (default 1e-4).
        alpha: Power for the eta update (default 0.75).
        t0: Step at which averaging starts (default 1e6).
        weight_decay: :math:`\lambda_{wd}` (default 0).
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        differentiable: Must be False.
        capturable: Accepted for torch compatibility.
    """

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False) -> None:
        _validate("ASGD", lr=lr, weight_decay=weight_decay)
        _check_flags("ASGD", differentiable)
        defaults = {"lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0, "weight_decay": weight_decay,
                    "foreach": foreach, "maximize": maximize, "differentiable": differentiable,
                    "capturable": capturable}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in (("foreach", None), ("maximize", False), ("differentiable", False),
                               ("capturable", False)):
                group.setdefault(key, value)
            for p in group["params"]:
                st = self.state.get(p)
                for key in ("eta", "mu"):
                    if st and key in st and not isinstance(st[key], ndcore.Tensor):
                        st[key] = ndcore.tensor(float(st[key]), dtype=_scalar_dtype())
        _tensor_steps(self)

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, axs, mus, etas, steps = [], [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = _new_step()
                    state["eta"] = ndcore.tensor(_to_float(group["lr"]), dtype=_scalar_dtype())
                    state["mu"] = ndcore.tensor(1.0, dtype=_scalar_dtype())
                    state["ax"] = _zeros_like(p)
                params.append(p)
                grads.append(p.grad)
                axs.append(state["ax"])
                mus.append(state["mu"])
                etas.append(state["eta"])
                steps.append(state["step"])
            if params:
                _C._fused_asgd_(params, grads, axs, mus, etas, steps, lr=_to_float(group["lr"]),
                                lambd=float(group["lambd"]), alpha=float(group["alpha"]), t0=float(group["t0"]),
                                weight_decay=float(group["weight_decay"]), maximize=bool(group["maximize"]))
        return loss
