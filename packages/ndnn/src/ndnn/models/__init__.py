"""Model definitions (no weight downloads): the seed MNIST Net, resnets, alexnet, vgg11, squeezenet1_1, mobilenet_v2, a GPT-style LM."""
from __future__ import annotations

__all__: list[str] = []
