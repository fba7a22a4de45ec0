"""SparseAdam: Adam's lazy variant that updates only the rows a gradient touches."""
from __future__ import annotations

import ndcore
from ndcore import _C

from .optimizer import Optimizer, _to_float, _use_no_grad, _validate, _zeros_like

__all__ = ["SparseAdam"]


class SparseAdam(Optimizer):
    r"""Lazy Adam, as ``torch.optim.SparseAdam``, for parameters such as embedding tables.

    nd has no sparse tensors, so the gradient is dense: the rows (slices along dim 0) whose
    gradient has a nonzero element are the "present" entries of torch's sparse gradient (what
    ``grad.to_sparse(1)`` keeps). Only those rows of ``exp_avg``, ``exp_avg_sq`` and the parameter
    change; other rows keep their moments, exactly torch's masked update:

    .. math::
        m \leftarrow m + (1 - \beta_1)(g - m), \quad v \leftarrow v + (1 - \beta_2)(g^2 - v), \quad
        \theta \leftarrow \theta - \gamma\frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}\,\frac{m}{\sqrt v + \epsilon}
        \quad\text{on touched rows.}

    ``step`` counts the steps in which the parameter had a gradient (a Python int, as in torch).

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8).
        maximize: Maximize the objective instead of minimizing it.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False) -> None:
        if isinstance(lr, ndcore.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 < _to_float(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        _validate("SparseAdam", betas=betas)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "maximize": maximize}
        super().__init__(params, defaults)

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = _zeros_like(p)
                    state["exp_avg_sq"] = _zeros_like(p)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                # the kernel advances a counter tensor; the state keeps torch's plain int
                steps.append(ndcore.tensor(float(state["step"]), dtype=ndcore.float64))
                state["step"] += 1
            if params:
                beta1, beta2 = group["betas"]
                _C._fused_sparse_adam_(params, grads, exp_avgs, exp_avg_sqs, steps, lr=_to_float(group["lr"]),
                                       beta1=_to_float(beta1), beta2=_to_float(beta2), eps=float(group["eps"]),
                                       maximize=bool(group.get("maximize", False)))
        return loss
