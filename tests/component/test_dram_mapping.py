"""Address mappings: decode/encode are inverse, row runs match a burst-by-burst count, orders check."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from sim.core.errors import ConfigError
from sim.core.registry import REGISTRY
from sim.memory.address_mapping import DramCoord, Geometry, get_mapping, parse_order

GEOM = Geometry(
    channels=2, pseudo_channels=2, bank_groups=4, banks_per_group=2, rows=8, columns=4, burst_bytes=32
)
NAMES = ("RoBaCoBgPcCh", "RoBaBgPcChCo", "ChPcRoBaBgCo")


def test_at_least_two_mappings_are_registered():
    table = REGISTRY.entries["address_mapping"]
    assert set(NAMES) <= set(table)
    for name in NAMES:
        assert name == get_mapping(name).ORDER


@pytest.mark.parametrize("name", NAMES)
def test_every_burst_has_one_coordinate_and_back(name):
    m = get_mapping(name)(GEOM)
    seen = set()
    for b in range(GEOM.capacity_bytes // GEOM.burst_bytes):
        c = m.decode(b * GEOM.burst_bytes + 5)
        assert m.encode(c) == b * GEOM.burst_bytes
        seen.add((c.channel, c.pseudo_channel, c.bank_group, c.bank, c.row, c.column))
    assert len(seen) == GEOM.capacity_bytes // GEOM.burst_bytes


def test_channel_interleaved_mapping_rotates_lanes_then_bank_groups():
    m = get_mapping("RoBaCoBgPcCh")(GEOM)
    first = [m.decode(i * 32) for i in range(2 * 2 * 4 + 1)]
    assert [c.channel for c in first[:4]] == [0, 1, 0, 1]
    assert [c.pseudo_channel for c in first[:4]] == [0, 0, 1, 1]
    assert [c.bank_group for c in first[:16:4]] == [0, 1, 2, 3]
    assert all(c.column == 0 for c in first[:16]) and first[16].column == 1


def test_row_interleaved_mapping_keeps_a_row_contiguous():
    m = get_mapping("RoBaBgPcChCo")(GEOM)
    row = [m.decode(i * 32) for i in range(GEOM.columns)]
    assert len({(c.channel, c.pseudo_channel, c.bank_group, c.bank, c.row) for c in row}) == 1
    assert m.decode(GEOM.row_bytes).channel == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("b0", "b1"), [(0, 1), (3, 70), (0, 512), (17, 300), (100, 101), (250, 1024)])
def test_row_runs_match_a_burst_by_burst_count(name, b0, b1):
    m = get_mapping(name)(GEOM)
    expected: Counter[tuple[int, int, int]] = Counter()
    for b in range(b0, b1):
        lane, bank, row, _ = m.decode_burst(b)
        expected[(lane, bank, row)] += 1
    lane, bank, row, count = m.runs(b0, b1)
    got = Counter(
        {(int(a), int(b), int(r)): int(n) for a, b, r, n in zip(lane, bank, row, count, strict=True)}
    )
    assert got == expected
    assert len(lane) == len(expected)  # one entry per row run


@pytest.mark.parametrize("name", NAMES)
def test_bursts_by_lane_keeps_address_order(name):
    m = get_mapping(name)(GEOM)
    for b0, b1 in [(0, 10), (5, 200)]:
        by_lane = m.bursts_by_lane(b0, b1)
        expected: dict[int, list[tuple[int, int, int]]] = {}
        for b in range(b0, b1):
            lane, bank, row, col = m.decode_burst(b)
            expected.setdefault(lane, []).append((bank, row, col))
        assert {k: list(zip(*v, strict=True)) for k, v in by_lane.items()} == expected


def test_distinct_blocks_really_touch_distinct_banks():
    for name in NAMES:
        m = get_mapping(name)(GEOM)
        span = m.distinct_blocks * m.CL
        for start in range(0, GEOM.capacity_bytes // 32 - span, m.CL):
            lane, bank, _, _ = m.runs(start, start + span)
            keys = lane * GEOM.banks_per_lane + bank
            assert len(np.unique(keys)) == len(keys)


@pytest.mark.parametrize("order", ["RoBaCoBgPc", "RoRoCoBgPcCh", "CoRoBaBgPcCh", "RoBaCoBgPcXx"])
def test_bad_field_orders_are_config_errors(order):
    with pytest.raises(ConfigError) as err:
        parse_order(order)
    assert err.value.where == "address_mapping"


def test_encode_rejects_out_of_range_fields():
    m = get_mapping("RoBaCoBgPcCh")(GEOM)
    with pytest.raises(ValueError, match="Ro=8"):
        m.encode(DramCoord(0, 0, 0, 0, 8, 0))
