"""One DRAM channel under Poisson arrivals matches M/D/1: mean wait rho / (2 mu (1 - rho)).

Why this configuration has a deterministic service time: one pseudo-channel, refresh off, and every
bank has a single row, opened once during warm-up, so every measured request is a row hit. A request
is 256 B at an aligned address: 8 bursts, 2 columns in each of the 4 bank groups, so the transaction
level books the lane for exactly ``D = tBURST + 7 x max(tBURST, tCCD_S, tCCD_L/4) = 8 ns``, in arrival
order, starting CL after arrival at the earliest. The latency is therefore ``CL + W + D`` with ``W``
the FIFO queueing delay of an M/D/1 server (arrivals shifted by the constant CL stay Poisson).
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.core.simulation import Simulation
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D

NS = 1000
D = 8 * NS
REQ = 256
PARAMS = dict(
    fidelity="transaction",
    channels=1,
    pseudo_channels=1,
    bank_groups=4,
    banks_per_group=4,
    rows=1,
    row_bytes="1KiB",
    burst_bytes="32B",
    tsv_width_bits=32,
    tsv_rate="8Gb/s",  # tBURST = 32 B / (32 x 1 GB/s) = 1 ns
    tCK="1ns",
    tCCD_S="1ns",
    tCCD_L="2ns",
    refresh_mode="off",
)


def waits(seed: int, rho: float, n: int) -> np.ndarray:
    """Queueing delays (ps) of ``n`` Poisson requests at utilisation ``rho`` after a warm-up sweep."""
    sim = Simulation(seed)
    dev = Dram3D(sim, "dram", Dram3D.Params(**PARAMS))
    env = sim.env
    slots = dev.capacity_bytes // REQ
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(D / rho, size=n).round().astype(np.int64)
    addrs = rng.integers(0, slots, size=n) * REQ
    measured: list[MemRequest] = []

    def source():
        for slot in range(slots):  # warm-up: open every bank's only row
            dev.access(MemRequest(slot * REQ, REQ))
        yield env.timeout(10_000 * NS)
        for gap, addr in zip(gaps.tolist(), addrs.tolist(), strict=True):
            yield env.timeout(gap)
            req = MemRequest(addr, REQ)
            measured.append(req)
            dev.access(req)

    env.process(source())
    sim.run()
    t = dev.timing
    lat = np.array([r.latency_ps for r in measured])
    assert dev.stat.row_hits.value == dev.stat.bursts_read.value - dev.geometry.banks_per_lane
    assert lat.min() == t.tCL + D  # an arrival into an empty queue waits for nothing
    return lat - t.tCL - D


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mean_wait_matches_md1(rho):
    theory = rho * D / (2 * (1 - rho))  # = rho / (2 mu (1 - rho)) with mu = 1 / D
    batch_means = []
    for seed in range(5):
        w = waits(seed, rho, 6000)
        batch_means.extend(b.mean() for b in np.array_split(w, 15))
    batch_means = np.array(batch_means)
    mean = batch_means.mean()
    se = batch_means.std(ddof=1) / np.sqrt(len(batch_means))
    assert abs(mean - theory) <= 3.5 * se, (mean, theory, se)
    assert mean == pytest.approx(theory, rel=0.1)


def test_service_time_is_deterministic_and_utilisation_is_rho():
    sim = Simulation(0)
    dev = Dram3D(sim, "dram", Dram3D.Params(**PARAMS))
    # Back-to-back hits on open rows: completions exactly D apart once the queue is busy.
    reqs = [MemRequest((i % 64) * REQ, REQ) for i in range(200)]
    for r in reqs:
        dev.access(r)
    sim.run()
    ends = sorted(r.done_ps for r in reqs[64:])
    assert set(np.diff(ends).tolist()) == {D}
