"""Routing functions, registered under kind ``routing``.

A routing function is built once per network from the topology graph (see
:mod:`sim.topology.generators` for the graph convention) and the number of VCs per port. At a router
it returns the candidate next hops for a packet's head, each with the output VCs it may use::

    route(node, dest_node, prev_node, in_vc, packet, free_credits) -> [(next_node, vcs), ...]

``next_node == EJECT`` means leave the network here. Candidates come in preference order; the VC
allocator takes the first that has a free VC. ``free_credits(next_node)`` reports downstream space
for adaptive functions. Deadlock freedom comes from the VC classes each function hands out; the
class docstrings say how.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import networkx as nx

from sim.core.errors import ConfigError
from sim.core.registry import register
from sim.fabric.packet import Packet

EJECT = -1
Candidates = list[tuple[int, tuple[int, ...]]]
FreeCredits = Callable[[int], int]


class RoutingFunction:
    """Base class. ``min_vcs`` is how many VCs per port the function needs to be deadlock-free."""

    min_vcs = 1
    topologies: tuple[str, ...] = ()  # graph kinds it supports; empty = any
    # True when the result depends only on (node, dest, prev, in_vc): routers may cache it
    deterministic = True
    # True when a deterministic result depends on (node, dest) only, not on the input port and VC:
    # a router may then share one cached route among all its input VCs
    input_independent = False

    def __init__(self, graph: nx.Graph, vcs: int) -> None:
        kind = graph.graph.get("kind", "?")
        name = getattr(type(self), "registered_name", type(self).__name__)
        if self.topologies and kind not in self.topologies:
            raise ConfigError(
                f"routing {name!r} works on {', '.join(self.topologies)} topologies, not {kind!r}",
                where="routing",
            )
        if vcs < self.min_vcs:
            raise ConfigError(f"routing {name!r} needs at least {self.min_vcs} VCs, found {vcs}", where="vcs")
        self.graph = graph
        self.vcs = vcs
        self.all_vcs = tuple(range(vcs))

    def route(
        self, node: int, dest: int, prev: int, in_vc: int, packet: Packet, free_credits: FreeCredits
    ) -> Candidates:
        raise NotImplementedError


class _Cube(RoutingFunction):
    """Shared coordinate arithmetic for k-ary n-cubes (node id = sum coords[i] * k**i)."""

    # even-k torus ties split between + and - (see :meth:`direction`); False: every tie goes +
    balanced_ties = True

    def __init__(self, graph: nx.Graph, vcs: int) -> None:
        super().__init__(graph, vcs)
        self.shape = tuple(int(k) for k in graph.graph["shape"])
        self.n = len(self.shape)
        self.wrap = graph.graph.get("kind") in ("torus", "ring")
        self.stride = [math.prod(self.shape[:i]) for i in range(self.n)]
        # every node's coordinates, looked up rather than divided out at each routing decision
        self.coords = [
            tuple((node // self.stride[d]) % self.shape[d] for d in range(self.n))
            for node in range(math.prod(self.shape))
        ]

    def coord(self, node: int, dim: int) -> int:
        return self.coords[node][dim]

    def direction(self, node: int, dest: int, dim: int) -> int:
        """+1 or -1: the shorter way along ``dim`` from ``node`` toward ``dest``.

        On a torus or ring of even radix a destination k/2 away is as near both ways. Those ties go
        ``+`` from routers at an even coordinate and ``-`` from odd ones, so each direction carries
        half of them: always ``+`` would load the + links with 10/8 of the - links' traffic on an
        8-ary torus (uniform traffic), and saturate it early. BookSim breaks the same tie at random
        (``dor_next_torus``); a rule of the coordinate keeps routes cacheable and deterministic. Once
        a packet has taken its first step the distance is below k/2, so the tie arises only there.
        """
        here, there = self.coord(node, dim), self.coord(dest, dim)
        delta = there - here
        if not self.wrap:
            return 1 if delta > 0 else -1
        k = self.shape[dim]
        fwd = delta % k
        if 2 * fwd == k:  # a tie (even k only)
            return 1 if here % 2 == 0 or not self.balanced_ties else -1
        return 1 if 2 * fwd < k else -1

    def step(self, node: int, dest: int, dim: int) -> int:
        """Next node along ``dim`` toward ``dest`` (shortest way; ties as in :meth:`direction`)."""
        here = self.coord(node, dim)
        nxt = (here + self.direction(node, dest, dim)) % self.shape[dim]
        return node + (nxt - here) * self.stride[dim]

    def crosses_wrap(self, node: int, dest: int, dim: int) -> bool:
        """Whether the way from ``node`` along ``dim`` toward ``dest`` takes the wrap-around link
        (k-1 -- 0; a dimension of radix 2 has none, see :func:`sim.topology.generators.torus`)."""
        if not self.wrap or self.shape[dim] <= 2:
            return False
        here, there = self.coord(node, dim), self.coord(dest, dim)
        if here == there:
            return False
        return there < here if self.direction(node, dest, dim) > 0 else there > here

    def first_dim(self, node: int, dest: int) -> int:
        """The lowest dimension in which ``node`` and ``dest`` differ (-1: the same node)."""
        here, there = self.coords[node], self.coords[dest]
        for dim in range(self.n):
            if here[dim] != there[dim]:
                return dim
        return -1

    def dim_of(self, a: int, b: int) -> int:
        return self.first_dim(a, b)


@register("routing", "dor")
class DimensionOrder(_Cube):
    """Dimension-order (XY) routing on meshes: dimension 0 first. Deadlock-free with any VCs."""

    topologies = ("mesh",)

    input_independent = True

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        dim = self.first_dim(node, dest)
        if dim < 0:
            return [(EJECT, self.all_vcs)]
        return [(self.step(node, dest, dim), self.all_vcs)]


@register("routing", "dor_dateline")
class DatelineDimensionOrder(_Cube):
    """Dimension-order routing on tori and rings with dateline VC classes.

    VCs split into two classes. When a packet turns into a dimension it takes class 1 if its way
    along that dimension will cross the wrap-around link (the dateline), class 0 if not, and keeps
    that class until it turns again (BookSim's ``dim_order_torus``; Dally & Towles, sec. 14.2).
    Both classes thus carry traffic (the classic rule, class 0 until the dateline and class 1 after
    it, leaves class 1 to the few hops past the dateline). Deadlock freedom per ring: class 0 paths
    never use the wrap link, so their channel dependencies are acyclic; class 1 paths all use it and
    are minimal (at most k/2 hops), so none continues through the router opposite the dateline.
    """

    topologies = ("torus", "ring")
    min_vcs = 2

    def __init__(self, graph: nx.Graph, vcs: int) -> None:
        super().__init__(graph, vcs)
        half = vcs // 2
        self.classes = (tuple(range(half)), tuple(range(half, vcs)))

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        dim = self.first_dim(node, dest)
        if dim < 0:
            return [(EJECT, self.all_vcs)]
        nxt = self.step(node, dest, dim)
        if prev >= 0 and self.dim_of(prev, node) == dim:  # going on along the same dimension
            cls = 1 if in_vc >= len(self.classes[0]) else 0
        else:  # turning into the dimension (or injected)
            cls = 1 if self.crosses_wrap(node, dest, dim) else 0
        return [(nxt, self.classes[cls])]


@register("routing", "dor_unsafe")
class UnrestrictedDimensionOrder(_Cube):
    """Dimension-order on a torus *without* dateline classes: deadlocks under load (for tests).

    Ties go ``+`` always: with balanced ties a 4-ary ring's only two-hop paths (the ties) no
    longer chain round the ring, and the deadlock this function exists to show would vanish there.
    """

    topologies = ("torus", "ring")
    balanced_ties = False

    input_independent = True

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        dim = self.first_dim(node, dest)
        if dim < 0:
            return [(EJECT, self.all_vcs)]
        return [(self.step(node, dest, dim), self.all_vcs)]


@register("routing", "min_adaptive")
class MinimalAdaptive(_Cube):
    """Minimal adaptive routing on meshes with a dimension-order escape VC (Duato's protocol).

    VCs 1..V-1 may take any productive direction, the one with most free downstream credits first;
    VC 0 is reserved for dimension-order routing, which is deadlock-free and always available.
    """

    topologies = ("mesh",)
    min_vcs = 2
    deterministic = False

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        first = self.first_dim(node, dest)
        if first < 0:
            return [(EJECT, self.all_vcs)]
        adaptive = self.all_vcs[1:]
        options = [
            self.step(node, dest, d) for d in range(self.n) if self.coord(node, d) != self.coord(dest, d)
        ]
        options.sort(key=lambda nxt: -free_credits(nxt))
        cands: Candidates = [(nxt, adaptive) for nxt in options]
        cands.append((self.step(node, dest, first), (0,)))
        return cands


@register("routing", "direct")
class Direct(RoutingFunction):
    """Fully connected: one hop straight to the destination router."""

    topologies = ("fully_connected",)

    input_independent = True

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        return [(EJECT if node == dest else dest, self.all_vcs)]


class _TableRouting(RoutingFunction):
    """Next hops precomputed from shortest paths (lowest node id breaks ties)."""

    def __init__(self, graph: nx.Graph, vcs: int) -> None:
        super().__init__(graph, vcs)
        self.next_hop: dict[int, dict[int, int]] = {}
        for dest in graph.nodes:
            dist = nx.single_source_shortest_path_length(graph, dest)
            table = {}
            for node in graph.nodes:
                if node != dest:
                    table[node] = min(
                        nb for nb in graph.neighbors(node) if dist.get(nb, 1 << 30) == dist[node] - 1
                    )
            self.next_hop[dest] = table


@register("routing", "updown")
class UpDown(RoutingFunction):
    """Up*/down* routing for trees and fat trees: climb until the destination is below, then descend.

    No packet ever turns from a down link to an up link, so channel dependencies are acyclic.
    Among several up links the choice is ``dest mod uplinks`` (deterministic spreading, d-mod-k).
    Node attribute ``level`` orders the tree: a link goes *up* toward the smaller level.
    """

    topologies = ("tree", "fat_tree")

    def __init__(self, graph: nx.Graph, vcs: int) -> None:
        super().__init__(graph, vcs)
        level = nx.get_node_attributes(graph, "level")
        if len(level) != graph.number_of_nodes():
            raise ConfigError("updown routing needs a 'level' on every node", where="topology")
        self.up = {n: sorted(nb for nb in graph.neighbors(n) if level[nb] < level[n]) for n in graph}
        self.down = {n: sorted(nb for nb in graph.neighbors(n) if level[nb] > level[n]) for n in graph}
        # below[n]: every node reachable from n using down links only (n included)
        self.below: dict[int, set[int]] = {}
        for n in sorted(graph.nodes, key=lambda x: -level[x]):
            reach = {n}
            for child in self.down[n]:
                reach |= self.below[child]
            self.below[n] = reach

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        if node == dest:
            return [(EJECT, self.all_vcs)]
        if dest in self.below[node]:
            kids = [c for c in self.down[node] if dest in self.below[c]]
            return [(kids[dest % len(kids)], self.all_vcs)]
        ups = self.up[node]
        if not ups:
            raise ConfigError(f"no up*/down* route from {node} to {dest}", where="topology")
        return [(ups[dest % len(ups)], self.all_vcs)]


@register("routing", "dragonfly_min")
class DragonflyMinimal(RoutingFunction):
    """Minimal dragonfly routing: local hop to the group's gateway, the global link, local hop.

    Two VC classes: class 0 until the packet has taken its global link, class 1 after it, which
    breaks the cycle between local channels of the source and destination groups (Kim et al.,
    ISCA 2008). Needs node attribute ``group`` and edge attribute ``kind`` = local/global.
    """

    topologies = ("dragonfly",)
    min_vcs = 2

    def __init__(self, graph: nx.Graph, vcs: int) -> None:
        super().__init__(graph, vcs)
        half = vcs // 2
        self.classes = (tuple(range(half)), tuple(range(half, vcs)))
        self.group = nx.get_node_attributes(graph, "group")
        # gateway[(group, other_group)] = (router in group, its peer in other_group)
        self.gateway: dict[tuple[int, int], tuple[int, int]] = {}
        for a, b, kind in graph.edges(data="kind"):
            if kind == "global":
                for x, y in ((a, b), (b, a)):
                    self.gateway.setdefault((self.group[x], self.group[y]), (x, y))

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        if node == dest:
            return [(EJECT, self.all_vcs)]
        here, there = self.group[node], self.group[dest]
        if here == there:
            nxt = dest
        else:
            gate, peer = self.gateway[(here, there)]
            nxt = peer if gate == node else gate
        after_global = prev >= 0 and (in_vc >= len(self.classes[0]) or self.group[prev] != here)
        return [(nxt, self.classes[1 if after_global else 0])]


@register("routing", "shortest")
class ShortestPath(_TableRouting):
    """Deterministic shortest-path table routing on any graph. Deadlock-free only on trees."""

    def route(self, node, dest, prev, in_vc, packet, free_credits):
        if node == dest:
            return [(EJECT, self.all_vcs)]
        return [(self.next_hop[dest][node], self.all_vcs)]


DEFAULT_ROUTING = {
    "mesh": "dor",
    "torus": "dor_dateline",
    "ring": "dor_dateline",
    "fully_connected": "direct",
    "tree": "updown",
    "fat_tree": "updown",
    "dragonfly": "dragonfly_min",
}


def default_routing(kind: str) -> str:
    return DEFAULT_ROUTING.get(kind, "shortest")


def path_of(fn: RoutingFunction, src: int, dest: int, max_hops: int = 1 << 12) -> Sequence[int]:
    """Routers visited by a packet (first candidate each time), for closed-form checks."""
    pkt = Packet(0, 0, 0, 1, 0)
    path, prev, vc = [src], -1, 0
    node = src
    while node != dest:
        nxt, vcs = fn.route(node, dest, prev, vc, pkt, lambda _n: 0)[0]
        prev, node, vc = node, nxt, vcs[0]
        path.append(node)
        if len(path) > max_hops:
            raise RuntimeError(f"routing loop from {src} to {dest}: {path[:20]}...")
    return path
