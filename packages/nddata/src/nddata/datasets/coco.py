"""MS COCO detection and captions from the annotation JSON (no pycocotools needed)."""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from ._vision import VisionDataset

__all__ = ["CocoDetection", "CocoCaptions"]


class CocoDetection(VisionDataset):
    """MS COCO detection (torchvision's ``CocoDetection``): items are ``(PIL RGB image,
    list of annotation dicts)`` for the image.

    The annotation file (``instances_*.json``) is parsed with ``json``; images are read from
    ``root/<file_name>``. ``ids`` lists the image ids in sorted order (as pycocotools' COCO
    keys do), ``coco`` holds ``imgs``/``anns``/``cats``/``imgToAnns`` dictionaries.

    Args:
        root: image folder (e.g. ``train2017``).
        annFile: the JSON annotation file.
        transform, target_transform: applied to image / target.
        transforms: callable on ``(image, target)`` (exclusive with the previous two).
    """

    def __init__(self, root: str, annFile: str, transform: Callable | None = None,
                 target_transform: Callable | None = None, transforms: Callable | None = None):
        super().__init__(root, transforms, transform, target_transform)
        self.coco = _CocoIndex(annFile)
        self.ids = sorted(self.coco.imgs)

    def _load_image(self, id: int):
        from PIL import Image
        return Image.open(os.path.join(self.root, self.coco.imgs[id]["file_name"])).convert("RGB")

    def _load_target(self, id: int) -> list[Any]:
        return list(self.coco.imgToAnns.get(id, []))

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not isinstance(index, int):
            raise ValueError(f"Index must be of type integer, got {type(index)} instead.")
        id = self.ids[index]
        image, target = self._load_image(id), self._load_target(id)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __len__(self) -> int:
        return len(self.ids)


class CocoCaptions(CocoDetection):
    """MS COCO captions (torchvision's ``CocoCaptions``): items are ``(PIL image, [captions])``
    from a ``captions_*.json`` file."""

    def _load_target(self, id: int) -> list[str]:
        return [ann["caption"] for ann in super()._load_target(id)]


class _CocoIndex:
    """The part of pycocotools' ``COCO`` index the datasets need."""

    def __init__(self, annotation_file: str):
        with open(annotation_file) as f:
            self.dataset = json.load(f)
        if not isinstance(self.dataset, dict) or "images" not in self.dataset:
            raise ValueError(f"[Coco] {annotation_file} is not a COCO annotation file "
                             f"(no 'images' list)")
        self.imgs = {img["id"]: img for img in self.dataset["images"]}
        self.anns = {ann["id"]: ann for ann in self.dataset.get("annotations", [])}
        self.cats = {cat["id"]: cat for cat in self.dataset.get("categories", [])}
        self.imgToAnns: dict[int, list[dict]] = {}
        for ann in self.dataset.get("annotations", []):
            self.imgToAnns.setdefault(ann["image_id"], []).append(ann)
