"""JIT-compiled C++ extensions against ndcore's headers and shared library.

```python
ext = ndcore.cpp_extension.load(name="my_extension", sources=["extension.cpp"], extra_cflags=["-O3"])
```

The extension writes ``#include <nd/extension.h>``, uses ``nd::Tensor`` and ends with
``PYBIND11_MODULE(ND_EXTENSION_NAME, m) {...}``. Builds are cached by a hash of the sources,
flags, compiler and ndcore version; a compile error raises ``ExtensionBuildError`` carrying the
compiler's own messages.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from . import _C
from .version import __version__

__all__ = ["load", "load_inline", "include_paths", "library_paths", "ExtensionBuildError", "get_default_build_root"]

_PACKAGE_DIR = Path(_C.__file__).resolve().parent
_loaded: dict[str, object] = {}


class ExtensionBuildError(RuntimeError):
    """The compiler rejected an extension; ``str(err)`` holds its error lines."""


def include_paths() -> list[str]:
    """Directories holding ``nd/extension.h`` and the bundled pybind11 headers."""
    return [str(_PACKAGE_DIR / "include"), sysconfig.get_paths()["include"]]


def library_paths() -> list[str]:
    return [str(_PACKAGE_DIR)]


def get_default_build_root() -> str:
    root = os.environ.get("ND_EXTENSIONS_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "nd_extensions")
    return root


def _compiler() -> str:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or "c++"


def _build_key(name, sources, cflags, ldflags, includes) -> str:
    h = hashlib.sha256()
    for part in (name, __version__, sys.version, _compiler(), *cflags, *ldflags, *includes):
        h.update(part.encode() + b"\0")
    for src in sources:
        h.update(Path(src).read_bytes() + b"\0")
    for hdr in sorted((_PACKAGE_DIR / "include" / "nd").glob("*.h")):
        h.update(hdr.read_bytes())
    return h.hexdigest()[:16]


def _error_summary(stderr: str, limit: int = 40) -> str:
    lines = [ln for ln in stderr.splitlines() if ": error" in ln or ": fatal error" in ln or "undefined reference" in ln]
    shown = lines[:limit] if lines else stderr.splitlines()[:limit]
    return "\n".join(shown)


def load(name: str, sources, extra_cflags=None, extra_ldflags=None, extra_include_paths=None,
         build_directory=None, verbose: bool = False, with_cuda=None, is_python_module: bool = True):
    """Compiles (or reuses a cached build of) the extension and imports it.

    Args:
        name: Module name; also ND_EXTENSION_NAME inside the sources.
        sources: C++ source files.
        extra_cflags, extra_ldflags: Extra compiler / linker flags.
        extra_include_paths: More -I directories.
        build_directory: Where to build (default: a cache dir keyed by content hash).
        verbose: Print the compiler command and output.

    Returns:
        The imported module.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [str(Path(s).resolve()) for s in sources]
    for s in sources:
        if not os.path.exists(s):
            raise FileNotFoundError(f"[cpp_extension] source file not found: {s}")
    if not name.isidentifier():
        raise ValueError(f"[cpp_extension] extension name must be a Python identifier, got {name!r}")
    cflags = list(extra_cflags or [])
    ldflags = list(extra_ldflags or [])
    includes = [str(p) for p in (extra_include_paths or [])]
    key = _build_key(name, sources, cflags, ldflags, includes)
    cache_id = f"{name}:{key}"
    if cache_id in _loaded:
        return _loaded[cache_id]
    build = Path(build_directory or os.path.join(get_default_build_root(), f"{name}_{key}"))
    build.mkdir(parents=True, exist_ok=True)
    target = build / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    with open(build / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel processes build once
        if not target.exists():
            cmd = [_compiler(), "-shared", "-fPIC", "-std=c++17", "-O2", "-fvisibility=hidden",
                   f"-DND_EXTENSION_NAME={name}",
                   *[f"-I{p}" for p in include_paths() + includes], *cflags, *sources,
                   *[f"-L{p}" for p in library_paths()], "-lndcore", f"-Wl,-rpath,{_PACKAGE_DIR}", *ldflags,
                   "-o", str(target) + ".tmp"]
            if verbose:
                print("[cpp_extension]", shlex.join(cmd), flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if verbose and (proc.stdout or proc.stderr):
                print(proc.stdout + proc.stderr, flush=True)
            if proc.returncode != 0:
                raise ExtensionBuildError(
                    f"[cpp_extension] building extension '{name}' failed:\n{_error_summary(proc.stderr)}\n"
                    f"command: {shlex.join(cmd)}")
            os.replace(str(target) + ".tmp", target)
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded[cache_id] = module
    return module


def load_inline(name: str, cpp_sources, functions=None, extra_cflags=None, verbose: bool = False, **kwargs):
    """Like ``load`` with the C++ given as strings; ``functions`` lists names to bind."""
    if isinstance(cpp_sources, str):
        cpp_sources = [cpp_sources]
    text = "#include <nd/extension.h>\n" + "\n".join(cpp_sources)
    if functions:
        names = [functions] if isinstance(functions, str) else list(functions)
        text += "\nPYBIND11_MODULE(ND_EXTENSION_NAME, m) {\n" + "".join(
            f'  m.def("{f}", &{f}, "{f}");\n' for f in names) + "}\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    src_dir = Path(get_default_build_root()) / f"{name}_inline_{digest}"
    src_dir.mkdir(parents=True, exist_ok=True)
    src = src_dir / "main.cpp"
    if not src.exists():
        src.write_text(text)
    return load(name, [src], extra_cflags=extra_cflags, verbose=verbose, **kwargs)
