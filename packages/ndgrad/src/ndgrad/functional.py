"""Higher-level derivatives built on ``grad``: jacobian, hessian, vjp, jvp, hvp."""
from __future__ import annotations

import ndcore as nd

from ._api import grad

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]


def _tup(x):
    return (tuple(x), True) if isinstance(x, (tuple, list)) else ((x,), False)


def _prep(inputs):
    xs, is_tuple = _tup(inputs)
    return tuple(x.detach().requires_grad_(True) for x in xs), is_tuple


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), v^T J)."""
    xs, is_tuple = _prep(inputs)
    out = func(*xs)
    outs, _ = _tup(out)
    vs = _tup(v)[0] if v is not None else tuple(nd.ones_like(o) for o in outs)
    g = grad(outs, xs, vs, create_graph=create_graph, allow_unused=True, materialize_grads=True)
    res = tuple(x if create_graph else x.detach() for x in g)
    return (out if create_graph else _detach(out)), (res if is_tuple else res[0])


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), J v), via the double-vjp trick."""
    xs, is_tuple = _prep(inputs)
    out = func(*xs)
    outs, out_tuple = _tup(out)
    us = tuple(nd.zeros_like(o).requires_grad_(True) for o in outs)
    gx = grad(outs, xs, us, create_graph=True, allow_unused=True, materialize_grads=True)
    vs = _tup(v)[0] if v is not None else tuple(nd.ones_like(x) for x in xs)
    jv = grad(gx, us, vs, create_graph=create_graph, allow_unused=True, materialize_grads=True)
    res = tuple(j if create_graph else j.detach() for j in jv)
    return (out if create_graph else _detach(out)), (res if out_tuple else res[0])


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """Full Jacobian: shape out.shape + in.shape (nested tuples for tuple inputs/outputs)."""
    xs, in_tuple = _prep(inputs)
    out = func(*xs)
    outs, out_tuple = _tup(out)
    table = []
    for o in outs:
        flat = o.reshape(-1)
        rows = [[] for _ in xs]
        for k in range(flat.numel()):
            gs = grad(flat[k], xs, retain_graph=True, create_graph=create_graph, allow_unused=True,
                      materialize_grads=True)
            for i, g in enumerate(gs):
                rows[i].append(g if create_graph else g.detach())
        per_in = []
        for i, x in enumerate(xs):
            stacked = nd.stack(rows[i]) if rows[i] else nd.zeros(0, *x.shape, dtype=x.dtype)
            per_in.append(stacked.reshape(*o.shape, *x.shape))
        table.append(tuple(per_in) if in_tuple else per_in[0])
    return tuple(table) if out_tuple else table[0]


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """Hessian of a scalar function."""
    def grad_fn(*xs):
        out = func(*xs)
        gs = grad(out, xs, create_graph=True, allow_unused=True, materialize_grads=True)
        return gs if isinstance(inputs, (tuple, list)) else gs[0]

    return jacobian(grad_fn, inputs, create_graph=create_graph)


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), v^T H)."""
    xs, is_tuple = _prep(inputs)
    out = func(*xs)
    gs = grad(out, xs, create_graph=True, allow_unused=True, materialize_grads=True)
    vs = _tup(v)[0]
    res = grad(gs, xs, vs, create_graph=create_graph, allow_unused=True, materialize_grads=True)
    res = tuple(r if create_graph else r.detach() for r in res)
    return _detach(out), (res if is_tuple else res[0])


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """Returns (func(inputs), H v); equal to vhp for the symmetric Hessian."""
    return vhp(func, inputs, v, create_graph, strict)


def _detach(out):
    if isinstance(out, (tuple, list)):
        return tuple(o.detach() for o in out)
    return out.detach()
