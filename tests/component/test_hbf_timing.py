"""HBF device timing into an idle device: every figure is a closed form of the parameters."""

from __future__ import annotations

import pytest

from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S, transfer_ps
from sim.memory.device import MemRequest
from sim.memory.hbf import HBFParams, HighBandwidthFlash

# Numbers chosen so transfers are whole: 4 KiB at 4.096 GB/s = 1 us, at 40.96 GB/s = 100 ns.
PAGE = 4096
X_CH = 1_000_000  # ps, one page over a channel bus
X_IF = 100_000  # ps, one page through the interface
TR = 10_000_000
TPROG = 200_000_000
TBERS = 1_500_000_000
BASE = 50_000

SMALL = dict(
    channels=2,
    dies_per_channel=2,
    planes_per_die=4,
    blocks_per_plane=4,
    pages_per_block=8,
    page_size=PAGE,
    sector_size=1024,
    tR=TR,
    tPROG=TPROG,
    tBERS=TBERS,
    channel_rate="4.096GB/s",
    interface_rate="40.96GB/s",
    base_latency=BASE,
    multiplane=4,
)
LEVELS = ("detailed", "transaction")


def make(fidelity: str, **overrides) -> tuple[Simulation, HighBandwidthFlash]:
    sim = Simulation(seed=1)
    dev = HighBandwidthFlash(sim, "hbf", HBFParams(fidelity=fidelity, **{**SMALL, **overrides}))
    return sim, dev


def run_one(sim: Simulation, dev: HighBandwidthFlash, req: MemRequest) -> MemRequest:
    sim.env.process(_access(dev, req))
    sim.run()
    return req


def _access(dev: HighBandwidthFlash, req: MemRequest):
    yield dev.access(req)


def test_transfer_constants_are_exact():
    assert transfer_ps(PAGE, 4.096e9) == X_CH
    assert transfer_ps(PAGE, 40.96e9) == X_IF


@pytest.mark.parametrize("fidelity", LEVELS)
def test_one_page_read_costs_tR_plus_bus_plus_interface(fidelity):
    sim, dev = make(fidelity)
    req = run_one(sim, dev, MemRequest(addr=5 * PAGE, size=PAGE))
    expected = TR + X_CH + X_IF + BASE
    assert req.latency_ps == expected
    assert dev.unloaded_latency_ps(PAGE) == expected
    assert dev.stat.pages_read.value == 1
    assert dev.stat.channel_bytes.value == PAGE == dev.stat.interface_bytes.value


@pytest.mark.parametrize("fidelity", LEVELS)
def test_partial_page_read_senses_whole_page_but_moves_only_touched_sectors(fidelity):
    sim, dev = make(fidelity)
    # 100 bytes straddling the first two 1 KiB sectors of page 3: two sectors move.
    req = run_one(sim, dev, MemRequest(addr=3 * PAGE + 1000, size=100))
    assert req.latency_ps == TR + X_CH // 2 + X_IF // 2 + BASE
    assert dev.stat.channel_bytes.value == 2048
    p = dev.params
    expected_pj = PAGE * 8 * p.read_energy_per_bit + 2048 * 8 * (
        p.channel_energy_per_bit + p.interface_energy_per_bit
    )
    assert dev.stat.energy_pj.value == pytest.approx(expected_pj)


@pytest.mark.parametrize("fidelity", LEVELS)
def test_four_pages_on_four_dies_share_one_tR_and_pipeline_through_the_buses(fidelity):
    # Pages 0..3 land on 2 channels x 2 dies and are all sensed by tR. Each channel then moves
    # two pages (done at tR + X_CH and tR + 2 X_CH); since X_CH >= 2 X_IF the interface has
    # drained the first pair by then, and takes pages 2 and 3 back to back: + 2 X_IF.
    sim, dev = make(fidelity)
    req = run_one(sim, dev, MemRequest(addr=0, size=4 * PAGE))
    expected = TR + 2 * X_CH + 2 * X_IF + BASE
    assert req.latency_ps == expected
    assert dev.unloaded_latency_ps(4 * PAGE) == expected


@pytest.mark.parametrize("fidelity", LEVELS)
@pytest.mark.parametrize("multiplane", [1, 2, 4])
def test_multiplane_limits_planes_sensed_per_tR(fidelity, multiplane):
    # One channel, one die, four planes: a 4-page request needs 4 / multiplane rounds of tR; the
    # last round's `multiplane` pages then share the single bus.
    sim, dev = make(fidelity, channels=1, dies_per_channel=1, multiplane=multiplane)
    req = run_one(sim, dev, MemRequest(addr=0, size=4 * PAGE))
    expected = (4 // multiplane) * TR + multiplane * X_CH + X_IF + BASE
    assert req.latency_ps == expected
    assert dev.unloaded_latency_ps(4 * PAGE) == expected


@pytest.mark.parametrize("fidelity", LEVELS)
def test_write_costs_interface_bus_and_tPROG(fidelity):
    sim, dev = make(fidelity)
    req = run_one(sim, dev, MemRequest(addr=7 * PAGE, size=PAGE, write=True))
    expected = X_IF + X_CH + TPROG + BASE
    assert req.latency_ps == expected
    assert dev.unloaded_latency_ps(PAGE, write=True) == expected
    assert dev.stat.pages_programmed.value == 1
    assert dev.stat.block_erases.value == 0


@pytest.mark.parametrize("fidelity", [*LEVELS, "analytic"])
def test_erase_costs_tBERS_and_bumps_the_pe_count(fidelity):
    sim, dev = make(fidelity)
    block = dev.block_of(9 * PAGE)
    done = dev.erase(9 * PAGE)
    sim.run()
    assert done.triggered and sim.now == TBERS
    assert dev.pe_cycles(block) == 1
    assert dev.stat.block_erases.value == 1
    assert dev.stat.energy_pj.value == pytest.approx(dev.params.erase_energy_per_block)


@pytest.mark.parametrize("fidelity", LEVELS)
def test_rewriting_a_programmed_page_erases_its_block_first(fidelity):
    sim, dev = make(fidelity)
    first = MemRequest(addr=0, size=PAGE, write=True)
    again = MemRequest(addr=0, size=PAGE, write=True)

    def writer():
        yield dev.access(first)
        yield dev.access(again)

    sim.env.process(writer())
    sim.run()
    assert first.latency_ps == X_IF + X_CH + TPROG + BASE
    assert again.latency_ps == X_IF + X_CH + TBERS + TPROG + BASE
    assert dev.pe_cycles(dev.block_of(0)) == 1
    assert dev.stat.implicit_erases.value == 1


def test_sequential_sub_page_writes_append_without_erasing():
    sim, dev = make("transaction")

    def writer():
        for k in range(8):  # eight 1 KiB writes walk pages 0 and 1 sector by sector, in order
            yield dev.access(MemRequest(addr=k * 1024, size=1024, write=True))

    sim.env.process(writer())
    sim.run()
    assert dev.stat.block_erases.value == 0


@pytest.mark.parametrize("fidelity", LEVELS)
def test_same_plane_reads_queue_fifo_one_tR_apart(fidelity):
    sim, dev = make(fidelity)
    stride = dev.n_planes * PAGE  # same plane, next page in the block
    reqs = [MemRequest(addr=k * stride, size=PAGE) for k in range(3)]
    for r in reqs:
        sim.env.process(_access(dev, r))
    sim.run()
    assert [r.done_ps for r in reqs] == [(k + 1) * TR + X_CH + X_IF + BASE for k in range(3)]
    assert dev.stat.plane_wait_ns.value * 1000 == pytest.approx(TR + 2 * TR)


def test_address_mapping_stripes_channels_then_dies_then_planes():
    _, dev = make("transaction")
    C, D, P = 2, 2, 4
    seen = [dev.locate(k * PAGE) for k in range(C * D * P)]
    assert len({(a.channel, a.die, a.plane) for a in seen}) == C * D * P
    assert [a.channel for a in seen[:4]] == [0, 1, 0, 1]
    assert [a.die for a in seen[:4]] == [0, 0, 1, 1]
    assert [a.plane for a in seen[:: C * D]] == [0, 1, 2, 3]
    assert all(a.block == 0 and a.page == 0 for a in seen)
    wrap = dev.locate(C * D * P * PAGE)
    assert (wrap.channel, wrap.die, wrap.plane, wrap.block, wrap.page) == (0, 0, 0, 0, 1)
    last = dev.locate(dev.capacity_bytes - 1)
    assert (last.block, last.page) == (3, 7)


def test_capacity_and_peak_bandwidth_closed_forms():
    _, dev = make("transaction")
    assert dev.capacity_bytes == 2 * 2 * 4 * 4 * 8 * PAGE
    array = 2 * 2 * 4 * PAGE * PS_PER_S / TR
    assert dev.peak_bandwidth_Bps() == pytest.approx(min(array, 2 * 4.096e9, 40.96e9))
    _, slow = make("transaction", channel_rate="1GB/s")
    assert slow.peak_bandwidth_Bps() == pytest.approx(2e9)
    _, narrow = make("transaction", interface_rate="0.5GB/s")
    assert narrow.peak_bandwidth_Bps() == pytest.approx(0.5e9)
    _, one = make("transaction", multiplane=1)
    assert one.peak_bandwidth_Bps() == pytest.approx(2 * 2 * 1 * PAGE * PS_PER_S / TR)
    write = 2 * 2 * 4 * PAGE * PS_PER_S / TPROG
    assert dev.peak_bandwidth_Bps(write=True) == pytest.approx(write)


def test_requests_outside_capacity_are_rejected():
    _, dev = make("transaction")
    with pytest.raises(ValueError, match="outside capacity"):
        dev.access(MemRequest(addr=dev.capacity_bytes - 10, size=20))
    with pytest.raises(ValueError, match="outside capacity"):
        dev.erase(dev.capacity_bytes)


def test_analytic_level_matches_the_twin_for_one_page():
    sim, dev = make("analytic")
    req = run_one(sim, dev, MemRequest(addr=0, size=PAGE))
    assert req.latency_ps == dev.unloaded_latency_ps(PAGE)
    assert dev.stat.pages_read.value == 1  # wear and energy bookkeeping also run at this level
