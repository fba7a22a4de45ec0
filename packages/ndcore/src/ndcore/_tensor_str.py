"""Tensor ``repr`` rendering that matches PyTorch 2.13 character for character.

The module works on plain numpy arrays (plus nd's dtype name) so that it has no
dependency on the C extension; the ndcore ``Tensor`` hands its data over as numpy.
Every quirk below exists because torch prints that way and users diff the two.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ._lazy import np

__all__ = ["format_tensor", "get_printoptions", "printoptions", "set_printoptions"]

_FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})

# torch accepts these spellings too, but always prints the canonical name.
_DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
}

# (precision, threshold, edgeitems, linewidth) per torch profile.
_PROFILES = {
    "default": (4, 1000, 3, 80),
    "short": (2, 1000, 2, 80),
    "full": (4, math.inf, 3, 80),
}


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


_OPTS = _PrintOptions()


def set_printoptions(
    precision: int | None = None,
    threshold: float | None = None,
    edgeitems: int | None = None,
    linewidth: int | None = None,
    profile: str | None = None,
    sci_mode: bool | None = None,
) -> None:
    """Set global print options, with the same semantics as ``torch.set_printoptions``.

    Args:
        precision: Digits after the decimal point for floating point output.
        threshold: Element count above which tensors are summarised with ``...``.
        edgeitems: Items kept at each end of a summarised dimension.
        linewidth: Characters per line before wrapping.
        profile: One of ``"default"``, ``"short"``, ``"full"``; applied before the
            other arguments so they can override it.
        sci_mode: Force scientific notation on (True) or off (False); None lets the
            values decide. Like torch, omitting it resets it to None.
    """
    preset = _PROFILES.get(profile) if profile is not None else None
    if preset is not None:
        _OPTS.precision, _OPTS.threshold, _OPTS.edgeitems, _OPTS.linewidth = preset
    if precision is not None:
        _OPTS.precision = precision
    if threshold is not None:
        _OPTS.threshold = threshold
    if edgeitems is not None:
        _OPTS.edgeitems = edgeitems
    if linewidth is not None:
        _OPTS.linewidth = linewidth
    # Unconditional on purpose: torch forgets a forced sci_mode on any later call.
    _OPTS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """Return the current print options as kwargs accepted by ``set_printoptions``."""
    return dataclasses.asdict(_OPTS)


class printoptions:  # noqa: N801 - lowercase to mirror numpy.printoptions / torch
    """Context manager that applies ``set_printoptions`` kwargs and restores on exit.

    Args:
        precision: See ``set_printoptions``.
        threshold: See ``set_printoptions``.
        edgeitems: See ``set_printoptions``.
        linewidth: See ``set_printoptions``.
        profile: See ``set_printoptions``.
        sci_mode: See ``set_printoptions``.
    """

    def __init__(
        self,
        precision: int | None = None,
        threshold: float | None = None,
        edgeitems: int | None = None,
        linewidth: int | None = None,
        profile: str | None = None,
        sci_mode: bool | None = None,
    ) -> None:
        self._kwargs = dict(
            precision=precision,
            threshold=threshold,
            edgeitems=edgeitems,
            linewidth=linewidth,
            profile=profile,
            sci_mode=sci_mode,
        )
        self._saved: list[dict[str, Any]] = []

    def __enter__(self) -> None:
        # A stack keeps one instance usable in nested/re-entrant ``with`` blocks.
        self._saved.append(get_printoptions())
        set_printoptions(**self._kwargs)

    def __exit__(self, *exc_info: object) -> None:
        set_printoptions(**self._saved.pop())


def _round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), kept as float32."""
    # Not ascontiguousarray: it would promote 0-d input to shape (1,).
    f32 = np.array(values, dtype=np.float32, order="C")
    # 64-bit intermediate so the rounding carry cannot wrap around.
    bits = f32.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    rounded = bits.astype(np.uint32).view(np.float32)
    # The carry can turn a NaN payload into inf; NaNs must stay NaN.
    return np.where(np.isnan(f32), f32, rounded)


def _to_dtype_values(values: np.ndarray, dtype: str) -> np.ndarray:
    """Bring ``values`` to the precision of ``dtype``; floats are widened to float64."""
    if dtype == "bfloat16":
        return _round_to_bfloat16(values).astype(np.float64)
    if dtype in _FLOAT_DTYPES:
        # Round-trip through the storage dtype so that e.g. float64 input printed as
        # float32 shows float32 digits, then widen: torch formats Python floats.
        return values.astype(dtype).astype(np.float64)
    return values.astype(dtype)


class _Formatter:
    """Chooses one number style and column width for every element of a tensor."""

    def __init__(self, sample: np.ndarray, floating: bool, opts: _PrintOptions) -> None:
        self.floating = floating
        self.precision = opts.precision
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        if not floating:
            for value in sample.ravel().tolist():
                self.width = max(self.width, len(str(value)))
            return

        flat = sample.ravel()
        finite = flat[np.isfinite(flat) & (flat != 0)]
        if finite.size == 0:
            # Zeros, nans and infs alone never influence the style or width.
            return
        magnitudes = np.abs(finite)
        smallest, largest = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        if opts.sci_mode is None:
            self.sci_mode = bool(
                largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
            )
        else:
            self.sci_mode = bool(opts.sci_mode)

        p = self.precision
        # Only nonzero finite values count towards the width; a wider "-inf" or
        # "-0." later simply overflows its column, exactly as in torch.
        for value in finite.tolist():
            if self.sci_mode:
                text = f"{value:.{p}e}"
            elif self.int_mode:
                text = f"{value:.0f}."
            else:
                text = f"{value:.{p}f}"
            self.width = max(self.width, len(text))

    def format(self, value: Any) -> str:
        """Render one element right-aligned to the shared column width.

        Args:
            value: A Python float, int or bool taken from the tensor.
        """
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{self.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}"
            if math.isfinite(value):
                # The trailing dot is what tells a reader the tensor is floating point.
                text += "."
        else:
            text = f"{value:.{self.precision}f}"
        return text.rjust(self.width)


def _summarized_sample(arr: np.ndarray, edgeitems: int) -> np.ndarray:
    """Return the elements that will actually be printed when summarising."""
    if arr.ndim == 0:
        return arr
    if not edgeitems:
        # torch slices a 1-D tensor as t[:0] + t[-0:], which is the whole tensor,
        # while higher dims collapse to nothing; both only print "[...]" anyway.
        return arr if arr.ndim == 1 else arr.reshape(-1)[:0]
    index = []
    for size in arr.shape:
        if size > 2 * edgeitems:
            index.append(np.r_[0:edgeitems, size - edgeitems : size])
        else:
            index.append(np.arange(size))
    return arr[np.ix_(*index)]


def _render(
    arr: np.ndarray, indent: int, summarize: bool, fmt: _Formatter, opts: _PrintOptions
) -> str:
    """Recursively render ``arr``; ``indent`` is the column of its opening bracket."""
    if arr.ndim == 0:
        return fmt.format(arr.item())

    edge = opts.edgeitems
    trimmed = summarize and arr.shape[0] > 2 * edge
    if arr.ndim == 1:
        if summarize and not edge:
            items = ["..."]
        elif trimmed:
            # The leading space is torch's: after ", " the ellipsis looks indented.
            items = [fmt.format(v) for v in arr[:edge].tolist()] + [" ..."]
            items += [fmt.format(v) for v in arr[-edge:].tolist()]
        else:
            items = [fmt.format(v) for v in arr.tolist()]
        # Wrapping assumes every element is exactly one column wide plus ", ".
        per_line = max(1, math.floor((opts.linewidth - indent) / (fmt.width + 2)))
        rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(rows) + "]"

    count = arr.shape[0]
    if trimmed:
        keep = list(range(edge)) + [None] + list(range(count - edge, count))
    else:
        keep = list(range(count))
    parts = [
        "..." if i is None else _render(arr[i], indent + 1, summarize, fmt, opts)
        for i in keep
    ]
    # Outer dims are separated by (ndim - 1) newlines, i.e. blank lines between blocks.
    separator = "," + "\n" * (arr.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(parts) + "]"


def _append_suffixes(text: str, suffixes: list[str], indent: int, linewidth: int) -> str:
    """Append ``, suffix`` items and the closing paren, wrapping like torch."""
    pieces = [text]
    # torch over-counts the current line by two columns before the first wrap (and
    # not after); the skew is kept so wraps happen at the same places.
    line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if line_len + len(suffix) + 2 > linewidth:
            pieces.append(",\n" + " " * indent + suffix)
            line_len = indent + len(suffix)
        else:
            pieces.append(", " + suffix)
            line_len += len(suffix) + 2
    pieces.append(")")
    return "".join(pieces)


def format_tensor(
    values: np.ndarray,
    *,
    dtype_name: str,
    default_dtype_name: str = "float32",
    device: str = "cpu",
    extra_suffixes: tuple[str, ...] = (),
    prefix: str = "tensor(",
    dtype_prefix: str = "torch.",
) -> str:
    """Render tensor data exactly as ``repr(torch_tensor)`` would under current options.

    Args:
        values: Tensor contents; bfloat16 data may be passed as float32 (it is
            rounded to bfloat16 here), other dtypes as their numpy equivalent.
        dtype_name: nd/torch dtype name such as ``"float32"`` or ``"bool"``.
        default_dtype_name: Current default float dtype, whose name is not printed.
        device: Device string; anything but CPU is printed as ``device='...'``.
        extra_suffixes: Pre-formatted trailing items such as ``"requires_grad=True"``.
        prefix: Opening text; its length sets the continuation-line indent.
        dtype_prefix: Namespace printed before dtype names (``"nd."`` in nd).
    """
    opts = _OPTS
    dtype = _DTYPE_ALIASES.get(dtype_name, dtype_name)
    default_dtype = _DTYPE_ALIASES.get(default_dtype_name, default_dtype_name)
    arr = _to_dtype_values(np.asarray(values), dtype)
    indent = len(prefix)

    suffixes = []
    if device.split(":", 1)[0] != "cpu":
        suffixes.append(f"device='{device}'")
    if arr.size == 0:
        # 1-D empties match numpy's "[]"; other shapes would be ambiguous without size.
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        # No values to hint at int64/bool, so only the default float dtype is implied.
        if dtype != default_dtype:
            suffixes.append(f"dtype={dtype_prefix}{dtype}")
        body = "[]"
    else:
        if not opts.edgeitems:
            # "[...]" alone says nothing about the shape.
            suffixes.append(f"size={tuple(arr.shape)}")
        if dtype not in (default_dtype, "int64", "bool"):
            suffixes.append(f"dtype={dtype_prefix}{dtype}")
        summarize = arr.size > opts.threshold
        sample = _summarized_sample(arr, opts.edgeitems) if summarize else arr
        fmt = _Formatter(sample, dtype in _FLOAT_DTYPES, opts)
        body = _render(arr, indent, summarize, fmt, opts)

    suffixes.extend(extra_suffixes)
    return _append_suffixes(prefix + body, suffixes, indent, opts.linewidth)
