"""Prefix caching and KV tiers (sim.serving.prefix_cache, sim.driver.kv_tiers; issue 13 item 3).

Every figure is checked against a model written here: an independent count of the leading cached
blocks over the trace's ``hash_ids`` (unbounded capacity), a reference LRU on an OrderedDict
(bounded), the block size from the model's KV bytes per token, and the flash wear arithmetic. The
references replay the cache's log of *when* each lookup and insertion happened (the simulation's
scheduling) and decide *what* hits on their own, under the documented rule: a request looks up its
leading full 512-token blocks at its first admission; a request's blocks become reusable at the end
of the iteration that completes its prefill; at least one prompt token is always computed.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest

from sim.core.errors import ConfigError
from sim.core.registry import names
from sim.driver.token_driver import TokenDriver
from sim.experiments.run import build_run, execute
from sim.model.spec import load_model
from sim.requests.readers import open_trace
from sim.serving.prefix_cache import HOST, PrefixCacheParams

TRACE = "traces/mooncake_conv_200.jsonl"  # the first 200 requests of Mooncake's conversation trace
LIMIT = 30
SETTINGS = {"system": "default", "trace": TRACE, "limit": LIMIT, "set": {"software": "none"}}


def run(settings=SETTINGS, **sets):
    spec, scheduler = build_run({**settings, "set": {**settings["set"], **sets}})
    summary, _, sim = execute(spec, scheduler=scheduler)
    driver = next(c for c in sim.roots if isinstance(c, TokenDriver))
    return summary, driver


def cached_run(settings=SETTINGS, **sets):
    return run(settings, **{"prefix_cache.enabled": "true", **sets})


def requests():
    return {r.id: r for r in open_trace(TRACE, "mooncake", limit=LIMIT)}


def chain_keys(r):
    """The request's full prompt blocks, each named by its whole chain of hash ids (a block is
    reusable only with every block before it)."""
    b = r.prefix_block_tokens
    return [
        tuple(r.prefix_hash_ids[: i + 1])
        for i in range(len(r.prefix_hash_ids))
        if (i + 1) * b <= r.prompt_tokens
    ]


def reference_lru(reqs, events, capacity=None):
    """The cache replayed on an OrderedDict: per request the tokens it need not prefill; hits and
    evictions. Hits are the leading cached blocks, touched last block first; insertions put the
    blocks not cached, last block first, and evict the least recently used beyond ``capacity``."""
    cache: OrderedDict = OrderedDict()
    cached, hits, evictions = {}, 0, 0
    for kind, rid, _ in events:
        r = reqs[rid]
        keys = chain_keys(r)
        if kind == "lookup":
            n = 0
            while n < len(keys) and keys[n] in cache:
                n += 1
            for k in reversed(keys[:n]):
                cache.move_to_end(k)
            cached[rid] = min(n * r.prefix_block_tokens, r.prompt_tokens - 1)
            hits += n
        else:
            for k in reversed(keys):
                if k in cache:
                    continue
                cache[k] = None
                if capacity is not None and len(cache) > capacity:
                    cache.popitem(last=False)
                    evictions += 1
    return cached, hits, evictions


def block_bytes_per_chip(model="llama-3.1-8b", tp=8, block=512):
    """One block's KV on one chip: K and V, every layer, the chip's share of the KV heads, bf16."""
    m = load_model(model)
    return block * 2 * m.layers * m.kv_heads * m.head_dim * 2 // min(tp, m.kv_heads)


@pytest.fixture(scope="module")
def unbounded():
    return cached_run()


def test_unbounded_prefill_tokens_are_the_prompt_less_an_independent_count_of_cached_blocks(unbounded):
    summary, driver = unbounded
    cache = driver.scheduler.prefix_cache
    reqs = requests()
    # the documented timing rule, checked on the log: lookups at admission, insertions when the
    # prefill completes (the iteration that emits the first token)
    inserted = {rid: t for kind, rid, t in cache.events if kind == "insert"}
    assert inserted == {rid: rec.first_token_ps for rid, rec in driver.records.items()}
    assert all(t >= reqs[rid].arrival_ps for kind, rid, t in cache.events if kind == "lookup")
    cached, hits, _ = reference_lru(reqs, cache.events)
    assert hits > 0  # the slice shares prefixes (Mooncake's block 0 and earlier turns)
    total_prompt = sum(r.prompt_tokens for r in reqs.values())
    computed = sum(it.prefill_tokens for it in driver.iterations)
    pc = summary["prefix_cache"]
    assert computed == total_prompt - sum(cached.values()) == pc["prefill_tokens_computed"]
    assert pc["cached_tokens"] == sum(cached.values()) and pc["hit_blocks"] == hits
    assert {x.request: x.cached_tokens for x in cache.lookups} == cached
    assert pc["full_blocks"] == sum(len(chain_keys(r)) for r in reqs.values())
    assert pc["by_tier"]["hbm"]["evictions"] == 0
    assert all(rec.generated == reqs[rid].output_tokens for rid, rec in driver.records.items())


def test_a_fully_cached_prompt_still_computes_one_token():
    """The same request twice, the second after the first finished: every full block hits, and a
    prompt of whole blocks leaves its last token to compute (so the prefill emits a token)."""
    from sim.requests.record import Request

    ids = tuple(range(4))
    first = Request(0, 0, 2048, 4, ids, 512)
    again = Request(1, 10**12, 2048, 4, ids, 512)  # 1 s later
    summary, driver = cached_run(
        {"system": "default", "requests": [first, again], "set": {"software": "none"}}
    )
    assert [x.cached_tokens for x in driver.scheduler.prefix_cache.lookups] == [0, 2047]
    assert summary["prefix_cache"]["prefill_tokens_computed"] == 2048 + 1


def test_bounded_lru_hits_match_a_reference_lru():
    block = block_bytes_per_chip()
    capacity = 96  # blocks: far fewer than the slice's ~800, so LRU order decides the hits
    summary, driver = cached_run(**{"prefix_cache.capacity": f"{capacity * block}B"})
    cache = driver.scheduler.prefix_cache
    pc = summary["prefix_cache"]
    cached, hits, evictions = reference_lru(requests(), cache.events, capacity)
    assert pc["block_bytes_per_chip"] == block
    assert pc["by_tier"]["hbm"]["capacity_blocks"] == capacity
    assert pc["hit_blocks"] == hits and pc["by_tier"]["hbm"]["evictions"] == evictions > 0
    assert pc["cached_tokens"] == sum(cached.values())
    assert pc["by_tier"]["hbm"]["peak_blocks"] == capacity
    # the pool on the KV memory is taken from the running requests' KV capacity, and the summary
    # reports what the batching policy had (review 13, finding 5); the plan's figure under its own key
    off, _ = run()
    assert pc["kv_capacity_tokens_plan"] == off["kv_capacity_tokens"]
    assert summary["kv_capacity_tokens"] == off["kv_capacity_tokens"] - capacity * 512
    assert driver.scheduler.kv_capacity_tokens == summary["kv_capacity_tokens"]
    assert pc["by_tier"]["hbm"]["ideal"] is False


def test_fifo_is_registered_and_differs_from_lru_only_in_order():
    assert {"lru", "fifo"} <= set(names("kv_eviction"))
    block = block_bytes_per_chip()
    summary, _ = cached_run(**{"prefix_cache.capacity": f"{96 * block}B", "prefix_cache.policy": "fifo"})
    pc = summary["prefix_cache"]
    assert pc["policy"] == "fifo" and pc["by_tier"]["hbm"]["peak_blocks"] == 96


def test_demotion_to_host_and_promotion_move_whole_blocks_over_the_link():
    block = block_bytes_per_chip()
    summary, driver = cached_run(
        **{"prefix_cache.tiers": "hbm,host", "prefix_cache.capacity": f"{24 * block}B,unbounded"}
    )
    cache, traffic = driver.scheduler.prefix_cache, driver.kv_tiers
    pc = summary["prefix_cache"]
    hbm, host = pc["by_tier"]["hbm"], pc["by_tier"][HOST]
    assert host["demoted_in"] == hbm["evictions"] > 0 and hbm["dropped"] == 0
    assert host["bytes_written"] == host["demoted_in"] * block  # demoted: blocks x block bytes
    assert hbm["bytes_read"] == hbm["evictions"] * block
    assert host["hits"] > 0 and hbm["promoted_in"] == host["hits"]  # every host hit comes back up
    assert host["bytes_read"] == host["hits"] * block  # promoted: blocks x block bytes
    # all of it went over the link but the moves the last iteration caused (nothing ran after)
    left = {(m.source, m.dest): 0 for m in cache.pending}
    for m in cache.pending:
        left[(m.source, m.dest)] += m.nbytes
    issued = pc["bytes_issued_per_chip"][HOST]
    assert issued["written"] == host["bytes_written"] - left.get(("hbm", HOST), 0)
    assert issued["read"] == host["bytes_read"] - left.get((HOST, "hbm"), 0)
    # the iterations waited for the link: at least each direction's bytes at its bandwidth
    bw = PrefixCacheParams().host_bandwidth
    assert traffic.waited_ps >= max(issued["read"], issued["written"]) / bw * 1e12
    assert summary["stall_breakdown"]["kv tier transfer (host)"] > 0
    reqs = requests()
    assert all(rec.generated == reqs[rid].output_tokens for rid, rec in driver.records.items())


FLASH = {
    "system": "hbf-hybrid",
    "trace": TRACE,
    "limit": LIMIT,
    # a small flash geometry so that the tier's log comes round several times in a short run:
    # 16 channels x 4 planes x 16-page blocks of 16 KiB = 16 MiB per erase stripe, 2 GiB per stack
    "set": {
        "software": "none",
        "chip.memory.hbf.params.planes_per_die": "4",
        "chip.memory.hbf.params.pages_per_block": "16",
    },
}


def test_a_flash_tier_counts_its_writes_against_endurance():
    block = block_bytes_per_chip()
    summary, driver = cached_run(
        FLASH, **{"prefix_cache.tiers": "hbf", "prefix_cache.capacity": f"{100 * block}B"}
    )
    pc = summary["prefix_cache"]
    f = pc["flash"]["hbf"]
    dev = driver.hardware.chips[0].memories["hbf"].device
    stacks = driver.hardware.chips[0].memories["hbf"].stacks
    page = dev.params.page_size
    slot = math.ceil(math.ceil(block / stacks) / page) * page  # a block's share of a stack, whole pages
    assert f["slot_bytes_per_stack"] == slot
    # the log spans whole 16 MiB erase stripes (16 channels x 4 planes x one 16-page block of 16 KiB
    # each, from FLASH's settings): 100 slots of 2,801,664 B (171 pages) = 267.2 MiB, so 17 stripes
    assert page == 16 * 1024 and slot == 171 * page
    assert f["configured_bytes_per_stack"] == 100 * slot
    assert f["region_bytes_per_stack"] == 17 * 16 * 2**20 and f["region_rounded_up"] is True
    unissued = sum(1 for m in driver.scheduler.prefix_cache.pending if m.dest == "hbf")
    assert f["blocks_written"] == pc["by_tier"]["hbf"]["inserted"] - unissued
    written = f["blocks_written"] * slot
    assert f["bytes_written_per_stack"] == written and f["pages_written_per_stack"] == written // page
    region = f["region_bytes_per_stack"]
    assert written > 2 * region  # the log wrapped
    # a sequential log erases each block once per pass after the first
    assert f["max_pe_cycles"] == math.ceil(written / region) - 1
    assert dev.stat.pages_programmed.value == written // page  # the device saw them all
    assert dev.stat.block_erases.value == f["block_erases"]
    # lifetime: endurance x capacity / (write rate x write amplification), in days
    sim_s = driver.env.now / 1e12
    wa = max(1.0, f["block_erases"] * dev.block_bytes / written)
    assert f["write_amplification"] == pytest.approx(wa, rel=1e-12)
    want = dev.params.endurance * dev.capacity_bytes / (written / sim_s * wa) / 86_400
    assert f["lifetime_days"] == pytest.approx(want, rel=1e-12)
    assert f["lifetime_days_region_only"] == pytest.approx(want * region / dev.capacity_bytes, rel=1e-12)
    # over the configured bytes alone (each P/E cycle absorbs 100 slots of writes)
    configured = dev.params.endurance * 100 * slot / (written / sim_s) / 86_400
    assert f["lifetime_days_configured_only"] == pytest.approx(configured, rel=1e-12)
    assert f["mean_pe_cycles"] == pytest.approx(f["block_erases"] / (region // dev.block_bytes))


def test_a_trace_without_hash_ids_never_hits_and_runs_as_without_the_cache():
    azure = {"system": "default", "trace": "traces/azure_conv_200.csv", "limit": 12, "set": {}}
    on, _ = cached_run(azure)
    off, _ = run(azure)
    assert on["prefix_cache"]["hit_blocks"] == on["prefix_cache"]["requests_with_hash_ids"] == 0
    assert on["ttft_ms"] == off["ttft_ms"] and on["tokens"] == off["tokens"]
    assert "prefix_cache" not in off


@pytest.mark.parametrize(
    ("sets", "where", "what"),
    [
        ({"prefix_cache.tiers": "hbm,ssd"}, "prefix_cache.tiers", "unknown tier 'ssd'"),
        ({"prefix_cache.tiers": "hbm,hbm"}, "prefix_cache.tiers", "each tier once"),
        ({"prefix_cache.capacity": "lots"}, "prefix_cache.capacity", "'unbounded'"),
        ({"prefix_cache.capacity": "1GiB,2GiB"}, "prefix_cache.capacity", "1 or 1 capacities"),
        ({"prefix_cache.policy": "mru"}, "prefix_cache.policy", "lru"),
        ({"prefix_cache.capacity": "80GiB"}, "prefix_cache.capacity", "leaves no KV capacity"),
        ({"prefix_cache.capacity": "1MiB"}, "prefix_cache.capacity", "less than one 512-token block"),
        ({"prefix_cache.colour": "red"}, "prefix_cache.colour", "unknown parameter"),
        ({"batching.policy": "static"}, "prefix_cache.enabled", "continuous"),
        # review 13: the trace's hash ids decide the blocks (finding 9); the KV memory on top (10)
        ({"prefix_cache.shared_prefix_tokens": "300"}, "prefix_cache.shared_prefix_tokens", "hash ids"),
        ({"prefix_cache.block_tokens": "16"}, "prefix_cache.block_tokens", "hash ids"),
        (
            {"prefix_cache.tiers": "host,hbm", "prefix_cache.capacity": "1GiB,unbounded"},
            "prefix_cache.tiers",
            "top tier",
        ),
        ({"prefix_cache.tiers": "host,hbm"}, "prefix_cache.tiers", "top tier"),
    ],
)
def test_bad_settings_name_their_key(sets, where, what):
    with pytest.raises(ConfigError) as err:
        cached_run({**SETTINGS, "limit": 4}, **sets)
    assert where in str(err.value) and what in str(err.value)


AZURE = {"system": "default", "trace": "traces/azure_conv_200.csv", "limit": 4, "set": {}}


@pytest.mark.parametrize(
    ("settings", "sets", "where", "what"),
    [
        # below one block (8 MiB per chip for a 512-token block), refused whatever the trace
        (AZURE, {"prefix_cache.capacity": "1B"}, "--set prefix_cache.capacity", "less than one 512"),
        (SETTINGS, {"prefix_cache.capacity": "1B"}, "--set prefix_cache.capacity", "less than one 512"),
        (
            AZURE,
            {
                "prefix_cache.capacity": "1B",
                "prefix_cache.shared_prefix_tokens": "64",
                "prefix_cache.block_tokens": "16",
            },
            "--set prefix_cache.capacity",
            "less than one 16",
        ),
        (AZURE, {"prefix_cache.block_tokens": "16"}, "--set prefix_cache.block_tokens", "shared_prefix"),
    ],
)
def test_settings_the_trace_makes_meaningless_are_refused_before_the_run(
    settings, sets, where, what, monkeypatch
):
    """Review 13, finding 9: refused as the run is built or planned, before any driver exists."""
    import sim.experiments.run as run_module

    def no_driver(*args, **kwargs):
        raise AssertionError("the run started before the setting was refused")

    monkeypatch.setattr(run_module, "TokenDriver", no_driver)
    with pytest.raises(ConfigError) as err:
        cached_run(settings, **sets)
    assert where in str(err.value) and what in str(err.value)


def test_an_unbounded_tier_says_it_is_an_idealisation():
    """Review 13, finding 15: the default capacity takes no memory; the summary and line say so."""
    from sim.serving.prefix_cache import summary_line

    summary, _ = cached_run({**SETTINGS, "limit": 4})
    pc = summary["prefix_cache"]
    assert pc["by_tier"]["hbm"]["ideal"] is True and pc["by_tier"]["hbm"]["capacity_blocks"] is None
    assert "hbm (unbounded, ideal: takes no memory)" in summary_line(pc)
    off, _ = run({**SETTINGS, "limit": 4})
    assert summary["kv_capacity_tokens"] == pc["kv_capacity_tokens_plan"] == off["kv_capacity_tokens"]


def test_settings_without_enabling_it_are_refused_and_a_fixed_batch_has_nothing_to_cache():
    with pytest.raises(ConfigError, match="prefix caching is off"):
        run(**{"prefix_cache.tiers": "host"})
    with pytest.raises(ConfigError, match="needs a request trace"):
        build = {"system": "default", "batch": 2, "context": 64, "steps": 2, "set": {}}
        cached_run(build)


def test_off_by_default():
    assert PrefixCacheParams().enabled is False
    spec, _ = build_run(SETTINGS)
    assert spec.prefix_cache.enabled is False


def test_a_trace_without_hash_ids_opts_in_with_a_shared_system_prompt():
    """shared_prefix_tokens gives every request the same leading blocks; hits follow the reference."""
    azure = {"system": "default", "trace": "traces/azure_conv_200.csv", "limit": 16, "set": {}}
    summary, driver = cached_run(azure, **{"prefix_cache.shared_prefix_tokens": "1024"})
    reqs = {rid: rec.request for rid, rec in driver.records.items()}
    assert all(r.prefix_block_tokens == 512 for r in reqs.values())
    cached, hits, _ = reference_lru(reqs, driver.scheduler.prefix_cache.events)
    pc = summary["prefix_cache"]
    assert pc["hit_blocks"] == hits > 0 and pc["cached_tokens"] == sum(cached.values())
    assert all(v <= 1024 for v in cached.values())  # only the shared system prompt is ever reused
    total = sum(r.prompt_tokens for r in reqs.values())
    assert pc["prefill_tokens_computed"] == total - sum(cached.values())


def test_tiers_demote_promote_and_drop_by_hand():
    """Two tiny tiers worked through by hand: HBM holds 2 blocks, host 1; 4-token blocks of 4 B."""
    from sim.requests.record import Request
    from sim.serving.prefix_cache import PrefixCache

    params = PrefixCacheParams(enabled=True, tiers="hbm,host", capacity="8B,4B")
    cache = PrefixCache(params, "hbm", bytes_per_token=1.0)

    r0 = Request(0, 0, 12, 1, (1, 2, 3), 4)
    assert cache.lookup(r0, 0) == 0
    cache.insert(r0, 1)
    name = {v: k[1] for k, v in cache._nodes.items()}  # node -> its hash id (ids are distinct here)

    def tiers():
        return [[name[n] for n in t.order._order] for t in cache.tiers]

    # inserted last block first, so block 3 is the oldest: demoted to host
    assert tiers() == [[2, 1], [3]]
    assert [m.kind for m in cache.take_moves()] == ["demote"]
    r1 = Request(1, 2, 12, 1, (1, 2, 5), 4)
    assert cache.lookup(r1, 3) == 8  # blocks 1 and 2 hit in HBM
    cache.insert(r1, 4)  # 5 in; 2 demoted; host full: 3 dropped
    name = {v: k[1] for k, v in cache._nodes.items()}
    assert tiers() == [[1, 5], [2]]
    assert cache.tiers[1].stats.dropped == 1 and cache.tiers[0].stats.evictions == 2
    assert [m.kind for m in cache.take_moves()] == ["demote"]
    r2 = Request(2, 5, 13, 1, (1, 2, 3), 4)
    assert cache.lookup(r2, 6) == 8  # 1 in HBM, 2 on host, 3 was dropped: two leading hits
    assert tiers() == [[2, 1], [5]]  # 2 promoted (1 demoted), then 1 promoted back (5 demoted)
    moves = cache.take_moves()
    assert [(m.kind, m.source, m.dest) for m in moves] == [
        ("hit", "host", "hbm"),
        ("demote", "hbm", "host"),
        ("hit", "host", "hbm"),
        ("demote", "hbm", "host"),
    ]
    assert all(m.nbytes == 4 for m in moves)
    assert [t.stats.hits for t in cache.tiers] == [2 + 1, 1]  # r1: 1, 2 on HBM; r2: 1 on HBM, 2 on host
