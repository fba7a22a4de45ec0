"""SVHN (Street View House Numbers) from its cropped-digits ``.mat`` files (needs scipy)."""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ._download import download_url
from ._vision import VisionDataset, to_image, verify_str_arg

__all__ = ["SVHN"]


class SVHN(VisionDataset):
    """SVHN cropped digits (torchvision's ``SVHN``).

    Reads ``root/{train,test,extra}_32x32.mat`` with ``scipy.io.loadmat`` (scipy is optional and
    imported here only). ``data`` is a uint8 ``ndarray`` ``(N, 3, 32, 32)``, ``labels`` an int64
    ``ndarray`` with the digit 0 stored as label 10 in the file mapped back to 0.

    Args:
        root: folder with the ``.mat`` files.
        split: ``train``, ``test`` or ``extra``.
        transform, target_transform: applied to image / label.
        download: fetch the file (MD5-checked) when missing.
    """

    split_list = {
        "train": ["http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                  "e26dedcc434d2e4c54c9b2d4a06d8373"],
        "test": ["http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                 "eb5a983be6a315427106f1b164d9cef3"],
        "extra": ["http://ufldl.stanford.edu/housenumbers/extra_32x32.mat", "extra_32x32.mat",
                  "a93ce644f1a588dc4d68dda5feec44a7"],
    }
    classes = [str(d) for d in range(10)]

    def __init__(self, root: str, split: str = "train", transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.split = verify_str_arg(split, "split", tuple(self.split_list))
        self.url, self.filename, self.file_md5 = self.split_list[split]
        if download:
            download_url(self.url, self.root, self.filename, self.file_md5)
        path = os.path.join(self.root, self.filename)
        if not os.path.isfile(path):
            raise RuntimeError(f"Dataset not found: {path}. You can use download=True to download it")
        try:
            import scipy.io as sio
        except ImportError as e:
            raise ImportError("[SVHN] reading .mat files needs scipy: pip install scipy") from e
        mat = sio.loadmat(path)
        self.data = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
        labels = mat["y"].astype(np.int64).reshape(-1)
        labels[labels == 10] = 0
        self.labels = labels

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img = to_image(np.ascontiguousarray(self.data[index].transpose(1, 2, 0)), self.transform)
        target = int(self.labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)

    def extra_repr(self) -> str:
        return f"Split: {self.split}"
