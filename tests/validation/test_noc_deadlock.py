"""Deadlock: a torus without dateline classes locks up under load and the error names the wait cycle;
the same torus with dateline classes (2 VCs) keeps moving at the same load."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sim.core.simulation import Simulation
from sim.experiments.noc import NocRunParams, run_noc
from sim.fabric.network import DeadlockError, FlitNetwork, NetworkParams
from sim.fabric.router import RouterParams
from sim.fabric.traffic import BernoulliSource, uniform
from sim.topology import ring, torus

# two-flit packets in two-flit buffers at full load: a dependency cycle closes within a few hundred
# cycles (every seed of 1..30 deadlocks on each graph below; a deadlocked run stops at once)
HEAVY = NocRunParams(traffic="uniform", rate=1.0, packet_flits=2, warmup=200, measure=1500, drain=500)
UNSAFE = (NetworkParams(routing="dor_unsafe", deadlock_cycles=200), RouterParams(vcs=1, vc_buffer=2))
SAFE = (NetworkParams(routing="dor_dateline", deadlock_cycles=200), RouterParams(vcs=2, vc_buffer=2))
GRAPHS = [ring(4), ring(6), ring(8), torus(4)]
IDS = ["ring4", "ring6", "ring8", "torus4x4"]
NAME = re.compile(r"r(\d+)\.in(\d+)\.vc(\d+) \(waits (credit|output VC)\)")


def wait_cycle(message: str) -> list[tuple[int, int, int]]:
    assert "wait cycle: " in message, message
    hops = message.split("wait cycle: ", 1)[1].split(" -> ")
    names = [NAME.fullmatch(h) for h in hops]
    assert all(names), hops
    cycle = [(int(m[1]), int(m[2]), int(m[3])) for m in names]
    assert cycle[0] == cycle[-1] and len(cycle) >= 3  # closed
    return cycle[:-1]


def check_names_a_real_cycle(graph, message: str) -> None:
    cycle = wait_cycle(message)
    routers = [r for r, _, _ in cycle]
    assert len(set(routers)) >= 2  # a cycle around the ring, not inside one router
    for (a, _, _), (b, _, _) in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        assert a == b or graph.has_edge(a, b)  # each wait is local or on a link
    for r, port, vc in cycle:  # every VC named exists
        assert vc == 0 and port <= graph.degree(r)


@pytest.mark.parametrize("graph", GRAPHS, ids=IDS)
def test_dor_unsafe_deadlocks_and_names_the_wait_cycle(graph):
    res = run_noc(graph, HEAVY, *UNSAFE, seed=1, on_deadlock="report")
    assert res["deadlock"] is not None and res["saturated"]
    assert res["deadlock"].startswith("deadlock: no flit moved for 200 cycles")
    check_names_a_real_cycle(graph, res["deadlock"])


@pytest.mark.parametrize("graph", GRAPHS, ids=IDS)
def test_dateline_does_not_deadlock_at_the_same_load(graph):
    res = run_noc(graph, HEAVY, *SAFE, seed=1)
    assert res["deadlock"] is None
    assert res["delivered_measured_packets"] > 0


def test_the_network_raises_deadlock_error_itself():
    g = ring(6)
    sim = Simulation(seed=2)
    net = FlitNetwork(sim, "net", g, *UNSAFE)
    net.add_source(BernoulliSource(net.new_packet, 6, 1.0, 2, uniform, np.random.default_rng(2), stop=3000))
    with pytest.raises(DeadlockError) as exc:
        sim.run(until=3000 * net.cycle_ps)
    assert "\n" not in str(exc.value)
    check_names_a_real_cycle(g, str(exc.value))
