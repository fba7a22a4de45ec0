"""Adadelta."""
from __future__ import annotations

from ndcore import _C

from .optimizer import (
    Optimizer, _check_flags, _collect_state, _restore_group_defaults, _to_float, _use_no_grad, _validate)

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta, as ``torch.optim.Adadelta`` (Zeiler, 2012).

    .. math::
        g_t &\leftarrow g_t + \lambda\theta_{t-1}, \qquad v_t = \rho v_{t-1} + (1 - \rho) g_t^2 \\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t, \qquad
            u_t = \rho u_{t-1} + (1 - \rho)\Delta_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma\Delta_t

    State per parameter: ``step``, ``square_avg`` (:math:`v`), ``acc_delta`` (:math:`u`).

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Coefficient :math:`\gamma` scaling the delta (default 1.0).
        rho: :math:`\rho`, the running-average coefficient (default 0.9).
        eps: :math:`\epsilon` (default 1e-6).
        weight_decay: :math:`\lambda` (default 0).
        foreach: Accepted for torch compatibility.
        capturable: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        differentiable: Must be False.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False) -> None:
        _validate("Adadelta", lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check_flags("Adadelta", differentiable)
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
                    "capturable": capturable, "foreach": foreach, "differentiable": differentiable}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        _restore_group_defaults(self, (
            ("foreach", None), ("maximize", False), ("differentiable", False), ("capturable", False),
        ))

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, (square_avgs, acc_deltas), steps = _collect_state(self, group, ('square_avg', 'acc_delta'))
            if params:
                _C._fused_adadelta_(params, grads, square_avgs, acc_deltas, steps, lr=_to_float(group["lr"]),
                                    rho=float(group["rho"]), eps=float(group["eps"]),
                                    weight_decay=float(group["weight_decay"]), maximize=bool(group["maximize"]))
        return loss
