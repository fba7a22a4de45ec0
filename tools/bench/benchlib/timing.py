"""Adaptive timing of a zero-argument callable, and the statistics used on its samples."""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass

_clock = time.perf_counter_ns


@dataclass(frozen=True)
class TimingPlan:
    """How long to warm up and sample; all durations in seconds.

    Args:
        target_s: wall time one sample should take; repetitions are chosen to reach it.
        samples: samples per request (fewer when a single call is too slow, see max_s).
        warmup_s: minimum warm-up time. It also outlasts the spin-wait of the
            previous worker's idle OpenMP/OpenBLAS threads on this small machine.
        max_s: soft cap on the sampling time of one request.
        import_runs: fresh interpreters started per request by the import_time workload.
    """

    target_s: float = 0.12
    samples: int = 5
    warmup_s: float = 0.1
    max_s: float = 2.0
    import_runs: int = 3


DEFAULT_PLAN = TimingPlan()
QUICK_PLAN = TimingPlan(target_s=0.03, samples=3, warmup_s=0.05, max_s=0.5, import_runs=1)


def _warm_up(fn, warmup_ns: int) -> int:
    """Runs fn until warmup_ns has passed; returns the fastest call seen (ns)."""
    start = _clock()
    best = None
    while True:
        t0 = _clock()
        fn()
        t1 = _clock()
        best = t1 - t0 if best is None else min(best, t1 - t0)
        if t1 - start >= warmup_ns:
            return max(best, 1)


def _sample(fn, reps: int, clock=_clock) -> float:
    loop = itertools.repeat(None, reps)
    t0 = clock()
    for _ in loop:
        fn()
    return (clock() - t0) / reps


def plan_reps(call_ns: float, plan: TimingPlan) -> tuple[int, int]:
    """Returns (repetitions per sample, samples) for a call of about call_ns."""
    reps = max(1, int(plan.target_s * 1e9 / call_ns))
    sample_ns = reps * call_ns
    # A slow call (say a naive matmul) keeps at least one sample, at most plan.samples.
    samples = max(1, min(plan.samples, int(plan.max_s * 1e9 / sample_ns)))
    return reps, samples


def time_callable(fn, plan: TimingPlan = DEFAULT_PLAN) -> dict:
    """Warms fn up, then times it; returns per-call sample times in ns and the rep count."""
    call_ns = _warm_up(fn, int(plan.warmup_s * 1e9))
    reps, samples = plan_reps(call_ns, plan)
    times = [_sample(fn, reps) for _ in range(samples)]
    return {"samples_ns": times, "reps": reps}


def loop_overhead_ns() -> float:
    """Per-call cost of the timing loop itself with an empty callable.

    Recorded (not subtracted) so latency numbers can be read against it.
    """
    noop = lambda: None  # noqa: E731
    _sample(noop, 10_000)
    return min(_sample(noop, 100_000) for _ in range(3))


def median(values):
    return statistics.median(values) if values else None


def spread(values) -> float | None:
    """Interquartile range relative to the median; a noise indicator."""
    if len(values) < 4:
        return None
    q1, _, q3 = statistics.quantiles(values, n=4)
    mid = statistics.median(values)
    return (q3 - q1) / mid if mid else None
