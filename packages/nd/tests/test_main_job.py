"""The README's main job (examples/main.py) end to end, as its first command runs it."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "main.py")


@pytest.mark.skipif(not os.path.exists(MAIN), reason="examples/ is not part of an installed package")
def test_main_job_trains_saves_reloads_and_passes():
    pytest.importorskip("ndnn")
    pytest.importorskip("ndoptim")
    pytest.importorskip("nddata")
    proc = subprocess.run([sys.executable, MAIN], capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "main job: ok" in out
    trained = re.search(r"trained (\d+) epochs in ([\d.]+) s; test accuracy ([\d.]+)", out)
    assert trained, out
    assert float(trained.group(2)) < 60 and float(trained.group(3)) >= 0.95
    assert "reloaded model predicts identically: True" in out
    assert "[" + "#" * 30 + "]" in out  # the progress bar reached its end
