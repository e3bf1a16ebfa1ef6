"""Progress everywhere: a long command is never silent in a pipe or a log, and --quiet silences it.

No test here asserts how long anything takes: the status interval is shortened through
``MEMWALL_STATUS_EVERY`` so that any run long enough to tick shows lines, whatever the machine.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from sim.core.errors import ConfigError
from sim.observe import progress
from sim.observe.progress import Status, clock

REPO = Path(__file__).resolve().parents[2]
RUN_LINE = re.compile(
    r"^memwall run: \d+% \([\d,]+/[\d,]+ tokens\), \d+ of 24 requests done, [\d,]+ iterations, "
    r"[\d.]+ s simulated, [\d,]+ events/s, \d+:\d\d elapsed, ETA \d+:\d\d$"
)


def _memwall(*argv: str, every: str = "0.05") -> subprocess.CompletedProcess:
    env = {**os.environ, "MEMWALL_STATUS_EVERY": every}
    return subprocess.run(
        [sys.executable, "-m", "sim", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_run_in_a_pipe_writes_status_lines_to_stderr_and_its_result_to_stdout():
    proc = _memwall("run", "--limit", "24")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines, "no status line on stderr"
    assert all(RUN_LINE.match(line) for line in lines), lines
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr  # plain lines: no terminal codes
    assert "throughput" in proc.stdout and "memwall run:" not in proc.stdout


def test_quiet_silences_the_status_and_the_result():
    proc = _memwall("run", "--limit", "24", "--quiet")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""


def test_membench_and_trace_gen_report_status_too(tmp_path):
    bench = _memwall("membench", "--device", "hbf-gen1", "--pattern", "seq", "--request-size", "4KiB",
                     "--concurrency", "4096", "--bytes", "512MiB")  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    assert re.search(r"^memwall membench: \d+% \([\d,]+/131,072 requests\)", bench.stderr, re.M), bench.stderr
    gen = _memwall("trace", "gen", "--model", "llama-3.1-8b", "--requests", "traces/azure_conv_200.csv",
                   "--limit", "100", "--out", str(tmp_path / "t.jsonl.gz"))  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    assert re.search(r"^memwall trace gen: [\d,]+ iterations, [\d,]+ tokens", gen.stderr, re.M), gen.stderr


def test_a_bad_status_interval_is_refused_by_name():
    proc = _memwall("run", "--limit", "2", every="soon")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "memwall: error: MEMWALL_STATUS_EVERY: expected a number of seconds > 0, found 'soon'"
    )


def test_status_lines_carry_percentage_and_eta_and_a_long_run_says_so(monkeypatch):
    monkeypatch.setenv("MEMWALL_STATUS_EVERY", "1e-9")
    monkeypatch.setattr(progress, "LONG_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "LONG_RUN_S", 0.0)
    now = [100.0]
    monkeypatch.setattr(
        progress, "time", SimpleNamespace(perf_counter=lambda: now[0])
    )  # a clock the test moves
    out = io.StringIO()
    with Status("memwall thing", stream=out, unit="widgets") as status:
        now[0] += 10.0  # ten seconds in, a quarter done: 30 s to go
        status.update(25, 100, ["fast"])
        now[0] += 10.0  # twenty seconds in, half done
        status.update(50, 100)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("memwall thing: this looks like a long run: about 0:40 in all")
    assert re.fullmatch(r"memwall thing: 25% \(25/100 widgets\), fast, 0:10 elapsed, ETA 0:30", lines[1]), (
        lines
    )
    assert lines[2] == "memwall thing: 50% (50/100 widgets), 0:20 elapsed, ETA 0:20"
    assert len(lines) == 3  # the long-run warning is said once


def test_quiet_status_writes_nothing():
    out = io.StringIO()
    with Status("memwall thing", stream=out, quiet=True) as status:
        status.update(1, 2)
    assert out.getvalue() == "" and not status.due()


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (59.6, "1:00"), (61, "1:01"), (3725, "1:02:05")])
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_the_interval_must_be_positive(monkeypatch):
    monkeypatch.setenv("MEMWALL_STATUS_EVERY", "-1")
    with pytest.raises(ConfigError, match="MEMWALL_STATUS_EVERY"):
        Status("x", stream=io.StringIO())
