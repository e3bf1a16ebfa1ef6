"""3D DRAM against closed forms: peak = width x rate, streaming near it, random traffic bounded by
tFAW, levels agreeing on steady streams, no level ever above peak, energy = counts x unit energies."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from sim.core.simulation import Simulation
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D
from sim.memory.presets_dram import HBM3, PRESETS

LEVELS = ("detailed", "transaction")
ALL_LEVELS = (*LEVELS, "analytic")
# hbm3 timings on a 2-channel (4 pseudo-channel) slice: fast at the detailed level, same per-lane physics.
SMALL = {"channels": 2, "rows": 256}

Workload = Callable[[Dram3D], Iterator[tuple[int, int, bool]]]


def build(level: str, preset=HBM3, **overrides) -> tuple[Simulation, Dram3D]:
    sim = Simulation(seed=3)
    params = preset.params(Dram3D.Params, {"fidelity": level, **overrides})
    return sim, Dram3D(sim, "dram", params)


def closed_loop(sim: Simulation, dev: Dram3D, workload: Workload, workers: int) -> list[MemRequest]:
    """``workers`` processes each issue the next request of ``workload`` as soon as their last completes."""
    requests = workload(dev)
    done: list[MemRequest] = []

    def worker():
        for addr, size, write in requests:
            req = MemRequest(addr, size, write=write)
            yield dev.access(req)
            done.append(req)

    for _ in range(workers):
        sim.env.process(worker())
    sim.run()
    return done


def throughput(done: list[MemRequest]) -> float:
    """Bytes moved over the span from the first arrival to the last completion (bytes/s)."""
    start = min(r.arrive_ps for r in done)
    end = max(r.done_ps for r in done)
    return sum(r.size for r in done) / ((end - start) / 1e12)


def sequential(size: int, total: int) -> Workload:
    def gen(dev: Dram3D):
        for addr in range(0, total, size):
            yield addr, size, False

    return gen


def random_aligned(size: int, count: int, write_ratio: float = 0.0, seed: int = 5) -> Workload:
    def gen(dev: Dram3D):
        rng = np.random.default_rng(seed)
        for _ in range(count):
            slot = int(rng.integers(0, dev.capacity_bytes // size))
            yield slot * size, size, bool(rng.random() < write_ratio)

    return gen


def test_peak_is_channels_times_tsv_width_times_rate():
    _, dev = build("transaction", channels=8, tsv_width_bits=128, tsv_rate="2Gb/s", pseudo_channels=4)
    assert dev.peak_bandwidth_Bps() == pytest.approx(8 * 128 * 2e9 / 8)
    # One burst crosses its pseudo-channel's share of the TSVs: 32 B over 32 pins at 2 Gb/s = 4 ns.
    assert dev.timing.tBURST == 4000


@pytest.mark.parametrize("level", LEVELS)
def test_streaming_row_hits_reach_90_percent_of_peak(level):
    sim, dev = build(level, **SMALL)
    done = closed_loop(sim, dev, sequential(4096, 1 << 20), workers=16)
    assert throughput(done) >= 0.9 * dev.peak_bandwidth_Bps()
    assert dev.stat.row_hits.value >= 0.95 * dev.stat.bursts_read.value


@pytest.mark.parametrize("level", LEVELS)
def test_random_small_reads_are_bounded_by_the_activation_window(level):
    sim, dev = build(level, **SMALL)
    done = closed_loop(sim, dev, random_aligned(32, 3000), workers=64)
    t = dev.timing
    # Almost every random 32 B read opens a row; a pseudo-channel opens at most 4 rows per tFAW.
    act_bound = dev.geometry.lanes * 4 * 32 / (t.tFAW / 1e12)
    measured = throughput(done)
    assert measured < 0.5 * dev.peak_bandwidth_Bps()
    assert measured <= 1.05 * act_bound
    assert measured >= 0.6 * act_bound  # and the scheduler does get close to that bound


def test_detailed_and_transaction_agree_on_a_steady_stream():
    rates = {}
    for level in LEVELS:
        sim, dev = build(level, **SMALL)
        rates[level] = throughput(closed_loop(sim, dev, sequential(8192, 1 << 20), workers=8))
    assert rates["transaction"] == pytest.approx(rates["detailed"], rel=0.05)


def test_detailed_and_transaction_agree_on_random_reads():
    rates = {}
    for level in LEVELS:
        sim, dev = build(level, **SMALL)
        rates[level] = throughput(closed_loop(sim, dev, random_aligned(64, 2000), workers=64))
    assert rates["transaction"] == pytest.approx(rates["detailed"], rel=0.10)


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize(
    "workload",
    [sequential(4096, 1 << 19), random_aligned(32, 1500), random_aligned(512, 500, write_ratio=0.5)],
    ids=["sequential", "random32", "mixed512"],
)
def test_no_level_ever_exceeds_peak(level, workload):
    sim, dev = build(level, **SMALL)
    done = closed_loop(sim, dev, workload, workers=32)
    peak = dev.peak_bandwidth_Bps()
    assert throughput(done) <= peak
    for r in done:  # no single request beats the interface either
        assert r.size / (r.latency_ps / 1e12) <= peak


@pytest.mark.parametrize("size", [32, 64, 256, 1024, 4096, 16384])
def test_idle_latency_matches_the_twin(size):
    lat = {}
    for level in ALL_LEVELS:
        sim, dev = build(level, **SMALL)
        lat[level] = closed_loop(sim, dev, sequential(size, size), workers=1)[0].latency_ps
    twin = dev.unloaded_latency_ps(size)
    t = dev.timing
    assert lat["transaction"] == twin == lat["analytic"]
    assert lat["detailed"] == pytest.approx(twin, rel=0.05)
    if size == 32:  # one burst from a precharged bank
        assert twin == t.tRCD + t.tCL + t.tBURST == lat["detailed"]
    assert twin >= size / dev.peak_bandwidth_Bps() * 1e12


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_streaming_energy_is_counts_times_unit_energies(level):
    sim, dev = build(level, refresh_mode="off", **SMALL)
    total = 1 << 19
    closed_loop(sim, dev, sequential(4096, total), workers=8)
    sim.finalize()
    p, st, g = dev.params, dev.stat, dev.geometry
    bursts = total // g.burst_bytes
    rows = total // g.row_bytes  # the streaming mapping opens each row exactly once
    assert st.bursts_read.value == bursts
    assert st.activates.value == rows
    assert st.energy_act_pj.value == pytest.approx(rows * p.act_energy)
    assert st.energy_read_pj.value == pytest.approx(total * 8 * p.read_energy_per_bit)
    assert st.energy_tsv_pj.value == pytest.approx(total * 8 * p.tsv_energy_per_bit)
    assert st.energy_refresh_pj.value == 0
    assert st.energy_pj.value == pytest.approx(
        st.energy_act_pj.value + st.energy_read_pj.value + st.energy_tsv_pj.value
    )
    if level != "analytic":
        busy = sum(bus.stat.busy_ps.value for bus in dev.tsv)
        assert busy == bursts * dev.timing.tBURST
        assert all(0 < bus.stat.occupancy.value <= 1 for bus in dev.tsv)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_refresh_energy_accrues_with_time(level):
    sim, dev = build(level, **SMALL)
    t = dev.timing
    closed_loop(sim, dev, sequential(4096, 1 << 16), workers=2)

    def idle():
        yield sim.env.timeout(20 * t.tREFI)

    sim.env.process(idle())
    sim.run()
    sim.finalize()
    # per-bank mode: each lane refreshes one bank every tREFI / banks, each costing 1/banks of a REF
    lanes, banks = dev.geometry.lanes, dev.geometry.banks_per_lane
    expected_refs = lanes * (sim.now // (t.tREFI // banks))
    assert dev.stat.energy_refresh_pj.value == pytest.approx(
        expected_refs * dev.params.refresh_energy / banks, rel=0.01
    )


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_streams_near_its_peak(preset):
    sim, dev = build("transaction", preset=preset)
    done = closed_loop(sim, dev, sequential(256 << 10, 32 << 20), workers=16)
    assert 0.9 * dev.peak_bandwidth_Bps() <= throughput(done) <= dev.peak_bandwidth_Bps()


def test_transaction_level_costs_one_timeout_per_request():
    sim, dev = build("transaction")
    n, workers = 2048, 16
    closed_loop(sim, dev, sequential(64 << 10, n * (64 << 10)), workers=workers)
    # per request: the access process starts, waits one timeout, ends; per worker: start and end
    assert sim.env.events_processed <= 3 * n + 2 * workers + 1
