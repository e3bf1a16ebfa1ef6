"""Every reproduction of issue 11, as a regression test: exit 2 with one line naming the place.

The damaged files live in ``corpus/`` (written by ``corpus/make_corpus.py``); the rest are command
lines. Each case runs ``memwall`` in this process and must end in a clean error whose message holds
every needle (the file, key path or flag, and what was expected), within a few seconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from fuzzlib import judge, run_cli

C = Path(__file__).resolve().parent / "corpus"
TINY = ["--batch", "1", "--context", "16", "--steps", "1", "--json"]

CASES = {
    # 1. non-UTF-8 or compressed text where TOML is expected
    "non-utf8 system": (["mappings", f"{C}/non_utf8_system.toml"], ["non_utf8_system.toml", "UTF-8"]),
    "decode trace as system": (
        ["run", f"{C}/decode_truncated.jsonl.gz"],
        ["decode_truncated.jsonl.gz", "gzip"],
    ),
    # 2. numbers that become infinity
    "membench 1e400GB": (["membench", "--request-size", "1e400GB"], ["--request-size", "finite"]),
    "fabric.clock=1e400": (
        ["run", "default", *TINY, "--set", "fabric.clock=1e400"],
        ["--set fabric.clock", "finite"],
    ),
    # 3. simulated time beyond int64
    "peak_bf16=3.5": (["run", "default", *TINY, "--set", "chip.compute.peak_bf16=3.5"], ["simulated time"]),
    "splitwise 1e30": (
        ["run", "default", f"{C}/splitwise_arrived_1e30.csv"],
        ["splitwise_arrived_1e30.csv", "line 3"],
    ),
    "azure year 9999": (["run", "default", f"{C}/azure_year_9999.csv"], ["azure_year_9999.csv", "line 3"]),
    # 4. the decode-trace reader
    "arrival 1e400": (
        ["run", "default", f"{C}/decode_arrival_1e400.jsonl"],
        ["decode_arrival_1e400.jsonl", "line 2"],
    ),
    "truncated gz": (["run", "default", f"{C}/decode_truncated.jsonl.gz"], ["decode_truncated.jsonl.gz"]),
    "mapping string": (
        ["run", "default", f"{C}/decode_mapping_string.jsonl"],
        ["decode_mapping_string.jsonl", "mapping"],
    ),
    "huge context": (
        ["run", "default", f"{C}/decode_huge_context.jsonl"],
        ["decode_huge_context.jsonl", "line 2"],
    ),
    "duplicate id": (
        ["run", "default", f"{C}/decode_duplicate_id.jsonl"],
        ["decode_duplicate_id.jsonl", "line 3"],
    ),
    "1.7 tokens": (
        ["run", "default", f"{C}/decode_float_tokens.jsonl"],
        ["decode_float_tokens.jsonl", "output_tokens"],
    ),
    "'5' tokens": (
        ["run", "default", f"{C}/decode_string_tokens.jsonl"],
        ["decode_string_tokens.jsonl", "output_tokens"],
    ),
    "true tokens": (
        ["run", "default", f"{C}/decode_bool_tokens.jsonl"],
        ["decode_bool_tokens.jsonl", "output_tokens"],
    ),
    "prefilled twice": (
        ["run", "default", f"{C}/decode_prefilled_twice.jsonl"],
        ["decode_prefilled_twice.jsonl", "line 3"],
    ),
    "too many outputs": (
        ["run", "default", f"{C}/decode_too_many_outputs.jsonl"],
        ["decode_too_many_outputs.jsonl"],
    ),
    "header-only trace": (["run", "default", f"{C}/decode_header_only.jsonl"], ["decode_header_only.jsonl"]),
    "empty CSV": (["run", "default", f"{C}/empty.csv"], ["empty.csv"]),
    "header-only CSV": (
        ["run", "default", f"{C}/header_only.csv"],
        ["header_only.csv", "at least one request"],
    ),
    # 5. tensor and data parallelism the model and the simulator cannot take
    "tp=3": (["run", "default", *TINY, "--set", "mapping.tp=3"], ["mapping.tp", "32 attention heads"]),
    "dp=2": (["run", "default", *TINY, "--set", "mapping.dp=2"], ["--set mapping.dp", "dp = 1", "fixed"]),
    "tp=3 in the file": (["run", f"{C}/system_mapping_tp3.toml", *TINY], ["mapping.tp", "attention heads"]),
    # 6. settings a decode study does not use
    "prefetch_windw": (["run", "default", *TINY, "--set", "prefetch_windw=8MiB"], ["--set prefetch_windw"]),
    "--format in decode study": (["run", "default", *TINY, "--format", "azure"], ["--format"]),
    "--limit in decode study": (["run", "default", *TINY, "--limit", "2"], ["--limit"]),
    "trace in decode study": (["run", "default", "traces/azure_conv_200.csv", *TINY], ["--trace"]),
    "batching.policy=nope": (["run", "default", *TINY, "--set", "batching.policy=nope"], ["batching.policy"]),
    # 7. sweeps
    "sweep steps 0": (
        ["sweep", f"{C}/sweep_steps_0.toml", "--workers", "0"],
        ["sweep_steps_0.toml", "steps"],
    ),
    "sweep batch 0": (
        ["sweep", f"{C}/sweep_batch_0.toml", "--workers", "0"],
        ["sweep_batch_0.toml", "batch"],
    ),
    "sweep = 5": (
        ["sweep", f"{C}/sweep_scalar_sweep.toml", "--workers", "0"],
        ["sweep_scalar_sweep.toml", "sweep"],
    ),
    "scalar grid": (
        ["sweep", f"{C}/sweep_scalar_grid.toml", "--workers", "0"],
        ["sweep_scalar_grid.toml", "grid"],
    ),
    "--scheduler nonsense": (
        ["sweep", f"{C}/sweep_valid.toml", "--scheduler", "nonsense"],
        ["--scheduler"],
    ),
    # 8. sizes beyond the documented limits
    "noc --k 1000000": (["noc", "--k", "1000000"], ["--topology", "MAX_ROUTERS"]),
    "link latency 1e12": (["noc", "--k", "4", "--link-latency", "1000000000000"], ["latency"]),
    "t_sa=1e23": (["noc", "--k", "4", "--set", "t_sa=1e23"], ["t_sa"]),
    "run --batch 1e8": (["run", "default", "--batch", "100000000"], ["--batch"]),
    "noc --sweep 1e-9": (["noc", "--k", "4", "--sweep", "1e-9:1:1e-9"], ["--sweep", "MAX_SWEEP_POINTS"]),
    "/dev/zero": (["run", "default", "/dev/zero"], ["/dev/zero"]),
    "100,000 layers": (
        ["mappings", "default", "--model", f"{C}/config_100000_layers.json"],
        ["num_hidden_layers"],
    ),
    # 9. contexts beyond the model's maximum
    "--context 200000": (
        ["run", "default", "--batch", "1", "--context", "200000"],
        ["--context", "context_limit"],
    ),
    "200k prompt": (["run", "default", f"{C}/azure_200k_prompt.csv"], ["longest context"]),
    # 10. smaller
    "membench --seed -1": (["membench", "--seed", "-1"], ["--seed"]),
    "report on a list": (["report", f"{C}/report_summary_list"], ["summary.json"]),
    "trace gen --out .": (
        ["trace", "gen", "--model", "llama-3.1-8b", "--requests", "traces/azure_conv_200.csv", "--out", "."],
        ["--out"],
    ),
    "trace gen --out = --requests": (
        [
            "trace",
            "gen",
            "--model",
            "llama-3.1-8b",
            "--requests",
            f"{C}/header_only.csv",
            "--out",
            f"{C}/header_only.csv",
        ],
        ["--out"],
    ),
    "noc deadlock": (
        [
            "noc",
            "--topology",
            "torus",
            "--k",
            "4",
            "--routing",
            "dor_unsafe",
            "--rate",
            "0.9",
            "--vcs",
            "1",
            "--vc-buffer",
            "2",
            "--packet-flits",
            "4",
            "--warmup",
            "200",
            "--measure",
            "2000",
            "--drain",
            "2000",
        ],
        ["deadlock", "wait cycle"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reproduction_is_a_clean_error(name, monkeypatch):
    monkeypatch.chdir(C.parents[2])  # relative paths (traces/...) as a user at the repository root
    argv, needles = CASES[name]
    before = {p: p.read_bytes() for p in C.iterdir() if p.is_file()}
    t0 = time.perf_counter()
    o = judge(run_cli(argv, limit_s=20))
    assert o.verdict == "error" and o.code == 2, o.describe()
    for needle in needles:
        assert needle in o.stderr, o.describe()
    assert time.perf_counter() - t0 < 10
    assert {p: p.read_bytes() for p in C.iterdir() if p.is_file()} == before  # inputs never written
