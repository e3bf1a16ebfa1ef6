"""Message-level network: packets cross the fabric in closed form while contending for links.

When a packet is submitted its whole path is booked at once. Each channel on the path (the
source NIC's injection channel, every router-to-router link, the destination's ejection channel)
is a :class:`Timeline` that the packet occupies for ``size_flits`` cycles starting no earlier
than its head can reach it, so packets queue behind each other on shared links. The head spends the
router pipeline (``t_rc + t_va + t_sa + t_st``) in every router and ``link_latency`` on every link,
exactly as in the flit-level model, so both give the same zero-load latency:

    inject + (hops + 1) * pipeline + hops * link + eject + (size_flits - 1)

Buffers are not modelled (a packet never waits for credits), so this level is accurate below
saturation and optimistic near it; the flit level is the reference there. One SimPy event per
packet (its delivery) plus one per injection cycle. Synthetic-traffic runs (``memwall noc
--fidelity message``) use :mod:`sim.fabric.message_batch` instead wherever its channel graph is
acyclic: the same closed form for all packets at once, with the router's VCs in its service rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator
from typing import Any, ClassVar

import simpy

from sim.core.errors import ConfigError
from sim.core.reservation import Timeline
from sim.fabric.network import NetworkBase, NetworkParams
from sim.fabric.packet import Packet
from sim.fabric.routing import EJECT
from sim.stats import counter, tally


class MessageNetwork(NetworkBase):
    """The fabric at message level (see module docstring); same API as ``FlitNetwork``."""

    idle_is_stateless: ClassVar[bool] = True
    """An idle fabric is the same whatever it carried before: free channels, no arbiter state."""

    STATS = (
        counter("packets_delivered", "packets", "packets whose tail reached the destination NIC"),
        counter("flits_delivered", "flits", "flits ejected"),
        counter("flit_hops", "flits", "flits that crossed a router-to-router link"),
        tally("packet_latency_cycles", "cycles", "creation to tail ejection", keep=False),
        tally("queueing_cycles", "cycles", "cycles packets waited for busy channels", keep=False),
    )

    def build_fabric(self) -> None:
        p: NetworkParams = self.params  # type: ignore[assignment]
        g = self.graph
        self.pipeline = self.router_params.pipeline
        self.links: dict[tuple[int, int], Timeline] = {}
        self.link_latency: dict[tuple[int, int], int] = {}
        self.link_width: dict[tuple[int, int], int] = {}
        # crossbar input of router v fed by u (u = -1 - terminal for injection ports)
        self.inports: dict[tuple[int, int], Timeline] = {}
        for a, b, data in g.edges(data=True):
            for u, v in ((a, b), (b, a)):
                self.links[u, v] = Timeline()
                self.inports[u, v] = Timeline()
                self.link_latency[u, v] = p.link_latency or int(data.get("latency", 1))
                self.link_width[u, v] = int(data.get("width", 1))
        n = len(self.terminal_router)
        for t, r in enumerate(self.terminal_router):
            self.inports[-1 - t, r] = Timeline()
        self.inject = [Timeline() for _ in range(n)]
        self.eject_ch = [Timeline() for _ in range(n)]
        self.paths: dict[tuple[int, int], list[int]] = {}

    def run(self) -> None:
        if self.sources:
            self.env.process(self._inject_loop())

    def route_of(self, src_router: int, dst_router: int) -> list[int]:
        """Routers visited (first routing candidate at each hop), cached per pair."""
        key = (src_router, dst_router)
        cached = self.paths.get(key)
        if cached is not None:
            return cached
        route, prev, vc, node = [src_router], -1, 0, src_router
        probe = Packet(-1, 0, 0, 1, 0)
        while True:
            nxt, vcs = self.routing.route(node, dst_router, prev, vc, probe, lambda _n: 0)[0]
            if nxt == EJECT:
                break
            prev, node, vc = node, nxt, vcs[0]
            route.append(node)
            if len(route) > len(self.graph) + 1:
                raise ConfigError(
                    f"routing {self.routing_name!r} loops from {src_router} to {dst_router}", where="routing"
                )
        self.paths[key] = route
        return route

    def submit(self, packet: Packet) -> None:
        """Book ``packet`` along its path now and schedule its delivery."""
        p: NetworkParams = self.params  # type: ignore[assignment]
        size = packet.size_flits
        now = max(packet.create_cycle, self.current_cycle())
        horizon = now - 1
        route = self.route_of(self.terminal_router[packet.src], self.terminal_router[packet.dst])
        start, _ = self.inject[packet.src].reserve(now, size)
        waited = start - now
        packet.inject_cycle = start
        head = start + p.inject_latency  # head written into the first router
        came_from = -1 - packet.src
        for a, b in itertools.pairwise(route):
            ready = head + self.pipeline
            occupancy = math.ceil(size / self.link_width[a, b])
            s = self._cross(self.inports[came_from, a], self.links[a, b], ready, occupancy, horizon)
            waited += s - ready
            head = s + self.link_latency[a, b]
            came_from = a
        packet.hops = len(route) - 1
        ready = head + self.pipeline
        s = self._cross(self.inports[came_from, route[-1]], self.eject_ch[packet.dst], ready, size, horizon)
        waited += s - ready
        packet.eject_cycle = s + p.eject_latency + size - 1
        self.stat.flit_hops.add(size * packet.hops)
        self.stat.queueing_cycles.observe(waited)
        self.in_flight += 1
        delay_ps = packet.eject_cycle * self.cycle_ps - self.env.now
        ev = self.env.timeout(max(0, delay_ps))
        ev.callbacks.append(lambda _e, pkt=packet: self._delivered(pkt))

    def transfer(self, src: int, dst: int, nbytes: int) -> simpy.Event:
        """Send ``nbytes`` from terminal ``src`` to ``dst``; fires when the last flit arrives.

        The message's packets travel back to back behind one head, so the whole train is booked
        as one unit per channel: ``flits`` cycles of occupancy, one head latency. That is the
        closed form of a packet train, and costs one event per message whatever its size.
        """
        p: NetworkParams = self.params  # type: ignore[assignment]
        flits = max(1, math.ceil(nbytes / p.flit_bytes))
        done = self.env.event()
        pkt = self.new_packet(src, dst, flits)
        pkt.on_delivered = lambda _pkt: done.succeed(self.env.now)
        self.submit(pkt)
        return done

    # -- router-level transfers (in-network collectives) ----------------------------------------
    def _at_cycle(self, cycle: int) -> simpy.Event:
        return self.env.timeout(max(0, cycle * self.cycle_ps - self.env.now))

    def stream_hop(self, a: int, b: int, head: int, tail: int, flits: int) -> tuple[int, int]:
        """A stream whose head is at router ``a`` in cycle ``head`` and tail in ``tail`` crosses to
        neighbour ``b`` cut-through; returns its (head, tail) arrival cycles at ``b``."""
        if (a, b) not in self.links:
            raise ConfigError(f"routers {a} and {b} are not neighbours", where="collective")
        occupancy = math.ceil(flits / self.link_width[a, b])
        ready = max(head + self.pipeline, tail + self.pipeline - (occupancy - 1))
        start, _ = self.links[a, b].reserve(ready, occupancy)
        self.stat.flit_hops.add(flits)
        lat = self.link_latency[a, b]
        return start + lat, start + lat + occupancy - 1

    def stream_inject(self, terminal: int, flits: int) -> tuple[int, int]:
        """A terminal streams ``flits`` into its router now; (head, tail) arrival cycles."""
        now = self.current_cycle()
        start, _ = self.inject[terminal].reserve(now, flits)
        lat = self.params.inject_latency  # type: ignore[attr-defined]
        return start + lat, start + lat + flits - 1

    def stream_eject(self, terminal: int, head: int, tail: int, flits: int) -> int:
        """A stream at the terminal's router is delivered; the cycle its tail reaches the NIC."""
        ready = max(head + self.pipeline, tail + self.pipeline - (flits - 1))
        start, _ = self.eject_ch[terminal].reserve(ready, flits)
        return start + self.params.eject_latency + flits - 1  # type: ignore[attr-defined]

    def at_cycle(self, cycle: int) -> simpy.Event:
        return self.env.timeout(max(0, cycle * self.cycle_ps - self.env.now))

    # -- internals -----------------------------------------------------------------------------
    @staticmethod
    def _cross(inport: Timeline, out: Timeline, ready: int, duration: int, horizon: int) -> int:
        """Book the earliest slot free on both a router's crossbar input and its output channel."""
        inport.prune(horizon)
        out.prune(horizon)
        t = ready
        while True:
            t_out = out.earliest(t, duration)
            t = inport.earliest(t_out, duration)
            if t == t_out:  # both free from t on (the old code booked the stale t: double booking)
                break
        inport.book(t, duration, ready)
        out.book(t, duration, ready)
        return t

    def _delivered(self, packet: Packet) -> None:
        self.in_flight -= 1
        self.stat.packets_delivered.add()
        self.stat.flits_delivered.add(packet.size_flits)
        self.stat.packet_latency_cycles.observe(packet.eject_cycle - packet.create_cycle)
        self.cycle = max(self.cycle, packet.eject_cycle)
        if packet.on_delivered is not None:
            packet.on_delivered(packet)
        if self.on_deliver is not None:
            self.on_deliver(packet)

    def _inject_loop(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            nxt = [c for c in (s.next_cycle() for s in self.sources) if c is not None]
            if not nxt:
                return
            cycle = min(nxt)
            if cycle * self.cycle_ps > env.now:
                yield env.timeout(cycle * self.cycle_ps - env.now)
            self.cycle = max(self.cycle, cycle)
            for source in self.sources:
                for pkt in source.due(cycle):
                    self.submit(pkt)
