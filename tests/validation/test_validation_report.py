"""`memwall validate`: the report's decode table respects its own roofline and its parts add up.

The roofline column is computed independently of the driver's timing (bytes each memory moved over
its peak, FLOPs over the peak rate), so a step below it is a simulator bug, whatever the calibration.
"""

import json

import pytest

from sim.experiments.validate import run_validation


@pytest.fixture(scope="module")
def report(validation_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    result = run_validation(validation_data, out)
    return result, out


def test_every_decode_step_is_at_least_its_roofline(report):
    result, _ = report
    assert {d["system"] for d in result["decode"]} >= {
        "gpu-hbm",
        "gpu-hbm-a100",
        "hbf-hybrid",
        "pnm-3d",
        "mobile",
    }
    for d in result["decode"]:
        where = f"{d['system']} {d['model']} batch {d['batch']}"
        assert d["bound_violations"] == 0, where
        assert d["step_ms"] >= d["roofline_ms"] * (1 - 1e-9), where
        assert d["hardware_ms"] + d["software_ms"] == pytest.approx(d["step_ms"], rel=1e-9), where


def test_decode_step_grows_with_batch_on_every_system(report):
    result, _ = report
    by_system: dict[str, list[tuple[int, float]]] = {}
    for d in result["decode"]:
        by_system.setdefault(d["system"], []).append((d["batch"], d["step_ms"]))
    for system, points in by_system.items():
        steps = [ms for _, ms in sorted(points)]
        assert steps == sorted(steps), system  # more tokens never make a step cheaper


def test_report_files_hold_every_operator_and_group(report):
    result, out = report
    md = (out / "validation.md").read_text()
    for device in result["kernels"]:
        for op in result["kernels"][device]["operators"]:
            assert f"| {op} |" in md
    saved = json.loads((out / "validation.json").read_text())
    assert set(saved["collectives"]) == set(result["collectives"])
    assert not saved["data"].startswith("/")  # no machine's absolute path in a committed report
    for plot in ("kernels_h100.png", "kernels_a100.png", "allreduce_h100.png", "allreduce_a100.png"):
        assert (out / plot).stat().st_size > 0
