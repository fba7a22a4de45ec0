"""Adamax: Adam with the infinity norm of past gradients."""
from __future__ import annotations

from ndcore import _C

from .optimizer import (
    Optimizer, _check_flags, _collect_state, _restore_group_defaults, _to_float, _use_no_grad, _validate)

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax, as ``torch.optim.Adamax`` (Kingma & Ba, 2014, section 7).

    .. math::
        g_t &\leftarrow g_t + \lambda\theta_{t-1}, \qquad m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &= \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,\frac{m_t}{u_t}

    State per parameter: ``step``, ``exp_avg``, ``exp_inf``.

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 2e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8).
        weight_decay: :math:`\lambda` (default 0).
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        differentiable: Must be False.
        capturable: Accepted for torch compatibility.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False) -> None:
        _validate("Adamax", lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        _check_flags("Adamax", differentiable)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "foreach": foreach,
                    "maximize": maximize, "differentiable": differentiable, "capturable": capturable}
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
            params, grads, (exp_avgs, exp_infs), steps = _collect_state(self, group, ('exp_avg', 'exp_inf'))
            if params:
                beta1, beta2 = group["betas"]
                _C._fused_adamax_(params, grads, exp_avgs, exp_infs, steps, lr=_to_float(group["lr"]),
                                  beta1=_to_float(beta1), beta2=_to_float(beta2),
                                  weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                                  maximize=bool(group["maximize"]))
        return loss
