"""README's tour must run as written (it is the first code a user copies)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.skipif(not all(importlib.util.find_spec(p) for p in ("ndnn", "ndoptim", "nddata")),
                    reason="the tour uses ndnn, ndoptim and nddata")
def test_readme_tour_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    blocks = text.split("```python\n")[1:]
    assert blocks, "README has no python block"
    tour = blocks[0].split("```")[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(tour, str(README), "exec"), namespace)
    assert "(tensor([7.]),)" in capsys.readouterr().out
    assert (tmp_path / "model.nd").exists()
    assert tuple(namespace["logits"].shape) == (32, 10)
