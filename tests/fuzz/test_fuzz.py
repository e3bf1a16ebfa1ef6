"""Hostile input, generated: every case must end in a clean error or a sensible answer.

Eleven input kinds (:mod:`strategies`), each damaged in the ways a hostile user or a broken pipeline
would; :mod:`fuzzlib` runs memwall on each case in this process and judges the outcome. A
traceback, a hang or nonsense accepted with exit 0 fails the test and is shown with its input. The
default size runs 2,000+ cases in a couple of minutes; ``MEMWALL_FUZZ_SCALE`` multiplies it.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import pytest
import strategies as S
from conftest import scale
from fuzzlib import (
    check_json,
    check_report,
    check_run_json,
    check_sweep,
    check_text,
    judge,
    materialise,
    run_cli,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main

# cases per kind at scale 1 (2,110 in all)
SIZES = {
    "system": 250,
    "topology": 150,
    "request": 300,
    "decode": 250,
    "hf": 200,
    "sweep": 120,
    "device": 200,
    "set": 250,
    "flags": 250,
    "synthetic": 100,
    "report": 40,
}


def _examples(kind: str) -> int:
    return max(1, round(SIZES[kind] * scale()))


def _fill(arg: str, paths: dict[str, str]) -> str:
    for name, path in paths.items():
        arg = arg.replace("{" + name + "}", path)
    return arg


def _outcome(case: S.Case):
    """Run one case in a fresh directory; its judged outcome."""
    base = Path(tempfile.mkdtemp(prefix="memwall-fuzz-"))
    try:
        paths = {"tmp": str(base), **{k: str(v) for k, v in materialise(base, case.files).items()}}
        argv = [_fill(a, paths) for a in case.argv]
        checks = {
            "run_json": check_run_json,
            "json": check_json,
            "text": check_text,
            "sweep": check_sweep(base / "out"),
            "report": check_report(base / "run"),
        }
        o = run_cli(argv)
        o.kind, o.files = case.kind, case.files
        return judge(o, checks[case.check])
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(case: S.Case, tally) -> None:
    o = _outcome(case)
    tally.add(o)
    assert o.verdict in ("ok", "error"), o.describe()


def _fuzz(kind: str):
    return settings(
        max_examples=_examples(kind),
        deadline=None,
        derandomize=True,  # the same cases on every run: CI is reproducible; scale up to explore
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
        database=None,
    )


@pytest.fixture(scope="session")
def decode_trace_bytes(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("decode") / "t.jsonl.gz"
    code = main(
        [
            "trace",
            "gen",
            "--model",
            "llama-3.1-8b",
            "--requests",
            str(S.REPO / "traces" / "synthetic_poisson.toml"),
            "--format",
            "synthetic",
            "--system",
            "default",
            "--limit",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out.read_bytes()


@pytest.fixture(scope="session")
def run_dir_files(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("rundir") / "run"
    assert (
        main(
            [
                "run",
                "default",
                "--batch",
                "2",
                "--context",
                "16",
                "--steps",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return {p.name: p.read_bytes() for p in out.iterdir()}


@_fuzz("system")
@given(case=S.system_toml())
def test_system_toml(case, tally):
    _run(case, tally)


@_fuzz("topology")
@given(case=S.topology_toml())
def test_topology_toml(case, tally):
    _run(case, tally)


@_fuzz("request")
@given(case=S.request_trace())
def test_request_trace(case, tally):
    _run(case, tally)


@_fuzz("decode")
@given(data=st.data())
def test_decode_trace(data, decode_trace_bytes, tally):
    _run(data.draw(S.decode_trace(decode_trace_bytes)), tally)


@_fuzz("hf")
@given(case=S.hf_config())
def test_hf_config(case, tally):
    _run(case, tally)


@_fuzz("sweep")
@given(case=S.sweep_spec())
def test_sweep_spec(case, tally):
    _run(case, tally)


@_fuzz("device")
@given(case=S.device_toml())
def test_device_toml(case, tally):
    _run(case, tally)


@_fuzz("set")
@given(case=S.set_override())
def test_set_overrides(case, tally):
    _run(case, tally)


@_fuzz("flags")
@given(case=S.cli_flags())
def test_cli_flags(case, tally):
    _run(case, tally)


@_fuzz("synthetic")
@given(case=S.synthetic_toml())
def test_synthetic_toml(case, tally):
    _run(case, tally)


@_fuzz("report")
@given(data=st.data())
def test_report_directory(data, run_dir_files, tally):
    _run(data.draw(S.report_dir(run_dir_files)), tally)


def test_the_valid_inputs_pass(decode_trace_bytes):
    """The undamaged base inputs all run (so the suite's errors are the damage's, not the harness's)."""
    tiny = __import__("json").dumps(S.TINY_CONFIG).encode()
    device = ["membench", "--device", "{d.toml}", "--bytes", "64KiB", "--json"]
    for case in (
        S.Case(
            "system TOML",
            {"s.toml": S._read("topologies/default.toml")},
            ["run", "{s.toml}", *S.RUN_TINY],
            "run_json",
        ),
        S.Case(
            "request trace",
            {"t.csv": S._head("traces/azure_conv_200.csv", 5)},
            ["run", "default", "{t.csv}", "--json"],
            "run_json",
        ),
        S.Case(
            "decode trace",
            {"t.jsonl.gz": decode_trace_bytes},
            ["run", "default", "{t.jsonl.gz}", "--json"],
            "run_json",
        ),
        S.Case(
            "HF config.json",
            {"c.json": tiny},
            ["run", "default", "--model", "{c.json}", *S.RUN_TINY],
            "run_json",
        ),
        S.Case("device TOML", {"d.toml": S.DEVICE}, device, "json"),
        S.Case(
            "sweep spec",
            {"s.toml": S.SWEEP},
            ["sweep", "{s.toml}", "--workers", "0", "--out", "{tmp}/out"],
            "sweep",
        ),
    ):
        o = _outcome(case)
        assert o.verdict == "ok", o.describe()
    assert gzip.decompress(decode_trace_bytes)
