"""One packet in an idle fabric: latency is the closed form, exactly, at flit and at message level.

Zero-load latency of a packet of L flits over h router-to-router links (router docstring):

    inject + (h + 1) * (t_rc + t_va + t_sa + t_st) + h * link + eject + (L - 1)

It holds as long as every VC buffer covers its credit round trip; a shallower buffer throttles a
stream to ``depth`` flits per round trip, which the last tests check flit by flit.
"""

from __future__ import annotations

import pytest

from sim.core.simulation import Simulation
from sim.experiments.noc import NocRunParams, run_noc
from sim.fabric.collectives import zero_load_cycles
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.router import RouterParams
from sim.fabric.routing import path_of
from sim.topology import dragonfly, fat_tree, mesh, ring, torus

LEVELS = (FlitNetwork, MessageNetwork)
SIZES = (1, 2, 5, 16)
# (src, dst) terminals of a 4x4 mesh and their XY hop counts: 0, 1, 2, 3, 4, 6
MESH_PAIRS = ((0, 0, 0), (0, 1, 1), (0, 5, 2), (0, 3, 3), (0, 10, 4), (0, 15, 6))
ODD = dict(t_rc=2, t_va=3, t_sa=2, t_st=0, credit_delay=3)
ODD_NET = dict(link_latency=4, inject_latency=2, eject_latency=3)


def closed_form(net: NetworkParams, rp: RouterParams, hops: int, flits: int, link: int) -> int:
    stages = rp.t_rc + rp.t_va + rp.t_sa + rp.t_st
    return net.inject_latency + (hops + 1) * stages + hops * link + net.eject_latency + flits - 1


def link_round_trip(rp: RouterParams, link: int) -> int:
    """Credit round trip of a router-to-router channel, from the router docstring: a flit granted
    the switch in cycle s is written downstream in s + t_sa + t_st + link; a body flit may bid for
    the downstream switch t_rc cycles after it is written and leaves when granted; its credit is
    back upstream link + credit_delay cycles after it leaves, usable in that cycle's allocation."""
    return rp.t_sa + rp.t_st + link + rp.t_rc + link + rp.credit_delay


def inject_round_trip(net: NetworkParams, rp: RouterParams) -> int:
    """The same loop between a NIC and its router (the NIC sends in the cycle it holds a credit)."""
    return net.inject_latency + rp.t_rc + net.inject_latency + rp.credit_delay


def deep(rp: dict, net: dict) -> RouterParams:
    """Router params whose buffers cover every credit round trip (so the closed form applies)."""
    probe = RouterParams(**rp)
    nparams = NetworkParams(**net)
    need = max(link_round_trip(probe, nparams.link_latency or 1), inject_round_trip(nparams, probe))
    return RouterParams(**{**rp, "vc_buffer": max(8, need)})


def send_one(cls, graph, src, dst, flits, net=None, rp=None, at_cycle=0):
    sim = Simulation(seed=0)
    network = cls(sim, "net", graph, net or NetworkParams(), rp or RouterParams())
    sim.start()
    box = {}

    def proc():
        if at_cycle:
            yield sim.env.timeout(at_cycle * network.cycle_ps)
        box["pkt"] = pkt = network.new_packet(src, dst, flits)
        network.submit(pkt)
        yield sim.env.timeout(0)

    sim.env.process(proc())
    sim.run()
    return network, box["pkt"]


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("flits", SIZES)
@pytest.mark.parametrize(("src", "dst", "hops"), MESH_PAIRS)
def test_default_pipeline_zero_load_is_exact(level, flits, src, dst, hops):
    net, rp = NetworkParams(), RouterParams()
    network, pkt = send_one(level, mesh(4), src, dst, flits, net, rp)
    assert pkt.hops == hops
    expected = 2 + 4 * (hops + 1) + hops + flits - 1  # the canonical 4-stage router, 1-cycle links
    assert pkt.latency == expected == closed_form(net, rp, hops, flits, 1)
    assert zero_load_cycles(network, hops, flits) == expected
    assert network.stat.flit_hops.value == hops * flits
    assert network.stat.flits_delivered.value == flits


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("flits", SIZES)
@pytest.mark.parametrize(("src", "dst", "hops"), MESH_PAIRS[1::2])
@pytest.mark.parametrize(
    ("rp_kw", "net_kw"),
    [(ODD, ODD_NET), (dict(t_rc=0, t_va=1, t_sa=1, t_st=2, credit_delay=1), dict(link_latency=2))],
    ids=["odd-stages", "no-rc-stage"],
)
def test_non_default_stages_links_and_credit_delay(level, flits, src, dst, hops, rp_kw, net_kw):
    net, rp = NetworkParams(**net_kw), deep(rp_kw, net_kw)
    network, pkt = send_one(level, mesh(4), src, dst, flits, net, rp)
    expected = closed_form(net, rp, hops, flits, net.link_latency)
    assert pkt.hops == hops
    assert pkt.latency == expected
    assert zero_load_cycles(network, hops, flits) == expected


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
def test_topology_link_latency_is_used_when_link_latency_is_zero(level):
    """link_latency = 0 means each link's own latency; the twin must use it too (it used to assume 1)."""
    g = mesh(4, latency=3)
    net, rp = NetworkParams(), RouterParams()
    network, pkt = send_one(level, g, 0, 15, 4, net, rp)
    assert pkt.latency == closed_form(net, rp, 6, 4, 3) == zero_load_cycles(network, 6, 4)


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "graph",
    [torus(4), ring(7), fat_tree(4, 3), dragonfly(1, 2, 2), mesh([3, 2, 2])],
    ids=["torus4", "ring7", "fat_tree4", "dragonfly", "mesh3x2x2"],
)
def test_zero_load_on_other_topologies_uses_the_routed_hop_count(level, graph):
    net, rp = NetworkParams(), RouterParams()
    n = len(graph.graph["terminals"])
    for src, dst in [(0, n - 1), (n - 1, 0), (1, n // 2)]:
        network, pkt = send_one(level, graph, src, dst, 3, net, rp)
        hops = len(path_of(network.routing, graph.graph["terminals"][src], graph.graph["terminals"][dst])) - 1
        assert pkt.hops == hops
        assert pkt.latency == closed_form(net, rp, hops, 3, 1)


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
def test_a_packet_sent_after_an_idle_spell_sees_zero_load_latency(level):
    """Regression: a flit network woken after sleeping used to resume at its old cycle (negative
    SimPy delay). The packet must start at the cycle it was created and see the closed form."""
    net, rp = NetworkParams(), RouterParams()
    _, pkt = send_one(level, mesh(4), 0, 10, 4, net, rp, at_cycle=1000)
    assert pkt.create_cycle == pkt.inject_cycle == 1000
    assert pkt.latency == closed_form(net, rp, 4, 4, 1)


def test_a_second_packet_after_the_network_went_idle():
    sim = Simulation()
    network = FlitNetwork(sim, "net", mesh(4))
    sim.start()
    pkts = []

    def proc():
        for _ in range(3):
            pkts.append(network.new_packet(0, 15, 2))
            network.submit(pkts[-1])
            yield sim.env.timeout(500 * network.cycle_ps)

    sim.env.process(proc())
    sim.run()
    assert [p.create_cycle for p in pkts] == [0, 500, 1000]
    assert {p.latency for p in pkts} == {closed_form(NetworkParams(), RouterParams(), 6, 2, 1)}


# -- buffers shallower than the credit round trip ---------------------------------------------------
def flit_arrivals(depth: int, rp_kw: dict, net_kw: dict, size: int = 64) -> list[int]:
    """Cycles at which the flits of one long packet reach the NIC across a 2-router line."""
    sim = Simulation()
    network = FlitNetwork(
        sim, "net", mesh(2, 1), NetworkParams(**net_kw), RouterParams(vcs=1, vc_buffer=depth, **rp_kw)
    )
    times: list[int] = []
    network.on_eject_flit = lambda flit, now: times.append(now)
    sim.start()
    network.submit(network.new_packet(0, 1, size, 0))
    sim.run()
    assert len(times) == size
    return times


@pytest.mark.parametrize(("rp_kw", "net_kw"), [({}, {}), (ODD, ODD_NET)], ids=["canonical", "odd-stages"])
def test_a_shallow_buffer_passes_depth_flits_per_credit_round_trip(rp_kw, net_kw):
    rp, net = RouterParams(**rp_kw), NetworkParams(**net_kw)
    rtt = link_round_trip(rp, net.link_latency or 1)
    assert inject_round_trip(net, rp) < rtt  # so the router-to-router channel is the one that binds
    for depth in range(1, rtt + 2):
        t = flit_arrivals(depth, rp_kw, net_kw)
        steady = range(24, len(t) - depth)
        if depth < rtt:
            # every window of `depth` consecutive flits takes exactly one round trip
            assert {t[i + depth] - t[i] for i in steady} == {rtt}, depth
        else:
            assert {t[i + 1] - t[i] for i in steady} == {1}, depth


@pytest.mark.parametrize("depth", [1, 2])
def test_shallow_buffers_cap_neighbour_traffic_throughput(depth):
    """run_noc view of the same law: 2-node line, neighbour traffic at full offered load, 1 VC.
    Accepted throughput never exceeds depth / round trip and approaches it for long packets (the
    rest is the per-packet VC allocation bubble)."""
    rp = RouterParams(vcs=1, vc_buffer=depth)
    rtt = link_round_trip(rp, 1)
    run = NocRunParams(traffic="neighbor", rate=1.0, packet_flits=16, warmup=300, measure=3000, drain=500)
    res = run_noc(mesh(2, 1), run, NetworkParams(), rp, seed=1)
    cap = depth / rtt
    assert res["saturated"]
    assert res["accepted_flits_per_node_cycle"] <= cap + 16 / run.measure
    assert res["accepted_flits_per_node_cycle"] >= 0.9 * cap
