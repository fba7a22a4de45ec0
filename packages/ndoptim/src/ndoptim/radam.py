"""RAdam: Adam with a rectified adaptive learning rate."""
from __future__ import annotations

from ndcore import _C

from .optimizer import (
    Optimizer, _check_flags, _collect_state, _restore_group_defaults, _to_float, _use_no_grad, _validate)

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam, as ``torch.optim.RAdam`` (Liu et al., 2019), with optional decoupled weight decay.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,
            \qquad \hat m_t = m_t / (1 - \beta_1^t) \\
        \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \qquad
            \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1 - \beta_2^t} \\
        \theta_t &= \theta_{t-1} - \gamma\hat m_t\, r_t \frac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon}
            \ \text{ if } \rho_t > 5, \text{ else } \theta_{t-1} - \gamma\hat m_t, \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}

    Weight decay adds :math:`\lambda\theta` to the gradient, or with ``decoupled_weight_decay``
    scales :math:`\theta` by :math:`1 - \gamma\lambda` first. State: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8).
        weight_decay: :math:`\lambda` (default 0).
        decoupled_weight_decay: Decay the parameter directly (RAdamW).
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        capturable: Accepted for torch compatibility.
        differentiable: Must be False.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False) -> None:
        _validate("RAdam", lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        _check_flags("RAdam", differentiable)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
                    "foreach": foreach, "capturable": capturable, "decoupled_weight_decay": decoupled_weight_decay,
                    "differentiable": differentiable}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        _restore_group_defaults(self, (
            ("foreach", None), ("maximize", False), ("differentiable", False), ("decoupled_weight_decay",
            False), ("capturable", False),
        ))

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, (exp_avgs, exp_avg_sqs), steps = _collect_state(self, group, ('exp_avg', 'exp_avg_sq'))
            if params:
                beta1, beta2 = group["betas"]
                _C._fused_radam_(params, grads, exp_avgs, exp_avg_sqs, steps, lr=_to_float(group["lr"]),
                                 beta1=_to_float(beta1), beta2=_to_float(beta2),
                                 weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                                 decoupled=bool(group["decoupled_weight_decay"]), maximize=bool(group["maximize"]))
        return loss
