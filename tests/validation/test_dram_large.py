"""Large transaction-level requests: the per-bank evaluation equals the per-run one exactly.

An LLM driver reads a layer's weights as one request per stack (tens of MB). The transaction model
then evaluates the request per bank (:meth:`AddressMapping.bank_runs`) instead of per row run; these
tests hold it to the per-run path (``fast_path = False``): same completion times, same bank, row,
ACT-budget and TSV state, same stats and energy, for every preset, address mapping, page policy and
refresh mode, aligned or not, reads and writes, 1-64 MB.

Run this file as a script for the speed comparison (not a timed test):
``python tests/validation/test_dram_large.py``.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.core.simulation import Simulation
from sim.memory.address_mapping import FIELDS, AddressMapping, Geometry
from sim.memory.device import MemRequest
from sim.memory.dram3d import Dram3D, _TransactionModel
from sim.memory.presets_dram import HBM3, PRESETS

MAPPINGS = ("RoBaCoBgPcCh", "RoBaBgPcChCo", "ChPcRoBaBgCo")
MB = 1 << 20
STATE = ("lane_busy", "act_busy", "open_row", "bank_free", "last_use", "lane_bursts")
# Every field order with the row above the column: 360 mappings (the registered ones included).
ORDERS = ["".join(p) for p in itertools.permutations(FIELDS) if p.index("Ro") < p.index("Co")]


def mapping(order: str, geometry: Geometry) -> AddressMapping:
    cls = type(f"Order{order}", (AddressMapping,), {"ORDER": order})
    return cls(geometry)


def models(preset, **overrides) -> tuple[_TransactionModel, _TransactionModel]:
    """Two transaction models of one device: per-run only, and per-bank whenever it may."""
    params = preset.params(Dram3D.Params, {"fidelity": "transaction", **overrides})
    exact = Dram3D(Simulation(0), "exact", params)._txn
    fast = Dram3D(Simulation(0), "fast", params)._txn
    assert exact is not None and fast is not None
    exact.fast_path = False
    return exact, fast


def assert_same_state(a: _TransactionModel, b: _TransactionModel) -> None:
    for name in STATE:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def large_requests(rng: np.random.Generator, dev_bursts: int, burst: int, n: int):
    """(gap ps, first burst, end burst, write): a 44 MB read, then 1-64 MB log-uniform, aligned or not."""
    for i in range(n):
        size = 44_000_000 if i == 0 else int(np.exp(rng.uniform(np.log(MB), np.log(64 * MB))))
        nb = -(-size // burst)
        b0 = int(rng.integers(0, dev_bursts - nb))
        if rng.random() < 0.5:
            b0 -= b0 % (4096 // burst)  # page aligned
        gap = int(rng.choice([0, 10**5, 10**7, 10**9]))  # back to back, overlapping, idle
        yield gap, b0, b0 + nb, i > 0 and bool(rng.random() < 0.3)


# -- geometry: per-bank sums of the row runs ----------------------------------------------------------
def per_bank_reference(m: AddressMapping, b0: int, b1: int) -> dict[tuple[int, int], tuple[int, ...]]:
    """From the row runs: bank -> (runs, first row, its bursts, last row, most bursts after the first,
    all bursts)."""
    runs: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    lane, bank, row, count = m.runs(b0, b1)
    for a, b, r, c in zip(lane.tolist(), bank.tolist(), row.tolist(), count.tolist(), strict=True):
        runs[(a, b)].append((r, c))
    out = {}
    for key, rc in runs.items():
        rows = [r for r, _ in rc]
        assert rows == sorted(set(rows))  # a bank's rows: distinct and ascending in address order
        rest = max((c for _, c in rc[1:]), default=0)
        out[key] = (len(rc), rc[0][0], rc[0][1], rc[-1][0], rest, sum(c for _, c in rc))
    return out


def per_bank(m: AddressMapping, b0: int, b1: int) -> dict[tuple[int, int], tuple[int, ...]]:
    """The same from :meth:`AddressMapping.bank_runs` (checking it lists each bank once)."""
    br = m.bank_runs(b0, b1)
    cols = [br.lane, br.bank, br.runs, br.first_row, br.first_count, br.last_row, br.rest_max, br.bursts]
    out = {(a, b): tuple(v) for a, b, *v in zip(*(c.tolist() for c in cols), strict=True)}
    assert len(out) == len(br.lane)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.sampled_from(ORDERS),
    dims=st.tuples(*(st.integers(1, 3) for _ in range(6))),
    span=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_bank_runs_are_the_row_runs_summed_per_bank(order, dims, span):
    ch, pc, bg, ba, rows, cols = dims
    g = Geometry(ch, pc, bg, ba, rows + 1, cols, 32)
    m = mapping(order, g)
    total = g.capacity_bytes // 32
    b0 = min(int(span[0] * total), total - 1)
    b1 = b0 + 1 + int(span[1] * (total - b0 - 1))
    assert per_bank(m, b0, b1) == per_bank_reference(m, b0, b1)


@pytest.mark.parametrize("name", MAPPINGS)
def test_bank_runs_of_a_44_MB_request_on_hbm3(name):
    dev = Dram3D(Simulation(0), "d", HBM3.params(Dram3D.Params, {"address_mapping": name}))
    m = dev.mapping
    for b0 in (0, 12_345, 987_654_321 // 32):
        b1 = b0 + 44_000_000 // 32
        banks = per_bank(m, b0, b1)
        assert banks == per_bank_reference(m, b0, b1)
        assert len(banks) <= dev.geometry.lanes * dev.geometry.banks_per_lane
        assert sum(v[-1] for v in banks.values()) == b1 - b0


# -- timing: per-bank path == per-run path ------------------------------------------------------------
@pytest.mark.parametrize("refresh", ["per_bank", "all_bank"])
@pytest.mark.parametrize("page", ["open", "closed"])
@pytest.mark.parametrize("name", MAPPINGS)
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_large_requests_per_bank_equal_per_run(preset, name, page, refresh):
    exact, fast = models(preset, address_mapping=name, page_policy=page, refresh_mode=refresh)
    g = fast.mapping.geometry
    rng = np.random.default_rng(zlib.crc32(f"{preset.name} {name} {page} {refresh}".encode()))
    now, used, by_bank = 0, 0, 0
    for gap, b0, b1, write in large_requests(rng, g.capacity_bytes // g.burst_bytes, g.burst_bytes, 5):
        now += gap
        assert fast.serve(now, b0, b1, write) == exact.serve(now, b0, b1, write)
        used += b1 - b0
        by_bank += fast.mapping.blocks_spanned(b0, b1) >= fast.bank_sweep_blocks
    assert by_bank >= 1  # the 44 MB one at least
    assert_same_state(exact, fast)
    assert int(fast.lane_bursts.sum()) == used


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    preset=st.sampled_from(PRESETS),
    name=st.sampled_from(MAPPINGS),
    page=st.sampled_from(["open", "closed"]),
    refresh=st.sampled_from(["per_bank", "all_bank", "off"]),
    items=st.lists(
        st.tuples(
            st.sampled_from([0, 1_000, 50_000, 5_000_000]),  # gap, ps
            st.floats(0, 1),  # where
            st.integers(17, 300_000),  # bursts
            st.booleans(),  # aligned to 4 KiB
            st.booleans(),  # write
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_forced_per_bank_path_equals_per_run_at_any_size(preset, name, page, refresh, items):
    """The per-bank path is exact for any request, not only above the size criterion."""
    exact, fast = models(preset, address_mapping=name, page_policy=page, refresh_mode=refresh)
    fast.bank_sweep_blocks = 0
    g = fast.mapping.geometry
    total = g.capacity_bytes // g.burst_bytes
    now = 0
    for gap, where, n, aligned, write in items:
        now += gap
        b0 = int(where * (total - n))
        if aligned:
            b0 -= b0 % (4096 // g.burst_bytes)
        assert fast.serve(now, b0, b0 + n, write) == exact.serve(now, b0, b0 + n, write)
    assert_same_state(exact, fast)


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
)


@settings(max_examples=200, deadline=None)
@given(
    order=st.sampled_from(ORDERS),
    page=st.sampled_from(["open", "closed"]),
    refresh=st.sampled_from(["all_bank", "off"]),
    items=st.lists(
        st.tuples(st.integers(0, 3000), st.integers(0, 511), st.integers(17, 512), st.booleans()),
        min_size=1,
        max_size=30,
    ),
)
def test_per_bank_path_on_a_tiny_device_for_every_field_order(order, page, refresh, items):
    """Wrap-arounds of every digit (rows included) under all 360 mappings: repeated rows, refresh."""
    params = Dram3D.Params(**{**TINY, "page_policy": page, "refresh_mode": refresh})
    exact = Dram3D(Simulation(0), "a", params)._txn
    fast = Dram3D(Simulation(0), "b", params)._txn
    assert exact is not None and fast is not None
    for model in (exact, fast):
        model.mapping = mapping(order, model.mapping.geometry)
    exact.fast_path, fast.bank_sweep_blocks = False, 0
    now = 0
    for gap, b0, n, write in items:
        now += gap * 1000
        b1 = min(b0 + n, 512)
        assert fast.serve(now, b0, b1, write) == exact.serve(now, b0, b1, write)
    assert_same_state(exact, fast)


# -- the device: same completion times, stats and energy ---------------------------------------------
def run_device(preset, fast_path: bool, seed: int, **overrides) -> tuple[list[tuple[int, int]], dict]:
    sim = Simulation(seed=0)
    dev = Dram3D(sim, "dram", preset.params(Dram3D.Params, {"fidelity": "transaction", **overrides}))
    assert dev._txn is not None
    dev._txn.fast_path = fast_path
    g = dev.geometry
    rng = np.random.default_rng(seed)
    reqs: list[MemRequest] = []

    def worker(items):
        for gap, b0, b1, write in items:
            yield sim.env.timeout(gap)
            addr = b0 * g.burst_bytes + int(rng.integers(0, g.burst_bytes))  # not burst aligned
            req = MemRequest(addr, b1 * g.burst_bytes - addr - int(rng.integers(0, g.burst_bytes)), write)
            reqs.append(req)
            yield dev.access(req)
            small = MemRequest(req.addr, 4096, write=not write)  # small traffic in between
            reqs.append(small)
            yield dev.access(small)

    bursts = g.capacity_bytes // g.burst_bytes
    for _ in range(3):  # three streams overlap in the stack
        sim.env.process(worker(list(large_requests(rng, bursts, g.burst_bytes, 3))))
    sim.run()
    sim.finalize()
    return [(r.arrive_ps, r.done_ps) for r in reqs], sim.stats.collect(sim.now)


@pytest.mark.parametrize("refresh", ["per_bank", "all_bank"])
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_device_stats_and_times_are_the_same_with_either_path(preset, refresh):
    times, stats = run_device(preset, True, 7, refresh_mode=refresh)
    assert (times, stats) == run_device(preset, False, 7, refresh_mode=refresh)
    dram = stats["dram"]
    assert dram["activates"] > 0 and dram["row_hits"] > 0 and dram["refreshes"] > 0
    if refresh == "per_bank":
        assert dram["row_conflicts"] > 0


def test_a_44_MB_request_takes_the_per_bank_path_and_a_small_one_does_not(monkeypatch):
    exact, fast = models(HBM3)
    calls = []
    serve_banks = _TransactionModel._serve_banks

    def spy(self, *args):
        calls.append(args[2] - args[1])
        return serve_banks(self, *args)

    monkeypatch.setattr(_TransactionModel, "_serve_banks", spy)
    n = 44_000_000 // 32
    assert fast.serve(0, 5, 5 + n, False) == exact.serve(0, 5, 5 + n, False)
    assert calls == [n]
    fast.serve(10**9, 0, 64 * 1024 // 32, False)  # 64 KiB: fewer row runs than the per-bank cost
    assert calls == [n]


# -- speed (a script, not a test) ---------------------------------------------------------------------
def _benchmark(size: int = 44_000_000, count: int = 50) -> None:  # pragma: no cover - manual
    from sim.memory.factory import resolve_device

    for name in ("hbm3", "hbm4", "dram3d-logic"):
        for fast_path in (False, True):
            sim = Simulation()
            dev = resolve_device(name).build(sim)
            dev._txn.fast_path = fast_path
            span = dev.capacity_bytes - size
            for i in range(count):
                dev.access(MemRequest(i * size % span, size))
            t = time.perf_counter()
            sim.run()
            per = (time.perf_counter() - t) / count * 1e3
            path = "per-bank" if fast_path else "per-run "
            print(f"{name:13s} {path} {size / 1e6:.0f} MB: {per:7.3f} ms per request, end {sim.now} ps")


if __name__ == "__main__":  # pragma: no cover
    _benchmark()
