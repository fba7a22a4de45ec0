"""``Function``: user-defined ops with their own forward and backward (torch.autograd.Function)."""
from __future__ import annotations

import functools
import weakref

import ndcore as nd
from ndcore import _C

from ._engine import Node, _Saved, edge_of


class FunctionCtx:
    """The ``ctx`` a Function's forward and backward share."""

    def __init__(self):
        self._saved = ()
        self._dirty = set()
        self._non_diff = set()
        self.materialize_grads = True
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors):
        self._to_save = tensors

    def mark_dirty(self, *tensors):
        self._dirty = {id(t) for t in tensors}

    def mark_non_differentiable(self, *tensors):
        self._non_diff = {id(t) for t in tensors}

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = bool(value)

    @property
    def saved_tensors(self):
        if self._saved is None:
            raise RuntimeError("Trying to backward through the graph a second time: saved tensors of this Function "
                               "were freed; specify retain_graph=True on the first backward")
        ref = getattr(self, "_node_ref", None)
        node = ref() if ref is not None else None
        return tuple(s.unpack(node) if isinstance(s, _Saved) else s for s in self._saved)

    saved_variables = saved_tensors  # the seed's (old torch) spelling


class FunctionNode(Node):
    def __init__(self, cls, ctx, next_edges, out_meta, arg_positions):
        super().__init__(cls.__name__ + "Backward", next_edges)
        self.cls, self.ctx, self.out_meta, self.arg_positions = cls, ctx, out_meta, arg_positions

    def apply(self, grads):
        if self.ctx.materialize_grads:
            grads = [g if g is not None else nd.zeros(*m[0], dtype=m[1]) for g, m in zip(grads, self.out_meta)]
        result = self.cls.backward(self.ctx, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        n_args = max(self.arg_positions) + 1 if self.arg_positions else 0
        if len(result) < n_args:
            raise RuntimeError(f"function {self.cls.__name__}Backward returned an incorrect number of gradients "
                               f"(expected {n_args}, got {len(result)})")
        return [result[p] for p in self.arg_positions]

    def release(self):
        self.ctx._saved = None
        self.released = True


class Function:
    """Subclass with ``@staticmethod forward(ctx, *args)`` and ``backward(ctx, *grads)``; call
    ``YourFunction.apply(*args)``."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("Function subclasses must implement backward")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        positions = [i for i, a in enumerate(args) if isinstance(a, nd.Tensor)]
        ctx.needs_input_grad = tuple(isinstance(a, nd.Tensor) and a.requires_grad for a in args)
        prev = _C.is_grad_enabled()
        _C._set_grad_enabled(False)
        try:
            out = cls.forward(ctx, *args, **kwargs)
        finally:
            _C._set_grad_enabled(prev)
        record = prev and any(ctx.needs_input_grad)
        outs = out if isinstance(out, tuple) else (out,)
        to_save = getattr(ctx, "_to_save", ())
        ctx._to_save = ()  # ctx._saved takes them over; a second reference would outlive the graph
        if not record:
            ctx._saved = tuple(to_save)
            return out
        ids_out = {id(o) for o in outs if isinstance(o, nd.Tensor)}
        out_pos = {id(o): k for k, o in enumerate(outs) if isinstance(o, nd.Tensor)}
        ctx._saved = tuple(_Saved(t, cls.__name__, f"saved[{i}]", is_output=id(t) in ids_out, out_nr=out_pos.get(id(t)))
                           if isinstance(t, nd.Tensor) else t for i, t in enumerate(to_save))
        edges = [edge_of(args[p]) for p in positions]
        meta = [(tuple(o.shape), o.dtype, o.device) if isinstance(o, nd.Tensor) else ((), nd.float32, None) for o in outs]
        node = FunctionNode(cls, ctx, edges, meta, positions)
        # weak: the node owns ctx, and a strong back-reference would make a cycle that keeps every
        # saved tensor alive until the cyclic GC runs (fresh memory and page faults each step)
        ctx._node_ref = weakref.ref(node)
        outs = list(outs)
        for i, o in enumerate(outs):
            if not isinstance(o, nd.Tensor) or id(o) in ctx._non_diff or not o.dtype.is_floating_point:
                continue
            if id(o) in ctx._dirty:
                if o.requires_grad and o.grad_fn is None:
                    raise RuntimeError(f"[{cls.__name__}] a leaf Variable that requires grad was modified in-place")
            elif any(o is args[p] for p in positions):
                # an input returned as-is gets its own node (as in torch) on a fresh alias, so
                # the caller's input keeps its own grad_fn
                _C._set_grad_enabled(False)
                try:
                    o = outs[i] = o.view_as(o)
                finally:
                    _C._set_grad_enabled(prev)
            o._set_requires_grad_raw(True)
            o.grad_fn = node
            o._ag["out_nr"] = i
        return tuple(outs) if isinstance(out, tuple) else outs[0]


def once_differentiable(backward):
    """Marks a backward as not differentiable itself: it runs without recording."""

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        prev = _C.is_grad_enabled()
        _C._set_grad_enabled(False)
        try:
            return backward(ctx, *grads)
        finally:
            _C._set_grad_enabled(prev)

    return wrapper
