"""ndcore.multiprocessing (``nd.multiprocessing``): the standard ``multiprocessing`` API, with
tensors sent through shared memory.

Everything of the standard module is re-exported (Process, Queue, Pool, get_context,
set_start_method, ...); importing this module registers a ``ForkingPickler`` reducer for
``ndcore.Tensor``, so a tensor put on a Queue or Pipe, passed to a Pool, or given to a spawned
Process moves its storage into named POSIX shared memory (``Tensor.share_memory_``) and the
receiver gets a tensor over the same bytes: writes are seen both ways. Dtype, shape, strides,
storage offset and the requires_grad flag travel with it; ``.grad`` does not. Fork children
simply inherit shared tensors. Plain ``pickle`` still copies by value.

Lifetime: see Note [Shared memory segments] in _shm.py. The segment's name is unlinked as soon
as no process holds it and no message carrying it is in flight; processes release what they
hold when their last tensor over it dies or when they exit.

Limitations: views taken of a tensor *before* ``share_memory_`` keep the old private storage
(call ``share_memory_`` first, then take views); reducing a non-shared tensor for a Queue
rebinds that tensor to shared memory in the sender (as torch does); bfloat16 tensors need
``Tensor.view(dtype)`` in ndcore's core; tensors on other devices travel by value.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing import *  # noqa: F401,F403

from ._reductions import init_reductions, reduce_tensor
from ._spawn import (
    ProcessContext, ProcessException, ProcessExitedException, ProcessRaisedException, spawn, start_processes,
)

_SHARING_STRATEGIES = frozenset({"file_system"})
_sharing_strategy = "file_system"


def get_all_sharing_strategies() -> frozenset:
    """The strategies this platform supports: 'file_system' (named POSIX shared memory)."""
    return _SHARING_STRATEGIES


def get_sharing_strategy() -> str:
    return _sharing_strategy


def set_sharing_strategy(new_strategy: str) -> None:
    """Accepted for torch compatibility; only 'file_system' exists."""
    if new_strategy not in _SHARING_STRATEGIES:
        raise ValueError(f"[set_sharing_strategy] unknown strategy {new_strategy!r}; "
                         f"available: {sorted(_SHARING_STRATEGIES)}")


init_reductions()

__all__ = sorted(set(multiprocessing.__all__) | {
    "ProcessContext", "ProcessException", "ProcessExitedException", "ProcessRaisedException",
    "get_all_sharing_strategies", "get_sharing_strategy", "init_reductions", "reduce_tensor",
    "set_sharing_strategy", "spawn", "start_processes",
})
