"""The fixed runs of ``fixed_runs.py`` match their recorded reference, byte for byte (wall clock aside).

A change meant to move results re-records the reference (``python tests/regression/fixed_runs.py
record``) in the same commit; any other change must leave every run identical.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("fixed_runs", Path(__file__).with_name("fixed_runs.py"))
fixed_runs = importlib.util.module_from_spec(_spec)
sys.modules["fixed_runs"] = fixed_runs  # dataclasses look their module up there
_spec.loader.exec_module(fixed_runs)


@pytest.mark.parametrize("run", fixed_runs.RUNS, ids=lambda r: r.name)
def test_fixed_run_matches_reference(run):
    problems = fixed_runs.check([run], say=lambda _: None)
    assert not problems, "\n".join(problems)


def test_every_run_has_a_reference():
    import json

    ref = json.loads(fixed_runs.REFERENCE.read_text())
    assert sorted(ref) == sorted(r.name for r in fixed_runs.RUNS)


def test_diff_sees_a_changed_figure():
    old = {"a": {"b": 1.0, "c": [1, 2]}}
    assert list(fixed_runs._diff(old, {"a": {"b": 1.0, "c": [1, 2]}})) == []
    assert [k for k, _ in fixed_runs._diff(old, {"a": {"b": 1.0000001, "c": [1, 2]}})] == ["changed"]
    assert [k for k, _ in fixed_runs._diff(old, {"a": {"b": 1.0, "c": [1, 2], "d": 0}})] == ["added"]
    assert [k for k, _ in fixed_runs._diff(old, {"a": {"c": [1, 2]}})] == ["removed"]
