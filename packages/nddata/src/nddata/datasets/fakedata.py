"""Random images, deterministic per index (torchvision's ``FakeData``)."""
from __future__ import annotations

from typing import Any, Callable

import ndcore

from ._vision import VisionDataset, pil_available

__all__ = ["FakeData"]


class FakeData(VisionDataset):
    """Standard-normal images and uniform labels; item ``i`` is drawn from a generator seeded
    with ``i + random_offset`` (the global RNG is left alone), so it is the same every time.

    Items are ``(PIL image, int)`` as in torchvision (the normal values become uint8 through
    ``ToPILImage``), or ``(float tensor, int)`` without Pillow.

    Args:
        size: number of items.
        image_size: ``(C, H, W)``.
        num_classes: labels are in ``[0, num_classes)``.
        transform, target_transform: applied to image / label.
        random_offset: shifts every item's seed.
    """

    def __init__(self, size: int = 1000, image_size: tuple[int, int, int] = (3, 224, 224),
                 num_classes: int = 10, transform: Callable | None = None,
                 target_transform: Callable | None = None, random_offset: int = 0):
        super().__init__(None, transform=transform, target_transform=target_transform)
        self.size, self.num_classes = size, num_classes
        self.image_size, self.random_offset = tuple(image_size), random_offset

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if index >= len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        g = ndcore.Generator()
        g.manual_seed(index + self.random_offset)
        img = ndcore.randn(*self.image_size, generator=g)
        target = int(ndcore.randint(0, self.num_classes, (1,), generator=g).item())
        if pil_available():
            from ..transforms.functional import to_pil_image
            img = to_pil_image(img)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return self.size
