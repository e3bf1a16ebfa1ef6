"""Prefetch windows: hide a memory's latency by keeping up to W pages in flight ahead of a consumer.

Why: HBF reads take microseconds, so a consumer that asks for one page at a time sees the latency on
every page. By Little's law, sustaining bandwidth ``B`` with latency ``L`` needs ``B x L`` bytes in
flight: a window smaller than that cannot reach the device's peak, however fast the device is.

A consumer streams a tensor (one layer's weights, say) as an ordered run of pages with
:meth:`Prefetcher.stream`. The prefetcher keeps at most ``window_pages`` pages *requested or ready
but not yet consumed*, in the order its registered policy gives:

* ``on_demand``: no lookahead; each page is requested when the consumer needs it.
* ``sequential``: the rest of the current tensor, in order.
* ``next_tensor``: the rest of the current tensor, then the hinted next tensor, so the next
  stream's first pages are already there when it starts.

Each consumed page is a *hit* (data already arrived), a *late hit* (requested, still in flight: the
consumer waited) or a *miss* (not yet requested: the consumer requested it and waited). Tensors are
assumed disjoint; a page is the memory's page (``unit``) clipped to the tensor.

Two models of the same window (``model``):

* ``requests``: every chunk is a device request served by its own events; the consumer waits on
  each. Events grow with the bytes streamed.
* ``batched`` (default, when the device offers closed-form reads, ``device.stream_reads()``): the
  same window walked in a loop on a virtual clock. The consumer's times follow from the reads'
  completion times, which the device books at their issue times without events; the stream then
  costs one timeout however many bytes it moves. It replays exactly what ``requests`` does as long
  as nothing else uses the device while the stream runs (each read is booked when the loop reaches
  its issue time, not when simulated time does; ASSUMPTION: another requester on the same device
  during a stream queues behind reads that ``requests`` would have booked after it). Reads booked
  this way are not in the device's ``inflight`` level; the window's occupancy level is replayed from
  its changes. Devices without closed-form reads (detailed level) always use ``requests``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import simpy

from sim.core.component import Component
from sim.core.errors import ConfigError, RegistryError, SimulationError
from sim.core.params import ParamSet, non_negative, one_of, param, positive
from sim.core.registry import REGISTRY, lookup, names, register
from sim.core.units import COUNT, PS_PER_NS, PS_PER_S, SIZE
from sim.memory.device import MemoryDevice, MemRequest
from sim.memory.hbf import Runs
from sim.stats import counter, gauge, level, tally
from sim.stats.kinds import Level

if TYPE_CHECKING:
    from sim.core.simulation import Simulation

Chunk = tuple[int, int]
"""One prefetch unit: (byte address, bytes)."""


# -- policies --------------------------------------------------------------------------------------


class PrefetchPolicy:
    """Decides what to fetch ahead of the consumer, and in which order."""

    def plan(self, current: Sequence[Chunk], hint: Sequence[Chunk]) -> Sequence[Chunk]:
        """Chunks to keep in flight ahead of the consumer, highest priority first.

        ``current`` is the tensor being streamed (in consumption order), ``hint`` the tensor the
        caller says comes next (possibly empty). The prefetcher walks this sequence, skipping
        chunks already consumed or in flight, while the window has room.
        """
        raise NotImplementedError


@register("prefetch_policy", "on_demand")
class OnDemand(PrefetchPolicy):
    """No lookahead: every page is a miss. The baseline that shows the raw latency."""

    def plan(self, current: Sequence[Chunk], hint: Sequence[Chunk]) -> Sequence[Chunk]:
        return ()


@register("prefetch_policy", "sequential")
class SequentialAhead(PrefetchPolicy):
    """Run ahead within the current tensor only; the next tensor starts cold."""

    def plan(self, current: Sequence[Chunk], hint: Sequence[Chunk]) -> Sequence[Chunk]:
        return current


@register("prefetch_policy", "next_tensor")
class NextTensor(PrefetchPolicy):
    """Run ahead within the current tensor, then into the hinted next one."""

    def plan(self, current: Sequence[Chunk], hint: Sequence[Chunk]) -> Sequence[Chunk]:
        return [*current, *hint]


def resolve_policy(name: str) -> type[PrefetchPolicy]:
    """The policy class registered as ``name``; an unknown name lists the known ones.

    Built-in policies live in this module, so they resolve without importing every registered
    module; anything else goes through :func:`lookup`, which loads plugins.
    """
    table = REGISTRY.entries.get("prefetch_policy", {})
    if name in table:
        return table[name]
    return lookup("prefetch_policy", name)


# -- the prefetcher --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefetchParams(ParamSet):
    """Prefetch window parameters."""

    policy: str = param(
        "sequential",
        str,
        "prefetch policy, a name registered under prefetch_policy (on_demand, sequential, next_tensor)",
    )
    window_pages: int = param(
        1024,
        COUNT,
        "most pages requested or ready but not consumed; default: ASSUMPTION, about hbf-gen1 peak x "
        "latency / page = 1.64 TB/s x 10.2 us / 16 KiB ~ 1,020 (Little's law)",
        check=positive,
    )
    unit: int = param(
        0,
        SIZE,
        "bytes per prefetch request; 0 means the device's page_size parameter (4 KiB if it has none)",
        check=non_negative,
    )
    model: str = param(
        "batched",
        str,
        "batched: a stream books its reads in closed form and costs one event (when the device can); "
        "requests: one device request with its own events per chunk (the reference)",
        check=one_of("batched", "requests"),
    )


@dataclass(frozen=True)
class PrefetchBufferParams(ParamSet):
    """A weight-prefetch buffer as hardware: the ``[chip.memory.NAME.prefetch]`` table of a system file.

    The buffer is SRAM that holds ``window`` bytes per stack of prefetched data, read from the memory
    in ``unit``-byte requests in the order ``policy`` gives. It sits either on the memory's own
    controller / base die (``buffer = "memory"``, counted against the device's ``controller_sram``)
    or on the compute die (``"die"``, counted against ``chip.compute.sram``); a mapping whose buffers
    do not fit is refused. Memory kinds that need one to reach their bandwidth (flash) get it when the
    system file says nothing; any memory gets one with a ``prefetch`` table.
    """

    enabled: bool = param(True, bool, "whether the memory has a prefetch buffer")
    window: int = param(
        "32MiB",
        SIZE,
        "bytes requested ahead of the consumer, per stack (ASSUMPTION: FlashAccel sizes a flash stack's "
        "buffer at >= 2 x peak bandwidth x read latency, 32.8 MB for hbf-gen1; H3's buffer is 40 MB)",
        check=positive,
    )
    unit: int = param(
        "1MiB",
        SIZE,
        "bytes per prefetch request (MODEL CHOICE: fewer, larger requests keep the event count low)",
        check=positive,
    )
    policy: str = param(
        "next_tensor",
        str,
        "prefetch policy, a name registered under prefetch_policy (on_demand, sequential, next_tensor)",
        check=lambda v: (
            None if v in names("prefetch_policy") else f"one of {', '.join(names('prefetch_policy'))}"
        ),
    )
    buffer: str = param(
        "memory",
        str,
        "where the buffer's SRAM is: on the memory's controller / base die, or on the compute die",
        check=one_of("memory", "die"),
    )

    def validate(self) -> None:
        if self.window % self.unit:
            raise ConfigError(
                f"expected a window of whole units ({self.unit} B each), found {self.window} B",
                where="window",
            )

    def window_params(self) -> PrefetchParams:
        """The :class:`Prefetcher`'s own parameters: the window in whole units."""
        return PrefetchParams(policy=self.policy, unit=self.unit, window_pages=self.window // self.unit)


@register("prefetcher", "buffer")
class PrefetchBuffer:
    """A weight-prefetch buffer as a system file declares it: [chip.memory.NAME.prefetch]."""

    Params = PrefetchBufferParams


@dataclass(frozen=True)
class StreamReport:
    """What one :meth:`Prefetcher.stream` call saw (times in ps)."""

    tensor_id: Any
    nbytes: int
    pages: int
    hits: int
    late_hits: int
    misses: int
    start_ps: int
    end_ps: int
    stall_ps: int

    @property
    def bandwidth_Bps(self) -> float:
        span = self.end_ps - self.start_ps
        return self.nbytes * PS_PER_S / span if span > 0 else 0.0


class _Chunks(Sequence[Chunk]):
    """``Prefetcher.chunks(base, nbytes)`` computed on demand: the i-th chunk, or the index of a
    chunk, in O(1), so a stream's set-up costs nothing per byte."""

    __slots__ = ("_base", "_end", "_first", "_n", "_unit")

    def __init__(self, base: int, nbytes: int, unit: int) -> None:
        self._base, self._end, self._unit = base, base + nbytes, unit
        self._first = base // unit
        self._n = (self._end - 1) // unit - self._first + 1 if nbytes > 0 else 0

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> Chunk:  # type: ignore[override]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        unit = self._unit
        lo = self._base if i == 0 else (self._first + i) * unit
        hi = (self._first + i + 1) * unit
        if hi > self._end:
            hi = self._end
        return (lo, hi - lo)

    def __iter__(self) -> Iterator[Chunk]:
        return (self[i] for i in range(self._n))

    def index(self, chunk: Any, *_: Any) -> int:
        """Position of ``chunk`` in the tensor; ValueError if it is not one of its chunks."""
        addr = chunk[0]
        if self._base <= addr < self._end:
            i = addr // self._unit - self._first
            if self[i] == chunk:
                return i
        raise ValueError(chunk)

    def position(self, chunk: Chunk) -> int:
        """Position of ``chunk`` in the tensor, or the number of chunks if it is not one of them."""
        addr = chunk[0]
        if self._base <= addr < self._end:
            i = addr // self._unit - self._first
            if self[i] == chunk:
                return i
        return self._n

    def __contains__(self, chunk: object) -> bool:
        return isinstance(chunk, tuple) and len(chunk) == 2 and self.position(chunk) < self._n  # type: ignore[arg-type]


class _Changes:
    """Changes of a time-weighted level known ahead of simulated time, replayed in time order.

    Every change is added at a time no earlier than the last replay (a batched stream books issues
    and consumptions at or after the stream's start), so replaying up to ``now`` keeps the level's
    time monotone; on equal times a decrement goes first (as ``DeferredLevel``).
    """

    __slots__ = ("_keys", "_limit", "level")

    def __init__(self, lvl: Level) -> None:
        self.level = lvl
        self._keys: list[int] = []  # 2*t for -1, 2*t+1 for +1
        self._limit = 1 << 15

    def add(self, t: int, delta: int, now: int) -> None:
        self._keys.append(2 * t + (delta > 0))
        if len(self._keys) > self._limit:
            self.flush(now)

    def flush(self, now: int) -> None:
        keys = self._keys
        keys.sort()
        cut = bisect_right(keys, 2 * now + 1)
        add = self.level.add
        for k in keys[:cut]:
            add(1 if k & 1 else -1, k >> 1)
        del keys[:cut]
        self._limit = max(1 << 15, 2 * len(keys))


class _Concat(Sequence[Chunk]):
    """Two chunk sequences one after the other (the ``next_tensor`` plan), without copying."""

    __slots__ = ("_a", "_b", "_na")

    def __init__(self, a: Sequence[Chunk], b: Sequence[Chunk]) -> None:
        self._a, self._b, self._na = a, b, len(a)

    def __len__(self) -> int:
        return self._na + len(self._b)

    def __getitem__(self, i: int) -> Chunk:  # type: ignore[override]
        return self._a[i] if i < self._na else self._b[i - self._na]


def _arrived(done: simpy.Event) -> bool:
    """Whether a request's completion has happened: a device process has ended (triggered), a
    device's completion timeout (transaction-level HBF returns one) has fired (processed)."""
    return done.processed if isinstance(done, simpy.Timeout) else done.triggered


class _Entry:
    """A chunk requested and not yet consumed: its device process and when it was issued."""

    __slots__ = ("done", "done_ps", "issued_ps")

    def __init__(self, done: simpy.Event | None, issued_ps: int, done_ps: int = -1) -> None:
        self.done = done  # the request's completion event (requests model)
        self.issued_ps = issued_ps
        self.done_ps = done_ps  # its completion time (batched model)


@register("prefetcher", "window")
class Prefetcher(Component):
    """A window of outstanding page reads in front of one consumer of one memory device."""

    Params: ClassVar[type[PrefetchParams]] = PrefetchParams  # type: ignore[assignment]
    STATS = (
        counter("hits", "pages", "pages already arrived when the consumer reached them"),
        counter("late_hits", "pages", "pages in flight when reached: the consumer waited"),
        counter("misses", "pages", "pages not yet requested when reached: requested on demand"),
        tally("late_wait_ns", "ns", "consumer wait on each late hit"),
        tally("miss_wait_ns", "ns", "consumer wait on each miss"),
        counter("stall_ns", "ns", "total time the consumer waited for data"),
        counter("bytes", "B", "bytes consumed"),
        counter("bytes_requested", "B", "bytes requested from the device"),
        counter("wasted_bytes", "B", "bytes prefetched but dropped (the hinted tensor never came)"),
        counter("streams", "tensors", "stream calls completed"),
        counter("stream_ns", "ns", "time spent inside stream calls"),
        gauge("effective_bandwidth_Bps", "B/s", "bytes consumed / time inside stream calls"),
        level("window_occupancy", "pages", "pages requested or ready but not yet consumed"),
        tally("residence_ns", "ns", "per page: request to end of consumption (Little's law W)", keep=False),
    )

    params: PrefetchParams

    def __init__(
        self,
        sim: Simulation,
        name: str,
        device: MemoryDevice,
        params: PrefetchParams | None = None,
        parent: Component | None = None,
    ) -> None:
        self.device = device
        super().__init__(sim, name, params, parent)

    def build(self) -> None:
        p = self.params
        try:
            self.policy: PrefetchPolicy = resolve_policy(p.policy)()
        except RegistryError as exc:
            raise ConfigError(exc.message, where=f"{self.path}.policy") from None
        self.unit = p.unit or int(getattr(self.device.params, "page_size", 4096))
        self.window = p.window_pages
        self._buffer: dict[Chunk, _Entry] = {}
        self._plan: Sequence[Chunk] = ()
        self._cursor = 0
        self._position: dict[Chunk, int] = {}  # chunk -> index in the current tensor
        self._consumed = 0  # chunks of the current tensor consumed so far
        self._active = False
        self._next_id = 0
        reads = getattr(self.device, "stream_reads", None)
        self._reads = reads() if p.model == "batched" and reads is not None else None
        self._occupancy = _Changes(self.stat.window_occupancy) if self._reads is not None else None

    # -- chunking ----------------------------------------------------------------------------
    def chunks(self, base_addr: int, nbytes: int) -> list[Chunk]:
        """The tensor ``[base_addr, base_addr + nbytes)`` cut at ``unit`` boundaries."""
        unit = self.unit
        out: list[Chunk] = []
        addr, end = base_addr, base_addr + nbytes
        while addr < end:
            nxt = min(end, (addr // unit + 1) * unit)
            out.append((addr, nxt - addr))
            addr = nxt
        return out

    # -- window ------------------------------------------------------------------------------
    def _issue(self, chunk: Chunk) -> _Entry:
        env = self.env
        self._next_id += 1
        req = MemRequest(chunk[0], chunk[1], id=self._next_id, tag=self.path)
        entry = _Entry(self.device.access(req), env.now)
        self._buffer[chunk] = entry
        self.stat.window_occupancy.add(1, env.now)
        self.stat.bytes_requested.add(chunk[1])
        return entry

    def _fill(self) -> None:
        """Issue planned chunks while the window has room."""
        buffer, plan, position = self._buffer, self._plan, self._position
        while len(buffer) < self.window and self._cursor < len(plan):
            chunk = plan[self._cursor]
            self._cursor += 1
            if chunk in buffer or position.get(chunk, len(position)) < self._consumed:
                continue
            self._issue(chunk)

    def _drop_stale(self, keep: set[Chunk]) -> None:
        """Forget prefetched chunks that the new stream and its hint will never consume."""
        now = self.env.now
        for chunk in [c for c in self._buffer if c not in keep]:
            del self._buffer[chunk]
            if self._occupancy is not None:
                self._occupancy.add(now, -1, now)
            else:
                self.stat.window_occupancy.add(-1, now)
            self.stat.wasted_bytes.add(chunk[1])

    # -- the consumer's process --------------------------------------------------------------
    def stream(
        self,
        tensor_id: Any,
        base_addr: int,
        nbytes: int,
        hint_next: tuple[int, int] | None = None,
        consume_ps_per_page: int = 0,
    ) -> Generator[simpy.Event, Any, StreamReport]:
        """Consume a tensor page by page (run with ``yield from`` or ``env.process``).

        Each page is waited for if needed, then consumed for ``consume_ps_per_page`` (compute that
        overlaps the prefetches), then leaves the window. ``hint_next = (addr, nbytes)`` names the
        tensor expected next (used by ``next_tensor``). Returns when the last page is consumed.
        """
        if self._active:
            raise SimulationError(f"{self.path}: stream() called while another stream is running")
        if self._reads is not None:
            args = (tensor_id, base_addr, nbytes, hint_next, consume_ps_per_page)
            report = yield from self._stream_batched(*args)
            return report
        self._active = True
        env, st = self.env, self.stat
        start = env.now
        current = self.chunks(base_addr, nbytes)
        hint = self.chunks(*hint_next) if hint_next else []
        self._drop_stale({*current, *hint})
        self._plan = self.policy.plan(current, hint)
        self._cursor = 0
        self._position = {c: i for i, c in enumerate(current)}
        self._consumed = 0
        hits = late = misses = 0
        stall = 0
        for i, chunk in enumerate(current):
            entry = self._buffer.get(chunk)
            if entry is None:
                misses += 1
                entry = self._issue(chunk)
                self._fill()
                t0 = env.now
                yield entry.done
                wait = env.now - t0
                st.miss_wait_ns.observe(wait / PS_PER_NS)
                stall += wait
            elif _arrived(entry.done):
                hits += 1
                self._fill()
            else:
                late += 1
                self._fill()
                t0 = env.now
                yield entry.done
                wait = env.now - t0
                st.late_wait_ns.observe(wait / PS_PER_NS)
                stall += wait
            if consume_ps_per_page:
                yield env.timeout(consume_ps_per_page)
            del self._buffer[chunk]
            st.window_occupancy.add(-1, env.now)
            st.residence_ns.observe((env.now - entry.issued_ps) / PS_PER_NS)
            self._consumed = i + 1
            self._fill()
        return self._close(tensor_id, nbytes, len(current), hits, late, misses, start, env.now, stall)

    def _stream_batched(
        self,
        tensor_id: Any,
        base_addr: int,
        nbytes: int,
        hint_next: tuple[int, int] | None,
        consume_ps_per_page: int,
    ) -> Generator[simpy.Event, Any, StreamReport]:
        """:meth:`stream` on a virtual clock: the same window, issues and waits, one timeout."""
        self._active = True
        env, st = self.env, self.stat
        start = t = env.now
        unit = self.unit
        current = _Chunks(base_addr, nbytes, unit)
        hint = _Chunks(*hint_next, unit) if hint_next else _Chunks(0, 0, unit)
        buffer = self._buffer
        occupancy = self._occupancy
        assert occupancy is not None
        for chunk in [c for c in buffer if c not in current and c not in hint]:  # as _drop_stale
            del buffer[chunk]
            occupancy.add(start, -1, start)
            st.wasted_bytes.add(chunk[1])
        policy = type(self.policy)
        if policy is NextTensor:
            plan: Sequence[Chunk] = _Concat(current, hint)
        elif policy is SequentialAhead:
            plan = current
        elif policy is OnDemand:
            plan = ()
        else:  # another policy sees lists, as in the requests model
            plan = self.policy.plan(list(current), list(hint))
        n_plan = len(plan)
        n_cur = len(current)
        position = current.position
        window = self.window
        book = self._reads.book  # type: ignore[union-attr]
        latencies = Runs()  # device latency of each read issued, in issue order
        ranges: list[list[int]] = []  # contiguous [addr, end) ranges issued, in order
        requested = 0
        cursor = consumed = 0
        # reads of adjacent chunks are accounted as one range when no page straddles their boundary
        page = int(getattr(self.device.params, "page_size", 1))

        def issue(chunk: Chunk, at: int) -> _Entry:
            nonlocal requested
            addr, size = chunk
            done = book(addr, size, at)
            entry = _Entry(None, at, done)
            buffer[chunk] = entry
            occupancy.add(at, 1, start)
            latencies.add(done - at)
            requested += size
            if ranges and ranges[-1][1] == addr and addr % page == 0:  # no page shared with the last
                ranges[-1][1] = addr + size
            else:
                ranges.append([addr, addr + size])
            return entry

        def fill(at: int) -> None:
            nonlocal cursor
            while len(buffer) < window and cursor < n_plan:
                chunk = plan[cursor]
                cursor += 1
                if chunk in buffer or position(chunk) < consumed:
                    continue
                issue(chunk, at)

        hits = late = misses = 0
        stall = 0
        late_waits, miss_waits, residences = Runs(), Runs(), Runs()
        reads = self._reads
        assert reads is not None
        # Steady state, fast-forwarded below: a full window of full-size chunks, each done one
        # transfer after the one before, the consumer just past the previous one, the twin's FIFO
        # backlogged; then every further full chunk is a late hit one transfer later, issued into
        # the slot its predecessor frees (closed forms, the same times as chunk by chunk).
        steady = (
            reads.analytic
            and not consume_ps_per_page
            and policy in (SequentialAhead, NextTensor)
            and n_cur > window
        )
        full_end = n_cur - 1 if n_cur and current[-1][1] != unit else n_cur
        unit_x = reads.cost(unit)[0] if steady else 0
        next_try = 0
        i = 0
        while i < n_cur:
            chunk = current[i]
            entry = buffer.get(chunk)
            if (
                steady
                and i >= next_try
                and entry is not None
                and i + window < full_end
                and len(buffer) == window
                and cursor == i + window
                and chunk[1] == unit
                and t == entry.done_ps - unit_x
            ):
                next_try = i + window  # at most one full check per window of chunks
                x, fixed = reads.cost(unit)
                d0 = entry.done_ps
                count = full_end - (i + window)
                olds = [buffer.get(current[i + m]) for m in range(window)]
                if all(
                    e is not None and e.done_ps == d0 + m * x for m, e in enumerate(olds)
                ) and reads.book_run(unit, d0, count, d0 - fixed + (window - 1) * x):
                    # `count` late hits, each x after the one before; each consumption frees
                    # the slot the next full chunk is issued into, at once, behind the FIFO
                    for m in range(window):
                        del buffer[current[i + m]]
                    for m in range(min(count, window)):
                        residences.add(d0 + m * x - olds[m].issued_ps)  # type: ignore[union-attr]
                    residences.add(window * x, count - window)
                    for j in range(i + count, i + count + window):
                        if j < i + window:
                            buffer[current[j]] = olds[j - i]  # type: ignore[assignment]
                        else:
                            buffer[current[j]] = _Entry(None, d0 + (j - i - window) * x, d0 + (j - i) * x)
                    late += count
                    stall += count * x
                    late_waits.add(x, count)
                    latencies.add(window * x, count)
                    requested += count * unit
                    lo = current[i + window][0]
                    if ranges and ranges[-1][1] == lo and lo % page == 0:
                        ranges[-1][1] = lo + count * unit
                    else:
                        ranges.append([lo, lo + count * unit])
                    cursor += count
                    i += count
                    consumed = i
                    t = d0 + (count - 1) * x
                    continue
            if entry is None:
                misses += 1
                entry = issue(chunk, t)
                fill(t)
                wait = entry.done_ps - t
                miss_waits.add(wait)
                stall += wait
                t = entry.done_ps
            elif entry.done_ps <= t:
                hits += 1
                fill(t)
            else:
                late += 1
                fill(t)
                wait = entry.done_ps - t
                late_waits.add(wait)
                stall += wait
                t = entry.done_ps
            t += consume_ps_per_page
            del buffer[chunk]
            occupancy.add(t, -1, start)
            residences.add(t - entry.issued_ps)
            i += 1
            consumed = i
            fill(t)
        for lo, hi in ranges:
            reads.account(lo, hi - lo, unit)
        reads.record(requested, latencies)
        st.bytes_requested.add(requested)
        miss_waits.observe(st.miss_wait_ns)
        late_waits.observe(st.late_wait_ns)
        residences.observe(st.residence_ns)
        if t > env.now:
            yield env.timeout(t - env.now)
        return self._close(tensor_id, nbytes, len(current), hits, late, misses, start, t, stall)

    def _close(
        self,
        tensor_id: Any,
        nbytes: int,
        pages: int,
        hits: int,
        late: int,
        misses: int,
        start: int,
        end: int,
        stall: int,
    ) -> StreamReport:
        """Count a finished stream (either model) and report it."""
        st = self.stat
        st.hits.add(hits)
        st.late_hits.add(late)
        st.misses.add(misses)
        st.stall_ns.add(stall / PS_PER_NS)
        st.bytes.add(nbytes)
        st.streams.add()
        st.stream_ns.add((end - start) / PS_PER_NS)
        self._active = False
        return StreamReport(tensor_id, nbytes, pages, hits, late, misses, start, end, stall)

    def finalize(self) -> None:
        if self._occupancy is not None:
            self._occupancy.flush(self.env.now)
        st = self.stat
        if st.stream_ns.value > 0:
            bw = st.bytes.value * 1e9 / st.stream_ns.value
            st.effective_bandwidth_Bps.set(bw)
