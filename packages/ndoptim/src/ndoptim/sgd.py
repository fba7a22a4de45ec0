"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from ndcore import _C

from .optimizer import Optimizer, _check_flags, _empty_like, _to_float, _use_no_grad, _validate

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    With gradient :math:`g_t` (negated when ``maximize``), weight decay :math:`\lambda`,
    momentum :math:`\mu` and dampening :math:`\tau`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &\leftarrow \begin{cases} g_t & t = 1 \\ \mu b_{t-1} + (1 - \tau) g_t & t > 1 \end{cases} \\
        g_t &\leftarrow g_t + \mu b_t \text{ (nesterov) or } b_t \text{ (momentum} \ne 0) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t

    State per parameter: ``momentum_buffer`` (only when ``momentum != 0``).

    Args:
        params: Tensors, ``(name, tensor)`` pairs or parameter-group dicts to optimize.
        lr: Learning rate :math:`\gamma` (default 1e-3).
        momentum: Momentum factor :math:`\mu` (default 0).
        dampening: Dampening :math:`\tau` for momentum (default 0).
        weight_decay: L2 penalty :math:`\lambda` (default 0).
        nesterov: Use Nesterov momentum (needs momentum > 0 and zero dampening).
        maximize: Maximize the objective instead of minimizing it.
        foreach: Accepted for torch compatibility; every update is one multi-tensor kernel.
        differentiable: Must be False (the update is not recorded by autograd).
        fused: Accepted for torch compatibility (the update is always fused).
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None) -> None:
        _validate("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        _check_flags("SGD", differentiable, fused, foreach)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach, "differentiable": differentiable,
                    "fused": fused}
        super().__init__(params, defaults)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    @_use_no_grad
    def step(self, closure=None):
        """Performs one optimization step.

        Args:
            closure: Re-evaluates the model and returns the loss (run with autograd on).
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, bufs, fresh = [], [], [], []
            momentum = group["momentum"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                params.append(p)
                grads.append(g)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:  # torch starts the buffer as a copy of the first gradient
                        buf = state["momentum_buffer"] = _empty_like(p)
                        fresh.append(1)
                    else:
                        fresh.append(0)
                    bufs.append(buf)
            if params:
                _C._fused_sgd_(params, grads, bufs, lr=_to_float(group["lr"]), momentum=float(momentum),
                               dampening=float(group["dampening"]), weight_decay=_to_float(group["weight_decay"]),
                               nesterov=bool(group["nesterov"]), maximize=bool(group["maximize"]), fresh=fresh)
        return loss
