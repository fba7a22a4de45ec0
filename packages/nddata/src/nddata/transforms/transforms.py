"""Transform classes (torchvision.transforms v1 names, arguments and semantics).

Random decisions draw from nd's global RNG (``ndcore.rand``/``randint``/``randperm``), so
``ndcore.manual_seed`` (and the DataLoader's per-worker seeding) makes them reproducible.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import ndcore

from . import functional as F
from .functional import InterpolationMode

__all__ = [
    "Compose", "ToTensor", "PILToTensor", "ToPILImage", "ConvertImageDtype", "Normalize",
    "Resize", "CenterCrop", "RandomCrop", "RandomResizedCrop", "RandomHorizontalFlip",
    "RandomVerticalFlip", "RandomRotation", "RandomAffine", "ColorJitter", "Grayscale",
    "RandomGrayscale", "Pad", "Lambda", "RandomErasing", "RandomApply", "RandomChoice",
    "RandomOrder", "GaussianBlur", "FiveCrop", "TenCrop", "RandomInvert", "InterpolationMode",
]


def _rand() -> float:
    return float(ndcore.rand(1).item())


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * _rand()


def _randint(lo: int, hi: int) -> int:
    return int(ndcore.randint(lo, hi, (1,)).item())


def _setup_size(size, msg: str) -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return size[0], size[0]
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(msg)
    return size[0], size[1]


def _interp_mode(mode) -> InterpolationMode:
    return InterpolationMode(F._interp(mode))


class _Repr:
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(_Repr):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        body = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


class ToTensor(_Repr):
    """PIL image or ``HxWxC`` ndarray -> ``(C, H, W)`` tensor; uint8 becomes float in [0, 1]."""

    def __call__(self, pic):
        return F.to_tensor(pic)


class PILToTensor(_Repr):
    """PIL image -> ``(C, H, W)`` tensor of the same dtype (no scaling)."""

    def __call__(self, pic):
        return F.pil_to_tensor(pic)


class ToPILImage(_Repr):
    """Tensor ``(C, H, W)`` or ndarray ``HxWxC`` -> PIL image (float scaled by 255)."""

    def __init__(self, mode: str | None = None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)


class ConvertImageDtype(_Repr):
    """Convert a tensor image to ``dtype``, rescaling the values."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, image):
        return F.convert_image_dtype(image, self.dtype)


class Normalize(_Repr):
    """Per channel ``output[c] = (input[c] - mean[c]) / std[c]`` on float tensors."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean, self.std, self.inplace = mean, std, inplace

    def __call__(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)


class Resize(_Repr):
    """Resize to ``size`` ((h, w), or the smaller edge when an int); see :func:`F.resize`."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias: bool | None = True):
        if not isinstance(size, (int, Sequence)) or (isinstance(size, Sequence)
                                                     and len(size) not in (1, 2)):
            raise TypeError(f"Size should be int or sequence of 1 or 2 ints. Got {size!r}")
        self.size, self.max_size, self.antialias = size, max_size, antialias
        self.interpolation = _interp_mode(interpolation)

    def __call__(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)


class CenterCrop(_Repr):
    """Crop the centre ``size`` (int or (h, w)); smaller images are zero-padded first."""

    def __init__(self, size):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")

    def __call__(self, img):
        return F.center_crop(img, self.size)


class RandomCrop(_Repr):
    """Crop a random ``size`` box, optionally padding first.

    Args:
        size: int or (h, w).
        padding: applied before cropping (see :class:`Pad`).
        pad_if_needed: pad images smaller than ``size`` up to it.
        fill, padding_mode: as in :class:`Pad`.
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant"):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    @staticmethod
    def get_params(img, output_size: tuple[int, int]) -> tuple[int, int, int, int]:
        _, h, w = F.get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)}")
        if w == tw and h == th:
            return 0, 0, h, w
        return _randint(0, h - th + 1), _randint(0, w - tw + 1), th, tw

    def __call__(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, height, width = F.get_dimensions(img)
        if self.pad_if_needed and width < self.size[1]:
            img = F.pad(img, [self.size[1] - width, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and height < self.size[0]:
            img = F.pad(img, [0, self.size[0] - height], self.fill, self.padding_mode)
        return F.crop(img, *self.get_params(img, self.size))


class RandomResizedCrop(_Repr):
    """Crop a random area fraction ``scale`` with aspect ratio ``ratio``, resized to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias: bool | None = True):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError("Scale and ratio should be of kind (min, max)")
        self.scale, self.ratio, self.antialias = scale, ratio, antialias
        self.interpolation = _interp_mode(interpolation)

    @staticmethod
    def get_params(img, scale, ratio) -> tuple[int, int, int, int]:
        _, height, width = F.get_dimensions(img)
        area = height * width
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        for _ in range(10):
            target_area = area * _uniform(scale[0], scale[1])
            aspect = math.exp(_uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return _randint(0, height - h + 1), _randint(0, width - w + 1), h, w
        in_ratio = width / height  # fallback: central crop with the ratio clamped
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        return F.resized_crop(img, i, j, h, w, self.size, self.interpolation, self.antialias)


class RandomHorizontalFlip(_Repr):
    """Flip left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        return F.hflip(img) if _rand() < self.p else img


class RandomVerticalFlip(_Repr):
    """Flip top-bottom with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        return F.vflip(img) if _rand() < self.p else img


def _degrees(degrees, name: str) -> list[float]:
    if isinstance(degrees, numbers.Number):
        if degrees < 0:
            raise ValueError(f"If {name} is a single number, it must be positive.")
        return [-float(degrees), float(degrees)]
    if len(degrees) != 2:
        raise ValueError(f"If {name} is a sequence, it must be of len 2.")
    return [float(d) for d in degrees]


def _tensor_fill(img, fill):
    if isinstance(img, ndcore.Tensor) and fill is not None:
        channels = F.get_dimensions(img)[0]
        return [float(fill)] * channels if isinstance(fill, (int, float)) else [float(f) for f in fill]
    return fill


class RandomRotation(_Repr):
    """Rotate by an angle drawn uniformly from ``degrees`` (a range, or ``(-d, d)``)."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand: bool = False,
                 center=None, fill=0):
        self.degrees = _degrees(degrees, "degrees")
        self.interpolation = _interp_mode(interpolation)
        self.expand, self.center, self.fill = expand, center, fill

    @staticmethod
    def get_params(degrees: list[float]) -> float:
        return _uniform(degrees[0], degrees[1])

    def __call__(self, img):
        angle = self.get_params(self.degrees)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center,
                        _tensor_fill(img, self.fill))


class RandomAffine(_Repr):
    """Random affine warp: rotation range ``degrees``, ``translate`` fractions, ``scale`` range
    and ``shear`` range (degrees), as torchvision's ``RandomAffine``."""

    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation=InterpolationMode.NEAREST, fill=0, center=None):
        self.degrees = _degrees(degrees, "degrees")
        self.translate, self.scale = translate, scale
        if shear is not None and isinstance(shear, numbers.Number):
            shear = [-float(shear), float(shear)]
        self.shear = shear
        self.interpolation = _interp_mode(interpolation)
        self.fill, self.center = fill, center

    @staticmethod
    def get_params(degrees, translate, scale_ranges, shears, img_size):
        angle = _uniform(degrees[0], degrees[1])
        if translate is not None:
            mx, my = float(translate[0] * img_size[0]), float(translate[1] * img_size[1])
            tx, ty = int(round(_uniform(-mx, mx))), int(round(_uniform(-my, my)))
        else:
            tx, ty = 0, 0
        scale = _uniform(scale_ranges[0], scale_ranges[1]) if scale_ranges is not None else 1.0
        sx = sy = 0.0
        if shears is not None:
            sx = _uniform(shears[0], shears[1])
            if len(shears) == 4:
                sy = _uniform(shears[2], shears[3])
        return angle, (tx, ty), scale, (sx, sy)

    def __call__(self, img):
        size = F.get_image_size(img)
        angle, tr, sc, sh = self.get_params(self.degrees, self.translate, self.scale, self.shear, size)
        return F.affine(img, angle, list(tr), sc, list(sh), self.interpolation,
                        _tensor_fill(img, self.fill), self.center)


def _jitter_range(value, name: str, center: float = 1.0, bound=(0, float("inf")),
                  clip_first_on_zero: bool = True):
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be non negative.")
        value = [center - float(value), center + float(value)]
        if clip_first_on_zero:
            value[0] = max(value[0], 0.0)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        value = [float(value[0]), float(value[1])]
    else:
        raise TypeError(f"{name} should be a single number or a list/tuple with length 2.")
    if not bound[0] <= value[0] <= value[1] <= bound[1]:
        raise ValueError(f"{name} values should be between {bound}, but got {value}.")
    return None if value[0] == value[1] == center else value


class ColorJitter(_Repr):
    """Random brightness, contrast, saturation and hue changes, applied in a random order.

    Each argument is a max deviation ``d`` (factor drawn from ``[max(0, 1-d), 1+d]``, hue from
    ``[-d, d]``) or an explicit ``(min, max)``.
    """

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue):
        order = ndcore.randperm(4).tolist()
        draw = [None if r is None else _uniform(r[0], r[1])
                for r in (brightness, contrast, saturation, hue)]
        return (order, *draw)

    def __call__(self, img):
        order, b, c, s, h = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        fns = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        factors = (b, c, s, h)
        for k in order:
            if factors[k] is not None:
                img = fns[k](img, factors[k])
        return img


class Grayscale(_Repr):
    """Convert to grayscale with 1 or 3 output channels."""

    def __init__(self, num_output_channels: int = 1):
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)


class RandomGrayscale(_Repr):
    """Grayscale with probability ``p``, keeping the number of channels."""

    def __init__(self, p: float = 0.1):
        self.p = p

    def __call__(self, img):
        c = F.get_dimensions(img)[0]
        return F.rgb_to_grayscale(img, c) if _rand() < self.p else img


class Pad(_Repr):
    """Pad the borders (int, (lr, tb) or (l, t, r, b)) with ``fill`` or an ``edge``/``reflect``/
    ``symmetric`` copy of the border."""

    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        if not isinstance(padding, (numbers.Number, tuple, list)):
            raise TypeError("Got inappropriate padding arg")
        if isinstance(padding, Sequence) and len(padding) not in (1, 2, 4):
            raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                             f"{len(padding)} element tuple")
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)


class Lambda(_Repr):
    """Apply a user function."""

    def __init__(self, lambd: Callable):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)


class RandomErasing(_Repr):
    """With probability ``p``, erase a random box of area fraction ``scale`` and aspect ``ratio``
    of a tensor image (Zhong et al., 2017).

    Args:
        value: erasing value: a number, one per channel, or ``'random'`` (standard normal).
        inplace: modify the input tensor.
    """

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0,
                 inplace: bool = False):
        if not isinstance(value, (numbers.Number, str, tuple, list)):
            raise TypeError("Argument value should be either a number or str or a sequence")
        if isinstance(value, str) and value != "random":
            raise ValueError("If value is str, it should be 'random'")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError("Scale and ratio should be of kind (min, max)")
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError("Scale should be between 0 and 1")
        if p < 0 or p > 1:
            raise ValueError("Random erasing probability should be between 0 and 1")
        self.p, self.scale, self.ratio, self.value, self.inplace = p, scale, ratio, value, inplace

    @staticmethod
    def get_params(img, scale, ratio, value=None):
        c, ih, iw = img.shape[-3], img.shape[-2], img.shape[-1]
        area = ih * iw
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        for _ in range(10):
            erase_area = area * _uniform(scale[0], scale[1])
            aspect = math.exp(_uniform(log_lo, log_hi))
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if not (h < ih and w < iw):
                continue
            if value is None:
                v = ndcore.randn(c, h, w)
            else:
                v = ndcore.tensor([float(x) for x in value]).view(-1, 1, 1)
            return _randint(0, ih - h + 1), _randint(0, iw - w + 1), h, w, v
        return 0, 0, ih, iw, img

    def __call__(self, img):
        if _rand() >= self.p:
            return img
        if isinstance(self.value, (int, float)):
            value = [float(self.value)]
        elif isinstance(self.value, str):
            value = None
        else:
            value = list(self.value)
        if value is not None and len(value) not in (1, img.shape[-3]):
            raise ValueError(f"If value is a sequence, it should have either a single value or "
                             f"{img.shape[-3]} (number of input channels)")
        i, j, h, w, v = self.get_params(img, self.scale, self.ratio, value)
        if v is img:
            return img
        return F.erase(img, i, j, h, w, v.to(img.dtype), self.inplace)


class RandomApply(_Repr):
    """Apply the list of ``transforms`` (in order) with probability ``p``."""

    def __init__(self, transforms: Sequence[Callable], p: float = 0.5):
        self.transforms, self.p = list(transforms), p

    def __call__(self, img):
        if self.p < _rand():
            return img
        for t in self.transforms:
            img = t(img)
        return img


class RandomChoice(_Repr):
    """Apply one transform picked at random (weights ``p``, default uniform), from nd's RNG."""

    def __init__(self, transforms: Sequence[Callable], p: Sequence[float] | None = None):
        if p is not None and len(p) != len(transforms):
            raise ValueError(f"Length of p doesn't match the number of transforms: "
                             f"{len(p)} != {len(transforms)}")
        self.transforms, self.p = list(transforms), p

    def __call__(self, *args):
        weights = self.p if self.p is not None else [1.0] * len(self.transforms)
        u, acc, total = _rand() * sum(weights), 0.0, len(self.transforms) - 1
        idx = total
        for k, wgt in enumerate(weights):
            acc += wgt
            if u < acc:
                idx = k
                break
        return self.transforms[idx](*args)


class RandomOrder(_Repr):
    """Apply ``transforms`` in a random order (a permutation from nd's RNG)."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        for k in ndcore.randperm(len(self.transforms)).tolist():
            img = self.transforms[k](img)
        return img


class GaussianBlur(_Repr):
    """Gaussian blur with ``sigma`` drawn uniformly from ``sigma`` = (min, max) per call."""

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        self.kernel_size = _setup_size(kernel_size, "Kernel size should be a tuple/list of two ints")
        if any(k <= 0 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError("Kernel size value should be an odd and positive number.")
        if isinstance(sigma, numbers.Number):
            if sigma <= 0:
                raise ValueError("If sigma is a single number, it must be positive.")
            sigma = (float(sigma), float(sigma))
        elif not (isinstance(sigma, Sequence) and len(sigma) == 2 and 0 < sigma[0] <= sigma[1]):
            raise ValueError("sigma should be a single number or a list/tuple with length 2.")
        self.sigma = sigma

    @staticmethod
    def get_params(sigma_min: float, sigma_max: float) -> float:
        return _uniform(sigma_min, sigma_max)

    def __call__(self, img):
        s = self.get_params(self.sigma[0], self.sigma[1])
        return F.gaussian_blur(img, self.kernel_size, [s, s])


class FiveCrop(_Repr):
    """The four corner crops and the centre crop, as a tuple."""

    def __init__(self, size):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")

    def __call__(self, img):
        _, h, w = F.get_dimensions(img)
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"Requested crop size {self.size} is bigger than input size {(h, w)}")
        return (F.crop(img, 0, 0, ch, cw), F.crop(img, 0, w - cw, ch, cw),
                F.crop(img, h - ch, 0, ch, cw), F.crop(img, h - ch, w - cw, ch, cw),
                F.center_crop(img, (ch, cw)))


class TenCrop(_Repr):
    """:class:`FiveCrop` of the image and of its flip (vertical when ``vertical_flip``)."""

    def __init__(self, size, vertical_flip: bool = False):
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        self.vertical_flip = vertical_flip

    def __call__(self, img):
        five = FiveCrop(self.size)
        flipped = F.vflip(img) if self.vertical_flip else F.hflip(img)
        return five(img) + five(flipped)


class RandomInvert(_Repr):
    """Invert colours with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img):
        return F.invert(img) if _rand() < self.p else img
