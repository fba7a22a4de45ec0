"""Adagrad with learning-rate decay."""
from __future__ import annotations

from ndcore import _C

from .optimizer import (
    Optimizer, _check_flags, _full_like, _new_step, _restore_group_defaults, _to_float, _use_no_grad, _validate)

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad`` (Duchi et al., 2011).

    .. math::
        \tilde\gamma_t &= \gamma / (1 + (t - 1)\eta), \qquad g_t \leftarrow g_t + \lambda\theta_{t-1} \\
        s_t &= s_{t-1} + g_t^2, \qquad \theta_t = \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    The state (``step`` and ``sum``, started at ``initial_accumulator_value``) is created for every
    parameter at construction, as torch does.

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 1e-2).
        lr_decay: :math:`\eta` (default 0).
        weight_decay: :math:`\lambda` (default 0).
        initial_accumulator_value: Start value of :math:`s` (default 0).
        eps: :math:`\epsilon` (default 1e-10).
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        differentiable: Must be False.
        fused: Accepted for torch compatibility.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None) -> None:
        _validate("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                  initial_accumulator_value=initial_accumulator_value, eps=eps)
        _check_flags("Adagrad", differentiable, fused, foreach)
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = _new_step()
                state["sum"] = _full_like(p, initial_accumulator_value)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        _restore_group_defaults(self, (
            ("foreach", None), ("maximize", False), ("differentiable", False), ("fused", None),
        ))

    def share_memory(self) -> None:
        """Moves the accumulators to shared memory (for Hogwild-style training)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, sums, steps = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                params.append(p)
                grads.append(p.grad)
                sums.append(state["sum"])
                steps.append(state["step"])
            if params:
                _C._fused_adagrad_(params, grads, sums, steps, lr=_to_float(group["lr"]),
                                   lr_decay=float(group["lr_decay"]), weight_decay=float(group["weight_decay"]),
                                   eps=float(group["eps"]), maximize=bool(group["maximize"]))
        return loss
