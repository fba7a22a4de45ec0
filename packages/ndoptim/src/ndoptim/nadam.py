"""NAdam: Adam with Nesterov momentum and momentum decay."""
from __future__ import annotations

import ndcore
from ndcore import _C

from .optimizer import Optimizer, _check_flags, _new_step, _scalar_dtype, _tensor_steps, _to_float, _use_no_grad, \
    _validate, _zeros_like

__all__ = ["NAdam"]


class NAdam(Optimizer):
    r"""NAdam, as ``torch.optim.NAdam`` (Dozat, 2016), with optional decoupled weight decay.

    With :math:`\mu_t = \beta_1 (1 - \tfrac12\, 0.96^{t\psi})` (:math:`\psi` = momentum_decay):

    .. math::
        g_t &\leftarrow g_t + \lambda\theta_{t-1} \quad\text{or, decoupled,}\quad
            \theta_{t-1} \leftarrow (1 - \gamma\lambda)\theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        d_t &= \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        \theta_t &= \theta_{t-1} - \gamma\frac{(1 - \mu_t)}{1 - \prod_{i \le t}\mu_i}\frac{g_t}{d_t}
            - \gamma\frac{\mu_{t+1}}{1 - \prod_{i \le t+1}\mu_i}\frac{m_t}{d_t}

    State per parameter: ``step``, ``mu_product`` (0-d tensors), ``exp_avg``, ``exp_avg_sq``.

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 2e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8).
        weight_decay: :math:`\lambda` (default 0).
        momentum_decay: :math:`\psi` (default 4e-3).
        decoupled_weight_decay: Decay the parameter directly (NAdamW).
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        capturable: Accepted for torch compatibility.
        differentiable: Must be False.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False) -> None:
        _validate("NAdam", lr=lr, eps=eps, betas=betas, weight_decay=weight_decay, momentum_decay=momentum_decay)
        _check_flags("NAdam", differentiable)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                    "momentum_decay": momentum_decay, "decoupled_weight_decay": decoupled_weight_decay,
                    "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in (("maximize", False), ("foreach", None), ("capturable", False),
                               ("differentiable", False), ("decoupled_weight_decay", False)):
                group.setdefault(key, value)
            for p in group["params"]:
                st = self.state.get(p)
                if st and "mu_product" in st and not isinstance(st["mu_product"], ndcore.Tensor):
                    st["mu_product"] = ndcore.tensor(float(st["mu_product"]), dtype=_scalar_dtype())
        _tensor_steps(self)

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, mu_products, steps = [], [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = _new_step()
                    state["mu_product"] = ndcore.tensor(1.0, dtype=_scalar_dtype())
                    state["exp_avg"] = _zeros_like(p)
                    state["exp_avg_sq"] = _zeros_like(p)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                mu_products.append(state["mu_product"])
                steps.append(state["step"])
            if params:
                beta1, beta2 = group["betas"]
                _C._fused_nadam_(params, grads, exp_avgs, exp_avg_sqs, mu_products, steps, lr=_to_float(group["lr"]),
                                 beta1=_to_float(beta1), beta2=_to_float(beta2),
                                 weight_decay=float(group["weight_decay"]),
                                 momentum_decay=float(group["momentum_decay"]), eps=float(group["eps"]),
                                 decoupled=bool(group["decoupled_weight_decay"]), maximize=bool(group["maximize"]))
        return loss
