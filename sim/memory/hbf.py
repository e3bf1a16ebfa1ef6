"""High Bandwidth Flash (HBF): a stack of NAND dies behind one HBM-like interface.

Why it exists: HBF trades DRAM's nanosecond access for ~10x capacity at HBM-class read bandwidth
(paper section "High Bandwidth Flash"). Its costs, page-sized microsecond reads and limited write
endurance, are what this model must expose.

Structure
---------
A stack has ``channels`` buses; each bus connects ``dies_per_channel`` dies; each die has
``planes_per_die`` planes, the sub-arrays that sense pages independently (SanDisk: "each die is
split into many sub-arrays read in parallel"). A plane holds ``blocks_per_plane`` erase blocks of
``pages_per_block`` pages of ``page_size`` bytes.

Address mapping (page striping)
-------------------------------
Page number ``p = addr // page_size`` is spread over the parallel units, fastest-varying first::

    channel = p % channels
    die     = (p // channels) % dies_per_channel
    plane   = (p // (channels * dies_per_channel)) % planes_per_die
    row     = p // (channels * dies_per_channel * planes_per_die)   # page within the plane
    block, page_in_block = divmod(row, pages_per_block)

so a sequential stream of ``channels * dies * planes`` pages touches every plane exactly once, and
consecutive pages travel on different buses.

Timing of one page
------------------
* Read: the plane senses the whole page into its page register (``tR``); only the touched
  ``sector_size`` sectors then cross the die's channel bus (``bytes / channel_rate``) and the
  stack interface shared by all channels (``bytes / interface_rate``). Each request pays
  ``base_latency`` once (logic die and PHY). A small read therefore still costs a full ``tR``
  of plane time: small reads cut effective bandwidth, as the paper says.
* Write: interface, channel bus, then ``tPROG`` on the plane.
* Erase: ``tBERS`` on the plane holding the block.
* A die senses or programs at most ``multiplane`` planes at a time (a multi-plane operation): a
  request's pages on one die share one ``tR`` up to that many planes.

Assumptions (documented because they shape results)
---------------------------------------------------
* A plane is free again once its page has been sensed: cache-read mode and the logic die's buffers
  let the page wait for its bus without blocking the plane (no back-pressure from the buses).
* Raw flash, no flash translation layer. Each block keeps a write pointer in sectors; a write that
  starts below it (rewriting programmed sectors) forces an erase of the whole block first
  (erase-before-write, one P/E cycle, counted as an implicit erase). Sequential, log-structured
  writers, which is how frozen weights are loaded, therefore pay the minimum of one erase per block
  per pass; in-place updates such as a KV cache pay one erase per rewrite.
* Wear model: perfect wear-levelling. Lifetime = endurance x capacity / (write rate x WA), with WA =
  bytes of blocks erased per byte written (at least 1).
* Wear state and energy are booked when a request arrives (data contents are not modelled).
* Page register. A read senses its page into the plane's page register; a later sector read of
  the same page, while the register still holds it, is served from the register without a new
  ``tR`` (no plane time, no die sense slot, no sense energy): only its sectors cross the buses.
  Source: NAND command sets read a page with 00h-30h (the page is sensed into the register, tR)
  and then output any other column of that page with RANDOM DATA OUTPUT 05h-E0h (ONFI's name:
  Change Read Column), which needs no tR (SK hynix H27U4G8F2D datasheet rev 1.4, Table 6 "Public
  Command Set"; the Linux MTD driver's NAND_CMD_RNDOUT 0x05 / NAND_CMD_RNDOUTSTART 0xE0).
  ASSUMPTION: the register keeps the page until the plane's next array operation: another page's
  sense replaces it; a program or an erase of that plane invalidates it (a program loads its data
  through the register). Register hits are counted in ``register_hits``; ``pages_read`` counts
  senses only. At the transaction level the register holds the page of the plane's latest booked
  array operation; the detailed level checks it when a page gets its plane (FIFO), so both agree.
  ASSUMPTION (analytic level, which keeps no per-plane state): a read hits only pages that the
  previous read left in their planes' registers (its last ``planes`` pages); a write or erase
  anywhere forgets them.

Fidelity levels
---------------
* ``detailed``: every page is a process that queues for its plane (and die sense slot), its channel
  bus and the stack interface as SimPy resources.
* ``transaction``: each resource is a :class:`Timeline` booked in closed form at arrival; a request
  costs one timeout event (``access`` returns it; no process), its stats are recorded when it fires.
  Levels of queue occupancy are replayed in time order without events. A prefetch window can book
  whole streams of reads at later ready times without any event (:meth:`stream_reads`). Where
  pages reach a bus out of arrival order, the page booked first keeps its slot (the detailed model
  serves in ready order), so bus queue statistics are close but not identical; bandwidth and
  latency agree within a few percent (tests/validation/test_hbf_bandwidth.py).
* ``analytic`` (from :class:`MemoryDevice`): the twin below.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, NamedTuple

import numpy as np
import simpy

from sim.core.errors import ConfigError
from sim.core.params import ParamSet, non_negative, param, positive
from sim.core.registry import register
from sim.core.reservation import Timeline
from sim.core.units import BANDWIDTH, COUNT, ENERGY, PS_PER_NS, PS_PER_S, SIZE, TIME, transfer_ps
from sim.memory.device import DeviceParams, MemoryDevice, MemRequest
from sim.stats import Level, counter, gauge, level, tally
from sim.stats.deferred import DeferredLevel

# -- parameters and geometry -----------------------------------------------------------------------


@dataclass(frozen=True)
class HBFParams(DeviceParams):
    """HBF stack parameters. Defaults are the ``hbf-gen1`` preset (sources in presets_hbf.py)."""

    channels: int = param(
        16,
        COUNT,
        "independent channel buses in the stack; default: ASSUMPTION, HBM3-style 16 channels "
        "sharing the 1,024-bit interface",
        check=positive,
    )
    dies_per_channel: int = param(
        1,
        COUNT,
        "NAND dies on each channel bus; default: 16 core dies (SanDisk Gen-1) over 16 channels",
        check=positive,
    )
    planes_per_die: int = param(
        64,
        COUNT,
        "independently sensing planes (sub-arrays) per die; default: ASSUMPTION chosen so "
        "dies x planes x page / tR >= 1,638 GB/s (FlashAccel reports 96 planes per die)",
        check=positive,
    )
    blocks_per_plane: int = param(
        128,
        COUNT,
        "erase blocks per plane; default: ASSUMPTION giving 32 GiB (256 Gb) per die",
        check=positive,
    )
    pages_per_block: int = param(
        256,
        COUNT,
        "pages per erase block; default: ASSUMPTION (4 MiB blocks of 16 KiB pages)",
        check=positive,
    )
    page_size: int = param(
        "16KiB",
        SIZE,
        "bytes sensed by one page read; default: paper text 'pages of 10s of KB', "
        "ASSUMPTION 16 KiB (the common 3D NAND page)",
        check=positive,
    )
    sector_size: int = param(
        "4KiB",
        SIZE,
        "smallest unit moved over the buses (reads transfer only touched sectors); "
        "default: paper Table 3, 4,096 bytes per read",
        check=positive,
    )
    tR: int = param(
        "10us",
        TIME,
        "page read: array sense into the page register; default: where Table 3 "
        "'1,000s of ns' meets HyperAccel's 10-20 us",
        check=positive,
    )
    tPROG: int = param(
        "250us",
        TIME,
        "page program time; default: SLC 200-300 us (HP white paper), HBF cells "
        "reportedly SLC (Chipstrat, unconfirmed)",
        check=positive,
    )
    tBERS: int = param(
        "2ms",
        TIME,
        "block erase time; default: SLC 1.5-2 ms (HP white paper)",
        check=positive,
    )
    channel_rate: float = param(
        "102.4GB/s",
        BANDWIDTH,
        "bytes per second on one channel bus; default: ASSUMPTION, the "
        "1,024-bit interface split over 16 channels",
        check=positive,
    )
    interface_rate: float = param(
        "1638.4GB/s",
        BANDWIDTH,
        "stack interface limit shared by all channels; default: paper "
        "Table 3 1,638 GB/s read (1,024 bits x 12.8 Gb/s)",
        check=positive,
    )
    base_latency: int = param(
        "50ns",
        TIME,
        "fixed latency per request through the logic die and PHY; default: ASSUMPTION "
        "within Table 3's 10-100 ns HBM range (same interface)",
        check=non_negative,
    )
    multiplane: int = param(
        0,
        COUNT,
        "most planes of one die sensing or programming at once (multi-plane operation), 0 for all "
        "planes; default: all (sub-arrays read in parallel, SanDisk)",
        check=non_negative,
    )
    endurance: int = param(
        100_000,
        COUNT,
        "program/erase cycles a block survives; default: SK hynix H3, ~100k",
        check=positive,
    )
    read_energy_per_bit: float = param(
        "4pJ",
        ENERGY,
        "array energy per bit sensed (whole pages); default: ASSUMPTION, most of "
        "Table 3's <80 W / 1,638 GB/s = 6.1 pJ/bit",
        check=non_negative,
    )
    program_energy_per_bit: float = param(
        "50pJ",
        ENERGY,
        "array energy per bit programmed; default: ASSUMPTION (order of magnitude)",
        check=non_negative,
    )
    erase_energy_per_block: float = param(
        "50uJ",
        ENERGY,
        "energy of one block erase; default: ASSUMPTION (order of magnitude)",
        check=non_negative,
    )
    channel_energy_per_bit: float = param(
        "0.3pJ",
        ENERGY,
        "energy per bit on a channel bus (TSVs); default: ASSUMPTION",
        check=non_negative,
    )
    interface_energy_per_bit: float = param(
        "1pJ",
        ENERGY,
        "energy per bit through the stack interface; default: ASSUMPTION (HBM-class PHY)",
        check=non_negative,
    )

    def validate(self) -> None:
        if self.page_size % self.sector_size:
            raise ConfigError(
                f"expected a divisor of page_size ({self.page_size} B), found {self.sector_size} B",
                where="sector_size",
            )
        if self.multiplane > self.planes_per_die:
            raise ConfigError(
                f"expected at most planes_per_die ({self.planes_per_die}), found {self.multiplane}",
                where="multiplane",
            )


class _ReplayedLevel(DeferredLevel):
    """A :class:`DeferredLevel` whose replay runs in numpy: the same area, maximum and final value.

    ``Level.set`` adds ``value x (t - since)`` one change at a time; every term is a whole number,
    so while the sums stay below 2**53 the float total is exact and equals the integer sum computed
    here (larger spans fall back to the change-by-change replay).
    """

    __slots__ = ()

    def flush(self, now_ps: int) -> None:
        keys = self._keys
        if not keys:
            super().flush(now_ps)
            return
        keys.sort()
        cut = bisect_right(keys, 2 * now_ps + 1)
        lvl = self.level
        if cut == 0 or lvl.value != int(lvl.value) or (keys[cut - 1] >> 1) - lvl.since_ps >= 1 << 40:
            super().flush(now_ps)
            return
        arr = np.array(keys[:cut], dtype=np.int64)
        t = arr >> 1
        vals = int(lvl.value) + np.cumsum(np.where(arr & 1, 1, -1))
        if int(np.abs(vals).max()) >= 1 << 20:
            super().flush(now_ps)
            return
        prev_v = np.empty_like(vals)
        prev_v[0] = int(lvl.value)
        prev_v[1:] = vals[:-1]
        prev_t = np.empty_like(t)
        prev_t[0] = lvl.since_ps
        prev_t[1:] = t[:-1]
        area = int((prev_v * (t - prev_t)).sum())
        if abs(lvl.area) + abs(area) >= 1 << 53:
            super().flush(now_ps)
            return
        lvl.area += area
        lvl.since_ps = int(t[-1])
        lvl.value = float(vals[-1])
        top = float(vals.max())
        if top > lvl.hi:
            lvl.hi = top
        del keys[:cut]
        self._limit = max(self.FLUSH_AT, 2 * len(keys))


class _Lane(Timeline):
    """A :class:`Timeline` with prune, earliest and book fused into one call (the hot path of a
    transaction-level read): same bookings, fewer Python calls."""

    __slots__ = ()

    def take(self, ready: int, duration: int, now: int) -> tuple[int, int]:
        """``prune(now)`` then ``reserve(ready, duration)``: the gap search of ``earliest`` and the
        insertion of ``book`` share one bisection."""
        ends = self._ends
        n = len(ends)
        lo = self._lo
        while lo < n and ends[lo] <= now:
            lo += 1
        if lo > 64 and 2 * lo > n:
            del self._starts[:lo]
            del ends[:lo]
            n -= lo
            lo = 0
        self._lo = lo
        if n == lo or ready >= ends[-1]:  # Timeline.book's append case, nothing waited
            end = ready + duration
            self.busy_ps += duration
            self.jobs += 1
            if duration > 0:
                if n > lo and ends[-1] == ready:
                    ends[-1] = end
                else:
                    self._starts.append(ready)
                    ends.append(end)
            return ready, end
        starts = self._starts
        # Timeline.earliest: the first idle gap at or after ready that fits, before interval i
        i = bisect_right(ends, ready, lo)
        start = ready
        while i < n:
            if start + duration <= starts[i]:
                break
            if ends[i] > start:
                start = ends[i]
            i += 1
        end = start + duration
        self.busy_ps += duration
        self.waited_ps += start - ready
        self.jobs += 1
        if duration <= 0:
            return start, end
        if i == n:  # after the last interval (Timeline.book's append case)
            if ends[-1] == start:
                ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
            return start, end
        # Timeline.book's insertion before interval i, merging with the intervals it touches
        merge_prev = i > lo and ends[i - 1] == start
        merge_next = starts[i] == end
        if merge_prev and merge_next:
            ends[i - 1] = ends[i]
            del starts[i]
            del ends[i]
        elif merge_prev:
            ends[i - 1] = end
        elif merge_next:
            starts[i] = start
        else:
            starts.insert(i, start)
            ends.insert(i, end)
        return start, end


class FlashAddress(NamedTuple):
    """Where one page lives: channel, die on that channel, plane, block and page in block."""

    channel: int
    die: int
    plane: int
    block: int
    page: int


# One page touched by a request: global plane, global die, channel, global block, first and last
# sector (in the block), bytes moved over the buses, and the global page number.
Piece = tuple[int, int, int, int, int, int, int, int]


# -- the device ------------------------------------------------------------------------------------


@register("memory", "hbf")
class HighBandwidthFlash(MemoryDevice):
    """An HBF stack (or any NAND array: the ``nand-tlc`` preset is an SSD) at three fidelity levels."""

    Params: ClassVar[type[HBFParams]] = HBFParams  # type: ignore[assignment]
    STATS = (
        counter("pages_read", "pages", "page senses (tR each)"),
        counter(
            "register_hits",
            "pages",
            "page reads served from the page already in the plane's page register (no tR, no sense energy)",
        ),
        counter("pages_programmed", "pages", "page programs (tPROG each)"),
        counter("block_erases", "blocks", "block erases, explicit and implicit"),
        counter("implicit_erases", "blocks", "erases forced by rewriting programmed sectors"),
        counter("channel_bytes", "B", "bytes moved over the channel buses"),
        counter("interface_bytes", "B", "bytes moved through the stack interface"),
        counter("array_energy_pj", "pJ", "sense, program and erase energy (part of energy_pj)"),
        counter("io_energy_pj", "pJ", "channel bus and interface energy (part of energy_pj)"),
        tally(
            "queue_delay_ns",
            "ns",
            "per page: time spent waiting for plane, die, bus and interface",
            keep=False,
        ),
        counter("plane_wait_ns", "ns", "total time pages waited for a busy plane"),
        counter("die_wait_ns", "ns", "total time pages waited for a die sense slot (multiplane limit)"),
        counter("channel_wait_ns", "ns", "total time pages waited for a busy channel bus"),
        counter("interface_wait_ns", "ns", "total time pages waited for the stack interface"),
        level("plane_queue", "pages", "pages waiting for their plane, summed over planes"),
        level("die_queue", "pages", "pages holding their plane, waiting for a die sense slot"),
        level("channel_queue", "pages", "pages waiting for their channel bus, summed over channels"),
        level("interface_queue", "pages", "pages waiting for the stack interface"),
        tally("plane_utilization", "fraction", "busy fraction of each plane (one sample per plane)"),
        tally("channel_utilization", "fraction", "busy fraction of each channel bus (one per bus)"),
        gauge("interface_utilization", "fraction", "busy fraction of the stack interface"),
        gauge("max_pe_cycles", "cycles", "P/E cycles of the most worn block"),
        gauge("mean_pe_cycles", "cycles", "P/E cycles per block, mean over all blocks"),
        gauge("write_amplification", "ratio", "bytes of blocks erased per byte written (>= 1)"),
        gauge(
            "projected_lifetime_s",
            "s",
            "wear-levelled lifetime at the observed write rate (0: no writes seen)",
        ),
    )

    params: HBFParams
    SPANS_KEPT = 4096
    """Single-page read shapes (offset, size) whose costs are memoised (see ``_span``)."""
    price_class = "flash"
    carbon_class = "flash"
    takes_prefetcher = True  # microsecond reads: only a window of requests in flight reaches the bandwidth

    # -- construction ------------------------------------------------------------------------
    def build(self) -> None:
        super().build()
        p = self.params
        self._C, self._D, self._P = p.channels, p.dies_per_channel, p.planes_per_die
        self.n_dies = self._C * self._D
        self.n_planes = self.n_dies * self._P
        self.n_blocks = self.n_planes * p.blocks_per_plane
        self.block_bytes = p.pages_per_block * p.page_size
        self._spp = p.page_size // p.sector_size  # sectors per page
        self._page_bits = p.page_size * 8
        self.multiplane = p.multiplane or p.planes_per_die  # planes sensing at once per die
        self._die_limited = self.multiplane < p.planes_per_die
        # wear state per block: program/erase cycles and the sector write pointer
        self._pe = [0] * self.n_blocks
        self._wp = [0] * self.n_blocks
        self._idle_latency: dict[tuple[int, bool], int] = {}
        self._finalized = False
        self._one_event = p.fidelity == "transaction"  # requests cost one timeout (see access)
        self._capacity = self.capacity_bytes
        self._page = p.page_size
        # page registers: the page each plane holds (-1: none) and when its sense ends (ps)
        self._reg_page = [-1] * self.n_planes
        self._reg_end = [0] * self.n_planes
        self._last_read = (0, -1)  # analytic level: page range the previous read left in registers
        if p.fidelity == "transaction":
            self._plane_tl = [_Lane() for _ in range(self.n_planes)]
            self._die_tl = (
                [[Timeline() for _ in range(self.multiplane)] for _ in range(self.n_dies)]
                if self._die_limited
                else None
            )
            self._ch_tl = [_Lane() for _ in range(self._C)]
            self._if_tl = _Lane()
            st = self.stat
            self._q_plane = _ReplayedLevel(st.plane_queue)
            self._q_die = _ReplayedLevel(st.die_queue)
            self._q_channel = _ReplayedLevel(st.channel_queue)
            self._q_interface = _ReplayedLevel(st.interface_queue)
            self._xfer_cache: dict[tuple[int, float], int] = {}
            self._xfer_pair: dict[int, tuple[int, int]] = {}
            self._page_costs: dict[int, tuple[int, int, float]] = {}  # (x_ch, x_if, io pJ) by bytes
            self._spans: dict[int, tuple[int, int, int, int, int, float]] = {}  # see _span
            self._base = p.base_latency
            self._tR = p.tR
            self._sense_pj = 1 * self._page_bits * p.read_energy_per_bit  # as _book_reads computes them
            self._hit_pj = 0 * self._page_bits * p.read_energy_per_bit
            # A hit's 0.0 pJ (finite energies) changes no counter: array_energy_pj is a float >= 0
            # from the sense that filled the register, and 0.0 + io_pj is io_pj; so hits skip it.
            self._hit_adds_nothing = self._hit_pj == 0.0
        elif p.fidelity == "detailed":
            env = self.env
            self._plane_res = [simpy.Resource(env, 1) for _ in range(self.n_planes)]
            self._die_res = (
                [simpy.Resource(env, self.multiplane) for _ in range(self.n_dies)]
                if self._die_limited
                else None
            )
            self._ch_res = [simpy.Resource(env, 1) for _ in range(self._C)]
            self._if_res = simpy.Resource(env, 1)
            self._plane_busy = [0] * self.n_planes
            self._ch_busy = [0] * self._C
            self._if_busy = [0]

    # -- geometry and the analytic twin ------------------------------------------------------
    @classmethod
    def capacity_of(cls, params: ParamSet) -> int:
        p: HBFParams = params  # type: ignore[assignment]
        n_blocks = p.channels * p.dies_per_channel * p.planes_per_die * p.blocks_per_plane
        return n_blocks * (p.pages_per_block * p.page_size)

    def locate(self, addr: int) -> FlashAddress:
        """Where the page holding byte ``addr`` lives (see the module docstring for the order)."""
        p = addr // self.params.page_size
        ch, q = p % self._C, p // self._C
        die, q = q % self._D, q // self._D
        plane, row = q % self._P, q // self._P
        block, page = divmod(row, self.params.pages_per_block)
        return FlashAddress(ch, die, plane, block, page)

    @classmethod
    def peak_bandwidth_of(cls, params: ParamSet, write: bool = False) -> float:
        """min(dies x multiplane x page / (tR or tPROG), channels x bus, interface).

        With every plane sensing at once (``multiplane`` 0 or = planes) the array term is the
        paper's dies x planes x page / tR. It bounds reads of distinct pages; re-reads served from
        page registers sense nothing, so only the bus terms bound them.
        """
        p: HBFParams = params  # type: ignore[assignment]
        t_ps = p.tPROG if write else p.tR
        n_dies = p.channels * p.dies_per_channel
        multiplane = p.multiplane or p.planes_per_die
        array = n_dies * multiplane * p.page_size * PS_PER_S / t_ps
        return min(array, p.channels * p.channel_rate, p.interface_rate)

    def unloaded_latency_ps(self, size: int, write: bool = False) -> int:
        """Latency of a ``size``-byte request at address 0 into an idle, erased device.

        One page: ``tR + bytes/channel_rate + bytes/interface_rate + base_latency`` (reads) or
        ``bytes/interface_rate + bytes/channel_rate + tPROG + base_latency`` (writes). Larger
        requests follow the tandem-FIFO recurrence below: every page starts at time 0, each stage
        serves pages in the order they reach it. No events; independent of the Timeline code.
        """
        if size <= 0:
            raise ValueError(f"{self.path}: request size must be > 0, got {size}")
        key = (size, write)
        cached = self._idle_latency.get(key)
        if cached is None:
            cached = self._idle_schedule(self._pieces(0, size), write) + self.params.base_latency
            self._idle_latency[key] = cached
        return cached

    def _idle_schedule(self, pieces: list[Piece], write: bool) -> int:
        p = self.params
        n = len(pieces)
        t_array = p.tPROG if write else p.tR
        m = self.multiplane

        def array_stage(ready: list[int]) -> list[int]:
            done = [0] * n
            plane_free: dict[int, int] = {}
            die_slots: dict[int, list[int]] = {}
            for i in sorted(range(n), key=lambda i: (ready[i], i)):
                plane, die = pieces[i][0], pieces[i][1]
                slots = die_slots.setdefault(die, [0] * m)
                k = min(range(m), key=slots.__getitem__)
                start = max(ready[i], plane_free.get(plane, 0), slots[k])
                done[i] = plane_free[plane] = slots[k] = start + t_array
            return done

        def fifo_stage(ready: list[int], server: list[int], rate: float) -> list[int]:
            done = [0] * n
            free: dict[int, int] = {}
            for i in sorted(range(n), key=lambda i: (ready[i], i)):
                s = server[i]
                done[i] = free[s] = max(ready[i], free.get(s, 0)) + transfer_ps(pieces[i][6], rate)
            return done

        channel = [pc[2] for pc in pieces]
        interface = [0] * n
        if write:
            t = fifo_stage([0] * n, interface, p.interface_rate)
            t = fifo_stage(t, channel, p.channel_rate)
            t = array_stage(t)
        else:
            t = array_stage([0] * n)
            t = fifo_stage(t, channel, p.channel_rate)
            t = fifo_stage(t, interface, p.interface_rate)
        return max(t)

    # -- wear --------------------------------------------------------------------------------
    def pe_cycles(self, block: int) -> int:
        """Program/erase cycles of global block ``block`` so far."""
        return self._pe[block]

    def block_of(self, addr: int) -> int:
        """Global block index holding byte ``addr``."""
        return self._pieces(addr, 1)[0][3]

    def projected_lifetime_s(self, write_rate_Bps: float, write_amplification: float = 1.0) -> float:
        """Seconds until the wear-levelled device is worn out at ``write_rate_Bps`` host writes.

        Perfect wear-levelling spreads erases over all blocks, so each P/E cycle of the whole
        device absorbs ``capacity / write_amplification`` host bytes.
        """
        if write_rate_Bps <= 0:
            return math.inf
        return self.params.endurance * self.capacity_bytes / (write_rate_Bps * write_amplification)

    # -- request preparation (shared by all levels) -------------------------------------------
    def _pieces(self, addr: int, size: int) -> list[Piece]:
        p = self.params
        page, sector, spp, ppb = p.page_size, p.sector_size, self._spp, p.pages_per_block
        C, D, P, B = self._C, self._D, self._P, p.blocks_per_plane
        first, last = addr // page, (addr + size - 1) // page
        out: list[Piece] = []
        for pg in range(first, last + 1):
            base = pg * page
            lo = addr - base if pg == first else 0
            hi = addr + size - base if pg == last else page
            s_lo, s_hi = lo // sector, -(-hi // sector)
            ch, q = pg % C, pg // C
            die_g = ch * D + q % D
            q //= D
            plane_g = die_g * P + q % P
            blk, pib = divmod(q // P, ppb)
            out.append(
                (
                    plane_g,
                    die_g,
                    ch,
                    plane_g * B + blk,
                    pib * spp + s_lo,
                    pib * spp + s_hi,
                    (s_hi - s_lo) * sector,
                    pg,
                )
            )
        return out

    def _prepare(self, req: MemRequest) -> tuple[list[Piece], list[bool]]:
        """Split ``req`` into pages; book wear, counters and energy. Returns (pieces, erase-first).

        Reads are booked as sensing every page; the detailed level refunds page-register hits
        (:meth:`_refund_sense`), the transaction level books reads itself (:meth:`_book_reads`).
        """
        p = self.params
        st = self.stat
        pieces = self._pieces(req.addr, req.size)
        moved = sum(pc[6] for pc in pieces)
        io_pj = moved * 8 * (p.channel_energy_per_bit + p.interface_energy_per_bit)
        erase_first: list[bool] = []
        if req.write:
            wp, pe = self._wp, self._pe
            erases = 0
            for pc in pieces:
                blk = pc[3]
                must = pc[4] < wp[blk]
                if must:
                    pe[blk] += 1
                    erases += 1
                wp[blk] = pc[5]
                erase_first.append(must)
            array_pj = moved * 8 * p.program_energy_per_bit + erases * p.erase_energy_per_block
            st.pages_programmed.add(len(pieces))
            if erases:
                st.block_erases.add(erases)
                st.implicit_erases.add(erases)
        else:
            array_pj = len(pieces) * self._page_bits * p.read_energy_per_bit
            st.pages_read.add(len(pieces))
        st.channel_bytes.add(moved)
        st.interface_bytes.add(moved)
        st.array_energy_pj.add(array_pj)
        st.io_energy_pj.add(io_pj)
        st.energy_pj.add(array_pj + io_pj)
        return pieces, erase_first

    def _refund_sense(self) -> None:
        """A page :meth:`_prepare` booked as sensed was served from its plane's register instead."""
        st = self.stat
        array_pj = self._page_bits * self.params.read_energy_per_bit
        st.pages_read.add(-1)
        st.register_hits.add(1)
        st.array_energy_pj.add(-array_pj)
        st.energy_pj.add(-array_pj)

    def _set_register(self, plane: int, page: int, end: int) -> None:
        """An array operation on ``plane`` ending at ``end`` leaves ``page`` (-1: nothing) in its
        register, unless it was placed before the operation the register already reflects."""
        if end >= self._reg_end[plane]:
            self._reg_page[plane] = page
            self._reg_end[plane] = end

    def _book_erase(self, block: int) -> None:
        p = self.params
        self._pe[block] += 1
        self._wp[block] = 0
        self.stat.block_erases.add()
        self.stat.array_energy_pj.add(p.erase_energy_per_block)
        self.stat.energy_pj.add(p.erase_energy_per_block)

    def _page_done(self, plane_w: int, die_w: int, ch_w: int, if_w: int) -> None:
        st = self.stat
        st.queue_delay_ns.observe((plane_w + die_w + ch_w + if_w) / PS_PER_NS)
        if plane_w:
            st.plane_wait_ns.add(plane_w / PS_PER_NS)
        if die_w:
            st.die_wait_ns.add(die_w / PS_PER_NS)
        if ch_w:
            st.channel_wait_ns.add(ch_w / PS_PER_NS)
        if if_w:
            st.interface_wait_ns.add(if_w / PS_PER_NS)

    # -- erase (all levels) ------------------------------------------------------------------
    def erase(self, addr: int) -> simpy.Process:
        """Erase the block holding byte ``addr``; the returned process ends after ``tBERS``."""
        if not 0 <= addr < self.capacity_bytes:
            raise ValueError(f"{self.path}: erase address {addr} outside capacity {self.capacity_bytes} B")
        piece = self._pieces(addr, 1)[0]
        self._book_erase(piece[3])
        self._last_read = (0, -1)
        fidelity = self.params.fidelity
        if fidelity == "detailed":
            return self.env.process(self._array_detailed(piece, self.params.tBERS))
        return self.env.process(self._erase_closed_form(piece, fidelity == "transaction"))

    def _erase_closed_form(self, piece: Piece, booked: bool) -> Generator[simpy.Event, Any, None]:
        now = self.env.now
        end = now + self.params.tBERS
        if booked:
            start, _, _ = self._book_array(piece, now, self.params.tBERS, now)
            end = start + self.params.tBERS
            self._set_register(piece[0], -1, end)
        yield self.env.timeout(end - now)

    # -- transaction level -------------------------------------------------------------------
    def serve_transaction(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        now = self.env.now
        yield self.env.timeout(self._book_transaction(req, now) - now)

    def _book_transaction(self, req: MemRequest, now: int) -> int:
        """Book ``req`` arriving at ``now`` on the timelines; returns its completion time."""
        self._if_tl.prune(now)
        if not req.write:
            return self._book_reads(req, now)
        pieces, erase_first = self._prepare(req)
        done = now
        for pc, erase in zip(pieces, erase_first, strict=True):
            done = max(done, self._book_write(pc, erase, now))
        return done + self.params.base_latency

    def _book_reads(self, req: MemRequest, now: int, ready: int = -1) -> int:
        """A read at the transaction level: :meth:`_book_read` for each page, then the counters and
        energy :meth:`_prepare` would book, less the senses that page-register hits saved.

        ``ready`` (default ``now``) is when the request reaches the device: a prefetch window's
        batched stream books reads it will issue later (see :meth:`stream_reads`).
        """
        if ready < now:
            ready = now
        p, st = self.params, self.stat
        addr, size = req.addr, req.size
        page = p.page_size
        pg = addr // page
        if (addr + size - 1) // page == pg:
            return self._book_page_read(pg, addr - pg * page, size, now, ready)
        pieces = self._pieces(addr, size)
        done = ready
        hits = moved = 0
        for pc in pieces:
            end, hit = self._book_read(pc, now, ready)
            hits += hit
            moved += pc[6]
            if end > done:
                done = end
        sensed = len(pieces) - hits
        array_pj = sensed * self._page_bits * p.read_energy_per_bit
        io_pj = moved * 8 * (p.channel_energy_per_bit + p.interface_energy_per_bit)
        if sensed:
            st.pages_read.add(sensed)
        if hits:
            st.register_hits.add(hits)
        st.channel_bytes.add(moved)
        st.interface_bytes.add(moved)
        st.array_energy_pj.add(array_pj)
        st.io_energy_pj.add(io_pj)
        st.energy_pj.add(array_pj + io_pj)
        return done + p.base_latency

    def access(self, req: MemRequest) -> simpy.Event:
        """Start serving ``req``; the returned event fires when it completes.

        At the transaction level the completion time is known at arrival, so the request costs one
        timeout event instead of a process (same times, same statistics, recorded at completion).
        """
        if not self._one_event:
            return super().access(req)
        env = self.env
        now = env.now
        ev = simpy.Timeout(env, self.arrive(req, now) - now)
        ev.callbacks.append(partial(self._complete, req))
        return ev

    def books_arrivals(self) -> bool:
        """At the transaction level: the timelines give a request's completion at arrival."""
        return self._one_event

    def arrive(self, req: MemRequest, now: int) -> int:
        """Book ``req`` arriving at ``now`` on the timelines (see :meth:`MemoryDevice.arrive`)."""
        addr, size = req.addr, req.size
        if size <= 0 or addr < 0 or addr + size > self._capacity:
            self.check_request(req)  # raises, naming the request
        req.arrive_ps = now
        lvl = self.stat.inflight  # Level.add(1, now), inlined on this hot path
        value = lvl.value
        lvl.area += value * (now - lvl.since_ps)
        lvl.since_ps = now
        lvl.value = value = value + 1
        if value > lvl.hi:
            lvl.hi = value
        if req.write:
            return self._book_transaction(req, now)
        page = self._page
        pg = addr // page
        if (addr + size - 1) // page == pg:  # within one page: the inlined path
            return self._book_page_read(pg, addr - pg * page, size, now, now)
        self._if_tl.prune(now)
        return self._book_reads(req, now)

    def stream_reads(self) -> FlashStreamReads | None:
        """Reads booked in closed form at a later ready time, for a prefetch window that books a
        whole stream without events (:class:`~sim.memory.prefetch.Prefetcher`); None at the
        detailed level, whose reads must run as processes."""
        if self.params.fidelity == "detailed":
            return None
        return FlashStreamReads(self)

    def _complete(self, req: MemRequest, _ev: simpy.Event | None = None) -> None:
        self.depart(req, self.env.now)

    def depart(self, req: MemRequest, now: int) -> None:
        """Record ``req`` completing at ``now`` (see :meth:`MemoryDevice.depart`)."""
        req.done_ps = now
        st = self.stat
        lvl = st.inflight  # Level.add(-1, now), inlined (a decrement never raises the maximum)
        value = lvl.value
        lvl.area += value * (now - lvl.since_ps)
        lvl.since_ps = now
        lvl.value = value - 1
        if req.write:
            self._record(req)
        else:  # MemoryDevice._record of a read, inlined (Counter.add is value += amount)
            st.reads.value += 1
            st.bytes_read.value += req.size
            x = (now - req.arrive_ps) / PS_PER_NS
            tally = st.read_latency_ns
            sketch = tally.sketch
            if sketch is None:
                tally.observe(x)
            else:  # Tally.observe once its samples went into the sketch, inlined
                tally.n += 1
                tally.total += x
                tally.total_sq += x * x
                if x < tally.lo:
                    tally.lo = x
                if x > tally.hi:
                    tally.hi = x
                sketch.add(x)

    def _xfer(self, nbytes: int, rate: float) -> int:
        """``transfer_ps`` memoised: requests reuse a handful of sizes."""
        key = (nbytes, rate)
        ps = self._xfer_cache.get(key)
        if ps is None:
            ps = self._xfer_cache[key] = transfer_ps(nbytes, rate)
        return ps

    def _book_array(self, pc: Piece, ready: int, duration: int, now: int) -> tuple[int, int, int]:
        """Book plane and die sense slot like the detailed model; returns (start, plane wait, die wait).

        As in :meth:`_array_detailed`, a page holds its plane from the moment it gets it, through
        any wait for a die sense slot, to the end of the operation; only ``duration`` is work.
        """
        plane = self._plane_tl[pc[0]]
        if self._die_tl is None:
            t = plane.take(ready, duration, now)[0]
            if t > ready:
                self._q_plane.wait(ready, t, now)
            return t, t - ready, 0
        plane.prune(now)
        slots = self._die_tl[pc[1]]
        for s in slots:
            s.prune(now)
        hold = duration
        while True:
            got = plane.earliest(ready, hold)
            t, slot = got, slots[0]
            best = -1
            for s in slots:
                e = s.earliest(got, duration)
                if best < 0 or e < best:
                    best, slot = e, s
            t = best
            if t + duration - got <= hold:
                break
            hold = t + duration - got
        slot.book(t, duration, got)
        plane.book(got, t + duration - got, ready, work_ps=duration)
        self._q_plane.wait(ready, got, now)
        self._q_die.wait(got, t, now)
        return t, got - ready, t - got

    def _book_page_read(self, pg: int, lo: int, size: int, now: int, ready: int) -> int:
        """:meth:`_book_reads` of a read inside page ``pg`` (from byte ``lo`` of it), inlined: the
        same bookings, counters and energy, without building pieces."""
        st = self.stat
        span = self._spans.get(lo * self._page + size)
        if span is None:
            span = self._span(lo, size)
        s_lo, s_hi, nbytes, x_ch, x_if, io_pj = span
        C, D, P = self._C, self._D, self._P
        ch, q = pg % C, pg // C
        die_g = ch * D + q % D
        q //= D
        plane = die_g * P + q % P
        reg_end = self._reg_end
        hit = self._reg_page[plane] == pg
        if hit:  # served from the plane's page register
            end = reg_end[plane]
            sensed = end if end > ready else ready
            plane_w = die_w = 0
            st.register_hits.value += 1  # Counter.add, inlined on this hot path
        else:
            tR = self._tR
            if self._die_tl is None:  # _book_array without a die limit: the plane alone
                start = self._plane_tl[plane].take(ready, tR, now)[0]
                plane_w, die_w = start - ready, 0
                if plane_w:
                    self._q_plane.wait(ready, start, now)
            else:
                p = self.params
                blk, pib = divmod(q // P, p.pages_per_block)
                spp = self._spp
                block = plane * p.blocks_per_plane + blk
                pc = (plane, die_g, ch, block, pib * spp + s_lo, pib * spp + s_hi, nbytes, pg)
                start, plane_w, die_w = self._book_array(pc, ready, tR, now)
            sensed = start + tR
            if sensed >= reg_end[plane]:
                self._reg_page[plane] = pg
                reg_end[plane] = sensed
            st.pages_read.value += 1
        cs, ce = self._ch_tl[ch].take(sensed, x_ch, now)
        is_, ie = self._if_tl.take(ce, x_if, now)
        ch_w = cs - sensed
        if_w = is_ - ce
        # DeferredLevel.wait and _page_done, inlined on this hot path
        if ch_w:
            q = self._q_channel
            q._keys += (2 * sensed + 1, 2 * cs)
            if len(q._keys) > q._limit:
                q.flush(now)
            st.channel_wait_ns.value += ch_w / PS_PER_NS
        if if_w:
            q = self._q_interface
            q._keys += (2 * ce + 1, 2 * is_)
            if len(q._keys) > q._limit:
                q.flush(now)
            st.interface_wait_ns.value += if_w / PS_PER_NS
        x = (plane_w + die_w + ch_w + if_w) / PS_PER_NS
        tally = st.queue_delay_ns
        if tally.keep:
            tally.observe(x)
        else:  # Tally.observe without samples, inlined
            tally.n += 1
            tally.total += x
            tally.total_sq += x * x
            if x < tally.lo:
                tally.lo = x
            if x > tally.hi:
                tally.hi = x
        if plane_w:
            st.plane_wait_ns.value += plane_w / PS_PER_NS
        if die_w:
            st.die_wait_ns.value += die_w / PS_PER_NS
        st.channel_bytes.value += nbytes
        st.interface_bytes.value += nbytes
        st.io_energy_pj.value += io_pj
        if hit and self._hit_adds_nothing:
            st.energy_pj.value += io_pj
        else:
            array_pj = self._hit_pj if hit else self._sense_pj
            st.array_energy_pj.value += array_pj
            st.energy_pj.value += array_pj + io_pj
        return ie + self._base

    def _span(self, lo: int, size: int) -> tuple[int, int, int, int, int, float]:
        """Sectors, bytes, transfer times and I/O energy of a read of ``size`` bytes from byte ``lo``
        of a page: (first sector, end sector, bytes moved, channel ps, interface ps, I/O pJ).
        Memoised (requests reuse a handful of offsets and sizes), up to a bound on memory."""
        p = self.params
        sector = p.sector_size
        s_lo = lo // sector
        s_hi = -(-(lo + size) // sector)
        nbytes = (s_hi - s_lo) * sector
        got = self._page_costs.get(nbytes)
        if got is None:
            io = nbytes * 8 * (p.channel_energy_per_bit + p.interface_energy_per_bit)
            got = self._page_costs[nbytes] = (*self._xfers(nbytes), io)
        span = (s_lo, s_hi, nbytes, *got)
        if len(self._spans) < self.SPANS_KEPT:
            self._spans[lo * self._page + size] = span
        return span

    def _book_read(self, pc: Piece, now: int, ready: int) -> tuple[int, bool]:
        """Book one page read; returns (when its last byte leaves the interface, register hit)."""
        plane = pc[0]
        hit = self._reg_page[plane] == pc[7]
        if hit:  # the page is (or will be, once its sense ends) in the plane's register
            end = self._reg_end[plane]
            sensed = end if end > ready else ready
            plane_w = die_w = 0
        else:
            tR = self.params.tR
            start, plane_w, die_w = self._book_array(pc, ready, tR, now)
            sensed = start + tR
            if sensed >= self._reg_end[plane]:
                self._reg_page[plane] = pc[7]
                self._reg_end[plane] = sensed
        x_ch, x_if = self._xfers(pc[6])
        cs, ce = self._ch_tl[pc[2]].take(sensed, x_ch, now)
        is_, ie = self._if_tl.take(ce, x_if, now)
        if cs > sensed:
            self._q_channel.wait(sensed, cs, now)
        if is_ > ce:
            self._q_interface.wait(ce, is_, now)
        self._page_done(plane_w, die_w, cs - sensed, is_ - ce)
        return ie, hit

    def _xfers(self, nbytes: int) -> tuple[int, int]:
        """(channel, interface) transfer times of ``nbytes``, memoised."""
        got = self._xfer_pair.get(nbytes)
        if got is None:
            p = self.params
            got = self._xfer_pair[nbytes] = (
                self._xfer(nbytes, p.channel_rate),
                self._xfer(nbytes, p.interface_rate),
            )
        return got

    def _book_write(self, pc: Piece, erase: bool, now: int) -> int:
        p = self.params
        is_, ie = self._if_tl.reserve(now, self._xfer(pc[6], p.interface_rate))
        channel = self._ch_tl[pc[2]]
        channel.prune(now)
        cs, ce = channel.reserve(ie, self._xfer(pc[6], p.channel_rate))
        array = p.tPROG + (p.tBERS if erase else 0)
        start, plane_w, die_w = self._book_array(pc, ce, array, now)
        self._set_register(pc[0], -1, start + array)
        self._q_interface.wait(now, is_, now)
        self._q_channel.wait(ie, cs, now)
        self._page_done(plane_w, die_w, cs - ie, is_ - now)
        return start + array

    # -- detailed level ----------------------------------------------------------------------
    def serve_detailed(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        env = self.env
        pieces, erase_first = self._prepare(req)
        if req.write:
            gens = [self._write_page(pc, e) for pc, e in zip(pieces, erase_first, strict=True)]
        else:
            gens = [self._read_page(pc) for pc in pieces]
        if len(gens) == 1:
            yield from gens[0]
        else:
            yield env.all_of([env.process(g) for g in gens])
        if self.params.base_latency:
            yield env.timeout(self.params.base_latency)

    def _acquire(self, res: simpy.Resource, lvl: Level) -> Generator[simpy.Event, Any, Any]:
        """Request ``res``; count the wait in ``lvl`` only if it is not granted at once."""
        rq = res.request()
        if not rq.triggered:
            env = self.env
            lvl.add(1, env.now)
            yield rq
            lvl.add(-1, env.now)
        return rq

    def _array_detailed(
        self, pc: Piece, duration: int, read: bool = False
    ) -> Generator[simpy.Event, Any, tuple[int, int]]:
        """Hold the plane (and a die sense slot) for ``duration``; returns (plane wait, die wait).

        A ``read`` whose page the plane's register holds when it gets the plane releases the plane
        at once (no sense). Reads leave their page in the register; programs and erases clear it.
        """
        env, st = self.env, self.stat
        t0 = env.now
        plane = self._plane_res[pc[0]]
        prq = yield from self._acquire(plane, st.plane_queue)
        t1 = env.now
        if read and self._reg_page[pc[0]] == pc[7]:
            plane.release(prq)
            self._refund_sense()
            return t1 - t0, 0
        self._reg_page[pc[0]] = -1  # the array operation overwrites the register
        die = drq = None
        if self._die_res is not None:
            die = self._die_res[pc[1]]
            drq = yield from self._acquire(die, st.die_queue)
        t2 = env.now
        yield env.timeout(duration)
        self._plane_busy[pc[0]] += duration
        if read:
            self._reg_page[pc[0]] = pc[7]
        if die is not None:
            die.release(drq)
        plane.release(prq)
        return t1 - t0, t2 - t1

    def _transfer_detailed(
        self, res: simpy.Resource, lvl: Level, busy: list[int], idx: int, nbytes: int, rate: float
    ) -> Generator[simpy.Event, Any, int]:
        """Move ``nbytes`` over ``res`` at ``rate`` (busy time into ``busy[idx]``); returns the wait."""
        env = self.env
        t0 = env.now
        rq = yield from self._acquire(res, lvl)
        waited = env.now - t0
        duration = transfer_ps(nbytes, rate)
        yield env.timeout(duration)
        busy[idx] += duration
        res.release(rq)
        return waited

    def _read_page(self, pc: Piece) -> Generator[simpy.Event, Any, None]:
        p, st = self.params, self.stat
        plane_w, die_w = yield from self._array_detailed(pc, p.tR, read=True)
        ch, nbytes = pc[2], pc[6]
        ch_w = yield from self._transfer_detailed(
            self._ch_res[ch], st.channel_queue, self._ch_busy, ch, nbytes, p.channel_rate
        )
        if_w = yield from self._transfer_detailed(
            self._if_res, st.interface_queue, self._if_busy, 0, nbytes, p.interface_rate
        )
        self._page_done(plane_w, die_w, ch_w, if_w)

    def _write_page(self, pc: Piece, erase: bool) -> Generator[simpy.Event, Any, None]:
        p, st = self.params, self.stat
        ch, nbytes = pc[2], pc[6]
        if_w = yield from self._transfer_detailed(
            self._if_res, st.interface_queue, self._if_busy, 0, nbytes, p.interface_rate
        )
        ch_w = yield from self._transfer_detailed(
            self._ch_res[ch], st.channel_queue, self._ch_busy, ch, nbytes, p.channel_rate
        )
        plane_w, die_w = yield from self._array_detailed(pc, p.tPROG + (p.tBERS if erase else 0))
        self._page_done(plane_w, die_w, ch_w, if_w)

    # -- analytic level: the base twin, plus the same wear and energy bookkeeping -------------
    def account_analytic(self, req: MemRequest) -> None:
        if req.write:
            self._prepare(req)
            self._last_read = (0, -1)
        else:
            self._account_read(req, registers=True)

    def _account_read(self, req: MemRequest, registers: bool = False) -> None:
        """Counters and energy of a read in closed form: the pages it senses and the sectors it moves
        (what :meth:`_prepare` sums piece by piece, without building the pieces).

        With ``registers``, pages the previous read left in their planes' registers are not sensed
        again (the analytic level's page register, see the module docstring).
        """
        p, st = self.params, self.stat
        end = req.addr + req.size
        first, last = req.addr // p.page_size, (end - 1) // p.page_size
        pages = last - first + 1
        if registers:
            a, b = self._last_read
            n = self.n_planes
            # pages of the previous read still in their registers: its last n pages; a page of this
            # read hits if no earlier page of this read (n pages before it) replaced it first
            hits = max(0, min(last, b, first + n - 1) - max(first, a, b - n + 1) + 1)
            self._last_read = (first, last)
            if hits:
                pages -= hits
                st.register_hits.add(hits)
        moved = (-(-end // p.sector_size) - req.addr // p.sector_size) * p.sector_size
        array_pj = pages * self._page_bits * p.read_energy_per_bit
        io_pj = moved * 8 * (p.channel_energy_per_bit + p.interface_energy_per_bit)
        st.pages_read.add(pages)
        st.channel_bytes.add(moved)
        st.interface_bytes.add(moved)
        st.array_energy_pj.add(array_pj)
        st.io_energy_pj.add(io_pj)
        st.energy_pj.add(array_pj + io_pj)

    def account_internal_read(self, nbytes: int) -> None:
        """Reads by units on the controller die: page senses and channel transfers, no interface."""
        p, st = self.params, self.stat
        pages = -(-nbytes // p.page_size)
        array_pj = pages * self._page_bits * p.read_energy_per_bit
        io_pj = nbytes * 8 * p.channel_energy_per_bit
        st.pages_read.add(pages)
        st.channel_bytes.add(nbytes)
        st.array_energy_pj.add(array_pj)
        st.io_energy_pj.add(io_pj)
        st.energy_pj.add(array_pj + io_pj)
        st.internal_bytes_read.add(nbytes)

    # -- end of run --------------------------------------------------------------------------
    def finalize(self) -> None:
        if self._finalized:
            return
        self._finalized = True
        now = self.env.now
        st = self.stat
        fidelity = self.params.fidelity
        if fidelity == "transaction":
            for q in (self._q_plane, self._q_die, self._q_channel, self._q_interface):
                q.flush(now)
            plane_busy = [tl.busy_until_ps(now) for tl in self._plane_tl]
            ch_busy = [tl.busy_until_ps(now) for tl in self._ch_tl]
            if_busy = self._if_tl.busy_until_ps(now)
        elif fidelity == "detailed":
            plane_busy, ch_busy, if_busy = self._plane_busy, self._ch_busy, self._if_busy[0]
        else:
            plane_busy, ch_busy, if_busy = [], [], 0
        if now > 0:
            for b in plane_busy:
                st.plane_utilization.observe(b / now)
            for b in ch_busy:
                st.channel_utilization.observe(b / now)
            st.interface_utilization.set(if_busy / now)
        st.max_pe_cycles.set(max(self._pe))
        st.mean_pe_cycles.set(sum(self._pe) / self.n_blocks)
        written = st.bytes_written.value
        if written > 0 and now > 0:
            wa = max(1.0, st.block_erases.value * self.block_bytes / written)
            st.write_amplification.set(wa)
            st.projected_lifetime_s.set(self.projected_lifetime_s(written * PS_PER_S / now, wa))


class FlashStreamReads:
    """Closed-form reads issued at a known ready time (>= now), booked without events.

    * transaction level: each read is booked page by page on the timelines exactly as
      :meth:`HighBandwidthFlash.access` would book it at its ready time (same counters and energy);
    * analytic level: the twin's FIFO at peak bandwidth plus the unloaded latency beyond the transfer
      (``MemoryDevice._analytic_end`` at the ready time); counters and energy are booked per
      contiguous range with :meth:`account` (same pages and bytes as chunk by chunk).

    Booked reads count in every device stat except the ``inflight`` level (as ``MemoryDevice.book``).
    """

    __slots__ = ("_cost", "analytic", "dev")

    def __init__(self, dev: HighBandwidthFlash) -> None:
        self.dev = dev
        self.analytic = dev.params.fidelity == "analytic"
        self._cost: dict[int, tuple[int, int]] = {}

    def book(self, addr: int, size: int, ready: int) -> int:
        """Book a ``size``-byte read at ``addr`` reaching the device at ``ready``; its completion."""
        dev = self.dev
        if not self.analytic:
            return dev._book_reads(MemRequest(addr, size), dev.env.now, ready)
        xfer, fixed = self.cost(size)
        _, end = dev._analytic.reserve(ready, xfer)
        return end + fixed

    def cost(self, size: int) -> tuple[int, int]:
        """Analytic level: (FIFO transfer, fixed latency beyond it) of a ``size``-byte read."""
        cost = self._cost.get(size)
        if cost is None:
            dev = self.dev
            xfer = transfer_ps(size, dev.peak_bandwidth_Bps())
            cost = self._cost[size] = (xfer, max(0, dev.unloaded_latency_ps(size) - xfer))
        return cost

    def book_run(self, size: int, ready0: int, count: int, busy_until: int) -> bool:
        """Book ``count`` reads of ``size`` bytes, the k-th ready at ``ready0 + k x transfer``, in one
        step, when the twin's FIFO is busy until exactly ``busy_until`` and that is no earlier than
        ``ready0``: each read then starts when the one before ends (what ``count`` calls of
        :meth:`book` would do). False, booking nothing, otherwise (and at the transaction level)."""
        fifo = self.dev._analytic
        if not self.analytic or fifo.busy_until != busy_until or busy_until < ready0:
            return False
        xfer = self.cost(size)[0]
        fifo.busy_until += count * xfer
        fifo.busy_ps += count * xfer
        fifo.waited_ps += count * (busy_until - ready0)
        fifo.jobs += count
        return True

    def account(self, addr: int, size: int, unit: int) -> None:
        """Counters and energy of reads of ``unit``-aligned chunks covering ``[addr, addr + size)``,
        issued in address order (analytic level; the transaction level booked them in :meth:`book`).

        The same as one request per chunk: the first chunk may hit what the previous read left in
        the page registers; later chunks only follow their own disjoint predecessor (no hits); the
        registers then hold what the last chunk left.
        """
        if not self.analytic:
            return
        dev = self.dev
        end = addr + size
        first_end = min(end, (addr // unit + 1) * unit)
        dev._account_read(MemRequest(addr, first_end - addr), registers=True)
        if first_end >= end:
            return
        p, st = dev.params, dev.stat
        page, sector = p.page_size, p.sector_size
        last = max(first_end, (end - 1) // unit * unit)
        n_mid = (last - first_end) // unit  # whole chunks between the first and the last
        if n_mid and (unit % page or unit % sector):
            for a in range(first_end, last, unit):
                dev._account_read(MemRequest(a, unit))
        elif n_mid:
            # each whole chunk senses unit / page pages and moves unit bytes; the float counters get
            # the same term added once per chunk, in order, as chunk-by-chunk accounting would
            array_pj = unit // page * dev._page_bits * p.read_energy_per_bit
            io_pj = unit * 8 * (p.channel_energy_per_bit + p.interface_energy_per_bit)
            st.pages_read.add(unit // page * n_mid)
            st.channel_bytes.add(unit * n_mid)
            st.interface_bytes.add(unit * n_mid)
            for counter, term in (
                (st.array_energy_pj, array_pj),
                (st.io_energy_pj, io_pj),
                (st.energy_pj, array_pj + io_pj),
            ):
                value = counter.value
                for _ in range(n_mid):
                    value += term
                counter.value = value
        dev._account_read(MemRequest(last, end - last))
        dev._last_read = (last // page, (end - 1) // page)

    def record(self, nbytes: int, latencies_ps: Runs) -> None:
        """Device read stats of the booked reads: count, bytes and each one's latency."""
        st = self.dev.stat
        st.reads.add(latencies_ps.total())
        st.bytes_read.add(nbytes)
        latencies_ps.observe(st.read_latency_ns)


class Runs:
    """Values in ps, in order, kept as runs of equal values: what a batched stream observes."""

    __slots__ = ("counts", "values")

    def __init__(self) -> None:
        self.values: list[int] = []
        self.counts: list[int] = []

    def add(self, value: int, count: int = 1) -> None:
        if count <= 0:
            return
        values = self.values
        if values and values[-1] == value:
            self.counts[-1] += count
        else:
            values.append(value)
            self.counts.append(count)

    def total(self) -> int:
        return sum(self.counts)

    def observe(self, tally: Any) -> None:
        """``tally.observe(v / PS_PER_NS)`` for each value in order (the same float sums), without a
        call each."""
        n, total, total_sq, lo, hi = tally.n, tally.total, tally.total_sq, tally.lo, tally.hi
        samples = tally.samples if tally.keep else None
        for v, k in zip(self.values, self.counts, strict=True):
            x = v / PS_PER_NS
            xx = x * x
            n += k
            for _ in range(k):
                total += x
                total_sq += xx
            if x < lo:
                lo = x
            if x > hi:
                hi = x
            if samples is not None:
                samples.extend([x] * k)
        tally.n, tally.total, tally.total_sq, tally.lo, tally.hi = n, total, total_sq, lo, hi
