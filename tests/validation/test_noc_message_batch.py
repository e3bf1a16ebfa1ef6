"""The batch message level: closed forms it must meet, its order of channels, and its fallbacks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.core.registry import lookup
from sim.experiments.noc import NocRunParams, run_noc
from sim.fabric.message_batch import plan, simulate
from sim.fabric.network import NetworkParams
from sim.fabric.router import RouterParams
from sim.topology import id_to_coords, mesh, torus


def mesh_plan(k: int = 4, **net):
    g = mesh(k)
    fn = lookup("routing", "dor")(g, 4)
    return plan(g, fn, list(g.graph["terminals"]), NetworkParams(**net), RouterParams())


def manhattan(shape, a: int, b: int) -> int:
    return sum(abs(x - y) for x, y in zip(id_to_coords(a, shape), id_to_coords(b, shape), strict=True))


@pytest.mark.parametrize("size", [1, 3])
def test_a_packet_alone_meets_the_zero_load_closed_form(size):
    """inject + (H + 1) pipeline + H link + eject + size - 1 = 5 H + 6 + size - 1 (canonical router)."""
    p = mesh_plan()
    for s, d in itertools.product(range(16), range(16)):
        one = np.array([100])
        ej = simulate(p, one, np.array([s]), np.array([d]), size, efficiency=0.85)
        assert ej[0] - 100 == 5 * manhattan((4, 4), s, d) + 6 + size - 1
        assert p.zero_load[s, d] == 5 * manhattan((4, 4), s, d) + 6


def test_link_latency_adds_per_hop():
    p = mesh_plan(link_latency=3)
    assert p.zero_load[0, 3] == 1 + 4 * 4 + 3 * 3 + 1  # 3 hops along x


@pytest.mark.parametrize("m", [2, 3, 5])
def test_packets_meeting_at_one_channel_leave_one_service_time_apart(m):
    """m packets reach terminal 5's ejection channel in the same cycle over disjoint routes: a FIFO
    server of 1-flit service sends them 1 cycle apart (efficiency 1), in packet order."""
    p = mesh_plan()
    srcs = np.array([4, 1, 6, 9, 5][:m])  # west, north(-y), east, south(+y) neighbours, and 5 itself
    dsts = np.full(m, 5)
    create = np.array([0, 0, 0, 0, 5][:m])  # the local packet skips the link: created a hop later
    ej = simulate(p, create, srcs, dsts, 1, efficiency=1.0)
    assert sorted(ej.tolist()) == [ej.min() + i for i in range(m)]
    assert ej.tolist() == sorted(ej.tolist())  # ties go in packet order


def test_efficiency_stretches_service_but_not_a_lone_packet():
    """Two packets on one channel: the second starts ceil(1 / efficiency) after the first."""
    p = mesh_plan()
    ej = simulate(p, np.array([0, 0]), np.array([4, 1]), np.array([5, 5]), 1, efficiency=0.5)
    assert ej[1] - ej[0] == 2


def test_a_cyclic_channel_graph_has_no_plan_and_falls_back_to_events():
    """A 5-ary ring's minimal routes chain all the way round (a 4-ary one's, with balanced ties, do not)."""
    g = torus(5)
    fn = lookup("routing", "dor_dateline")(g, 4)
    assert plan(g, fn, list(g.graph["terminals"]), NetworkParams(), RouterParams()) is None
    r = run_noc(g, NocRunParams(rate=0.1, warmup=100, measure=300, fidelity="message"))
    assert r["events"] > 0


def test_batch_runs_are_deterministic_and_measure_the_flit_levels_packets():
    params = NocRunParams(rate=0.2, warmup=200, measure=600, fidelity="message")
    a, b = run_noc(mesh(4), params, seed=3), run_noc(mesh(4), params, seed=3)
    drop = {"wall_s", "flit_hops_per_s", "router_traversals_per_s", "events_per_s", "sim_s_per_wall_s"}
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    assert a["events"] == 0
    flit = run_noc(mesh(4), NocRunParams(rate=0.2, warmup=200, measure=600), seed=3)
    assert a["measured_packets"] == flit["measured_packets"] and a["avg_hops"] == flit["avg_hops"]
    assert a["mean_packet_latency_cycles"] >= a["zero_load_latency_cycles"]


@pytest.mark.parametrize(
    ("vcs", "vc_buffer", "size", "port"),
    [
        (4, 8, 1, 1.0),  # 4 VCs x 1/3 packet per cycle: the port is not the limit
        (1, 8, 1, 1 / 3),  # one VC: a 1-flit packet per 1 + t_rc + t_va = 3 cycles
        (2, 4, 1, 2 / 3),
        (1, 8, 4, 4 / 6),  # 4 flits per 4 + 2 cycles
        (1, 2, 4, 2 / 5),  # 2 flits per credit round trip t_sa + t_st + 2 link + t_rc = 5
        (8, 2, 1, 1.0),
    ],
)
def test_efficiency_is_allocation_times_what_a_port_takes_in(vcs, vc_buffer, size, port):
    from sim.fabric.message_batch import MESSAGE_EFFICIENCY, efficiency

    eff = efficiency(RouterParams(vcs=vcs, vc_buffer=vc_buffer), size)
    assert eff == pytest.approx(MESSAGE_EFFICIENCY * port)


def test_fewer_vcs_saturate_the_message_level_earlier():
    """The message level sees the VCs through its efficiency (the flit level: 1 VC saturates an
    8x8 mesh near 0.14, 4 VCs near 0.42); on a 4x4 mesh 1 VC is saturated at a load 4 VCs carry."""
    run = NocRunParams(rate=0.3, warmup=300, measure=1000, fidelity="message")
    one = run_noc(mesh(4), run, router=RouterParams(vcs=1, vc_buffer=8))
    four = run_noc(mesh(4), run, router=RouterParams(vcs=4, vc_buffer=8))
    assert one["saturated"] and not four["saturated"]
