"""Prefetch windows over an HBF device: hit/late/miss accounting, Little's law, policies."""

from __future__ import annotations

import pytest

from sim.core.errors import ConfigError, SimulationError
from sim.core.registry import REGISTRY
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.memory.hbf import HBFParams, HighBandwidthFlash
from sim.memory.prefetch import Prefetcher, PrefetchParams, StreamReport

PAGE = 4096
# 32 planes of 4 KiB pages, tR = 10 us: array peak 13.1 GB/s; buses are fast, so the
# unloaded latency L is tR + 204.8 ns + 40.96 ns and peak x L / page ~ 33 pages.
DEVICE = dict(
    channels=4,
    dies_per_channel=1,
    planes_per_die=8,
    multiplane=8,
    blocks_per_plane=8,
    pages_per_block=16,
    page_size=PAGE,
    sector_size=PAGE,
    tR="10us",
    channel_rate="20GB/s",
    interface_rate="100GB/s",
    base_latency="0ns",
)


def setup(policy: str, window: int, fidelity: str = "transaction"):
    sim = Simulation(seed=3)
    dev = HighBandwidthFlash(sim, "hbf", HBFParams(fidelity=fidelity, **DEVICE))
    pf = Prefetcher(sim, "pf", dev, PrefetchParams(policy=policy, window_pages=window))
    return sim, dev, pf


def run_streams(sim: Simulation, pf: Prefetcher, calls: list[tuple]) -> list[StreamReport]:
    """Run ``pf.stream(*args, **kwargs)`` for each (args, kwargs) in order; return the reports."""
    reports: list[StreamReport] = []

    def consumer():
        for args, kwargs in calls:
            reports.append((yield from pf.stream(*args, **kwargs)))

    sim.env.process(consumer())
    sim.run()
    sim.finalize()
    return reports


def latency(dev: HighBandwidthFlash) -> int:
    return dev.unloaded_latency_ps(PAGE)


@pytest.mark.parametrize("fidelity", ["detailed", "transaction"])
def test_on_demand_cold_stream_misses_every_page_and_pays_latency_each_time(fidelity):
    sim, dev, pf = setup("on_demand", window=64, fidelity=fidelity)
    n = 20
    (rep,) = run_streams(sim, pf, [(("t0", 0, n * PAGE), {})])
    assert (rep.hits, rep.late_hits, rep.misses) == (0, 0, n)
    assert rep.stall_ps == n * latency(dev)
    assert rep.end_ps - rep.start_ps == n * latency(dev)
    assert pf.stat.window_occupancy.hi == 1


def test_sequential_with_slow_consumer_hides_all_but_the_first_page():
    # The consumer computes for 2L per page, so any page requested one page-time ahead is ready.
    sim, dev, pf = setup("sequential", window=4)
    L = latency(dev)
    n = 24
    (rep,) = run_streams(sim, pf, [(("t0", 0, n * PAGE), {"consume_ps_per_page": 2 * L})])
    assert (rep.hits, rep.late_hits, rep.misses) == (n - 1, 0, 1)
    assert rep.stall_ps == L
    assert rep.end_ps - rep.start_ps == L + n * 2 * L
    assert pf.stat.hits.value + pf.stat.late_hits.value + pf.stat.misses.value == n


def test_accounting_adds_up_and_bytes_are_conserved():
    sim, _, pf = setup("sequential", window=8)
    size = 37 * PAGE + 100  # a partial last page
    (rep,) = run_streams(sim, pf, [(("t0", 1000, size), {})])
    assert rep.pages == (1000 + size - 1) // PAGE + 1  # pages 0..37, first and last partial
    assert rep.hits + rep.late_hits + rep.misses == rep.pages
    assert pf.stat.bytes.value == size == pf.stat.bytes_requested.value
    assert pf.stat.stall_ns.value * 1000 == pytest.approx(rep.stall_ps)
    assert pf.stat.window_occupancy.value == 0
    assert pf.stat.window_occupancy.hi <= 8
    # Little's law on the window: mean occupancy x time = total page residence.
    occupancy_area = pf.stat.window_occupancy.time_average(sim.now) * sim.now
    assert occupancy_area == pytest.approx(pf.stat.residence_ns.total * 1000, rel=1e-9)
    assert pf.stat.effective_bandwidth_Bps.value == pytest.approx(rep.bandwidth_Bps)


@pytest.mark.parametrize("window", [1, 4, 8, 16])
def test_little_law_small_window_is_capped_at_window_over_latency(window):
    # Each page spends at least L in the window, so throughput <= W x page / L (Little's law);
    # with W below the number of planes nothing else queues and the bound is reached.
    sim, dev, pf = setup("sequential", window=window)
    n = 512
    (rep,) = run_streams(sim, pf, [(("t0", 0, n * PAGE), {})])
    bound = window * PAGE * PS_PER_S / latency(dev)
    assert rep.bandwidth_Bps <= bound * (1 + 1e-9)
    assert rep.bandwidth_Bps >= 0.97 * bound
    assert rep.bandwidth_Bps < 0.5 * dev.peak_bandwidth_Bps()


def test_little_law_window_above_bandwidth_times_latency_approaches_peak():
    sim, dev, pf = setup("sequential", window=4)
    needed = dev.peak_bandwidth_Bps() * latency(dev) / PS_PER_S / PAGE  # ~33 pages
    sim, dev, pf = setup("sequential", window=int(4 * needed))
    n = 2048
    (rep,) = run_streams(sim, pf, [(("t0", 0, n * PAGE), {})])
    peak = dev.peak_bandwidth_Bps()
    assert 0.95 * peak <= rep.bandwidth_Bps <= peak
    # ... while a window of a quarter of bandwidth x latency cannot get past a quarter of peak.
    sim, dev, pf = setup("sequential", window=int(needed / 4))
    (small,) = run_streams(sim, pf, [(("t0", 0, n * PAGE), {})])
    assert small.bandwidth_Bps <= 0.25 * peak


def test_next_tensor_hides_the_first_page_latency_of_the_next_tensor():
    n = 24
    a, b = (0, n * PAGE), (n * PAGE, n * PAGE)
    results = {}
    for policy in ("sequential", "next_tensor"):
        sim, dev, pf = setup(policy, window=4)
        L = latency(dev)
        consume = {"consume_ps_per_page": 2 * L}
        results[policy] = run_streams(
            sim, pf, [(("A", *a), {"hint_next": b, **consume}), (("B", *b), consume)]
        )
    seq_b, nxt_b = results["sequential"][1], results["next_tensor"][1]
    assert (seq_b.misses, seq_b.stall_ps) == (1, L)  # B starts cold
    assert (nxt_b.hits, nxt_b.late_hits, nxt_b.misses) == (n, 0, 0)
    assert nxt_b.stall_ps == 0
    assert nxt_b.end_ps - nxt_b.start_ps == n * 2 * L


def test_prefetched_pages_of_a_tensor_that_never_comes_are_dropped_as_waste():
    sim, _, pf = setup("next_tensor", window=8)
    n = 16
    hinted = (n * PAGE, n * PAGE)
    other = (4 * n * PAGE, n * PAGE)
    run_streams(sim, pf, [(("A", 0, n * PAGE), {"hint_next": hinted}), (("C", *other), {})])
    wasted = pf.stat.wasted_bytes.value
    assert wasted > 0 and wasted % PAGE == 0
    assert pf.stat.bytes_requested.value == pf.stat.bytes.value + wasted
    assert pf.stat.window_occupancy.value == 0


def test_unknown_policy_is_a_config_error_naming_the_key(monkeypatch):
    # Resolve against what is registered so far (skip importing every built-in module).
    monkeypatch.setattr(REGISTRY, "loaded", True)
    sim = Simulation(0)
    dev = HighBandwidthFlash(sim, "hbf", HBFParams(**DEVICE))
    with pytest.raises(ConfigError) as info:
        Prefetcher(sim, "pf", dev, PrefetchParams(policy="psychic"))
    assert info.value.where.endswith("policy")
    assert "next_tensor" in info.value.message  # lists the known policies


def test_bad_window_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as info:
        PrefetchParams(window_pages=0)
    assert info.value.where == "window_pages"


def test_one_stream_at_a_time():
    sim, _, pf = setup("sequential", window=4)

    def consumer():
        yield from pf.stream("a", 0, 8 * PAGE)

    sim.env.process(consumer())
    sim.env.process(consumer())
    with pytest.raises(SimulationError, match="another stream"):
        sim.run()


def test_unit_defaults_to_the_device_page_and_chunks_cut_at_page_boundaries():
    _, _, pf = setup("sequential", window=4)
    assert pf.unit == PAGE
    assert pf.chunks(PAGE - 10, 20) == [(PAGE - 10, 10), (PAGE, 10)]
    assert pf.chunks(0, 2 * PAGE) == [(0, PAGE), (PAGE, PAGE)]
