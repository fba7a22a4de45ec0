"""Functional image transforms (torchvision.transforms.functional): each works on a PIL image or an
ndcore tensor ``(..., C, H, W)`` (any leading batch dims)."""
from __future__ import annotations

import math
import numbers
from enum import Enum
from typing import Any, Sequence

import numpy as np

import ndcore

from . import _pil as F_pil
from . import _tensor as F_t

__all__ = [
    "InterpolationMode", "get_dimensions", "get_image_size", "get_image_num_channels",
    "to_tensor", "pil_to_tensor", "to_pil_image", "convert_image_dtype", "normalize",
    "resize", "crop", "center_crop", "resized_crop", "hflip", "vflip", "pad", "rotate", "affine",
    "rgb_to_grayscale", "to_grayscale", "adjust_brightness", "adjust_contrast",
    "adjust_saturation", "adjust_hue", "adjust_gamma", "invert", "gaussian_blur", "erase",
]


class InterpolationMode(Enum):
    """Interpolation modes (torchvision's enum; values are the names torch's interpolate uses)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_FROM_PIL_INT = {0: InterpolationMode.NEAREST, 1: InterpolationMode.LANCZOS,
                 2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC,
                 4: InterpolationMode.BOX, 5: InterpolationMode.HAMMING}


def _interp(mode) -> str:
    if isinstance(mode, InterpolationMode):
        return mode.value
    if isinstance(mode, int) and mode in _FROM_PIL_INT:  # PIL's integer constants
        return _FROM_PIL_INT[mode].value
    if isinstance(mode, str) and mode in InterpolationMode._value2member_map_:
        return mode
    raise TypeError(f"interpolation should be an InterpolationMode or a PIL integer constant, "
                    f"got {mode!r}")


def _is_tensor(img) -> bool:
    return isinstance(img, ndcore.Tensor)


def _check_img(img, op: str) -> None:
    if not (_is_tensor(img) or F_pil.is_pil_image(img)):
        raise TypeError(f"[{op}] img should be a PIL Image or an ndcore Tensor, got {type(img)}")


def get_dimensions(img) -> list[int]:
    """Return ``[channels, height, width]``."""
    _check_img(img, "get_dimensions")
    return F_t.get_dimensions(img) if _is_tensor(img) else F_pil.get_dimensions(img)


def get_image_size(img) -> list[int]:
    """Return ``[width, height]``."""
    _, h, w = get_dimensions(img)
    return [w, h]


def get_image_num_channels(img) -> int:
    return get_dimensions(img)[0]


# --------------------------------------------------------------------------- conversions


def to_tensor(pic) -> ndcore.Tensor:
    """Convert a PIL image or ``HxW(xC)`` ndarray to a ``(C, H, W)`` tensor.

    uint8 data (and PIL modes stored as bytes, incl. ``'1'``) becomes float in ``[0, 1]``
    (divided by 255); other dtypes keep their values, as in torchvision.
    """
    if isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        arr = pic[:, :, None] if pic.ndim == 2 else pic
    elif F_pil.is_pil_image(pic):
        nptype = {"I": np.int32, "I;16": np.int16, "F": np.float32}.get(pic.mode, np.uint8)
        arr = np.array(pic, nptype, copy=True)
        if pic.mode == "1":
            arr = arr * np.uint8(255)
        arr = arr.reshape(pic.height, pic.width, len(pic.getbands()))
    else:
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
    img = ndcore.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    if img.dtype == ndcore.uint8:
        return img.to(ndcore.get_default_dtype()).div_(255)
    return img.contiguous()


def pil_to_tensor(pic) -> ndcore.Tensor:
    """Convert a PIL image to a ``(C, H, W)`` tensor of the same dtype (no scaling)."""
    if not F_pil.is_pil_image(pic):
        raise TypeError(f"pic should be PIL Image. Got {type(pic)}")
    arr = np.array(pic, copy=True)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return ndcore.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_pil_image(pic, mode: str | None = None):
    """Convert a ``(C, H, W)`` tensor or ``HxWxC`` ndarray to a PIL image.

    Float tensors are scaled by 255 and truncated to uint8 (unless ``mode='F'``).
    """
    Image = F_pil._image()
    if _is_tensor(pic):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        if pic.ndim == 2:
            pic = pic.unsqueeze(0)
        if pic.shape[-3] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {pic.shape[-3]} channels.")
        if pic.is_floating_point() and mode != "F":
            pic = pic.mul(255).to(ndcore.uint8)
        npimg = np.transpose(pic.contiguous().numpy(), (1, 2, 0))
    elif isinstance(pic, np.ndarray):
        if pic.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        npimg = pic[:, :, None] if pic.ndim == 2 else pic
    else:
        raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
    if npimg.shape[-1] == 1:
        npimg = npimg[:, :, 0]
        if npimg.dtype == np.float64:
            npimg = npimg.astype(np.float32)  # Pillow has no float64 mode
    elif npimg.dtype != np.uint8:
        raise TypeError(f"Input type {npimg.dtype} is not supported for {npimg.shape[-1]} channels")
    npimg = np.ascontiguousarray(npimg)
    img = Image.fromarray(npimg)
    if mode is not None and mode != img.mode:
        if npimg.ndim == 3 and len(Image.new(mode, (1, 1)).getbands()) == npimg.shape[-1]:
            img = Image.frombytes(mode, (npimg.shape[1], npimg.shape[0]), npimg.tobytes())
        elif npimg.ndim == 2 and mode in ("L", "I", "F", "I;16", "1"):
            img = img.convert(mode)
        else:
            raise ValueError(f"Incorrect mode ({mode}) supplied for input of shape "
                             f"{npimg.shape} and dtype {npimg.dtype}")
    return img


def convert_image_dtype(image: ndcore.Tensor, dtype=ndcore.float32) -> ndcore.Tensor:
    """Convert a tensor image to ``dtype``, rescaling values (floats in [0, 1])."""
    if not _is_tensor(image):
        raise TypeError(f"[convert_image_dtype] input img should be a Tensor, got {type(image)}")
    return F_t.convert_image_dtype(image, dtype)


def normalize(tensor: ndcore.Tensor, mean: Sequence[float], std: Sequence[float],
              inplace: bool = False) -> ndcore.Tensor:
    """``(tensor - mean) / std`` per channel of a float tensor ``(..., C, H, W)``."""
    if not _is_tensor(tensor):
        raise TypeError(f"[normalize] img should be a Tensor, got {type(tensor)}")
    return F_t.normalize(tensor, mean, std, inplace)


# --------------------------------------------------------------------------- geometry


def _output_size(image_hw: tuple[int, int], size, max_size: int | None) -> list[int]:
    h, w = image_hw
    if isinstance(size, int) or len(size) == 1:
        req = size if isinstance(size, int) else size[0]
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = req, int(req * long / short)
        if max_size is not None:
            if max_size <= req:
                raise ValueError(f"max_size = {max_size} must be strictly greater than the "
                                 f"requested size for the smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        return [new_long, new_short] if w <= h else [new_short, new_long]
    if max_size is not None:
        raise ValueError("max_size should only be passed if size specifies the length of the "
                         "smaller edge, i.e. size should be an int or a sequence of length 1")
    return [int(size[0]), int(size[1])]


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size: int | None = None,
           antialias: bool | None = True):
    """Resize to ``size`` (h, w), or match the smaller edge to ``size`` when it is an int.

    Args:
        img: PIL image or tensor ``(..., H, W)``.
        size: ``(h, w)`` or the length of the smaller edge (aspect ratio kept).
        interpolation: an :class:`InterpolationMode`; tensors support nearest, nearest-exact,
            bilinear and bicubic.
        max_size: cap on the longer edge when ``size`` is an int.
        antialias: low-pass when downsampling tensors with bilinear/bicubic (PIL always does).
    """
    _check_img(img, "resize")
    mode = _interp(interpolation)
    if isinstance(size, (list, tuple)) and len(size) not in (1, 2):
        raise ValueError(f"[resize] size must be an int or a sequence of 1 or 2 ints, got {size}")
    _, h, w = get_dimensions(img)
    out = _output_size((h, w), size, max_size)
    if out == [h, w]:
        return img
    if _is_tensor(img):
        return F_t.resize(img, out, mode, bool(antialias))
    return F_pil.resize(img, out, mode)


def crop(img, top: int, left: int, height: int, width: int):
    """Crop the box at (top, left) of size (height, width); outside parts are zero."""
    _check_img(img, "crop")
    return (F_t if _is_tensor(img) else F_pil).crop(img, top, left, height, width)


def center_crop(img, output_size):
    """Crop the centre ``output_size`` (int or (h, w)); zero-pads images smaller than that."""
    if isinstance(output_size, numbers.Number):
        output_size = (int(output_size), int(output_size))
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 1:
        output_size = (output_size[0], output_size[0])
    _, ih, iw = get_dimensions(img)
    ch, cw = output_size
    if cw > iw or ch > ih:
        pads = [(cw - iw) // 2 if cw > iw else 0, (ch - ih) // 2 if ch > ih else 0,
                (cw - iw + 1) // 2 if cw > iw else 0, (ch - ih + 1) // 2 if ch > ih else 0]
        img = pad(img, pads, fill=0)
        _, ih, iw = get_dimensions(img)
        if cw == iw and ch == ih:
            return img
    top, left = int(round((ih - ch) / 2.0)), int(round((iw - cw) / 2.0))
    return crop(img, top, left, ch, cw)


def resized_crop(img, top: int, left: int, height: int, width: int, size,
                 interpolation=InterpolationMode.BILINEAR, antialias: bool | None = True):
    """Crop then resize to ``size``."""
    return resize(crop(img, top, left, height, width), size, interpolation, antialias=antialias)


def hflip(img):
    """Flip left-right."""
    _check_img(img, "hflip")
    return (F_t if _is_tensor(img) else F_pil).hflip(img)


def vflip(img):
    """Flip top-bottom."""
    _check_img(img, "vflip")
    return (F_t if _is_tensor(img) else F_pil).vflip(img)


def _parse_padding(padding) -> list[int]:
    if isinstance(padding, int):
        return [padding] * 4
    if not isinstance(padding, (list, tuple)) or len(padding) not in (1, 2, 4):
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not {padding!r}")
    p = [int(v) for v in padding]
    if len(p) == 1:
        return p * 4
    if len(p) == 2:
        return [p[0], p[1], p[0], p[1]]
    return p


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad the borders: ``padding`` is an int, (lr, tb) or (left, top, right, bottom).

    Args:
        fill: constant mode's value (a number, or one per channel).
        padding_mode: ``constant``, ``edge``, ``reflect`` or ``symmetric``.
    """
    _check_img(img, "pad")
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError(f"Padding mode should be either constant, edge, reflect or symmetric, "
                         f"got {padding_mode!r}")
    p = _parse_padding(padding)
    return (F_t if _is_tensor(img) else F_pil).pad(img, p, fill, padding_mode)


def _inverse_affine_matrix(center, angle, translate, scale, shear) -> list[float]:
    # Inverse of  T * C * R * S * Sh * C^-1  (torchvision's convention), about ``center``.
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [v / scale for v in (d, -b, 0.0, -c, a, 0.0)]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


def _expanded_size(m: list[float], w: int, h: int) -> tuple[int, int]:
    # float32 like torchvision, whose 1e-4 truncation relies on float32 rounding.
    f32 = ndcore.float32
    pts = ndcore.tensor([[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0],
                         [0.5 * w, 0.5 * h, 1.0], [0.5 * w, -0.5 * h, 1.0]], dtype=f32)
    new = ndcore.matmul(pts, ndcore.tensor(m, dtype=f32).view(2, 3).t())
    halfs = ndcore.tensor([w * 0.5, h * 0.5], dtype=f32)
    tol = 1e-4
    hi = ((new.amax(dim=0) + halfs) / tol).trunc().mul(tol).ceil()
    lo = ((new.amin(dim=0) + halfs) / tol).trunc().mul(tol).floor()
    size = (hi - lo).tolist()
    return int(size[0]), int(size[1])


def rotate(img, angle: float, interpolation=InterpolationMode.NEAREST, expand: bool = False,
           center: Sequence[int] | None = None, fill=None):
    """Rotate counter-clockwise by ``angle`` degrees about ``center`` (default: the centre).

    Args:
        expand: grow the output to hold the whole rotated image.
        fill: value(s) for pixels outside the source (tensor default: 0).
    """
    _check_img(img, "rotate")
    mode = _interp(interpolation)
    if not _is_tensor(img):
        return F_pil.rotate(img, angle, mode, expand, center, fill)
    _, h, w = get_dimensions(img)
    cf = [0.0, 0.0] if center is None else [c - s * 0.5 for c, s in zip(center, (w, h))]
    m = _inverse_affine_matrix(cf, -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
    ow, oh = _expanded_size(m, w, h) if expand else (w, h)
    return F_t.affine_sample(img, m, (oh, ow), mode, fill)


def affine(img, angle: float, translate: Sequence[int], scale: float, shear,
           interpolation=InterpolationMode.NEAREST, fill=None, center=None):
    """Affine warp: rotate by ``angle`` (clockwise), translate, scale and shear (degrees)."""
    _check_img(img, "affine")
    mode = _interp(interpolation)
    if isinstance(shear, numbers.Number):
        shear = [float(shear), 0.0]
    shear = list(shear) + [0.0] * (2 - len(shear))
    if scale <= 0:
        raise ValueError(f"[affine] scale ({scale}) should be positive")
    _, h, w = get_dimensions(img)
    if not _is_tensor(img):
        c = [w * 0.5, h * 0.5] if center is None else list(center)
        m = _inverse_affine_matrix(c, angle, list(translate), scale, shear)
        return F_pil.affine(img, m, mode, fill)
    cf = [0.0, 0.0] if center is None else [c - s * 0.5 for c, s in zip(center, (w, h))]
    m = _inverse_affine_matrix(cf, angle, [float(t) for t in translate], scale, shear)
    return F_t.affine_sample(img, m, (h, w), mode, fill)


# --------------------------------------------------------------------------- colour


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """Luma ``0.2989 R + 0.587 G + 0.114 B`` (ITU-R 601-2) as 1 or 3 channels."""
    _check_img(img, "rgb_to_grayscale")
    if _is_tensor(img):
        return F_t.rgb_to_grayscale(img, num_output_channels)
    return F_pil.to_grayscale(img, num_output_channels)


to_grayscale = rgb_to_grayscale


def _color(name: str, img, factor: float):
    _check_img(img, name)
    return getattr(F_t if _is_tensor(img) else F_pil, name)(img, factor)


def adjust_brightness(img, brightness_factor: float):
    """Blend with black: ``factor * img`` clamped (0 black, 1 unchanged)."""
    return _color("adjust_brightness", img, brightness_factor)


def adjust_contrast(img, contrast_factor: float):
    """Blend with the mean grey level: ``f * img + (1 - f) * mean(gray(img))``."""
    return _color("adjust_contrast", img, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    """Blend with the grayscale image: ``f * img + (1 - f) * gray(img)``."""
    return _color("adjust_saturation", img, saturation_factor)


def adjust_hue(img, hue_factor: float):
    """Rotate the hue by ``hue_factor`` (a fraction of the circle, in [-0.5, 0.5]) in HSV."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    return _color("adjust_hue", img, hue_factor)


def adjust_gamma(img, gamma: float, gain: float = 1.0):
    """``gain * img ** gamma`` on values scaled to [0, 1]."""
    _check_img(img, "adjust_gamma")
    return (F_t if _is_tensor(img) else F_pil).adjust_gamma(img, gamma, gain)


def invert(img):
    """``max - img``."""
    _check_img(img, "invert")
    return (F_t if _is_tensor(img) else F_pil).invert(img)


def gaussian_blur(img, kernel_size, sigma=None):
    """Gaussian blur with reflect padding; PIL images are blurred through a tensor round trip.

    Args:
        kernel_size: odd positive int or (kx, ky).
        sigma: float or (sx, sy); default ``0.3 * ((k - 1) * 0.5 - 1) + 0.8``.
    """
    _check_img(img, "gaussian_blur")
    ks = [kernel_size, kernel_size] if isinstance(kernel_size, int) else list(kernel_size)
    if len(ks) == 1:
        ks = ks * 2
    if len(ks) != 2 or any(k <= 0 or k % 2 == 0 for k in ks):
        raise ValueError(f"kernel_size should have odd and positive integers. Got {kernel_size}")
    if sigma is None:
        sig = [k * 0.15 + 0.35 for k in ks]
    else:
        sig = [float(sigma)] * 2 if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
        if len(sig) == 1:
            sig = sig * 2
    if any(s <= 0 for s in sig):
        raise ValueError(f"sigma should have positive values. Got {sigma}")
    if _is_tensor(img):
        return F_t.gaussian_blur(img, ks, sig)
    return to_pil_image(F_t.gaussian_blur(pil_to_tensor(img), ks, sig), mode=img.mode)


def erase(img: ndcore.Tensor, i: int, j: int, h: int, w: int, v: Any,
          inplace: bool = False) -> ndcore.Tensor:
    """Set the box (i, j, h, w) of a tensor image to ``v`` (a scalar or a broadcastable tensor)."""
    if not _is_tensor(img):
        raise TypeError(f"img should be Tensor Image. Got {type(img)}")
    return F_t.erase(img, i, j, h, w, v, inplace)
