"""Text datasets in torchtext style: map-style datasets of plain Python tuples/strings read from
each corpus' released files (IMDB, SST, TREC, SNLI, WikiText, parallel text)."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable

from ..dataset import Dataset
from ._download import download_and_extract_archive, download_url
from ._vision import verify_str_arg
from ._vocab import Vocab, batchify, build_vocab_from_iterator, get_batch, get_tokenizer, numericalize

__all__ = ["IMDB", "SST", "TREC", "SNLI", "WikiText2", "WikiText103", "TranslationDataset",
           "Vocab", "build_vocab_from_iterator", "get_tokenizer", "batchify", "get_batch",
           "numericalize"]


class _TextDataset(Dataset):
    """List-backed dataset: ``data`` holds the items; ``transform`` maps each one."""

    def __init__(self, transform: Callable | None = None):
        self.transform = transform
        self.data: list[Any] = []

    def __getitem__(self, index: int) -> Any:
        item = self.data[index]
        return self.transform(item) if self.transform is not None else item

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={getattr(self, 'split', None)!r}, size={len(self)})"


def _need(path: str, what: str, url: str | None) -> None:
    if not os.path.exists(path):
        hint = f" (download=True fetches {url})" if url else ""
        raise RuntimeError(f"[{what}] {path} not found{hint}")


class IMDB(_TextDataset):
    """IMDB movie reviews (Maas et al. 2011): items ``(label, text)``, label ``'neg'``/``'pos'``.

    Reads ``root/aclImdb/<split>/{neg,pos}/*.txt`` (the released archive's layout), ``neg``
    first, files in sorted order.

    Args:
        root: folder holding ``aclImdb``.
        split: ``train`` or ``test``.
        transform: applied to each ``(label, text)`` item.
        download: fetch and extract the archive (MD5-checked) when missing.
    """

    url = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    md5 = "7c2ac02c03563afcf9b574c7e56c153a"
    classes = ["neg", "pos"]

    def __init__(self, root: str = ".data", split: str = "train", transform: Callable | None = None,
                 download: bool = False):
        super().__init__(transform)
        self.root, self.split = os.path.expanduser(root), verify_str_arg(split, "split", ("train", "test"))
        folder = os.path.join(self.root, "aclImdb", split)
        if download and not os.path.isdir(folder):
            download_and_extract_archive(self.url, self.root, md5=self.md5)
        _need(folder, "IMDB", self.url)
        for label in self.classes:
            d = os.path.join(folder, label)
            for name in sorted(os.listdir(d)):
                if name.endswith(".txt"):
                    with open(os.path.join(d, name), encoding="utf-8") as f:
                        self.data.append((label, f.read()))
        self.targets = [lbl for lbl, _ in self.data]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


_LEAF = re.compile(r"\(\d+ ([^()\s]+)\)")
_ROOT = re.compile(r"^\s*\((\d+)")


def parse_ptb_tree(line: str) -> tuple[int, str]:
    """``(root sentiment 0..4, sentence)`` of one SST tree in PTB bracket notation."""
    m = _ROOT.match(line)
    if m is None:
        raise ValueError(f"[SST] not a PTB tree: {line[:60]!r}")
    return int(m.group(1)), " ".join(_LEAF.findall(line))


class SST(_TextDataset):
    """Stanford Sentiment Treebank: items ``(label, sentence)`` from ``root/sst/trees/<split>.txt``.

    Args:
        root: folder holding ``sst/trees`` (the ``trainDevTestTrees_PTB.zip`` layout).
        split: ``train``, ``dev`` or ``test``.
        fine_grained: five classes (``very negative`` .. ``very positive``); otherwise the binary
            task (SST-2 style): neutral sentences are dropped, labels ``negative``/``positive``.
        transform: applied to each item.
        download: fetch and extract the archive when missing.
    """

    url = "http://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
    fine_classes = ["very negative", "negative", "neutral", "positive", "very positive"]

    def __init__(self, root: str = ".data", split: str = "train", fine_grained: bool = False,
                 transform: Callable | None = None, download: bool = False):
        super().__init__(transform)
        self.root = os.path.expanduser(root)
        self.split = verify_str_arg(split, "split", ("train", "dev", "test"))
        self.fine_grained = fine_grained
        path = os.path.join(self.root, "sst", "trees", f"{split}.txt")
        if download and not os.path.isfile(path):
            download_and_extract_archive(self.url, os.path.join(self.root, "sst"))
        _need(path, "SST", self.url)
        self.classes = self.fine_classes if fine_grained else ["negative", "positive"]
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                score, text = parse_ptb_tree(line)
                if fine_grained:
                    self.data.append((self.fine_classes[score], text))
                elif score != 2:
                    self.data.append(("negative" if score < 2 else "positive", text))
        self.targets = [lbl for lbl, _ in self.data]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class TREC(_TextDataset):
    """TREC question classification: items ``(label, question)`` from ``root/trec/``.

    Lines look like ``DESC:manner How did serfdom develop ... ?``; the label is the coarse
    ``DESC`` or, with ``fine_grained``, ``DESC:manner``. Files are Latin-1 encoded.

    Args:
        root: folder holding ``trec/train_5500.label`` and ``trec/TREC_10.label``.
        split: ``train`` or ``test``.
        fine_grained: use the 50 fine labels instead of the 6 coarse ones.
        transform: applied to each item.
        download: fetch the files when missing.
    """

    urls = {"train": "http://cogcomp.org/Data/QA/QC/train_5500.label",
            "test": "http://cogcomp.org/Data/QA/QC/TREC_10.label"}

    def __init__(self, root: str = ".data", split: str = "train", fine_grained: bool = False,
                 transform: Callable | None = None, download: bool = False):
        super().__init__(transform)
        self.root = os.path.expanduser(root)
        self.split = verify_str_arg(split, "split", ("train", "test"))
        self.fine_grained = fine_grained
        url = self.urls[split]
        path = os.path.join(self.root, "trec", os.path.basename(url))
        if download and not os.path.isfile(path):
            download_url(url, os.path.join(self.root, "trec"))
        _need(path, "TREC", url)
        with open(path, "rb") as f:
            for raw in f:
                line = raw.decode("latin-1").strip()
                if not line:
                    continue
                label, _, text = line.partition(" ")
                self.data.append((label if fine_grained else label.split(":")[0], text.strip()))
        self.targets = [lbl for lbl, _ in self.data]
        self.classes = sorted(set(self.targets))
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class SNLI(_TextDataset):
    """Stanford NLI: items ``(label, premise, hypothesis)`` from ``snli_1.0_<split>.jsonl``.

    Pairs whose ``gold_label`` is ``'-'`` (no annotator majority) are dropped.

    Args:
        root: folder holding ``snli_1.0/``.
        split: ``train``, ``dev`` or ``test``.
        transform: applied to each item.
        download: fetch and extract the archive (MD5-checked) when missing.
    """

    url = "https://nlp.stanford.edu/projects/snli/snli_1.0.zip"
    md5 = "981c3df556bbaea3f17f752456d0088c"
    classes = ["entailment", "neutral", "contradiction"]

    def __init__(self, root: str = ".data", split: str = "train", transform: Callable | None = None,
                 download: bool = False):
        super().__init__(transform)
        self.root = os.path.expanduser(root)
        self.split = verify_str_arg(split, "split", ("train", "dev", "test"))
        path = os.path.join(self.root, "snli_1.0", f"snli_1.0_{split}.jsonl")
        if download and not os.path.isfile(path):
            download_and_extract_archive(self.url, self.root, md5=self.md5)
        _need(path, "SNLI", self.url)
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                ex = json.loads(line)
                if ex["gold_label"] == "-":
                    continue
                self.data.append((ex["gold_label"], ex["sentence1"], ex["sentence2"]))
        self.targets = [d[0] for d in self.data]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class WikiText2(_TextDataset):
    """WikiText-2 language-modelling corpus: items are the lines of ``wiki.<split>.tokens``
    (newline removed), read from ``root/wikitext-2/``.

    Typical use: ``vocab = build_vocab_from_iterator(map(tok, WikiText2(split='train')),
    specials=['<unk>'])``, ``vocab.set_default_index(vocab['<unk>'])``, then
    :func:`numericalize`, :func:`batchify` and :func:`get_batch`.

    Args:
        root: folder holding ``wikitext-2``.
        split: ``train``, ``valid`` or ``test``.
        transform: applied to each line.
        download: fetch and extract the archive (MD5-checked) when missing.
    """

    url = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip"
    md5 = "542ccefacc6c27f945fb54453812b3cd"
    folder = "wikitext-2"

    def __init__(self, root: str = ".data", split: str = "train", transform: Callable | None = None,
                 download: bool = False):
        super().__init__(transform)
        self.root = os.path.expanduser(root)
        self.split = verify_str_arg(split, "split", ("train", "valid", "test"))
        path = os.path.join(self.root, self.folder, f"wiki.{split}.tokens")
        if download and not os.path.isfile(path):
            download_and_extract_archive(self.url, self.root, md5=self.md5)
        _need(path, type(self).__name__, self.url)
        with open(path, encoding="utf-8") as f:
            self.data = [line.rstrip("\n") for line in f]


class WikiText103(WikiText2):
    """WikiText-103 (same format and API as :class:`WikiText2`; ``root/wikitext-103/``)."""

    url = "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip"
    md5 = "9ddaacaf6af0710eda8c456decff7832"
    folder = "wikitext-103"


class TranslationDataset(_TextDataset):
    """Line-aligned parallel text (legacy torchtext's ``TranslationDataset``): items
    ``(source, target)`` from ``path + exts[0]`` and ``path + exts[1]``, stripped; pairs with an
    empty side are skipped.

    Args:
        path: common prefix of the two files, e.g. ``'data/multi30k/train'``.
        exts: suffixes of the source and target files.
        transform: applied to each pair.
    """

    def __init__(self, path: str, exts: tuple[str, str] = (".de", ".en"),
                 transform: Callable | None = None):
        super().__init__(transform)
        if len(exts) != 2:
            raise ValueError(f"[TranslationDataset] exts must name two files, got {exts!r}")
        src_path, trg_path = (os.path.expanduser(path + e) for e in exts)
        for p in (src_path, trg_path):
            _need(p, "TranslationDataset", None)
        with open(src_path, encoding="utf-8") as fs, open(trg_path, encoding="utf-8") as ft:
            src_lines, trg_lines = fs.read().splitlines(), ft.read().splitlines()
        if len(src_lines) != len(trg_lines):
            raise ValueError(f"[TranslationDataset] {src_path} has {len(src_lines)} lines but "
                             f"{trg_path} has {len(trg_lines)}")
        self.data = [(s.strip(), t.strip()) for s, t in zip(src_lines, trg_lines)
                     if s.strip() and t.strip()]
