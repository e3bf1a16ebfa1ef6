"""memwall run, trace gen and mappings as a user runs them."""

import csv
import json
import re

import pytest

from sim.cli import main

RUN_FIELDS = {
    "system",
    "model",
    "requests",
    "tokens",
    "ttft_ms",
    "tpot_ms",
    "step_time_ms",
    "tokens_per_s",
    "stall_breakdown",
    "utilization",
    "capacity",
    "events",
    "wall_s",
}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fixed_batch_decode_study_json(capsys, system_file):
    code, out, err = run(
        capsys,
        "run",
        system_file,
        "--model",
        "llama-3.1-8b",
        "--batch",
        "4",
        "--context",
        "512",
        "--steps",
        "3",
        "--json",
    )
    assert code == 0, err
    r = json.loads(out)
    assert r.keys() >= RUN_FIELDS
    for key in ("ttft_ms", "tpot_ms", "step_time_ms"):
        assert {"mean", "p50", "p99"} <= r[key].keys()
    assert r["tokens"] == 4 * 3
    assert sum(r["stall_breakdown"].values()) == pytest.approx(1.0)
    assert r["capacity"]["hbm"]["used_bytes"] <= r["capacity"]["hbm"]["total_bytes"]


def test_request_trace_run_writes_out_dir(capsys, system_file, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys,
        "run",
        system_file,
        "traces/azure_conv_200.csv",
        "--model",
        "llama-3.1-8b",
        "--limit",
        "4",
        "--out",
        str(out_dir),
        "--json",
    )
    assert code == 0, err
    r = json.loads(out)
    for name in ("config.json", "summary.json", "requests.csv", "iterations.csv", "ops.csv"):
        assert (out_dir / name).is_file()
    rows = list(csv.DictReader((out_dir / "requests.csv").open()))
    assert len(rows) == r["requests"] == 4
    assert sum(int(row["generated"]) for row in rows) == r["tokens"]
    assert sum(int(row["output_tokens"]) for row in rows) == r["tokens"]  # every request finished
    config = json.loads((out_dir / "config.json").read_text())
    assert config["mapping"]["tp"] == 2 and config["system"]["chips"] == 2


def test_trace_gen_then_replay_gives_the_same_tokens(capsys, system_file, tmp_path):
    trace = tmp_path / "t.jsonl.gz"
    code, out, err = run(
        capsys,
        "trace",
        "gen",
        "--model",
        "llama-3.1-8b",
        "--requests",
        "traces/azure_conv_200.csv",
        "--system",
        system_file,
        "--limit",
        "3",
        "--out",
        str(trace),
        "--json",
    )
    assert code == 0, err
    gen = json.loads(out)
    code, out, err = run(capsys, "run", system_file, str(trace), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["tokens"] == gen["tokens"]
    assert r["iterations"] == gen["iterations"]


def test_mappings_lists_fitting_mappings(capsys, system_file):
    code, out, err = run(capsys, "mappings", system_file, "--model", "llama-3.1-8b", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all(r["chips"] <= 2 for r in rows)
    assert rows == sorted(rows, key=lambda r: -r["est_tokens_per_s_per_chip"]) or len(rows) == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "no-such-system"], "unknown system 'no-such-system'"),
        (["run", "{sys}", "--model", "llama-3.1-405b", "--batch", "1"], "weights overflow memory 'hbm'"),
        (["run", "{sys}", "--model", "gpt-5"], "gpt-5"),
        (["run", "{sys}", "--set", "tp=3"], "chips"),
        (["run", "{sys}", "--set", "weights=dram"], "mapping.weights"),
    ],
)
def test_bad_runs_fail_with_one_line(capsys, system_file, argv, needle):
    argv = [a.replace("{sys}", system_file) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_quiet_prints_nothing_and_progress_changes_nothing(capsys, system_file):
    code, out, err = run(
        capsys,
        "run",
        system_file,
        "--model",
        "llama-3.1-8b",
        "--batch",
        "2",
        "--context",
        "64",
        "--steps",
        "2",
        "--quiet",
    )
    assert code == 0 and out == "" and err == ""
    from sim.experiments.run import build_run, execute

    settings = {"system": system_file, "model": "llama-3.1-8b", "batch": 2, "context": 64, "steps": 3}
    calls = []
    with_bar, _, _ = execute(
        *build_run(settings), progress=lambda drv, sim: calls.append(len(drv.iterations))
    )
    plain, _, _ = execute(*build_run(settings))
    for volatile in ("wall_s", "events_per_s", "sim_s_per_wall_s"):
        with_bar.pop(volatile), plain.pop(volatile)
    assert with_bar == plain


def test_table_splits_hardware_from_software_and_reports_bounds(capsys):
    """The printed summary says what was the chips' time and what was the serving software's, and
    that no op beat its physical bound; with software=none the split is all hardware."""
    argv = ("run", "gpu-hbm", "--model", "llama-3.1-8b", "--batch", "2", "--context", "64", "--steps", "2")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    hw, sw = (float(v) for v in re.search(r"([\d.]+) / ([\d.]+) ms per iteration", out).groups())
    code, js, _ = run(capsys, *argv, "--json")
    r = json.loads(js)
    assert sw == pytest.approx(r["software_s"] * 1e3 / r["iterations"], abs=1e-3) and sw > 0
    assert hw + sw == pytest.approx(r["step_time_ms"]["mean"], abs=2e-3)
    assert "every op within its bytes / peak" in out
    code, out, err = run(capsys, *argv, "--set", "software=none")
    assert re.search(r"[\d.]+ / 0\.000 ms per iteration", out) and "(hardware only)" in out
