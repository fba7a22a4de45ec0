"""Fixed costs: per-op dispatch latency, import time, and the copy-bandwidth yardstick."""

import operator
import os
import subprocess
import sys
import tempfile
import time

from ..registry import same_op, workload


def _scalars(ctx):
    return ctx.randn(1), ctx.randn(1)


# partial(operator.add, a, b) keeps the harness's own per-call cost to a C-level call.
same_op("add_scalar_latency", operator.add, _scalars)


def _run_import(module: str) -> int:
    # A neutral cwd, so a source checkout in the current directory cannot shadow the install.
    cmd = [sys.executable, "-c", f"import {module}"]
    t0 = time.perf_counter_ns()
    proc = subprocess.run(cmd, cwd=tempfile.gettempdir(), env=os.environ, capture_output=True)
    elapsed = time.perf_counter_ns() - t0
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"`import {module}` failed: {' '.join(tail)}")
    return elapsed


@workload("import_time", "nd", "numpy", "torch", custom=True)
def _import_time(ctx):
    # No warm-up import: this worker has just imported the module, so its files are cached.
    return [_run_import(ctx.system.module) for _ in range(ctx.plan.import_runs)]


COPY_BYTES = 100_000_000


@workload("copy_bw", "numpy", bytes_per_call=2 * COPY_BYTES, hidden=True)
def _copy_bw(ctx):
    np = ctx.lib
    src = np.ones(COPY_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    dst.fill(0)  # fault the pages in now, not inside the timed copies
    return lambda: np.copyto(dst, src)
