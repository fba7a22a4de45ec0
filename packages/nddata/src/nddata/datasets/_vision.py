"""Shared base of the vision datasets: root, transforms and the PIL/tensor image hand-off."""
from __future__ import annotations

import os
from typing import Any, Callable

from ..dataset import Dataset

__all__ = ["VisionDataset", "StandardTransform", "pil_available", "verify_str_arg"]


def pil_available() -> bool:
    """True when Pillow can be imported (it is optional)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def verify_str_arg(value: str, arg: str, valid: tuple | list) -> str:
    """Check that ``value`` is one of ``valid`` and raise a ``ValueError`` naming ``arg`` if not."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"Unknown value {value!r} for argument {arg}. "
                         f"Valid values are {{{', '.join(repr(v) for v in valid)}}}.")
    return value


class StandardTransform:
    """Apply ``transform`` to the input and ``target_transform`` to the target."""

    def __init__(self, transform: Callable | None = None, target_transform: Callable | None = None):
        self.transform = transform
        self.target_transform = target_transform

    def __call__(self, input: Any, target: Any) -> tuple[Any, Any]:
        if self.transform is not None:
            input = self.transform(input)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return input, target


class VisionDataset(Dataset):
    """Base class of the vision datasets (torchvision's ``VisionDataset``).

    Args:
        root: folder the dataset lives in (``~`` is expanded).
        transforms: callable taking and returning ``(image, target)``; exclusive with the next two.
        transform: callable applied to the image.
        target_transform: callable applied to the target.
    """

    _repr_indent = 4

    def __init__(self, root: str | None, transforms: Callable | None = None,
                 transform: Callable | None = None, target_transform: Callable | None = None):
        if isinstance(root, (str, os.PathLike)):
            root = os.path.expanduser(os.fspath(root))
        self.root = root
        has_separate = transform is not None or target_transform is not None
        if transforms is not None and has_separate:
            raise ValueError("Only transforms or transform/target_transform can be passed as argument")
        self.transform = transform
        self.target_transform = target_transform
        self.transforms = StandardTransform(transform, target_transform) if has_separate else transforms

    def __len__(self) -> int:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"Number of datapoints: {len(self)}"]
        if self.root is not None:
            lines.append(f"Root location: {self.root}")
        lines += [ln for ln in self.extra_repr().splitlines() if ln]
        for name in ("transform", "target_transform"):
            t = getattr(self, name, None)
            if t is not None:
                lines.append(f"{name}: {t!r}")
        pad = " " * self._repr_indent
        return "\n".join(["Dataset " + type(self).__name__] + [pad + ln for ln in lines])


def wants_array(transform: Callable | None) -> bool:
    """True when ``transform`` starts with ``ToTensor``: it then gives the same result from an
    HxW(xC) uint8 NumPy array as from a PIL image, so building the PIL image can be skipped."""
    from ..transforms.transforms import Compose, ToTensor  # transforms needs no dataset code
    while isinstance(transform, Compose) and transform.transforms:
        transform = transform.transforms[0]
    return isinstance(transform, ToTensor)


def to_image(arr, transform: Callable | None):
    """Hand an HxW or HxWxC uint8 NumPy image to ``transform`` the way torchvision does.

    A PIL image when Pillow is installed, an ``ndarray`` when the transform begins with
    ``ToTensor`` (same result, cheaper), and an ``ndcore`` uint8 tensor when Pillow is absent.
    """
    if wants_array(transform):
        return arr
    if pil_available():
        from PIL import Image
        return Image.fromarray(arr)  # uint8 HxW -> mode 'L', HxWx3 -> 'RGB'
    import ndcore
    return ndcore.from_numpy(arr.copy())
