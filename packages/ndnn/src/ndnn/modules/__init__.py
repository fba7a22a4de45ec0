"""Layers at PyTorch's module paths (``nd.nn.modules.conv.Conv2d``); each file lists its classes in ``__all__``."""
from __future__ import annotations

from .module import *  # noqa: F401,F403
from .container import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .batchnorm import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .instancenorm import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .sparse import *  # noqa: F401,F403
from .padding import *  # noqa: F401,F403
from .pixelshuffle import *  # noqa: F401,F403
from .upsampling import *  # noqa: F401,F403
from .distance import *  # noqa: F401,F403
from .flatten import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .fold import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from ._mha import *  # noqa: F401,F403
from .channelshuffle import *  # noqa: F401,F403

from . import module, container, linear, conv, pooling, batchnorm, normalization, instancenorm, activation, dropout, sparse, padding, pixelshuffle, upsampling, distance, flatten, loss, fold, rnn, transformer, _mha, channelshuffle

__all__ = sorted({name for mod in (module, container, linear, conv, pooling, batchnorm, normalization, instancenorm, activation, dropout, sparse, padding, pixelshuffle, upsampling, distance, flatten, loss, fold, rnn, transformer, _mha, channelshuffle) for name in mod.__all__})
