"""Model definitions (no weight downloads): the seed MNIST Net, resnets, alexnet, vgg, squeezenet, mobilenet_v2, a
GPT-style LM. Parameter names follow torchvision, so its state_dicts load as they are."""
from __future__ import annotations

from .alexnet import *  # noqa: F401,F403
from .gpt import *  # noqa: F401,F403
from .mnist import *  # noqa: F401,F403
from .mobilenetv2 import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .squeezenet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
import importlib as _importlib

# submodule objects (``alexnet`` the name is also the function star-imported above)
_MODULES = [_importlib.import_module(f"{__name__}.{m}")
            for m in ("alexnet", "gpt", "mnist", "mobilenetv2", "resnet", "squeezenet", "vgg")]
__all__ = sorted({n for m in _MODULES for n in m.__all__})
