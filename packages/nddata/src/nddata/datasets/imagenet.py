"""ImageNet 2012 classification from the extracted train/val folders and the devkit's meta.mat."""
from __future__ import annotations

import os
from typing import Any

from .folder import IMG_EXTENSIONS, ImageFolder
from ._vision import verify_str_arg

__all__ = ["ImageNet", "parse_devkit"]


def parse_devkit(devkit_root: str) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Read ``data/meta.mat`` and ``data/ILSVRC2012_validation_ground_truth.txt`` of the
    extracted ``ILSVRC2012_devkit_t12`` folder.

    Returns:
        ``(wnid_to_classes, val_wnids)``: each leaf synset's names (the comma-separated
        ``words``) and the wnid of every validation image in file order.
    """
    try:
        import scipy.io as sio
    except ImportError as e:
        raise ImportError("[ImageNet] reading the devkit's meta.mat needs scipy") from e
    meta = sio.loadmat(os.path.join(devkit_root, "data", "meta.mat"), squeeze_me=True)["synsets"]
    nums_children = list(zip(*meta))[4]
    leaves = [meta[i] for i, n in enumerate(nums_children) if n == 0]
    idcs, wnids, words = list(zip(*leaves))[:3]
    idx_to_wnid = {int(i): str(w) for i, w in zip(idcs, wnids)}
    wnid_to_classes = {str(w): tuple(c.strip() for c in str(ws).split(",")) for w, ws in zip(wnids, words)}
    gt = os.path.join(devkit_root, "data", "ILSVRC2012_validation_ground_truth.txt")
    val_wnids = []
    if os.path.isfile(gt):
        with open(gt) as f:
            val_wnids = [idx_to_wnid[int(line)] for line in f if line.strip()]
    return wnid_to_classes, val_wnids


class ImageNet(ImageFolder):
    """ILSVRC 2012 (torchvision's ``ImageNet``) read from already extracted folders.

    Layout: ``root/train/<wnid>/*.JPEG``; ``root/val/<wnid>/*.JPEG`` or a flat ``root/val/``
    with the 50k images (labelled through the devkit's ground truth); and the extracted devkit
    ``root/ILSVRC2012_devkit_t12/data/meta.mat``. No tar extraction is done: untar the archives
    (``ILSVRC2012_img_train.tar`` is a tar of per-class tars) into that layout first; the
    archives cannot be downloaded (registration needed). ``classes`` are tuples of names per
    class (``('tench', 'Tinca tinca')``), ``wnids`` their WordNet ids, ``class_to_idx`` maps every
    name to its index and ``wnid_to_idx`` each wnid.

    Args:
        root: folder with ``train``, ``val`` and the devkit.
        split: ``train`` or ``val``.
        **kwargs: ``transform``, ``target_transform``, ``loader`` as for :class:`ImageFolder`.
    """

    devkit_folder = "ILSVRC2012_devkit_t12"

    def __init__(self, root: str, split: str = "train", **kwargs: Any):
        root = os.path.expanduser(root)
        self.split = verify_str_arg(split, "split", ("train", "val"))
        devkit = os.path.join(root, self.devkit_folder)
        if not os.path.isfile(os.path.join(devkit, "data", "meta.mat")):
            raise RuntimeError(f"[ImageNet] devkit not found: extract ILSVRC2012_devkit_t12.tar.gz "
                               f"into {root} (expected {devkit}/data/meta.mat)")
        wnid_to_classes, val_wnids = parse_devkit(devkit)
        self._val_wnids = val_wnids
        self.root = root
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise RuntimeError(f"[ImageNet] {split_dir} not found: extract the {split} images there")
        self._flat_val = split == "val" and not any(e.is_dir() for e in os.scandir(split_dir))
        self._wnid_to_classes = wnid_to_classes
        super().__init__(split_dir, **kwargs)
        self.root = root
        self.wnids = self.classes
        self.wnid_to_idx = self.class_to_idx
        self.classes = [wnid_to_classes[w] for w in self.wnids]
        self.class_to_idx = {name: i for i, names in enumerate(self.classes) for name in names}

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        if self._flat_val:
            wnids = sorted(self._wnid_to_classes)
            return wnids, {w: i for i, w in enumerate(wnids)}
        return super().find_classes(directory)

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None,
                     allow_empty=False):
        if not self._flat_val:
            return super().make_dataset(directory, class_to_idx, extensions, is_valid_file, allow_empty)
        images = sorted(f for f in os.listdir(directory) if f.lower().endswith(IMG_EXTENSIONS))
        if len(images) != len(self._val_wnids):
            raise RuntimeError(f"[ImageNet] flat val folder has {len(images)} images but the "
                               f"ground truth lists {len(self._val_wnids)}")
        return [(os.path.join(directory, f), class_to_idx[w]) for f, w in zip(images, self._val_wnids)]

    def extra_repr(self) -> str:
        return f"Split: {self.split}"
