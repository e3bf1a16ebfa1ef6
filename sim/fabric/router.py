"""Input-queued virtual-channel router with credit-based flow control, wormhole switching.

Pipeline (stage delays are parameters, canonical 1 cycle each): a flit is written into its input
VC buffer in cycle ``a``; a head flit's route is computed (RC) and it may bid for an output VC (VA)
from cycle ``a + t_rc``; once it holds an output VC it may bid for the switch (SA) ``t_va`` cycles
after the VA grant; a flit granted the switch in cycle ``s`` crosses the crossbar (ST) and the link
and is written downstream in cycle ``s + t_sa + t_st + link_latency``. Body and tail flits skip RC and
VA: they may bid for the switch from cycle ``a + t_rc`` (the buffer-write stage), once the flit ahead
of them has gone. One hop at zero load thus costs ``t_rc + t_va + t_sa + t_st + link_latency`` cycles,
and a channel's credit round trip is ``t_sa + t_st + link_latency + t_rc + link_latency + credit_delay``.

Flow control: each output VC keeps a credit per free slot of the downstream VC buffer. A flit is
sent only with a credit; when a flit leaves an input buffer its credit returns upstream
``link_latency + credit_delay`` cycles later. Output VCs are allocated per packet and released as
soon as the tail has been sent (non-atomic, as BookSim's default), so a downstream VC buffer may
hold the tail of one packet and the head of the next.

Allocation is separable, input-first, with registered arbiters (BookSim's structure): VA: each
waiting head picks a free output VC among its routing candidates, then each output VC grants one
head; SA: each input port picks one ready VC, then each output port grants one input.

The router does no scheduling of its own: :class:`sim.fabric.network.FlitNetwork` calls
:meth:`CreditVCRouter.step` once per cycle while the router holds flits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sim.core.component import Component
from sim.core.limits import MAX_LATENCY_CYCLES
from sim.core.params import ParamSet, param
from sim.core.registry import lookup, register
from sim.core.units import COUNT
from sim.fabric.routing import EJECT, RoutingFunction
from sim.stats import counter

if TYPE_CHECKING:
    from sim.fabric.network import FlitNetwork

IDLE, WAIT_VA, ACTIVE = 0, 1, 2
# A flit is a list ``[arrive_cycle, packet, index, is_tail, dst]``: the cycle it is (or will be)
# written into its current input buffer, its packet, its position in the packet, whether it is the
# last, and the packet's destination terminal (the route cache's key).
# Lists, not objects, because a flit is touched at every hop and index access is the cheapest.
INFINITE_CREDITS = 1 << 30
NOT_BUFFERED = 1 << 62  # an ACTIVE VC's ``ready`` while its buffer is empty
MAX_VCS = 64
"""Virtual channels per port (real routers have a handful; each is a buffer per port)."""
MAX_VC_BUFFER = 1 << 20
"""Flits of one VC buffer (far below :data:`INFINITE_CREDITS`, the credit count of an ejection port)."""


def _between(lo: int, hi: int, unit: str = "") -> Any:
    """A check: ``lo <= value <= hi`` (a whole number of cycles, VCs or flits)."""

    def check(v: int) -> str | None:
        return None if lo <= v <= hi else f"a value >= {lo} and <= {hi:,}{unit}"

    return check


def _stage(lo: int) -> Any:
    return _between(lo, MAX_LATENCY_CYCLES, " cycles (MAX_LATENCY_CYCLES)")


@dataclass(frozen=True)
class RouterParams(ParamSet):
    """Router microarchitecture. Defaults: the canonical 4-stage VC router (Dally & Towles, ch. 16)."""

    vcs: int = param(4, COUNT, "virtual channels per port", check=_between(1, MAX_VCS))
    vc_buffer: int = param(8, COUNT, "flits of buffer per VC", check=_between(1, MAX_VC_BUFFER))
    t_rc: int = param(1, COUNT, "route computation, cycles", check=_stage(0))
    t_va: int = param(1, COUNT, "VC allocation, cycles", check=_stage(1))
    t_sa: int = param(1, COUNT, "switch allocation, cycles", check=_stage(1))
    t_st: int = param(1, COUNT, "switch traversal, cycles", check=_stage(0))
    credit_delay: int = param(
        0, COUNT, "extra cycles for a credit to return, beyond the link latency", check=_stage(0)
    )
    arbiter: str = param("round_robin", str, "registered arbiter used by the VC and switch allocators")

    @property
    def pipeline(self) -> int:
        """Cycles a head flit spends in one router at zero load (RC + VA + SA + ST)."""
        return self.t_rc + self.t_va + self.t_sa + self.t_st


class VAOrder(tuple):
    """The output VCs a head may ask for, in search order (OutputVCs), and the routing candidates
    ``(output port, allowed VCs)`` they came from (for diagnosis)."""

    cands: list[tuple[int, tuple[int, ...]]]


class InputVC:
    """One virtual channel of an input port: its buffer and the state of the packet at its head."""

    __slots__ = (
        "buf",
        "cr_action",
        "cr_delay",
        "in_bit",
        "in_port",
        "index",
        "ovc",
        "prev",
        "ready",
        "router",
        "routes",
        "state",
        "va",
    )

    def __init__(self, router: CreditVCRouter, in_port: int, index: int, prev: int) -> None:
        self.router = router
        self.buf: deque[list[Any]] = deque()  # flits (see the module's flit layout)
        self.state = IDLE
        # first cycle the VC may bid: WAIT_VA, for an output VC; ACTIVE, for the switch with the
        # flit at the head of its buffer (NOT_BUFFERED while the buffer is empty)
        self.ready = 0
        # where the head may go: its output VCs in search order (see _va_order)
        self.va: VAOrder = VAOrder()
        self.in_port = in_port
        self.in_bit = 1 << in_port
        self.index = index
        self.prev = prev  # upstream router id, or -1 for an injection port
        # destination terminal -> VA search order, for deterministic routing functions (None:
        # adaptive, routed afresh for every head)
        self.routes: dict[int, VAOrder] | None = None
        self.ovc: OutputVC | None = None  # the output VC held (ACTIVE; stale otherwise)
        # the credit a departing flit frees: returned ``cr_delay`` cycles later to ``cr_action``,
        # the upstream output VC or NIC injection VC (set by the network)
        self.cr_delay = 0
        self.cr_action: Any = None

    @property
    def out_port(self) -> int:
        """The output port of the output VC held (ACTIVE)."""
        return self.ovc.port_index  # type: ignore[union-attr]

    @property
    def out_vc(self) -> int:
        """The index of the output VC held (ACTIVE)."""
        return self.ovc.index  # type: ignore[union-attr]


class OutputVC:
    """One virtual channel of an output port: who holds it, its credits (free slots in the
    downstream buffer) and where its flits go. The port's constants are copied in, because the
    router's hot loop reads them for every flit."""

    __slots__ = (
        "bit",
        "credits",
        "down",
        "index",
        "offset",
        "owner",
        "port",
        "port_bit",
        "port_index",
        "sent",
        "terminal",
    )

    def __init__(self, port: OutputPort, port_index: int, index: int, vcs: int) -> None:
        self.port = port
        self.port_index = port_index
        self.port_bit = 1 << port_index
        self.index = index
        self.bit = 1 << (port_index * vcs + index)  # (port, VC) as one bit: VA's clash test
        self.owner: InputVC | None = None
        self.credits = port.depth
        self.offset = port.offset
        self.terminal = port.terminal
        self.down: InputVC | None = None  # the downstream input VC (None for an ejection port)
        self.sent = 0  # flits sent on this VC's link (link utilisation: memwall noc --out)

    def channel(self) -> tuple[Any, ...]:
        """Who holds these credits: ("router", node, output port, VC)."""
        return ("router", self.port.node, self.port_index, self.index)


class OutputPort:
    """The output VCs of one port, plus where the port leads."""

    __slots__ = ("depth", "down_port", "down_router", "latency", "node", "offset", "terminal", "vcs")

    def __init__(
        self, node: int, index: int, vcs: int, depth: int, latency: int, t_out: int, terminal: int = -1
    ) -> None:
        self.node = node  # the router's id
        self.depth = depth
        self.latency = latency
        self.offset = t_out + latency  # cycles from a switch grant to the flit's arrival downstream
        self.down_router: CreditVCRouter | None = None
        self.down_port = -1
        self.terminal = terminal  # ejection port: the terminal it delivers to (-1: a link)
        self.vcs = [OutputVC(self, index, v, vcs) for v in range(vcs)]

    @property
    def credits(self) -> list[int]:
        """Credits per VC (a copy, for checks and diagnosis)."""
        return [ovc.credits for ovc in self.vcs]

    @property
    def owner(self) -> list[InputVC | None]:
        """The input VC holding each output VC (a copy, for checks and diagnosis)."""
        return [ovc.owner for ovc in self.vcs]


@register("router", "credit_vc")
class CreditVCRouter(Component):
    """Input-queued VC router with credit-based flow control (see module docstring)."""

    Params = RouterParams
    STATS = (
        counter("flits", "flits", "flits that crossed this router's switch"),
        counter("packets", "packets", "head flits routed"),
        counter("va_conflicts", "requests", "VC-allocation requests that lost arbitration"),
        counter("sa_conflicts", "requests", "switch-allocation requests that lost arbitration"),
        counter("credit_stalls", "flit-cycles", "cycles a ready flit waited for a credit"),
    )

    def __init__(
        self,
        sim: Any,
        name: str,
        params: RouterParams,
        node: int,
        neighbors: list[int],
        link_latency: list[int],
        terminals: list[int],
        eject_latency: int,
        parent: Component | None = None,
    ) -> None:
        self.node = node
        self.neighbors = neighbors
        self.terminals = terminals
        self._link_latency = link_latency
        self._eject_latency = eject_latency
        super().__init__(sim, name, params, parent)

    def build(self) -> None:
        p: RouterParams = self.params  # type: ignore[assignment]
        v = p.vcs
        deg = len(self.neighbors)
        self.t_rc, self.t_va, self.t_out = p.t_rc, p.t_va, p.t_sa + p.t_st
        self.port_of: dict[int, int] = {nb: i for i, nb in enumerate(self.neighbors)}
        self.eject_port: dict[int, int] = {t: deg + i for i, t in enumerate(self.terminals)}
        prevs = self.neighbors + [-1] * len(self.terminals)
        self.inputs = [[InputVC(self, i, j, prevs[i]) for j in range(v)] for i in range(len(prevs))]
        self.outputs = [
            OutputPort(self.node, op, v, p.vc_buffer, lat, self.t_out)
            for op, lat in enumerate(self._link_latency)
        ]
        for t in self.terminals:
            op = len(self.outputs)
            self.outputs.append(
                OutputPort(self.node, op, v, INFINITE_CREDITS, self._eject_latency, self.t_out, t)
            )
        arb = lookup("arbiter", p.arbiter)
        self.in_arb = [arb(v) for _ in self.inputs]
        self.out_arb = [arb(len(self.inputs)) for _ in self.outputs]
        self.vc_arb = [[arb(len(self.inputs) * v) for _ in range(v)] for _ in self.outputs]
        self.n_vcs = v
        # route caches: destination -> candidates when the routing function ignores the input
        # port and VC; (candidates, search start) -> VA search order (see _va_order)
        self.shared_routes: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        self.va_orders: dict[tuple, VAOrder] = {}
        # input-independent routing: the route cache each search start (in port + VC) shares,
        # by start (set by the network; empty otherwise)
        self.route_tables: dict[int, dict[int, VAOrder]] = {}
        self.waiting_va: list[InputVC] = []  # heads waiting for an output VC
        self.active: dict[InputVC, None] = {}  # VCs holding an output VC (insertion ordered)
        self.routing: RoutingFunction | None = None
        self.net: FlitNetwork | None = None
        # raw event counts, turned into stats in finalize (keeps the hot path to int additions)
        self.n_flits = self.n_packets = self.n_va_conflicts = self.n_sa_conflicts = 0
        self.n_credit_stalls = 0

    def finalize(self) -> None:
        s = self.stat
        s.flits.value, s.packets.value = self.n_flits, self.n_packets
        s.va_conflicts.value, s.sa_conflicts.value = self.n_va_conflicts, self.n_sa_conflicts
        s.credit_stalls.value = self.n_credit_stalls

    # -- called by the network ---------------------------------------------------------------
    # (the network writes arriving flits into the input VCs itself: see FlitNetwork._deliver_pending)
    def _start_head(self, ivc: InputVC, now: int) -> None:
        """The packet at the head of ``ivc``'s buffer is routed in cycle ``now`` and waits for VA."""
        packet = ivc.buf[0][1]
        routes = ivc.routes
        if routes is None:
            ivc.va = self._va_order(ivc.in_port + ivc.index, self._route(packet, ivc))
        else:
            entry = routes.get(packet.dst)
            if entry is None:
                if self.route_tables:  # input-independent: fill every search start's table at once
                    cands = self.shared_routes.get(packet.dst)
                    if cands is None:
                        cands = self.shared_routes[packet.dst] = self._route(packet, ivc)
                    key = tuple([(op, tuple(vcs)) for op, vcs in cands])
                    for start, table in self.route_tables.items():
                        table[packet.dst] = self._va_order(start, cands, key)
                    entry = routes[packet.dst]
                else:
                    cands = self._route(packet, ivc)
                    entry = routes[packet.dst] = self._va_order(ivc.in_port + ivc.index, cands)
            ivc.va = entry
        ivc.state = WAIT_VA
        ivc.ready = now + self.t_rc
        self.waiting_va.append(ivc)
        self.n_packets += 1

    def _va_order(
        self, start_sum: int, cands: list[tuple[int, tuple[int, ...]]], cands_key: tuple | None = None
    ) -> VAOrder:
        """Where a head at an input VC with ``in_port + index == start_sum`` looks for a free output
        VC, in order (see :meth:`_arbitrate_vcs`): each candidate's VCs from that VC's own start,
        candidates in preference order."""
        if cands_key is None:
            cands_key = tuple([(op, tuple(vcs)) for op, vcs in cands])
        key = (cands_key, start_sum)
        order = self.va_orders.get(key)
        if order is None:
            slots = []
            for op, vcs in cands:
                port = self.outputs[op]
                n = len(vcs)
                start = start_sum % n
                for i in range(n):
                    slots.append(port.vcs[vcs[(start + i) % n]])
            order = self.va_orders[key] = VAOrder(slots)
            order.cands = cands
        return order

    def _route(self, packet: Any, ivc: InputVC) -> list[tuple[int, tuple[int, ...]]]:
        """Routing candidates as (output port, allowed VCs)."""
        dest = self.net.terminal_router[packet.dst]  # type: ignore[union-attr]
        cands = self.routing.route(  # type: ignore[union-attr]
            self.node, dest, ivc.prev, ivc.index, packet, self._free_credits
        )
        return [
            (self.eject_port[packet.dst] if nxt == EJECT else self.port_of[nxt], vcs) for nxt, vcs in cands
        ]

    def _free_credits(self, nxt: int) -> int:
        return sum([ovc.credits for ovc in self.outputs[self.port_of[nxt]].vcs])

    def step(self, now: int) -> int:
        """One cycle of VA and SA; returns the number of flits sent (the network books their actions).

        The hot loop of the flit level: written flat, with locals, because it runs once per busy
        router per cycle. The helpers it inlines are spelled out in the comments.

        Switch allocation is decided before VC allocation runs, and its flits sent after: a VC that
        VA grants this cycle cannot bid for the switch before ``now + t_va`` anyway, and VA must not
        see the output VCs that this cycle's tails release, so the order is equivalent to VA then SA.
        """
        active = self.active
        winners: list[InputVC] | None = None
        if active:
            # ---- switch allocation (separable, input first) -----------------------------
            ready: list[InputVC] = []
            in_mask = 0
            dup_mask = 0  # input ports with two or more ready VCs
            out_mask = 0
            out_clash = 0  # output ports that two or more ready VCs ask for
            for ivc in active:
                if ivc.ready > now:  # (includes: its next flit is buffered, and written t_rc ago)
                    continue
                ovc = ivc.ovc
                if ovc.credits <= 0:  # type: ignore[union-attr]
                    self.n_credit_stalls += 1
                    continue
                bit = ivc.in_bit
                if in_mask & bit:
                    dup_mask |= bit
                in_mask |= bit
                bit = ovc.port_bit  # type: ignore[union-attr]
                if out_mask & bit:
                    out_clash |= bit
                out_mask |= bit
                ready.append(ivc)
            # ready VCs on distinct inputs bound for distinct outputs (the common case) all win,
            # as _allocate_switch would find; one ready VC needs no arbitration either
            if dup_mask:
                winners = self._allocate_switch(ready, dup_mask)
            elif out_clash:
                winners = self._pick_outputs(ready, out_clash)
            elif ready:
                winners = ready
        waiting = self.waiting_va
        if waiting:
            if len(waiting) == 1:  # a lone head needs no arbitration (see the general case below)
                ivc = waiting[0]
                if ivc.ready <= now:
                    for ovc in ivc.va:
                        if ovc.owner is None:
                            self._grant_vc(ivc, ovc, now)
                            self.waiting_va = []
                            break
            else:  # separable input-first VC allocation (see _arbitrate_vcs)
                asks: list[tuple[InputVC, OutputVC]] = []  # (head, the output VC it asks for)
                still: list[InputVC] = []
                mask = 0
                clash = False  # two heads ask for the same output VC
                for ivc in waiting:
                    if ivc.ready <= now:
                        for ovc in ivc.va:
                            if ovc.owner is None:
                                bit = ovc.bit
                                if mask & bit:
                                    clash = True
                                mask |= bit
                                asks.append((ivc, ovc))
                                break
                        else:
                            still.append(ivc)
                    else:
                        still.append(ivc)
                if asks:
                    if clash:
                        asks = self._arbitrate_vcs(asks, still)
                    va_ready = now + self.t_va
                    for win, ovc in asks:  # (inlined _grant_vc)
                        ovc.owner = win
                        win.ovc = ovc
                        win.state = ACTIVE
                        win.ready = va_ready
                        active[win] = None
                    self.waiting_va = still
        if winners is None:
            return 0
        # ---- switch traversal: send each winner's flit -------------------------------------
        # the network's timing wheels, as lists of the actions due ``d`` cycles from now, by ``d``
        net = self.net
        arrive_in = net.arrive_in  # type: ignore[union-attr]
        credit_in = net.credit_in  # type: ignore[union-attr]
        t_rc = self.t_rc
        restart: list[InputVC] | None = None  # heads queued behind a departed tail
        for ivc in winners:
            buf = ivc.buf
            flit = buf.popleft()
            credit_in[ivc.cr_delay].append(ivc.cr_action)  # the freed slot's credit goes upstream
            ovc = ivc.ovc
            if ovc.terminal >= 0:  # type: ignore[union-attr]  # the ejection sink: no credit
                net.eject_in[ovc.offset].append(flit)  # type: ignore[union-attr]
            else:
                ovc.credits -= 1  # type: ignore[union-attr]
                ovc.sent += 1  # type: ignore[union-attr]
                if flit[2] == 0:
                    flit[1].hops += 1
                offset = ovc.offset  # type: ignore[union-attr]
                flit[0] = now + offset
                arrive_in[offset].append((ovc.down, flit))  # type: ignore[union-attr]
            if flit[3]:  # tail: release the VC
                ovc.owner = None  # type: ignore[union-attr]
                ivc.state = IDLE  # (ovc goes stale until the next VA grant)
                del active[ivc]
                if buf:  # the next packet's head is queued behind this tail: routed below
                    if restart is None:
                        restart = [ivc]
                    else:
                        restart.append(ivc)
            elif buf:  # the next flit may bid next cycle, if it has arrived and passed the write stage
                due = buf[0][0] + t_rc
                ivc.ready = due if due > now else now + 1
            else:
                ivc.ready = NOT_BUFFERED  # until the flit arrives (see FlitNetwork._deliver_pending)
        if restart is not None:  # after the sends: adaptive routing sees the credits they used
            for ivc in restart:
                self._start_head(ivc, now + 1)
        sent = len(winners)
        self.n_flits += sent  # (the network books the sent flits' pending actions and buffer slots)
        return sent

    def _allocate_switch(self, ready: list[InputVC], dup_mask: int | None = None) -> list[InputVC]:
        """Separable input-first switch allocation: one VC per input port, then one input per output.

        ``dup_mask``: the input ports with two or more ready VCs, if the caller found them already.
        Requests on distinct inputs bound for distinct outputs all win without arbitration.
        """
        if dup_mask is None:
            in_mask = dup_mask = 0
            for ivc in ready:
                if in_mask & ivc.in_bit:
                    dup_mask |= ivc.in_bit
                in_mask |= ivc.in_bit
        bids = self._pick_inputs(ready, dup_mask) if dup_mask else ready
        if len(bids) > 1:
            clash = self._output_clashes(bids)
            if clash:
                return self._pick_outputs(bids, clash)
        return bids

    def _pick_inputs(self, ready: list[InputVC], dup_mask: int) -> list[InputVC]:
        """SA, input stage: one ready VC per input port.

        ``dup_mask`` has the bit of each input port with two or more ready VCs: only those arbitrate.
        """
        if not dup_mask:
            return ready
        if not dup_mask & (dup_mask - 1):  # one contested input port (the common case)
            i = dup_mask.bit_length() - 1
            m = 0
            for ivc in ready:
                if ivc.in_port == i:
                    m |= 1 << ivc.index
            j = self.in_arb[i].pick_mask(m)
            return [ivc for ivc in ready if ivc.in_port != i or ivc.index == j]
        masks: dict[int, int] = {}  # input port -> its ready VCs, as a bit mask
        for ivc in ready:
            if dup_mask & ivc.in_bit:
                i = ivc.in_port
                masks[i] = masks.get(i, 0) | 1 << ivc.index
        chosen = [self.inputs[i][self.in_arb[i].pick_mask(m)] for i, m in masks.items()]
        return [ivc for ivc in ready if not dup_mask & ivc.in_bit or ivc in chosen]

    @staticmethod
    def _output_clashes(bids: list[InputVC]) -> int:
        """The output ports (as bits) that two or more of ``bids`` ask for."""
        seen = clash = 0
        for ivc in bids:
            bit = ivc.ovc.port_bit  # type: ignore[union-attr]
            if seen & bit:
                clash |= bit
            seen |= bit
        return clash

    def _pick_outputs(self, bids: list[InputVC], clash: int) -> list[InputVC]:
        """SA, output stage: one input per output port among ``bids`` (from distinct input ports),
        where ``clash`` (non-zero) has the bits of the contested output ports."""
        if not clash & (clash - 1):  # one contested output port (the common case)
            op = clash.bit_length() - 1
            m = 0
            for ivc in bids:
                if ivc.ovc.port_index == op:  # type: ignore[union-attr]
                    m |= ivc.in_bit
            i = self.out_arb[op].pick_mask(m)
            self.n_sa_conflicts += m.bit_count() - 1
            return [ivc for ivc in bids if ivc.ovc.port_index != op or ivc.in_port == i]  # type: ignore[union-attr]
        masks: dict[int, int] = {}  # contested output port -> the input ports asking for it
        for ivc in bids:
            op = ivc.ovc.port_index  # type: ignore[union-attr]
            if clash >> op & 1:
                masks[op] = masks.get(op, 0) | ivc.in_bit
        winner = {}
        for op, m in masks.items():
            winner[op] = self.out_arb[op].pick_mask(m)
            self.n_sa_conflicts += m.bit_count() - 1
        return [
            ivc
            for ivc in bids
            if not clash >> ivc.ovc.port_index & 1 or winner[ivc.ovc.port_index] == ivc.in_port  # type: ignore[union-attr]
        ]

    def _grant_vc(self, win: InputVC, ovc: OutputVC, now: int) -> None:
        ovc.owner = win
        win.ovc = ovc
        win.state = ACTIVE
        win.ready = now + self.t_va
        self.active[win] = None

    def _arbitrate_vcs(self, asks: list[tuple[InputVC, OutputVC]], still: list[InputVC]) -> list:
        """VC allocation, output stage, when two heads ask for the same output VC.

        Separable input-first VC allocation (inlined in :meth:`step`): each head whose route is
        computed asks for the first free output VC of its first candidate that has one, starting
        its search at its own position so heads from different inputs tend to ask for different
        output VCs instead of all colliding on VC 0 (``InputVC.va`` holds that search order,
        precomputed with the route). Here each output VC grants one head; the losers join
        ``still``. Returns the granted asks.
        """
        v = self.n_vcs
        masks: dict[int, int] = {}  # output VC (its bit) -> the input VCs asking, as a bit mask
        for ivc, ovc in asks:
            key = ovc.bit
            masks[key] = masks.get(key, 0) | 1 << (ivc.in_port * v + ivc.index)
        winner: dict[int, int] = {}
        granted = []
        for ask in asks:
            ivc, ovc = ask
            key = ovc.bit
            m = masks[key]
            if not m & (m - 1):  # the only request for this output VC
                granted.append(ask)
                continue
            w = winner.get(key)
            if w is None:
                w = winner[key] = self.vc_arb[ovc.port_index][ovc.index].pick_mask(m)
                self.n_va_conflicts += m.bit_count() - 1
            if ivc.in_port * v + ivc.index == w:
                granted.append(ask)
            else:
                still.append(ivc)
        return granted

    # -- diagnosis --------------------------------------------------------------------------
    def waiting_vcs(self) -> list[tuple[InputVC, str]]:
        """(input VC, what it waits for) for every VC holding flits that cannot move."""
        out = []
        for port_vcs in self.inputs:
            for ivc in port_vcs:
                if not ivc.buf:
                    continue
                if ivc.state == WAIT_VA:
                    out.append((ivc, "output VC"))
                elif ivc.state == ACTIVE and ivc.ovc.credits <= 0:  # type: ignore[union-attr]
                    out.append((ivc, "credit"))
        return out
