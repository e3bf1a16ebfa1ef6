"""Registry, RNG streams, stats kinds, stats tree, reservation server and the component tree."""

import numpy as np
import pytest

from sim.core.component import Component
from sim.core.errors import ConfigError, RegistryError, join_where
from sim.core.registry import Registry
from sim.core.reservation import Reservation
from sim.core.rng import RandomStreams
from sim.core.simulation import Simulation
from sim.stats import Histogram, Level, Tally, counter, level, tally


def test_registry_rejects_double_registration_and_lists_names():
    reg = Registry(loaded=True)
    reg.add("memory", "a", int)
    reg.add("memory", "a", int)  # same object: idempotent
    with pytest.raises(RegistryError, match="registered twice"):
        reg.add("memory", "a", float)


def test_rng_streams_are_independent_and_reproducible():
    a, b = RandomStreams(7), RandomStreams(7)
    x = a["one"].random(5)
    b["other"].random(100)  # drawing from another stream must not shift 'one'
    assert np.array_equal(x, b["one"].random(5))
    assert not np.array_equal(RandomStreams(8)["one"].random(5), x)


def test_tally_matches_numpy():
    t = Tally("lat")
    data = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    for x in data:
        t.observe(x)
    s = t.summary(0)
    assert s["n"] == 8 and s["mean"] == pytest.approx(np.mean(data))
    assert s["std"] == pytest.approx(np.std(data))
    assert s["p50"] == pytest.approx(np.percentile(data, 50))
    assert (s["min"], s["max"]) == (1.0, 9.0)


def test_level_time_average_is_area_over_time():
    lv = Level("q")
    lv.set(2, 0)  # 2 for 10 ps
    lv.set(4, 10)  # 4 for 30 ps
    lv.set(0, 40)  # 0 for 60 ps
    assert lv.time_average(100) == pytest.approx((2 * 10 + 4 * 30) / 100)
    assert lv.summary(100)["max"] == 4


def test_histogram_bins_and_overflow():
    h = Histogram("h", edges=(0, 1, 2, 4))
    for x in (-1, 0, 0.5, 1, 3.9, 4, 10):
        h.observe(x)
    assert h.counts == [2, 1, 1] and h.underflow == 1 and h.overflow == 2
    with pytest.raises(ValueError):
        Histogram("bad", edges=(1, 1))


def test_reservation_is_a_fifo_deterministic_server():
    r = Reservation()
    assert r.reserve(0, 10) == (0, 10)
    assert r.reserve(5, 10) == (10, 20)  # waits 5
    assert r.reserve(30, 10) == (30, 40)  # idle gap
    assert (r.busy_ps, r.waited_ps, r.jobs) == (30, 5, 3)
    assert r.utilization(40) == pytest.approx(0.75)


class Leaf(Component):
    STATS = (counter("hits", "events", "leaf hits"),)


class Node(Component):
    STATS = (tally("lat", "ns", "latency"), level("occ", "items", "occupancy"))

    def build(self):
        self.left = Leaf(self.sim, "left", parent=self)
        self.right = Leaf(self.sim, "right", parent=self)
        self.calls = []

    def elaborate(self):
        self.calls.append("elaborate")

    def run(self):
        self.calls.append("run")
        self.env.process(self.tick())

    def tick(self):
        yield self.env.timeout(1000)
        self.left.stat.hits.add(3)

    def finalize(self):
        self.calls.append("finalize")


def test_component_tree_paths_lifecycle_and_stats_collection():
    sim = Simulation(seed=1)
    root = Node(sim, "chip")
    assert [c.path for c in root.walk()] == ["chip", "chip.left", "chip.right"]
    sim.run()
    sim.finalize()
    assert root.calls == ["elaborate", "run", "finalize"]
    res = sim.results()
    assert res["sim_time_ps"] == 1000
    assert res["stats"]["chip"]["left"]["hits"] == 3
    assert res["stats"]["chip"]["right"]["hits"] == 0
    with pytest.raises(ValueError, match="declared twice"):
        Node(sim, "chip")


def test_error_locations_compose():
    assert join_where("a.toml", "device.tR") == "a.toml: device.tR"
    assert join_where("device", "tR") == "device.tR"
    err = ConfigError("expected x", where="tR").at("sys.toml")
    assert str(err) == "sys.toml: tR: expected x"
