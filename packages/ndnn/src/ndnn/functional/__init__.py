"""``nd.nn.functional``: the functional form of every layer and loss (torch's names and signatures)."""
from __future__ import annotations

from ._activation import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._pooling import *  # noqa: F401,F403
from ._norm import *  # noqa: F401,F403
from ._loss import *  # noqa: F401,F403
from ._dropout import *  # noqa: F401,F403
from ._sparse import *  # noqa: F401,F403
from ._vision import *  # noqa: F401,F403
from ._distance import *  # noqa: F401,F403
from ._attention import *  # noqa: F401,F403
from ._linear import *  # noqa: F401,F403

from . import _activation, _conv, _pooling, _norm, _loss, _dropout, _sparse, _vision, _distance, _attention, _linear

__all__ = sorted({name for mod in (_activation, _conv, _pooling, _norm, _loss, _dropout, _sparse, _vision, _distance, _attention, _linear) for name in mod.__all__})
