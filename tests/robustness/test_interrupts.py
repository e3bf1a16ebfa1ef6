"""Ctrl-C and SIGKILL at any moment: no traceback, exit 130 on Ctrl-C, and never a partial output.

Each command runs in its own process and is interrupted after a range of delays that land in its
start-up, its simulation and its writing. Afterwards every output is either absent, the previous
complete result, or the new complete result: every JSON file parses, every CSV has its header and
whole rows, every gzip stream is whole; a result directory never mixes two runs.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DELAYS_S = (0.4, 1.0, 1.6, 2.2, 2.8, 3.4)
RUN = ("run", "default", "--limit", "24", "--quiet", "--out")


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sim", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt(proc: subprocess.Popen, delay: float, sig: int) -> tuple[int, str]:
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running 60 s after signal {sig}")
    return proc.returncode, err


def _check_exit(code: int, err: str, sig: int) -> None:
    assert "Traceback" not in err, err
    if sig == signal.SIGINT:
        assert code in (0, 130), (code, err)
        if code == 130:
            assert err.strip().splitlines()[-1] == "memwall: interrupted", err
    else:
        assert code in (0, -signal.SIGKILL), (code, err)


def _whole_run_dir(d: Path) -> dict:
    """A complete ``run --out`` directory; its summary."""
    names = {p.name for p in d.iterdir()}
    assert {"config.json", "summary.json", "stats.json", "requests.csv", "iterations.csv"} <= names, names
    json.loads((d / "config.json").read_text())
    json.loads((d / "stats.json").read_text())
    summary = json.loads((d / "summary.json").read_text())
    for name in ("requests.csv", "iterations.csv", "ops.csv", "blame.csv"):
        if name in names:
            text = (d / name).read_text()
            assert text.endswith("\n"), f"{name} is cut short"
            rows = list(csv.reader(text.splitlines()))
            assert all(len(r) == len(rows[0]) for r in rows), f"{name} has a partial row"
    iterations = sum(1 for _ in (d / "iterations.csv").open()) - 1
    assert iterations == summary["iterations"], "files of two runs in one directory"
    return summary


@pytest.mark.parametrize("delay", (0.08, 0.14, 0.2, 0.26, 0.32))
def test_ctrl_c_while_starting_exits_130(delay):
    """Start-up imports: CPython once made these exits a death by SIGINT (-2) or a traceback."""
    code, err = _interrupt(_start("run", "default", "--limit", "24", "--quiet"), delay, signal.SIGINT)
    _check_exit(code, err, signal.SIGINT)


def test_an_interrupt_wrapped_by_python_is_still_an_interrupt(monkeypatch, capsys):
    """Ctrl-C inside a class body's ``__set_name__`` (a lazy import) reaches main as a RuntimeError."""
    from sim import cli

    def wrapped(_args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__") from exc

    monkeypatch.setattr(cli, "_main", lambda argv: wrapped(None))
    assert cli.main(["describe"]) == 130
    assert capsys.readouterr().err.strip() == "memwall: interrupted"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("delay", DELAYS_S)
def test_run_out_is_whole_or_absent(tmp_path, delay, sig):
    out = tmp_path / "out"
    code, err = _interrupt(_start(*RUN, str(out)), delay, sig)
    _check_exit(code, err, sig)
    if out.exists():
        _whole_run_dir(out)
    if sig == signal.SIGINT:  # an orderly stop also removes its temporary directory
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_rerun_into_a_previous_result_keeps_one_whole_run(tmp_path, sig):
    out = tmp_path / "out"
    first = subprocess.run(
        [sys.executable, "-m", "sim", "run", "default", "--batch", "2", "--context", "64", "--steps", "3",
         "--out", str(out), "--quiet"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert first.returncode == 0
    before = _whole_run_dir(out)
    for delay in DELAYS_S[:4]:
        code, err = _interrupt(_start(*RUN, str(out)), delay, sig)
        _check_exit(code, err, sig)
        after = _whole_run_dir(out)  # the old run or the new one, whole, never a mix
        assert after["iterations"] in (before["iterations"], after["iterations"])


def _whole_decode_trace(path: Path) -> None:
    with gzip.open(path, "rt") as fh:
        text = fh.read()  # raises on a truncated stream
    lines = text.splitlines()
    assert text.endswith("\n") and lines
    for line in lines:
        json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("delay", DELAYS_S[:4])
def test_trace_gen_output_is_whole_or_absent(tmp_path, delay, sig):
    out = tmp_path / "t.jsonl.gz"
    argv = ("trace", "gen", "--model", "llama-3.1-8b", "--requests", "traces/azure_conv_200.csv",
            "--system", "default", "--limit", "200", "--out", str(out))  # fmt: skip
    code, err = _interrupt(_start(*argv), delay, sig)
    _check_exit(code, err, sig)
    if out.exists():
        _whole_decode_trace(out)
    assert not [p for p in tmp_path.iterdir() if p.name != "t.jsonl.gz" and sig == signal.SIGINT]


SWEEP = """[sweep]
name = "interrupt"
[base]
system = "default"
model = "llama-3.1-8b"
context = 256
steps = 40
[grid]
batch = [1, 2, 4, 8, 16, 32]
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("delay", DELAYS_S[1:5])
def test_sweep_keeps_finished_cells_whole(tmp_path, delay, sig):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP)
    out = tmp_path / "out"
    code, err = _interrupt(_start("sweep", str(spec), "--workers", "0", "--out", str(out)), delay, sig)
    _check_exit(code, err, sig)
    cells = sorted((out / "cells").glob("*.json")) if (out / "cells").exists() else []
    for cell in cells:
        assert json.loads(cell.read_text())["status"] in ("ok", "error")
    results = out / "results.csv"
    if results.exists():
        text = results.read_text()
        assert text.endswith("\n")
        rows = list(csv.DictReader(text.splitlines()))
        if sig == signal.SIGINT:  # an orderly stop writes results.csv for every finished cell
            assert len(rows) == len(cells)
