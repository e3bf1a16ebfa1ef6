"""Prefix caching on data-parallel replicas (sim.serving.prefix_replicas) and the ``prefix_aware``
routing policy (sim.serving.router).

Each replica has its own cache, so a request hits only blocks that requests routed to the *same*
replica inserted. The references below decide what hits on their own: they split the requests by
the replica a reference router picks (round robin: request i to replica i mod 2; prefix_aware: the
longest held leading run of blocks, then fewest outstanding requests, then lower index, recomputed
here from the caches' insertion logs) and replay each replica's log of lookups and insertions on a
plain dict (the documented rule of tests/e2e/test_prefix_cache.py, reused from there).
"""

from __future__ import annotations

import pytest
from test_prefix_cache import chain_keys, reference_lru

from sim.core.errors import ConfigError
from sim.core.registry import names
from sim.driver.token_driver import TokenDriver
from sim.experiments.run import build_run, execute
from sim.requests.readers import open_trace
from sim.serving.router import ReplicaLoad, Router, prefix_aware

TRACE = "traces/mooncake_conv_200.jsonl"  # the first 200 requests of Mooncake's conversation trace
LIMIT = 30
BASE = {"software": "none", "mapping.tp": "4", "mapping.dp": "2", "prefix_cache.enabled": "true"}


def run(settings, **sets):
    spec, scheduler = build_run({**settings, "set": {**BASE, **sets}})
    summary, _, sim = execute(spec, scheduler=scheduler)
    drivers = [c for c in sim.roots if isinstance(c, TokenDriver)]
    router = next(c for c in sim.roots if isinstance(c, Router))
    return summary, drivers, router


def trace(limit=LIMIT):
    return list(open_trace(TRACE, "mooncake", limit=limit))


SLICE = {"system": "default", "trace": TRACE, "limit": LIMIT}


@pytest.fixture(scope="module")
def round_robin_run():
    return run(SLICE)


def per_replica_reference(drivers, reqs):
    """Each replica's log replayed on its own dict: request id -> tokens it need not prefill, and
    the blocks hit; every logged request is one the router sent to that replica."""
    cached, hits = {}, 0
    for d in drivers:
        events = d.scheduler.prefix_cache.events
        assert {rid for _, rid, _ in events} <= set(d.records)  # a replica sees only its requests
        c, h, _ = reference_lru(reqs, events)
        cached.update(c)
        hits += h
    return cached, hits


def test_each_replica_caches_only_its_own_requests(round_robin_run):
    summary, drivers, router = round_robin_run
    reqs = {r.id: r for r in trace()}
    order = list(reqs)
    assert [router.assigned[rid] for rid in order] == [i % 2 for i in range(len(order))]
    cached, hits = per_replica_reference(drivers, reqs)
    total = sum(r.prompt_tokens for r in reqs.values())
    computed = sum(it.prefill_tokens for d in drivers for it in d.iterations)
    pc = summary["prefix_cache"]
    assert computed == total - sum(cached.values()) == pc["prefill_tokens_computed"]
    assert pc["hit_blocks"] == hits > 0 and pc["cached_tokens"] == sum(cached.values())
    # the run's section adds the replicas' sections; each replica carries its own
    parts = [r["prefix_cache"] for r in summary["replicas"]]
    assert pc["replicas"] == 2
    for key in ("prompt_tokens", "cached_tokens", "full_blocks", "hit_blocks", "prefill_tokens_computed"):
        assert pc[key] == sum(p[key] for p in parts)
    assert pc["prompt_tokens"] == total
    assert pc["full_blocks"] == sum(len(chain_keys(r)) for r in reqs.values())
    assert pc["token_hit_rate"] == pc["cached_tokens"] / total
    for p, d in zip(parts, drivers, strict=True):
        mine = {x.request: x.cached_tokens for x in d.scheduler.prefix_cache.lookups}
        assert p["cached_tokens"] == sum(mine.values())
        assert p["prefill_tokens_computed"] == sum(it.prefill_tokens for it in d.iterations)
        assert p["prompt_tokens"] == sum(reqs[rid].prompt_tokens for rid in d.records)
    hbm = pc["by_tier"]["hbm"]
    assert hbm["hits"] == hits and hbm["inserted"] == sum(p["by_tier"]["hbm"]["inserted"] for p in parts)
    assert hbm["evictions"] == 0 and hbm["peak_blocks"] == max(
        p["by_tier"]["hbm"]["peak_blocks"] for p in parts
    )


def test_tokens_are_conserved(round_robin_run):
    summary, drivers, router = round_robin_run
    reqs = {r.id: r for r in trace()}
    assert sorted(rid for d in drivers for rid in d.records) == sorted(reqs)
    assert all(rec.generated == reqs[rid].output_tokens for d in drivers for rid, rec in d.records.items())
    assert summary["tokens"] == sum(r.output_tokens for r in reqs.values())
    assert summary["requests_finished"] == len(reqs) and "error" not in summary
    for i, d in enumerate(drivers):  # per replica: cached + computed prompt tokens = its prompts
        cache = d.scheduler.prefix_cache
        prompts = sum(reqs[rid].prompt_tokens for rid in d.records)
        assert cache.cached_tokens + sum(it.prefill_tokens for it in d.iterations) == prompts
        assert all(router.assigned[rid] == i for rid in d.records)


def test_same_inputs_same_results(round_robin_run):
    again, _, _ = run(SLICE)
    first = round_robin_run[0]
    drop = ("wall_s", "events_per_s", "sim_s_per_wall_s")
    assert {k: v for k, v in again.items() if k not in drop} == {
        k: v for k, v in first.items() if k not in drop
    }


# -- prefix_aware ------------------------------------------------------------------------------------
# The slice's conversations: 7 first turns (requests 1, 10, 30, 41, 44, 64, 66, at 0-21 s) whose
# second turns (requests 133-191, at 48-69 s) repeat every full block of their first turn (2 to
# 38); every request shares block 0 (a common system prompt). Request 0 (at 0 s) makes both
# replicas see block 0 early.
CONVERSATIONS = (0, 1, 10, 30, 41, 44, 64, 66, 133, 134, 137, 166, 177, 180, 191)


def conversations():
    by_id = {r.id: r for r in trace(200)}
    return [by_id[i] for i in CONVERSATIONS]


def reference_routing(reqs, drivers):
    """prefix_aware replayed: at each request's arrival, each replica holds the chains of the
    requests it inserted before then (unbounded caches lose nothing) and has outstanding the
    requests routed to it that have not finished."""
    inserted = {}  # request id -> (replica, time)
    finished = {}
    for k, d in enumerate(drivers):
        for kind, rid, t in d.scheduler.prefix_cache.events:
            if kind == "insert":
                inserted[rid] = (k, t)
        finished.update({rid: rec.last_token_ps for rid, rec in d.records.items()})
    assert all(t != r.arrival_ps for _, t in inserted.values() for r in reqs)  # no same-time order
    by_id = reqs_by_id(reqs)
    assigned = {}
    for r in reqs:
        held = []
        for k in range(len(drivers)):
            keys = {
                key
                for rid, (kk, t) in inserted.items()
                if kk == k and t < r.arrival_ps
                for key in chain_keys(by_id[rid])
            }
            mine = chain_keys(r)
            n = 0
            while n < len(mine) and mine[n] in keys:
                n += 1
            outstanding = sum(1 for rid, kk in assigned.items() if kk == k and finished[rid] > r.arrival_ps)
            held.append((-n, outstanding, k))
        assigned[r.id] = min(held)[2]
    return assigned


def reqs_by_id(reqs):
    return {r.id: r for r in reqs}


@pytest.fixture(scope="module")
def policies():
    settings = {"system": "default", "requests": conversations()}
    return {p: run(settings, **{"router.policy": p}) for p in ("round_robin", "prefix_aware")}


def test_prefix_aware_routes_to_the_longest_held_prefix(policies):
    summary, drivers, router = policies["prefix_aware"]
    reqs = conversations()
    assert summary["router"] == {"policy": "prefix_aware"}
    assert router.assigned == reference_routing(reqs, drivers)
    first_turn = {133: 66, 134: 10, 137: 1, 166: 64, 177: 44, 180: 41, 191: 30}
    assert all(router.assigned[b] == router.assigned[a] for b, a in first_turn.items())
    cached, hits = per_replica_reference(drivers, reqs_by_id(reqs))
    pc = summary["prefix_cache"]
    assert pc["hit_blocks"] == hits and pc["cached_tokens"] == sum(cached.values())


def test_prefix_aware_hits_more_than_round_robin_on_conversations(policies):
    """Round robin sends request i to replica i mod 2, and each second turn comes an odd number of
    places (1 to 11) after its first turn in arrival order: it lands on the other replica (checked
    below), so second turns hit block 0 only. prefix_aware sends each second
    turn to its first turn's replica (the test above), so it hits everything round robin does on
    block 0 and the conversations' shared blocks as well: a strictly higher hit share."""
    rr, rr_drivers, rr_router = policies["round_robin"]
    pa, _, _ = policies["prefix_aware"]
    first_turn = {133: 66, 134: 10, 137: 1, 166: 64, 177: 44, 180: 41, 191: 30}
    assert all(rr_router.assigned[b] != rr_router.assigned[a] for b, a in first_turn.items())
    reqs = reqs_by_id(conversations())
    cached, hits = per_replica_reference(rr_drivers, reqs)
    assert all(cached[b] <= reqs[b].prefix_block_tokens for b in first_turn)  # block 0 at most
    assert rr["prefix_cache"]["hit_blocks"] == hits
    # one cache over both replicas' logs would have found the conversations' blocks: the per-replica
    # split is what the figures follow
    pooled = sorted((e for d in rr_drivers for e in d.scheduler.prefix_cache.events), key=lambda e: e[2])
    assert reference_lru(reqs, pooled)[1] > hits
    assert pa["prefix_cache"]["token_hit_rate"] > rr["prefix_cache"]["token_hit_rate"]
    assert pa["prefix_cache"]["prefill_tokens_computed"] < rr["prefix_cache"]["prefill_tokens_computed"]


def test_prefix_aware_policy_by_hand():
    """Longest held run first; then fewest outstanding; then the lower index; none held: least_requests."""
    from sim.requests.record import Request

    r = Request(0, 0, 2048, 4, (1, 2, 3, 4), 512)

    def loads(held, requests):
        return [
            ReplicaLoad(i, q, 0, 0.0, (lambda _r, n=h: n))
            for i, (h, q) in enumerate(zip(held, requests, strict=True))
        ]

    assert prefix_aware(r, loads([1, 3, 2], [0, 9, 0]), 0) == 1
    assert prefix_aware(r, loads([2, 3, 3], [0, 5, 4]), 0) == 2
    assert prefix_aware(r, loads([3, 3, 0], [4, 4, 0]), 0) == 0
    assert prefix_aware(r, loads([0, 0, 0], [3, 1, 2]), 0) == 1  # least_requests
    assert prefix_aware(r, [ReplicaLoad(0, 2, 0, 0.0), ReplicaLoad(1, 1, 0, 0.0)], 0) == 1  # no cache
    assert "prefix_aware" in names("request_router")


def test_the_probe_is_read_only(round_robin_run):
    _, drivers, _ = round_robin_run
    cache = drivers[0].scheduler.prefix_cache
    before = (dict(cache._nodes), dict(cache.where), list(cache.tiers[0].order._order), cache.tiers[0].stats)
    snapshot = repr(before)
    held = [cache.held_blocks(r) for r in trace()]
    assert (
        repr((dict(cache._nodes), dict(cache.where), list(cache.tiers[0].order._order), cache.tiers[0].stats))
        == snapshot
    )
    assert max(held) >= 1 and all(h <= len(chain_keys(r)) for h, r in zip(held, trace(), strict=True))


# -- what is refused ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sets", "where", "what"),
    [
        (
            {"prefix_cache.enabled": "false", "router.policy": "prefix_aware"},
            "router.policy",
            "prefix_cache.enabled=true",
        ),
        ({"failures.at": "0@1s"}, "prefix_cache.enabled", "failures"),
        ({"batching.policy": "static"}, "prefix_cache.enabled", "continuous"),
        ({"router.policy": "nearest"}, "router.policy", "prefix_aware"),
    ],
)
def test_unsupported_combinations_name_their_key(sets, where, what):
    with pytest.raises(ConfigError) as err:
        run({**SLICE, "limit": 4}, **sets)
    assert where in str(err.value) and what in str(err.value)


def test_dp_above_one_is_no_longer_refused():
    summary, drivers, _ = run({**SLICE, "limit": 4}, **{"mapping.dp": "3", "mapping.tp": "2"})
    assert len(drivers) == 3 and summary["prefix_cache"]["replicas"] == 3
    assert all(d.scheduler.prefix_cache is not None for d in drivers)
    assert len({id(d.scheduler.prefix_cache) for d in drivers}) == 3  # one cache each
