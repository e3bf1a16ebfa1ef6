"""The memory-device interface every memory technology implements.

A device serves :class:`MemRequest` objects. ``access(req)`` returns a SimPy event that fires when
the request completes; subclasses implement ``serve_detailed`` and ``serve_transaction`` (generators)
and the analytic twin (``peak_bandwidth_Bps``, ``unloaded_latency_ps``). The ``analytic`` fidelity
is provided here for every device: one FIFO server at the twin's peak bandwidth plus the unloaded
latency, so a whole system can run at the cheapest level.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, ClassVar

import simpy

from sim.core.component import Component
from sim.core.params import ParamSet, non_negative, one_of, param
from sim.core.reservation import Reservation
from sim.core.units import PS_PER_NS, SIZE, transfer_ps
from sim.stats import counter, level, tally

FIDELITIES = ("detailed", "transaction", "analytic")


def _done_ps(req: MemRequest) -> int:
    return req.done_ps


@dataclass(slots=True)
class MemRequest:
    """One access: ``size`` bytes at byte address ``addr``. Times are ps, filled by the device."""

    addr: int
    size: int
    write: bool = False
    id: int = 0
    arrive_ps: int = -1
    done_ps: int = -1
    tag: Any = None

    @property
    def latency_ps(self) -> int:
        return self.done_ps - self.arrive_ps


@dataclass(frozen=True)
class DeviceParams(ParamSet):
    """Parameters common to every memory device."""

    fidelity: str = param(
        "transaction",
        str,
        "model level: detailed (per page / per DRAM command), transaction (multi-page or "
        "multi-burst requests timed in closed form, queueing as events) or analytic (twin only)",
        check=one_of(*FIDELITIES),
    )
    controller_sram: int = param(
        "0B",
        SIZE,
        "SRAM on the device's own controller / base die that can hold a prefetch buffer; default: 0 (none), "
        "presets give the figure with its source",
        check=non_negative,
    )


class MemoryDevice(Component):
    """Base class of memory technologies (registered under kind ``memory``).

    Besides its timing, a memory kind declares on its class what the rest of memwall would otherwise
    have to learn from its name: which price and embodied-carbon class the cost model charges it at,
    whether it gets a prefetch buffer when the system file does not say, and (per instance, since
    it depends on the fidelity) how the blame chain names the time its requests spent queueing.
    Capacity and peak bandwidth follow from the parameters alone (:meth:`capacity_of`,
    :meth:`peak_bandwidth_of`), so a system can be planned without simulating anything.
    """

    Params: ClassVar[type[ParamSet]] = DeviceParams
    price_class: ClassVar[str] = ""
    """Cost-model class for USD per GB (a ``<class>_usd_per_gb`` coefficient): "dram", "flash"."""
    carbon_class: ClassVar[str] = ""
    """Cost-model class for embodied carbon (an ``embodied_kg_per_gb_<class>`` coefficient)."""
    usd_per_gb: ClassVar[float | None] = None
    """The kind's own USD per GB, used when the cost model has no coefficient for its class."""
    embodied_kg_per_gb: ClassVar[float | None] = None
    """The kind's own kgCO2e per GB, likewise."""
    takes_prefetcher: ClassVar[bool] = False
    """Whether the memory gets a prefetch buffer (default parameters) when the system file is silent."""
    STATS = (
        counter("reads", "requests", "read requests completed"),
        counter("writes", "requests", "write requests completed"),
        counter("bytes_read", "B", "bytes delivered by reads"),
        counter("bytes_written", "B", "bytes accepted by writes"),
        tally("read_latency_ns", "ns", "read latency, arrival to last byte"),
        tally("write_latency_ns", "ns", "write latency, arrival to completion"),
        level("inflight", "requests", "requests inside the device"),
        counter("energy_pj", "pJ", "dynamic energy spent by this device"),
        counter(
            "internal_bytes_read",
            "B",
            "bytes read on the device's internal path by near-memory units (not through its interface)",
        ),
    )

    books_transactions: ClassVar[bool] = False
    """Whether the device's transaction level knows a request's completion on arrival, so that
    :meth:`book` may serve it without a process (the device then implements :meth:`serve_booked`)."""

    def build(self) -> None:
        self._analytic = Reservation()
        self._twin_cache: dict[Any, Any] = {}  # capacity and peaks: functions of the frozen params
        # Transaction-level requests booked without a process and not yet complete-and-recorded, in
        # arrival order (see :meth:`record_booked`).
        self._booked: list[MemRequest] = []

    # -- interface -------------------------------------------------------------------------
    @classmethod
    def capacity_of(cls, params: ParamSet) -> int:
        """Bytes a device with ``params`` holds (from the parameters alone)."""
        raise NotImplementedError

    @classmethod
    def peak_bandwidth_of(cls, params: ParamSet, write: bool = False) -> float:
        """Analytic twin: the most bytes per second a device with ``params`` can ever deliver."""
        raise NotImplementedError

    @property
    def capacity_bytes(self) -> int:
        cap = self._twin_cache.get("capacity")
        if cap is None:
            cap = self._twin_cache["capacity"] = self.capacity_of(self.params)
        return cap

    def peak_bandwidth_Bps(self, write: bool = False) -> float:
        """Analytic twin: the most bytes per second this device can ever deliver."""
        peak = self._twin_cache.get(write)
        if peak is None:
            peak = self._twin_cache[write] = self.peak_bandwidth_of(self.params, write)
        return peak

    def queueing_cause(self) -> str:
        """How the blame chain names time a request waited inside this device beyond its peak."""
        return "memory queueing"

    def account_internal_read(self, nbytes: int) -> None:
        """Energy and counts of ``nbytes`` read by near-memory units on the internal path (array
        energy, no interface energy); the timing is the units'."""
        raise NotImplementedError(f"{type(self).__name__} has no internal read path for near-memory units")

    def unloaded_latency_ps(self, size: int, write: bool = False) -> int:
        """Analytic twin: latency of one ``size``-byte request into an idle device."""
        raise NotImplementedError

    def serve_detailed(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        raise NotImplementedError

    def serve_transaction(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------
    def check_request(self, req: MemRequest) -> None:
        if req.size <= 0:
            raise ValueError(f"{self.path}: request size must be > 0, got {req.size}")
        if req.addr < 0 or req.addr + req.size > self.capacity_bytes:
            raise ValueError(
                f"{self.path}: request [{req.addr}, {req.addr + req.size}) outside capacity "
                f"{self.capacity_bytes} B"
            )

    def access(self, req: MemRequest) -> simpy.Process:
        """Start serving ``req``; the returned event fires when it completes."""
        self.check_request(req)
        if self._booked:
            self.record_booked()
        return self.env.process(self._serve(req))

    def book(self, req: MemRequest) -> int | None:
        """Serve ``req`` without events when the fidelity allows it; its completion time, else None.

        The analytic level is a closed form whose answer is known at arrival, so a caller that only
        needs the completion time (the token driver) books it and waits once for everything it
        booked; analytic bookings are counted in every stat except the ``inflight`` level. So is a
        transaction-level request on a device that :attr:`books_transactions`, with every stat the
        same as through :meth:`access` (see :meth:`_book_transaction`), only fewer events.
        """
        fidelity = self.params.fidelity  # type: ignore[attr-defined]
        if fidelity == "transaction" and self.books_transactions:
            return self._book_transaction(req)
        if fidelity != "analytic":
            return None
        self.check_request(req)
        req.arrive_ps = self.env.now
        self.account_analytic(req)
        req.done_ps = self._analytic_end(req)
        self._record(req)
        return req.done_ps

    def books_arrivals(self) -> bool:
        """Whether :meth:`arrive` and :meth:`depart` may serve requests: the completion is known at
        arrival, so a caller that keeps its own queue of completions (membench's closed loop) needs
        no SimPy event per request. False here; a device whose level allows it overrides."""
        return False

    def arrive(self, req: MemRequest, now: int) -> int:
        """Book ``req`` arriving at ``now`` (ps; the caller's clock, which may run ahead of the
        environment's) and return its completion time; the caller must then call :meth:`depart` at
        that time, in completion order (ties: arrival order), as the events of :meth:`access`
        would. Every stat is then the same as through :meth:`access`. Only if :meth:`books_arrivals`."""
        raise NotImplementedError(f"{type(self).__name__} does not book requests at arrival")

    def depart(self, req: MemRequest, now: int) -> None:
        """Record ``req``, booked by :meth:`arrive`, completing at ``now`` (its completion time).

        The device keeps no reference to ``req`` afterwards: the caller may reuse the object for
        its next request (membench does, to save an allocation per request)."""
        raise NotImplementedError(f"{type(self).__name__} does not book requests at arrival")

    def serve_booked(self, req: MemRequest) -> int:
        """Transaction level without a process: reserve ``req`` now, return its completion (ps)."""
        raise NotImplementedError

    def _book_transaction(self, req: MemRequest) -> int:
        """:meth:`_serve` at the transaction level without a process or its three events.

        The same calls in the same order as the process would make them: ``inflight`` up on
        arrival, the device's timing and counts, then ``inflight`` down and the request's record
        at completion; the last two wait in ``_booked`` until :meth:`record_booked` (at the device's
        next request, sync or finalize), which takes them in completion order as the process
        events would have, so that every stat, float sums included, is the same.
        """
        self.check_request(req)
        now = self.env.now
        if self._booked:
            self.record_booked()
        req.arrive_ps = now
        self.stat.inflight.add(1, now)
        done = self.serve_booked(req)
        req.done_ps = done if done > now else now
        self._booked.append(req)
        return req.done_ps

    def record_booked(self) -> None:
        """Record the booked requests complete by now, in completion order (ties: arrival order,
        the order of their timeouts); later ones stay booked."""
        now = self.env.now
        done = self._booked
        if max(r.done_ps for r in done) <= now:  # the usual case: all of them
            self._booked = []
        else:
            self._booked = [r for r in done if r.done_ps > now]
            done = [r for r in done if r.done_ps <= now]
        done.sort(key=_done_ps)  # stable
        inflight = self.stat.inflight
        for r in done:
            inflight.add(-1, r.done_ps)
            self._record(r)

    def _record(self, req: MemRequest) -> None:
        stat = self.stat
        latency_ns = (req.done_ps - req.arrive_ps) / PS_PER_NS
        if req.write:
            stat.writes.add()
            stat.bytes_written.add(req.size)
            stat.write_latency_ns.observe(latency_ns)
        else:
            stat.reads.add()
            stat.bytes_read.add(req.size)
            stat.read_latency_ns.observe(latency_ns)

    def _serve(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        env = self.env
        stat = self.stat
        req.arrive_ps = env.now
        stat.inflight.add(1, env.now)
        fidelity = self.params.fidelity
        if fidelity == "transaction":
            yield from self.serve_transaction(req)
        elif fidelity == "detailed":
            yield from self.serve_detailed(req)
        else:
            yield from self.serve_analytic(req)
        req.done_ps = env.now
        if self._booked:  # booked requests done by now first
            self.record_booked()
        stat.inflight.add(-1, env.now)
        self._record(req)

    def _analytic_end(self, req: MemRequest) -> int:
        """Twin level: FIFO at peak bandwidth, plus the unloaded latency beyond the transfer."""
        peak = self.peak_bandwidth_Bps(req.write)
        xfer = transfer_ps(req.size, peak)
        fixed = max(0, self.unloaded_latency_ps(req.size, req.write) - xfer)
        _, end = self._analytic.reserve(self.env.now, xfer)
        return end + fixed

    def account_analytic(self, req: MemRequest) -> None:
        """Counters and energy of ``req`` at the analytic level (devices override; timing is the twin's)."""

    def serve_analytic(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        """Twin level as a process (see :meth:`_analytic_end`)."""
        self.account_analytic(req)
        yield self.env.timeout(self._analytic_end(req) - self.env.now)
