"""Image ops on ndcore tensors ``(..., C, H, W)``, vectorised with ndcore ops (torchvision's
``functional_tensor`` semantics).

Resizing and blurring are separable linear maps: each is two matrix products with small
``(out, in)`` weight matrices (cached per size), which gives torch's ``interpolate`` results
(bilinear/bicubic, with or without antialias). Rotation and affine warps go through
:func:`_grid_sample`. Where ndcore implements ``upsample_bilinear2d``/``upsample_bicubic2d``/
``grid_sampler_2d`` those kernels are used (resize without antialias, or bilinear upsampling;
warps); otherwise the matrix products and a single stacked gather stand in, with the same results.
"""
from __future__ import annotations

from functools import lru_cache

import ndcore

_INT_MAX = {ndcore.uint8: 255, ndcore.int8: 127, ndcore.int16: 32767,
            ndcore.int32: 2**31 - 1, ndcore.int64: 2**63 - 1}


_NATIVE: dict[str, bool] = {}


def _native(name: str) -> bool:
    """True when ndcore implements the op ``name`` (its table row may predate the kernel)."""
    ok = _NATIVE.get(name)
    if ok is None:
        fn = getattr(ndcore, name, None)
        probes = {
            "grid_sampler_2d": lambda: fn(ndcore.zeros((1, 1, 2, 2)), ndcore.zeros((1, 1, 1, 2)),
                                          0, 0, False),
            "upsample_bilinear2d": lambda: fn(ndcore.zeros((1, 1, 2, 2)), [3, 3], False),
            "upsample_bicubic2d": lambda: fn(ndcore.zeros((1, 1, 2, 2)), [3, 3], False),
            "constant_pad_nd": lambda: fn(ndcore.zeros((1, 2, 2)), [1, 1, 1, 1], 0.0),
            "reflection_pad2d": lambda: fn(ndcore.zeros((1, 2, 2)), [1, 1, 1, 1]),
            "replication_pad2d": lambda: fn(ndcore.zeros((1, 2, 2)), [1, 1, 1, 1]),
        }
        try:
            ok = fn is not None and probes[name]() is not None
        except NotImplementedError:
            ok = False
        _NATIVE[name] = ok
    return ok


def _is_float(dtype) -> bool:
    return dtype in (ndcore.float32, ndcore.float64, ndcore.float16, ndcore.bfloat16)


def _max_value(dtype) -> float:
    if _is_float(dtype):
        return 1.0
    if dtype not in _INT_MAX:
        raise TypeError(f"[image] unsupported image dtype {dtype}")
    return _INT_MAX[dtype]


def _check(img, op: str) -> None:
    if not isinstance(img, ndcore.Tensor) or img.ndim < 2:
        shape = tuple(img.shape) if hasattr(img, "shape") else type(img).__name__
        raise TypeError(f"[{op}] expected an image tensor of shape (..., H, W), got {shape}")


def get_dimensions(img) -> list[int]:
    _check(img, "get_dimensions")
    c = 1 if img.ndim == 2 else img.shape[-3]
    return [c, img.shape[-2], img.shape[-1]]


def _check_channels(img, allowed: tuple[int, ...], op: str) -> int:
    c = get_dimensions(img)[0]
    if c not in allowed:
        raise TypeError(f"[{op}] expected image with {' or '.join(map(str, allowed))} channels, "
                        f"got shape {tuple(img.shape)} ({c} channels)")
    return c


def _to_float(img):
    """(float image, original dtype): integer images are computed on in float32."""
    return (img, img.dtype) if _is_float(img.dtype) else (img.float(), img.dtype)


def _from_float(img, dtype, clamp: bool = False):
    if _is_float(dtype):
        return img.to(dtype)
    img = img.round()
    if clamp:
        img = img.clamp(0, _max_value(dtype))
    return img.to(dtype)


# --------------------------------------------------------------------------- geometry


def hflip(img):
    _check(img, "hflip")
    return img.flip(-1)


def vflip(img):
    _check(img, "vflip")
    return img.flip(-2)


def crop(img, top: int, left: int, height: int, width: int):
    _check(img, "crop")
    h, w = img.shape[-2], img.shape[-1]
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:
        # Out-of-bounds parts are zero, as in PIL's crop.
        pad_ltrb = [max(-left + min(0, right), 0), max(-top + min(0, bottom), 0),
                    max(right - max(w, left), 0), max(bottom - max(h, top), 0)]
        inner = img[..., max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
        return pad(inner, pad_ltrb, fill=0)
    return img[..., top:bottom, left:right]


def _reflect_index(n: int, lo: int, hi: int, mode: str):
    """Source indices along one axis of length ``n`` padded by ``lo``/``hi`` in ``mode``."""
    i = ndcore.arange(-lo, n + hi)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        if n == 1:
            return ndcore.zeros((n + lo + hi,), dtype=ndcore.int64)
        period = 2 * (n - 1)
        i = ndcore.remainder(i, period)
        return ndcore.where(i >= n, period - i, i)
    period = 2 * n  # symmetric
    i = ndcore.remainder(i, period)
    return ndcore.where(i >= n, period - 1 - i, i)


def pad(img, padding: list[int], fill: float | list | tuple = 0, padding_mode: str = "constant"):
    """Pad the last two dims by ``[left, top, right, bottom]``; negative values crop."""
    _check(img, "pad")
    left, top, right, bottom = padding
    if min(padding) < 0:  # negative padding crops, as torch's pad does
        h, w = img.shape[-2], img.shape[-1]
        img = img[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
        left, top, right, bottom = (max(p, 0) for p in padding)
    h, w = img.shape[-2], img.shape[-1]
    if padding_mode == "constant":
        out_shape = tuple(img.shape[:-2]) + (h + top + bottom, w + left + right)
        if not isinstance(fill, (list, tuple)) and _native("constant_pad_nd"):
            return ndcore.constant_pad_nd(img, [left, right, top, bottom], fill)
        if isinstance(fill, (list, tuple)):
            if img.ndim < 3 or len(fill) not in (1, img.shape[-3]):
                raise ValueError(f"[pad] fill {fill} does not match image shape {tuple(img.shape)}")
            out = ndcore.tensor([float(f) for f in fill], dtype=ndcore.float64)
            out = out.view(-1, 1, 1).to(img.dtype).expand(*out_shape).clone()
        else:
            out = ndcore.full(out_shape, fill, dtype=img.dtype)
        out[..., top:top + h, left:left + w] = img
        return out
    if padding_mode == "reflect" and (max(left, right) >= w or max(top, bottom) >= h):
        raise ValueError(f"[pad] reflect padding {padding} must be smaller than the image size "
                         f"{(h, w)}")
    if padding_mode not in ("edge", "reflect", "symmetric"):
        raise ValueError(f"[pad] padding_mode should be constant, edge, reflect or symmetric, "
                         f"got {padding_mode!r}")
    native = {"reflect": "reflection_pad2d", "edge": "replication_pad2d"}.get(padding_mode)
    if native is not None and _native(native):
        x3 = img.reshape(-1, h, w)  # the kernels take (C, H, W) or (N, C, H, W)
        out = getattr(ndcore, native)(x3, [left, right, top, bottom])
        return out.reshape(*img.shape[:-2], *out.shape[-2:])
    if top or bottom:
        img = ndcore.index_select(img, img.ndim - 2, _reflect_index(h, top, bottom, padding_mode))
    if left or right:
        img = ndcore.index_select(img, img.ndim - 1, _reflect_index(w, left, right, padding_mode))
    return img


# --------------------------------------------------------------------------- resize


def _aa_filter(x, mode: str):
    ax = x.abs()
    if mode == "bilinear":
        return (1.0 - ax).clamp(min=0.0)
    a = -0.5  # PIL's bicubic, used by torch's antialiased path
    inner = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    outer = (((ax - 5) * ax + 8) * ax - 4) * a
    return ndcore.where(ax < 1, inner, ndcore.where(ax < 2, outer, ax * 0.0))


@lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int, mode: str, antialias: bool):
    """``(n_out, n_in)`` float64 matrix of torch's interpolate weights along one axis."""
    scale = n_in / n_out
    o = ndcore.arange(n_out, dtype=ndcore.float64).view(-1, 1)
    j = ndcore.arange(n_in, dtype=ndcore.float64).view(1, -1)
    if antialias and scale > 1:
        support = (1.0 if mode == "bilinear" else 2.0) * scale
        center = (o + 0.5) * scale
        # Window bounds as torch computes them (int() truncates toward zero).
        lo = (center - support + 0.5).trunc().clamp(min=0)
        hi = (center + support + 0.5).trunc().clamp(max=n_in)
        w = _aa_filter((j - center + 0.5) / scale, mode) * ((j >= lo) & (j < hi))
        return w / w.sum(dim=1, keepdim=True)
    src = (o + 0.5) * scale - 0.5
    if mode == "bilinear":
        src = src.clamp(min=0.0)
        i0 = src.floor()
        lam = src - i0
        i1 = ndcore.where(i0 < n_in - 1, i0 + 1, i0)
        return ndcore.where(j == i0, 1.0 - lam, 0.0 * lam) + ndcore.where(j == i1, lam, 0.0 * lam)
    if antialias:  # bicubic upsampling with antialias is torch's PIL-style a=-0.5 filter
        support = 2.0
        center = (o + 0.5) * scale
        lo = (center - support + 0.5).trunc().clamp(min=0)
        hi = (center + support + 0.5).trunc().clamp(max=n_in)
        w = _aa_filter(j - center + 0.5, mode) * ((j >= lo) & (j < hi))
        return w / w.sum(dim=1, keepdim=True)
    a = -0.75  # torch's non-antialiased bicubic, border taps clamped
    i = src.floor()
    t = src - i
    coeffs = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
              ((a + 2) * t - (a + 3)) * t * t + 1,
              ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
              ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
    w = 0.0 * (j + o)
    for k, c in enumerate(coeffs):
        w = w + ndcore.where(j == (i + (k - 1)).clamp(0, n_in - 1), c, 0.0 * c)
    return w


def _nearest_index(n_in: int, n_out: int, exact: bool):
    scale = ndcore.tensor(n_in / n_out, dtype=ndcore.float32)  # torch computes in float32
    o = ndcore.arange(n_out, dtype=ndcore.float32)
    src = ((o + 0.5) * scale if exact else o * scale).floor()
    return src.to(ndcore.int64).clamp(max=n_in - 1)


def resize(img, size: list[int], interpolation: str = "bilinear", antialias: bool = True):
    """Resize the last two dims to ``size = [h, w]`` with torch's interpolate semantics."""
    _check(img, "resize")
    h, w = img.shape[-2], img.shape[-1]
    oh, ow = size
    if (oh, ow) == (h, w):
        return img
    if interpolation in ("nearest", "nearest-exact"):
        exact = interpolation == "nearest-exact"
        out = ndcore.index_select(img, img.ndim - 2, _nearest_index(h, oh, exact))
        return ndcore.index_select(out, img.ndim - 1, _nearest_index(w, ow, exact))
    if interpolation not in ("bilinear", "bicubic"):
        raise ValueError(f"[resize] tensor images support nearest, nearest-exact, bilinear and "
                         f"bicubic interpolation, got {interpolation!r}")
    x, dtype = _to_float(img)
    ct = x.dtype
    # The native kernels have no antialias; for bilinear upsampling antialias changes nothing.
    native = f"upsample_{interpolation}2d"
    if _native(native) and (not antialias or (interpolation == "bilinear" and oh >= h and ow >= w)):
        x4 = x.reshape(-1, 1, h, w)
        out = getattr(ndcore, native)(x4, [oh, ow], False).reshape(*x.shape[:-2], oh, ow)
        return _from_float(out, dtype, clamp=not _is_float(dtype))
    if ow != w:
        x = ndcore.matmul(x, _resize_matrix(w, ow, interpolation, antialias).to(ct).t())
    if oh != h:
        x = ndcore.matmul(_resize_matrix(h, oh, interpolation, antialias).to(ct), x)
    return _from_float(x, dtype, clamp=not _is_float(dtype))


# --------------------------------------------------------------------------- affine warps


def _grid_sample(img, gx, gy, mode: str, fill):
    """Sample ``img`` (..., C, H, W) at normalised grid coordinates ``gx``/``gy`` (oh, ow) with
    grid_sample's semantics (align_corners=False, zeros outside), then torchvision's fill rule:
    an extra all-ones channel is sampled too and blends (bilinear) or selects (nearest) ``fill``.
    """
    x, dtype = _to_float(img)
    lead = tuple(x.shape[:-3]) if x.ndim >= 3 else ()
    c, h, w = (1, *x.shape) if x.ndim == 2 else tuple(x.shape[-3:])
    x4 = x.reshape(-1, c, h, w)
    if fill is not None:
        x4 = ndcore.cat([x4, ndcore.ones((x4.shape[0], 1, h, w), dtype=x4.dtype)], dim=1)
    if _native("grid_sampler_2d"):
        grid = ndcore.stack([gx, gy], dim=-1).to(x4.dtype).unsqueeze(0)
        grid = grid.expand(x4.shape[0], *grid.shape[1:])
        out = ndcore.grid_sampler_2d(x4, grid, 1 if mode == "nearest" else 0, 0, False)
    else:
        out = _grid_sample_gather(x4, ((gx + 1.0) * w - 1.0) / 2.0, ((gy + 1.0) * h - 1.0) / 2.0, mode)
    if fill is not None:
        mask, out = out[:, -1:], out[:, :-1]
        fl = [float(f) for f in fill] if isinstance(fill, (list, tuple)) else [float(fill)]
        if len(fl) not in (1, c):
            raise ValueError(f"[affine] fill {fill} does not match {c} channels")
        fill_t = ndcore.tensor(fl, dtype=out.dtype).view(-1, 1, 1)
        if mode == "nearest":
            out = ndcore.where(mask < 0.5, fill_t + 0.0 * out, out)
        else:
            out = out * mask + (1.0 - mask) * fill_t
    out = out.reshape(*lead, c, *out.shape[-2:]) if img.ndim >= 3 else out.reshape(*out.shape[-2:])
    return _from_float(out, dtype, clamp=not _is_float(dtype))


def _grid_sample_gather(x4, xs, ys, mode: str):
    """Gather-based grid sampling of ``x4`` (N, C, H, W) at pixel coordinates ``xs``/``ys``."""
    n, c, h, w = x4.shape
    oh, ow = xs.shape
    if mode == "nearest":  # round half to even, like grid_sample's nearbyint
        ix, iy = xs.round().to(ndcore.int64).unsqueeze(0), ys.round().to(ndcore.int64).unsqueeze(0)
        wgt = ndcore.ones((1, oh, ow), dtype=x4.dtype)
    elif mode == "bilinear":
        x0f, y0f = xs.floor(), ys.floor()
        fx, fy = (xs - x0f).to(x4.dtype), (ys - y0f).to(x4.dtype)
        x0, y0 = x0f.to(ndcore.int64), y0f.to(ndcore.int64)
        # The four neighbours stacked on a leading axis: one gather serves all of them.
        ix = ndcore.stack([x0, x0 + 1, x0, x0 + 1])
        iy = ndcore.stack([y0, y0, y0 + 1, y0 + 1])
        gx, gy = 1 - fx, 1 - fy
        wgt = ndcore.stack([gx * gy, fx * gy, gx * fy, fx * fy])
    else:
        raise ValueError(f"[affine] tensor images support nearest and bilinear, got {mode!r}")
    valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    wgt = ndcore.where(valid, wgt, 0.0 * wgt)  # zero padding outside the image
    idx = (iy.clamp(0, h - 1) * w + ix.clamp(0, w - 1)).reshape(-1)
    vals = ndcore.index_select(x4.reshape(n, c, h * w), 2, idx).reshape(n, c, -1, oh, ow)
    return (vals * wgt).sum(dim=2)


def affine_sample(img, inv_matrix: list[float], out_hw: tuple[int, int], mode: str, fill):
    """Warp with the inverse affine ``inv_matrix`` (6 floats, about the image centre)."""
    _check(img, "affine")
    h, w = img.shape[-2], img.shape[-1]
    oh, ow = out_hw
    # Same float32 steps as torchvision's affine grid (normalised by the input size), so ties
    # in nearest rounding break the same way.
    f32 = ndcore.float32
    t = ndcore.tensor(inv_matrix, dtype=f32).view(2, 3) / ndcore.tensor([[0.5 * w], [0.5 * h]],
                                                                         dtype=f32)
    xs = ndcore.arange(ow, dtype=f32).view(1, -1) + (0.5 - ow * 0.5)
    ys = ndcore.arange(oh, dtype=f32).view(-1, 1) + (0.5 - oh * 0.5)
    gx = xs * t[0, 0] + ys * t[0, 1] + t[0, 2]
    gy = xs * t[1, 0] + ys * t[1, 1] + t[1, 2]
    return _grid_sample(img, gx, gy, mode, fill)


# --------------------------------------------------------------------------- colour


def rgb_to_grayscale(img, num_output_channels: int = 1):
    _check_channels(img, (1, 3), "rgb_to_grayscale")
    if num_output_channels not in (1, 3):
        raise ValueError(f"[rgb_to_grayscale] num_output_channels should be 1 or 3, "
                         f"got {num_output_channels}")
    if img.shape[-3] == 3:
        r, g, b = img.unbind(-3)
        # Truncating cast, as torchvision does for integer images.
        gray = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(-3)
    else:
        gray = img
    if num_output_channels == 3:
        return gray.expand(*gray.shape[:-3], 3, *gray.shape[-2:]).clone()
    return gray.clone() if gray is img else gray


def _blend(img1, img2, ratio: float):
    bound = _max_value(img1.dtype)
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)


def adjust_brightness(img, brightness_factor: float):
    if brightness_factor < 0:
        raise ValueError(f"[adjust_brightness] brightness_factor ({brightness_factor}) is not "
                         f"non-negative")
    _check_channels(img, (1, 3), "adjust_brightness")
    # The blend with black, f * img + (1 - f) * 0, without materialising the zeros.
    return (brightness_factor * img).clamp(0, _max_value(img.dtype)).to(img.dtype)


def adjust_contrast(img, contrast_factor: float):
    if contrast_factor < 0:
        raise ValueError(f"[adjust_contrast] contrast_factor ({contrast_factor}) is not non-negative")
    c = _check_channels(img, (1, 3), "adjust_contrast")
    ref = rgb_to_grayscale(img) if c == 3 else img
    ct = img.dtype if _is_float(img.dtype) else ndcore.float32
    mean = ref.to(ct).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    if saturation_factor < 0:
        raise ValueError(f"[adjust_saturation] saturation_factor ({saturation_factor}) is not "
                         f"non-negative")
    if _check_channels(img, (1, 3), "adjust_saturation") == 1:
        return img
    return _blend(img, rgb_to_grayscale(img), saturation_factor)


def _rgb2hsv(img):
    r, g, b = img.unbind(-3)
    maxc, minc = img.amax(dim=-3), img.amin(dim=-3)
    eqc = maxc == minc
    cr = maxc - minc
    ones = ndcore.ones_like(maxc)
    s = cr / ndcore.where(eqc, ones, maxc)
    crd = ndcore.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    is_r, is_g = maxc == r, maxc == g
    h = ndcore.where(is_r, bc - gc, ndcore.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = ndcore.fmod(h / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv2rgb(h, s, v):
    i = (h * 6.0).floor()
    f = h * 6.0 - i
    i = ndcore.remainder(i.to(ndcore.int32), 6)
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    table = ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))
    chans = []
    for row in table:
        out = row[5]
        for k in range(4, -1, -1):
            out = ndcore.where(i == k, row[k], out)
        chans.append(out)
    return ndcore.stack(chans, dim=-3)


def adjust_hue(img, hue_factor: float):
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"[adjust_hue] hue_factor ({hue_factor}) is not in [-0.5, 0.5]")
    if _check_channels(img, (1, 3), "adjust_hue") == 1:
        return img
    dtype = img.dtype
    x = convert_image_dtype(img, ndcore.float32) if not _is_float(dtype) else img
    h, s, v = _rgb2hsv(x)
    out = _hsv2rgb(ndcore.remainder(h + hue_factor, 1.0), s, v)
    return convert_image_dtype(out, dtype) if not _is_float(dtype) else out.to(dtype)


def adjust_gamma(img, gamma: float, gain: float = 1.0):
    if gamma < 0:
        raise ValueError(f"[adjust_gamma] gamma ({gamma}) is not non-negative")
    dtype = img.dtype
    x = convert_image_dtype(img, ndcore.float32) if not _is_float(dtype) else img
    x = (gain * x.pow(gamma)).clamp(0, 1)
    return convert_image_dtype(x, dtype)


def invert(img):
    _check_channels(img, (1, 3), "invert")
    return _max_value(img.dtype) - img


# --------------------------------------------------------------------------- blur, erase, dtype


@lru_cache(maxsize=32)
def _blur_matrix(n: int, ksize: int, sigma: float):
    """``(n, n)`` matrix of a 1-D Gaussian blur with reflect padding (torchvision's kernel)."""
    half = (ksize - 1) * 0.5
    x = ndcore.linspace(-half, half, ksize, dtype=ndcore.float64)
    k = (-0.5 * (x / sigma).pow(2)).exp()
    k = k / k.sum()
    pad_ = ksize // 2
    idx = _reflect_index(n, pad_, pad_, "reflect")  # padded position -> source pixel
    o = ndcore.arange(n).view(-1, 1)
    j = ndcore.arange(n).view(1, -1)
    m = ndcore.zeros((n, n), dtype=ndcore.float64)
    for t in range(ksize):
        src = ndcore.index_select(idx, 0, o.view(-1) + t).view(-1, 1)
        m = m + ndcore.where(j == src, k[t], 0.0 * m)
    return m


def gaussian_blur(img, kernel_size: list[int], sigma: list[float]):
    _check(img, "gaussian_blur")
    kx, ky = kernel_size
    sx, sy = sigma
    h, w = img.shape[-2], img.shape[-1]
    if kx // 2 >= w or ky // 2 >= h:
        raise ValueError(f"[gaussian_blur] kernel {kernel_size} needs reflect padding smaller "
                         f"than the image {(h, w)}")
    x, dtype = _to_float(img)
    ct = x.dtype
    x = ndcore.matmul(x, _blur_matrix(w, kx, float(sx)).to(ct).t())
    x = ndcore.matmul(_blur_matrix(h, ky, float(sy)).to(ct), x)
    return _from_float(x, dtype)


def erase(img, i: int, j: int, h: int, w: int, v, inplace: bool = False):
    _check(img, "erase")
    if not inplace:
        img = img.clone()
    img[..., i:i + h, j:j + w] = v
    return img


def convert_image_dtype(image, dtype=ndcore.float32):
    """Convert and rescale: floats live in [0, 1], integers in [0, max of the dtype]."""
    _check(image, "convert_image_dtype")
    src = image.dtype
    if src == dtype:
        return image
    if _is_float(src):
        if _is_float(dtype):
            return image.to(dtype)
        if (src == ndcore.float32 and dtype in (ndcore.int32, ndcore.int64)) or (
                src == ndcore.float64 and dtype == ndcore.int64):
            raise RuntimeError(f"The cast from {src} to {dtype} cannot be performed safely.")
        eps = 1e-3
        return image.mul(_max_value(dtype) + 1.0 - eps).to(dtype)
    in_max = _max_value(src)
    if _is_float(dtype):
        return image.to(dtype).div(in_max)
    out_max = _max_value(dtype)
    if in_max > out_max:
        factor = (in_max + 1) // (out_max + 1)
        return ndcore.floor_divide(image, factor).to(dtype)
    factor = (out_max + 1) // (in_max + 1)
    return image.to(dtype) * factor


def normalize(tensor, mean, std, inplace: bool = False):
    _check(tensor, "normalize")
    if tensor.ndim < 3:
        raise ValueError(f"[normalize] expected tensor of shape (..., C, H, W), got "
                         f"{tuple(tensor.shape)}")
    if not _is_float(tensor.dtype):
        raise TypeError(f"[normalize] input tensor should be a float tensor, got {tensor.dtype}")
    dtype = tensor.dtype

    def as_t(v):
        if isinstance(v, ndcore.Tensor):
            return v.to(dtype)
        return ndcore.tensor([float(e) for e in v] if isinstance(v, (list, tuple)) else float(v),
                             dtype=dtype)

    mean_t, std_t = as_t(mean), as_t(std)
    # Checked after the cast (a tiny std can round to 0 in low precision), as torchvision does.
    if bool((std_t == 0).any()):
        raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to division "
                         f"by zero.")
    if mean_t.ndim == 1:
        mean_t = mean_t.view(-1, 1, 1)
    if std_t.ndim == 1:
        std_t = std_t.view(-1, 1, 1)
    if not inplace:
        return (tensor - mean_t) / std_t
    return tensor.sub_(mean_t).div_(std_t)
