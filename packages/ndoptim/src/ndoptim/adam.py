"""Adam and AdamW (decoupled weight decay), with AMSGrad."""
from __future__ import annotations

from ndcore import _C

from .optimizer import (
    Optimizer, _check_flags, _new_step, _restore_group_defaults, _to_float, _use_no_grad, _validate, _zeros_like)

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam`` (Kingma & Ba, 2014).

    With gradient :math:`g_t` (negated when ``maximize``):

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \quad\text{or, decoupled,}\quad
            \theta_{t-1} \leftarrow (1 - \gamma\lambda)\theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ (amsgrad) else } v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \cdot
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    State per parameter: ``step`` (0-d float32 tensor), ``exp_avg``, ``exp_avg_sq`` and, with
    amsgrad, ``max_exp_avg_sq``. The whole group updates in one multi-tensor C++ kernel.

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (float or 1-element tensor; default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` for the running averages (default (0.9, 0.999)).
        eps: :math:`\epsilon` added to the denominator (default 1e-8).
        weight_decay: :math:`\lambda` (default 0).
        amsgrad: Use the AMSGrad variant (maximum of past second moments).
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        capturable: Accepted for torch compatibility (no effect on CPU).
        differentiable: Must be False (the update is not recorded by autograd).
        fused: Accepted for torch compatibility (the update is always fused).
        decoupled_weight_decay: Apply weight decay to the parameter directly (AdamW).
    """

    _name = "Adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False) -> None:
        _validate(self._name, lr=lr, eps=eps, betas=betas, weight_decay=weight_decay)
        _check_flags(self._name, differentiable, fused, foreach)
        betas = tuple(_to_float(b) for b in betas)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable, "fused": fused, "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        _restore_group_defaults(self, (
            ("amsgrad", False), ("maximize", False), ("foreach", None), ("capturable", False),
            ("differentiable", False), ("decoupled_weight_decay", False), ("fused", None),
        ))

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps = [], [], [], [], [], []
            amsgrad = group["amsgrad"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = _new_step()
                    state["exp_avg"] = _zeros_like(p)
                    state["exp_avg_sq"] = _zeros_like(p)
                    if amsgrad:
                        state["max_exp_avg_sq"] = _zeros_like(p)
                params.append(p)
                grads.append(g)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                if amsgrad:
                    max_sqs.append(state["max_exp_avg_sq"])
                steps.append(state["step"])
            if params:
                beta1, beta2 = group["betas"]
                _C._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps, lr=_to_float(group["lr"]),
                                beta1=_to_float(beta1), beta2=_to_float(beta2),
                                weight_decay=float(group["weight_decay"]), eps=float(group["eps"]),
                                amsgrad=bool(amsgrad), maximize=bool(group["maximize"]),
                                decoupled=bool(group["decoupled_weight_decay"]))
        return loss


class AdamW(Adam):
    r"""AdamW, as ``torch.optim.AdamW`` (Loshchilov & Hutter, 2017): Adam with decoupled weight decay.

    .. math::
        \theta_{t-1} \leftarrow (1 - \gamma\lambda)\,\theta_{t-1},\ \text{then the Adam update
        (see :class:`Adam`) without the } \lambda\theta \text{ term in the gradient.}

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: Denominator term (default 1e-8).
        weight_decay: Decoupled weight decay :math:`\lambda` (default 1e-2).
        amsgrad: Use the AMSGrad variant.
        maximize: Maximize the objective instead of minimizing it.
        foreach: Accepted for torch compatibility.
        capturable: Accepted for torch compatibility.
        differentiable: Must be False.
        fused: Accepted for torch compatibility.
    """

    _name = "AdamW"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
