"""memwall trace gen --format synthetic, and replaying what it writes."""

import gzip
import json
from pathlib import Path

import pytest

from sim.cli import main

REPO = Path(__file__).resolve().parents[2]

SYNTH = """
[synthetic]
seed = 3
rate = 20.0
prompt_dist = "uniform"
prompt_min = 32
prompt_max = 256
output_dist = "fixed"
output_tokens = 8
"""


def _gen(tmp_path, toml_text, *extra):
    src = tmp_path / "synth.toml"
    src.write_text(toml_text)
    out = tmp_path / "synth.jsonl.gz"
    argv = ["trace", "gen", "--model", "llama-3.1-8b", "--requests", str(src), "--format", "synthetic"]
    return main([*argv, "--system", "default", "--out", str(out), "--json", *extra]), src, out


def test_synthetic_trace_gen_replays(tmp_path, capsys):
    rc, _, out = _gen(tmp_path, SYNTH, "--limit", "6")
    assert rc == 0
    gen = json.loads(capsys.readouterr().out)
    assert gen["tokens"] == 6 * 8 and gen["iterations"] > 0
    with gzip.open(out, "rt") as fh:
        header = json.loads(fh.readline())
    assert header["source"]["format"] == "synthetic"
    assert header["source"]["seed"] == 3 and header["source"]["limit"] == 6
    assert main(["run", "default", str(out), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["tokens"] == gen["tokens"]
    assert run["requests"] == run["requests_finished"] == 6
    assert run["iterations"] == gen["iterations"]


def test_synthetic_is_deterministic(tmp_path, capsys):
    _, _, out = _gen(tmp_path, SYNTH, "--limit", "4")
    first = out.read_bytes()
    _, _, out = _gen(tmp_path, SYNTH, "--limit", "4")
    assert out.read_bytes() == first


def test_synthetic_count_from_file(tmp_path, capsys):
    rc, _, _ = _gen(tmp_path, SYNTH + "count = 3\n")
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 3 * 8


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (SYNTH + "bogus = 1\n", "synthetic.bogus: unknown parameter 'bogus'"),
        (SYNTH.replace('"fixed"', '"zipf"'), "synthetic.output_dist"),
        (SYNTH + "[other]\n", "unknown table or key 'other'"),
        ("rate = 1.0\n", "unknown table or key 'rate'"),
        (SYNTH.replace("seed = 3", 'seed = "x"'), "synthetic.seed"),
        ("[synthetic\n", "malformed TOML"),
    ],
)
def test_bad_synthetic_toml(tmp_path, capsys, text, needle):
    rc, src, out = _gen(tmp_path, text, "--limit", "2")
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("memwall: error: ")
    assert str(src) in err and needle in err, err
    assert not out.exists()


def test_synthetic_needs_a_count(tmp_path, capsys):
    rc, src, _ = _gen(tmp_path, SYNTH)
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(src) in err and "--limit" in err


def test_committed_synthetic_example(tmp_path, capsys):
    out = tmp_path / "ex.jsonl.gz"
    src = str(REPO / "traces" / "synthetic_poisson.toml")
    argv = ["trace", "gen", "--model", "llama-3.1-8b", "--requests", src, "--format", "synthetic"]
    assert main([*argv, "--system", "default", "--limit", "3", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out


def _summary(capsys, *argv):
    assert main([*argv, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_simulated_clock_trace_replays_as_the_live_run(tmp_path, capsys):
    """trace gen --clock simulated writes the batches the simulated system formed, at their start
    times; replaying them on the same system must give the live run's iterations, TTFT and TPOT
    exactly (the estimated clock cannot: it ignores collectives and host time)."""
    out = tmp_path / "sim.jsonl.gz"
    reqs = ["--requests", "traces/azure_conv_200.csv", "--limit", "8", "--system", "default"]
    assert (
        main(["trace", "gen", "--model", "llama-3.1-8b", *reqs, "--out", str(out), "--clock", "simulated"])
        == 0
    )
    said = capsys.readouterr().out
    assert "simulated span" in said
    header = json.loads(gzip.decompress(out.read_bytes()).splitlines()[0])
    assert header["clock"] == "simulated"
    live = _summary(capsys, "run", "default", "traces/azure_conv_200.csv", "--limit", "8")
    replay = _summary(capsys, "run", "default", str(out))
    for key in ("iterations", "tokens"):
        assert replay[key] == live[key]
    for key in ("ttft_ms", "tpot_ms", "e2e_latency_ms"):
        assert replay[key] == live[key], key


def test_an_unknown_clock_is_refused_by_name(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    argv = [
        "trace",
        "gen",
        "--model",
        "llama-3.1-8b",
        "--requests",
        "traces/azure_conv_200.csv",
        "--limit",
        "2",
    ]
    assert main([*argv, "--out", str(out), "--clock", "wall"]) == 2
    err = capsys.readouterr().err
    assert "--clock" in err and "estimated, simulated" in err and not out.exists()
