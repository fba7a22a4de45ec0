"""Download, integrity check and archive extraction shared by the datasets (urllib only)."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile

__all__ = [
    "calculate_md5",
    "check_integrity",
    "download_url",
    "download_and_extract_archive",
    "extract_archive",
]

_CHUNK = 1 << 20
# Kept as a module attribute so tests can swap in a fake opener (no network in tests).
urlopen = urllib.request.urlopen


def calculate_md5(fpath: str, chunk_size: int = _CHUNK) -> str:
    """Return the hex MD5 digest of a file, read in chunks."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            md5.update(chunk)
    return md5.hexdigest()


def check_integrity(fpath: str, md5: str | None = None) -> bool:
    """True when ``fpath`` exists and, if ``md5`` is given, its digest matches."""
    if not os.path.isfile(fpath):
        return False
    return md5 is None or calculate_md5(fpath) == md5


class _Progress:
    """Minimal progress bar on stderr (no tqdm dependency)."""

    def __init__(self, name: str, total: int | None):
        self.name, self.total, self.done, self._last = name, total, 0, -1

    def update(self, n: int) -> None:
        self.done += n
        if self.total:
            pct = int(100 * self.done / self.total)
            if pct != self._last:
                self._last = pct
                bar = "#" * (pct // 4)
                sys.stderr.write(f"\r{self.name}: [{bar:<25}] {pct:3d}% of {self.total / 1e6:.1f} MB")
        else:
            sys.stderr.write(f"\r{self.name}: {self.done / 1e6:.1f} MB")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def download_url(url: str, root: str, filename: str | None = None, md5: str | None = None,
                 mirrors: tuple[str, ...] = ()) -> str:
    """Download ``url`` into ``root/filename`` unless a file with the right MD5 is already there.

    Args:
        url: the canonical address.
        root: folder to write into (created if missing).
        filename: name to save under; defaults to the URL's basename.
        md5: expected hex digest; a mismatch raises ``RuntimeError`` and removes the file.
        mirrors: base URLs tried after ``url`` (the file's basename is appended).

    Returns:
        The path of the downloaded file.
    """
    root = os.path.expanduser(root)
    filename = filename or os.path.basename(url)
    fpath = os.path.join(root, filename)
    os.makedirs(root, exist_ok=True)
    if check_integrity(fpath, md5):
        return fpath
    urls = [url] + [m.rstrip("/") + "/" + os.path.basename(url) for m in mirrors]
    errors = []
    for u in urls:
        try:
            _fetch(u, fpath)
        except (urllib.error.URLError, OSError, ValueError) as e:  # offline, DNS, HTTP errors
            errors.append(f"{u}: {e}")
            if os.path.exists(fpath + ".part"):
                os.remove(fpath + ".part")
            continue
        if not check_integrity(fpath, md5):
            os.remove(fpath)
            raise RuntimeError(f"[download] {u} was downloaded but its MD5 does not match {md5}; "
                               f"the file was removed (corrupted transfer or changed upstream)")
        return fpath
    raise RuntimeError(
        f"[download] could not download {filename} ({'; '.join(errors)}). If this machine is "
        f"offline, fetch {url} elsewhere and put it at {fpath} (or its extracted contents under "
        f"{root}), then construct the dataset with download=False")


def _fetch(url: str, fpath: str) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "nddata"})
    with urlopen(req, timeout=30) as resp:
        total = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
        bar = _Progress(os.path.basename(fpath), int(total) if total else None)
        with open(fpath + ".part", "wb") as out:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))
        bar.close()
    os.replace(fpath + ".part", fpath)


def _safe_members(tar: tarfile.TarFile, dest: str):
    dest = os.path.realpath(dest)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        if not (target == dest or target.startswith(dest + os.sep)) or m.issym() or m.islnk():
            raise RuntimeError(f"[extract_archive] refusing unsafe member {m.name!r}")
        yield m


def extract_archive(from_path: str, to_path: str | None = None, remove_finished: bool = False) -> str:
    """Extract a .tar/.tar.gz/.tgz/.zip archive or decompress a single .gz file.

    Members that would land outside ``to_path`` (``..`` or links) are refused.

    Returns:
        The folder (or, for a single .gz, the file) written.
    """
    to_path = to_path or os.path.dirname(from_path)
    if from_path.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        with tarfile.open(from_path) as tar:
            tar.extractall(to_path, members=list(_safe_members(tar, to_path)))
        out = to_path
    elif from_path.endswith(".zip"):
        with zipfile.ZipFile(from_path) as z:
            for name in z.namelist():
                target = os.path.realpath(os.path.join(to_path, name))
                if not target.startswith(os.path.realpath(to_path) + os.sep):
                    raise RuntimeError(f"[extract_archive] refusing unsafe member {name!r}")
            z.extractall(to_path)
        out = to_path
    elif from_path.endswith(".gz"):
        out = os.path.join(to_path, os.path.basename(from_path)[:-3])
        with gzip.open(from_path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        raise ValueError(f"[extract_archive] unsupported archive type: {from_path}")
    if remove_finished:
        os.remove(from_path)
    return out


def download_and_extract_archive(url: str, download_root: str, extract_root: str | None = None,
                                 filename: str | None = None, md5: str | None = None,
                                 remove_finished: bool = False, mirrors: tuple[str, ...] = ()) -> str:
    """Download an archive (see :func:`download_url`) and extract it into ``extract_root``."""
    path = download_url(url, download_root, filename, md5, mirrors)
    return extract_archive(path, extract_root or download_root, remove_finished)
