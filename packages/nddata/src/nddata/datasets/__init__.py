"""Datasets (``nd.datasets``): torchvision/torchtext names and arguments, reading each source's
real on-disk format; ``download=True`` fetches from the canonical URL with an MD5 check."""
from __future__ import annotations

from ._download import check_integrity, download_and_extract_archive, download_url, extract_archive
from ._vision import StandardTransform, VisionDataset
from .cifar import CIFAR10, CIFAR100, UnsafePickleError, safe_pickle_load
from .coco import CocoCaptions, CocoDetection
from .digits import Digits
from .fakedata import FakeData
from .folder import IMG_EXTENSIONS, DatasetFolder, ImageFolder, default_loader, find_classes, make_dataset
from .imagenet import ImageNet
from .lsun import LSUN, LSUNClass
from .mnist import EMNIST, KMNIST, MNIST, FashionMNIST
from .phototour import PhotoTour
from .stl10 import STL10
from .svhn import SVHN
from .text import (
    IMDB, SNLI, SST, TREC, TranslationDataset, Vocab, WikiText2, WikiText103, batchify,
    build_vocab_from_iterator, get_batch, get_tokenizer, numericalize,
)

__all__ = [
    "VisionDataset", "StandardTransform",
    "MNIST", "FashionMNIST", "KMNIST", "EMNIST", "Digits", "FakeData",
    "CIFAR10", "CIFAR100", "SVHN", "STL10", "ImageFolder", "DatasetFolder", "ImageNet",
    "CocoCaptions", "CocoDetection", "LSUN", "LSUNClass", "PhotoTour",
    "IMDB", "SST", "TREC", "SNLI", "WikiText2", "WikiText103", "TranslationDataset",
    "Vocab", "build_vocab_from_iterator", "get_tokenizer", "batchify", "get_batch",
    "numericalize",
    "IMG_EXTENSIONS", "find_classes", "make_dataset", "default_loader",
    "safe_pickle_load", "UnsafePickleError",
    "download_url", "download_and_extract_archive", "extract_archive", "check_integrity",
]
