"""Collectives as message patterns on any fabric, with an alpha-beta analytic twin for each.

An algorithm is a registered generator function (kind ``collective``) that runs as SimPy processes
over the network's ``transfer(src, dst, nbytes)`` and finishes when every rank has its result:

* ``ring``: reduce-scatter then all-gather around a ring of the ranks, 2(p-1) steps of n/p bytes;
* ``tree``: binomial-tree reduce to rank 0, then binomial-tree broadcast, 2 log2 p steps of n bytes;
* ``2d``: ranks as an a x b grid: ring reduce-scatter along rows, ring all-reduce of the shard
  along columns, ring all-gather along rows (Mesh/torus-friendly);
* ``in-network``: routers of a spanning tree combine contributions in flight (SHARP-style streaming
  aggregation, cut-through): each tree link carries n bytes up and n bytes down whatever the group
  size, and the whole operation takes about one n-byte transfer over twice the tree depth.
  Message level only.

Operations: ``allreduce`` (ring, tree, 2d, in-network), ``reduce_scatter`` and ``allgather``
(ring), ``broadcast`` (tree), ``alltoall`` (direct: every rank sends n/p bytes to every other rank
at once, as MoE dispatch and combine do).

The twin charges every step ``alpha(h) + bytes / link_bandwidth``, where ``alpha(h)`` is the
zero-load latency of a one-flit packet over ``h`` hops (the network's own closed form) and ``h``
is the largest hop count among that step's transfers. All-to-all, whose messages all travel at
once, is charged by its busiest channel instead (the channel-load bound under the routing used).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import simpy

from sim.core.errors import ConfigError
from sim.core.registry import lookup, register
from sim.fabric.routing import path_of


@dataclass(frozen=True)
class CollectiveCase:
    """What to run: operation, algorithm, bytes per rank and the ranks (terminal ids)."""

    op: str
    algorithm: str
    nbytes: int
    ranks: tuple[int, ...]


SUPPORTED = {
    "allreduce": ("ring", "tree", "2d", "in-network"),
    "reduce_scatter": ("ring",),
    "allgather": ("ring",),
    "broadcast": ("tree",),
    "alltoall": ("direct",),
}
DEFAULT_ALGORITHM = {
    "allreduce": "ring",
    "reduce_scatter": "ring",
    "allgather": "ring",
    "broadcast": "tree",
    "alltoall": "direct",
}


def check_case(case: CollectiveCase) -> None:
    if case.op not in SUPPORTED:
        raise ConfigError(
            f"unknown collective {case.op!r}; expected one of {', '.join(SUPPORTED)}", where="--op"
        )
    if case.algorithm not in SUPPORTED[case.op]:
        raise ConfigError(
            f"{case.op} supports algorithms {', '.join(SUPPORTED[case.op])}, not {case.algorithm!r}",
            where="--algorithm",
        )
    if len(case.ranks) < 2:
        raise ConfigError(f"a collective needs at least 2 ranks, found {len(case.ranks)}", where="--group")
    if case.nbytes <= 0:
        raise ConfigError(f"expected bytes > 0, found {case.nbytes}", where="--bytes")


# -- algorithms (each a process generator over a network) ------------------------------------
Algorithm = Callable[[Any, CollectiveCase], Generator[simpy.Event, Any, None]]


def _ring_phase(net: Any, ranks: Sequence[int], chunk: int, steps: int) -> Generator[simpy.Event, Any, None]:
    """``steps`` ring steps: every rank sends ``chunk`` to its successor; a rank's next send
    waits for the chunk it receives in the previous step (the data dependency of ring algorithms)."""
    env = net.env
    p = len(ranks)
    received: list[list[simpy.Event]] = [[env.event() for _ in range(steps)] for _ in range(p)]

    def rank_proc(i: int) -> Generator[simpy.Event, Any, None]:
        nxt = (i + 1) % p
        for s in range(steps):
            if s > 0:
                yield received[i][s - 1]
            yield net.transfer(ranks[i], ranks[nxt], chunk)
            received[nxt][s].succeed()

    procs = [env.process(rank_proc(i)) for i in range(p)]
    yield env.all_of(procs + [received[i][steps - 1] for i in range(p)])


@register("collective", "ring")
def ring_algorithm(net: Any, case: CollectiveCase) -> Generator[simpy.Event, Any, None]:
    p = len(case.ranks)
    chunk = max(1, math.ceil(case.nbytes / p))
    steps = {"allreduce": 2 * (p - 1), "reduce_scatter": p - 1, "allgather": p - 1}[case.op]
    yield from _ring_phase(net, case.ranks, chunk, steps)


@register("collective", "tree")
def tree_algorithm(net: Any, case: CollectiveCase) -> Generator[simpy.Event, Any, None]:
    """Binomial tree rooted at rank 0: reduce (leaves up), then broadcast (root down)."""
    env = net.env
    ranks = case.ranks
    p = len(ranks)
    rounds = math.ceil(math.log2(p))
    if case.op == "allreduce":
        for r in range(rounds):  # reduce: in round r, rank i (i % 2^(r+1) == 2^r) sends to i - 2^r
            step = 1 << r
            sends = [
                net.transfer(ranks[i], ranks[i - step], case.nbytes)
                for i in range(p)
                if i % (2 * step) == step
            ]
            yield env.all_of(sends)
    for r in reversed(range(rounds)):  # broadcast: rank i (i % 2^(r+1) == 0) sends to i + 2^r
        step = 1 << r
        sends = [
            net.transfer(ranks[i], ranks[i + step], case.nbytes)
            for i in range(0, p, 2 * step)
            if i + step < p
        ]
        yield env.all_of(sends)


def grid_shape(p: int) -> tuple[int, int]:
    """Most square a x b = p with a <= b."""
    a = math.isqrt(p)
    while p % a:
        a -= 1
    return a, p // a


@register("collective", "2d")
def two_d_algorithm(net: Any, case: CollectiveCase) -> Generator[simpy.Event, Any, None]:
    env = net.env
    a, b = grid_shape(len(case.ranks))
    if a == 1:
        yield from ring_algorithm(net, case)
        return
    rows = [case.ranks[r * b : (r + 1) * b] for r in range(a)]
    cols = [case.ranks[c::b] for c in range(b)]
    shard = max(1, math.ceil(case.nbytes / b))
    yield env.all_of([env.process(_ring_phase(net, row, shard, b - 1)) for row in rows])
    col_chunk = max(1, math.ceil(shard / a))
    yield env.all_of([env.process(_ring_phase(net, col, col_chunk, 2 * (a - 1))) for col in cols])
    yield env.all_of([env.process(_ring_phase(net, row, shard, b - 1)) for row in rows])


@register("collective", "direct")
def direct_alltoall(net: Any, case: CollectiveCase) -> Generator[simpy.Event, Any, None]:
    p = len(case.ranks)
    chunk = max(1, math.ceil(case.nbytes / p))
    yield net.env.all_of([net.transfer(s, d, chunk) for s in case.ranks for d in case.ranks if s != d])


@register("collective", "in-network")
def in_network_allreduce(net: Any, case: CollectiveCase) -> Generator[simpy.Event, Any, None]:
    """Reduction tree of routers combining cut-through (SHARP-style streaming aggregation).

    Every member streams its n bytes into its router; each router forwards one combined stream
    to its parent as soon as the heads of all its inputs have arrived (the tail follows the
    slowest input's tail); the root turns the result around and multicasts it down the same tree,
    one copy per tree link. Timed in closed form on the message-level channels.
    """
    if not hasattr(net, "stream_hop"):
        raise ConfigError(
            "in-network reduction is modelled at message level; use --fidelity message", where="--algorithm"
        )
    flits = max(1, math.ceil(case.nbytes / net.params.flit_bytes))
    tree, root, _ = reduction_tree(net.graph, [net.terminal_router[t] for t in case.ranks])
    parent = {child: par for par, child in nx.bfs_edges(tree, root)}
    order = [root] + [child for _, child in nx.bfs_edges(tree, root)]
    arrivals: dict[int, list[tuple[int, int]]] = {n: [] for n in tree.nodes}
    for t in case.ranks:
        arrivals[net.terminal_router[t]].append(net.stream_inject(t, flits))
    combined: dict[int, tuple[int, int]] = {}
    for node in reversed(order):  # leaves first: up the tree
        heads, tails = zip(*arrivals[node], strict=True)
        combined[node] = (max(heads), max(tails))
        if node != root:
            arrivals[parent[node]].append(net.stream_hop(node, parent[node], *combined[node], flits))
    down = {root: combined[root]}
    finish = 0
    for node in order:  # root first: down the tree
        for child in tree.neighbors(node):
            if parent.get(child) == node:
                down[child] = net.stream_hop(node, child, *down[node], flits)
        for t in case.ranks:
            if net.terminal_router[t] == node:
                finish = max(finish, net.stream_eject(t, *down[node], flits))
    yield net.at_cycle(finish)


def reduction_tree(graph: nx.Graph, routers: Sequence[int]) -> tuple[nx.Graph, int, set[int]]:
    """Shortest-path tree from the most central member router, pruned to the member routers."""
    members = set(routers)
    root = min(
        members, key=lambda r: (max(nx.single_source_shortest_path_length(graph, r)[m] for m in members), r)
    )
    paths = nx.single_source_shortest_path(graph, root)
    tree = nx.Graph()
    tree.add_node(root)
    for m in sorted(members):
        nx.add_path(tree, paths[m])
    return tree, root, members


# -- analytic twin --------------------------------------------------------------------------------
def alpha_beta_cycles(net: Any, case: CollectiveCase) -> float:
    """Closed-form time in cycles (see module docstring)."""
    p = len(case.ranks)
    params = net.params
    fb = params.flit_bytes

    def step(src: int, dst: int, nbytes: int) -> float:
        hops = nx.shortest_path_length(net.graph, net.terminal_router[src], net.terminal_router[dst])
        return zero_load_cycles(net, hops, max(1, math.ceil(nbytes / fb)))

    ranks = case.ranks
    if case.algorithm == "ring":
        steps = {"allreduce": 2 * (p - 1), "reduce_scatter": p - 1, "allgather": p - 1}[case.op]
        chunk = math.ceil(case.nbytes / p)
        return steps * max(step(ranks[i], ranks[(i + 1) % p], chunk) for i in range(p))
    if case.algorithm == "tree":
        # binomial rounds (see tree_algorithm): each round is charged its own longest transfer
        rounds = [1 << r for r in range(math.ceil(math.log2(p)))]
        bcast = sum(
            max(step(ranks[i], ranks[i + d], case.nbytes) for i in range(0, p, 2 * d) if i + d < p)
            for d in rounds
        )
        if case.op != "allreduce":
            return bcast
        return bcast + sum(
            max(step(ranks[i], ranks[i - d], case.nbytes) for i in range(p) if i % (2 * d) == d)
            for d in rounds
        )
    if case.algorithm == "2d":
        a, b = grid_shape(p)
        if a == 1:  # two_d_algorithm falls back to the plain ring
            return alpha_beta_cycles(net, CollectiveCase(case.op, "ring", case.nbytes, ranks))
        shard = math.ceil(case.nbytes / b)
        rows = [ranks[r * b : (r + 1) * b] for r in range(a)]
        cols = [ranks[c::b] for c in range(b)]
        # every ring step includes the wrap-around transfer from the last member to the first
        row = max(step(g[i], g[(i + 1) % b], shard) for g in rows for i in range(b))
        col_chunk = math.ceil(shard / a)
        col = max(step(g[i], g[(i + 1) % a], col_chunk) for g in cols for i in range(a))
        return 2 * (b - 1) * row + 2 * (a - 1) * col
    if case.algorithm == "direct":
        chunk = math.ceil(case.nbytes / p)
        flits = math.ceil(chunk / fb)
        # channel-load bound: the busiest channel (link, or a rank's injection channel) must carry
        # every flit routed over it; add the latency of the longest single message
        load: dict[tuple[int, int], int] = {}
        for s in ranks:
            for d in ranks:
                if s != d:
                    route = path_of(net.routing, net.terminal_router[s], net.terminal_router[d])
                    for link in itertools.pairwise(route):
                        load[link] = load.get(link, 0) + flits
        busiest = max([(p - 1) * flits, *load.values()])
        return max(step(s, d, chunk) for s in ranks for d in ranks if s != d) + busiest - flits
    if case.algorithm == "in-network":
        tree, root, _ = reduction_tree(net.graph, [net.terminal_router[t] for t in ranks])
        depth = max(nx.single_source_shortest_path_length(tree, root).values())
        flits = math.ceil(case.nbytes / fb)
        # cut-through up and down the tree: one stream over 2 x depth hops
        return zero_load_cycles(net, 2 * depth, flits)
    raise ConfigError(f"no twin for {case.algorithm!r}", where="--algorithm")


def zero_load_cycles(net: Any, hops: int, flits: int) -> int:
    """Closed-form zero-load latency of one packet of ``flits`` flits over ``hops`` links."""
    p = net.params
    # link_latency 0 means each link's own latency (as the networks do): exact when the links agree,
    # the slowest link otherwise
    link = p.link_latency or max((lat for *_, lat in net.graph.edges(data="latency", default=1)), default=1)
    return (
        p.inject_latency + (hops + 1) * net.router_params.pipeline + hops * link + p.eject_latency + flits - 1
    )


def run_algorithm(net: Any, case: CollectiveCase) -> simpy.Process:
    check_case(case)
    algorithm: Algorithm = lookup("collective", case.algorithm)
    return net.env.process(algorithm(net, case))
