#!/usr/bin/env python3
"""Build ndcore with AddressSanitizer + UBSan and run a core slice of its tests against it.

    python3 tools/sanitize.py                # configure/build build/sanitize, then the tests
    python3 tools/sanitize.py --build-only
    python3 tools/sanitize.py -- -k matmul   # arguments after -- go to pytest

The build lives in build/sanitize (cmake + ninja from .venv, ND_SANITIZE=ON, -O0 -g1) and never
touches the editable install. Its _C and libndcore plus a copy of ndcore's Python sources form
build/sanitize/site, which the test process imports first: a sitecustomize there removes the
editable install's import hook, so `import ndcore` loads the sanitized libraries in pytest and
in any Python subprocess a test starts. libasan/libubsan are preloaded (Python itself is not
instrumented), leak detection is off (Python keeps objects alive until exit by design), and
every sanitizer report goes to a log file, so a report from a subprocess whose output a test
captures is still seen.

Exits non-zero when the build or a test fails, or when any process printed a sanitizer report;
the reports are shown with their stacks. Needs `python3 tools/dev.py setup` first (for .venv).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
SRC = ROOT / "packages" / "ndcore"
BUILD = ROOT / "build" / "sanitize"
SITE = BUILD / "site"
LOGS = BUILD / "logs"

# Every test file that drives C++ code: ops over every dtype and sample, views and indexing,
# error paths, reductions, sort/shape kernels, linalg, NumPy/DLPack interop, device backends,
# the fused LSTM loops, nd's SGEMM and the matmul split paths, pow and the binder's call paths.
# Left out: test_cpp_extension (compiles extensions, unsanitized), test_multiprocessing and
# test_tensor_str (Python around the same entry points). About 3 min on 2 cores, after a cold
# -O0 build of about 3.5 min; `-- -k <expr>` narrows it.
TESTS = ["test_ops.py", "test_views_indexing.py", "test_errors.py", "test_reductions.py", "test_sort_shape.py",
         "test_linalg.py", "test_creation_interop.py", "test_devices.py", "test_cat_gather_fast.py", "test_nn_norm_loss.py",
         "test_rnn_kernels.py", "test_sgemm.py", "test_matmul_paths.py", "test_pow_scalar.py", "test_call_paths.py"]

ASAN_OPTIONS = {
    "detect_leaks": "0",                # CPython keeps objects alive until exit by design
    "allocator_may_return_null": "1",   # huge requests raise MemoryError as in normal builds
    "detect_odr_violation": "0",        # pybind11 type info is legitimately duplicated across modules
    "verify_asan_link_order": "0",      # the runtime comes from LD_PRELOAD, not the uninstrumented python
    "halt_on_error": "1",
    "abort_on_error": "0",
    "print_summary": "1",
}
UBSAN_OPTIONS = {"halt_on_error": "1", "print_stacktrace": "1", "print_summary": "1"}
# What a sanitizer writes at the start of a report.
REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error: ")

SITECUSTOMIZE = '''\
"""Written by tools/sanitize.py: import ndcore from this directory, not the editable install."""
import sys

sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__name__.startswith("ScikitBuild")]
'''


def run(*cmd, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def tool(name: str) -> str:
    path = VENV / "bin" / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        sys.exit(f"error: {name} not found; run `python3 tools/dev.py setup` first")
    return found


def build(jobs: int) -> None:
    pybind11_dir = subprocess.run([str(PY), "-m", "pybind11", "--cmakedir"], check=True, capture_output=True,
                                  text=True).stdout.strip()
    run(tool("cmake"), "-S", SRC, "-B", BUILD, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={tool('ninja')}",
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        # -O0 builds 4x faster than -O1 under ASan (sort.cpp: 15 s vs 68 s) and the tests, dominated
        # by Python overhead, slow down only ~15%; -g1 keeps file:line in the stacks.
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -g1 -DNDEBUG",
        "-DND_SANITIZE=ON", "-DND_WERROR=OFF", f"-DPython_EXECUTABLE={PY}", f"-Dpybind11_DIR={pybind11_dir}",
        f"-DCMAKE_INSTALL_PREFIX={SITE}")
    run(tool("cmake"), "--build", BUILD, "-j", str(jobs))
    # A fresh site dir: the installed libraries (as the wheel lays them out) + the Python sources.
    shutil.rmtree(SITE, ignore_errors=True)
    run(tool("cmake"), "--install", BUILD, "--prefix", SITE)
    shutil.copytree(SRC / "src" / "ndcore", SITE / "ndcore", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (SITE / "sitecustomize.py").write_text(SITECUSTOMIZE)


def runtime_libs() -> list[str]:
    cache = (BUILD / "CMakeCache.txt").read_text()
    match = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.+)$", cache, re.M)
    cxx = match.group(1).strip() if match else "c++"
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        path = subprocess.run([cxx, f"-print-file-name={name}"], check=True, capture_output=True,
                              text=True).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            sys.exit(f"error: {cxx} does not know {name}; install the compiler's sanitizer runtimes")
        libs.append(os.path.realpath(path))
    return libs


def sanitized_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SITE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["LD_PRELOAD"] = " ".join(runtime_libs() + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else []))
    env["ASAN_OPTIONS"] = ":".join(f"{k}={v}" for k, v in {**ASAN_OPTIONS, "log_path": LOGS / "asan"}.items())
    env["UBSAN_OPTIONS"] = ":".join(f"{k}={v}" for k, v in {**UBSAN_OPTIONS, "log_path": LOGS / "ubsan"}.items())
    env["PYTHONMALLOC"] = "malloc"  # Python objects in ASan's heap too: a binding's use-after-free shows
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("SKBUILD_EDITABLE_SKIP", None)
    return env


# Reads 64 bytes from a 16-byte tensor storage: must produce a heap-buffer-overflow report.
SELF_CHECK = """
import ctypes, ndcore
t = ndcore.zeros(4)
buf = ctypes.create_string_buffer(64)
ctypes.memmove(buf, t.data_ptr(), 64)
"""


def self_check(env) -> None:
    """Fails unless the test interpreter loads the sanitized ndcore and a memory error is reported."""
    out = subprocess.run([str(PY), "-c", "import ndcore, ndcore._C as c; print(c.__file__); print(ndcore.__file__)"],
                         env=env, cwd=ROOT, capture_output=True, text=True)
    paths = out.stdout.split()
    if out.returncode != 0 or len(paths) != 2 or not all(Path(p).is_relative_to(SITE) for p in paths):
        sys.exit(f"error: the test interpreter does not import the sanitized ndcore from {SITE}:\n"
                 f"{out.stdout}{out.stderr}")
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    subprocess.run([str(PY), "-c", SELF_CHECK], env=env, cwd=ROOT, capture_output=True)
    if not any("heap-buffer-overflow" in text for text in reports("")):
        sys.exit("error: AddressSanitizer did not report a deliberate overflow; the sanitized run would prove nothing")
    shutil.rmtree(LOGS)


def reports(output: str) -> list[str]:
    found = [p.read_text(errors="replace") for p in sorted(LOGS.glob("*")) if p.is_file()]
    if REPORT.search(output) and not found:
        found.append(output)  # printed to a captured stream rather than the log (should not happen)
    return found


def test(pytest_args: list[str]) -> int:
    env = sanitized_env()
    self_check(env)
    LOGS.mkdir(parents=True)
    targets = [str(SRC / "tests" / t) for t in TESTS]
    cmd = [str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets, *pytest_args]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    rc = proc.wait()
    found = reports("".join(lines))
    for text in found:
        print("\n==== sanitizer report " + "=" * 60 + "\n" + text, flush=True)
    if found:
        print(f"error: {len(found)} sanitizer report(s); reproduce with the environment above:\n"
              f"  PYTHONPATH={SITE} LD_PRELOAD='{env['LD_PRELOAD']}' ASAN_OPTIONS='{env['ASAN_OPTIONS']}' "
              f"UBSAN_OPTIONS='{env['UBSAN_OPTIONS']}' {PY} -m pytest <test id>", file=sys.stderr)
        return 1
    if rc == 5:
        print("error: no tests ran", file=sys.stderr)
        return 1
    return rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-only", action="store_true", help="build build/sanitize and its site dir, no tests")
    parser.add_argument("--no-build", action="store_true", help="test the existing build/sanitize as it is")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    if sys.platform != "linux":
        print("sanitize: skipped, the sanitizer job runs on Linux only")
        return 0
    if not PY.exists():
        sys.exit("error: .venv is missing; run `python3 tools/dev.py setup` first")
    t0 = time.monotonic()
    if not args.no_build:
        build(args.jobs)
    t1 = time.monotonic()
    print(f"sanitize: build took {t1 - t0:.0f}s", flush=True)
    if args.build_only:
        return 0
    rc = test(args.pytest_args)
    print(f"sanitize: tests took {time.monotonic() - t1:.0f}s (exit status {rc})", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
