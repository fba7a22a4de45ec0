"""``grad``, ``backward`` and the Tensor methods autograd adds (backward, register_hook, ...)."""
from __future__ import annotations

import ndcore as nd

from . import _engine
from ._engine import run_backward


def _as_tuple(x):
    if x is None:
        return ()
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _make_grads(outputs, grad_outputs):
    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if i < len(grad_outputs) else None
        if g is None:
            if out.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; output {i} has shape "
                                   f"{tuple(out.shape)}: pass gradient= (or grad_outputs=)")
            g = nd.ones_like(out)
        elif tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(f"mismatch in shape: grad_output[{i}] has a shape of {tuple(g.shape)} and output[{i}] "
                               f"has a shape of {tuple(out.shape)}")
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulates d(tensors)/d(leaves) into the leaves' ``.grad``."""
    tensors = _as_tuple(tensors)
    grads = _make_grads(tensors, _as_tuple(grad_tensors))
    if retain_graph is None:
        retain_graph = create_graph
    for t in tensors:
        if not t.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if inputs is not None:
        inputs = _as_tuple(inputs)
        captured = grad(tensors, inputs, grads, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True)
        for t, g in zip(inputs, captured):
            if g is None:
                continue
            if t.grad is None:
                t.grad = g if create_graph else g.detach()
            else:
                t.grad = t.grad + g if create_graph else t.grad.add_(g.detach())
        return
    run_backward(list(zip(tensors, grads)), retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Returns d(outputs)/d(inputs) without touching any ``.grad``."""
    outputs = _as_tuple(outputs)
    single = isinstance(inputs, nd.Tensor)
    inputs = _as_tuple(inputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    grads = _make_grads(outputs, _as_tuple(grad_outputs))
    if retain_graph is None:
        retain_graph = create_graph
    keys = [id(t) if t.grad_fn is None else (t.grad_fn, t._ag.get("out_nr", 0)) for t in inputs]
    capture = {k: None for k in keys}
    roots = [(o, g) for o, g in zip(outputs, grads)]
    for o in outputs:
        if not o.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    # an input that is itself an output receives its grad_output directly
    direct = {}
    for o, g in roots:
        for k, t in zip(keys, inputs):
            if t is o:
                direct[id(t)] = g if id(t) not in direct else direct[id(t)] + g
    run_backward(roots, retain_graph, create_graph, capture=capture)
    result = []
    for k, t in zip(keys, inputs):
        g = capture[k]
        if g is None and id(t) in direct and isinstance(k, tuple):
            g = direct[id(t)]
        if g is None:
            if materialize_grads:
                g = nd.zeros_like(t)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been used in the graph. "
                                   "Set allow_unused=True if this is the desired behavior.")
        result.append(g)
    return tuple(result)


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    backward(self, gradient, retain_graph, create_graph, inputs=inputs)


class _HookHandle:
    def __init__(self, lst, fn):
        self._lst, self._fn = lst, fn

    def remove(self):
        if self._fn in self._lst:
            self._lst.remove(self._fn)


def _register_hook(self, hook):
    if not self.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if self.grad_fn is None:
        hooks = self._ag.setdefault("hooks", [])
    else:
        hooks = self.grad_fn._own_pre_hooks().setdefault(self._ag.get("out_nr", 0), [])
    hooks.append(hook)
    return _HookHandle(hooks, hook)


def _register_post_accumulate_grad_hook(self, hook):
    if self.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    hooks = self._ag.setdefault("post_accumulate_hooks", [])
    hooks.append(hook)
    return _HookHandle(hooks, hook)


def _retain_grad(self):
    if self.grad_fn is None or self._ag.get("retains_grad"):
        return
    self._ag["retains_grad"] = True

    def keep(g, t=self):
        t.grad = g.detach() if t.grad is None else t.grad + g.detach()

    self.grad_fn._own_pre_hooks().setdefault(self._ag.get("out_nr", 0), []).append(keep)


def install():
    T = nd.Tensor
    T.backward = _tensor_backward
    T.register_hook = _register_hook
    T.register_post_accumulate_grad_hook = _register_post_accumulate_grad_hook
    T.retain_grad = _retain_grad
    T.retains_grad = property(lambda self: bool(self._ag.get("retains_grad")) if self.grad_fn is not None else False)
    T.output_nr = property(lambda self: self._ag.get("out_nr", 0))
    nd._C._set_autograd_pre_hook(_engine.record_pre)
    nd._C._set_autograd_hook(_engine.record)
    _engine.install_fast_recorder()
