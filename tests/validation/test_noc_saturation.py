"""Saturation detection and sweeps: the latency test, its closed-form yardstick, and early stops."""

from __future__ import annotations

import itertools

import pytest

from sim.core.simulation import Simulation
from sim.experiments.noc import SATURATION_LATENCY_FACTOR, NocRunParams, run_noc, sweep_noc
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.router import RouterParams
from sim.topology import id_to_coords, mesh, torus


def manhattan(shape, a: int, b: int) -> int:
    return sum(abs(x - y) for x, y in zip(id_to_coords(a, shape), id_to_coords(b, shape), strict=True))


@pytest.mark.parametrize("size", [1, 4])
def test_zero_load_cycles_is_the_closed_form(size):
    """Mesh, canonical 4-stage router, 1-cycle links and NIC: 5 H + 6 + (size - 1)."""
    g = mesh(4)
    net = FlitNetwork(Simulation(seed=0), "n", g, NetworkParams(), RouterParams())
    for a, b in itertools.product(range(16), range(16)):
        assert net.zero_load_cycles(a, b, size) == 5 * manhattan((4, 4), a, b) + 6 + size - 1


def test_zero_load_cycles_counts_link_latency():
    """Each link cycle beyond one adds one cycle per hop: pipeline 4 + link 3 per hop."""
    g = torus(4)
    net = FlitNetwork(Simulation(seed=0), "n", g, NetworkParams(link_latency=3), RouterParams())
    # 0 -> 2 along x: two hops either way
    assert net.zero_load_cycles(0, 2, 1) == 1 + 3 * 4 + 2 * 3 + 1


def test_low_load_is_not_saturated_and_reports_its_zero_load_latency():
    r = run_noc(mesh(4), NocRunParams(rate=0.05, warmup=200, measure=600))
    assert not r["saturated"] and r["saturated_by"] == []
    # uniform over 16 terminals (source included): mean Manhattan distance 2 (k^2-1)/(3k) = 2.5
    assert 5 * 1.5 + 6 < r["zero_load_latency_cycles"] < 5 * 3.5 + 6
    assert r["zero_load_latency_cycles"] <= r["mean_packet_latency_cycles"]


@pytest.mark.parametrize("fidelity", ["flit", "message"])
def test_overload_is_flagged_by_latency(fidelity):
    """4x4 mesh, uniform: the bisection bound is 4/k = 1 flit/node/cycle; the flit level saturates
    below it, and so does the message level, whose channels serve at most MESSAGE_EFFICIENCY (0.85)
    flits per cycle; at 0.9 queues grow for the whole run."""
    r = run_noc(mesh(4), NocRunParams(rate=0.9, warmup=200, measure=600, fidelity=fidelity))
    assert r["saturated"]
    assert "latency" in r["saturated_by"]
    assert r["mean_packet_latency_cycles"] > SATURATION_LATENCY_FACTOR * r["zero_load_latency_cycles"]


def test_sweep_stops_at_the_first_saturated_load():
    runs = [NocRunParams(rate=x, warmup=200, measure=600) for x in (0.05, 0.9, 0.95)]
    out = sweep_noc(mesh(4), runs)
    assert [r["saturated"] for r in out] == [False, True]


def test_throughput_margin_widens_for_short_runs_on_few_terminals():
    """3 / sqrt(expected window packets), never below 5%: 5 terminals x 500 cycles x 0.1 / 4 flits
    = 62.5 packets -> 38%; 64 x 3000 x 0.3 = 57,600 packets -> 5%."""
    from sim.experiments.noc import _shortfall

    small = NocRunParams(rate=0.1, packet_flits=4, warmup=200, measure=500)
    assert _shortfall(small, 5) == pytest.approx(3 / 62.5**0.5)
    assert _shortfall(NocRunParams(rate=0.3, warmup=3000, measure=3000), 64) == 0.05


def test_a_light_load_on_a_small_network_is_not_flagged_by_chance():
    """Fully connected, 5 terminals, 0.1 flits/node/cycle in 4-flit packets: 59 packets measured;
    their accepted rate scatters by +-13%, which a fixed 5% margin would call saturation."""
    from sim.topology import fully_connected

    r = run_noc(fully_connected(5), NocRunParams(rate=0.1, packet_flits=4, warmup=200, measure=500))
    assert not r["saturated"]
