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
service rate. CALIBRATED (ASSUMPTION outside the fit): an input-queued VC router with separable,
single-iteration allocation (the flit level's) loses switch and VC matches that an output-queued
FIFO would not (Dally & Towles, sec. 19.3: separable allocators reach roughly 80-90% of a maximum
matching under uniform load); 0.85 puts the message level's 8x8-mesh latency within ~4% of the flit
level's up to 0.38 flits/node/cycle and its first saturated load on the flit level's (0.44), with
4 VCs x 8 flits, DOR, uniform 1-flit packets (``benchmarks/bench_noc.py``). Refit for other router
microarchitectures."""


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


def _routes(routing: RoutingFunction, routers: list[int]) -> dict[tuple[int, int], list[int]]:
    """Routers visited between every pair (first routing candidate at each hop). Where the next
    hop depends on (router, destination) only, each route is the next hop plus the route onward."""
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


def plan(
    graph: nx.Graph, routing: RoutingFunction, terminals: list[int], net: NetworkParams, router: RouterParams
) -> Plan | None:
    """Channels of every terminal pair's route (first routing candidate at each hop); None when the
    channel graph has a cycle (the batch recursion needs an order in which channels can be taken)."""
    if not routing.deterministic:
        return None
    n = len(terminals)
    pipe = router.pipeline
    link_id: dict[tuple[int, int], int] = {}
    link_lat: dict[tuple[int, int], int] = {}
    for a, b, data in graph.edges(data=True):
        for u, v in ((a, b), (b, a)):
            link_id[u, v] = n + len(link_id)
            link_lat[u, v] = net.link_latency or int(data.get("latency", 1))
    eject0 = n + len(link_id)
    routes = _routes(routing, sorted(set(terminals)))
    longest = max(len(r) for r in routes.values()) + 1
    seq = np.full((n, n, longest), -1, dtype=np.int64)
    after = np.zeros((n, n, longest), dtype=np.int64)
    hops = np.zeros((n, n), dtype=np.int64)
    zero = np.zeros((n, n), dtype=np.int64)
    edges: set[tuple[int, int]] = set()
    for s, d in itertools.product(range(n), repeat=2):
        route = routes[terminals[s], terminals[d]]
        pairs = list(itertools.pairwise(route))
        chans = [s] + [link_id[p] for p in pairs] + [eject0 + d]
        # from the start on the previous channel to ready here: its latency, then the pipeline
        lats = [0, net.inject_latency + pipe] + [link_lat[p] + pipe for p in pairs]
        seq[s, d, : len(chans)] = chans
        after[s, d, : len(chans)] = lats
        hops[s, d] = len(pairs)
        zero[s, d] = sum(lats) + net.eject_latency
        edges.update(itertools.pairwise(chans))
    # levels by Kahn's algorithm: a channel's level is one more than its deepest predecessor's
    succ: dict[int, list[int]] = {}
    indeg = np.zeros(eject0 + n, dtype=np.int64)
    for u, v in edges:
        succ.setdefault(u, []).append(v)
        indeg[v] += 1
    level = np.zeros(eject0 + n, dtype=np.int64)
    todo = [c for c in range(eject0 + n) if indeg[c] == 0]
    seen = 0
    while todo:
        c = todo.pop()
        seen += 1
        for v in succ.get(c, ()):
            level[v] = max(level[v], level[c] + 1)
            indeg[v] -= 1
            if indeg[v] == 0:
                todo.append(v)
    if seen < eject0 + n:  # a cycle (a torus ring): no order to take channels in
        return None
    return Plan(seq, after, level, hops + 2, hops, zero, net.eject_latency, int(level.max()) + 1)


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
    span_i = total
    for lv in range(p.levels):
        h = order[bounds[lv] : bounds[lv + 1]]
        if not len(h):
            continue
        first_hop = pos[h] == 0
        ready = base[h] + np.where(first_hop, 0, start[h - 1 + first_hop])
        c = ch[h]
        # FIFO per channel by ready time, then packet (hop ids grow with the packet id): one sort
        span_r = int(ready.max()) + 1
        o = np.argsort((c * span_r + ready) * span_i + h)
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
