"""``FlatBuffer``: many variable-size samples in one NumPy buffer plus an offsets array.

A dataset that keeps its samples in a Python list of objects makes every forked DataLoader
worker copy the list's pages as it reads them: touching an object writes its reference
count. Two arrays hold no per-sample Python objects, so the pages stay shared between the
main process and all workers, and memory stays flat across epochs.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import ndcore

__all__ = ["FlatBuffer"]

_KINDS = ("bytes", "str", "array")


class FlatBuffer:
    """Variable-size samples (bytes, str or NumPy arrays) stored as one uint8 buffer.

    ``buf[i]`` returns item ``i`` as it was given: ``bytes``, ``str``, or a read-only NumPy
    array view of the buffer with the item's dtype and shape (no copy). Build it with
    ``FlatBuffer.from_list``.

    Args:
        data: The concatenated item bytes (uint8, 1-D).
        offsets: int64 array of ``len + 1`` byte offsets; item ``i`` is
            ``data[offsets[i]:offsets[i + 1]]``.
        kind: 'bytes', 'str' or 'array'.
        dtype: For 'array': the NumPy dtype of all items (one dtype per buffer).
        shapes: For 'array': an int64 array ``(len, max_ndim + 1)``: each item's ndim then its
            shape, padded (``None`` when every item is 1-D).
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray, kind: str = "bytes", dtype=None,
                 shapes: np.ndarray | None = None):
        if kind not in _KINDS:
            raise ValueError(f"[FlatBuffer] kind must be one of {_KINDS}, got {kind!r}")
        data = np.asarray(data)
        offsets = np.asarray(offsets)
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError(f"[FlatBuffer] data must be a 1-D uint8 array, got {data.dtype} of shape {data.shape}")
        if offsets.dtype != np.int64 or offsets.ndim != 1 or offsets.size == 0:
            raise TypeError("[FlatBuffer] offsets must be a non-empty 1-D int64 array")
        if offsets[0] != 0 or offsets[-1] != data.size or (offsets.size > 1 and np.any(np.diff(offsets) < 0)):
            raise ValueError(f"[FlatBuffer] offsets must rise from 0 to len(data)={data.size}")
        self.data = data
        self.offsets = offsets
        self.kind = kind
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.shapes = shapes
        if kind == "array" and self.dtype is None:
            raise ValueError("[FlatBuffer] kind 'array' needs the items' dtype")

    @classmethod
    def from_list(cls, items: Sequence) -> "FlatBuffer":
        """Packs a list of ``bytes``, ``str`` (UTF-8) or NumPy arrays (one dtype) into a buffer.

        Args:
            items: The samples; all of the same kind.
        """
        items = list(items)
        if not items:
            return cls(np.zeros(0, np.uint8), np.zeros(1, np.int64))
        first = items[0]
        if isinstance(first, (bytes, bytearray, memoryview)):
            kind, ok = "bytes", (bytes, bytearray, memoryview)
        elif isinstance(first, str):
            kind, ok = "str", str
        elif isinstance(first, (np.ndarray, ndcore.Tensor)):
            kind = "array"
            arrays = [x.numpy() if isinstance(x, ndcore.Tensor) else np.asarray(x) for x in items]
            dtype = arrays[0].dtype
            if dtype.hasobject:
                raise TypeError("[FlatBuffer] object arrays hold Python objects and can't be flattened")
            for i, a in enumerate(arrays):
                if a.dtype != dtype:
                    raise TypeError(f"[FlatBuffer] every array must have dtype {dtype}, item {i} has {a.dtype}")
        else:
            raise TypeError(f"[FlatBuffer] items must be bytes, str or NumPy arrays, got {type(first).__name__}")
        if kind != "array":
            for i, x in enumerate(items):
                if not isinstance(x, ok):
                    raise TypeError(f"[FlatBuffer] every item must be {kind}, item {i} is {type(x).__name__}")
            raw = [x.encode("utf-8") for x in items] if kind == "str" else [bytes(x) for x in items]
            lengths = np.fromiter((len(x) for x in raw), dtype=np.int64, count=len(raw))
            data = np.frombuffer(b"".join(raw), dtype=np.uint8).copy()
            return cls(data, _offsets(lengths), kind)
        lengths = np.fromiter((a.nbytes for a in arrays), dtype=np.int64, count=len(arrays))
        data = np.empty(int(lengths.sum()), dtype=np.uint8)
        offsets = _offsets(lengths)
        for a, o, n in zip(arrays, offsets[:-1], lengths):
            data[o:o + n] = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        ndims = {a.ndim for a in arrays}
        shapes = None
        if ndims != {1}:
            width = max(ndims) + 1
            shapes = np.zeros((len(arrays), width), dtype=np.int64)
            for i, a in enumerate(arrays):
                shapes[i, 0] = a.ndim
                shapes[i, 1:1 + a.ndim] = a.shape
        return cls(data, offsets, "array", dtype, shapes)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def nbytes(self, index: int) -> int:
        """Size in bytes of item ``index``."""
        return int(self.offsets[index + 1] - self.offsets[index])

    def __getitem__(self, index: int):
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"[FlatBuffer] indices must be integers, got {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"[FlatBuffer] index {index} is out of range for {n} items")
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        view = self.data[lo:hi]
        if self.kind == "bytes":
            return view.tobytes()
        if self.kind == "str":
            return view.tobytes().decode("utf-8")
        arr = view.view(self.dtype)
        if self.shapes is not None:
            row = self.shapes[index]
            arr = arr.reshape(tuple(int(s) for s in row[1:1 + row[0]]))
        arr.flags.writeable = False
        return arr

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"FlatBuffer(len={len(self)}, kind={self.kind!r}, nbytes={self.data.size})"


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets
