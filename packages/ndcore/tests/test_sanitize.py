"""tools/sanitize.py and its hook in tools/dev.py, without building anything: the report
detection, the import redirection and when CI runs the sanitizer step. The sanitized build
itself runs in CI (tools/dev.py test with CI set) and checks itself with a deliberate overflow."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_nd_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sanitize = _load("sanitize")
dev = _load("dev")


@pytest.mark.parametrize("line", [
    "==123==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000010",
    "/src/kernels/reduce.cpp:42:7: runtime error: signed integer overflow: 2147483647 + 1",
    "==9==ERROR: UndefinedBehaviorSanitizer: SEGV on unknown address",
])
def test_report_lines_are_detected(line):
    assert sanitize.REPORT.search(line)


@pytest.mark.parametrize("line", ["6286 passed in 41.22s", "test_errors.py::test_runtime_error PASSED"])
def test_ordinary_output_is_not_a_report(line):
    assert not sanitize.REPORT.search(line)


def test_reports_come_from_log_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sanitize, "LOGS", tmp_path)
    assert sanitize.reports("all passed") == []
    (tmp_path / "asan.4242").write_text("==4242==ERROR: AddressSanitizer: heap-use-after-free\n    #0 0x1 in f x.cpp:1")
    (found,) = sanitize.reports("all passed")
    assert "heap-use-after-free" in found and "#0" in found


def test_sitecustomize_drops_the_editable_import_hook():
    code = (sanitize.SITECUSTOMIZE + "\nclass ScikitBuildRedirectingFinder:\n    pass\n"
            "sys.meta_path.insert(0, ScikitBuildRedirectingFinder())\n" + sanitize.SITECUSTOMIZE +
            "\nassert not any(type(f).__name__.startswith('ScikitBuild') for f in sys.meta_path)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("ci", "args", "want"), [
    (None, [], False), ("true", [], True), ("1", [], True), ("false", [], False), ("0", [], False),
    (None, ["--sanitize"], True), ("true", ["--no-sanitize"], False), (None, ["-k", "add"], False),
])
def test_dev_runs_the_sanitizer_in_ci_or_on_request(monkeypatch, ci, args, want):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert dev._wants_sanitize(args) is want
