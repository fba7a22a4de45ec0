"""``Size``: the tuple subclass that ``Tensor.shape`` returns (like ``torch.Size``)."""
from __future__ import annotations


class Size(tuple):
    """A tuple of dimension sizes; ``numel()`` is their product."""

    __slots__ = ()

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"nd.Size([{', '.join(map(str, self))}])"

    def __getitem__(self, item):  # slices stay Size, as in torch
        r = tuple.__getitem__(self, item)
        return Size(r) if isinstance(item, slice) else r

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))
