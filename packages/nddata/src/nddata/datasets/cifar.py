"""CIFAR-10 and CIFAR-100 from their "python version" pickled batches, read without running code."""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, Callable

import numpy as np

from ._download import download_and_extract_archive
from ._vision import VisionDataset, to_image

__all__ = ["CIFAR10", "CIFAR100", "safe_pickle_load", "UnsafePickleError"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed plain-data set."""


# Globals a CIFAR batch (or a NumPy array pickled by any NumPy version) can need; each only
# builds data. Anything else (os.system, eval, subprocess, ...) is refused.
_ALLOWED = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray",
                              "str", "int", "float", "complex", "bool")
} | {
    ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"[safe_pickle_load] refusing to load global {module}.{name}: only plain "
                f"containers, strings, numbers and NumPy arrays are allowed in dataset pickles")
        return super().find_class(module, name)


def safe_pickle_load(f, encoding: str = "latin1") -> Any:
    """``pickle.load`` restricted to plain data (dict/list/str/bytes/numbers/NumPy arrays).

    Args:
        f: binary file object or bytes.
        encoding: how Python 2 ``str`` objects are decoded (``latin1`` keeps NumPy buffers intact).

    Raises:
        UnsafePickleError: the pickle references any other global (e.g. ``os.system``).
    """
    if isinstance(f, (bytes, bytearray)):
        f = io.BytesIO(f)
    return _SafeUnpickler(f, encoding=encoding).load()


class CIFAR10(VisionDataset):
    """CIFAR-10 (torchvision's ``CIFAR10``): 32x32 colour images in 10 classes.

    Reads ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``. ``data`` is a
    uint8 ``ndarray`` ``(N, 32, 32, 3)`` and ``targets`` a list of ints, as in torchvision; items
    are ``(PIL RGB image, int)``. The pickles are read by :func:`safe_pickle_load`.

    Args:
        root: folder holding ``cifar-10-batches-py`` (the extracted archive).
        train: training batches if True, else the test batch.
        transform, target_transform: applied to image / label.
        download: fetch and extract the archive (MD5-checked) when missing.
    """

    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    filename = "cifar-10-python.tar.gz"
    tgz_md5 = "c58f30108f718f92721af3b95e74349a"
    train_list = [("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                  ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                  ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                  ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                  ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")]
    test_list = [("test_batch", "40351d587109b95175f43aff81a1287e")]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": "5ff9c542aee3614f3951f8cda6e48888"}
    label_key = "labels"

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_exists():
            raise RuntimeError(f"Dataset not found or incomplete in {self._folder()}. "
                               f"You can use download=True to download it")
        data, targets = [], []
        for name, _ in (self.train_list if train else self.test_list):
            with open(os.path.join(self._folder(), name), "rb") as f:
                entry = safe_pickle_load(f)
            key = self.label_key if self.label_key in entry else "labels"
            data.append(np.asarray(entry["data"], dtype=np.uint8))
            targets.extend(int(t) for t in entry[key])
        flat = np.vstack(data)
        if flat.shape[1] != 3 * 32 * 32:
            raise ValueError(f"[{type(self).__name__}] batch rows have {flat.shape[1]} values, "
                             f"expected 3072 (3x32x32)")
        self.data = np.ascontiguousarray(flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self.targets = targets
        with open(os.path.join(self._folder(), self.meta["filename"]), "rb") as f:
            self.classes = list(safe_pickle_load(f)[self.meta["key"]])
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def _folder(self) -> str:
        return os.path.join(self.root, self.base_folder)

    def _check_exists(self) -> bool:
        names = [n for n, _ in self.train_list + self.test_list] + [self.meta["filename"]]
        return all(os.path.isfile(os.path.join(self._folder(), n)) for n in names)

    def download(self) -> None:
        """Download and extract the archive (MD5-checked) unless the batches are present."""
        if self._check_exists():
            return
        download_and_extract_archive(self.url, self.root, filename=self.filename, md5=self.tgz_md5)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = to_image(self.data[index], self.transform), self.targets[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'}"


class CIFAR100(CIFAR10):
    """CIFAR-100 (torchvision's ``CIFAR100``): as :class:`CIFAR10` with 100 fine labels.

    Reads ``root/cifar-100-python/{train,test,meta}``; targets are the ``fine_labels``.
    """

    base_folder = "cifar-100-python"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    filename = "cifar-100-python.tar.gz"
    tgz_md5 = "eb9058c3a382ffc7106e4002c42a8d85"
    train_list = [("train", "16019d7e3df5f24257cddd939b257f8d")]
    test_list = [("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")]
    meta = {"filename": "meta", "key": "fine_label_names", "md5": "7973b15100ade9c7d40fb424638fde48"}
    label_key = "fine_labels"
