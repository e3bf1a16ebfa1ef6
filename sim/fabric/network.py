"""Flit-level network: credit-based VC routers on a topology graph, driven cycle by cycle.

One SimPy process advances the whole network one clock cycle per event while anything is in
flight, and sleeps when the network is empty (so an idle fabric costs no events). Within a cycle:
flits and credits due this cycle arrive, NICs inject, then every router holding flits runs its VC
and switch allocation (:meth:`CreditVCRouter.step`). All of a router's outputs land in later cycles,
so the order in which routers step within a cycle cannot change the result.

Terminals (endpoints) attach to routers as the topology's ``terminals`` list says. A NIC per
terminal holds an unbounded source queue (packet latency includes source queueing, the NoC
literature's convention) and sends one flit per cycle when it holds a credit for an injection VC.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import networkx as nx
import simpy

from sim.core.component import Component
from sim.core.errors import ConfigError, SimulationError
from sim.core.limits import MAX_LATENCY_CYCLES
from sim.core.params import ParamSet, non_negative, param, positive
from sim.core.registry import lookup
from sim.core.units import COUNT, ENERGY, FREQUENCY, PS_PER_S, SIZE
from sim.fabric.packet import Packet
from sim.fabric.router import ACTIVE, IDLE, WAIT_VA, CreditVCRouter, InputVC, RouterParams
from sim.fabric.routing import default_routing, path_of
from sim.stats import counter, tally

MAX_CLOCK_HZ = PS_PER_S
"""Fastest network clock: one cycle is at least 1 ps (the simulated time's resolution)."""
MAX_WHEEL_CYCLES = 1 << 16
"""Longest delay the flit-level model schedules ahead (router stages + longest link or NIC latency
+ credit delay): its timing wheels hold one slot per cycle of it, and it turns them every cycle."""


def _cycles(lo: int) -> Any:
    """A check: a latency of ``lo`` to :data:`~sim.core.limits.MAX_LATENCY_CYCLES` cycles."""

    def check(v: int) -> str | None:
        if lo <= v <= MAX_LATENCY_CYCLES:
            return None
        return f"a value >= {lo} and <= {MAX_LATENCY_CYCLES:,} cycles (MAX_LATENCY_CYCLES)"

    return check


def _clock(v: float) -> str | None:
    return None if 0 < v <= MAX_CLOCK_HZ else "a clock > 0 and at most 1 THz (a cycle of at least 1 ps)"


class DeadlockError(SimulationError):
    """Nothing moved for too long while flits were buffered; the message names the wait cycle."""


@dataclass(frozen=True)
class NetworkParams(ParamSet):
    """Network-wide parameters (the router's own are :class:`RouterParams`)."""

    routing: str = param("auto", str, "registered routing function; 'auto' = the topology's default")
    router: str = param(
        "credit_vc",
        str,
        "registered flit-level router (a CreditVCRouter subclass: the network fills its buffers)",
    )
    clock: float = param(
        "1GHz", FREQUENCY, "router clock (ASSUMPTION: 1 GHz, a typical NoC clock)", check=_clock
    )
    flit_bytes: int = param(
        "16B",
        SIZE,
        "bytes per flit = bytes a link moves per cycle (ASSUMPTION: 128-bit links)",
        check=positive,
    )
    max_packet_flits: int = param(
        16, COUNT, "messages are cut into packets of at most this many flits", check=positive
    )
    inject_latency: int = param(1, COUNT, "cycles from a NIC to its router's input buffer", check=_cycles(1))
    eject_latency: int = param(1, COUNT, "cycles from a router's output to the NIC", check=_cycles(1))
    link_latency: int = param(
        0,
        COUNT,
        "router-to-router link latency in cycles; 0 = each link's 'latency' from the topology",
        check=_cycles(0),
    )
    energy_per_bit: float = param(
        "5pJ",
        ENERGY,
        "energy per bit per link traversal (ASSUMPTION: off-package SerDes links are ~5 pJ/bit; "
        "NVLink-C2C on package is 1.3 pJ/bit per NVIDIA's Grace Hopper material)",
        check=non_negative,
    )
    deadlock_cycles: int = param(
        2000,
        COUNT,
        "cycles with flits buffered and none moving before the run stops as deadlocked",
        check=_cycles(1),
    )


class TrafficSource(Protocol):
    """Something that creates packets at given cycles (synthetic traffic, a trace)."""

    def next_cycle(self) -> int | None: ...

    def due(self, cycle: int) -> Iterable[Packet]: ...


class InjectionVC:
    """The credits a NIC holds for one of its router's injection VCs."""

    __slots__ = ("credits", "index", "terminal")

    def __init__(self, terminal: int, index: int, depth: int) -> None:
        self.terminal = terminal
        self.index = index
        self.credits = depth

    def channel(self) -> tuple[Any, ...]:
        """Who holds these credits: ("nic", terminal, VC)."""
        return ("nic", self.terminal, self.index)


class NIC:
    """A terminal's network interface: source queue, injection VCs and their credits."""

    __slots__ = ("cur", "cur_flit", "cur_vc", "in_use", "ivcs", "port", "queue", "router", "terminal", "vcs")

    def __init__(self, terminal: int, router: CreditVCRouter, port: int, vcs: int, depth: int) -> None:
        self.terminal = terminal
        self.router = router
        self.port = port
        self.ivcs = router.inputs[port]  # the router's input VCs this NIC injects into
        self.queue: deque[Packet] = deque()
        self.vcs = [InjectionVC(terminal, v, depth) for v in range(vcs)]
        self.in_use = [False] * vcs
        self.cur: Packet | None = None
        self.cur_vc = -1
        self.cur_flit = 0

    @property
    def credits(self) -> list[int]:
        """Credits per injection VC (a copy, for checks and diagnosis)."""
        return [v.credits for v in self.vcs]


class NetworkBase(Component):
    """What both fidelity levels share: topology, routing function, clock, terminals, packet ids.

    Subclasses build their channels in :meth:`build_fabric` and implement ``submit`` and
    ``transfer``; drivers and experiments use only this common API.
    """

    Params = NetworkParams

    def __init__(
        self,
        sim: Any,
        name: str,
        graph: nx.Graph,
        params: NetworkParams | None = None,
        router_params: RouterParams | None = None,
        parent: Component | None = None,
    ) -> None:
        self.graph = graph
        self.router_params = router_params or RouterParams()
        super().__init__(sim, name, params, parent)

    def build(self) -> None:
        p: NetworkParams = self.params  # type: ignore[assignment]
        g = self.graph
        self.cycle_ps = round(PS_PER_S / p.clock)
        self.terminal_router: list[int] = list(g.graph["terminals"])
        self.routing_name = default_routing(g.graph.get("kind", "")) if p.routing == "auto" else p.routing
        try:
            self.routing = lookup("routing", self.routing_name)(g, self.router_params.vcs)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(str(exc), where="routing") from None
        self.sources: list[TrafficSource] = []
        self.cycle = 0
        self.in_flight = 0  # packets created and not yet delivered
        self._next_packet_id = 0
        self.on_deliver: Callable[[Packet], None] | None = None
        self._zero_load: dict[tuple[int, int], int] = {}  # (src router, dst router) -> cycles
        self.build_fabric()

    def build_fabric(self) -> None:
        raise NotImplementedError

    def current_cycle(self) -> int:
        return max(self.cycle, math.ceil(self.env.now / self.cycle_ps))

    def new_packet(self, src: int, dst: int, size_flits: int, create_cycle: int | None = None) -> Packet:
        pid = self._next_packet_id
        self._next_packet_id += 1
        cycle = self.current_cycle() if create_cycle is None else create_cycle
        return Packet(pid, src, dst, size_flits, cycle)

    def add_source(self, source: TrafficSource) -> None:
        self.sources.append(source)

    def zero_load_cycles(self, src: int, dst: int, size_flits: int) -> int:
        """Creation-to-ejection cycles of a packet alone in the network (the closed form both
        levels meet): ``inject + (hops + 1) * pipeline + links + eject + size_flits - 1``, where
        ``links`` sums the link latencies of its route (first routing candidate at each hop).
        Used as the yardstick of the latency saturation test (see :mod:`sim.experiments.noc`)."""
        a, b = self.terminal_router[src], self.terminal_router[dst]
        cached = self._zero_load.get((a, b))
        if cached is None:
            p: NetworkParams = self.params  # type: ignore[assignment]
            route = path_of(self.routing, a, b)
            links = sum(
                p.link_latency or int(self.graph.edges[u, v].get("latency", 1))
                for u, v in itertools.pairwise(route)
            )
            hops = len(route) - 1
            cached = self._zero_load[a, b] = (
                p.inject_latency + (hops + 1) * self.router_params.pipeline + links + p.eject_latency
            )
        return cached + size_flits - 1


class FlitNetwork(NetworkBase):
    """The whole fabric at flit level: routers, NICs, links, and the cycle loop."""

    STATS = (
        counter("packets_delivered", "packets", "packets whose tail reached the destination NIC"),
        counter("flits_delivered", "flits", "flits ejected"),
        counter("flit_hops", "flits", "flits that crossed a router-to-router link"),
        tally("packet_latency_cycles", "cycles", "creation to tail ejection", keep=False),
        counter("cycles_active", "cycles", "cycles in which the loop ran"),
    )

    # -- construction -----------------------------------------------------------------------
    def build_fabric(self) -> None:
        p: NetworkParams = self.params  # type: ignore[assignment]
        g = self.graph
        rp = self.router_params
        local: dict[int, list[int]] = {n: [] for n in g.nodes}
        for t, r in enumerate(self.terminal_router):
            local[r].append(t)
        self.routers: list[CreditVCRouter] = []
        router_cls = lookup("router", p.router)
        if not (isinstance(router_cls, type) and issubclass(router_cls, CreditVCRouter)):
            raise ConfigError(
                f"router {p.router!r} must be a CreditVCRouter subclass, found {router_cls!r}",
                where="network.router",
            )
        for node in sorted(g.nodes):
            nbs = sorted(g.neighbors(node))
            lat = [p.link_latency or int(g.edges[node, nb].get("latency", 1)) for nb in nbs]
            for nb in nbs:
                if int(g.edges[node, nb].get("width", 1)) != 1:
                    raise ConfigError(
                        "flit-level links move one flit per cycle; set flit_bytes "
                        f"instead of width on link {node}-{nb}",
                        where="topology",
                    )
            r = router_cls(
                self.sim, f"r{node}", rp, node, nbs, lat, local[node], p.eject_latency, parent=self
            )
            r.routing = self.routing
            if self.routing.deterministic:  # routes depend on (node, dest, prev, vc) only: cache them
                # input-independent routes differ between a router's input VCs only in the VA
                # search start (in port + VC index): VCs with the same start share one cache
                for port_vcs in r.inputs:
                    for ivc in port_vcs:
                        if self.routing.input_independent:
                            ivc.routes = r.route_tables.setdefault(ivc.in_port + ivc.index, {})
                        else:
                            ivc.routes = {}
            r.net = self
            self.routers.append(r)
        for r in self.routers:
            for op, nb in enumerate(r.neighbors):
                down = self.routers[nb]
                r.outputs[op].down_router = down
                r.outputs[op].down_port = down.port_of[r.node]
                for ovc, ivc in zip(r.outputs[op].vcs, down.inputs[down.port_of[r.node]], strict=True):
                    ovc.down = ivc
        self.nics = [
            NIC(t, self.routers[r], self.routers[r].eject_port[t], rp.vcs, rp.vc_buffer)
            for t, r in enumerate(self.terminal_router)
        ]
        # where each input VC's credits go (the upstream output VC or NIC injection VC, whose
        # ``credits`` a returning credit increments), and how long they take
        for r in self.routers:
            returns = []  # (input port, the upstream holders of its VCs' credits, delay)
            for up_node in r.neighbors:
                up = self.routers[up_node]
                port = up.outputs[up.port_of[r.node]]
                returns.append((r.port_of[up_node], port.vcs, port.latency + rp.credit_delay))
            for t in r.terminals:
                returns.append((r.eject_port[t], self.nics[t].vcs, p.inject_latency + rp.credit_delay))
            for in_port, holders, delay in returns:
                for ivc, holder in zip(r.inputs[in_port], holders, strict=True):
                    ivc.cr_delay, ivc.cr_action = delay, holder
        # timing wheels of future actions, one per kind: slot c % horizon holds cycle c's flit
        # arrivals (input VC, flit), credit returns (credit holder) and ejections (flit)
        longest = max(
            [p.inject_latency, p.eject_latency, 1] + [lat for r in self.routers for lat in r._link_latency]
        )
        self.horizon = h = rp.t_sa + rp.t_st + longest + rp.credit_delay + 2
        if h > MAX_WHEEL_CYCLES:  # checked before the wheels are allocated
            raise ConfigError(
                f"expected t_sa + t_st + the longest link or NIC latency + credit_delay of at most "
                f"{MAX_WHEEL_CYCLES - 2:,} cycles at flit level (its timing wheels hold a slot per cycle), "
                f"found {h - 2:,}; the message-level model (fidelity message) takes longer links",
                where="network",
            )
        self.arrive_wheel: list[list[tuple[InputVC, list[Any]]]] = [[] for _ in range(h)]
        self.credit_wheel: list[list[Any]] = [[] for _ in range(h)]
        self.eject_wheel: list[list[list[Any]]] = [[] for _ in range(h)]
        # the same wheels seen from the current cycle: ``arrive_in[d]`` holds cycle now + d's arrivals
        self.arrive_in = self.arrive_wheel
        self.credit_in = self.credit_wheel
        self.eject_in = self.eject_wheel
        # a probe called as ``on_eject_flit(flit, cycle)`` for every flit that leaves the network
        self.on_eject_flit: Callable[[list[Any], int], None] | None = None
        self.n_pending = 0
        self.active_routers: dict[CreditVCRouter, None] = {}
        self.active_nics: dict[NIC, None] = {}
        self.buffered = 0  # flits inside router input buffers
        self.switched = 0  # flits that crossed a router's switch, to a link or an ejection port
        self._wake: simpy.Event | None = None

    def run(self) -> None:
        self.env.process(self._loop())

    # -- public API ---------------------------------------------------------------------------
    def submit(self, packet: Packet) -> None:
        """Queue ``packet`` at its source NIC now (wakes the network if it sleeps)."""
        self._enqueue((packet,))
        self._poke()

    def _enqueue(self, packets: Iterable[Packet]) -> None:
        nics = self.nics
        n = len(nics)
        active = self.active_nics
        count = 0
        for packet in packets:
            if not (0 <= packet.src < n and 0 <= packet.dst < n):
                self.in_flight += count  # (the packets queued before this one are in flight)
                raise ValueError(f"packet {packet.id}: terminal out of range 0..{n - 1}")
            nic = nics[packet.src]
            nic.queue.append(packet)
            active[nic] = None
            count += 1
        self.in_flight += count

    def transfer(self, src: int, dst: int, nbytes: int) -> simpy.Event:
        """Send ``nbytes`` from terminal ``src`` to ``dst`` as packets; fires when all arrive."""
        p: NetworkParams = self.params  # type: ignore[assignment]
        flits = max(1, math.ceil(nbytes / p.flit_bytes))
        done = self.env.event()
        remaining = [math.ceil(flits / p.max_packet_flits)]

        def delivered(_pkt: Packet) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.succeed(self.env.now)

        while flits > 0:
            size = min(flits, p.max_packet_flits)
            pkt = self.new_packet(src, dst, size)
            pkt.on_delivered = delivered
            self.submit(pkt)
            flits -= size
        return done

    def add_source(self, source: TrafficSource) -> None:
        super().add_source(source)
        self._poke()

    def in_transit(self) -> list[tuple[Any, ...]]:
        """Every scheduled action, for checks and diagnosis: ("arrive", router node, in port, VC),
        ("credit", "router", node, out port, VC) or ("credit", "nic", terminal, VC), ("eject", flit)."""
        out: list[tuple[Any, ...]] = []
        for slot in self.arrive_wheel:
            out += [("arrive", ivc.router.node, ivc.in_port, ivc.index) for ivc, _ in slot]
        for slot in self.credit_wheel:
            out += [("credit", *holder.channel()) for holder in slot]
        for slot in self.eject_wheel:
            out += [("eject", flit) for flit in slot]
        return out

    # -- the cycle loop ----------------------------------------------------------------------
    def _poke(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _next_event_cycle(self) -> int | None:
        cands = [c for c in (s.next_cycle() for s in self.sources) if c is not None]
        if self.n_pending:
            for c in range(self.cycle, self.cycle + self.horizon):
                s = c % self.horizon
                if self.arrive_wheel[s] or self.credit_wheel[s] or self.eject_wheel[s]:
                    cands.append(c)
                    break
        return min(cands) if cands else None

    def _loop(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        cycle_ps = self.cycle_ps
        stagnant = 0
        limit = self.params.deadlock_cycles  # type: ignore[attr-defined]
        while True:
            if not self.active_routers and not self.active_nics:
                nxt = self._next_event_cycle()
                if nxt is None:
                    self._wake = env.event()
                    yield self._wake
                    self._wake = None
                    # woken by a submit at a later time: resume at the current cycle, not the old one
                    self.cycle = max(self.cycle, math.ceil(env.now / cycle_ps))
                    if self.cycle * cycle_ps > env.now:
                        yield env.timeout(self.cycle * cycle_ps - env.now)
                    continue
                self.cycle = max(self.cycle, nxt, math.ceil(env.now / cycle_ps))
                if self.cycle * cycle_ps > env.now:
                    yield env.timeout(self.cycle * cycle_ps - env.now)
            now = self.cycle
            self.stat.cycles_active.add()
            for source in self.sources:
                self._enqueue(source.due(now))
            self._deliver_pending(now)
            s = now % self.horizon  # the wheels as seen from this cycle (see build_fabric)
            self.arrive_in = self.arrive_wheel[s:] + self.arrive_wheel[:s]
            self.credit_in = self.credit_wheel[s:] + self.credit_wheel[:s]
            self.eject_in = self.eject_wheel[s:] + self.eject_wheel[:s]
            moved = self._run_nics(now)
            idle = None
            sent = 0
            for r in self.active_routers:  # stepping adds no router: iterate in place
                sent += r.step(now)
                if not r.active and not r.waiting_va:  # no input VC holds a packet
                    if idle is None:
                        idle = [r]
                    else:
                        idle.append(r)
            if sent:  # each flit a router sent left its buffer, and scheduled its arrival and a credit
                moved += sent
                self.n_pending += 2 * sent
                self.buffered -= sent
                # link hops: the switched flits less those sent to an ejection port (delivered or due)
                self.switched += sent
                stat = self.stat
                ejecting = sum([len(slot) for slot in self.eject_wheel])
                stat.flit_hops.value = self.switched - stat.flits_delivered.value - ejecting
            if idle is not None:
                for r in idle:
                    del self.active_routers[r]
            if moved or self.n_pending or self.buffered == 0:
                stagnant = 0
            else:
                stagnant += 1
                if stagnant >= limit:
                    raise DeadlockError(self.diagnose(now, stagnant))
            self.cycle = now + 1
            yield env.timeout(self.cycle * cycle_ps - env.now)

    def _deliver_pending(self, now: int) -> None:
        """Apply this cycle's credit returns, flit arrivals and ejections, in that order."""
        slot = now % self.horizon
        done = 0
        credits = self.credit_wheel[slot]
        if credits:
            for holder in credits:
                holder.credits += 1
            done += len(credits)
            credits.clear()
        arrivals = self.arrive_wheel[slot]
        if arrivals:
            active = self.active_routers
            ready = now + self.router_params.t_rc
            for ivc, flit in arrivals:  # the flit is written into its input VC
                buf = ivc.buf
                buf.append(flit)
                if ivc.state == IDLE:  # a head (an IDLE VC holds no flits; its router may be idle)
                    router = ivc.router
                    routes = ivc.routes
                    entry = None if routes is None else routes.get(flit[4])
                    if entry is None:
                        router._start_head(ivc, now)
                    else:  # a cached route (inlined CreditVCRouter._start_head)
                        ivc.va = entry
                        ivc.state = WAIT_VA
                        ivc.ready = ready
                        router.waiting_va.append(ivc)
                        router.n_packets += 1
                    active[router] = None
                elif len(buf) == 1:  # an ACTIVE VC's next flit: it may bid once written
                    ivc.ready = ready
            done += len(arrivals)
            self.buffered += len(arrivals)
            arrivals.clear()
        ejections = self.eject_wheel[slot]
        if ejections:
            done += len(ejections)
            stat = self.stat
            stat.flits_delivered.add(len(ejections))
            flits = list(ejections)  # (delivery callbacks may submit packets: iterate a copy)
            ejections.clear()
            probe = self.on_eject_flit
            on_deliver = self.on_deliver
            latency = stat.packet_latency_cycles
            for flit in flits:
                if probe is not None:
                    probe(flit, now)
                if flit[3]:  # the packet's tail: it has left the network
                    packet = flit[1]
                    packet.eject_cycle = now
                    self.in_flight -= 1
                    stat.packets_delivered.add()
                    latency.observe(now - packet.create_cycle)
                    if packet.on_delivered is not None:
                        packet.on_delivered(packet)
                    if on_deliver is not None:
                        on_deliver(packet)
        self.n_pending -= done

    def _run_nics(self, now: int) -> int:
        moved = 0
        lat = self.params.inject_latency  # type: ignore[attr-defined]
        arrive_in = self.arrive_in
        for nic in list(self.active_nics):
            if nic.cur is None:
                if not nic.queue:
                    del self.active_nics[nic]
                    continue
                # any injection VC with a free slot (non-atomic, like the routers' output VCs); the
                # emptiest (most credits) first, the lowest such VC on a tie, so packets spread
                in_use = nic.in_use
                best = 0
                for v, holder in enumerate(nic.vcs):
                    if holder.credits > best and not in_use[v]:
                        best = holder.credits
                        vc = v
                if not best:
                    continue
                nic.cur = nic.queue.popleft()
                nic.cur_vc = vc
                nic.cur_flit = 0
                in_use[vc] = True
                nic.cur.inject_cycle = now
            vc = nic.cur_vc
            holder = nic.vcs[vc]
            if holder.credits <= 0:
                continue
            holder.credits -= 1
            pkt = nic.cur
            index = nic.cur_flit
            nic.cur_flit = index + 1
            last = nic.cur_flit == pkt.size_flits
            arrive_in[lat].append((nic.ivcs[vc], [now + lat, pkt, index, last, pkt.dst]))
            moved += 1
            if last:
                nic.in_use[vc] = False
                nic.cur = None
        self.n_pending += moved
        return moved

    # -- deadlock diagnosis ----------------------------------------------------------------------
    def diagnose(self, now: int, stagnant: int) -> str:
        """Name the cycle of input VCs waiting on each other (or the longest wait chain)."""
        wait = nx.DiGraph()
        label = {}
        for r in self.routers:
            for ivc, why in r.waiting_vcs():
                me = (r.node, ivc.in_port, ivc.index)
                label[me] = f"r{r.node}.in{ivc.in_port}.vc{ivc.index} (waits {why})"
                targets = []
                if ivc.state == ACTIVE:
                    port = ivc.ovc.port  # type: ignore[union-attr]
                    if port.down_router is not None:
                        targets.append((port.down_router.node, port.down_port, ivc.ovc.index))  # type: ignore[union-attr]
                elif ivc.state == WAIT_VA:
                    for op, vcs in ivc.va.cands:  # (output port, VCs): the router mapped nodes to ports
                        port = r.outputs[op]
                        if port.terminal >= 0:  # an ejection port is never the blocker
                            continue
                        for ov in vcs:
                            owner = port.vcs[ov].owner
                            if owner is not None:
                                targets.append((r.node, owner.in_port, owner.index))
                            elif port.down_router is not None:
                                targets.append((port.down_router.node, port.down_port, ov))
                for t in targets:
                    wait.add_edge(me, t)
        head = (
            f"deadlock: no flit moved for {stagnant} cycles (cycle {now}) with {self.buffered} flits buffered"
        )
        try:
            cycle = nx.find_cycle(wait)
        except nx.NetworkXNoCycle:
            return (
                head
                + "; no wait cycle found (starvation), waiting: "
                + ", ".join(sorted(label.values())[:12])
            )
        names = [label.get(a, f"r{a[0]}.in{a[1]}.vc{a[2]}") for a, _ in cycle]
        return head + "; wait cycle: " + " -> ".join(names) + " -> " + names[0]
