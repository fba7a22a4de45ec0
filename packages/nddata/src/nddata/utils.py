"""Image grid helpers (torchvision.utils): :func:`make_grid` and :func:`save_image` (PNG via Pillow)."""
from __future__ import annotations

import math
from typing import Any, BinaryIO

import ndcore

__all__ = ["make_grid", "save_image"]


def _as_batch(tensor) -> ndcore.Tensor:
    if isinstance(tensor, (list, tuple)):
        if not tensor or not all(isinstance(t, ndcore.Tensor) for t in tensor):
            raise TypeError("[make_grid] expected a tensor or a non-empty list of tensors")
        tensor = ndcore.stack(list(tensor), dim=0)
    if not isinstance(tensor, ndcore.Tensor):
        raise TypeError(f"[make_grid] tensor or list of tensors expected, got {type(tensor)}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 3:
        if tensor.shape[0] == 1:  # single-channel image -> 3 channels
            tensor = ndcore.cat([tensor, tensor, tensor], dim=0)
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ValueError(f"[make_grid] expected (B, C, H, W), (C, H, W) or (H, W), got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.shape[1] == 1:
        tensor = ndcore.cat([tensor, tensor, tensor], dim=1)
    return tensor


def _norm_range(t, low: float, high: float):
    return (t.clamp(min=low, max=high) - low) / max(high - low, 1e-5)


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0) -> ndcore.Tensor:
    """Tile a batch of images into one image (torchvision's ``make_grid``).

    Args:
        tensor: ``(B, C, H, W)`` batch, a list of same-sized ``(C, H, W)`` images, or one image.
            One-channel images are repeated to 3 channels.
        nrow: images per row; the grid has ``ceil(B / nrow)`` rows.
        padding: pixels of ``pad_value`` around and between images.
        normalize: shift each grid (or each image, ``scale_each``) to [0, 1] using
            ``value_range`` (default: its min and max); values outside are clamped.
        value_range: ``(low, high)`` used by ``normalize``.
        scale_each: normalize every image by its own min/max.
        pad_value: value of the padding pixels.

    Returns:
        ``(C, rows * (H + padding) + padding, nrow' * (W + padding) + padding)``, or the single
        image itself (after the channel/normalize steps) when ``B == 1``.
    """
    t = _as_batch(tensor)
    if normalize:
        t = t.clone()
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        if scale_each:
            b = t.shape[0]
            if value_range is not None:
                t = _norm_range(t, *value_range)
            else:
                flat = t.reshape(b, -1)
                lo = flat.amin(dim=1).view(b, 1, 1, 1)
                hi = flat.amax(dim=1).view(b, 1, 1, 1)
                t = (ndcore.minimum(ndcore.maximum(t, lo), hi) - lo) / (hi - lo).clamp(min=1e-5)
        else:
            lo, hi = value_range if value_range is not None else (t.min().item(), t.max().item())
            t = _norm_range(t, float(lo), float(hi))
    b, c, h, w = t.shape
    if b == 1:
        return t.squeeze(0)
    xmaps = min(nrow, b)
    ymaps = int(math.ceil(b / xmaps))
    ch, cw = h + padding, w + padding
    # Each cell is the image with `padding` above and left of it; one more strip closes the
    # bottom/right edge. Cells past the last image stay pad_value.
    cells = ndcore.full((ymaps * xmaps, c, ch, cw), pad_value, dtype=t.dtype)
    cells[:b, :, padding:, padding:] = t
    rows = cells.reshape(ymaps, xmaps, c, ch, cw).permute(2, 0, 3, 1, 4).reshape(c, ymaps * ch, xmaps * cw)
    grid = ndcore.full((c, ymaps * ch + padding, xmaps * cw + padding), pad_value, dtype=t.dtype)
    grid[:, :ymaps * ch, :xmaps * cw] = rows
    return grid


def save_image(tensor, fp: str | BinaryIO, format: str | None = None, **kwargs: Any) -> None:
    """Save a tensor (or batch, tiled by :func:`make_grid` with ``**kwargs``) as an image file.

    Values are taken to be in [0, 1]: ``uint8(clamp(x * 255 + 0.5, 0, 255))``, as torchvision.

    Args:
        tensor: image ``(C, H, W)``, batch ``(B, C, H, W)`` or list of images.
        fp: file name or writable binary file object.
        format: Pillow format name; required when ``fp`` is a file object without a name.
        **kwargs: forwarded to :func:`make_grid`.
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("[save_image] needs Pillow: pip install pillow") from e
    grid = make_grid(tensor, **kwargs)
    arr = grid.float().mul(255).add(0.5).clamp(0, 255).permute(1, 2, 0).to(ndcore.uint8)
    arr = arr.contiguous().numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    img.save(fp, format=format)
