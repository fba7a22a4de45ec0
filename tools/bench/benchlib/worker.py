"""Child process that measures one system: reads workload names, answers with JSON lines.

Protocol (one JSON object per line on the original stdout):
  first line   {"ready": true, "info": {...}} or {"ready": false, "error": "..."}
  per request  {"workload": name, "samples_ns": [...], "reps": n}
               or {"workload": name, "error": "..."}
With --serve the worker keeps answering names read from stdin, one per line, so each library is
imported once per worker; with --workload it answers that one and exits (handy for debugging).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import sys

from . import timing
from .registry import Context, load_all
from .systems import SYSTEMS


def _claim_stdout():
    """Keeps the real stdout for the protocol and points fd 1 at stderr.

    A library printing to stdout (from Python or C) then cannot corrupt the JSON stream.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return proto


def _send(proto, obj) -> None:
    proto.write(json.dumps(obj) + "\n")
    proto.flush()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _start(system_name: str, threads: int | None):
    system = SYSTEMS[system_name]()
    system.load()
    if threads:
        system.set_threads(threads)
    info = system.info()
    info["loop_overhead_ns"] = timing.loop_overhead_ns()
    return system, info


def measure(registry, name: str, ctx: Context, timer=timing.time_callable) -> dict:
    """Runs one workload in this process and returns its protocol answer.

    Args:
        timer: `timer(fn, plan) -> {"samples_ns", "reps"}`; tests pass a fake one.
    """
    wl = registry.get(name)
    impl = wl.impls.get(ctx.system.name) if wl else None
    if impl is None:
        return {"workload": name, "error": f"no {ctx.system.name} version of {name}"}
    ctx.begin()
    try:
        if wl.custom:
            return {"workload": name, "samples_ns": impl(ctx), "reps": 1}
        result = timer(impl(ctx), ctx.plan)
        return {"workload": name, **result}
    except Exception as exc:  # any library failure is a result to report, not a crash
        return {"workload": name, "error": _reason(exc)}
    finally:
        gc.collect()  # drop this workload's arrays before the next one allocates


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--system", required=True, choices=sorted(SYSTEMS))
    p.add_argument("--plan", default="{}", help="TimingPlan fields as JSON")
    p.add_argument("--threads", type=int, default=None)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", action="store_true")
    mode.add_argument("--workload")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    proto = _claim_stdout()
    faulthandler.enable()  # a crashing kernel then leaves a traceback for the parent to quote
    try:
        system, info = _start(args.system, args.threads)
        registry = load_all()
    except Exception as exc:
        _send(proto, {"ready": False, "error": _reason(exc)})
        return 0
    _send(proto, {"ready": True, "info": info})
    ctx = Context(system, timing.TimingPlan(**json.loads(args.plan)), {})
    names = sys.stdin if args.serve else [args.workload]
    for line in names:
        name = line.strip()
        if name:
            _send(proto, measure(registry, name, ctx))
    return 0
