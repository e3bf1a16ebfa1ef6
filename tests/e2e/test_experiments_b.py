"""End-to-end: the stacking, interconnect and failures experiments run fast and write linked plots."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")  # the experiments draw their plots with it (the plots extra)

EXPERIMENTS = Path(__file__).resolve().parents[2] / "benchmarks" / "experiments"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"memwall_experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["stacking", "interconnect", "failures"])
def test_experiment_writes_markdown_with_plots(name: str, tmp_path: Path) -> None:
    module = load(name)
    assert name == module.NAME and module.TITLE
    md = module.run(fast=True, out=tmp_path)
    assert md == tmp_path / f"{name}.md" and md.exists()
    text = md.read_text()
    assert text.startswith(f"# {module.TITLE}")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images, "no plots linked"
    for img in images:
        path = tmp_path / img
        assert path.suffix == ".png" and path.exists() and path.stat().st_size > 1000
    conclusion = text.split("## Conclusion", 1)[1]
    assert re.search(r"\d", conclusion), "conclusion carries no numbers"
