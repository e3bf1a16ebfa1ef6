"""HBF bandwidth against closed forms: dies x planes x page / tR, bus and interface limits, Little's
law, agreement of the detailed and transaction levels, and no level above the analytic peak."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.memory.device import MemRequest
from sim.memory.hbf import HBFParams, HighBandwidthFlash

PAGE = 4096
TR = 10_000_000  # 10 us
# 2 channels x 2 dies x 4 planes = 16 planes: array peak 16 x 4 KiB / 10 us = 6.55 GB/s.
SMALL = dict(
    channels=2,
    dies_per_channel=2,
    planes_per_die=4,
    multiplane=4,
    blocks_per_plane=8,
    pages_per_block=16,
    page_size=PAGE,
    sector_size=1024,
    tR=TR,
    channel_rate="10GB/s",
    interface_rate="100GB/s",
    base_latency="100ns",
)
ARRAY_PEAK = 16 * PAGE * PS_PER_S / TR


@dataclass
class Run:
    dev: HighBandwidthFlash
    size: int
    done_ps: list[int]
    latency_ps: list[int]

    def steady_bandwidth(self) -> float:
        """Bytes per second between the 10th and 90th percentile completions (no ramp, no tail)."""
        done = sorted(self.done_ps)
        k0, k1 = len(done) // 10, (9 * len(done)) // 10
        return (k1 - k0) * self.size * PS_PER_S / (done[k1] - done[k0])

    def bandwidth(self) -> float:
        return len(self.done_ps) * self.size * PS_PER_S / max(self.done_ps)

    def mean_latency(self) -> float:
        return sum(self.latency_ps) / len(self.latency_ps)


def closed_loop(params: HBFParams, workers: int, size: int, total: int, pattern: str, seed: int = 1) -> Run:
    """``workers`` processes each issue reads back to back until ``total`` have been issued."""
    sim = Simulation(seed)
    dev = HighBandwidthFlash(sim, "hbf", params)
    rng = sim.rng["test.addresses"]
    slots = dev.capacity_bytes // size
    state = {"issued": 0, "next": 0}
    run = Run(dev, size, [], [])

    def worker():
        while state["issued"] < total:
            state["issued"] += 1
            if pattern == "sequential":
                slot = state["next"]
                state["next"] = (slot + 1) % slots
            else:
                slot = int(rng.integers(slots))
            req = MemRequest(slot * size, size)
            yield dev.access(req)
            run.done_ps.append(req.done_ps)
            run.latency_ps.append(req.latency_ps)

    for _ in range(workers):
        sim.env.process(worker())
    sim.run()
    sim.finalize()
    assert len(run.done_ps) == total
    return run


LEVELS = ("detailed", "transaction")


@pytest.mark.parametrize("fidelity", LEVELS)
def test_array_bound_stack_reaches_dies_x_planes_x_page_over_tR(fidelity):
    run = closed_loop(HBFParams(fidelity=fidelity, **SMALL), 64, PAGE, 3000, "sequential")
    assert run.dev.peak_bandwidth_Bps() == pytest.approx(ARRAY_PEAK)
    assert run.steady_bandwidth() == pytest.approx(ARRAY_PEAK, rel=0.02)
    assert run.bandwidth() <= ARRAY_PEAK


@pytest.mark.parametrize("fidelity", LEVELS)
@pytest.mark.parametrize(
    ("override", "limit"),
    [
        ({"channel_rate": "1GB/s"}, 2 * 1e9),  # channels x channel rate
        ({"interface_rate": "3GB/s"}, 3e9),  # the stack interface
        ({"multiplane": 1}, 4 * PAGE * PS_PER_S / TR),  # dies x multiplane x page / tR
    ],
    ids=["channel-bound", "interface-bound", "multiplane-bound"],
)
def test_stack_bandwidth_stops_at_the_binding_limit(fidelity, override, limit):
    params = HBFParams(fidelity=fidelity, **{**SMALL, **override})
    run = closed_loop(params, 64, PAGE, 3000, "sequential")
    assert run.dev.peak_bandwidth_Bps() == pytest.approx(limit)
    assert limit < ARRAY_PEAK
    assert run.steady_bandwidth() == pytest.approx(limit, rel=0.02)


@pytest.mark.parametrize("fidelity", LEVELS)
@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_below_saturation_bandwidth_is_concurrency_x_size_over_latency(fidelity, workers):
    params = HBFParams(fidelity=fidelity, **SMALL)
    run = closed_loop(params, workers, PAGE, 60 * workers, "sequential")
    little = workers * PAGE * PS_PER_S / run.mean_latency()
    assert run.bandwidth() == pytest.approx(little, rel=0.02)
    # With fewer requests than planes no plane queues: latency is the unloaded one plus at most
    # the bus and interface turns of the other in-flight pages.
    unloaded = run.dev.unloaded_latency_ps(PAGE)
    best = workers * PAGE * PS_PER_S / unloaded
    assert run.bandwidth() <= best * (1 + 1e-9)
    assert run.bandwidth() >= 0.97 * best
    assert run.bandwidth() < ARRAY_PEAK


AGREEMENT_CASES = {
    "array-bound": {},
    "balanced": {"channel_rate": "3.3GB/s", "interface_rate": "6.6GB/s"},
    "die-limited": {"multiplane": 2, "channel_rate": "3GB/s"},
}


@pytest.mark.parametrize("case", sorted(AGREEMENT_CASES))
@pytest.mark.parametrize("pattern", ["sequential", "random"])
@pytest.mark.parametrize(("size", "workers"), [(PAGE, 48), (4 * PAGE, 12), (1024, 8)])
def test_detailed_and_transaction_agree_within_5_percent(case, pattern, size, workers):
    values = {**SMALL, **AGREEMENT_CASES[case]}
    bw = {}
    lat = {}
    for fidelity in LEVELS:
        run = closed_loop(HBFParams(fidelity=fidelity, **values), workers, size, 1500, pattern)
        bw[fidelity] = run.bandwidth()
        lat[fidelity] = run.mean_latency()
    assert bw["transaction"] == pytest.approx(bw["detailed"], rel=0.05)
    assert lat["transaction"] == pytest.approx(lat["detailed"], rel=0.05)


@pytest.mark.parametrize("fidelity", ["detailed", "transaction", "analytic"])
@pytest.mark.parametrize("pattern", ["sequential", "random"])
@pytest.mark.parametrize("case", sorted(AGREEMENT_CASES))
def test_no_level_exceeds_the_analytic_peak(fidelity, pattern, case):
    params = HBFParams(fidelity=fidelity, **{**SMALL, **AGREEMENT_CASES[case]})
    run = closed_loop(params, 96, 2 * PAGE, 1000, pattern)
    dev = run.dev
    peak = dev.peak_bandwidth_Bps()
    if dev.stat.register_hits.value == 0:
        assert run.bandwidth() <= peak * (1 + 1e-9)
        assert run.steady_bandwidth() <= peak * (1 + 1e-9)
    else:
        # Re-reads served from page registers sense nothing: the array term bounds the pages
        # sensed, the buses bound the bytes delivered.
        p = params
        span = max(run.done_ps)
        buses = min(p.channels * p.channel_rate, p.interface_rate)
        assert run.bandwidth() <= buses * (1 + 1e-9)
        assert run.steady_bandwidth() <= buses * (1 + 1e-9)
        sensed = dev.stat.pages_read.value * p.page_size * PS_PER_S / span
        array = type(dev).peak_bandwidth_of(
            HBFParams(**{**params.as_dict(), "channel_rate": 1e30, "interface_rate": 1e30})
        )
        assert sensed <= array * (1 + 1e-9)
    # ... and every request took at least the unloaded latency of its size.
    assert min(run.latency_ps) >= run.dev.unloaded_latency_ps(2 * PAGE)


def test_utilization_stats_match_the_bottleneck():
    run = closed_loop(
        HBFParams(fidelity="transaction", **{**SMALL, "interface_rate": "3GB/s"}),
        64,
        PAGE,
        3000,
        "sequential",
    )
    st = run.dev.stat
    elapsed = max(run.done_ps)
    # Busy interface time is exactly bytes / rate; the interface is the bottleneck, so ~100 %.
    assert st.interface_utilization.value == pytest.approx(3000 * PAGE / 3e9 * PS_PER_S / elapsed, rel=1e-5)
    assert st.interface_utilization.value > 0.97
    assert st.interface_queue.time_average(elapsed) > 1.0
    # Planes are busy tR per page: total over planes = pages x tR.
    assert st.plane_utilization.total * elapsed == pytest.approx(3000 * TR, rel=1e-6)


def test_hbf_gen1_reaches_table_3_bandwidth_with_enough_requests_in_flight():
    # 1,638 GB/s x ~10.2 us ~ 16.7 MB must be in flight (Little's law): 96 x 256 KiB = 25 MB is.
    params = HBFParams(fidelity="transaction")  # defaults are the hbf-gen1 preset
    run = closed_loop(params, 96, 256 * 1024, 800, "sequential")
    assert run.dev.peak_bandwidth_Bps() == pytest.approx(1638.4e9)
    assert run.steady_bandwidth() == pytest.approx(1638.4e9, rel=0.02)
    # 16 x 256 KiB = 4 MiB in flight is a quarter of that: bandwidth follows Little's law instead.
    run = closed_loop(params, 16, 256 * 1024, 400, "sequential")
    little = 16 * 256 * 1024 * PS_PER_S / run.mean_latency()
    assert run.bandwidth() == pytest.approx(little, rel=0.03)
    assert run.bandwidth() < 0.5 * 1638.4e9


@pytest.mark.parametrize("fidelity", LEVELS)
@pytest.mark.parametrize("case", sorted(AGREEMENT_CASES))
def test_little_law_holds_for_every_internal_queue(fidelity, case):
    # Time-average queue length x elapsed time = total time spent waiting in that queue (L = lambda W),
    # whether the level was updated by events (detailed) or replayed from bookings (transaction).
    params = HBFParams(fidelity=fidelity, **{**SMALL, **AGREEMENT_CASES[case]})
    run = closed_loop(params, 64, 2 * PAGE, 800, "random")
    st = run.dev.stat
    now = run.dev.env.now
    for queue, waited_ns in (
        (st.plane_queue, st.plane_wait_ns),
        (st.die_queue, st.die_wait_ns),
        (st.channel_queue, st.channel_wait_ns),
        (st.interface_queue, st.interface_wait_ns),
    ):
        assert queue.time_average(now) * now == pytest.approx(waited_ns.value * 1000, rel=1e-9, abs=1e-3)
    total_wait_ns = st.plane_wait_ns.value + st.die_wait_ns.value + st.channel_wait_ns.value
    total_wait_ns += st.interface_wait_ns.value
    assert st.queue_delay_ns.total == pytest.approx(total_wait_ns, rel=1e-9)
