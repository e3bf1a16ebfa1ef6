"""Invariants of the 3D DRAM device under random workloads (hypothesis, tiny devices).

Bytes and requests are conserved, time only moves forward, the independent checker never finds a
broken timing rule in the detailed controller's command trace, results are deterministic, and the
scalar and vectorised transaction paths are the same closed form.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.core.simulation import Simulation
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D
from sim.memory.dram3d.detailed import first_refresh_ps
from sim.memory.dram3d.device import refreshes_due
from sim.memory.dram_checker import check_trace

NS = 1000
TINY = dict(
    channels=2,
    pseudo_channels=2,
    bank_groups=2,
    banks_per_group=2,
    rows=8,
    row_bytes="128B",
    burst_bytes="32B",
    tREFI="500ns",
    tRFC="60ns",
    tRFCsb="40ns",
    queue_depth=8,
)
CAPACITY = 2 * 2 * 4 * 8 * 128

configs = st.fixed_dictionaries(
    {
        "page_policy": st.sampled_from(["open", "closed"]),
        "refresh_mode": st.sampled_from(["per_bank", "all_bank", "off"]),
        "address_mapping": st.sampled_from(["RoBaCoBgPcCh", "RoBaBgPcChCo", "ChPcRoBaBgCo"]),
        "row_hit_cap": st.integers(1, 4),
    }
)
request = st.tuples(
    st.integers(0, 60),  # gap before issuing, ns
    st.integers(0, CAPACITY - 1),  # address
    st.integers(1, 400),  # size, bytes
    st.booleans(),  # write
)
workloads = st.lists(st.lists(request, min_size=1, max_size=12), min_size=1, max_size=4)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(level: str, config: dict, workload: list[list[tuple]]) -> tuple[Dram3D, list[MemRequest]]:
    sim = Simulation(seed=0)
    params = Dram3D.Params(**{**TINY, **config, "fidelity": level, "command_trace": level == "detailed"})
    dev = Dram3D(sim, "dram", params)
    reqs: list[MemRequest] = []

    def worker(items):
        for gap, addr, size, write in items:
            yield sim.env.timeout(gap * NS)
            req = MemRequest(addr, min(size, CAPACITY - addr), write=write, id=len(reqs))
            reqs.append(req)
            yield dev.access(req)

    for items in workload:
        sim.env.process(worker(items))
    sim.run()
    sim.finalize()
    return dev, reqs


def check_conservation(dev: Dram3D, reqs: list[MemRequest]) -> None:
    st_ = dev.stat
    assert st_.reads.value + st_.writes.value == len(reqs)
    assert st_.bytes_read.value == sum(r.size for r in reqs if not r.write)
    assert st_.bytes_written.value == sum(r.size for r in reqs if r.write)
    bb = dev.geometry.burst_bytes
    bursts = sum(-(-(r.addr + r.size) // bb) - r.addr // bb for r in reqs)
    assert st_.bursts_read.value + st_.bursts_written.value == bursts
    assert st_.inflight.value == 0
    t = dev.timing
    for r in reqs:
        assert r.done_ps >= r.arrive_ps >= 0
        assert r.latency_ps >= (t.tCWL if r.write else t.tCL) + t.tBURST
        assert r.size / (r.latency_ps / 1e12) <= dev.peak_bandwidth_Bps()


@FAST
@given(config=configs, workload=workloads)
def test_detailed_controller_never_breaks_a_timing_rule(config, workload):
    dev, reqs = run("detailed", config, workload)
    check_conservation(dev, reqs)
    assert check_trace(dev.trace, dev.timing) == []
    # Per pseudo-channel the trace is in time order (refreshes replayed after idling included).
    for lane in {(e[1], e[2]) for e in dev.trace}:
        times = [e[0] for e in dev.trace if (e[1], e[2]) == lane]
        assert times == sorted(times)
    columns = sum(1 for e in dev.trace if e[5] in ("RD", "WR"))
    assert columns == dev.stat.bursts_read.value + dev.stat.bursts_written.value


@FAST
@given(config=configs, workload=workloads)
def test_transaction_level_conserves_and_respects_peak(config, workload):
    dev, reqs = run("transaction", config, workload)
    check_conservation(dev, reqs)
    span = max(r.done_ps for r in reqs) - min(r.arrive_ps for r in reqs)
    assert sum(r.size for r in reqs) / (span / 1e12) <= dev.peak_bandwidth_Bps()


@settings(max_examples=15, deadline=None)
@given(config=configs, workload=workloads)
def test_same_inputs_give_identical_results(config, workload):
    for level in ("detailed", "transaction"):
        a, ra = run(level, config, workload)
        b, rb = run(level, config, workload)
        assert [(r.arrive_ps, r.done_ps) for r in ra] == [(r.arrive_ps, r.done_ps) for r in rb]
        assert a.trace == b.trace
        assert a.stat.energy_pj.value == b.stat.energy_pj.value


@settings(max_examples=30, deadline=None)
@given(
    config=configs,
    items=st.lists(
        st.tuples(
            st.integers(0, 30_000), st.integers(0, CAPACITY // 32 - 1), st.integers(1, 40), st.booleans()
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_scalar_and_vector_transaction_paths_agree(config, items):
    params = Dram3D.Params(**{**TINY, **config, "fidelity": "transaction"})
    scalar = Dram3D(Simulation(0), "a", params)._txn
    vector = Dram3D(Simulation(0), "b", params)._txn
    assert scalar is not None and vector is not None
    scalar.small_limit, vector.small_limit = 10**9, -1
    now = 0
    for gap, b0, n, write in items:
        now += gap
        b1 = min(b0 + n, CAPACITY // 32)
        assert scalar.serve(now, b0, b1, write) == vector.serve(now, b0, b1, write)
    for name in ("lane_busy", "act_busy", "open_row", "bank_free", "last_use", "lane_bursts"):
        assert (getattr(scalar, name) == getattr(vector, name)).all(), name


@settings(max_examples=200, deadline=None)
@given(
    lanes=st.integers(1, 64),
    period=st.integers(1, 10_000),
    now=st.integers(0, 10**7),
)
def test_refreshes_due_closed_form_counts_every_lane(lanes, period, now):
    """The O(log lanes) count equals summing each lane's refreshes due by ``now`` one by one."""
    phases = tuple(sorted(first_refresh_ps(i, lanes, period) for i in range(lanes)))
    brute = sum((now - ph) // period + 1 for ph in phases if ph <= now)
    assert refreshes_due(phases, period, now) == brute
