"""Turns pooled samples into medians and ratios, and renders them as text, Markdown and JSON."""

from __future__ import annotations

import datetime
import os
import platform

from .timing import median, spread

NOISY = 0.15  # IQR / median above this gets a '*' in the tables
COPY = "copy_bw"


def summarize(results: dict) -> dict:
    """Adds median and spread to each cell of run_suite's results."""
    out = {}
    for name, cells in results.items():
        out[name] = {}
        for system, cell in cells.items():
            samples = cell["samples_ns"]
            ok = bool(samples) and not cell["error"]
            out[name][system] = {
                **cell,
                "median_ns": median(samples) if ok else None,
                "iqr_rel": spread(samples) if ok else None,
            }
    return out


def compare(row: dict, baseline: str, others) -> dict:
    """Speed of baseline relative to each other system: other_time / baseline_time (>1: faster)."""
    base = (row.get(baseline) or {}).get("median_ns")
    ratios = {}
    for other in others:
        t = (row.get(other) or {}).get("median_ns")
        ratios[other] = t / base if base and t else None
    times = [(row.get(o) or {}).get("median_ns") for o in others]
    times = [t for t in times if t]
    best = min(times) / base if base and times else None
    return {"ratios": ratios, "vs_best": best}


def fmt_time(ns) -> str:
    if ns is None:
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_bytes(n) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g} B"


def fmt_value(value, unit: str = "ns") -> str:
    """A cell's median in its workload's unit: "ns" (time) or "B" (bytes)."""
    return fmt_bytes(value) if unit == "B" else fmt_time(value)


def fmt_ratio(r) -> str:
    return "n/a" if r is None else f"{r:.3g}x"


def fmt_rate(value, unit: str) -> str:
    return "n/a" if value is None else f"{value / 1e9:.3g} {unit}"


def _cell_text(stats: dict | None, unit: str = "ns") -> str:
    stats = stats or {}
    text = fmt_value(stats.get("median_ns"), unit)
    noisy = (stats.get("iqr_rel") or 0) > NOISY
    return text + ("*" if noisy else "")


def table_rows(summary: dict, names, systems, baseline: str, units=None) -> list[list[str]]:
    """Header plus one row per workload; ratio columns only when the baseline was measured.

    Args:
        units: {workload: unit} for workloads whose samples are not times (e.g. "B").
    """
    units = units or {}
    others = [s for s in systems if s != baseline]
    with_ratios = baseline in systems and others
    header = ["workload", *systems]
    if with_ratios:
        header += [f"vs {o}" for o in others] + ["vs best"]
    rows = [header]
    for name in names:
        row = summary.get(name, {})
        line = [name] + [_cell_text(row.get(s), units.get(name, "ns")) for s in systems]
        if with_ratios:
            cmp = compare(row, baseline, others)
            line += [fmt_ratio(cmp["ratios"][o]) for o in others] + [fmt_ratio(cmp["vs_best"])]
        rows.append(line)
    return rows


def render_text(rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule] + [line(r) for r in rows[1:]])


def render_markdown(rows, preamble) -> str:
    head = "| " + " | ".join(rows[0]) + " |"
    align = "|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|"
    body = ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join([*preamble, "", head, align, *body, ""])


def legend(rows, baseline: str, has_bytes: bool = False) -> str:
    noisy = f"* = noisy (IQR > {NOISY:.0%} of median)"
    if "vs best" not in rows[0]:
        return noisy
    memory = f"; for memory rows (B) >1: {baseline} uses less" if has_bytes else ""
    return (
        f"vs X = X's median / {baseline}'s median (>1: {baseline} faster{memory}); "
        f"vs best = fastest other / {baseline}; {noisy}"
    )


def rate(summary: dict, name: str, system: str, amount) -> float | None:
    """amount per second at the median time (bytes -> B/s, flops -> FLOP/s)."""
    t = (summary.get(name, {}).get(system) or {}).get("median_ns")
    return amount / (t * 1e-9) if t and amount else None


def copy_bandwidth(summary: dict, registry) -> float | None:
    wl = registry.get(COPY)
    return rate(summary, COPY, "numpy", wl.bytes_per_call) if wl else None


def bandwidth_line(summary, registry, name: str, systems, copy_bps) -> str | None:
    wl = registry.get(name)
    if wl is None or name not in summary or not wl.bytes_per_call:
        return None
    parts = []
    for system in systems:
        bps = rate(summary, name, system, wl.bytes_per_call)
        pct = f" ({bps / copy_bps:.0%} of copy)" if bps and copy_bps else ""
        parts.append(f"{system} {fmt_rate(bps, 'GB/s')}{pct}")
    return f"{name} bandwidth: " + ", ".join(parts)


def gflops_line(summary, registry, name: str, systems) -> str | None:
    wl = registry.get(name)
    if wl is None or name not in summary or not wl.flops_per_call:
        return None
    rates = [rate(summary, name, s, wl.flops_per_call) for s in systems]
    parts = [f"{s} {fmt_rate(r, 'GFLOP/s')}" for s, r in zip(systems, rates)]
    return f"{name} throughput: " + ", ".join(parts)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def system_line(name: str, info: dict | None, reason: str | None) -> str:
    if info is None:
        return f"{name}: n/a ({reason})"
    extras = [f"{k}={info[k]}" for k in ("threads", "blas_core", "blas") if info.get(k) is not None]
    return f"{name} {info.get('version')}" + (f" ({', '.join(extras)})" if extras else "")
