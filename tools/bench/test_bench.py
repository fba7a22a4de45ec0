"""Checks the harness arithmetic and formatting with a fake clock; asserts no real timings."""

import io
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")
# benchlib sits beside this file; works under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import cli, harness, report, timing  # noqa: E402
from benchlib.systems import NumpySystem  # noqa: E402

WORKLOAD = "add_scalar_latency"


class FakeNd(NumpySystem):
    """NumPy arrays under the name nd, so ratios can be checked without ndcore."""

    name = "nd"


class FakeTimer:
    """Hands out scripted per-call samples (ns), one list per request, per system."""

    def __init__(self, script):
        self.script = {k: list(v) for k, v in script.items()}
        self.system = None

    def __call__(self, fn, plan):
        fn()  # the real workload still runs once, so its setup and call are exercised
        return {"samples_ns": self.script[self.system].pop(0), "reps": 7}


class ScriptedRunner(harness.InProcessRunner):
    def run(self, system, workload):
        self.timer.system = system
        return super().run(system, workload)


def _run(argv, script, systems):
    timer = FakeTimer(script)
    runner = ScriptedRunner(timing.QUICK_PLAN, systems=systems, timer=timer)
    out = io.StringIO()
    rc = cli.main(argv, runner=runner, out=out)
    return rc, out.getvalue(), timer


def test_numpy_only_pools_samples_over_rounds(tmp_path):
    script = {"numpy": [[1000, 9000], [2000], [3000, 4000]]}
    argv = ["--only", f"^{WORKLOAD}$", "--systems", "numpy", "--rounds", "3",
            "--json", str(tmp_path / "b.json")]
    rc, text, timer = _run(argv, script, {"numpy": NumpySystem})
    assert rc == 0 and timer.script["numpy"] == []
    doc = json.loads((tmp_path / "b.json").read_text())
    cell = doc["workloads"][WORKLOAD]["systems"]["numpy"]
    assert cell["samples_ns"] == [1000, 9000, 2000, 3000, 4000]
    assert cell["median_ns"] == 3000 and cell["reps"] == [7, 7, 7]
    assert "copy_bw" not in doc["workloads"]  # no memory-bound workload chosen
    row = next(line for line in text.splitlines() if line.startswith(WORKLOAD))
    assert row.split()[1:3] == ["3", "µs*"]  # wide spread is flagged as noisy
    assert "vs best" not in text  # the baseline (nd) was not measured


def test_ratios_against_baseline(tmp_path):
    script = {
        "nd": [[2900, 3000], [3100], [3000, 3050]],
        "numpy": [[6000], [6000, 6100], [5900]],
    }
    argv = ["--only", f"^{WORKLOAD}$", "--systems", "nd,numpy", "--rounds", "3",
            "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")]
    rc, text, _ = _run(argv, script, {"nd": FakeNd, "numpy": NumpySystem})
    assert rc == 0
    entry = json.loads((tmp_path / "b.json").read_text())["workloads"][WORKLOAD]
    assert entry["ratios"] == {"numpy": 2.0} and entry["vs_best"] == 2.0
    row = next(line for line in text.splitlines() if line.startswith(WORKLOAD))
    assert row.split() == [WORKLOAD, "3", "µs", "6", "µs", "2x", "2x"]
    md = (tmp_path / "b.md").read_text()
    assert f"| {WORKLOAD} | 3 µs | 6 µs | 2x | 2x |" in md
    assert "| workload | nd | numpy | vs numpy | vs best |" in md
    assert "cores" in md


def test_missing_system_is_na_not_a_crash(capsys):
    class Broken(NumpySystem):
        name = "nd"

        def load(self):
            raise ImportError("no ndcore here")

    script = {"numpy": [[500]]}
    argv = ["--only", f"^{WORKLOAD}$", "--systems", "nd,numpy", "--rounds", "1"]
    rc, text, _ = _run(argv, script, {"nd": Broken, "numpy": NumpySystem})
    assert rc == 0
    row = next(line for line in text.splitlines() if line.startswith(WORKLOAD))
    assert row.split() == [WORKLOAD, "n/a", "500", "ns", "n/a", "n/a"]
    assert "no ndcore here" in capsys.readouterr().err


def test_round_robin_rotates_system_order():
    class W:
        name, hidden, impls = "w", False, {}

    order = [s for _, _, s in harness.schedule([W], ["nd", "numpy", "torch"], 3)]
    assert order == ["nd", "numpy", "torch", "numpy", "torch", "nd", "torch", "nd", "numpy"]


@pytest.mark.parametrize(
    "ns, text",
    [(None, "n/a"), (12.5, "12.5 ns"), (1234, "1.23 µs"), (4.56e6, "4.56 ms"), (2.5e9, "2.5 s")],
)
def test_fmt_time(ns, text):
    assert report.fmt_time(ns) == text


@pytest.mark.parametrize(
    "value, unit, text",
    [(None, "B", "n/a"), (512, "B", "512 B"), (2.0e6, "B", "2 MB"), (203.4e6, "B", "203 MB"), (1234, "ns", "1.23 µs")],
)
def test_fmt_value_by_unit(value, unit, text):
    assert report.fmt_value(value, unit) == text


def test_plan_reps_targets_sample_length():
    plan = timing.TimingPlan(target_s=0.1, samples=5, max_s=2.0)
    assert timing.plan_reps(1e6, plan) == (100, 5)  # 1 ms calls: 100 per 0.1 s sample
    assert timing.plan_reps(3e9, plan) == (1, 1)  # a 3 s call still yields one sample
