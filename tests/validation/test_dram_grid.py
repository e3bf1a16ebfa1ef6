"""The transaction model's lane-grid path (``TransactionModel._serve_grid``) equals the per-run one.

The grid path serves requests of at most ``distinct_blocks`` high blocks on mappings whose lane and
bank-group fields all sit below the column; it must give the same completion times, counts and state
as the per-run closed form for every such mapping, page policy and refresh mode, including requests
that wrap rows and start or end mid-block.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.simulation import Simulation
from sim.memory.dram3d import Dram3D
from sim.memory.dram3d.transaction import _LaneGrid
from sim.memory.presets_dram import HBM3
from tests.validation.test_dram_large import ORDERS, STATE, TINY, mapping

GRID_ORDERS = [o for o in ORDERS if all(o.index(f) > o.index("Co") for f in ("Ch", "Pc", "Bg"))]


def pair(params: Dram3D.Params, order: str | None = None):
    exact = Dram3D(Simulation(0), "a", params)._txn
    grid = Dram3D(Simulation(0), "b", params)._txn
    assert exact is not None and grid is not None
    if order is not None:
        for model in (exact, grid):
            model.mapping = mapping(order, model.mapping.geometry)
    exact.fast_path = False
    return exact, grid


def assert_same_state(a, b) -> None:
    for name in STATE:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_grid_applies_to_the_streaming_mapping_only():
    hbm = HBM3.params(Dram3D.Params, {"fidelity": "transaction"})
    model = Dram3D(Simulation(0), "m", hbm)._txn
    assert model is not None and model._lane_grid() is not None
    model.mapping = mapping("ChPcRoBaBgCo", model.mapping.geometry)
    assert model._lane_grid() is None
    assert _LaneGrid.of(model) is None


@settings(max_examples=60, deadline=None)
@given(
    order=st.sampled_from(GRID_ORDERS),
    page=st.sampled_from(["open", "closed"]),
    refresh=st.sampled_from(["all_bank", "off"]),
    items=st.lists(
        st.tuples(st.integers(0, 3000), st.integers(0, 511), st.integers(17, 200), st.booleans()),
        min_size=1,
        max_size=30,
    ),
)
def test_grid_path_equals_per_run_on_a_tiny_device(order, page, refresh, items):
    exact, grid = pair(Dram3D.Params(**{**TINY, "page_policy": page, "refresh_mode": refresh}), order)
    now = 0
    for gap, b0, n, write in items:
        now += gap * 1000
        b1 = min(b0 + n, 512)
        if b1 - b0 <= grid.small_limit:
            continue
        assert grid.serve(now, b0, b1, write) == exact.serve(now, b0, b1, write)
    assert_same_state(exact, grid)


@settings(max_examples=20, deadline=None)
@given(
    refresh=st.sampled_from(["all_bank", "per_bank"]),
    items=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 10**8), st.integers(17, 9000), st.booleans()),
        min_size=1,
        max_size=40,
    ),
)
def test_grid_path_equals_per_run_on_hbm3(refresh, items):
    exact, grid = pair(HBM3.params(Dram3D.Params, {"fidelity": "transaction", "refresh_mode": refresh}))
    now = 0
    for gap, b0, n, write in items:
        now += gap * 1000
        assert grid.serve(now, b0, b0 + n, write) == exact.serve(now, b0, b0 + n, write)
    assert_same_state(exact, grid)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), gap_ns=st.sampled_from([0, 50, 5_000, 200_000]))
def test_settled_sweeps_replayed_from_the_memo_equal_per_run(seed, gap_ns):
    """Weight-like streams (contiguous multi-MB ranges, read again every "iteration") between
    KV-like reads: the per-lane sweep and its memo of settled outcomes give the per-run results."""
    exact, fast = pair(HBM3.params(Dram3D.Params, {"fidelity": "transaction"}))
    rng = np.random.default_rng(seed)
    bounds = np.cumsum([0, *rng.integers(1 << 16, 1 << 17, 6)]).tolist()  # bursts: 2-4 MB each
    now = 0
    replays = 0
    original = fast._sweep_replay

    def counted(*args):
        nonlocal replays
        replays += 1
        return original(*args)

    fast._sweep_replay = counted  # type: ignore[method-assign]
    for _ in range(4):
        for b0, b1 in itertools.pairwise(bounds):
            now += gap_ns * 1000
            done = fast.serve(now, b0, b1, False)
            assert done == exact.serve(now, b0, b1, False)
            now = max(now, done[0])
            k0 = int(rng.integers(1 << 20, 1 << 28))
            kv = (k0, k0 + int(rng.integers(17, 3000)))
            assert fast.serve(now, *kv, False) == exact.serve(now, *kv, False)
    assert_same_state(exact, fast)
    if gap_ns >= 5_000:
        assert replays > 0
