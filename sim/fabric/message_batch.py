"""Message level in batch: a whole synthetic-traffic run's packets queue on their channels at once.

The event-driven :class:`~sim.fabric.message_network.MessageNetwork` books each packet's path when
it is created, a Python call per channel per packet plus a SimPy event per packet: for 1-flit
packets that is slower than the flit level itself. Synthetic traffic is known in advance (the
Bernoulli source draws every injection before the run), so the same closed form can be evaluated
for all packets together with numpy:

* every channel (a NIC's injection channel, each directed link, a terminal's ejection channel) is
  a FIFO server in order of the heads' ready times (packet id breaks ties);
* a packet's head is ready at a channel ``pipeline`` cycles after it reached the router (the
  router pipeline ``t_rc + t_va + t_sa + t_st``), and reaches the next router ``link`` cycles after
  it starts on the link, so at zero load it meets the closed form both levels share:
  ``inject + (hops + 1) * pipeline + links + eject + size - 1``;
* a channel serves a packet of ``size`` flits in ``size / efficiency`` cycles (see
  :data:`MESSAGE_EFFICIENCY`), a start rounded up to a whole cycle.

With deterministic routing the channels a packet may wait on form a directed acyclic graph whenever
the routing function is deadlock-free without VC classes (dimension order on a mesh, up*/down*,
direct): channels are then taken level by level in topological order, and within a level the FIFO
(Lindley) recursion ``start_i = max(ready_i, start_{i-1} + service)`` of every channel is one
running maximum over the packets sorted by (channel, ready time). :func:`plan` returns None where
the graph has a cycle (a torus ring); the event-driven level serves those.

This is a transaction-level model: it has no buffers, so VCs and buffer depth enter only through
:data:`MESSAGE_EFFICIENCY`, and it cannot deadlock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import numpy as np

from sim.fabric.network import NetworkParams
from sim.fabric.router import RouterParams
from sim.fabric.routing import RoutingFunction, path_of

MESSAGE_EFFICIENCY = 0.85
"""Fraction of a channel's flit rate that a router sustains under load, as the message level's
service rate. CALIBRATED against the flit level, not from an outside source: an input-queued VC
router with separable, single-iteration allocation and a VC turnaround of a few cycles per packet
(the flit level's) loses switch and VC matches that an output-queued FIFO would not. 0.85 puts the
message level's 8x8-mesh latency within 4% of the flit level's up to 0.38 flits/node/cycle (90% of
its first saturated load, 0.42) and its own first saturated load at 0.44, with 4 VCs x 8 flits, DOR,
uniform 1-flit packets (``benchmarks/bench_noc.py``). Refit for other router microarchitectures."""


def efficiency(router: RouterParams, size: int, link_latency: float = 1.0) -> float:
    """The message level's service rate as a fraction of a channel's: :data:`MESSAGE_EFFICIENCY`
    (allocation) times what an input port's VCs can take in (at most 1).

    One VC passes a packet of ``size`` flits per ``size + t_rc + t_va`` cycles (after a tail leaves,
    the next head is routed and allocated an output VC before it may bid for the switch: the flit
    level's turnaround), and at most ``vc_buffer`` flits per credit round trip ``t_sa + t_st +
    2 link + t_rc + credit_delay``. A port's ``vcs`` VCs take in ``vcs`` times the lesser of the two.
    On an 8x8 mesh (DOR, uniform, 1-flit packets) the flit level's first saturated load is
    0.13-0.15 with 1 VC, 0.28-0.31 with 2 and 0.41-0.42 with 4 (4 or 8 flits each); this gives
    0.14, 0.28 and 0.43 (half the port factor: the bisection bound 4/k of 0.5, times 0.85)."""
    turnaround = size / (size + router.t_rc + router.t_va)
    round_trip = router.t_sa + router.t_st + 2 * link_latency + router.t_rc + router.credit_delay
    per_vc = min(turnaround, router.vc_buffer / round_trip)
    return MESSAGE_EFFICIENCY * min(1.0, router.vcs * per_vc)


@dataclass
class Plan:
    """Channels and per-pair channel sequences of one network, ready for :func:`simulate`."""

    seq: np.ndarray  # [src terminal, dst terminal, i] -> channel id of the i-th channel, -1 past the end
    after: np.ndarray  # [src terminal, dst terminal, i] -> cycles from the start on channel i-1 to ready at i
    level: np.ndarray  # channel id -> its depth in the channel graph (injection channels: 0)
    length: np.ndarray  # [src terminal, dst terminal] -> channels on the route (hops + 2)
    hops: np.ndarray  # [src terminal, dst terminal] -> router-to-router links
    zero_load: np.ndarray  # [src terminal, dst terminal] -> zero-load latency of a 1-flit packet
    eject_latency: int
    levels: int
    link_latency: float  # the median link latency (cycles), for the credit round trip


def _routes(routing: RoutingFunction, routers: list[int]) -> dict[tuple[int, int], list[int]]:
    """Routers visited between every pair (first routing candidate at each hop). Where the next
    hop depends on (router, destination) only, each route is the next hop plus the route onward,
    and the table holds the routes from every router met on the way too."""
    if not routing.input_independent:
        return {(a, b): list(path_of(routing, a, b)) for a, b in itertools.product(routers, repeat=2)}
    from sim.fabric.packet import Packet

    probe = Packet(-1, 0, 0, 1, 0)
    out: dict[tuple[int, int], list[int]] = {}

    def walk(a: int, b: int) -> list[int]:
        route = out.get((a, b))
        if route is None:
            if a == b:
                route = [a]
            else:
                nxt = routing.route(a, b, -1, 0, probe, lambda _n: 0)[0][0]
                route = [a, *walk(nxt, b)]
            out[a, b] = route
        return route

    for a, b in itertools.product(routers, repeat=2):
        walk(a, b)
    return out


def _sequences(
    routing: RoutingFunction,
    terminals: list[int],
    nodes: int,
    link_key: np.ndarray,
    link_lat: np.ndarray,
    first_link: int,
    inject: int,
    pipe: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channel ids, latencies before each channel, and hops of every terminal pair's route, as
    (pairs x position) arrays; links are looked up by the key ``u * nodes + v`` in ``link_key``."""
    n = len(terminals)
    routes = _routes(routing, sorted(set(terminals)))
    tr = np.asarray(terminals, dtype=np.int64)
    src_t, dst_t = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    longest = max(len(r) for r in routes.values()) + 1
    seq = np.full((n * n, longest), -1, dtype=np.int64)
    after = np.zeros((n * n, longest), dtype=np.int64)
    hops = np.zeros(n * n, dtype=np.int64)
    if routing.input_independent:  # walk all pairs at once through a next-hop table
        keys = np.array([a * nodes + b for a, b in routes], dtype=np.int64)
        nexts = np.array([r[1] if len(r) > 1 else r[0] for r in routes.values()], dtype=np.int64)
        by_key = np.argsort(keys)
        keys, nexts = keys[by_key], nexts[by_key]
        cur, dest = tr[src_t].copy(), tr[dst_t]
        prev = np.full(n * n, inject, dtype=np.int64)  # latency of the channel last taken
        pos = 1
        active = np.flatnonzero(cur != dest)
        while len(active):
            a = cur[active]
            b = nexts[np.searchsorted(keys, a * nodes + dest[active])]
            li = np.searchsorted(link_key, a * nodes + b)
            seq[active, pos] = first_link + li
            after[active, pos] = prev[active] + pipe
            prev[active] = link_lat[li]
            cur[active] = b
            hops[active] += 1
            pos += 1
            active = active[cur[active] != dest[active]]
    else:
        for q in range(n * n):
            route = routes[terminals[src_t[q]], terminals[dst_t[q]]]
            prev_lat = inject
            for i, (u, v) in enumerate(itertools.pairwise(route), start=1):
                li = int(np.searchsorted(link_key, u * nodes + v))
                seq[q, i] = first_link + li
                after[q, i] = prev_lat + pipe
                prev_lat = int(link_lat[li])
            hops[q] = len(route) - 1
    rows = np.arange(n * n)
    seq[:, 0] = src_t
    last_lat = np.where(hops > 0, link_lat[np.maximum(seq[rows, hops] - first_link, 0)], inject)
    seq[rows, hops + 1] = first_link + len(link_key) + dst_t
    after[rows, hops + 1] = last_lat + pipe
    return seq, after, hops


def plan(
    graph: nx.Graph, routing: RoutingFunction, terminals: list[int], net: NetworkParams, router: RouterParams
) -> Plan | None:
    """Channels of every terminal pair's route (first routing candidate at each hop); None when the
    channel graph has a cycle (the batch recursion needs an order in which channels can be taken)."""
    if not routing.deterministic:
        return None
    n = len(terminals)
    nodes = max(graph.nodes) + 1
    links: dict[int, int] = {}  # u * nodes + v -> latency, for each directed link
    for a, b, data in graph.edges(data=True):
        for u, v in ((a, b), (b, a)):
            links[u * nodes + v] = net.link_latency or int(data.get("latency", 1))
    link_key = np.array(sorted(links), dtype=np.int64)
    link_lat = np.array([links[k] for k in link_key.tolist()], dtype=np.int64)
    pipe = router.pipeline
    seq, after, hops = _sequences(routing, terminals, nodes, link_key, link_lat, n, net.inject_latency, pipe)
    total = n + len(link_key) + n  # injection channels, links, ejection channels
    zero = after.sum(axis=1) + net.eject_latency
    # the channel graph: consecutive channels of a route
    u, v = seq[:, :-1].reshape(-1), seq[:, 1:].reshape(-1)
    both = (u >= 0) & (v >= 0)
    pairs = np.unique(u[both] * total + v[both])
    succ: dict[int, list[int]] = {}
    indeg = np.zeros(total, dtype=np.int64)
    for key in pairs.tolist():
        a, b = divmod(key, total)
        succ.setdefault(a, []).append(b)
        indeg[b] += 1
    # levels by Kahn's algorithm: a channel's level is one more than its deepest predecessor's
    level = np.zeros(total, dtype=np.int64)
    todo = [c for c in range(total) if indeg[c] == 0]
    seen = 0
    while todo:
        c = todo.pop()
        seen += 1
        for w in succ.get(c, ()):
            level[w] = max(level[w], level[c] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                todo.append(w)
    if seen < total:  # a cycle (a torus ring): no order to take channels in
        return None
    return Plan(
        seq.reshape(n, n, -1),
        after.reshape(n, n, -1),
        level,
        (hops + 2).reshape(n, n),
        hops.reshape(n, n),
        zero.reshape(n, n),
        net.eject_latency,
        int(level.max()) + 1,
        float(np.median(link_lat)) if len(link_lat) else 1.0,
    )


def simulate(
    p: Plan, create: np.ndarray, src: np.ndarray, dst: np.ndarray, size: int, efficiency: float
) -> np.ndarray:
    """Ejection cycle (tail at the NIC) of every packet, created at ``create`` (sorted, as a source
    draws them) from ``src`` to ``dst`` terminals, ``size`` flits each."""
    npk = len(create)
    n = p.hops.shape[0]
    pair = src * n + dst
    lens = p.length.reshape(-1)[pair]
    total = int(lens.sum())
    # packet-hops, flat, in (packet, position) order: packet, position, channel, latency before it
    pk = np.repeat(np.arange(npk), lens)
    ends = np.cumsum(lens)
    pos = np.arange(total) - np.repeat(ends - lens, lens)
    flat = np.repeat(pair * p.seq.shape[2], lens) + pos
    ch = p.seq.reshape(-1)[flat]
    lat = p.after.reshape(-1)[flat]
    lev = p.level.astype(np.int16)[ch]
    order = np.argsort(lev, kind="stable")  # taken level by level (a radix sort on int16)
    bounds = np.searchsorted(lev[order], np.arange(p.levels + 1))
    start = np.zeros(total, dtype=np.int64)
    # ready at a hop's channel = the start on the previous channel (creation, for the first) + lat
    base = np.where(pos == 0, create[pk], 0) + lat
    service = size / efficiency
    eps = 1e-6  # float slack before rounding a start up to its cycle
    n_chan = len(p.level)
    for lv in range(p.levels):
        h = order[bounds[lv] : bounds[lv + 1]]
        if not len(h):
            continue
        first_hop = pos[h] == 0
        ready = base[h] + np.where(first_hop, 0, start[h - 1 + first_hop])
        c = ch[h]
        # FIFO per channel by ready time, then packet (hop ids grow with the packet id): stable sorts
        # by ready time (nearly in order already: timsort) then by channel (a radix sort when the
        # ids fit 16 bits); ``h`` is ascending, so equal ready times keep packet order
        o = np.argsort(ready, kind="stable")
        o = o[np.argsort(c[o].astype(np.int16 if n_chan < 1 << 15 else np.int64), kind="stable")]
        c_s, r_s = c[o], ready[o].astype(np.float64)
        first = np.empty(len(c_s), dtype=bool)
        first[0] = True
        np.not_equal(c_s[1:], c_s[:-1], out=first[1:])
        gid = np.cumsum(first) - 1
        rank = np.arange(len(c_s)) - np.flatnonzero(first)[gid]
        # start_i - rank_i * service = running max of (ready_j - rank_j * service) within the channel;
        # each channel's values are lifted above the previous channel's, so one running max serves all
        lift = (r_s.max() - r_s.min() + len(r_s) * service + 1.0) * gid
        run = np.maximum.accumulate(r_s - rank * service + lift)
        start[h[o]] = np.ceil(run - lift + rank * service - eps).astype(np.int64)
    return start[ends - 1] + p.eject_latency + size - 1
