"""Random small fabrics and random packets: conservation laws hold every cycle, everything arrives.

Checked between every two cycles of the flit-level network:

* credits: 0 <= credits <= depth on every router output VC and NIC injection VC, and exactly
  ``credits + flits on the link + flits in the downstream buffer + credits on the way back = depth``;
* buffers never hold more than their depth;
* flits: created = waiting at the NIC + in router buffers + on links + delivered.

After the drain: every packet delivered, its flits in order, its hop count that of the routing
function, its latency at least the zero-load closed form; with deterministic routing and one VC,
packets of one source-destination pair arrive in the order they were sent.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.core.reservation import Timeline
from sim.core.simulation import Simulation
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.packet import Packet
from sim.fabric.router import RouterParams
from sim.fabric.routing import path_of
from sim.topology import dragonfly, fat_tree, fully_connected, mesh, ring, torus, tree

# (generator, routing, VCs it needs); every default routing here is deadlock-free
TOPOLOGIES = {
    "mesh": (
        lambda d: mesh(d(st.sampled_from([[2], [3], [4], [2, 2], [3, 2], [4, 3], [2, 2, 2]]))),
        "dor",
        1,
    ),
    "mesh_adaptive": (lambda d: mesh(d(st.sampled_from([[3, 3], [4, 2], [2, 2, 2]]))), "min_adaptive", 2),
    "torus": (lambda d: torus(d(st.sampled_from([[3], [4, 3], [3, 3], [4, 4]]))), "dor_dateline", 2),
    "ring": (lambda d: ring(d(st.integers(3, 7))), "dor_dateline", 2),
    "fully_connected": (lambda d: fully_connected(d(st.integers(2, 5))), "direct", 1),
    "tree": (lambda d: tree(d(st.integers(2, 3)), d(st.integers(1, 3))), "updown", 1),
    "fat_tree": (lambda d: fat_tree(4, d(st.integers(1, 3))), "updown", 1),
    "dragonfly": (lambda d: dragonfly(1, d(st.integers(1, 3)), d(st.integers(1, 2))), "dragonfly_min", 2),
}


class ListSource:
    """Packets handed to the network at their creation cycles."""

    def __init__(self, specs, new_packet):
        self.pending = sorted(specs, key=lambda s: s[3])
        self.new_packet = new_packet
        self.created: list[Packet] = []

    def next_cycle(self):
        return self.pending[0][3] if self.pending else None

    def due(self, cycle):
        while self.pending and self.pending[0][3] <= cycle:
            src, dst, size, at = self.pending.pop(0)
            pkt = self.new_packet(src, dst, size, at)
            self.created.append(pkt)
            yield pkt


@st.composite
def cases(draw, vcs_max=3, one_vc=False):
    kinds = [k for k, v in TOPOLOGIES.items() if not one_vc or v[2] == 1]
    kind = draw(st.sampled_from(kinds))
    make, routing, min_vcs = TOPOLOGIES[kind]
    graph = make(draw)
    n = len(graph.graph["terminals"])
    vcs = 1 if one_vc else draw(st.integers(min_vcs, max(min_vcs, vcs_max)))
    rp = RouterParams(
        vcs=vcs,
        vc_buffer=draw(st.integers(1, 4)),
        t_rc=draw(st.integers(0, 2)),
        t_va=draw(st.integers(1, 2)),
        t_sa=draw(st.integers(1, 2)),
        t_st=draw(st.integers(0, 1)),
        credit_delay=draw(st.integers(0, 2)),
    )
    net = NetworkParams(
        routing=routing,
        link_latency=draw(st.integers(0, 3)),
        inject_latency=draw(st.integers(1, 2)),
        eject_latency=draw(st.integers(1, 2)),
    )
    terminal = st.integers(0, n - 1)
    packet = st.tuples(terminal, terminal, st.integers(1, 5), st.integers(0, 30))
    specs = draw(st.lists(packet, min_size=1, max_size=30))
    return graph, net, rp, specs


def credit_ledger(net: FlitNetwork):
    """Per channel: (credits held upstream, depth, flits/credits in transit) from the scheduled actions."""
    arriving = defaultdict(int)  # (router node, in port, vc) -> flits on the link
    returning = defaultdict(int)  # (router node, out port, vc) or ("nic", terminal, vc) -> credits
    ejecting = 0
    for action in net.in_transit():
        if action[0] == "arrive":
            arriving[action[1:]] += 1
        elif action[0] == "credit" and action[1] == "router":
            returning[action[2:]] += 1
        elif action[0] == "credit":
            returning["nic", action[2], action[3]] += 1
        else:
            assert action[0] == "eject"
            ejecting += 1
    return arriving, returning, ejecting


def check_cycle(net: FlitNetwork, source: ListSource, depth: int) -> None:
    arriving, returning, ejecting = credit_ledger(net)
    buffered = 0
    for r in net.routers:
        for port_vcs in r.inputs:
            for ivc in port_vcs:
                assert len(ivc.buf) <= depth
                buffered += len(ivc.buf)
        for op, port in enumerate(r.outputs):
            if port.terminal >= 0:
                continue
            down, dp = port.down_router, port.down_port
            for v, credits in enumerate(port.credits):
                assert 0 <= credits <= depth
                held = credits + arriving[down.node, dp, v] + len(down.inputs[dp][v].buf)
                assert held + returning[r.node, op, v] == depth, (r.node, op, v)
    for nic in net.nics:
        r, p = nic.router, nic.port
        for v, credits in enumerate(nic.credits):
            assert 0 <= credits <= depth
            held = credits + arriving[r.node, p, v] + len(r.inputs[p][v].buf)
            assert held + returning["nic", nic.terminal, v] == depth
    assert buffered == net.buffered
    created = sum(p.size_flits for p in source.created)
    at_nic = sum(p.size_flits for nic in net.nics for p in nic.queue)
    at_nic += sum(nic.cur.size_flits - nic.cur_flit for nic in net.nics if nic.cur is not None)
    on_links = sum(arriving.values()) + ejecting
    assert created == at_nic + buffered + on_links + net.stat.flits_delivered.value
    assert net.in_flight == len(source.created) - net.stat.packets_delivered.value


def lower_bound(net: NetworkParams, rp: RouterParams, graph, pkt: Packet) -> int:
    link = net.link_latency or graph.graph["params"]["latency"]
    return (
        net.inject_latency
        + (pkt.hops + 1) * rp.pipeline
        + pkt.hops * link
        + net.eject_latency
        + (pkt.size_flits - 1)
    )


def run_flit(graph, net, rp, specs, check_every_cycle=True):
    sim = Simulation(seed=0)
    network = FlitNetwork(sim, "net", graph, net, rp)
    source = ListSource(specs, network.new_packet)
    network.add_source(source)
    order: dict[int, list[int]] = defaultdict(list)
    network.on_eject_flit = lambda flit, now: order[flit[1].id].append(flit[2])
    delivered: list[Packet] = []
    network.on_deliver = delivered.append
    sim.start()
    cycle = 0
    while source.pending or network.in_flight or network.n_pending:
        cycle += 1
        sim.run(until=cycle * network.cycle_ps)
        if check_every_cycle:
            check_cycle(network, source, rp.vc_buffer)
        assert cycle < 20_000, "not drained"
    check_cycle(network, source, rp.vc_buffer)
    return network, source, delivered, order


def check_delivered(network, graph, net, rp, source, delivered) -> None:
    assert sorted(p.id for p in delivered) == sorted(p.id for p in source.created)
    assert network.stat.flits_delivered.value == sum(p.size_flits for p in source.created)
    terminals = graph.graph["terminals"]
    for pkt in delivered:
        if network.routing.deterministic:
            assert pkt.hops == len(path_of(network.routing, terminals[pkt.src], terminals[pkt.dst])) - 1
        assert pkt.eject_cycle - pkt.create_cycle >= lower_bound(net, rp, graph, pkt)
        assert pkt.create_cycle <= pkt.inject_cycle < pkt.eject_cycle


SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(cases())
def test_flit_level_conserves_credits_and_flits_every_cycle(case):
    graph, net, rp, specs = case
    network, source, delivered, order = run_flit(graph, net, rp, specs)
    check_delivered(network, graph, net, rp, source, delivered)
    for pkt in source.created:
        assert order[pkt.id] == list(range(pkt.size_flits))  # a packet's flits arrive in order
    # every flit of a packet crossed as many links as its head
    assert network.stat.flit_hops.value == sum(p.hops * p.size_flits for p in delivered)
    # no flit is left anywhere and every credit is home
    assert network.buffered == 0 and network.n_pending == 0
    for r in network.routers:
        for port in r.outputs:
            if port.terminal < 0:
                assert port.credits == [rp.vc_buffer] * rp.vcs
            assert port.owner == [None] * rp.vcs


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(one_vc=True))
def test_one_vc_deterministic_routing_delivers_each_pair_in_order(case):
    graph, net, rp, specs = case
    network, source, delivered, _ = run_flit(graph, net, rp, specs, check_every_cycle=False)
    check_delivered(network, graph, net, rp, source, delivered)
    sent, got = defaultdict(list), defaultdict(list)
    for pkt in source.created:
        sent[pkt.src, pkt.dst].append(pkt.id)
    for pkt in delivered:
        got[pkt.src, pkt.dst].append(pkt.id)
    assert got == sent


@settings(max_examples=60, deadline=None)
@given(cases())
def test_message_level_delivers_everything_no_faster_than_zero_load(case):
    graph, net, rp, specs = case
    sim = Simulation(seed=0)
    network = MessageNetwork(sim, "net", graph, net, rp)
    source = ListSource(specs, network.new_packet)
    network.add_source(source)
    delivered: list[Packet] = []
    network.on_deliver = delivered.append
    booked: dict[int, list[tuple[int, int]]] = defaultdict(list)
    real_book = Timeline.book

    def book(self, start, duration, *rest):
        booked[id(self)].append((start, start + duration))
        return real_book(self, start, duration, *rest)

    with patch.object(Timeline, "book", book):
        sim.run()
    check_delivered(network, graph, net, rp, source, delivered)
    assert network.in_flight == 0
    # every channel (injection, crossbar input, link, ejection) serves one flit per cycle:
    # the intervals booked on it never overlap
    for spans in booked.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    # seen from outside: per terminal, injection and ejection spans are disjoint too
    inject, eject = defaultdict(list), defaultdict(list)
    for pkt in delivered:
        inject[pkt.src].append((pkt.inject_cycle, pkt.inject_cycle + pkt.size_flits))
        last = pkt.eject_cycle - net.eject_latency
        eject[pkt.dst].append((last - pkt.size_flits + 1, last + 1))
    for spans in [*inject.values(), *eject.values()]:
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
