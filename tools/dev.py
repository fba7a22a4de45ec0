#!/usr/bin/env python3
"""Set up the workspace and run its jobs, on a machine with only Python 3.11+, pip and a C++
compiler.

    python3 tools/dev.py setup   # .venv with every package installed editable from this repo
    python3 tools/dev.py test    # setup, then opgen --check and every package's tests
                                 # (+ tools/sanitize.py when CI is set or with --sanitize;
                                 #  --no-sanitize skips it)
    python3 tools/dev.py main    # setup, then the main job (examples/main.py)

Internal packages are always installed from their paths with --no-deps: `nd` and `ndonnx` are
unrelated projects on the package index, so pip must never resolve ours by name.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"

# Order matters: each package after the ones it depends on.
PACKAGES = ["ndcore", "ndgrad", "ndnn", "ndoptim", "nddata", "nd"]
NATIVE = {"ndcore"}
EXTERNAL = [
    "numpy>=1.26", "scipy-openblas32>=0.3.30",            # ndcore's runtime
    "scikit-build-core>=0.10", "pybind11>=3.0", "cmake>=3.18", "ninja",  # ndcore's build
    "hatchling",                                           # the pure packages' build (wheels)
    "pytest>=8", "hypothesis>=6", "pyyaml", "scipy",       # tests and opgen
    "scikit-learn",                                        # the main job's embedded digits data
    "pillow",                                              # image interop tests (the seed's PIL snippet)
    "safetensors",                                         # reads nd.save's files in a test
]
OPTIONAL = ["torch==2.13.0"]  # a test reference when the machine has it


def run(*cmd, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def setup() -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run(*pip, *EXTERNAL)
    for extra in OPTIONAL:
        try:
            run(*pip, extra)
        except subprocess.CalledProcessError:
            print(f"note: {extra} unavailable; tests that compare against it will skip", flush=True)
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        env.setdefault("ND_WERROR", "ON")  # CI builds the C++ with -Wall -Wextra -Werror
    for name in PACKAGES:
        path = ROOT / "packages" / name
        extra = ["--no-build-isolation"] if name in NATIVE else []
        run(*pip, "--no-deps", *extra, "-e", path, env=env)


def _wants_sanitize(args: list[str]) -> bool:
    if "--no-sanitize" in args:
        return False
    return "--sanitize" in args or os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def test(args: list[str]) -> int:
    sanitize = _wants_sanitize(args)
    args = [a for a in args if a not in ("--sanitize", "--no-sanitize")]
    setup()
    run(PY, ROOT / "tools" / "opgen" / "opgen.py", "--check")
    targets = [str(p) for p in sorted((ROOT / "packages").glob("*/tests"))] + [str(ROOT / "tools")]
    proc = subprocess.run([str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets, *args], cwd=ROOT)
    rc = proc.returncode
    if rc == 5:  # pytest's "no tests ran" is a failure here, never a pass
        print("error: no tests ran", file=sys.stderr)
        rc = 1
    if sanitize:
        # ASan + UBSan build of ndcore and its C++-heavy tests (~6 min on 2 cores); runs even after a
        # failure above, as a memory error often explains one.
        print("+ tools/sanitize.py (CI is set or --sanitize was given)", flush=True)
        rc = max(rc, subprocess.run([sys.executable, str(ROOT / "tools" / "sanitize.py")], cwd=ROOT).returncode)
    return rc


def main_job(args: list[str]) -> int:
    setup()
    return subprocess.run([str(PY), str(ROOT / "examples" / "main.py"), *args], cwd=ROOT).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("setup", "test", "main"):
        print(__doc__)
        return 2
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "setup":
        setup()
        return 0
    return test(rest) if cmd == "test" else main_job(rest)


if __name__ == "__main__":
    sys.exit(main())
