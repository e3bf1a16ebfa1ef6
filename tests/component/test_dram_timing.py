"""3D DRAM device timing into an idle (or nearly idle) device: every figure is a closed form.

A tiny device with tCK = 1 ns and whole-nanosecond timings, so nothing is rounded: one 32 B burst over
32 TSVs at 8 Gb/s takes tBURST = 1 ns.
"""

from __future__ import annotations

import pytest

from sim.core.simulation import Simulation
from sim.memory.address_mapping import DramCoord
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D
from sim.memory.dram_checker import assert_trace_ok

NS = 1000
TCL, TCWL, TRCD, TRP, TBURST = 14 * NS, 4 * NS, 14 * NS, 14 * NS, 1 * NS
TIMING = dict(
    tCK="1ns",
    tCL="14ns",
    tCWL="4ns",
    tRCD="14ns",
    tRP="14ns",
    tRAS="34ns",
    tRC="48ns",
    tCCD_S="1ns",
    tCCD_L="2ns",
    tRRD_S="4ns",
    tRRD_L="6ns",
    tFAW="30ns",
    tWR="16ns",
    tWTR_S="6ns",
    tWTR_L="8ns",
    tRTP="6ns",
    tRTW="1ns",
)
TINY = dict(
    channels=1,
    pseudo_channels=1,
    bank_groups=2,
    banks_per_group=2,
    rows=16,
    row_bytes="256B",
    burst_bytes="32B",
    tsv_width_bits=32,
    tsv_rate="8Gb/s",
    refresh_mode="off",
    **TIMING,
)
LEVELS = ("detailed", "transaction")


def make(fidelity: str, **overrides: object) -> tuple[Simulation, Dram3D]:
    sim = Simulation(seed=1)
    trace = fidelity == "detailed"
    params = Dram3D.Params(**{**TINY, "fidelity": fidelity, "command_trace": trace, **overrides})
    return sim, Dram3D(sim, "dram", params)


def addr(dev: Dram3D, bg: int = 0, bank: int = 0, row: int = 0, col: int = 0) -> int:
    return dev.mapping.encode(DramCoord(0, 0, bg, bank, row, col))


def run_at(sim: Simulation, dev: Dram3D, schedule: list[tuple[int, MemRequest]]) -> None:
    """Issue each request at its time (ps) and run to completion."""

    def issue(when: int, req: MemRequest):
        yield sim.env.timeout(when)
        yield dev.access(req)

    for when, req in schedule:
        sim.env.process(issue(when, req))
    sim.run()
    if dev.trace is not None:
        assert_trace_ok(dev.trace, dev.timing)


def test_tiny_device_has_the_intended_burst_time():
    _, dev = make("detailed")
    assert dev.timing.tBURST == TBURST
    assert dev.timing.tCL == TCL and dev.timing.tRCD == TRCD


@pytest.mark.parametrize("level", LEVELS)
def test_closed_bank_costs_trcd_cl_burst(level):
    sim, dev = make(level)
    req = MemRequest(addr(dev, row=3), 32)
    run_at(sim, dev, [(0, req)])
    assert req.latency_ps == TRCD + TCL + TBURST
    assert req.latency_ps == dev.unloaded_latency_ps(32)


@pytest.mark.parametrize("level", LEVELS)
def test_closed_bank_write_costs_trcd_cwl_burst(level):
    sim, dev = make(level)
    req = MemRequest(addr(dev, row=3), 32, write=True)
    run_at(sim, dev, [(0, req)])
    assert req.latency_ps == TRCD + TCWL + TBURST == dev.unloaded_latency_ps(32, write=True)


@pytest.mark.parametrize("level", LEVELS)
def test_row_hit_costs_cl_burst(level):
    sim, dev = make(level)
    opener = MemRequest(addr(dev, row=3, col=0), 32)
    hit = MemRequest(addr(dev, row=3, col=1), 32)
    run_at(sim, dev, [(0, opener), (1000 * NS, hit)])
    assert hit.latency_ps == TCL + TBURST


@pytest.mark.parametrize("level", LEVELS)
def test_row_conflict_costs_trp_trcd_cl_burst(level):
    sim, dev = make(level)
    opener = MemRequest(addr(dev, row=3), 32)
    conflict = MemRequest(addr(dev, row=5), 32)
    run_at(sim, dev, [(0, opener), (1000 * NS, conflict)])
    assert conflict.latency_ps == TRP + TRCD + TCL + TBURST
    assert dev.stat.row_conflicts.value == 1


@pytest.mark.parametrize("level", LEVELS)
def test_closed_page_policy_turns_a_later_hit_into_a_miss(level):
    sim, dev = make(level, page_policy="closed")
    first = MemRequest(addr(dev, row=3, col=0), 32)
    again = MemRequest(addr(dev, row=3, col=1), 32)
    run_at(sim, dev, [(0, first), (1000 * NS, again)])
    assert again.latency_ps == TRCD + TCL + TBURST
    assert dev.stat.row_conflicts.value == 0


@pytest.mark.parametrize("level", LEVELS)
def test_all_bank_refresh_blocks_the_pseudo_channel_for_trfc(level):
    # One pseudo-channel: its first REF is due at tREFI. A request 10 ns later waits for REF + tRFC.
    sim, dev = make(level, refresh_mode="all_bank", tREFI="1us", tRFC="100ns")
    ref_at, trfc, arrive = 1000 * NS, 100 * NS, 1010 * NS
    req = MemRequest(addr(dev, row=2), 32)
    run_at(sim, dev, [(arrive, req)])
    assert req.latency_ps == (ref_at + trfc - arrive) + TRCD + TCL + TBURST
    if dev.trace is not None:
        assert [e for e in dev.trace if e[5] == "REF"] == [(ref_at, 0, 0, -1, -1, "REF", -1, -1)]


def test_per_bank_refresh_blocks_only_its_bank_for_trfcsb():
    # 4 banks, tREFI 1 us: a REFSB every 250 ns, the first due at 250 ns. A request to bank (1, 1) at
    # 255 ns wakes the controller, which refreshes the idle bank (0, 0) at its due time; a request to
    # bank (0, 0) at 260 ns waits for REFSB + tRFCsb, while the first one does not wait.
    sim, dev = make("detailed", refresh_mode="per_bank", tREFI="1us", tRFCsb="60ns")
    other = MemRequest(addr(dev, bg=1, bank=1, row=1), 32)
    victim = MemRequest(addr(dev, bg=0, bank=0, row=1), 32)
    run_at(sim, dev, [(255 * NS, other), (260 * NS, victim)])
    refs = [e for e in dev.trace if e[5] == "REFSB"]
    assert refs[0] == (250 * NS, 0, 0, 0, 0, "REFSB", -1, -1)
    assert other.latency_ps == TRCD + TCL + TBURST
    assert victim.latency_ps == (250 * NS + 60 * NS - 260 * NS) + TRCD + TCL + TBURST


def test_request_completes_when_its_last_burst_is_transferred():
    sim, dev = make("detailed")
    req = MemRequest(0, 256)  # 8 bursts over both bank groups and two banks
    run_at(sim, dev, [(0, req)])
    reads = [e for e in dev.trace if e[5] == "RD"]
    assert len(reads) == 8
    assert req.done_ps == max(e[0] for e in reads) + TCL + TBURST


def test_frfcfs_serves_a_younger_row_hit_before_an_older_miss():
    sim, dev = make("detailed")
    opener = MemRequest(addr(dev, row=3, col=0), 32)
    older_miss = MemRequest(addr(dev, row=5), 32)
    younger_hit = MemRequest(addr(dev, row=3, col=1), 32)
    t = 1000 * NS
    run_at(sim, dev, [(0, opener), (t, older_miss), (t, younger_hit)])
    assert younger_hit.latency_ps == TCL + TBURST
    # The PRE waits tRTP after the hit's RD, then tRP + tRCD + CL + burst.
    assert older_miss.latency_ps == 6 * NS + TRP + TRCD + TCL + TBURST


def test_frfcfs_cap_stops_row_hits_starving_an_older_miss():
    sim, dev = make("detailed", row_hit_cap=2)
    opener = MemRequest(addr(dev, row=3, col=0), 32)
    miss = MemRequest(addr(dev, row=5), 32)
    hits = [MemRequest(addr(dev, row=3, col=c), 32) for c in range(1, 6)]
    t = 1000 * NS
    run_at(sim, dev, [(0, opener), (t, miss)] + [(t, h) for h in hits])
    after = [e[5] for e in dev.trace if e[0] >= t and e[5] in ("RD", "PRE")]
    assert after[:3] == ["RD", "RD", "PRE"]  # two hits past the miss, then its row is closed


@pytest.mark.parametrize("level", LEVELS)
def test_energy_counts_follow_the_commands(level):
    sim, dev = make(level)
    reqs = [MemRequest(addr(dev, row=3, col=c), 32) for c in range(4)]
    reqs.append(MemRequest(addr(dev, row=9), 32, write=True))
    run_at(sim, dev, [(i * 100 * NS, r) for i, r in enumerate(reqs)])
    sim.finalize()
    p, st = dev.params, dev.stat
    bits = 32 * 8
    assert st.activates.value == 2 and st.row_conflicts.value == 1 and st.row_hits.value == 3
    assert st.energy_act_pj.value == pytest.approx(2 * p.act_energy)
    assert st.energy_read_pj.value == pytest.approx(4 * bits * p.read_energy_per_bit)
    assert st.energy_write_pj.value == pytest.approx(bits * p.write_energy_per_bit)
    assert st.energy_tsv_pj.value == pytest.approx(5 * bits * p.tsv_energy_per_bit)
    causes = ("act", "read", "write", "tsv", "refresh")
    total = sum(getattr(st, f"energy_{c}_pj").value for c in causes)
    assert st.energy_pj.value == pytest.approx(total)
    bus = dev.tsv[0].stat
    assert bus.busy_ps.value == 5 * TBURST and bus.bytes.value == 5 * 32
    assert bus.occupancy.value == pytest.approx(5 * TBURST / sim.now)
