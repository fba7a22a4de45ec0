"""Image transforms (``nd.transforms``): torchvision.transforms v1 names and semantics, on PIL
images (Pillow optional) and ndcore tensors ``(..., C, H, W)``."""
from __future__ import annotations

from . import functional
from .functional import InterpolationMode
from .transforms import (
    CenterCrop, ColorJitter, Compose, ConvertImageDtype, FiveCrop, GaussianBlur, Grayscale,
    Lambda, Normalize, Pad, PILToTensor, RandomAffine, RandomApply, RandomChoice, RandomCrop,
    RandomErasing, RandomGrayscale, RandomHorizontalFlip, RandomInvert, RandomOrder,
    RandomResizedCrop, RandomRotation, RandomVerticalFlip, Resize, TenCrop, ToPILImage, ToTensor,
)

__all__ = [
    "functional", "InterpolationMode", "Compose", "ToTensor", "PILToTensor", "ToPILImage",
    "ConvertImageDtype", "Normalize", "Resize", "CenterCrop", "RandomCrop", "RandomResizedCrop",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "RandomAffine", "ColorJitter",
    "Grayscale", "RandomGrayscale", "Pad", "Lambda", "RandomErasing", "RandomApply",
    "RandomChoice", "RandomOrder", "GaussianBlur", "FiveCrop", "TenCrop", "RandomInvert",
]
