"""The hbf, pnm and mobile experiments run end to end at fast settings and link plots that exist."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXPERIMENTS = Path(__file__).resolve().parents[2] / "benchmarks" / "experiments"


def _load(name: str):
    path = EXPERIMENTS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"memwall_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["hbf", "pnm", "mobile"])
def test_experiment_writes_its_report(name: str, tmp_path: Path) -> None:
    # how long it takes is a benchmark's business (benchmarks/run_all), never a test's
    module = _load(name)
    assert name == module.NAME and module.TITLE
    md = module.run(fast=True, out=tmp_path)
    assert md == tmp_path / f"{name}.md" and md.is_file()
    text = md.read_text()
    assert text.startswith(f"# {module.TITLE}")
    assert "## Conclusion" in text
    conclusion = text.split("## Conclusion", 1)[1].strip()
    assert re.search(r"\d", conclusion)  # computed from numbers
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert images
    for img in images:
        assert (tmp_path / img).is_file() and (tmp_path / img).stat().st_size > 0
