"""HBF write endurance: P/E counts per block, erase-before-write, and the wear-levelled lifetime."""

from __future__ import annotations

import math

import pytest

from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.memory.device import MemRequest
from sim.memory.hbf import HBFParams, HighBandwidthFlash

PAGE = 4096
GEOMETRY = dict(
    channels=2,
    dies_per_channel=1,
    planes_per_die=2,
    blocks_per_plane=2,
    pages_per_block=4,
    page_size=PAGE,
    sector_size=PAGE,
    tR="10us",
    tPROG="100us",
    tBERS="1ms",
    endurance=1000,
)
BLOCK = 4 * PAGE


def make(fidelity: str = "transaction") -> tuple[Simulation, HighBandwidthFlash]:
    sim = Simulation(seed=1)
    return sim, HighBandwidthFlash(sim, "hbf", HBFParams(fidelity=fidelity, **GEOMETRY))


def write_serially(sim: Simulation, dev: HighBandwidthFlash, addrs: list[int]) -> None:
    def writer():
        for a in addrs:
            yield dev.access(MemRequest(a, PAGE, write=True))

    sim.env.process(writer())
    sim.run()
    sim.finalize()


def test_projected_lifetime_is_endurance_x_capacity_over_write_rate():
    _, dev = make()
    cap = dev.capacity_bytes
    assert dev.projected_lifetime_s(1e6) == pytest.approx(1000 * cap / 1e6)
    assert dev.projected_lifetime_s(1e6, write_amplification=4) == pytest.approx(1000 * cap / 4e6)
    assert math.isinf(dev.projected_lifetime_s(0.0))


@pytest.mark.parametrize("fidelity", ["detailed", "transaction", "analytic"])
def test_sequential_passes_erase_each_block_once_per_pass(fidelity):
    sim, dev = make(fidelity)
    pages = dev.capacity_bytes // PAGE
    passes = 3
    write_serially(sim, dev, [(k % pages) * PAGE for k in range(passes * pages)])
    st = dev.stat
    # The device starts erased: the first pass is free, every later pass erases every block once.
    assert st.block_erases.value == (passes - 1) * dev.n_blocks
    assert all(dev.pe_cycles(b) == passes - 1 for b in range(dev.n_blocks))
    assert st.max_pe_cycles.value == st.mean_pe_cycles.value == passes - 1
    written = passes * dev.capacity_bytes
    assert st.bytes_written.value == written
    wa = max(1.0, st.block_erases.value * BLOCK / written)
    assert st.write_amplification.value == pytest.approx(wa)
    rate = written * PS_PER_S / sim.now
    assert st.projected_lifetime_s.value == pytest.approx(1000 * dev.capacity_bytes / (rate * wa))


def test_in_place_rewrites_pay_one_block_erase_each():
    sim, dev = make()
    k = 5
    write_serially(sim, dev, [3 * PAGE] * k)
    block = dev.block_of(3 * PAGE)
    assert dev.pe_cycles(block) == k - 1
    assert dev.stat.implicit_erases.value == k - 1
    assert dev.stat.write_amplification.value == pytest.approx((k - 1) * BLOCK / (k * PAGE))
    # Every rewrite after the first paid tBERS on top of tPROG.
    p = dev.params
    assert sim.now == k * dev.unloaded_latency_ps(PAGE, write=True) + (k - 1) * p.tBERS


def test_reads_do_not_wear_and_leave_lifetime_unreported():
    sim, dev = make()

    def reader():
        for a in range(0, dev.capacity_bytes, PAGE):
            yield dev.access(MemRequest(a, PAGE))

    sim.env.process(reader())
    sim.run()
    sim.finalize()
    assert dev.stat.block_erases.value == 0
    assert dev.stat.projected_lifetime_s.value == 0  # documented: 0 means no writes seen
    sim.finalize()  # finalize is idempotent
    assert dev.stat.plane_utilization.n == dev.n_planes
