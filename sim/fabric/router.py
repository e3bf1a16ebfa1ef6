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
from sim.core.params import ParamSet, non_negative, param, positive
from sim.core.registry import lookup, register
from sim.core.units import COUNT
from sim.fabric.routing import EJECT, RoutingFunction
from sim.stats import counter

if TYPE_CHECKING:
    from sim.fabric.network import FlitNetwork

IDLE, WAIT_VA, ACTIVE = 0, 1, 2
# actions the network's timing wheel carries (see sim.fabric.network)
ARRIVE, CREDIT, NIC_CREDIT, EJECT_FLIT = 0, 1, 2, 3
INFINITE_CREDITS = 1 << 30


@dataclass(frozen=True)
class RouterParams(ParamSet):
    """Router microarchitecture. Defaults: the canonical 4-stage VC router (Dally & Towles, ch. 16)."""

    vcs: int = param(4, COUNT, "virtual channels per port", check=positive)
    vc_buffer: int = param(8, COUNT, "flits of buffer per VC", check=positive)
    t_rc: int = param(1, COUNT, "route computation, cycles", check=non_negative)
    t_va: int = param(1, COUNT, "VC allocation, cycles", check=positive)
    t_sa: int = param(1, COUNT, "switch allocation, cycles", check=positive)
    t_st: int = param(1, COUNT, "switch traversal, cycles", check=non_negative)
    credit_delay: int = param(
        0, COUNT, "extra cycles for a credit to return, beyond the link latency", check=non_negative
    )
    arbiter: str = param("round_robin", str, "registered arbiter used by the VC and switch allocators")

    @property
    def pipeline(self) -> int:
        """Cycles a head flit spends in one router at zero load (RC + VA + SA + ST)."""
        return self.t_rc + self.t_va + self.t_sa + self.t_st


class InputVC:
    """One virtual channel of an input port: its buffer and the state of the packet at its head."""

    __slots__ = ("buf", "cands", "in_port", "index", "out_port", "out_vc", "prev", "ready", "routes", "state")

    def __init__(self, in_port: int, index: int, prev: int) -> None:
        self.buf: deque[list[Any]] = deque()  # [arrive_cycle, packet, flit_index]
        self.state = IDLE
        self.ready = 0
        self.out_port = -1
        self.out_vc = -1
        self.cands: list[tuple[int, tuple[int, ...]]] = []
        self.in_port = in_port
        self.index = index
        self.prev = prev  # upstream router id, or -1 for an injection port
        # destination terminal -> candidates, for deterministic routing functions (None: adaptive)
        self.routes: dict[int, list[tuple[int, tuple[int, ...]]]] | None = None


class OutputPort:
    """Credits and owners of the output VCs of one port, plus where the port leads."""

    __slots__ = ("credits", "depth", "down_port", "down_router", "latency", "owner", "terminal")

    def __init__(self, vcs: int, depth: int, latency: int) -> None:
        self.credits = [depth] * vcs
        self.owner: list[InputVC | None] = [None] * vcs
        self.depth = depth
        self.latency = latency
        self.down_router: CreditVCRouter | None = None
        self.down_port = -1
        self.terminal = -1  # ejection port: the terminal it delivers to


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
        self.inputs = [[InputVC(i, j, prevs[i]) for j in range(v)] for i in range(len(prevs))]
        self.outputs = [OutputPort(v, p.vc_buffer, lat) for lat in self._link_latency]
        for t in self.terminals:
            port = OutputPort(v, INFINITE_CREDITS, self._eject_latency)
            port.terminal = t
            self.outputs.append(port)
        arb = lookup("arbiter", p.arbiter)
        self.in_arb = [arb(v) for _ in self.inputs]
        self.out_arb = [arb(len(self.inputs)) for _ in self.outputs]
        self.vc_arb = [[arb(len(self.inputs) * v) for _ in range(v)] for _ in self.outputs]
        self.waiting_va: list[InputVC] = []  # heads waiting for an output VC
        self.active: dict[InputVC, None] = {}  # VCs holding an output VC (insertion ordered)
        self.busy = 0  # input VCs that are not IDLE
        self.routing: RoutingFunction | None = None
        # credit_return[in_port][vc] = (delay, action) the network schedules when a flit leaves
        self.credit_return: list[list[tuple[int, tuple]]] = []
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
    def accept(self, in_port: int, vc: int, flit: list[Any], now: int) -> None:
        """A flit is written into input VC ``vc`` of ``in_port`` in cycle ``now``."""
        ivc = self.inputs[in_port][vc]
        ivc.buf.append(flit)
        if ivc.state == IDLE:
            self._start_head(ivc, now)

    def _start_head(self, ivc: InputVC, now: int) -> None:
        packet = ivc.buf[0][1]
        routes = ivc.routes
        if routes is None:
            ivc.cands = self._route(packet, ivc)
        else:
            cands = routes.get(packet.dst)
            if cands is None:
                cands = routes[packet.dst] = self._route(packet, ivc)
            ivc.cands = cands
        ivc.state = WAIT_VA
        ivc.ready = now + self.t_rc
        self.waiting_va.append(ivc)
        self.busy += 1
        self.n_packets += 1

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
        port = self.outputs[self.port_of[nxt]]
        return sum(port.credits)

    def step(self, now: int) -> int:
        """One cycle of VA and SA; returns the number of flits sent (progress).

        The hot loop of the flit level: written flat, with locals, because it runs once per busy
        router per cycle. The helpers it inlines are spelled out in the comments.
        """
        outputs = self.outputs
        if self.waiting_va:
            self._allocate_vcs(now)
        # ---- switch allocation (separable, input first) ---------------------------------
        t_rc = self.t_rc
        ready: list[InputVC] = []
        for ivc in self.active:
            if ivc.ready > now:
                continue
            buf = ivc.buf
            if not buf or buf[0][0] + t_rc > now:
                continue
            if outputs[ivc.out_port].credits[ivc.out_vc] <= 0:
                self.n_credit_stalls += 1
                continue
            ready.append(ivc)
        if not ready:
            return 0
        # one ready VC (the common case at low load) needs no arbitration
        winners = ready if len(ready) == 1 else self._allocate_switch(ready)
        # ---- switch traversal: send each winner's flit (inlined _send) -------------------
        net = self.net
        wheel = net.wheel  # type: ignore[union-attr]
        horizon = net.horizon  # type: ignore[union-attr]
        depart = now + self.t_out
        credit_return = self.credit_return
        hops = 0
        for ivc in winners:
            op = ivc.out_port
            flit = ivc.buf.popleft()
            port = outputs[op]
            out_vc = ivc.out_vc
            delay, action = credit_return[ivc.in_port][ivc.index]
            wheel[(now + delay) % horizon].append(action)  # the freed slot's credit goes upstream
            packet = flit[1]
            index = flit[2]
            arrive = depart + port.latency
            if port.terminal >= 0:  # the ejection sink always has room: no credit
                wheel[arrive % horizon].append((EJECT_FLIT, port.terminal, flit))
            else:
                port.credits[out_vc] -= 1
                if index == 0:
                    packet.hops += 1
                flit[0] = arrive
                wheel[arrive % horizon].append((ARRIVE, port.down_router, port.down_port, out_vc, flit))
                hops += 1
            if index == packet.size_flits - 1:  # tail: release the VC
                port.owner[out_vc] = None
                ivc.state = IDLE
                ivc.out_port = ivc.out_vc = -1
                del self.active[ivc]
                self.busy -= 1
                if ivc.buf:  # the next packet's head is already queued behind this tail
                    self._start_head(ivc, now + 1)
            else:
                ivc.ready = now + 1
        sent = len(winners)
        self.n_flits += sent
        net.n_pending += 2 * sent  # type: ignore[union-attr]
        net.buffered -= sent  # type: ignore[union-attr]
        if hops:
            net.stat.flit_hops.add(hops)  # type: ignore[union-attr]
        return sent

    def _allocate_switch(self, ready: list[InputVC]) -> list[InputVC]:
        """Separable input-first switch allocation: one VC per input port, then one input per output."""
        per_input: dict[int, list[InputVC]] = {}
        for ivc in ready:
            lst = per_input.get(ivc.in_port)
            if lst is None:
                per_input[ivc.in_port] = [ivc]
            else:
                lst.append(ivc)
        bids: dict[int, list[InputVC]] = {}
        for i, vcs in per_input.items():
            if len(vcs) == 1:
                ivc = vcs[0]
            else:
                j = self.in_arb[i].pick(sorted(r.index for r in vcs))
                ivc = self.inputs[i][j]
            lst = bids.get(ivc.out_port)
            if lst is None:
                bids[ivc.out_port] = [ivc]
            else:
                lst.append(ivc)
        winners = []
        for op, reqs in bids.items():
            if len(reqs) == 1:
                winners.append(reqs[0])
            else:
                idx = self.out_arb[op].pick(sorted(r.in_port for r in reqs))
                winners.append(next(r for r in reqs if r.in_port == idx))
                self.n_sa_conflicts += len(reqs) - 1
        return winners

    def _allocate_vcs(self, now: int) -> None:
        """Separable input-first VC allocation for the heads whose route is computed.

        Each head asks for the first free output VC of its first candidate that has one, starting
        its search at its own position so heads from different inputs tend to ask for different
        output VCs instead of all colliding on VC 0; each output VC then grants one head.
        """
        outputs = self.outputs
        v = len(self.inputs[0])
        requests: dict[tuple[int, int], list[InputVC]] = {}
        still: list[InputVC] = []
        for ivc in self.waiting_va:
            choice = None
            if ivc.ready <= now:
                for op, vcs in ivc.cands:
                    owner = outputs[op].owner
                    n = len(vcs)
                    start = (ivc.in_port + ivc.index) % n
                    for i in range(n):
                        ov = vcs[(start + i) % n]
                        if owner[ov] is None:
                            choice = (op, ov)
                            break
                    if choice is not None:
                        break
            if choice is None:
                still.append(ivc)
            else:
                lst = requests.get(choice)
                if lst is None:
                    requests[choice] = [ivc]
                else:
                    lst.append(ivc)
        t_va = self.t_va
        for (op, ov), reqs in requests.items():
            if len(reqs) == 1:
                win = reqs[0]
            else:
                idx = self.vc_arb[op][ov].pick(sorted(r.in_port * v + r.index for r in reqs))
                win = next(r for r in reqs if r.in_port * v + r.index == idx)
                self.n_va_conflicts += len(reqs) - 1
                still.extend(r for r in reqs if r is not win)
            outputs[op].owner[ov] = win
            win.state = ACTIVE
            win.out_port = op
            win.out_vc = ov
            win.ready = now + t_va
            self.active[win] = None
        self.waiting_va = still

    def credit_arrived(self, out_port: int, vc: int) -> None:
        self.outputs[out_port].credits[vc] += 1

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
                elif ivc.state == ACTIVE and self.outputs[ivc.out_port].credits[ivc.out_vc] <= 0:
                    out.append((ivc, "credit"))
        return out
