"""Peak memory of a training step: a 20-layer MLP (Linear(1024, 1024) + ReLU, batch 256, float32).

Each request starts a fresh interpreter per system, so neither the worker's input cache nor an
earlier workload's freed blocks (nd's caching allocator keeps them) are counted. The probe
imports the library and runs one tiny training step (one-time library state such as BLAS or
oneDNN buffers, thread pools and lazily loaded code is then not counted), records the resident
set (RSS) as its baseline, builds the model and the optimizer, runs 3 warm-up steps (forward,
MSE loss, backward, optimizer step, zero_grad(set_to_none=True)), resets the kernel's
high-water mark (writing "5" to /proc/self/clear_refs sets VmHWM to the current RSS) and runs
one more step. The figure is VmHWM - baseline: everything the process holds at the step's peak,
i.e. parameters, optimizer state, gradients, saved activations, and whatever the allocators keep
cached (nd's block cache, glibc's free lists). Memory either allocator took from the OS and has
not returned counts, whoever holds it, so the figure is fair to both. Where clear_refs cannot be
written, the peak over the whole run (ru_maxrss) is used instead; the warm-up steps are the same
step, so the peak is the same unless the import itself peaked higher.

What to expect: the least a step can hold is parameters + gradients + one layer's transients
(80 + 80 + ~3 MB with SGD), since backward frees each layer's activations as its gradients
appear. nd holds ~180 MB: its cache cuts blocks of 1 MB and up from shared 4 MB+ segments and
merges freed neighbours (ndcore's Note [Caching large host blocks]), so the activations freed
during backward serve the gradients, and each weight's gradient becomes `.grad` without a copy.
torch's figure (glibc, which coalesces free neighbours) varies between runs, ~180-230 MB.

Results are bytes (unit="B"): the `vs torch` column is torch's bytes / nd's (>1: nd uses less).
"""

import importlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from ..registry import workload

LAYERS, WIDTH, BATCH, WARMUP = 20, 1024, 256, 3
_BENCH_DIR = str(Path(__file__).resolve().parents[2])  # tools/bench, where benchlib lives


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _build(system: str, optimizer: str, layers: int = LAYERS, width: int = WIDTH, batch: int = BATCH):
    """One training step of a seeded MLP as a callable, for `system`."""
    if system == "nd":
        import ndcore as lib
        import ndgrad  # noqa: F401  (registers the autograd recorder)
        import ndnn as nn
        import ndoptim as optim
    else:
        import torch as lib
        import torch.nn as nn
        import torch.optim as optim

    functional = nn.functional
    lib.manual_seed(0)
    mods = []
    for _ in range(layers):
        mods += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*mods)
    make_opt = optim.SGD if optimizer == "sgd" else optim.Adam
    opt = make_opt(model.parameters(), lr=1e-3)
    x, y = lib.randn(batch, width), lib.randn(batch, width)

    def step():
        loss = functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def probe(system: str, optimizer: str, threads: int | None = None) -> dict:
    """Measures one step's peak in this (fresh) interpreter.

    Args:
        system: "nd" or "torch".
        optimizer: "sgd" or "adam".
        threads: the library's thread count, or None for its default.

    Returns:
        {"peak_bytes": VmHWM during the step - baseline RSS, "steady_bytes": RSS between steps -
        baseline RSS, "method": "VmHWM" or "ru_maxrss"}.
    """
    if threads:
        importlib.import_module("ndcore" if system == "nd" else "torch").set_num_threads(threads)
    # A tiny step first: the libraries' one-time state (BLAS/oneDNN buffers, thread pools, lazily
    # loaded code) belongs in the baseline, not in the step's memory.
    _build(system, optimizer, layers=1, width=32, batch=4)()
    baseline = _rss_bytes()
    step = _build(system, optimizer)
    for _ in range(WARMUP):
        step()
    steady = _rss_bytes()
    exact = _reset_hwm()
    step()
    if exact:
        peak = _hwm_bytes()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": peak - baseline, "steady_bytes": steady - baseline,
            "method": "VmHWM" if exact else "ru_maxrss"}


def run_probe(system: str, optimizer: str, threads: int | None = None) -> dict:
    """probe() in a fresh interpreter, at the worker's thread count (allocator arenas and
    per-thread buffers depend on it)."""
    code = (f"import sys, json; sys.path.insert(0, {_BENCH_DIR!r}); "
            f"from benchlib.workloads.memory import probe; "
            f"print(json.dumps(probe({system!r}, {optimizer!r}, {threads!r})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tempfile.gettempdir(), env=os.environ,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"memory probe ({system}) failed: {' '.join(tail)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _peak(optimizer: str):
    def setup(ctx):
        threads = ctx.system.info().get("threads")
        return [run_probe(ctx.system.name, optimizer, threads)["peak_bytes"]]

    return setup


workload("mlp20_train_step_peak_mem_sgd", "nd", "torch", custom=True, unit="B")(_peak("sgd"))
workload("mlp20_train_step_peak_mem_adam", "nd", "torch", custom=True, unit="B")(_peak("adam"))
