"""Command line of tools/bench/run.py: select workloads, run them, print and save the report."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict

from . import harness, report, timing
from .registry import load_all
from .systems import ALL, OPENBLAS_ENV_UNSET


def _systems(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in ALL]
    if unknown or not names:
        choices = ",".join(ALL)
        raise argparse.ArgumentTypeError(f"unknown system(s) {unknown}; choose from {choices}")
    return list(dict.fromkeys(names))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="run.py", description="Benchmark nd against NumPy and torch.")
    p.add_argument("--quick", action="store_true", help="shorter samples and fewer rounds")
    p.add_argument("--rounds", type=int, help="round-robin rounds (default 3, quick 2)")
    p.add_argument("--only", metavar="REGEX", help="run workloads whose name matches (re.search)")
    p.add_argument("--systems", type=_systems, default=list(ALL), help="comma list (default: all)")
    p.add_argument("--baseline", default="nd", help="system the ratios are computed for")
    p.add_argument("--threads", type=int, default=None, help="set every system's thread count")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before a kill")
    p.add_argument("--json", metavar="OUT.json", help="write all samples and metadata here")
    p.add_argument("--markdown", metavar="OUT.md", help="write a README-ready table here")
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in the JSON
    return args


def select(registry, only: str | None) -> list:
    """Chosen table workloads, then the hidden yardsticks.

    The copy-bandwidth yardstick only means something beside memory-bound workloads, so it
    runs only when one of those (a workload with bytes_per_call) was chosen.
    """
    pattern = re.compile(only) if only else None
    chosen = [w for w in registry.values() if not pattern or pattern.search(w.name)]
    shown = [w for w in chosen if not w.hidden]
    hidden = [w for w in registry.values() if w.hidden]
    return shown + hidden if any(w.bytes_per_call for w in shown) else shown


def _make_runner(args, plan):
    from .pool import WorkerPool

    return WorkerPool(plan, threads=args.threads, timeout_s=args.timeout)


def measure(args, runner=None) -> dict:
    """Runs the selected workloads and returns the report document (what --json writes)."""
    registry = load_all()
    workloads = select(registry, args.only)
    if not workloads:
        raise SystemExit(f"[bench] no workload matches {args.only!r}")
    plan = timing.QUICK_PLAN if args.quick else timing.DEFAULT_PLAN
    rounds = args.rounds or (2 if args.quick else 3)
    runner = runner or _make_runner(args, plan)
    try:
        results = harness.run_suite(runner, workloads, args.systems, rounds)
    finally:
        runner.close()
    return _document(args, registry, workloads, report.summarize(results), runner, plan, rounds)


def _document(args, registry, workloads, summary, runner, plan, rounds) -> dict:
    others = [s for s in args.systems if s != args.baseline]
    doc = {
        "meta": {**report.machine_info(), "argv": args.argv, "rounds": rounds,
                 "plan": asdict(plan), "baseline": args.baseline,
                 "child_env_unset": list(OPENBLAS_ENV_UNSET)},
        "systems": {s: {"info": runner.info.get(s), "error": runner.unavailable.get(s)}
                    for s in sorted(set(args.systems) | set(runner.info))},
        "copy_bandwidth_Bps": report.copy_bandwidth(summary, registry),
        "workloads": {},
    }
    for wl in workloads:
        row = summary.get(wl.name, {})
        doc["workloads"][wl.name] = {
            "hidden": wl.hidden, "unit": wl.unit, "bytes_per_call": wl.bytes_per_call,
            "flops_per_call": wl.flops_per_call, "systems": row,
            **report.compare(row, args.baseline, others),
        }
    return doc


def _preamble(doc, systems) -> list[str]:
    meta = doc["meta"]
    lines = [f"{meta['date']}, {meta['cpu']}, {meta['cores']} cores, Python {meta['python']}"]
    for s in systems:
        entry = doc["systems"].get(s, {})
        lines.append(report.system_line(s, entry.get("info"), entry.get("error")))
    if report.COPY in doc["workloads"]:
        copy = report.fmt_rate(doc["copy_bandwidth_Bps"], "GB/s")
        lines.append(f"copy bandwidth (numpy.copyto of 1e8 B, read+write): {copy}")
    return lines


def _footer(doc, registry, systems) -> list[str]:
    summary = {n: w["systems"] for n, w in doc["workloads"].items()}
    copy = doc["copy_bandwidth_Bps"]
    lines = [report.bandwidth_line(summary, registry, "add_1e7", systems, copy)]
    matmuls = [n for n in summary if n.startswith("matmul_")]
    lines += [report.gflops_line(summary, registry, n, systems) for n in matmuls]
    return [line for line in lines if line]


def render(doc, args) -> tuple[str, str]:
    """Returns (terminal text, Markdown) for a report document."""
    registry = load_all()
    shown = [n for n, w in doc["workloads"].items() if not w["hidden"]]
    summary = {n: w["systems"] for n, w in doc["workloads"].items()}
    units = {n: w.get("unit", "ns") for n, w in doc["workloads"].items()}
    rows = report.table_rows(summary, shown, args.systems, args.baseline, units)
    pre, foot = _preamble(doc, args.systems), _footer(doc, registry, args.systems)
    legend = report.legend(rows, args.baseline, any(units[n] == "B" for n in shown))
    text = "\n".join([*pre, "", report.render_text(rows), "", legend, *foot])
    md_pre = ["### nd benchmarks", ""] + [f"- {line}" for line in pre]
    md_post = ["", f"{legend}.", ""] + [f"- {line}" for line in foot]
    markdown = report.render_markdown(rows, md_pre) + "\n".join(md_post) + "\n"
    return text, markdown


def main(argv=None, runner=None, out=sys.stdout) -> int:
    args = parse_args(argv)
    if args.list:
        for wl in load_all().values():
            hidden = "  (hidden)" if wl.hidden else ""
            print(f"{wl.name:22} {', '.join(wl.impls)}{hidden}", file=out)
        return 0
    doc = measure(args, runner)
    text, markdown = render(doc, args)
    print(text, file=out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown)
    cells = [c for w in doc["workloads"].values() for c in w["systems"].values()]
    measured = any(c.get("median_ns") for c in cells)
    return 0 if measured else 1
