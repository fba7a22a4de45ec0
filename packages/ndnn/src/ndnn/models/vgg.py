"""VGG-11 with and without BatchNorm (torchvision's definition and parameter names; no pretrained weights)."""
from __future__ import annotations

import ndcore as nd

from .. import init
from .. import modules as nn
from ._utils import _no_weights

__all__ = ["VGG", "vgg11", "vgg11_bn", "vgg13", "vgg16", "vgg19"]

_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False):
    """The convolutional trunk: 3x3 convs (+ BatchNorm) + ReLU, ``'M'`` = 2x2 max-pool."""
    layers, in_channels = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        conv = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
        layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG ("Very Deep Convolutional Networks"): ``features`` trunk, 7x7 adaptive pool, three linear layers.

    Args:
        features: The convolutional trunk (see make_layers).
        num_classes: Output classes.
        init_weights: torchvision's initialisation (kaiming for convs, N(0, 0.01) for linears).
        dropout: Dropout probability in the classifier.
    """

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    init.constant_(m.weight, 1)
                    init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    init.normal_(m.weight, 0, 0.01)
                    init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(nd.flatten(x, 1))


def _vgg(name, cfg, batch_norm, weights, kwargs):
    kwargs = _no_weights(name, weights, kwargs)
    return VGG(make_layers(_CFGS[cfg], batch_norm=batch_norm), **kwargs)


def vgg11(*, weights=None, **kwargs):
    """VGG-11 (132,863,336 parameters with 1000 classes). Args: weights (must be None), VGG kwargs."""
    return _vgg("vgg11", "A", False, weights, kwargs)


def vgg11_bn(*, weights=None, **kwargs):
    """VGG-11 with BatchNorm (132,868,840 parameters). Args: weights (must be None), VGG kwargs."""
    return _vgg("vgg11_bn", "A", True, weights, kwargs)


def vgg13(*, weights=None, **kwargs):
    """VGG-13. Args: weights (must be None), VGG kwargs."""
    return _vgg("vgg13", "B", False, weights, kwargs)


def vgg16(*, weights=None, **kwargs):
    """VGG-16. Args: weights (must be None), VGG kwargs."""
    return _vgg("vgg16", "D", False, weights, kwargs)


def vgg19(*, weights=None, **kwargs):
    """VGG-19. Args: weights (must be None), VGG kwargs."""
    return _vgg("vgg19", "E", False, weights, kwargs)
