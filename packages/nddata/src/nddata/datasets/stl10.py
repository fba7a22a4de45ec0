"""STL-10 from its binary files (``stl10_binary/*.bin``)."""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ._download import download_and_extract_archive
from ._vision import VisionDataset, to_image, verify_str_arg

__all__ = ["STL10"]


class STL10(VisionDataset):
    """STL-10 (torchvision's ``STL10``): 96x96 colour images, 10 classes plus 100k unlabeled.

    Reads ``root/stl10_binary/{train,test,unlabeled}_X.bin`` (uint8, column-major 3x96x96 per
    image), ``*_y.bin`` (labels 1..10, returned 0-based), ``class_names.txt`` and
    ``fold_indices.txt``. ``data`` is a uint8 ``ndarray`` ``(N, 3, 96, 96)``; ``labels`` an
    ``ndarray`` (-1 for unlabeled images).

    Args:
        root: folder holding ``stl10_binary``.
        split: ``train``, ``test``, ``unlabeled`` or ``train+unlabeled``.
        folds: 0..9 selects one of the ten predefined training folds (train splits only).
        transform, target_transform: applied to image / label.
        download: fetch and extract the archive (MD5-checked) when missing.
    """

    base_folder = "stl10_binary"
    url = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
    filename = "stl10_binary.tar.gz"
    tgz_md5 = "91f7769df0f17e558f3565bffb0c7dfb"
    class_names_file = "class_names.txt"
    folds_list_file = "fold_indices.txt"
    splits = ("train", "train+unlabeled", "unlabeled", "test")

    def __init__(self, root: str, split: str = "train", folds: int | None = None,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.split = verify_str_arg(split, "split", self.splits)
        if folds is not None and not (isinstance(folds, int) and 0 <= folds < 10):
            raise ValueError(f"[STL10] folds should be an int in [0, 10) or None, got {folds!r}")
        self.folds = folds
        if download and not os.path.isdir(self._folder()):
            download_and_extract_archive(self.url, self.root, filename=self.filename, md5=self.tgz_md5)
        if not os.path.isdir(self._folder()):
            raise RuntimeError(f"Dataset not found in {self._folder()}. You can use download=True "
                               f"to download it")
        self.labels: np.ndarray | None
        if split in ("train", "train+unlabeled"):
            self.data, self.labels = self._load("train_X.bin", "train_y.bin")
            self._load_folds(folds)
            if split == "train+unlabeled":
                unlabeled, _ = self._load("unlabeled_X.bin")
                self.data = np.concatenate((self.data, unlabeled))
                self.labels = np.concatenate((self.labels, np.full(len(unlabeled), -1, np.int64)))
        elif split == "unlabeled":
            self.data, _ = self._load("unlabeled_X.bin")
            self.labels = np.full(len(self.data), -1, np.int64)
        else:
            self.data, self.labels = self._load("test_X.bin", "test_y.bin")
        names = os.path.join(self._folder(), self.class_names_file)
        if os.path.isfile(names):
            with open(names) as f:
                self.classes = f.read().splitlines()
        else:
            self.classes = []

    def _folder(self) -> str:
        return os.path.join(self.root, self.base_folder)

    def _load(self, data_file: str, labels_file: str | None = None):
        labels = None
        if labels_file is not None:
            raw = np.fromfile(os.path.join(self._folder(), labels_file), dtype=np.uint8)
            labels = raw.astype(np.int64) - 1  # stored 1-based
        flat = np.fromfile(os.path.join(self._folder(), data_file), dtype=np.uint8)
        if flat.size % (3 * 96 * 96):
            raise ValueError(f"[STL10] {data_file} holds {flat.size} bytes, not a multiple of "
                             f"3*96*96")
        images = flat.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # stored column-major
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"[STL10] {data_file} has {len(images)} images but {labels_file} "
                             f"{len(labels)} labels")
        return np.ascontiguousarray(images), labels

    def _load_folds(self, folds: int | None) -> None:
        if folds is None:
            return
        with open(os.path.join(self._folder(), self.folds_list_file)) as f:
            line = f.read().splitlines()[folds]
        idx = np.array(line.split(), dtype=np.int64)
        self.data, self.labels = self.data[idx], self.labels[idx]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        target = int(self.labels[index]) if self.labels is not None else -1
        img = to_image(np.ascontiguousarray(self.data[index].transpose(1, 2, 0)), self.transform)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)

    def extra_repr(self) -> str:
        return f"Split: {self.split}"
