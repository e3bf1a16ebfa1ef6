"""HBF page register: a sector read of the page its plane's register holds needs no new sense.

Source (module docstring of sim/memory/hbf.py): NAND reads sense a page into the page register
(00h-30h, tR); RANDOM DATA OUTPUT / Change Read Column (05h-E0h) then outputs other columns of that
page without tR. Every figure below is a closed form of the SMALL parameters.
"""

from __future__ import annotations

import pytest

from sim.core.simulation import Simulation
from sim.experiments.membench import MembenchParams, run_membench
from sim.memory.device import MemRequest
from sim.memory.factory import resolve_device
from sim.memory.hbf import HBFParams, HighBandwidthFlash

# The small flash of tests/component/test_hbf_timing.py: 4 KiB at 4.096 GB/s = 1 us per page on a
# channel, 100 ns through the interface.
from tests.component.test_hbf_timing import BASE, PAGE, SMALL, TBERS, TPROG, TR, X_CH, X_IF

SECTOR = 1024  # 4 sectors per page
XS_CH, XS_IF = X_CH // 4, X_IF // 4  # one sector over a channel bus / the interface
LEVELS = ("detailed", "transaction")


def make(fidelity: str, **overrides) -> tuple[Simulation, HighBandwidthFlash]:
    sim = Simulation(seed=1)
    dev = HighBandwidthFlash(sim, "hbf", HBFParams(fidelity=fidelity, **{**SMALL, **overrides}))
    return sim, dev


def issue(sim, dev, reqs, gap_ps=0):
    """Issue ``reqs`` one ``gap_ps`` apart (0: all at once), each from its own process; run."""

    def one(delay, req):
        if delay:
            yield sim.env.timeout(delay)
        yield dev.access(req)

    for k, r in enumerate(reqs):
        sim.env.process(one(k * gap_ps, r))
    sim.run()
    return reqs


def sense_pj(dev):
    return PAGE * 8 * dev.params.read_energy_per_bit


def io_pj(dev, nbytes):
    p = dev.params
    return nbytes * 8 * (p.channel_energy_per_bit + p.interface_energy_per_bit)


@pytest.mark.parametrize("fidelity", LEVELS)
def test_four_sector_reads_of_one_page_sense_it_once(fidelity):
    sim, dev = make(fidelity)
    reqs = issue(sim, dev, [MemRequest(5 * PAGE + k * SECTOR, SECTOR) for k in range(4)])
    # one sense; the sectors then leave one after another on the page's channel bus
    assert [r.done_ps for r in reqs] == [TR + (k + 1) * XS_CH + XS_IF + BASE for k in range(4)]
    assert dev.stat.pages_read.value == 1
    assert dev.stat.register_hits.value == 3
    assert dev.stat.channel_bytes.value == PAGE == dev.stat.interface_bytes.value
    assert dev.stat.energy_pj.value == pytest.approx(sense_pj(dev) + io_pj(dev, PAGE))


@pytest.mark.parametrize("fidelity", LEVELS)
def test_a_later_read_of_the_held_page_pays_only_the_buses(fidelity):
    sim, dev = make(fidelity)
    first, later = issue(
        sim, dev, [MemRequest(5 * PAGE, SECTOR), MemRequest(5 * PAGE + SECTOR, SECTOR)], 10 * TR
    )
    assert first.latency_ps == TR + XS_CH + XS_IF + BASE
    assert later.latency_ps == XS_CH + XS_IF + BASE
    assert (dev.stat.pages_read.value, dev.stat.register_hits.value) == (1, 1)


@pytest.mark.parametrize("fidelity", LEVELS)
def test_another_page_on_the_plane_replaces_the_register(fidelity):
    sim, dev = make(fidelity)
    stride = dev.n_planes * PAGE  # same plane, next page
    addrs = [5 * PAGE, 5 * PAGE + stride, 5 * PAGE + SECTOR]
    reqs = issue(sim, dev, [MemRequest(a, SECTOR) for a in addrs], 10 * TR)
    assert all(r.latency_ps == TR + XS_CH + XS_IF + BASE for r in reqs)
    assert (dev.stat.pages_read.value, dev.stat.register_hits.value) == (3, 0)


@pytest.mark.parametrize("fidelity", LEVELS)
def test_a_program_on_the_plane_invalidates_the_register(fidelity):
    sim, dev = make(fidelity)
    stride = dev.n_planes * PAGE
    reqs = [
        MemRequest(5 * PAGE, SECTOR),
        MemRequest(5 * PAGE + 2 * stride, PAGE, write=True),  # same plane, another (erased) page
        MemRequest(5 * PAGE + SECTOR, SECTOR),
    ]
    issue(sim, dev, reqs, 2 * TPROG)
    assert reqs[2].latency_ps == TR + XS_CH + XS_IF + BASE
    assert (dev.stat.pages_read.value, dev.stat.register_hits.value) == (2, 0)


@pytest.mark.parametrize("fidelity", LEVELS)
def test_an_erase_on_the_plane_invalidates_the_register(fidelity):
    sim, dev = make(fidelity)
    read = MemRequest(5 * PAGE, SECTOR)
    again = MemRequest(5 * PAGE + SECTOR, SECTOR)

    def script():
        yield dev.access(read)
        yield dev.erase(5 * PAGE)
        yield dev.access(again)

    sim.env.process(script())
    sim.run()
    assert again.arrive_ps >= read.done_ps + TBERS
    assert again.latency_ps == TR + XS_CH + XS_IF + BASE
    assert (dev.stat.pages_read.value, dev.stat.register_hits.value) == (2, 0)


def test_analytic_level_senses_each_page_of_a_sequential_sector_stream_once():
    sim, dev = make("analytic")
    n_pages = 3 * dev.n_planes
    reqs = [MemRequest(k * SECTOR, SECTOR) for k in range(4 * n_pages)]

    def script():
        for r in reqs:
            yield dev.access(r)

    sim.env.process(script())
    sim.run()
    assert dev.stat.pages_read.value == n_pages
    assert dev.stat.register_hits.value == 3 * n_pages
    nbytes = n_pages * PAGE
    assert dev.stat.energy_pj.value == pytest.approx(n_pages * sense_pj(dev) + io_pj(dev, nbytes))


def test_analytic_level_hits_only_what_the_previous_read_left_in_registers():
    _, dev = make("analytic")
    n = dev.n_planes
    for addr, size in [(0, (n + 2) * PAGE), (PAGE, 2 * n * PAGE)]:
        dev.account_analytic(MemRequest(addr, size))
    # The first read leaves pages 2..n+1 in registers (pages 0, 1 were replaced by n, n+1); the
    # second read (pages 1..2n) hits pages 2..n+1 except those its own pages 1.. replaced first:
    # page q hits if q - n < 1, i.e. pages 2..n: n - 1 hits.
    assert dev.stat.register_hits.value == n - 1
    assert dev.stat.pages_read.value == (n + 2) + 2 * n - (n - 1)
    dev.account_analytic(MemRequest(0, PAGE, write=True))  # any write forgets the registers
    dev.account_analytic(MemRequest(2 * n * PAGE - SECTOR, SECTOR))
    assert dev.stat.register_hits.value == n - 1


@pytest.mark.parametrize("size", [SECTOR, 2 * SECTOR])
def test_detailed_and_transaction_agree_on_a_sequential_sector_stream(size):
    out = {}
    for fidelity in LEVELS:
        sim, dev = make(fidelity)
        n = 4 * PAGE // size * 2 * dev.n_planes  # two passes over every plane
        reqs = issue(sim, dev, [MemRequest(k * size, size) for k in range(n)])
        st = dev.stat
        out[fidelity] = (
            st.pages_read.value,
            st.register_hits.value,
            st.energy_pj.value,
            max(r.done_ps for r in reqs),
        )
    d, t = out["detailed"], out["transaction"]
    assert d[:2] == t[:2] and d[2] == pytest.approx(t[2])
    assert t[3] == pytest.approx(d[3], rel=0.05)


def test_hbf_gen1_sequential_4k_reads_reach_90_percent_of_peak():
    # 4,096 requests of 4 KiB = 16 MiB in flight >= peak x unloaded latency = 1,638.4 GB/s x ~10.1 us
    # = 16.5 MB (Little's law), and with the register the planes sense a quarter as many pages as
    # sectors move, so the interface binds: the run approaches 1,638.4 GB/s.
    out = run_membench(
        resolve_device("hbf-gen1"),
        MembenchParams(pattern="seq", request_size=4096, concurrency=4096, total_bytes=256 << 20),
    )
    assert 0.9 <= out["fraction_of_peak"] <= 1.0
    hbf = out["stats"]["device"]
    pages = (256 << 20) // (16 << 10)
    assert hbf["pages_read"] == pages and hbf["register_hits"] == 3 * pages


def test_sub_page_reads_are_deterministic():
    runs = [
        run_membench(
            resolve_device("hbf-gen1"),
            MembenchParams(pattern="random", request_size=4096, concurrency=64, total_bytes=1 << 20),
            seed=7,
        )
        for _ in range(2)
    ]
    for r in runs:
        for k in ("wall_s", "events_per_s", "sim_s_per_wall_s", "simulated_bytes_per_wall_s"):
            r.pop(k)
    assert repr(runs[0]) == repr(runs[1])
