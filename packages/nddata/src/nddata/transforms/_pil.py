"""Image ops on PIL images (torchvision's ``functional_pil`` semantics); Pillow is imported lazily."""
from __future__ import annotations

import numpy as np

_PIL_INTERP = {"nearest": 0, "nearest-exact": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3,
               "box": 4, "hamming": 5}


def _image():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - exercised only without Pillow
        raise ImportError("[transforms] PIL images need Pillow: pip install pillow") from e
    return Image


def is_pil_image(img) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(img, Image.Image)


def get_dimensions(img) -> list[int]:
    return [len(img.getbands()), img.height, img.width]


def _fill_opts(fill, img, name: str = "fillcolor") -> dict:
    """torchvision's ``_parse_fill``: a number repeated per band, a sequence checked per band."""
    if fill is None:
        return {}
    bands = len(img.getbands())
    if isinstance(fill, (int, float)) and bands > 1:
        fill = tuple([fill] * bands)
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = fill * bands
        if len(fill) != bands:
            raise ValueError(f"The number of elements in 'fill' does not match the number of "
                             f"bands of the image ({len(fill)} != {bands})")
        fill = tuple(fill)
    if img.mode != "F":
        fill = tuple(int(f) for f in fill) if isinstance(fill, tuple) else int(fill)
    return {name: fill}


def hflip(img):
    return img.transpose(_image().Transpose.FLIP_LEFT_RIGHT)


def vflip(img):
    return img.transpose(_image().Transpose.FLIP_TOP_BOTTOM)


def crop(img, top: int, left: int, height: int, width: int):
    return img.crop((left, top, left + width, top + height))


def resize(img, size: list[int], interpolation: str):
    h, w = size
    return img.resize((w, h), _PIL_INTERP[interpolation])


def pad(img, padding: list[int], fill=0, padding_mode: str = "constant"):
    left, top, right, bottom = padding
    if min(padding) < 0:  # negative padding crops
        img = img.crop((max(-left, 0), max(-top, 0), img.width - max(-right, 0),
                        img.height - max(-bottom, 0)))
        left, top, right, bottom = (max(p, 0) for p in padding)
    if padding_mode == "constant":
        from PIL import ImageOps
        opts = _fill_opts(fill, img, name="fill")
        if img.mode == "P":
            palette = img.getpalette()
            out = ImageOps.expand(img, border=(left, top, right, bottom), **opts)
            out.putpalette(palette)
            return out
        return ImageOps.expand(img, border=(left, top, right, bottom), **opts)
    arr = np.asarray(img)
    widths = ((top, bottom), (left, right)) + (((0, 0),) if arr.ndim == 3 else ())
    return _image().fromarray(np.pad(arr, widths, padding_mode))


def rotate(img, angle: float, interpolation: str, expand: bool, center, fill):
    return img.rotate(angle, _PIL_INTERP[interpolation], expand, center, **_fill_opts(fill, img))


def affine(img, matrix: list[float], interpolation: str, fill):
    return img.transform(img.size, _image().Transform.AFFINE, matrix, _PIL_INTERP[interpolation],
                         **_fill_opts(fill, img))


def to_grayscale(img, num_output_channels: int):
    if num_output_channels == 1:
        return img.convert("L")
    if num_output_channels == 3:
        g = np.asarray(img.convert("L"))
        return _image().fromarray(np.dstack([g, g, g]))
    raise ValueError(f"[rgb_to_grayscale] num_output_channels should be 1 or 3, "
                     f"got {num_output_channels}")


def _enhance(kind: str, img, factor: float):
    from PIL import ImageEnhance
    return getattr(ImageEnhance, kind)(img).enhance(factor)


def adjust_brightness(img, factor: float):
    return _enhance("Brightness", img, factor)


def adjust_contrast(img, factor: float):
    return _enhance("Contrast", img, factor)


def adjust_saturation(img, factor: float):
    return _enhance("Color", img, factor)


def adjust_hue(img, hue_factor: float):
    if img.mode in {"L", "1", "I", "F"}:
        return img
    Image = _image()
    mode = img.mode
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    # uint8 addition wraps around, which is exactly a rotation of the hue circle.
    np_h = (np_h.astype(np.int16) + int(np.int8(hue_factor * 255))).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(np_h), s, v)).convert(mode)


def adjust_gamma(img, gamma: float, gain: float = 1.0):
    mode = img.mode
    img = img.convert("RGB")
    table = [int((255 + 1 - 1e-3) * gain * pow(e / 255.0, gamma)) for e in range(256)] * 3
    return img.point(table).convert(mode)


def invert(img):
    from PIL import ImageOps
    return ImageOps.invert(img)
