"""AlexNet (torchvision's single-tower variant and parameter names; no pretrained weights)."""
from __future__ import annotations

import ndcore as nd

from .. import modules as nn
from ._utils import _no_weights

__all__ = ["AlexNet", "alexnet"]


class AlexNet(nn.Module):
    """AlexNet ("One weird trick ..."): five convs, three linear layers; ``(N, 3, H, W)`` -> ``(N, num_classes)``.

    Args:
        num_classes: Output classes.
        dropout: Dropout probability in the classifier.
    """

    def __init__(self, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(nd.flatten(x, 1))


def alexnet(*, weights=None, **kwargs):
    """AlexNet (61,100,840 parameters with 1000 classes). Args: weights (must be None), AlexNet kwargs."""
    return AlexNet(**_no_weights("alexnet", weights, kwargs))
