"""memwall run --out / --timeline for a disaggregated run (sim.observe.disagg_files): every request once
with its tokens conserved, every pool replica's rows named, transfers.csv's bytes the prompt tokens x
KV bytes per token and their sum the summary's, one timeline span per transfer lasting its transfer
time, ports carrying one transfer at a time, and memwall report reading the directory."""

import csv
import itertools
import json
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from sim.cli import main
from sim.experiments.run import build_run
from tests.e2e.test_timeline import load_checked, tracks

ROOT = Path(__file__).resolve().parents[2]
TRACE = str(ROOT / "traces/azure_conv_200.csv")
LIMIT, SCALE = 8, 400.0  # fast enough that some transfers wait for a port
BANDWIDTH = 50e9  # B/s: the default disagg.link_bandwidth per chip, one chip per replica here
LATENCY_MS = 5e-3  # the default disagg.link_latency, 5 us
ARGS = [
    "gpu-hbm",
    TRACE,
    "--limit",
    str(LIMIT),
    "--rate-scale",
    str(SCALE),
    "--quiet",
    "--set",
    "mapping.tp=1",
    "--set",
    "disagg.decode_system=hbf-hybrid",
    "--set",
    "disagg.decode_tp=1",
    "--set",
    "disagg.prefill_replicas=2",
    "--set",
    "disagg.decode_replicas=2",
]
REPLICAS = {"prefill0", "prefill1", "decode0", "decode1"}


def kv_bytes_per_token() -> int:
    """From the model's config, not the code under test: K and V, every layer and KV head, bf16."""
    cfg = tomllib.loads((ROOT / "sim/data/models/architectures.toml").read_text())["llama-3.1-8b"]
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    return 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim * 2


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("disagg")
    out, trace = d / "out", d / "run.json"
    assert main(["run", *ARGS, "--out", str(out), "--timeline", str(trace)]) == 0
    reqs = list(build_run({"trace": TRACE, "limit": LIMIT, "rate_scale": SCALE})[0].requests)
    return out, trace, json.loads((out / "summary.json").read_text()), {r.id: r for r in reqs}


def test_requests_csv_has_every_request_once_with_the_summary_figures_and_tokens_conserved(written):
    out, _, summary, reqs = written
    got = rows(out / "requests.csv")
    assert sorted(int(r["id"]) for r in got) == sorted(reqs)  # each once
    for r in got:
        req = reqs[int(r["id"])]
        assert int(r["prompt_tokens"]) == req.prompt_tokens
        assert int(r["generated"]) == int(r["output_tokens"]) == req.output_tokens
        assert r["prefill_replica"] in REPLICAS and r["prefill_replica"].startswith("prefill")
        assert (r["decode_replica"] == "") == (req.output_tokens == 1)
        # TTFT covers the prefill and the KV transfer (its queueing included)
        kv = float(r["kv_transfer_ms"] or 0)
        first = float(r["prefill_end_ms"]) - req.arrival_ps / 1e9
        assert float(r["ttft_ms"]) == pytest.approx(first + kv, abs=1e-6)
    assert (
        sum(int(r["generated"]) for r in got)
        == summary["tokens"]
        == sum(q.output_tokens for q in reqs.values())
    )
    for col, key in (("ttft_ms", "ttft_ms"), ("tpot_ms", "tpot_ms"), ("e2e_ms", "e2e_latency_ms")):
        values = [float(r[col]) for r in got if r[col] != ""]
        assert sum(values) / len(values) == pytest.approx(summary[key]["mean"], rel=1e-9)


def test_transfers_csv_bytes_are_prompt_tokens_times_kv_bytes_per_token_and_sum_to_the_summary(written):
    out, _, summary, reqs = written
    got = rows(out / "transfers.csv")
    moved = {i for i, r in reqs.items() if r.output_tokens > 1}
    assert sorted(int(t["request"]) for t in got) == sorted(moved)
    per_token = kv_bytes_per_token()
    for t in got:
        assert int(t["bytes"]) == reqs[int(t["request"])].prompt_tokens * per_token
        start, sending, end = (float(t[k]) for k in ("start_ms", "sending_ms", "end_ms"))
        assert float(t["queued_ms"]) == pytest.approx(sending - start, abs=1e-9)
        assert float(t["transfer_ms"]) == pytest.approx(end - start, abs=1e-9)
        # once both ports are held: the bytes at one chip's bandwidth, then the latency
        assert end - sending == pytest.approx(int(t["bytes"]) / BANDWIDTH * 1e3 + LATENCY_MS, abs=1e-9)
        assert {t["from"][:7], t["to"][:6]} == {"prefill", "decode"}
    assert any(float(t["queued_ms"]) > 0 for t in got)  # the rate makes some wait for a busy port
    total = sum(int(t["bytes"]) for t in got)
    assert total == summary["disaggregation"]["kv_bytes_moved"]
    assert total == sum(reqs[i].prompt_tokens for i in moved) * per_token
    mean = sum(float(t["transfer_ms"]) for t in got) / len(got)
    assert mean == pytest.approx(summary["disaggregation"]["transfer_ms"]["mean"], rel=1e-9)
    # requests.csv's kv_transfer_ms is the same transfer
    by_id = {int(r["id"]): r for r in rows(out / "requests.csv")}
    for t in got:
        assert float(by_id[int(t["request"])]["kv_transfer_ms"]) == pytest.approx(float(t["transfer_ms"]))


def test_iterations_ops_and_blame_name_every_pool_replica(written):
    out, _, summary, reqs = written
    its = rows(out / "iterations.csv")
    per = defaultdict(list)
    for r in its:
        per[r["replica"]].append(int(r["index"]))
    assert set(per) == REPLICAS
    assert all(idx == list(range(len(idx))) for idx in per.values())  # indices count per replica
    x = summary["disaggregation"]
    for pool in ("prefill", "decode"):
        assert sum(len(v) for k, v in per.items() if k.startswith(pool)) == x[pool]["iterations"]
    prefill_tokens = defaultdict(int)
    for r in its:
        prefill_tokens[r["replica"][:6]] += int(r["prefill_tokens"])
    assert prefill_tokens["prefil"] == sum(q.prompt_tokens for q in reqs.values())  # every prompt once
    assert prefill_tokens["decode"] == 0  # the KV came over the link
    assert sum(int(r["tokens"]) for r in its if r["replica"].startswith("decode")) == sum(
        q.output_tokens - 1 for q in reqs.values()
    )
    ops = rows(out / "ops.csv")
    ids = [int(r["op_id"]) for r in ops]
    assert ids == list(range(len(ids)))  # unique in the run
    where = {r["op_id"]: (r["replica"], r["iteration"]) for r in ops}
    assert {r["replica"] for r in ops} == REPLICAS
    blame = rows(out / "blame.csv")
    assert blame and all(where[b["op_id"]] == (b["replica"], b["iteration"]) for b in blame)


def test_timeline_has_each_replica_and_one_span_per_transfer_lasting_its_transfer_time(written):
    out, trace, _, reqs = written
    events, procs, threads, doc = load_checked(trace)
    names = set(procs.values())
    for i in (0, 1):
        for pool in ("prefill", "decode"):
            assert {f"{pool} {i}: {p}" for p in ("requests", "iterations", "critical path")} <= names
    assert doc["otherData"]["replicas"] == ["prefill0", "prefill1", "decode0", "decode1"]
    t = tracks(events, procs, threads)
    link = [e for (proc, _), evs in t.items() if proc == "kv link" for e in evs]
    transfers = {int(r["request"]): r for r in rows(out / "transfers.csv")}
    assert sorted(e["args"]["request"] for e in link) == sorted(transfers)  # one span each
    for e in link:
        row = transfers[e["args"]["request"]]
        assert e["dur"] == pytest.approx(float(row["transfer_ms"]) * 1e3, abs=1e-6)
        assert e["ts"] == pytest.approx(float(row["start_ms"]) * 1e3, abs=1e-6)
        assert e["args"]["bytes"] == int(row["bytes"])
        assert e["args"]["queued_us"] == pytest.approx(float(row["queued_ms"]) * 1e3, abs=1e-6)
    # a port carries one transfer at a time; every transfer crosses one egress and one ingress port
    ports = {name: evs for (proc, name), evs in t.items() if proc == "kv link ports"}
    assert set(ports) == {"egress prefill0", "egress prefill1", "ingress decode0", "ingress decode1"}
    for evs in ports.values():
        for a, b in itertools.pairwise(evs):
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-6
    assert sum(len(evs) for evs in ports.values()) == 2 * len(transfers)
    # the end-to-end requests: TTFT as requests.csv has it, every request once
    ttft = {
        e["args"]["id"]: e["dur"]
        for (proc, _), evs in t.items()
        if proc.startswith("requests (")
        for e in evs
        if e["name"] == "TTFT"
    }
    by_id = {int(r["id"]): float(r["ttft_ms"]) for r in rows(out / "requests.csv")}
    assert sorted(ttft) == sorted(reqs)
    assert all(ttft[i] == pytest.approx(by_id[i] * 1e3, abs=1e-6) for i in ttft)


def test_memwall_report_reads_the_directory(written, capsys):
    out = written[0]
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    page = (out / "report.md").read_text()
    assert "TTFT" in page and (out / "step_time.png").exists() and (out / "tpot.png").exists()
    assert "all 4 chips (prefill 2 x 1, decode 2 x 1) and the KV link" in page  # both pools' energy
