"""LSUN scenes from the LMDB databases (needs the optional ``lmdb`` package)."""
from __future__ import annotations

import io
import os
import string
from typing import Any, Callable

from ._vision import VisionDataset, verify_str_arg

__all__ = ["LSUN", "LSUNClass"]


def _lmdb():
    try:
        import lmdb
    except ImportError as e:
        raise ImportError("[LSUN] reading LSUN's LMDB databases needs the 'lmdb' package: "
                          "pip install lmdb") from e
    return lmdb


class LSUNClass(VisionDataset):
    """One LSUN category database (``root`` is its ``*_lmdb`` folder); items ``(PIL image, 0)``."""

    def __init__(self, root: str, transform: Callable | None = None,
                 target_transform: Callable | None = None):
        super().__init__(root, transform=transform, target_transform=target_transform)
        lmdb = _lmdb()
        self.env = lmdb.open(root, max_readers=1, readonly=True, lock=False, readahead=False,
                             meminit=False)
        with self.env.begin(write=False) as txn:
            self.length = txn.stat()["entries"]
            self.keys = [key for key in txn.cursor().iternext(keys=True, values=False)]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from PIL import Image
        with self.env.begin(write=False) as txn:
            buf = txn.get(self.keys[index])
        img = Image.open(io.BytesIO(buf)).convert("RGB")
        target = None
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return self.length


class LSUN(VisionDataset):
    """LSUN (torchvision's ``LSUN``): the union of category databases ``root/<cat>_<split>_lmdb``.

    Args:
        root: folder with the ``*_lmdb`` databases.
        classes: ``'train'``, ``'val'``, ``'test'`` or a list such as ``['bedroom_train']``.
        transform, target_transform: applied to image / category index.
    """

    categories = ["bedroom", "bridge", "church_outdoor", "classroom", "conference_room",
                  "dining_room", "kitchen", "living_room", "restaurant", "tower"]

    def __init__(self, root: str, classes: str | list[str] = "train",
                 transform: Callable | None = None, target_transform: Callable | None = None):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.classes = self._verify_classes(classes)
        _lmdb()  # fail early and clearly without the optional dependency
        self.dbs = [LSUNClass(os.path.join(self.root, f"{c}_lmdb"), transform=transform)
                    for c in self.classes]
        self.indices, count = [], 0
        for db in self.dbs:
            count += len(db)
            self.indices.append(count)
        self.length = count

    def _verify_classes(self, classes: str | list[str]) -> list[str]:
        dset_opts = ["train", "val", "test"]
        if isinstance(classes, str):
            verify_str_arg(classes, "classes", dset_opts)
            return ["test"] if classes == "test" else [c + "_" + classes for c in self.categories]
        out = []
        for c in classes:
            verify_str_arg(c, "classes", [cat + "_" + s for cat in self.categories for s in dset_opts])
            category, _, split = c.rpartition("_")
            if set(category) - set(string.ascii_lowercase + "_"):
                raise ValueError(f"[LSUN] bad class name {c!r}")
            verify_str_arg(split, "split", dset_opts)
            out.append(c)
        return out

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        target, sub = 0, 0
        for ind in self.indices:
            if index < ind:
                break
            target += 1
            sub = ind
        img, _ = self.dbs[target][index - sub]
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return self.length
