"""Rprop: resilient backpropagation (sign-based, per-element step sizes)."""
from __future__ import annotations

from ndcore import _C

from .optimizer import (
    Optimizer, _check_flags, _full_like, _new_step, _restore_group_defaults, _to_float, _use_no_grad, _validate,
    _zeros_like)

__all__ = ["Rprop"]


class Rprop(Optimizer):
    r"""Rprop, as ``torch.optim.Rprop`` (Riedmiller & Braun, 1993).

    Per element, with :math:`s = g_t g_{t-1}`:

    .. math::
        \eta_t &= \begin{cases} \eta_t^{prev}\cdot\eta_+ & s > 0 \\ \eta_t^{prev}\cdot\eta_- & s < 0 \\
            \eta_t^{prev} & s = 0 \end{cases}, \quad \text{clamped to } [\text{step}_{min}, \text{step}_{max}] \\
        g_t &\leftarrow 0 \text{ where } s < 0, \qquad \theta_t = \theta_{t-1} - \eta_t \operatorname{sign}(g_t)

    State per parameter: ``step``, ``prev`` (:math:`g_{t-1}`), ``step_size`` (:math:`\eta`, started at lr).

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Initial step size (default 1e-2).
        etas: :math:`(\eta_-, \eta_+)` with :math:`0 < \eta_- < 1 < \eta_+` (default (0.5, 1.2)).
        step_sizes: (min, max) allowed step sizes (default (1e-6, 50)).
        capturable: Accepted for torch compatibility.
        foreach: Accepted for torch compatibility.
        maximize: Maximize the objective instead of minimizing it.
        differentiable: Must be False.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False) -> None:
        _validate("Rprop", lr=lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        _check_flags("Rprop", differentiable)
        defaults = {"lr": lr, "etas": etas, "step_sizes": step_sizes, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable, "capturable": capturable}
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
            params, grads, prevs, step_sizes, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = _new_step()
                    state["prev"] = _zeros_like(p)
                    state["step_size"] = _full_like(p, _to_float(group["lr"]))
                params.append(p)
                grads.append(p.grad)
                prevs.append(state["prev"])
                step_sizes.append(state["step_size"])
                steps.append(state["step"])
            if params:
                etaminus, etaplus = group["etas"]
                smin, smax = group["step_sizes"]
                _C._fused_rprop_(params, grads, prevs, step_sizes, steps, etaminus=float(etaminus),
                                 etaplus=float(etaplus), step_size_min=float(smin), step_size_max=float(smax),
                                 maximize=bool(group["maximize"]))
        return loss
