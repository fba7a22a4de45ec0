"""``saved_tensors_hooks``: intercept how autograd keeps the tensors a backward formula reads
(torch.autograd.graph.saved_tensors_hooks). ``pack(tensor) -> obj`` runs when a tensor is
saved; ``unpack(obj) -> tensor`` when backward needs it."""
from __future__ import annotations

from ._engine import _saved_hooks

__all__ = ["saved_tensors_hooks"]


class saved_tensors_hooks:  # noqa: N801 - torch's spelling
    def __init__(self, pack_hook, unpack_hook) -> None:
        self.pack_hook, self.unpack_hook = pack_hook, unpack_hook

    def __enter__(self):
        _saved_hooks.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc):
        _saved_hooks.pop()
        return False
