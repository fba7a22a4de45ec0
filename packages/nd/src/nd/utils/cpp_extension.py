"""``nd.utils.cpp_extension``: JIT-compiled C++ extensions (ndcore.cpp_extension)."""
from ndcore.cpp_extension import *  # noqa: F401,F403
from ndcore.cpp_extension import __all__  # noqa: F401
