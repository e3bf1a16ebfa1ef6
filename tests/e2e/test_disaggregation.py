"""Prefill/decode disaggregation (sim.serving.disagg, issue 13 item 2): the KV bytes that cross the link
follow from the prompts and the model config, TTFT includes the transfer, an idle transfer takes
latency + bytes / bandwidth, every request's tokens are conserved, the decode pool never prefills,
the link serialises what shares a port, and what is not supported says so with the key."""

import itertools
import json
import tomllib
from pathlib import Path

import pytest

from sim.core.errors import ConfigError
from sim.driver.token_driver import TokenDriver
from sim.experiments.run import build_run, execute
from sim.serving.disagg import Handoff, KvLink

ROOT = Path(__file__).resolve().parents[2]
TRACE = "traces/azure_conv_200.csv"
BANDWIDTH = 50e9  # B/s per chip per direction: the default disagg.link_bandwidth (400 Gb/s NDR)
LATENCY_PS = 5_000_000  # the default disagg.link_latency, 5 us


def kv_bytes_per_token() -> int:
    """From the model's config (architectures.toml), not from the code under test: K and V, every
    layer, every KV head of head_dim = hidden / heads, 2 bytes each (bf16)."""
    cfg = tomllib.loads((ROOT / "sim/data/models/architectures.toml").read_text())["llama-3.1-8b"]
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    return 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim * 2


def requests(limit: int, rate_scale: float) -> list:
    return list(build_run({"trace": TRACE, "limit": limit, "rate_scale": rate_scale})[0].requests)


def run(limit=16, rate_scale=10.0, system="gpu-hbm", **sets):
    base = {"mapping.tp": 1, "disagg.decode_system": "hbf-hybrid", "disagg.decode_tp": 1}
    settings = {
        "system": system,
        "trace": TRACE,
        "limit": limit,
        "rate_scale": rate_scale,
        "set": {**base, **sets},
    }
    spec, scheduler = build_run(settings)
    summary, _, sim = execute(spec, scheduler=scheduler)
    roots = sim.roots
    prefill = [c for c in roots if isinstance(c, TokenDriver) and c.name.startswith("prefill_run")]
    decode = [c for c in roots if isinstance(c, TokenDriver) and c.name.startswith("decode_run")]
    link = next(c for c in roots if isinstance(c, KvLink))
    handoff = next(c for c in roots if isinstance(c, Handoff))
    return summary, prefill, decode, link, handoff


@pytest.fixture(scope="module")
def sparse():
    """One prefill and one decode replica, the trace at its own pace (transfers mostly on an idle link)."""
    return run(limit=16, rate_scale=1.0)


@pytest.fixture(scope="module")
def busy():
    """Two prefill replicas into one decode replica at 40x the trace's rate: transfers contend."""
    return run(limit=24, rate_scale=40.0, **{"disagg.prefill_replicas": 2})


def test_kv_bytes_moved_are_prompt_tokens_times_kv_bytes_per_token(sparse, busy):
    per_token = kv_bytes_per_token()
    assert per_token == 131_072  # 2 x 32 layers x 8 heads x 128 x 2 B
    for (summary, _, _, link, _), (limit, scale) in ((sparse, (16, 1.0)), (busy, (24, 40.0))):
        reqs = requests(limit, scale)
        moved = [r for r in reqs if r.output_tokens > 1]  # one-token requests finish on the prefill pool
        want = sum(r.prompt_tokens * per_token for r in moved)
        assert summary["disaggregation"]["kv_bytes_moved"] == want
        assert link.stat.bytes.value == want
        assert sorted(t.request for t in link.log) == sorted(r.id for r in moved)
        by_id = {r.id: r for r in reqs}
        assert all(t.nbytes == by_id[t.request].prompt_tokens * per_token for t in link.log)
        assert summary["disaggregation"]["transfers"] == len(moved)


def test_ttft_includes_prefill_and_transfer_and_an_idle_transfer_is_latency_plus_bytes_over_bandwidth(
    sparse,
):
    summary, prefill, _, link, handoff = sparse
    reqs = {r.id: r for r in requests(16, 1.0)}
    recs = handoff.records
    assert sorted(recs) == sorted(reqs)
    for rid, rec in recs.items():
        r = reqs[rid]
        ttft = rec.delivered_ps - r.arrival_ps
        transfer = rec.transfer.duration_ps if rec.transfer else 0
        assert ttft >= (rec.prefill_end_ps - r.arrival_ps) + transfer
        # the prefill replica's own record: the iteration that emitted the first token
        assert prefill[0].records[rid].first_token_ps == rec.prefill_end_ps
    # idle: the previous transfer's bytes had left both ports when this one started (one of each)
    log = sorted(link.log, key=lambda t: t.start_ps)
    idle = 0
    free_at = -1
    for t in log:
        ser = t.nbytes / BANDWIDTH * 1e12
        if t.start_ps >= free_at:
            idle += 1
            assert abs(t.duration_ps - (LATENCY_PS + ser)) <= 1  # ps rounding of the serialisation
        assert t.duration_ps >= LATENCY_PS + ser - 1e-6
        free_at = max(free_at, t.start_ps) + ser
    assert idle >= len(log) // 2 > 0
    ttfts = sorted(recs[i].delivered_ps - reqs[i].arrival_ps for i in recs)
    assert summary["ttft_ms"]["mean"] == pytest.approx(sum(ttfts) / len(ttfts) / 1e9)
    # the TTFT breakdown: per request prefill queueing + prefill + kv transfer = TTFT, summed
    parts = {"prefill queueing": 0, "prefill": 0, "kv transfer": 0}
    for i, r in recs.items():
        parts["prefill queueing"] += r.prefill_admitted_ps - reqs[i].arrival_ps
        parts["prefill"] += r.prefill_end_ps - r.prefill_admitted_ps
        parts["kv transfer"] += r.transfer.end_ps - r.transfer.start_ps if r.transfer else 0
    shares = summary["disaggregation"]["ttft_breakdown"]
    for k, v in parts.items():
        assert shares[k] == pytest.approx(v / sum(ttfts))
    assert "kv transfer" not in summary["stall_breakdown"]  # no iteration waited for a transfer


@pytest.mark.parametrize("which", ["sparse", "busy"])
def test_every_request_generates_exactly_its_output_tokens_and_decode_never_prefills(which, request):
    summary, prefill, decode, _, handoff = request.getfixturevalue(which)
    limit, scale = (16, 1.0) if which == "sparse" else (24, 40.0)
    reqs = requests(limit, scale)
    want = {r.id: r.output_tokens for r in reqs}
    assert {i: rec.generated for i, rec in handoff.records.items()} == want
    pre = {i: rec for d in prefill for i, rec in d.records.items()}
    dec = {i: rec for d in decode for i, rec in d.records.items()}
    assert sorted(pre) == sorted(want)  # every request prefilled once, on one replica
    assert all(rec.generated == 1 for rec in pre.values())
    assert {i: rec.generated for i, rec in dec.items()} == {i: o - 1 for i, o in want.items() if o > 1}
    assert summary["tokens"] == sum(want.values())
    assert summary["requests"] == summary["requests_finished"] == len(reqs)
    prompts = sum(r.prompt_tokens for r in reqs)
    assert sum(it.prefill_tokens for d in prefill for it in d.iterations) == prompts
    assert all(it.prefill_tokens == 0 for d in decode for it in d.iterations)  # KV arrived, none recomputed
    assert "error" not in summary and summary["bound_violations"] == 0


def test_transfers_sharing_a_port_never_overlap_and_queue_when_busy(busy):
    summary, prefill, _, link, _ = busy
    assert len(prefill) == 2
    ser = {t.request: t.nbytes / BANDWIDTH for t in link.log}
    for port in ("source", "target"):
        for k in {getattr(t, port) for t in link.log}:
            spans = sorted(
                (t.sending_ps, t.sending_ps + ser[t.request] * 1e12)
                for t in link.log
                if getattr(t, port) == k
            )
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end - 1  # one transfer per port at a time
    assert any(t.queued_ps > 0 for t in link.log)  # two senders, one receiver: some wait
    assert summary["disaggregation"]["transfer_queue_ms"]["p99"] > 0
    span = max(t.end_ps for t in link.log)
    busy_ps = sum(t.nbytes / BANDWIDTH * 1e12 for t in link.log)
    ingress = summary["disaggregation"]["link"]["ingress_utilization"][0]
    assert ingress * summary["sim_time_s"] * 1e12 == pytest.approx(busy_ps, rel=1e-6)
    assert span <= summary["sim_time_s"] * 1e12


def test_summary_reports_each_pool_and_capital_scales_with_replicas(busy):
    summary = busy[0]
    x = summary["disaggregation"]
    assert x["prefill"]["system"] == "gpu-hbm" and x["decode"]["system"] == "hbf-hybrid"
    assert x["prefill"]["replicas"] == 2 and x["decode"]["replicas"] == 1
    assert sum(x["prefill"]["requests_per_replica"]) == 24
    one_chip_hbm = 25_000 + 80 * 2**30 / 1e9 * 15.0  # chip + 80 GiB of HBM at the [cost] defaults
    assert x["prefill"]["capital_usd"] == pytest.approx(2 * one_chip_hbm)
    assert summary["capital_usd"] == pytest.approx(x["prefill"]["capital_usd"] + x["decode"]["capital_usd"])
    assert summary["energy_j"] == pytest.approx(
        x["prefill"]["energy_j"] + x["decode"]["energy_j"] + x["link"]["energy_j"]
    )
    bits = x["kv_bytes_moved"] * 8
    assert x["link"]["energy_j"] == pytest.approx(bits * 60e-12)  # default 60 pJ/bit
    assert summary["tokens_per_s_per_usd"] == pytest.approx(summary["tokens_per_s"] / summary["capital_usd"])


def test_same_inputs_give_identical_results():
    drop = ("wall_s", "events_per_s", "sim_s_per_wall_s")
    a, b = (run(limit=6, rate_scale=20.0)[0] for _ in range(2))
    for s in (a, b):
        for k in drop:
            s.pop(k)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_a_system_file_can_declare_the_pools_and_enabled_false_turns_them_off(tmp_path):
    text = (ROOT / "topologies/gpu-hbm.toml").read_text()
    text += '\n[disaggregation]\ndecode_system = "hbf-hybrid"\ndecode_tp = 1\nlink_bandwidth = "25GB/s"\n'
    path = tmp_path / "pd.toml"
    path.write_text(text)
    settings = {"system": str(path), "trace": TRACE, "limit": 4, "set": {"mapping.tp": 1}}
    spec, _ = build_run(settings)
    assert spec.disagg.decode.system.name == "hbf-hybrid" and spec.disagg.params.link_bandwidth == 25e9
    off, _ = build_run({**settings, "set": {"mapping.tp": 1, "disagg.enabled": "false"}})
    assert off.disagg is None
    bad = path.with_name("bad.toml")
    bad.write_text(text.replace("decode_tp = 1", "decode_tp = -1"))
    with pytest.raises(ConfigError, match=r"bad\.toml: disaggregation\.decode_tp"):
        build_run({**settings, "system": str(bad)})


def test_off_by_default():
    spec, _ = build_run({"trace": TRACE, "limit": 2})
    assert spec.disagg is None


@pytest.mark.parametrize(
    ("sets", "extra", "key"),
    [
        ({"disagg.decode_replicas": 0}, {}, "disagg.decode_replicas"),
        ({"disagg.link_bandwidth": "fast"}, {}, "disagg.link_bandwidth"),
        ({"disagg.decode_system": "no-such-system"}, {}, "disagg.decode_system"),
        ({"disagg.colour": "red"}, {}, "disagg.colour"),
        ({"disagg.decode_router": "random"}, {}, "disagg.decode_router"),
        ({"disagg.prefill_replicas": 2, "mapping.dp": 2}, {}, "mapping.dp"),
        ({"disagg.prefill_replicas": 2, "router.policy": "least_tokens"}, {}, "router"),
        ({"disagg.prefill_replicas": 2, "batching.policy": "static"}, {}, "policy"),
        ({"disagg.prefill_replicas": 2}, {"batch": 4}, "disagg.prefill_replicas"),
        ({"disagg.decode_tp": 3}, {}, "disagg.decode"),
    ],
)
def test_bad_or_unsupported_configuration_names_the_key(sets, extra, key):
    settings = {"system": "gpu-hbm", "set": {"mapping.tp": 1, **sets}, **extra}
    if not extra:
        settings.update(trace=TRACE, limit=4)
    with pytest.raises(ConfigError) as err:
        build_run(settings)
    assert key in str(err.value)


def test_tight_kv_on_both_pools_still_serves_every_token_and_frees_every_block():
    """KV room for ~1-2 long requests per pool (mapping.kv_budget applies to both): prefill replicas
    keep a finished request's KV until it has left on the link, decode replicas admit as room frees;
    every token still comes out and every block is free at the end."""
    summary, prefill, decode, _, handoff = run(
        limit=24, rate_scale=40.0, **{"mapping.kv_budget": 0.012, "disagg.prefill_replicas": 2}
    )
    reqs = requests(24, 40.0)
    assert {i: rec.generated for i, rec in handoff.records.items()} == {r.id: r.output_tokens for r in reqs}
    assert "error" not in summary
    for d in (*prefill, *decode):
        assert d.scheduler.used_blocks == 0 and d.scheduler.idle
    assert summary["disaggregation"]["decode"]["wait_ms"]["p99"] > 0  # some waited for decode KV room
    assert all(p.held == 0 and p.closed for p in (d.feed for d in prefill))


def test_kv_ready_batching_decodes_without_prefill_and_recomputes_only_after_eviction():
    """The decode pool's policy alone, on the reference driver: a request's first decode attends to
    its prompt + 1 tokens; with prompt-only reservation and little KV, evicted requests are
    re-prefilled over prompt + generated tokens; each emits its output_tokens - 1 tokens."""
    from sim.requests.record import Request
    from sim.serving.batching import replay
    from sim.serving.disagg import KvReadyContinuous

    reqs = [Request(i, 0, 100 + 10 * i, 20 + i) for i in range(6)]
    seen = []
    result = replay(
        KvReadyContinuous({"kv_block_tokens": 1}, kv_capacity_tokens=10_000),
        reqs,
        1_000,
        observe=lambda b, _: seen.append(b),
    )
    assert all(e.phase == "decode" for b in seen for e in b.entries)
    first = {e.request.id: e.context_tokens for e in seen[0].entries}
    assert first == {r.id: r.prompt_tokens + 1 for r in reqs}
    assert {s.request.id: s.generated for s in result.states} == {r.id: r.output_tokens for r in reqs}
    assert sum(len(b.entries) for b in seen) == sum(r.output_tokens - 1 for r in reqs)

    tight = KvReadyContinuous({"kv_block_tokens": 1, "kv_reserve": "prompt"}, kv_capacity_tokens=300)
    seen.clear()
    result = replay(tight, reqs, 1_000, observe=lambda b, _: seen.append(b))
    assert {s.request.id: s.generated for s in result.states} == {r.id: r.output_tokens for r in reqs}
    prefills = [e for b in seen for e in b.entries if e.phase == "prefill"]
    assert prefills and all(s.preemptions > 0 for s in result.states if s.recomputed_tokens)
    assert sum(e.tokens for e in prefills) == sum(s.recomputed_tokens for s in result.states)
