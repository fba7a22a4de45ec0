"""torch's memory formats: names of tensor layouts (Note [Memory formats] in ndcore's C++)."""
from __future__ import annotations


class memory_format(str):  # noqa: N801 - torch's spelling
    """A layout ``clone``, ``contiguous``, ``to`` and ``empty`` accept as ``memory_format=``.

    A ``str`` subclass, so the op binder passes it straight to the kernels."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "nd." + str(self)


contiguous_format = memory_format("contiguous_format")
preserve_format = memory_format("preserve_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
