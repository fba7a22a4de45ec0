"""Round-robin scheduling of (workload, system) requests and collection of their samples.

A runner is anything with `run(system, workload) -> answer dict` plus `info` and `unavailable`
dicts: WorkerPool (one subprocess per system) for real runs, InProcessRunner for tests.
"""

from __future__ import annotations

import sys
import time

from . import timing
from .registry import Context, load_all
from .systems import SYSTEMS
from .worker import measure


def rotated(systems, r: int) -> list:
    """The system order of round r: each round starts one system later."""
    k = r % len(systems) if systems else 0
    return list(systems[k:]) + list(systems[:k])


def schedule(workloads, systems, rounds: int):
    """Yields (round, workload, system), interleaving systems so noise hits them alike.

    Rounds are the outer loop, so a burst of machine noise lands in one round of many
    workloads rather than in every sample of one. Hidden workloads (the copy-bandwidth
    yardstick) run on their own systems whatever was selected.
    """
    for r in range(rounds):
        for wl in workloads:
            chosen = list(wl.impls) if wl.hidden else list(systems)
            for system in rotated(chosen, r):
                yield r, wl, system


def empty_cell() -> dict:
    return {"samples_ns": [], "reps": [], "error": None}


class _Log:
    """Reports each failure once on stderr; a missing system is one line, not one per workload."""

    def __init__(self, stream):
        self.stream = stream
        self.missing = set()

    def failure(self, system: str, workload: str, reason: str) -> None:
        if reason.startswith("not available"):
            if system not in self.missing:
                self.missing.add(system)
                print(f"[bench] {system}: n/a for all workloads ({reason})", file=self.stream)
            return
        print(f"[bench] {system}/{workload}: n/a ({reason})", file=self.stream)

    def progress(self, text: str) -> None:
        print(f"[bench] {text}", file=self.stream, flush=True)


def run_suite(runner, workloads, systems, rounds: int, stream=None) -> dict:
    """Runs every request; returns {workload: {system: cell}} with samples pooled over rounds."""
    log = _Log(stream or sys.stderr)
    results = {wl.name: {} for wl in workloads}
    start, current = time.monotonic(), 0
    for r, wl, system in schedule(workloads, systems, rounds):
        if r != current:
            current = r
            log.progress(f"round {r}/{rounds} done after {time.monotonic() - start:.0f} s")
        cell = results[wl.name].setdefault(system, empty_cell())
        if cell["error"]:
            continue  # failures are deterministic enough; do not pay for them every round
        answer = _ask(runner, wl, system)
        if "error" in answer:
            cell["error"] = answer["error"]
            log.failure(system, wl.name, answer["error"])
        else:
            cell["samples_ns"].extend(answer["samples_ns"])
            cell["reps"].append(answer["reps"])
    log.progress(f"all {rounds} rounds done after {time.monotonic() - start:.0f} s")
    return results


def _ask(runner, wl, system: str) -> dict:
    if system not in wl.impls:
        return {"workload": wl.name, "error": f"no {system} version of {wl.name}"}
    return runner.run(system, wl.name)


class InProcessRunner:
    """Measures in this process (no isolation); for tests and debugging only."""

    def __init__(self, plan, systems=SYSTEMS, timer=timing.time_callable):
        self.plan, self.systems, self.timer = plan, systems, timer
        self.registry = load_all()
        self.contexts: dict[str, Context] = {}
        self.info: dict[str, dict] = {}
        self.unavailable: dict[str, str] = {}

    def _context(self, system: str):
        if system not in self.contexts and system not in self.unavailable:
            try:
                adapter = self.systems[system]()
                adapter.load()
                self.info[system] = adapter.info()
                self.contexts[system] = Context(adapter, self.plan, {})
            except Exception as exc:
                self.unavailable[system] = f"{type(exc).__name__}: {exc}"
        return self.contexts.get(system)

    def run(self, system: str, workload: str) -> dict:
        ctx = self._context(system)
        if ctx is None:
            return {"workload": workload, "error": f"not available: {self.unavailable[system]}"}
        return measure(self.registry, workload, ctx, timer=self.timer)

    def close(self) -> None:
        self.contexts.clear()
