"""Multi-view Stereo Correspondence (PhotoTour / Brown) patches: 64x64 patches tiled in bmp files."""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

import ndcore

from ._download import download_and_extract_archive
from ._vision import VisionDataset, verify_str_arg

__all__ = ["PhotoTour"]


class PhotoTour(VisionDataset):
    """PhotoTour (torchvision's ``PhotoTour``, Brown et al.'s patch dataset).

    Reads ``root/<name>/*.bmp`` (1024x1024 sheets of 16x16 patches of 64x64, row-major, files in
    sorted order), ``info.txt`` (first column: 3-D point id of each patch) and
    ``m50_100000_100000_0.txt`` (matches: patch ids in columns 0 and 3, same point when columns
    1 and 4 agree). ``data`` is a uint8 tensor ``(N, 64, 64)``, ``labels`` and ``matches``
    int64 tensors. Training items are single patches; test items ``(patch1, patch2, is_match)``.

    Args:
        root: folder holding ``<name>/``.
        name: ``notredame``, ``yosemite``, ``liberty`` or their ``_harris`` variants.
        train: patch mode if True, else match-pair mode.
        transform: applied to each patch (given as a uint8 ``ndarray`` like torchvision).
        download: fetch and extract ``<name>.zip`` (MD5-checked) when missing.
    """

    urls = {
        "notredame_harris": ["http://matthewalunbrown.com/patchdata/notredame_harris.zip",
                             "notredame_harris.zip", "69f8c90f78e171349abdf0307afefe4d"],
        "yosemite_harris": ["http://matthewalunbrown.com/patchdata/yosemite_harris.zip",
                            "yosemite_harris.zip", "a73253d1c6fbd3ba2613c45065c00d46"],
        "liberty_harris": ["http://matthewalunbrown.com/patchdata/liberty_harris.zip",
                           "liberty_harris.zip", "c731fcfb3abb4091110d0ae8c7ba182c"],
        "notredame": ["http://icvl.ee.ic.ac.uk/vbalnt/notredame.zip", "notredame.zip",
                      "509eda8535847b8c0a90bbb210c83484"],
        "yosemite": ["http://icvl.ee.ic.ac.uk/vbalnt/yosemite.zip", "yosemite.zip",
                     "533b2e8eb7ede31be40abc317b2fd4f0"],
        "liberty": ["http://icvl.ee.ic.ac.uk/vbalnt/liberty.zip", "liberty.zip",
                    "fdd9152f138ea5ef2091746689176414"],
    }
    means = {"notredame": 0.4854, "yosemite": 0.4844, "liberty": 0.4437,
             "notredame_harris": 0.4854, "yosemite_harris": 0.4844, "liberty_harris": 0.4437}
    stds = {"notredame": 0.1864, "yosemite": 0.1818, "liberty": 0.2019,
            "notredame_harris": 0.1864, "yosemite_harris": 0.1818, "liberty_harris": 0.2019}
    lens = {"notredame": 468159, "yosemite": 633587, "liberty": 450092,
            "liberty_harris": 379587, "yosemite_harris": 450912, "notredame_harris": 325295}
    image_ext = ".bmp"
    info_file = "info.txt"
    matches_files = "m50_100000_100000_0.txt"

    def __init__(self, root: str, name: str, train: bool = True, transform: Callable | None = None,
                 download: bool = False):
        super().__init__(root, transform=transform)
        self.name = verify_str_arg(name, "name", tuple(self.urls))
        self.data_dir = os.path.join(self.root, name)
        self.train = train
        self.mean, self.std = self.means[name], self.stds[name]
        if download and not os.path.isdir(self.data_dir):
            url, filename, md5 = self.urls[name]
            download_and_extract_archive(url, self.root, extract_root=self.data_dir,
                                         filename=filename, md5=md5)
        if not os.path.isdir(self.data_dir):
            raise RuntimeError(f"Dataset not found in {self.data_dir}. You can use download=True "
                               f"to download it")
        self.data = ndcore.from_numpy(self._read_patches())
        self.labels = ndcore.from_numpy(self._read_info())
        self.matches = ndcore.from_numpy(self._read_matches())
        self._np = self.data.numpy()

    def _read_patches(self) -> np.ndarray:
        from PIL import Image
        files = sorted(f for f in os.listdir(self.data_dir) if f.endswith(self.image_ext))
        sheets = []
        for f in files:
            sheet = np.asarray(Image.open(os.path.join(self.data_dir, f)).convert("L"))
            h, w = sheet.shape
            if h % 64 or w % 64:
                raise ValueError(f"[PhotoTour] {f} is {w}x{h}, not a grid of 64x64 patches")
            # Row-major patch order: (rows, 64, cols, 64) -> (rows, cols, 64, 64).
            sheets.append(sheet.reshape(h // 64, 64, w // 64, 64).transpose(0, 2, 1, 3).reshape(-1, 64, 64))
        patches = np.concatenate(sheets) if sheets else np.zeros((0, 64, 64), np.uint8)
        return np.ascontiguousarray(patches[:self.lens[self.name]])

    def _read_info(self) -> np.ndarray:
        with open(os.path.join(self.data_dir, self.info_file)) as f:
            return np.array([int(line.split()[0]) for line in f if line.strip()], dtype=np.int64)

    def _read_matches(self) -> np.ndarray:
        rows = []
        with open(os.path.join(self.data_dir, self.matches_files)) as f:
            for line in f:
                p = line.split()
                if p:
                    rows.append([int(p[0]), int(p[3]), int(p[1] == p[4])])
        return np.array(rows, dtype=np.int64).reshape(-1, 3)

    def __getitem__(self, index: int) -> Any:
        if self.train:
            data = self._np[index]
            return self.transform(data) if self.transform is not None else ndcore.from_numpy(data.copy())
        m = self.matches[index].tolist()
        d1, d2 = self._np[m[0]], self._np[m[1]]
        if self.transform is not None:
            return self.transform(d1), self.transform(d2), m[2]
        return ndcore.from_numpy(d1.copy()), ndcore.from_numpy(d2.copy()), m[2]

    def __len__(self) -> int:
        return len(self.data) if self.train else len(self.matches)

    def extra_repr(self) -> str:
        return f"Split: {'Train' if self.train else 'Test'}"
