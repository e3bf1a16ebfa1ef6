"""The independent DRAM checker: silent on the device's traces, loud on each deliberately broken rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.core.errors import TimingViolation
from sim.core.simulation import Simulation
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D
from sim.memory.dram_checker import assert_trace_ok, check_trace
from sim.memory.dram_timing import DramTiming

NS = 1000
T = DramTiming(
    tCK=1 * NS,
    tBURST=2 * NS,
    tCL=10 * NS,
    tCWL=5 * NS,
    tRCD=10 * NS,
    tRP=10 * NS,
    tRAS=30 * NS,
    tRC=40 * NS,
    tCCD_S=2 * NS,
    tCCD_L=4 * NS,
    tRRD_S=3 * NS,
    tRRD_L=5 * NS,
    tFAW=20 * NS,
    tWR=8 * NS,
    tWTR_S=3 * NS,
    tWTR_L=6 * NS,
    tRTP=4 * NS,
    tRTW=1 * NS,
    tREFI=1000 * NS,
    tRFC=100 * NS,
    tRFCsb=50 * NS,
    refresh_mode="all_bank",
    refresh_postpone=8,
)


def c(t_ns: float, cmd: str, bg: int = 0, ba: int = 0, row: int = 0, col: int = 0):
    if cmd == "REF":
        bg = ba = row = col = -1
    return (round(t_ns * NS), 0, 0, bg, ba, cmd, row, col)


def two_open_banks(bg2: int, ba2: int) -> list:
    """Bank (0, 0) and a second bank opened legally; both usable from 13 ns."""
    return [c(0, "ACT"), c(3 if bg2 else 5, "ACT", bg=bg2, ba=ba2)]


LEGAL = [c(0, "ACT"), c(10, "RD"), c(30, "PRE"), c(40, "ACT", row=1), c(50, "WR", row=1), c(75, "PRE")]

BROKEN = {
    "tRCD": [c(0, "ACT"), c(9, "RD")],
    "tRAS": [c(0, "ACT"), c(29, "PRE")],
    "tRP": [c(0, "ACT"), c(30, "PRE"), c(39, "ACT", row=1)],
    "tRRD_S": [c(0, "ACT"), c(2, "ACT", bg=1)],
    "tRRD_L": [c(0, "ACT"), c(4, "ACT", ba=1)],
    "tFAW": [
        c(0, "ACT"),
        c(3, "ACT", bg=1),
        c(6, "ACT", ba=1),
        c(9, "ACT", bg=1, ba=1),
        c(12, "ACT", bg=2),
    ],
    "tCCD_S": [*two_open_banks(1, 0), c(20, "RD"), c(21, "RD", bg=1)],
    "tCCD_L": [*two_open_banks(0, 1), c(20, "RD"), c(23, "RD", ba=1)],
    "tRTP": [c(0, "ACT"), c(28, "RD"), c(30, "PRE")],
    "tWR": [c(0, "ACT"), c(20, "WR"), c(30, "PRE")],
    "tWTR_S": [*two_open_banks(1, 0), c(20, "WR"), c(29, "RD", bg=1)],
    "tWTR_L": [*two_open_banks(0, 1), c(20, "WR"), c(31, "RD", ba=1)],
    "tRFC": [c(0, "REF"), c(50, "ACT")],
    "tRFCsb": [c(0, "REFSB"), c(40, "ACT")],
    "data_bus": [*two_open_banks(1, 0), c(20, "RD"), c(26, "WR", bg=1)],
    "tRTW": [*two_open_banks(1, 0), c(20, "RD"), c(27, "WR", bg=1)],
    "act_open_bank": [c(0, "ACT"), c(40, "ACT", row=1)],
    "closed_bank": [c(10, "RD")],
    "wrong_row": [c(0, "ACT"), c(10, "RD", row=1)],
    "ref_open_bank": [c(0, "ACT"), c(50, "REF")],
    "row_bus": [c(0, "ACT"), c(30, "PRE"), c(30.5, "ACT", bg=1)],
    "column_bus": [*two_open_banks(1, 0), c(20, "RD"), c(20.5, "WR", bg=1)],
    "tREFI": [c(0, "ACT"), c(30, "PRE"), c(9100, "ACT")],
    "unknown_command": [c(0, "NOP")],
}


def rules(trace, timing=T) -> set[str]:
    return {v.rule for v in check_trace(trace, timing)}


def test_a_legal_trace_is_clean():
    assert check_trace(LEGAL, T) == []
    assert_trace_ok(LEGAL, T)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_broken_rule_is_caught(rule):
    found = check_trace(BROKEN[rule], T)
    assert rule in {v.rule for v in found}
    v = next(v for v in found if v.rule == rule)
    assert v.channel == 0 and v.pseudo_channel == 0
    with pytest.raises(TimingViolation, match=rule):
        assert_trace_ok(BROKEN[rule], T)


def test_trc_is_checked_on_its_own():
    slow = dataclasses.replace(T, tRC=45 * NS)  # now ACT-PRE-ACT at 0/30/40 keeps tRP but not tRC
    trace = [c(0, "ACT"), c(30, "PRE"), c(40, "ACT", row=1)]
    assert rules(trace) == set()
    assert rules(trace, slow) == {"tRC"}


def test_per_bank_refresh_interval_is_checked_per_bank():
    per_bank = dataclasses.replace(T, refresh_mode="per_bank")
    limit = (2 + T.refresh_postpone) * T.tREFI
    ok = [c(0, "ACT"), c(30, "PRE"), c(40, "REFSB"), c(limit / NS, "REFSB"), c(limit / NS + 60, "ACT")]
    assert rules(ok, per_bank) == set()
    late = [c(0, "ACT"), c(30, "PRE"), c(limit / NS + 40, "REFSB")]
    assert rules(late, per_bank) == {"tREFI"}


def test_violations_name_time_and_bank():
    (v,) = check_trace([c(0, "ACT", bg=1, ba=1), c(9, "RD", bg=1, ba=1)], T)
    assert (v.rule, v.time_ps, v.bank_group, v.bank) == ("tRCD", 9 * NS, 1, 1)
    assert "needs 10000 ps" in v.detail


# -- the device's own traces ------------------------------------------------------------------------


def device_trace(fidelity_seed: int, **overrides) -> Dram3D:
    params = dict(
        channels=2,
        pseudo_channels=2,
        bank_groups=2,
        banks_per_group=2,
        rows=16,
        row_bytes="256B",
        fidelity="detailed",
        command_trace=True,
        tREFI="1us",
        tRFC="100ns",
        tRFCsb="60ns",
    )
    params.update(overrides)
    sim = Simulation(fidelity_seed)
    dev = Dram3D(sim, "dram", Dram3D.Params(**params))
    rng = np.random.default_rng(fidelity_seed)
    cap = dev.capacity_bytes

    def worker(n: int):
        for _ in range(n):
            size = int(rng.integers(1, 300))
            addr = int(rng.integers(0, cap - size))
            yield sim.env.timeout(int(rng.integers(0, 40 * NS)))
            yield dev.access(MemRequest(addr, size, write=bool(rng.random() < 0.3)))

    for _ in range(6):
        sim.env.process(worker(60))
    sim.run()
    return dev


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"page_policy": "closed"},
        {"refresh_mode": "all_bank"},
        {"refresh_mode": "all_bank", "page_policy": "closed", "address_mapping": "RoBaBgPcChCo"},
        {"address_mapping": "ChPcRoBaBgCo", "row_hit_cap": 1},
    ],
)
def test_device_traces_are_clean(overrides):
    dev = device_trace(7, **overrides)
    cmds = {e[5] for e in dev.trace}
    assert {"ACT", "PRE", "RD", "WR"} <= cmds
    assert ("REF" if overrides.get("refresh_mode") == "all_bank" else "REFSB") in cmds
    assert_trace_ok(dev.trace, dev.timing)


def test_moving_one_command_of_a_real_trace_is_caught():
    dev = device_trace(11)
    trace = list(dev.trace)
    t = dev.timing
    # The first read issued exactly tRCD after its bank's activation: pull it one clock earlier.
    acts = {}
    for i, e in enumerate(trace):
        if e[5] == "ACT":
            acts[(e[1], e[2], e[3], e[4])] = e[0]
        elif e[5] == "RD" and e[0] - acts.get((e[1], e[2], e[3], e[4]), -(10**12)) == t.tRCD:
            trace[i] = (e[0] - t.tCK, *e[1:])
            break
    else:  # pragma: no cover - the workload always has one
        pytest.fail("no read at exactly tRCD")
    assert "tRCD" in {v.rule for v in check_trace(trace, t)}
