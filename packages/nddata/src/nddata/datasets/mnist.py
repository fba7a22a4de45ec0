"""MNIST, FashionMNIST, KMNIST and EMNIST read from their IDX ``ubyte`` files (raw or gzipped)."""
from __future__ import annotations

import gzip
import os
import string
from typing import Any, Callable

import numpy as np

import ndcore

from ._download import download_and_extract_archive, extract_archive
from ._vision import VisionDataset, to_image, verify_str_arg

__all__ = ["MNIST", "FashionMNIST", "KMNIST", "EMNIST", "read_idx"]

# IDX type byte -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/ "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into a native-endian, contiguous NumPy array.

    Raises:
        ValueError: the header is malformed or the payload size does not match it.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"[read_idx] {path} is not an IDX file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"[read_idx] {path}: header says shape {dims} ({expected} bytes) but "
                         f"{len(raw) - offset} bytes follow")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


class MNIST(VisionDataset):
    """The MNIST handwritten digits (torchvision's ``MNIST``).

    Files are looked up in ``root/MNIST/raw/`` as ``train-images-idx3-ubyte`` etc., unzipped or
    with ``.gz``. ``data`` is a uint8 tensor ``(N, 28, 28)``, ``targets`` an int64 tensor ``(N,)``.
    An item is ``(PIL image of mode 'L', int)``; when the transform starts with ``ToTensor`` the
    image is handed over as an ``ndarray`` (same result, no PIL round trip), and without Pillow
    as a uint8 ``ndcore`` tensor ``(28, 28)``.

    Args:
        root: folder that holds ``MNIST/raw``.
        train: the 60k training set if True, else the 10k test set.
        transform: applied to the image.
        target_transform: applied to the label.
        download: fetch the files from the canonical URLs (MD5-checked) when missing.
    """

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    training_file = "training.pt"
    test_file = "test.pt"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_exists():
            raise RuntimeError(f"Dataset not found in {self.raw_folder}: expected "
                               f"{', '.join(self._raw_names())} (optionally .gz). "
                               f"You can use download=True to download it")
        images, labels = (self._find(n) for n in self._raw_names())
        data, targets = read_idx(images), read_idx(labels)
        if data.ndim != 3 or targets.ndim != 1 or len(data) != len(targets):
            raise ValueError(f"[{type(self).__name__}] images {data.shape} and labels "
                             f"{targets.shape} do not form a dataset of (N, H, W) and (N,)")
        self.data = ndcore.from_numpy(np.ascontiguousarray(data, dtype=np.uint8))
        self.targets = ndcore.from_numpy(targets.astype(np.int64))

    # Items are read from NumPy views / a list cached from ``data``/``targets`` (cheaper than
    # tensor indexing per sample); the setters keep them in sync when users reassign the
    # attributes, e.g. ``ds.data = ds.data[:1000]``.
    @property
    def data(self) -> ndcore.Tensor:
        return self._data

    @data.setter
    def data(self, value: ndcore.Tensor) -> None:
        self._data = value
        self._np = value.contiguous().numpy()

    @property
    def targets(self) -> ndcore.Tensor:
        return self._targets

    @targets.setter
    def targets(self, value: ndcore.Tensor) -> None:
        self._targets = value
        self._labels = value.tolist()

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "processed")

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def _raw_names(self) -> list[str]:
        prefix = "train" if self.train else "t10k"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def _find(self, name: str) -> str | None:
        for cand in (name, name + ".gz"):
            p = os.path.join(self.raw_folder, cand)
            if os.path.isfile(p):
                return p
        return None

    def _check_exists(self) -> bool:
        return all(self._find(n) is not None for n in self._raw_names())

    def download(self) -> None:
        """Download the four files into ``raw_folder`` (MD5-checked), unless already present."""
        if self._check_exists():
            return
        for filename, md5 in self.resources:
            base, *rest = self.mirrors
            download_and_extract_archive(base + filename, self.raw_folder, filename=filename,
                                         md5=md5, mirrors=tuple(rest))

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = to_image(self._np[index], self.transform), self._labels[index]
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self._labels)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'}"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (same format and API as :class:`MNIST`; ``root/FashionMNIST/raw``)."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class KMNIST(MNIST):
    """Kuzushiji-MNIST (same format and API as :class:`MNIST`; ``root/KMNIST/raw``)."""

    mirrors = ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
        ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
        ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
        ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
    ]
    classes = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


_MERGED = set("cijklmopsuvwxyz")
_ALL = set(string.digits + string.ascii_letters)


class EMNIST(MNIST):
    """Extended MNIST (torchvision's ``EMNIST``): letters and digits in six splits.

    Files are ``root/EMNIST/raw/emnist-<split>-<train|test>-<images-idx3|labels-idx1>-ubyte``
    (raw or ``.gz``; also found under ``raw/gzip/`` as the NIST zip lays them out). Images are
    returned as stored in the files (transposed relative to MNIST), as torchvision does.

    Args:
        root: folder that holds ``EMNIST/raw``.
        split: one of ``byclass``, ``bymerge``, ``balanced``, ``letters``, ``digits``, ``mnist``.
        **kwargs: ``train``, ``transform``, ``target_transform``, ``download`` as in :class:`MNIST`.
    """

    url = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
    md5 = "58c8d27c78d21e728a6bc7b3cc06412e"
    splits = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
    classes_split_dict = {
        "byclass": sorted(_ALL),
        "bymerge": sorted(_ALL - _MERGED),
        "balanced": sorted(_ALL - _MERGED),
        "letters": ["N/A"] + list(string.ascii_lowercase),
        "digits": list(string.digits),
        "mnist": list(string.digits),
    }

    def __init__(self, root: str, split: str, **kwargs: Any):
        self.split = verify_str_arg(split, "split", self.splits)
        self.classes = self.classes_split_dict[split]
        super().__init__(root, **kwargs)

    def _raw_names(self) -> list[str]:
        part = "train" if self.train else "test"
        return [f"emnist-{self.split}-{part}-images-idx3-ubyte",
                f"emnist-{self.split}-{part}-labels-idx1-ubyte"]

    def _find(self, name: str) -> str | None:
        found = super()._find(name)
        if found is None:
            for cand in (name, name + ".gz"):
                p = os.path.join(self.raw_folder, "gzip", cand)
                if os.path.isfile(p):
                    return p
        return found

    def download(self) -> None:
        """Download NIST's ``gzip.zip`` (MD5-checked) and unpack it into ``raw_folder``."""
        if self._check_exists():
            return
        download_and_extract_archive(self.url, self.raw_folder, md5=self.md5)
        gz_dir = os.path.join(self.raw_folder, "gzip")
        for name in sorted(os.listdir(gz_dir)):
            if name.endswith(".gz"):
                extract_archive(os.path.join(gz_dir, name), self.raw_folder)

    def extra_repr(self) -> str:
        return f"Split: {self.split} ({'Train' if self.train else 'Test'})"
