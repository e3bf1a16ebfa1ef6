"""Booking a transaction-level DRAM request (``MemoryDevice.book``) equals serving it in a process.

The token driver books its DRAM requests: their completion is known on arrival, so it waits once
per op instead of running a process (three events) per request. Every stat must be the same as
through ``access``, float sums included: counters, energy, latency tallies (observed in completion
order) and the time-weighted ``inflight`` level; the stats tree is compared whole, as raw fields.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.core.simulation import Simulation
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D
from sim.memory.presets_dram import HBM3


def ops(seed: int, n: int) -> list[list[tuple[int, int, bool]]]:
    """Ops of a few requests each (addr, size, write), like the driver's weights + KV read + write."""
    rng = np.random.default_rng(seed)
    cap = 16 << 30
    out = []
    for _ in range(n):
        reqs = [(int(rng.integers(0, cap - (16 << 20))), int(rng.integers(1, 16 << 20)), False)]
        reqs.append((int(rng.integers(0, cap - 65536)), int(rng.integers(1, 65536)), False))
        reqs.append((int(rng.integers(0, cap - 256)), int(rng.choice([64, 128, 160, 256])), True))
        out.append(reqs[: int(rng.integers(1, 4))])
    return out


def run(book: bool, seed: int, refresh: str) -> tuple[list[int], dict]:
    sim = Simulation(seed=0)
    params = HBM3.params(Dram3D.Params, {"fidelity": "transaction", "refresh_mode": refresh})
    dev = Dram3D(sim, "hbm", params)
    env = sim.env
    ends: list[int] = []

    def driver():
        for reqs in ops(seed, 60):
            waits, booked = [], env.now
            for addr, size, write in reqs:
                req = MemRequest(addr, size, write)
                end = dev.book(req) if book else None
                if end is None:
                    waits.append(dev.access(req))
                else:
                    booked = max(booked, end)
            if booked > env.now:
                waits.append(env.timeout(booked - env.now))
            if waits:
                yield env.all_of(waits)
            ends.append(env.now)
            yield env.timeout(int(np.random.default_rng(env.now).integers(0, 3000)))

    sim.env.process(driver())
    sim.run()
    sim.finalize()
    raw = {
        scope: {name: dataclasses.asdict(stat) for name, stat in group.items()}
        for scope, group in sim.stats.groups.items()
    }
    return ends, raw


@pytest.mark.parametrize("refresh", ["per_bank", "all_bank"])
@pytest.mark.parametrize("seed", [1, 2])
def test_booked_requests_leave_the_same_stats_as_processes(seed, refresh):
    ends_p, stats_p = run(False, seed, refresh)
    ends_b, stats_b = run(True, seed, refresh)
    assert ends_b == ends_p
    assert stats_b == stats_p


def test_only_the_transaction_level_of_a_booking_device_books():
    for fidelity, books in (("transaction", True), ("detailed", False), ("analytic", True)):
        dev = Dram3D(Simulation(0), "m", HBM3.params(Dram3D.Params, {"fidelity": fidelity}))
        assert (dev.book(MemRequest(0, 64)) is not None) == books
