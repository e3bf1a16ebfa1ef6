"""Routing functions: path shapes, minimality, and deadlock freedom from the channel dependency graph.

Dally & Seitz: a deterministic routing function is deadlock-free iff its channel dependency graph
(channels = (link, VC); an edge when a packet may hold one while asking for the next) is acyclic.
Duato: an adaptive function is deadlock-free if an escape sub-function is connected and its extended
dependency graph (direct and indirect dependencies through adaptive channels) is acyclic.
"""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from sim.core.registry import lookup
from sim.core.simulation import Simulation
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.packet import Packet
from sim.fabric.router import RouterParams
from sim.fabric.routing import EJECT, path_of
from sim.fabric.traffic import BernoulliSource, uniform
from sim.topology import dragonfly, fat_tree, fully_connected, id_to_coords, mesh, ring, torus, tree

PROBE = Packet(0, 0, 0, 1, 0)


def routing(name: str, graph: nx.Graph, vcs: int = 2):
    return lookup("routing", name)(graph, vcs)


def all_paths(fn, graph):
    nodes = sorted(set(graph.graph["terminals"]))
    for s, d in itertools.product(nodes, nodes):
        yield s, d, path_of(fn, s, d)


def dependency_graphs(fn, graph):
    """Per destination router: channel -> channel dependencies reachable from any injection
    (sources and destinations are the routers that have terminals)."""
    out = {}
    ends = sorted(set(graph.graph["terminals"]))
    for dest in ends:
        cdg = nx.DiGraph()
        stack = [(-1, s, v) for s in ends for v in range(fn.vcs)]
        seen = set()
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            prev, node, vc = state
            for nxt, vcs in fn.route(node, dest, prev, vc, PROBE, lambda _n: 0):
                if nxt == EJECT:
                    continue
                assert graph.has_edge(node, nxt), (node, nxt)
                for ov in vcs:
                    cdg.add_node((node, nxt, ov))
                    if prev >= 0:
                        cdg.add_edge((prev, node, vc), (node, nxt, ov))
                    stack.append((node, nxt, ov))
        out[dest] = cdg
    return out


def cdg_of(fn, graph) -> nx.DiGraph:
    return nx.compose_all(list(dependency_graphs(fn, graph).values()))


# -- deadlock freedom ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "graph", "vcs"),
    [
        ("dor", mesh(4), 1),
        ("dor", mesh([3, 2, 3]), 2),
        ("dor_dateline", torus(4), 2),
        ("dor_dateline", torus(5), 3),
        ("dor_dateline", torus([3, 4]), 4),
        ("dor_dateline", ring(6), 2),
        ("dor_dateline", ring(7), 2),
        ("updown", tree(2, 3), 1),
        ("updown", fat_tree(4, 3), 1),
        ("updown", fat_tree(6, 2), 2),
        ("dragonfly_min", dragonfly(1, 2, 2), 2),
        ("dragonfly_min", dragonfly(1, 4, 2), 2),
        ("direct", fully_connected(5), 1),
        ("shortest", tree(3, 3), 1),
    ],
    ids=lambda v: v if isinstance(v, (str, int)) else v.graph["kind"],
)
def test_channel_dependency_graph_is_acyclic(name, graph, vcs):
    cdg = cdg_of(routing(name, graph, vcs), graph)
    assert cdg.number_of_nodes() > 0
    assert nx.is_directed_acyclic_graph(cdg), nx.find_cycle(cdg)


@pytest.mark.parametrize(
    ("name", "graph"), [("dor_unsafe", ring(4)), ("dor_unsafe", torus(4)), ("shortest", ring(5))]
)
def test_unsafe_routing_has_a_dependency_cycle(name, graph):
    cycle = nx.find_cycle(cdg_of(routing(name, graph, 1), graph))
    assert len(cycle) >= 3


@pytest.mark.parametrize("graph", [mesh(4), mesh([3, 5]), mesh([3, 3, 2])], ids=["4x4", "3x5", "3x3x2"])
def test_min_adaptive_escape_network_is_connected_and_acyclic(graph):
    fn = routing("min_adaptive", graph, 3)
    extended = nx.DiGraph()
    for dest, cdg in dependency_graphs(fn, graph).items():
        escape = [c for c in cdg if c[2] == 0]
        for c in escape:  # escape channels reachable from c through adaptive channels only
            extended.add_node(c)
            frontier, seen = list(cdg.successors(c)), set()
            while frontier:
                x = frontier.pop()
                if x in seen:
                    continue
                seen.add(x)
                if x[2] == 0:
                    extended.add_edge(c, x)
                else:
                    frontier.extend(cdg.successors(x))
        for prev, node, vc in cdg:  # every routing decision offers the dimension-order escape
            if node != dest:
                cands = fn.route(node, dest, prev, vc, PROBE, lambda _n: 0)
                assert (path_of(routing("dor", graph, 1), node, dest)[1], (0,)) in cands
    assert nx.is_directed_acyclic_graph(extended)


# -- path shapes -----------------------------------------------------------------------------------
def manhattan(graph, a, b) -> int:
    ca, cb = id_to_coords(a, graph.graph["shape"]), id_to_coords(b, graph.graph["shape"])
    return sum(abs(x - y) for x, y in zip(ca, cb, strict=True))


@pytest.mark.parametrize("graph", [mesh(4), mesh([5, 3]), mesh([3, 2, 4])], ids=["4x4", "5x3", "3x2x4"])
def test_dor_paths_are_minimal_and_dimension_ordered(graph):
    shape = graph.graph["shape"]
    for s, d, path in all_paths(routing("dor", graph, 1), graph):
        assert len(path) - 1 == manhattan(graph, s, d)
        dims = []
        for a, b in itertools.pairwise(path):
            ca, cb = id_to_coords(a, shape), id_to_coords(b, shape)
            changed = [i for i in range(len(shape)) if ca[i] != cb[i]]
            assert len(changed) == 1 and abs(ca[changed[0]] - cb[changed[0]]) == 1
            dims.append(changed[0])
        assert dims == sorted(dims)


@pytest.mark.parametrize("graph", [torus(4), torus(5), torus([3, 6]), ring(8), ring(5)])
def test_dateline_paths_are_minimal_and_keep_one_class_per_dimension(graph):
    """A packet takes class 1 along a dimension exactly when its way there crosses the wrap link."""
    fn = routing("dor_dateline", graph, 2)
    used = set()
    for s, d, path in all_paths(fn, graph):
        assert len(path) - 1 == nx.shortest_path_length(graph, s, d)
        prev, vc = -1, 0
        hops = list(itertools.pairwise(path))
        for i, (a, b) in enumerate(hops):
            ((nxt, vcs),) = fn.route(a, d, prev, vc, PROBE, lambda _n: 0)
            assert nxt == b
            dim = graph.edges[a, b]["dim"]
            run = [graph.edges[x, y]["wrap"] for x, y in hops[i:] if graph.edges[x, y]["dim"] == dim]
            if prev < 0 or graph.edges[prev, a]["dim"] != dim:  # entering the dimension
                assert vcs == ((1,) if any(run) else (0,))
            else:
                assert vcs == (vc,)  # the class is kept along the dimension
            used.add(vcs[0])
            prev, vc = a, vcs[0]
    assert used == {0, 1}  # both classes carry traffic


def link_loads(fn, graph):
    """Packets per directed link when every router sends one packet to every router."""
    load = {}
    for _s, _d, path in all_paths(fn, graph):
        for a, b in itertools.pairwise(path):
            load[a, b] = load.get((a, b), 0) + 1
    return load


@pytest.mark.parametrize("graph", [ring(8), torus(8), torus(4), torus([6, 4]), ring(6)])
def test_even_k_ties_split_between_directions(graph):
    """All-to-all on an even-k torus: + and - links carry the same total load; with k/2 even,
    every link carries the same load."""
    for name in ("dor_dateline", "dor_unsafe"):
        load = link_loads(routing(name, graph, 2), graph)
        shape = graph.graph["shape"]
        plus = sum(v for (a, b), v in load.items() if (b - a) % graph.number_of_nodes() in _plus_steps(shape))
        minus = sum(load.values()) - plus
        if name == "dor_dateline":
            assert plus == minus
            if all(k % 4 == 0 for k in shape):
                assert len(set(load.values())) == 1
        else:  # the unsafe function keeps every tie on + (its deadlock demo needs them there)
            assert plus > minus


def _plus_steps(shape) -> set[int]:
    """Node-id differences (mod the node count) of a + step in each dimension, wrap included."""
    n, out, stride = 1, set(), 1
    for k in shape:
        n *= k
    for k in shape:
        out.add(stride % n)
        out.add((stride - k * stride) % n)
        stride *= k
    return out


@pytest.mark.parametrize("graph", [tree(2, 4), tree(3, 3), fat_tree(4, 3), fat_tree(4, 2), fat_tree(6, 3)])
def test_updown_never_turns_from_down_to_up(graph):
    level = nx.get_node_attributes(graph, "level")
    for _s, _d, path in all_paths(routing("updown", graph, 1), graph):
        moves = ["up" if level[b] < level[a] else "down" for a, b in itertools.pairwise(path)]
        assert "".join(m[0] for m in moves) == "u" * moves.count("up") + "d" * moves.count("down")
        assert moves.count("up") == moves.count("down")  # leaves sit on one level


@pytest.mark.parametrize("graph", [dragonfly(1, 2, 1), dragonfly(2, 4, 2), dragonfly(1, 3, 3)])
def test_dragonfly_min_is_local_global_local(graph):
    assert graph.graph["params"]["g"] == graph.graph["params"]["a"] * graph.graph["params"]["h"] + 1
    group = nx.get_node_attributes(graph, "group")
    for s, d, path in all_paths(routing("dragonfly_min", graph, 2), graph):
        kinds = [graph.edges[a, b]["kind"] for a, b in itertools.pairwise(path)]
        assert len(kinds) <= 3
        assert kinds.count("global") == (group[s] != group[d])
        if group[s] == group[d]:
            assert kinds == ([] if s == d else ["local"])
        else:
            g = kinds.index("global")
            assert kinds[:g] in ([], ["local"]) and kinds[g + 1 :] in ([], ["local"])


def test_direct_is_one_hop_on_a_fully_connected_graph():
    g = fully_connected(6)
    for s, d, path in all_paths(routing("direct", g, 1), g):
        assert len(path) - 1 == (s != d)


def test_shortest_is_minimal_on_any_graph():
    g = nx.petersen_graph()
    g.graph.update(kind="explicit", terminals=list(g.nodes))
    for s, d, path in all_paths(routing("shortest", g, 1), g):
        assert len(path) - 1 == nx.shortest_path_length(g, s, d)


def test_min_adaptive_candidates_are_all_productive():
    g = mesh([4, 3])
    fn = routing("min_adaptive", g, 2)
    for node, dest in itertools.product(g.nodes, g.nodes):
        if node == dest:
            continue
        for nxt, _vcs in fn.route(node, dest, -1, 0, PROBE, lambda _n: 0):
            assert manhattan(g, nxt, dest) == manhattan(g, node, dest) - 1


def test_min_adaptive_delivers_everything_over_productive_hops_and_adapts():
    """Loaded 4x4 mesh: every packet arrives, every hop of every head is productive (so hops equal the
    Manhattan distance), and some packets leave the XY path (the adaptivity is real)."""
    g = mesh(4)
    sim = Simulation(seed=5)
    net = FlitNetwork(sim, "net", g, NetworkParams(routing="min_adaptive"), RouterParams(vcs=3, vc_buffer=2))
    paths: dict[int, list[int]] = {}
    created: list[Packet] = []

    def spy_on(router):
        start_head = router._start_head  # called once per packet at every router its head reaches

        def spy(ivc, now):
            pkt = ivc.buf[0][1]
            first = g.graph["terminals"][pkt.src]
            if not (router.node == first and pkt.id not in paths):
                here = paths.setdefault(pkt.id, [first])[-1]
                assert manhattan(g, router.node, g.graph["terminals"][pkt.dst]) == (
                    manhattan(g, here, g.graph["terminals"][pkt.dst]) - 1
                )
                paths[pkt.id].append(router.node)
            start_head(ivc, now)

        router._start_head = spy

    for r in net.routers:
        spy_on(r)
    delivered: list[Packet] = []
    net.on_deliver = delivered.append
    source = BernoulliSource(
        net.new_packet, 16, 0.5, 4, uniform, np.random.default_rng(5), stop=1500, on_create=created.append
    )
    net.add_source(source)
    sim.run()
    assert len(delivered) == len(created) > 1000
    dor = routing("dor", g, 1)
    off_xy = 0
    for pkt in delivered:
        s, d = g.graph["terminals"][pkt.src], g.graph["terminals"][pkt.dst]
        assert pkt.hops == manhattan(g, s, d)
        off_xy += pkt.hops > 0 and paths[pkt.id] != list(path_of(dor, s, d))
    assert off_xy > 0
