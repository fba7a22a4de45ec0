"""The safetensors file layout, written and read with validation (no code runs on read).

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}``
(padded with spaces to a multiple of 8), then the raw little-endian buffers, back to back, in
offset order. Every check on read runs before any allocation, so a hostile file costs at most
its own size in memory.
"""
from __future__ import annotations

import json
import math
import sys

import numpy as np

__all__ = ["write", "read_header", "entry_array", "ST_TO_NUMPY", "NUMPY_TO_ST", "HeaderEntry"]

# safetensors dtype name -> NumPy dtype of the raw bytes (BF16 travels as uint16 bits)
ST_TO_NUMPY = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
NUMPY_TO_ST = {np.dtype(v).str: k for k, v in ST_TO_NUMPY.items() if k != "BF16"}
NUMPY_TO_ST[np.dtype("?").str] = "BOOL"

MAX_HEADER = 100 * 1024 * 1024  # bytes of JSON; far above any real checkpoint's table
MAX_DIMS = 64
MAX_DIM_SIZE = 1 << 48

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("ndnn.serialization needs a little-endian machine")


class HeaderEntry:
    """One validated tensor entry of the header."""

    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype, shape, begin, end):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def write(f, entries, metadata: dict) -> None:
    """Writes ``entries`` (name -> (st_dtype, shape, contiguous NumPy array)) and ``metadata``."""
    header = {}
    offset = 0
    for name, (dtype, shape, arr) in entries.items():
        n = arr.nbytes
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = metadata
    raw = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # aligned buffers, as the safetensors writer pads
    f.write(len(raw).to_bytes(8, "little"))
    f.write(raw)
    for _, _, arr in entries.values():
        if arr.nbytes:
            f.write(memoryview(arr.reshape(-1)).cast("B"))


def _fail(msg: str):
    raise ValueError(f"[load] invalid file: {msg}")


def _check_int(v, what: str, lo: int = 0, hi: int | None = None) -> int:
    if type(v) is not int or v < lo or (hi is not None and v > hi):
        _fail(f"{what} must be an integer in [{lo}, {hi if hi is not None else 'inf'}], got {str(v)[:40]}")
    return v


def read_header(buf, size: int):
    """Parses and validates the header of a file of ``size`` bytes whose start is in ``buf``.

    Args:
        buf: A bytes-like object holding at least the first 8 + N bytes.
        size: Total size of the file in bytes.

    Returns:
        (entries in offset order, metadata dict, byte offset of the data section).
    """
    if size < 8:
        _fail(f"the file has {size} bytes; a safetensors file starts with an 8-byte header length")
    n = int.from_bytes(bytes(buf[:8]), "little")
    if n > min(MAX_HEADER, size - 8):
        _fail(f"header length {n} exceeds the file ({size} bytes) or the {MAX_HEADER}-byte limit; truncated or not "
              f"a safetensors file")
    try:
        text = bytes(buf[8:8 + n]).decode("utf-8")
        header = json.loads(text)
    except UnicodeDecodeError as e:
        _fail(f"header is not UTF-8 ({e.reason} at byte {e.start})")
    except RecursionError:
        _fail("header JSON is nested too deeply")
    except ValueError as e:
        _fail(f"header is not JSON ({e})")
    if not isinstance(header, dict):
        _fail("header JSON must be an object")
    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        _fail("__metadata__ must map strings to strings")
    entries = []
    for name, spec in header.items():
        if not isinstance(spec, dict):
            _fail(f"entry {name!r} must be an object")
        dtype = spec.get("dtype")
        if not isinstance(dtype, str) or dtype not in ST_TO_NUMPY:
            _fail(f"entry {name!r} has unknown dtype {str(dtype)[:20]!r} (known: {', '.join(ST_TO_NUMPY)})")
        shape = spec.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS:
            _fail(f"entry {name!r} shape must be a list of at most {MAX_DIMS} sizes")
        shape = tuple(_check_int(s, f"entry {name!r} size", 0, MAX_DIM_SIZE) for s in shape)
        offsets = spec.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2:
            _fail(f"entry {name!r} data_offsets must be [begin, end]")
        begin = _check_int(offsets[0], f"entry {name!r} begin", 0, data_len)
        end = _check_int(offsets[1], f"entry {name!r} end", begin, data_len)
        if math.prod(shape) * ST_TO_NUMPY[dtype].itemsize != end - begin:
            _fail(f"entry {name!r}: shape {list(shape)} of {dtype} needs "
                  f"{math.prod(shape) * ST_TO_NUMPY[dtype].itemsize} bytes but data_offsets span {end - begin}")
        entries.append(HeaderEntry(name, dtype, shape, begin, end))
    entries.sort(key=lambda e: (e.begin, e.end))
    pos = 0
    for e in entries:
        if e.begin != pos:
            _fail(f"entry {e.name!r} starts at byte {e.begin} but the previous one ends at {pos} (overlapping or "
                  f"holes in data_offsets)")
        pos = e.end
    if pos != data_len:
        _fail(f"the data section has {data_len} bytes but the entries cover {pos}")
    return entries, metadata, data_start


def entry_array(data, data_start: int, e: HeaderEntry, copy: bool) -> np.ndarray:
    """The NumPy array of entry ``e`` over ``data`` (zero copy unless ``copy`` or misaligned)."""
    if e.dtype == "BOOL":  # any byte but 0/1 is not a valid C++ bool: normalise (a copy)
        raw = np.frombuffer(data, dtype=np.uint8, count=e.numel, offset=data_start + e.begin)
        return (raw != 0).reshape(e.shape)
    arr = np.frombuffer(data, dtype=ST_TO_NUMPY[e.dtype], count=e.numel, offset=data_start + e.begin)
    if copy or not arr.flags.aligned:
        arr = arr.copy()
    return arr.reshape(e.shape)
