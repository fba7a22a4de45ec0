"""scikit-learn's bundled 8x8 handwritten digits, upscaled to an MNIST drop-in (no download)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np

import ndcore

from .mnist import MNIST

__all__ = ["Digits"]


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("[Digits] needs scikit-learn (pip install scikit-learn); use MNIST "
                          "for the downloadable 28x28 digits") from e
    bunch = load_digits()
    images = np.ascontiguousarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.flags.writeable = labels.flags.writeable = False  # shared by every instance
    return images, labels


class Digits(MNIST):
    """The UCI optical digits shipped with scikit-learn (1797 images), shaped like :class:`MNIST`.

    The 8x8 images (values 0..16) are scaled to 0..255, bilinearly resized to ``size x size``
    with ndcore ops (torch's ``interpolate`` semantics) and rounded to uint8, so ``data`` is a
    uint8 tensor ``(N, size, size)`` and ``targets`` int64, and items are ``(PIL 'L' image, int)``
    exactly like MNIST's. The split is stratified and deterministic: within each class a fixed
    permutation (``numpy.random.RandomState(seed)``) sends ``round(n_c * test_fraction)``
    images to the test set. Needs scikit-learn (imported lazily); nothing is downloaded.

    Args:
        root: unused (the data ships with scikit-learn); kept for MNIST's signature.
        train: the training part if True, else the test part.
        transform: applied to the image.
        target_transform: applied to the label.
        size: output side length (28 matches MNIST).
        test_fraction: fraction of each class held out for the test set.
        seed: seed of the split permutation.
    """

    classes = MNIST.classes

    def __init__(self, root: str | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 size: int = 28, test_fraction: float = 0.2, seed: int = 0, download: bool = False):
        del download  # nothing to fetch: the data ships with scikit-learn
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"[Digits] test_fraction must be in (0, 1), got {test_fraction}")
        if size < 1:
            raise ValueError(f"[Digits] size must be positive, got {size}")
        super(MNIST, self).__init__(root, transform=transform, target_transform=target_transform)
        self.train, self.size, self.test_fraction, self.seed = train, size, test_fraction, seed
        images, labels = _load_digits()
        idx = self._split(labels, train, test_fraction, seed)
        self.data = self._upscale(images[idx], size)
        self.targets = ndcore.from_numpy(labels[idx])

    @staticmethod
    def _split(labels: np.ndarray, train: bool, test_fraction: float, seed: int) -> np.ndarray:
        rng = np.random.RandomState(seed)
        keep = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            perm = members[rng.permutation(len(members))]
            n_test = int(round(len(members) * test_fraction))
            keep.append(perm[n_test:] if train else perm[:n_test])
        return np.sort(np.concatenate(keep))

    @staticmethod
    def _upscale(images: np.ndarray, size: int) -> ndcore.Tensor:
        from ..transforms import functional as TF
        x = ndcore.from_numpy(images).unsqueeze(1) * (255.0 / 16.0)
        if size != images.shape[-1]:
            x = TF.resize(x, [size, size], antialias=True)
        return x.round().clamp(0, 255).to(ndcore.uint8).squeeze(1).contiguous()

    @property
    def raw_folder(self) -> str:  # pragma: no cover - no files
        raise AttributeError("Digits has no raw folder: the data ships with scikit-learn")

    def download(self) -> None:
        """Nothing to do: the data ships with scikit-learn."""

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'} ({self.size}x{self.size}, from sklearn)"

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return super().__getitem__(index)
