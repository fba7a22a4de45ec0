"""Activation checkpointing (``nd.utils.checkpoint.checkpoint``), the non-reentrant design:
the forward keeps no intermediate tensors, only their positions; the first time backward asks
for one, the function is re-run (with the same RNG state) and the recomputed tensors are handed
out by position. Works with ``backward``, ``autograd.grad`` and hooks, since the graph itself is
the one the original forward built."""
from __future__ import annotations

import ndcore as nd

from ._grad_mode import enable_grad
from .graph import saved_tensors_hooks

__all__ = ["checkpoint", "checkpoint_sequential"]


def checkpoint(function, *args, use_reentrant=None, preserve_rng_state=True, **kwargs):
    """Runs ``function(*args, **kwargs)`` without keeping its intermediates for backward."""
    if use_reentrant:
        raise ValueError("checkpoint: only the non-reentrant design (use_reentrant=False) is implemented")
    rng = nd.get_rng_state() if preserve_rng_state else None
    recomputed: dict[int, object] = {}
    counter = [0]

    def pack(tensor):
        index = counter[0]
        counter[0] += 1
        return index

    def unpack(index):
        if index not in recomputed:
            _recompute()
        return recomputed.pop(index)

    def _recompute():
        position = [0]

        def keep(tensor):
            recomputed[position[0]] = tensor
            position[0] += 1
            return None

        saved = nd.get_rng_state() if rng is not None else None
        if rng is not None:
            nd.set_rng_state(rng)
        try:
            with saved_tensors_hooks(keep, lambda _: None), enable_grad():
                function(*args, **kwargs)
        finally:
            if saved is not None:
                nd.set_rng_state(saved)

    with saved_tensors_hooks(pack, unpack):
        return function(*args, **kwargs)


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Splits a sequence of modules/functions into ``segments`` checkpointed chunks."""
    functions = list(functions)
    size = max(1, -(-len(functions) // segments))

    def run(chunk):
        def f(x):
            for fn in chunk:
                x = fn(x)
            return x
        return f

    for start in range(0, len(functions), size):
        input = checkpoint(run(functions[start:start + size]), input, use_reentrant=False)
    return input
