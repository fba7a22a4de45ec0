"""ndnn: neural-network modules, layers, losses, init and safe save/load (``nd.nn``).

Layers also live at PyTorch's module paths (``ndnn.modules.conv.Conv2d``).
"""
from __future__ import annotations

from . import functional, init, modules, parallel, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .parameter import *  # noqa: F401,F403
from .parameter import __all__ as _parameter_all
from .parallel import *  # noqa: F401,F403
from .parallel import __all__ as _parallel_all
from .version import __version__

__all__ = sorted({*_modules_all, *_parameter_all, *_parallel_all, "functional", "init", "modules", "parallel", "utils",
                  "__version__"})
