"""Failures and spares (sim.serving.failures, issue 13 item 5): a failure injected mid-run loses no
request, a local spare beats migration at the tail when its outage is shorter, failures drawn from a
rate are Poisson, runs are deterministic, and the collective timeout cuts an iteration that waits for
a straggler."""

import math
import re

import numpy as np
import pytest

from sim.core.errors import ConfigError
from sim.core.registry import names
from sim.core.units import PS_PER_S
from sim.driver.token_driver import TokenDriver
from sim.experiments.run import build_run, execute
from sim.model.spec import load_model
from sim.requests.record import Request
from sim.serving.batching import make_policy
from sim.serving.failures import LLAMA3_FIT, FailureParams, failure_times, parse_at
from sim.serving.router import Router
from sim.serving.scheduler import Batch

TRACE = "traces/azure_conv_200.csv"
LIMIT = 24
RATE_SCALE = 30.0  # 24 requests in ~0.5 s: each replica (one H100, 4 seats) is saturated
FAIL_AT_S = 1.0  # every request has arrived; both replicas still hold requests (the run lasts ~3 s)
SWAP_S = 0.1
REPLACE_S = 5.0
BASE = {"mapping.tp": 1, "mapping.dp": 2, "batching.max_batch": 4}


def run(seed=0, limit=LIMIT, **sets):
    settings = {
        "system": "default",
        "trace": TRACE,
        "limit": limit,
        "rate_scale": RATE_SCALE,
        "seed": seed,
        "set": {**BASE, **sets},
    }
    spec, scheduler = build_run(settings)
    summary, _, sim = execute(spec, scheduler=scheduler)
    drivers = [c for c in sim.roots if isinstance(c, TokenDriver)]
    router = next(c for c in sim.roots if isinstance(c, Router))
    return summary, drivers, router, spec


def failed(policy):
    return run(
        **{
            "failures.at": f"0@{FAIL_AT_S}s",
            "failures.recovery": policy,
            "failures.swap_delay": f"{SWAP_S}s",
            "failures.replace_delay": f"{REPLACE_S}s",
        }
    )


@pytest.fixture(scope="module")
def spare():
    return failed("spare")


@pytest.fixture(scope="module")
def migrate():
    return failed("migrate")


def trace_requests():
    return list(build_run({"trace": TRACE, "limit": LIMIT, "rate_scale": RATE_SCALE})[0].requests)


@pytest.mark.parametrize("which", ["spare", "migrate"])
def test_a_failure_mid_run_loses_no_request(which, request):
    summary, drivers, router, _ = request.getfixturevalue(which)
    want = {r.id: r.output_tokens for r in trace_requests()}
    ids = [rid for d in drivers for rid in d.records]
    assert sorted(ids) == sorted(want)  # each request on exactly one replica at the end
    for d in drivers:
        for rid, rec in d.records.items():
            assert rec.generated == want[rid], rid
    assert summary["tokens"] == sum(want.values())
    assert summary["requests_finished"] == LIMIT
    f = summary["failures"]
    assert f["failures"] == 1 and f["recovery"] == which
    assert f["lost_iterations"] == 1  # replica 0 was busy at 1 s: its iteration in flight is lost
    assert f["requests_recomputed"] >= 1
    assert f["recomputed_tokens"] >= f["requests_recomputed"]  # at least a prompt token each
    assert "error" not in summary and summary["bound_violations"] == 0
    # the stall is blamed on the failure (the lost iteration) in the critical-path breakdown
    assert summary["stall_breakdown"]["failure (replica0)"] > 0
    if which == "spare":
        assert f["requests_migrated"] == 0
        assert set(drivers[0].records) == {rid for rid, k in router.assigned.items() if k == 0}
    else:
        # every request routed to replica 0 and unfinished at the failure moved to replica 1
        moved = {rid for rid, k in router.assigned.items() if k == 0} - set(drivers[0].records)
        assert f["requests_migrated"] == len(moved) > 0
        assert moved <= set(drivers[1].records)
        kept = drivers[0].records.values()
        assert all(rec.last_token_ps <= FAIL_AT_S * PS_PER_S for rec in kept)


def test_downtime_is_the_policy_closed_form(spare, migrate):
    """spare: swap delay + one chip's weights over the host link; migrate: replacement delay + link
    latency + one chip's weights over its scale-out link (each chip its own NIC)."""
    p = FailureParams()
    weights = load_model("llama-3.1-8b").n_params * 2  # bf16, one chip (tp = pp = 1)
    want_spare = SWAP_S + weights / p.host_bandwidth
    want_migrate = REPLACE_S + p.link_latency / PS_PER_S + weights / p.link_bandwidth
    assert spare[0]["failures"]["downtime_per_failure_s"] == pytest.approx(want_spare, rel=0.02)
    assert migrate[0]["failures"]["downtime_per_failure_s"] == pytest.approx(want_migrate, rel=0.02)


def test_a_spare_gives_a_lower_tail_than_migration(spare, migrate):
    """Why it must hold: at 1 s both replicas are saturated (4 seats each, every request arrived).
    With a spare, replica 0 is back after 0.1 s + 16 GB / 63 GB/s ~ 0.36 s and the two replicas share
    the remaining work. With migration its requests join replica 1, whose seats are full, and replica
    0's replacement needs 5 s + 16 GB / 50 GB/s ~ 5.3 s, longer than the rest of the run: all the
    remaining work runs on one replica, so the last requests finish later and the tail grows."""
    s, m = spare[0], migrate[0]
    assert s["failures"]["downtime_per_failure_s"] < m["failures"]["downtime_per_failure_s"]
    # the premise: migration's replacement never came back before the run ended
    assert m["sim_time_s"] < FAIL_AT_S + m["failures"]["downtime_per_failure_s"]
    assert s["e2e_latency_ms"]["p99"] < m["e2e_latency_ms"]["p99"]
    assert s["sim_time_s"] < m["sim_time_s"]


def test_failure_draws_are_poisson():
    """N(T) of a Poisson process of rate r is Poisson(rT): over 200 seeds of 50 s at 2 failures/s the
    total is Poisson(20,000); allow 5 standard deviations (sqrt(20,000) ~ 141)."""
    rate, horizon_s, seeds = 2.0, 50.0, 200
    counts = [
        len(failure_times(np.random.default_rng(s), rate, round(horizon_s * PS_PER_S))) for s in range(seeds)
    ]
    expected = rate * horizon_s * seeds
    assert abs(sum(counts) - expected) < 5 * math.sqrt(expected)
    # and the per-seed counts spread as a Poisson's (variance = mean), within a loose bound
    assert np.var(counts) == pytest.approx(rate * horizon_s, rel=0.35)
    assert failure_times(np.random.default_rng(0), 0.0, 10**12) == []


def test_llama3_fit_follows_from_the_cited_figures():
    """419 unexpected interruptions in 54 days on 16,384 GPUs is one every ~3.1 h on the cluster; 78%
    of them charged to hardware and spread over the GPUs gives an MTBF of ~65,000 h per GPU."""
    cluster_hours_between = 54 * 24 / 419
    assert cluster_hours_between == pytest.approx(3.09, abs=0.01)
    mtbf_h = 1e9 / LLAMA3_FIT
    assert mtbf_h == pytest.approx(16384 * cluster_hours_between / 0.78, rel=1e-12)
    assert 64_000 < mtbf_h < 66_000


def test_a_failure_rate_run_is_deterministic_and_draws_per_seed():
    """FIT scaled up so that each one-chip replica fails about once a second (rate = FIT / 3.6e12 /s)."""
    sets = {"failures.chip_fit": 3.6e12, "failures.swap_delay": "0.05s"}
    a = run(seed=1, limit=12, **sets)[0]
    b = run(seed=1, limit=12, **sets)[0]
    for key in ("wall_s", "events_per_s", "sim_s_per_wall_s"):
        a.pop(key), b.pop(key)
    assert a == b
    assert a["failures"]["replica_failures_per_s"] == pytest.approx(1.0)
    assert a["failures"]["failures"] >= 1
    assert a["requests_finished"] == 12


def test_one_replica_with_a_spare_conserves_tokens():
    summary, drivers, _, _ = run(**{"mapping.dp": 1, "failures.at": "1s", "failures.swap_delay": "0.1s"})
    want = {r.id: r.output_tokens for r in trace_requests()}
    assert {rid: rec.generated for rid, rec in drivers[0].records.items()} == want
    assert summary["failures"]["failures"] == 1


def test_off_by_default_adds_nothing():
    summary = run(limit=6)[0]
    assert "failures" not in summary and "collective_timeout" not in summary


def fixed(**sets):
    settings = {"batch": 4, "context": 256, "steps": 4, "set": {"mapping.tp": 2, **sets}}
    spec, scheduler = build_run(settings)
    return execute(spec, scheduler=scheduler)[0]


def test_the_collective_timeout_cuts_an_iteration_waiting_for_a_straggler():
    """tp = 2 runs two all-reduces per layer: 2 x 32 x 4 steps = 256 collectives. A 1 ms straggler
    in every one adds 64 ms per step; a 100 us timeout abandons each (the step then waits at most
    100 us per collective, on top of the rest of the step); a 10 ms timeout never fires."""
    base = fixed()["step_time_ms"]["mean"]
    slow = fixed(**{"driver.straggler_delay": "1ms"})
    cut = fixed(**{"driver.straggler_delay": "1ms", "driver.collective_timeout": "100us"})
    wide = fixed(**{"driver.straggler_delay": "1ms", "driver.collective_timeout": "10ms"})
    n = 2 * 32 * 4
    assert slow["collective_timeout"]["stragglers"] == n
    assert slow["step_time_ms"]["mean"] == pytest.approx(base + 64 * 1.0, rel=1e-3)
    assert cut["collective_timeout"]["timeouts"] == cut["collective_timeout"]["collectives"] == n
    assert cut["step_time_ms"]["p99"] <= base + 64 * 0.1 + 1e-6  # each collective cut at the timeout
    assert cut["step_time_ms"]["mean"] < slow["step_time_ms"]["mean"]
    assert wide["collective_timeout"]["timeouts"] == 0
    assert wide["step_time_ms"]["mean"] == pytest.approx(slow["step_time_ms"]["mean"], rel=1e-9)
    assert cut["bound_violations"] == 0


def test_lose_kv_requeues_for_recompute_and_adopt_moves_a_request():
    policy = make_policy("continuous", {"max_batch": 4, "kv_block_tokens": 1}, kv_capacity_tokens=10_000)
    r = Request(0, 0, 100, 10)
    policy.add(r, 0)
    for now in range(1, 4):  # prefill (first token) then two decodes: generated = 3
        policy.complete(policy.next_batch(now), now)
    batch = policy.next_batch(5)
    assert isinstance(batch, Batch)
    lost = policy.lose_kv(batch)
    assert [s.request.id for s in lost] == [0]
    s = lost[0]
    assert s.generated == 3 and s.prefill_target == 103 and s.kv_blocks == 0 and policy.used_blocks == 0
    moved = policy.take_all()
    assert moved == [s] and policy.idle
    other = make_policy("continuous", {"max_batch": 4, "kv_block_tokens": 1}, kv_capacity_tokens=10_000)
    other.adopt(s, 6)
    now = 6
    while not other.idle:
        now += 1
        other.complete(other.next_batch(now), now)
    assert s.generated == 10  # the output tokens, none lost or repeated
    assert s.recomputed_tokens == 103


def test_recovery_policies_are_registered():
    assert {"spare", "migrate"} <= set(names("failure_recovery"))


@pytest.mark.parametrize(
    "sets, where",
    [
        ({"failures.nope": "1"}, "failures.nope"),
        ({"failures.at": "x@1s"}, "failures.at"),
        ({"failures.at": "1 parsec"}, "failures.at"),
        ({"failures.recovery": "pray"}, "failures.recovery"),
        ({"failures.chip_fit": "-1"}, "failures.chip_fit"),
        ({"driver.collective_timeout": "-1us"}, "collective_timeout"),
        ({"driver.straggler_probability": "2"}, "straggler_probability"),
    ],
)
def test_bad_settings_name_their_key(sets, where):
    with pytest.raises(ConfigError) as e:
        build_run({"trace": TRACE, "limit": 4, "set": {**BASE, **sets}})
    assert where in str(e.value)


@pytest.mark.parametrize(
    "sets, where",
    [
        ({"failures.at": "2@1s"}, "failures.at"),  # replicas 0 and 1 only
        ({"mapping.dp": 1, "failures.at": "1s", "failures.recovery": "migrate"}, "failures.recovery"),
        ({"failures.at": "1s", "batching.policy": "static"}, "batching.policy"),
    ],
)
def test_impossible_failure_setups_are_config_errors(sets, where):
    with pytest.raises(ConfigError) as e:
        run(limit=4, **sets)
    assert where in str(e.value)


def test_failures_need_requests():
    with pytest.raises(ConfigError, match="failures"):
        build_run({"batch": 2, "set": {"failures.at": "1s"}})


def test_parse_at():
    assert parse_at("1@2s, 0.5s") == [(500_000_000_000, 0), (2 * PS_PER_S, 1)]
    assert parse_at("") == []


def test_straggler_probability_is_drawn_per_collective():
    """With probability 1/2 the number of straggling collectives out of 256 is Binomial(256, 1/2):
    mean 128, standard deviation 8; allow 5 of them."""
    c = fixed(**{"driver.straggler_delay": "10us", "driver.straggler_probability": 0.5})["collective_timeout"]
    assert c["collectives"] == 256 and abs(c["stragglers"] - 128) < 5 * 8


def test_the_run_table_reports_failures_and_timeouts(capsys):
    from sim.cli import main

    args = ["run", "--limit", "6", "--rate-scale", "30", "--quiet"]
    assert main([*args[:-1], "--set", "mapping.tp=1", "--set", "failures.at=0.2s"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"failures[\s│]+1 with recovery spare", out)
    argv = ["run", "--batch", "2", "--context", "64", "--steps", "1", "--set", "mapping.tp=2"]
    argv += ["--set", "driver.straggler_delay=1ms", "--set", "driver.collective_timeout=10us"]
    assert main(argv) == 0
    assert re.search(r"collective timeout[\s│]+64 of 64 collectives timed out", capsys.readouterr().out)


def test_the_timeline_draws_each_failure_as_its_replicas_downtime(tmp_path, capsys):
    import json

    from sim.cli import main

    path = tmp_path / "t.json"
    argv = ["run", "default", "--limit", "12", "--set", "mapping.dp=2", "--set", "mapping.tp=4"]
    assert main([*argv, "--set", "failures.at=1@1s", "--timeline", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    doc = json.loads(path.read_text())
    spans = [e for e in doc["traceEvents"] if e.get("cat") == "failure"]
    assert len(spans) == summary["failures"]["failures"] == 1
    (span,) = spans
    assert span["ts"] == 1e6  # 1 s in microseconds
    assert span["dur"] == pytest.approx(summary["failures"]["downtime_per_failure_s"] * 1e6)
    names = {(e["pid"], e["args"]["name"]) for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert (span["pid"], "replica 1: iterations") in names


def test_a_rate_faster_than_recovery_is_refused_and_a_stalled_replica_stops_the_run():
    """A replica that fails more often than it recovers would never serve (refused up front); one
    whose failures land between its return and its next finished iteration, 100 times in a row,
    cannot progress (stops with a SimulationError naming the replica, instead of running for ever)."""
    sets = {"mapping.tp": 1, "mapping.dp": 2, "failures.chip_fit": 1e20}
    with pytest.raises(ConfigError, match="sooner than it recovers"):
        execute(*build_run({"limit": 8, "rate_scale": 30, "set": sets}))
    sets = {"mapping.tp": 1, "mapping.dp": 2, "failures.swap_delay": "0", "failures.at": "0@0.1s"}
    one, _, _ = execute(*build_run({"limit": 8, "rate_scale": 30, "set": sets}))
    down = one["failures"]["downtime_per_failure_s"]
    step = one["step_time_ms"]["p50"] / 1e3
    gap = down + step / 4  # back up, then down again before a quarter of an iteration
    sets["failures.at"] = ",".join(f"0@{0.05 + k * gap:.6f}s" for k in range(110))
    summary, _, _ = execute(*build_run({"limit": 8, "rate_scale": 30, "set": sets}))
    assert "failed 100 times in a row" in summary["error"]


def test_failure_settings_without_failures_are_refused_by_key():
    with pytest.raises(ConfigError, match=r"failures\.swap_delay"):
        build_run({"limit": 4, "set": {"mapping.tp": 1, "mapping.dp": 2, "failures.swap_delay": "1s"}})
