"""3D DRAM stack: HBM-like and logic-on-DRAM stacks (also usable for LPDDR5X).

Organisation: ``channels`` (vaults) x ``pseudo_channels`` x ``bank_groups`` x ``banks_per_group`` banks
of ``rows`` rows of ``row_bytes``. A pseudo-channel (a *lane*) is the unit that owns banks, timing state
and a share of its channel's TSV bus: ``tsv_width_bits / pseudo_channels`` data TSVs at ``tsv_rate``
each. A data burst (``burst_bytes``, one column command) crosses those lanes in ``tBURST``, so the stack
peak is ``channels x tsv_width_bits x tsv_rate`` (the analytic twin).

Three levels (``fidelity``):

* ``detailed``: one FR-FCFS controller process per lane issuing ACT/PRE/RD/WR/REF/REFSB at the earliest
  legal time (one event per command; no cycle polling). Optional command trace for
  :mod:`sim.memory.dram_checker`. Row and column commands use separate command buses (one each per tCK),
  as in HBM.
* ``transaction``: a request's row runs (see :mod:`sim.memory.address_mapping`) timed in closed form per
  lane with open-row state and busy-until bookkeeping for banks, ACT budget (tRRD/tFAW) and TSV lanes;
  one timeout per request. A large request (many rows per bank) is evaluated per bank rather than per
  row run: the mapping makes each bank's share a run of consecutive rows, so the same closed form
  costs the same for 2 MB as for 64 MB, with identical results.
* ``analytic``: the base class FIFO at the twin's peak plus :meth:`Dram3D.unloaded_latency_ps`.

Refresh: ``all_bank`` blocks a lane for tRFC every tREFI; ``per_bank`` refreshes one bank of a lane
every tREFI / banks (each bank once per tREFI), choosing an idle bank when it can, which is how HBM3
hides refresh. An idle controller sleeps; when work arrives it first replays the refreshes that fell
due while it slept, at their due times (nothing else used the lane meanwhile, so this is exact and an
idle simulation never spins).

Energy: per ACT (with its PRE), per bit read or written (array + I/O), per bit crossing the TSVs and
per refresh; accumulated into ``energy_pj`` and per-cause counters when requests complete.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar

import numpy as np
import simpy

from sim.core.component import Component
from sim.core.errors import ConfigError, MemwallError
from sim.core.params import ParamSet, non_negative, one_of, param, positive
from sim.core.registry import register
from sim.core.units import BANDWIDTH, COUNT, ENERGY, SIZE, TIME
from sim.memory.address_mapping import AddressMapping, Geometry, get_mapping, parse_order
from sim.memory.device import DeviceParams, MemoryDevice, MemRequest
from sim.memory.dram_timing import DramTiming
from sim.stats import counter, gauge


@dataclass(frozen=True)
class Dram3DParams(DeviceParams):
    """Organisation, TSV bus, JEDEC-style timings (durations, rounded up to tCK), controller, energy."""

    # -- organisation ---------------------------------------------------------------------------
    channels: int = param(
        16, COUNT, "independent channels (vaults), each with its own TSV bus", check=positive
    )
    pseudo_channels: int = param(
        2,
        COUNT,
        "pseudo-channels per channel; each owns its banks and an equal share of the TSVs",
        check=positive,
    )
    bank_groups: int = param(4, COUNT, "bank groups per pseudo-channel", check=positive)
    banks_per_group: int = param(4, COUNT, "banks per bank group", check=positive)
    rows: int = param(32768, COUNT, "rows per bank", check=positive)
    row_bytes: int = param("1KiB", SIZE, "row (page) size of one bank of one pseudo-channel", check=positive)
    burst_bytes: int = param("32B", SIZE, "bytes moved by one column command (one burst)", check=positive)
    address_mapping: str = param(
        "RoBaCoBgPcCh", str, "registered address mapping (kind address_mapping), fields MSB first"
    )
    page_policy: str = param(
        "open",
        str,
        "open: a row stays open until another row of its bank is needed; closed: precharge as soon as "
        "no queued request hits the open row",
        check=one_of("open", "closed"),
    )
    # -- TSV bus ------------------------------------------------------------------------------------
    tsv_width_bits: int = param(
        64, COUNT, "data TSVs per channel (split across its pseudo-channels)", check=positive
    )
    tsv_rate: float = param("6.4Gb/s", BANDWIDTH, "transfer rate per data TSV (per pin)", check=positive)
    # -- clock and timings (rounded up to whole tCK) -------------------------------------------------
    tCK: int = param(
        "0.625ns", TIME, "command clock period; timings are rounded up to whole tCK", check=positive
    )
    tCL: int = param("14ns", TIME, "read latency: RD command to first data (CL)", check=positive)
    tCWL: int = param("4ns", TIME, "write latency: WR command to first data (CWL)", check=positive)
    tRCD: int = param("14ns", TIME, "ACT to RD/WR of the same bank", check=positive)
    tRP: int = param("14ns", TIME, "PRE to ACT of the same bank", check=positive)
    tRAS: int = param("34ns", TIME, "ACT to PRE of the same bank", check=positive)
    tRC: int = param("0ns", TIME, "ACT to ACT of the same bank; 0 means tRAS + tRP", check=non_negative)
    tCCD_S: int = param("1.25ns", TIME, "column to column, different bank group", check=positive)
    tCCD_L: int = param("2.5ns", TIME, "column to column, same bank group", check=positive)
    tRRD_S: int = param("4ns", TIME, "ACT to ACT, different bank group", check=positive)
    tRRD_L: int = param("6ns", TIME, "ACT to ACT, same bank group", check=positive)
    tFAW: int = param("30ns", TIME, "window holding at most four ACTs per pseudo-channel", check=positive)
    tWR: int = param("16ns", TIME, "write recovery: end of write data to PRE", check=positive)
    tWTR_S: int = param("6ns", TIME, "end of write data to RD, different bank group", check=positive)
    tWTR_L: int = param("8ns", TIME, "end of write data to RD, same bank group", check=positive)
    tRTP: int = param("6ns", TIME, "RD to PRE of the same bank", check=positive)
    tRTW: int = param(
        "1.25ns",
        TIME,
        "data-bus turnaround: idle gap between read data and following write data",
        check=non_negative,
    )
    tREFI: int = param(
        "3.9us", TIME, "refresh interval (all-bank REF per pseudo-channel, or per bank)", check=positive
    )
    tRFC: int = param(
        "350ns", TIME, "all-bank refresh: REF to next ACT of the pseudo-channel", check=positive
    )
    tRFCsb: int = param("200ns", TIME, "per-bank refresh: REFSB to next ACT of that bank", check=positive)
    refresh_mode: str = param(
        "per_bank",
        str,
        "per_bank (REFSB, one bank every tREFI/banks), all_bank (REF every tREFI) or off",
        check=one_of("per_bank", "all_bank", "off"),
    )
    refresh_postpone: int = param(
        8,
        COUNT,
        "refreshes that may be postponed (JEDEC: 8); bounds the checker's interval rule",
        check=non_negative,
    )
    # -- controller ---------------------------------------------------------------------------------
    queue_depth: int = param(
        32, COUNT, "FR-FCFS scheduling window per pseudo-channel, in bursts", check=positive
    )
    row_hit_cap: int = param(
        16,
        COUNT,
        "FR-FCFS starvation cap: hits served past an older request to the same bank",
        check=positive,
    )
    # -- energy -------------------------------------------------------------------------------------
    act_energy: float = param("576pJ", ENERGY, "one activation and its precharge", check=non_negative)
    read_energy_per_bit: float = param("1.57pJ", ENERGY, "per bit read (array + I/O)", check=non_negative)
    write_energy_per_bit: float = param("2.09pJ", ENERGY, "per bit written (array + I/O)", check=non_negative)
    tsv_energy_per_bit: float = param("0.95pJ", ENERGY, "per bit crossing the TSVs", check=non_negative)
    refresh_energy: float = param(
        "30nJ",
        ENERGY,
        "one all-bank refresh of one pseudo-channel (a per-bank one costs this / banks)",
        check=non_negative,
    )
    command_trace: bool = param(False, bool, "record every DRAM command in device.trace (detailed level)")

    def validate(self) -> None:
        if self.row_bytes % self.burst_bytes:
            raise ConfigError(
                f"row_bytes {self.row_bytes} must be a multiple of burst_bytes {self.burst_bytes}",
                where="row_bytes",
            )
        if self.tsv_width_bits % self.pseudo_channels:
            raise ConfigError(
                f"tsv_width_bits {self.tsv_width_bits} must split evenly over {self.pseudo_channels} "
                "pseudo-channels",
                where="tsv_width_bits",
            )
        if self.tRC and self.tRC < self.tRAS:
            raise ConfigError(f"tRC {self.tRC} ps must be >= tRAS {self.tRAS} ps", where="tRC")
        if self.refresh_mode == "all_bank" and self.tRFC >= self.tREFI:
            raise ConfigError("tRFC must be shorter than tREFI (the lane would never be free)", where="tRFC")
        if self.refresh_mode == "per_bank" and self.tREFI // (self.bank_groups * self.banks_per_group) <= 0:
            raise ConfigError("tREFI too short to refresh every bank once per tREFI", where="tREFI")
        try:
            parse_order(get_mapping(self.address_mapping).ORDER)
        except MemwallError as exc:
            raise ConfigError(exc.message, where="address_mapping") from None


class TsvBus(Component):
    """One channel's TSV data bus. Bursts of its pseudo-channels cross their share of its lanes."""

    @dataclass(frozen=True)
    class Params(ParamSet):
        width_bits: int = param(64, COUNT, "data TSVs of the channel", check=positive)
        rate: float = param("6.4Gb/s", BANDWIDTH, "transfer rate per TSV", check=positive)
        lanes: int = param(
            2, COUNT, "pseudo-channels sharing the TSVs (each owns width / lanes)", check=positive
        )

    STATS = (
        counter("busy_ps", "ps", "lane time carrying data, summed over the channel's pseudo-channel lanes"),
        counter("bytes", "B", "bytes carried (whole bursts)"),
        gauge("occupancy", "ratio", "busy_ps / (lanes x elapsed time); set at finalize"),
    )

    @property
    def peak_Bps(self) -> float:
        return self.params.width_bits * self.params.rate

    def record(self, busy_ps: int, nbytes: int) -> None:
        self.stat.busy_ps.add(busy_ps)
        self.stat.bytes.add(nbytes)

    def finalize(self) -> None:
        now = self.env.now
        occ = self.stat.busy_ps.value / (self.params.lanes * now) if now > 0 else 0.0
        self.stat.occupancy.set(occ)


# Internal event counts (indices into Dram3D._n); flushed into stats and energy when requests finish.
_ACT, _PRE, _CONFLICT, _HIT, _RD, _WR, _REF, _REFSB = range(8)
_N_COUNTS = 8


@register("memory", "dram3d")
class Dram3D(MemoryDevice):
    """A 3D DRAM stack (HBM3/3E/4, logic-on-DRAM) or LPDDR5X package; see the module docstring."""

    Params: ClassVar[type[ParamSet]] = Dram3DParams
    STATS = (
        counter("bursts_read", "bursts", "column reads"),
        counter("bursts_written", "bursts", "column writes"),
        counter("activates", "ACTs", "row activations"),
        counter("precharges", "PREs", "precharges (detailed level)"),
        counter("refreshes", "REFs", "refresh commands (all-bank and per-bank)"),
        counter("row_hits", "bursts", "column accesses that needed no activation"),
        counter("row_misses", "ACTs", "activations of a closed bank"),
        counter("row_conflicts", "ACTs", "activations that first had to close another row"),
        counter("energy_act_pj", "pJ", "activation + precharge energy"),
        counter("energy_read_pj", "pJ", "read energy (array + I/O)"),
        counter("energy_write_pj", "pJ", "write energy (array + I/O)"),
        counter("energy_tsv_pj", "pJ", "energy of bits crossing the TSVs"),
        counter("energy_refresh_pj", "pJ", "refresh energy"),
    )

    params: Dram3DParams

    def build(self) -> None:
        super().build()
        p = self.params
        self.geometry = Geometry(
            channels=p.channels,
            pseudo_channels=p.pseudo_channels,
            bank_groups=p.bank_groups,
            banks_per_group=p.banks_per_group,
            rows=p.rows,
            columns=p.row_bytes // p.burst_bytes,
            burst_bytes=p.burst_bytes,
        )
        self.mapping: AddressMapping = get_mapping(p.address_mapping)(self.geometry)
        self.timing = DramTiming.from_params(p)
        self.tsv = [
            TsvBus(
                self.sim,
                f"tsv{c}",
                TsvBus.Params(width_bits=p.tsv_width_bits, rate=p.tsv_rate, lanes=p.pseudo_channels),
                parent=self,
            )
            for c in range(p.channels)
        ]
        self.trace: list[tuple[int, int, int, int, int, str, int, int]] | None = (
            [] if p.command_trace else None
        )
        g = self.geometry
        self._burst_bits = p.burst_bytes * 8
        self._n = [0] * _N_COUNTS
        self._flushed = [0] * _N_COUNTS
        self._lane_bursts = [0] * g.lanes  # data bursts per lane (TSV stats)
        self._tsv_flushed = [0] * g.lanes
        self._ref_counted = 0  # refreshes accounted in closed form (transaction / analytic)
        self._ref_phases: tuple[np.ndarray, int, float] | None = None
        t = self.timing
        if t.refresh_mode != "off":
            per_bank = t.refresh_mode == "per_bank"
            period = t.tREFI // g.banks_per_lane if per_bank else t.tREFI
            per_ref = p.refresh_energy / g.banks_per_lane if per_bank else p.refresh_energy
            phases = np.array([first_refresh_ps(i, g.lanes, period) for i in range(g.lanes)], dtype=np.int64)
            self._ref_phases = (phases, period, per_ref)
        self._latency_cache: dict[tuple[int, bool], int] = {}
        self._lanes: list[_LaneController] | None = None
        self._txn: _TransactionModel | None = None
        if p.fidelity == "detailed":
            self._lanes = [_LaneController(self, i) for i in range(g.lanes)]
        elif p.fidelity == "transaction":
            self._txn = _TransactionModel(self, refresh=True)

    # -- analytic twin ----------------------------------------------------------------------------
    @property
    def capacity_bytes(self) -> int:
        return self.geometry.capacity_bytes

    def peak_bandwidth_Bps(self, write: bool = False) -> float:
        """channels x TSV width x per-pin rate (bytes/s): what the TSV buses can carry at most."""
        p = self.params
        return p.channels * p.tsv_width_bits * p.tsv_rate

    def unloaded_latency_ps(self, size: int, write: bool = False) -> int:
        """Latency of a ``size``-byte request at address 0 into an idle stack, refresh ignored.

        Every bank starts precharged (closed), so each lane's first data arrives tRCD + CL (CWL for
        writes) after the request; the lane then moves its bursts at the column interval, or as fast as
        tRRD/tFAW let it open the rows it needs. For one burst this is exactly tRCD + tCL + tBURST.
        """
        key = (size, write)
        cached = self._latency_cache.get(key)
        if cached is None:
            nbursts = -(-size // self.geometry.burst_bytes)
            scratch = _TransactionModel(self, refresh=False)
            cached = scratch.serve(0, 0, nbursts, write)[0]
            self._latency_cache[key] = cached
        return cached

    # -- levels -----------------------------------------------------------------------------------
    def _burst_range(self, req: MemRequest) -> tuple[int, int]:
        bb = self.geometry.burst_bytes
        return req.addr // bb, -(-(req.addr + req.size) // bb)

    def run(self) -> None:
        self._start_controllers()

    def _start_controllers(self) -> None:
        if self._lanes is not None and self._lanes[0].proc is None:
            for lane in self._lanes:
                lane.proc = self.env.process(lane.loop())

    def serve_detailed(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        self._start_controllers()
        assert self._lanes is not None
        env = self.env
        b0, b1 = self._burst_range(req)
        ctx = _Request(env.event(), b1 - b0)
        for lane, (banks, rows, cols) in self.mapping.bursts_by_lane(b0, b1).items():
            self._lanes[lane].enqueue(ctx, banks, rows, cols, req.write)
        yield ctx.event
        if ctx.done_at > env.now:
            yield env.timeout(ctx.done_at - env.now)
        self._flush()

    def serve_transaction(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        assert self._txn is not None
        env = self.env
        b0, b1 = self._burst_range(req)
        done, bursts, acts, conflicts = self._txn.serve(env.now, b0, b1, req.write)
        n = self._n
        n[_WR if req.write else _RD] += bursts
        n[_ACT] += acts
        n[_CONFLICT] += conflicts
        n[_HIT] += bursts - acts
        self._flush(refresh_by_time=True)
        if done > env.now:
            yield env.timeout(done - env.now)

    def account_analytic(self, req: MemRequest) -> None:
        """Base twin FIFO; energy as for a stream: one activation per row_bytes moved (at least one)."""
        b0, b1 = self._burst_range(req)
        n = self._n
        acts = -(-(b1 - b0) // self.geometry.columns)
        n[_WR if req.write else _RD] += b1 - b0
        n[_ACT] += acts
        n[_HIT] += b1 - b0 - acts
        self._flush(refresh_by_time=True)

    # -- stats and energy ---------------------------------------------------------------------------
    def _flush(self, refresh_by_time: bool = False) -> None:
        """Turn the internal event counts since the last flush into counters and energy."""
        p, n, done, st = self.params, self._n, self._flushed, self.stat
        d = [n[i] - done[i] for i in range(_N_COUNTS)]
        self._flushed = list(n)
        bits = self._burst_bits
        e_act = d[_ACT] * p.act_energy
        e_rd = d[_RD] * bits * p.read_energy_per_bit
        e_wr = d[_WR] * bits * p.write_energy_per_bit
        e_tsv = (d[_RD] + d[_WR]) * bits * p.tsv_energy_per_bit
        e_ref = (d[_REF] + d[_REFSB] / self.geometry.banks_per_lane) * p.refresh_energy
        refs = d[_REF] + d[_REFSB]
        if refresh_by_time and self._ref_phases is not None:
            due = self._refreshes_due(self.env.now)
            refs += due - self._ref_counted
            e_ref += (due - self._ref_counted) * self._ref_phases[2]
            self._ref_counted = due
        st.bursts_read.add(d[_RD])
        st.bursts_written.add(d[_WR])
        st.activates.add(d[_ACT])
        st.precharges.add(d[_PRE])
        st.refreshes.add(refs)
        st.row_hits.add(d[_HIT])
        st.row_misses.add(d[_ACT] - d[_CONFLICT])
        st.row_conflicts.add(d[_CONFLICT])
        st.energy_act_pj.add(e_act)
        st.energy_read_pj.add(e_rd)
        st.energy_write_pj.add(e_wr)
        st.energy_tsv_pj.add(e_tsv)
        st.energy_refresh_pj.add(e_ref)
        st.energy_pj.add(e_act + e_rd + e_wr + e_tsv + e_ref)

    def _refreshes_due(self, now: int) -> int:
        """Refresh commands due in the whole stack up to ``now`` (closed form; lanes are staggered)."""
        assert self._ref_phases is not None
        phases, period, _ = self._ref_phases
        due = now >= phases
        return int(((now - phases[due]) // period + 1).sum())

    def finalize(self) -> None:
        if self._lanes is not None:
            for lane in self._lanes:
                lane.count_idle_refreshes(self.env.now)
            self._flush()
        else:
            self._flush(refresh_by_time=True)
        pc = self.geometry.pseudo_channels
        counts = self._txn.lane_bursts.tolist() if self._txn is not None else list(self._lane_bursts)
        tburst, bb = self.timing.tBURST, self.geometry.burst_bytes
        for c, bus in enumerate(self.tsv):
            lanes = slice(c * pc, (c + 1) * pc)
            nb = sum(counts[lanes]) - sum(self._tsv_flushed[lanes])
            bus.record(nb * tburst, nb * bb)
        self._tsv_flushed = counts


def first_refresh_ps(lane: int, lanes: int, period: int) -> int:
    """Due time of a lane's first refresh: lanes are staggered evenly over one period."""
    return ((lane + 1) * period) // lanes


class _Request:
    """Completion bookkeeping of one detailed-level request."""

    __slots__ = ("done_at", "event", "remaining")

    def __init__(self, event: simpy.Event, bursts: int) -> None:
        self.event = event
        self.remaining = bursts
        self.done_at = 0


# Command kinds of the detailed controller. _K_PRE_IDLE: closed-page precharge of a bank nobody is
# waiting for; _K_REF_DUE: no command, just a wake-up when a refresh falls due while the lane is busy.
_K_COL, _K_ACT, _K_PRE, _K_PRE_IDLE, _K_REF, _K_REFSB, _K_REF_DUE = range(7)
_IDLE, _TIMED, _RUNNING = range(3)
_NEVER = np.iinfo(np.int64).max
# The transaction model evaluates a request per bank (not per row run) once the banks it touches hold
# at least _BANK_SWEEP_ROWS of its rows each on average and it has at least _BANK_MIN_RUNS row runs
# (measured crossover: the per-run path costs ~70 us + ~0.1 us per run, the per-bank one ~120 us).
_BANK_SWEEP_ROWS = 2
_BANK_MIN_RUNS = 1024


class _LaneController:
    """FR-FCFS controller of one pseudo-channel: bank state machines and forward timing registers.

    Each register holds the earliest time a command class may issue (``b_*`` per bank, ``g_*`` per bank
    group, ``l_*`` per lane); issuing a command pushes the registers it constrains. A queued burst is
    ``(row, column, write, request, seq)``; ``seq`` orders by age.
    """

    def __init__(self, dev: Dram3D, index: int) -> None:
        p, g, t = dev.params, dev.geometry, dev.timing
        self.dev = dev
        self.env = dev.env
        self.t = t
        self.index = index
        self.channel = index // g.pseudo_channels
        self.pc = index % g.pseudo_channels
        self.bpg = g.banks_per_group
        nb = self.nb = g.banks_per_lane
        self.bg_of = [b // g.banks_per_group for b in range(nb)]
        self.cap = p.queue_depth
        # The window is topped up in batches, when it falls to 3/4 of queue_depth: a third fewer calls
        # on the hot path, and the window still holds 3/4 to all of queue_depth bursts.
        self.low_water = max(0, p.queue_depth - max(1, p.queue_depth // 4))
        self.hit_cap = p.row_hit_cap
        self.closed_page = p.page_policy == "closed"
        self.trace = dev.trace
        self.proc: simpy.Process | None = None
        self.state = _RUNNING
        self.wake = self.env.event()
        # queues
        self.bank_q: list[deque[tuple[int, int, bool, _Request, int]]] = [deque() for _ in range(nb)]
        self.active: set[int] = set()
        self.open_idle: set[int] = set()
        self.queued = 0
        self.pending: deque[list[Any]] = deque()
        self.seq = 0
        # bank state and timing registers
        self.open_row = [-1] * nb
        self.hit_streak = [0] * nb
        self.b_act = [0] * nb
        self.b_pre = [0] * nb
        self.b_col = [0] * nb
        self.b_used = [-1] * nb  # time of the bank's last column command (refresh victim choice)
        self.fresh = [False] * nb  # activated, no column command yet (its first access is a miss)
        self.conflicted = [False] * nb  # closed to make way for another row (next ACT is a conflict)
        ngr = g.bank_groups
        self.g_act = [0] * ngr
        self.g_rd = [0] * ngr
        self.g_wr = [0] * ngr
        self.l_act = self.l_rd = self.l_wr = 0
        self.row_bus = self.col_bus = 0
        self.faw: deque[int] = deque(maxlen=4)
        self.rd_ready = 0  # earliest RD so that its data follows the bus's last data
        self.wr_ready = 0
        # refresh
        self.ref_mode = t.refresh_mode
        if self.ref_mode == "all_bank":
            self.ref_period = t.tREFI
        elif self.ref_mode == "per_bank":
            self.ref_period = t.tREFI // nb
        else:
            self.ref_period = 0
        lanes = g.lanes
        self.ref_due = first_refresh_ps(index, lanes, self.ref_period) if self.ref_period else -1
        self.ref_pending = False
        self.ref_target = -1
        self.ref_left: set[int] = set(range(nb))

    # -- feeding -----------------------------------------------------------------------------------
    def enqueue(self, ctx: _Request, banks: list[int], rows: list[int], cols: list[int], write: bool) -> None:
        self.pending.append([ctx, banks, rows, cols, 0, write])
        self._refill()
        if self.state == _IDLE:
            self.state = _RUNNING
            self.wake.succeed()
        elif self.state == _TIMED:
            self.state = _RUNNING
            assert self.proc is not None
            self.proc.interrupt()

    def _refill(self) -> None:
        pending, bank_q, active = self.pending, self.bank_q, self.active
        room = self.cap - self.queued
        while room > 0 and pending:
            feeder = pending[0]
            ctx, banks, rows, cols, pos, write = feeder
            end = min(len(banks), pos + room)
            seq = self.seq
            for i in range(pos, end):
                b = banks[i]
                seq += 1
                bank_q[b].append((rows[i], cols[i], write, ctx, seq))
                active.add(b)
                self.open_idle.discard(b)
            self.seq = seq
            self.queued += end - pos
            room -= end - pos
            if end == len(banks):
                pending.popleft()
            else:
                feeder[4] = end

    # -- the controller process ---------------------------------------------------------------------
    def loop(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            if not self.queued and not self.open_idle and not self.ref_pending:
                self.state = _IDLE
                yield self.wake
                self.wake = env.event()
                self._catch_up_refresh(env.now)
                continue
            cand = self._choose(env.now)
            if cand is None:  # pragma: no cover - defensive: nothing issuable means nothing queued
                self.state = _IDLE
                yield self.wake
                self.wake = env.event()
                continue
            when = cand[0]
            if when > env.now:
                self.state = _TIMED
                try:
                    yield env.timeout(when - env.now)
                except simpy.Interrupt:
                    continue  # new bursts: choose again
                self.state = _RUNNING
            self._issue(cand)

    def _choose(self, now: int) -> tuple[int, int, int, int, int, int] | None:
        """Earliest legal command; ties: refresh, then row hits, then the oldest (FR-FCFS).

        Returns ``(time, priority, seq, kind, bank, queue index)``. Lane-wide lower bounds are hoisted
        out of the per-bank loop: this runs once per command, so it is the simulator's hot path.
        """
        if self.ref_period and not self.ref_pending and self.ref_due <= now:
            self._start_refresh()
        if self.ref_pending and self.ref_mode == "all_bank":
            return self._refresh_candidate(now)
        target = self.ref_target if self.ref_pending else -1
        col_bus = self.col_bus if self.col_bus > now else now
        rd_lane = self.l_rd if self.l_rd > col_bus else col_bus
        if self.rd_ready > rd_lane:
            rd_lane = self.rd_ready
        wr_lane = self.l_wr if self.l_wr > col_bus else col_bus
        if self.wr_ready > wr_lane:
            wr_lane = self.wr_ready
        row_lane = self.row_bus if self.row_bus > now else now
        act_lane = self.l_act if self.l_act > row_lane else row_lane
        faw = self.faw
        if len(faw) == 4 and faw[0] + self.t.tFAW > act_lane:
            act_lane = faw[0] + self.t.tFAW
        open_row, bank_q, bg_of = self.open_row, self.bank_q, self.bg_of
        b_col, b_pre, b_act = self.b_col, self.b_pre, self.b_act
        g_rd, g_wr, g_act = self.g_rd, self.g_wr, self.g_act
        hit_streak, hit_cap = self.hit_streak, self.hit_cap
        best_t = best_p = best_s = best_k = best_b = best_i = -1
        for b in self.active:
            if b == target:
                continue
            q = bank_q[b]
            orow = open_row[b]
            if orow >= 0:
                if q[0][0] == orow:
                    i = 0
                else:
                    i = 1
                    for bu in islice(q, 1, None):
                        if bu[0] == orow:
                            break
                        i += 1
                if i < len(q) and (i == 0 or hit_streak[b] < hit_cap):
                    bu = q[i]
                    if bu[2]:
                        x, w = wr_lane, g_wr[bg_of[b]]
                    else:
                        x, w = rd_lane, g_rd[bg_of[b]]
                    if w > x:
                        x = w
                    w = b_col[b]
                    if w > x:
                        x = w
                    p, seq, k = 0, bu[4], _K_COL
                else:
                    x = b_pre[b]
                    if x < row_lane:
                        x = row_lane
                    p, seq, k, i = 1, q[0][4], _K_PRE, 0
            else:
                x = b_act[b]
                if x < act_lane:
                    x = act_lane
                w = g_act[bg_of[b]]
                if w > x:
                    x = w
                p, seq, k, i = 1, q[0][4], _K_ACT, 0
            if best_k < 0 or x < best_t or (x == best_t and (p < best_p or (p == best_p and seq < best_s))):
                best_t, best_p, best_s, best_k, best_b, best_i = x, p, seq, k, b, i
        best = (best_t, best_p, best_s, best_k, best_b, best_i) if best_k >= 0 else None
        for b in self.open_idle:
            if b == target:
                continue
            x = b_pre[b]
            cand = (x if x > row_lane else row_lane, 2, 0, _K_PRE_IDLE, b, 0)
            if best is None or cand < best:
                best = cand
        if target >= 0:
            cand = self._refresh_candidate(now)
            if best is None or cand < best:
                best = cand
        elif self.ref_period and best is not None and self.ref_due < best[0]:
            best = (self.ref_due, -1, 0, _K_REF_DUE, -1, 0)
        return best

    # -- refresh ---------------------------------------------------------------------------------------
    def _start_refresh(self) -> None:
        self.ref_pending = True
        if self.ref_mode == "per_bank":
            # A bank of this round nobody waits for, the most recently used first (a sweep comes back
            # to it last); else the one with the fewest queued bursts.
            q, used = self.bank_q, self.b_used
            self.ref_target = min(self.ref_left, key=lambda b: (len(q[b]), -used[b], b))

    def _refresh_candidate(self, floor: int) -> tuple[int, int, int, int, int, int]:
        """Next command of the pending refresh, no earlier than ``floor``."""
        open_row = self.open_row
        if self.ref_mode == "all_bank":
            best = None
            for b in range(self.nb):
                if open_row[b] >= 0:
                    cand = (max(self.b_pre[b], self.row_bus, floor), -1, 0, _K_PRE, b, 0)
                    if best is None or cand < best:
                        best = cand
            if best is not None:
                return best
            return (max(max(self.b_act), self.row_bus, floor), -1, 0, _K_REF, -1, 0)
        b = self.ref_target
        if open_row[b] >= 0:
            return (max(self.b_pre[b], self.row_bus, floor), -1, 0, _K_PRE, b, 0)
        return (max(self.b_act[b], self.row_bus, floor), -1, 0, _K_REFSB, b, 0)

    def _catch_up_refresh(self, now: int) -> None:
        """Replay, at their due times, the refreshes that fell due while the lane was idle."""
        if self.ref_mode == "off":
            return
        period = self.ref_period
        if self.trace is None and self.ref_due + 2 * period < now:
            # Long idle and nobody checks the trace: count the early ones, replay only the last two.
            skip = (now - self.ref_due) // period - 1
            self.dev._n[_REF if self.ref_mode == "all_bank" else _REFSB] += skip
            self.ref_due += skip * period
            self.ref_left = set(range(self.nb))
        while self.ref_due <= now:
            due = self.ref_due
            if not self.ref_pending:
                self._start_refresh()
            while self.ref_pending:
                cand = self._refresh_candidate(due)
                if cand[0] > now:
                    return  # the normal loop finishes it
                self._issue(cand)

    def count_idle_refreshes(self, now: int) -> None:
        """At the end of a run: count (energy only) the refreshes due since the lane went idle."""
        if self.ref_mode == "off" or self.ref_due > now:
            return
        n = (now - self.ref_due) // self.ref_period + 1
        self.dev._n[_REF if self.ref_mode == "all_bank" else _REFSB] += n
        self.ref_due += n * self.ref_period

    # -- issuing ---------------------------------------------------------------------------------------
    def _issue(self, cand: tuple[int, int, int, int, int, int]) -> None:
        when, _, _, kind, b, idx = cand
        t = self.t
        dev = self.dev
        if kind == _K_COL:
            q = self.bank_q[b]
            row, col, write, ctx, _ = q[idx]
            del q[idx]
            self.queued -= 1
            if not q:
                self.active.discard(b)
                if self.closed_page:
                    self.open_idle.add(b)
            if idx:
                self.hit_streak[b] += 1
            if self.fresh[b]:
                self.fresh[b] = False
            else:
                dev._n[_HIT] += 1
            bg = self.bg_of[b]
            if write:
                data_end = when + t.tCWL + t.tBURST
                x = data_end + t.tWR
                if x > self.b_pre[b]:
                    self.b_pre[b] = x
                x = when + t.tCCD_L
                if x > self.g_wr[bg]:
                    self.g_wr[bg] = x
                x = when + t.tCCD_S
                if x > self.l_wr:
                    self.l_wr = x
                x = data_end + t.tWTR_L
                if x > self.g_rd[bg]:
                    self.g_rd[bg] = x
                x = data_end + t.tWTR_S
                if x > self.l_rd:
                    self.l_rd = x
                self.rd_ready = data_end - t.tCL
                self.wr_ready = data_end - t.tCWL
                dev._n[_WR] += 1
            else:
                data_end = when + t.tCL + t.tBURST
                x = when + t.tRTP
                if x > self.b_pre[b]:
                    self.b_pre[b] = x
                x = when + t.tCCD_L
                if x > self.g_rd[bg]:
                    self.g_rd[bg] = x
                x = when + t.tCCD_S
                if x > self.l_rd:
                    self.l_rd = x
                self.rd_ready = data_end - t.tCL
                self.wr_ready = data_end + t.tRTW - t.tCWL
                dev._n[_RD] += 1
            self.col_bus = when + t.tCK
            self.b_used[b] = when
            dev._lane_bursts[self.index] += 1
            if self.trace is not None:
                self.trace.append(
                    (when, self.channel, self.pc, bg, b % self.bpg, "WR" if write else "RD", row, col)
                )
            if data_end > ctx.done_at:
                ctx.done_at = data_end
            ctx.remaining -= 1
            if not ctx.remaining:
                ctx.event.succeed()
            if self.pending and self.queued <= self.low_water:
                self._refill()
        elif kind == _K_ACT:
            row = self.bank_q[b][0][0]
            bg = self.bg_of[b]
            self.open_row[b] = row
            self.hit_streak[b] = 0
            self.b_col[b] = when + t.tRCD
            self.b_pre[b] = max(self.b_pre[b], when + t.tRAS)
            self.b_act[b] = max(self.b_act[b], when + t.tRC)
            self.g_act[bg] = max(self.g_act[bg], when + t.tRRD_L)
            self.l_act = max(self.l_act, when + t.tRRD_S)
            self.faw.append(when)
            self.row_bus = when + t.tCK
            self.fresh[b] = True
            if self.conflicted[b]:
                self.conflicted[b] = False
                dev._n[_CONFLICT] += 1
            dev._n[_ACT] += 1
            self._trace(when, b, "ACT", row)
        elif kind in (_K_PRE, _K_PRE_IDLE):
            if kind == _K_PRE and self.bank_q[b] and not (self.ref_pending and self._refresh_scope(b)):
                self.conflicted[b] = True
            self._trace(when, b, "PRE", self.open_row[b])
            self.open_row[b] = -1
            self.open_idle.discard(b)
            self.b_act[b] = max(self.b_act[b], when + t.tRP)
            self.row_bus = when + t.tCK
            dev._n[_PRE] += 1
        elif kind == _K_REF:
            end = when + t.tRFC
            self.b_act = [max(x, end) for x in self.b_act]
            self.row_bus = when + t.tCK
            self.ref_pending = False
            self.ref_due += self.ref_period
            dev._n[_REF] += 1
            if self.trace is not None:
                self.trace.append((when, self.channel, self.pc, -1, -1, "REF", -1, -1))
        elif kind == _K_REFSB:
            self.b_act[b] = max(self.b_act[b], when + t.tRFCsb)
            self.row_bus = when + t.tCK
            self.ref_pending = False
            self.ref_target = -1
            self.ref_left.discard(b)
            if not self.ref_left:
                self.ref_left = set(range(self.nb))
            self.ref_due += self.ref_period
            dev._n[_REFSB] += 1
            self._trace(when, b, "REFSB", -1)
        else:  # _K_REF_DUE: the refresh is now due; the next choice serves it
            self._start_refresh()

    def _refresh_scope(self, b: int) -> bool:
        return self.ref_mode == "all_bank" or b == self.ref_target

    def _trace(self, when: int, b: int, cmd: str, row: int) -> None:
        if self.trace is not None:
            self.trace.append((when, self.channel, self.pc, self.bg_of[b], b % self.bpg, cmd, row, -1))


class _TransactionModel:
    """Closed-form timing of whole requests per lane (numpy over row runs, or over banks; no events).

    Per request and lane: ``n`` bursts, ``a`` activations (row runs not hitting the open row; a
    conflict adds tRP), ``g`` bank groups touched. The lane's ACT budget is a busy-until advanced by
    ``max(tRRD_S, tFAW/4)`` per ACT (the long-run limit); within a request the ACTs go four tRRD_S
    apart per tFAW, and the last one's row needs tRCD + CL plus its own bursts at tCCD_L. Each run's
    data can start tRCD + CL after its ACT (CL alone on a hit); the lane's TSV share is a FIFO
    busy-until holding ``tBURST + (n-1) x column interval`` where the interval is
    ``max(tBURST, tCCD_S, tCCD_L/g)`` (``max(tBURST, tCCD_L)`` for one bank group).
    All-bank refresh closes rows and blocks the lane for tRFC every tREFI; per-bank refresh is taken
    as hidden (the detailed controller refreshes idle banks) and only its energy is counted.
    """

    def __init__(self, dev: Dram3D, refresh: bool) -> None:
        g, t = dev.geometry, dev.timing
        self.t = t
        self.mapping = dev.mapping
        self.nb = g.banks_per_lane
        self.bpg = g.banks_per_group
        self.ngroups = g.bank_groups
        nl = self.nl = g.lanes
        self.lanes = np.arange(nl, dtype=np.int64)
        self.lane_busy = np.zeros(nl, dtype=np.int64)
        self.act_busy = np.zeros(nl, dtype=np.int64)
        self.lane_bursts = np.zeros(nl, dtype=np.int64)
        self.open_row = np.full(nl * self.nb, -1, dtype=np.int64)
        self.bank_free = np.zeros(nl * self.nb, dtype=np.int64)
        self.last_use = np.zeros(nl * self.nb, dtype=np.int64)
        self.act_int = max(t.tRRD_S, math.ceil(t.tFAW / 4))
        self.faw4 = max(t.tFAW, 4 * t.tRRD_S)  # four ACTs tRRD_S apart, then the window
        col = [max(t.tBURST, t.tCCD_L)] * 2
        col += [max(t.tBURST, t.tCCD_S, math.ceil(t.tCCD_L / k)) for k in range(2, g.bank_groups + 1)]
        self.col_int = np.array(col, dtype=np.int64)
        self.closed_page = dev.params.page_policy == "closed"
        self.all_bank = refresh and t.refresh_mode == "all_bank"
        self.phase = np.array([first_refresh_ps(i, nl, t.tREFI) for i in range(nl)], dtype=np.int64)
        # Requests of at most this many bursts take the scalar path (same formulas, no numpy overhead).
        self.small_limit = 16
        # Requests spanning at least this many high blocks take the per-bank path (same results; set
        # fast_path False to always take the per-run one).
        self.fast_path = True
        self.bank_sweep_blocks = self._bank_sweep_blocks(dev.mapping)

    @staticmethod
    def _bank_sweep_blocks(mapping: AddressMapping) -> int:
        """High blocks a request must span to take the per-bank path (:meth:`_serve_banks`).

        ``k`` blocks hold about ``k x L`` row runs in at most ``min(k, distinct_blocks) x L`` banks
        (per outer segment). From ``k = _BANK_SWEEP_ROWS x distinct_blocks`` on, each bank touched
        holds that many of the request's rows on average, so per-bank arrays are that many times
        shorter than per-run ones; and from ``_BANK_MIN_RUNS`` runs on, the per-run path's cost
        (which grows with the runs) exceeds the per-bank path's fixed one. Both paths are exact:
        this only picks the cheaper.
        """
        return max(_BANK_SWEEP_ROWS * mapping.distinct_blocks, -(-_BANK_MIN_RUNS // mapping.L))

    def _last_refresh(self, now: int, lane: np.ndarray) -> np.ndarray:
        ph = self.phase[lane]
        return np.where(now >= ph, ph + ((now - ph) // self.t.tREFI) * self.t.tREFI, -1)

    def _out_of_refresh(self, when: np.ndarray, lane: np.ndarray) -> np.ndarray:
        t = self.t
        ph = self.phase[lane]
        start = ph + ((when - ph) // t.tREFI) * t.tREFI
        inside = (when >= ph) & (when < start + t.tRFC)
        return np.where(inside, start + t.tRFC, when)

    def _stretch(self, start: np.ndarray, end: np.ndarray, lane: np.ndarray) -> np.ndarray:
        t = self.t
        ph = self.phase[lane]
        nxt = ph + ((start - ph) // t.tREFI + 1) * t.tREFI
        while True:
            cross = nxt < end
            if not cross.any():
                return end
            end = np.where(cross, end + t.tRFC, end)
            nxt = np.where(cross, nxt + t.tREFI, nxt)

    def serve(self, now: int, b0: int, b1: int, write: bool) -> tuple[int, int, int, int]:
        """Reserve bursts ``[b0, b1)``; returns (completion ps, bursts, activations, conflicts).

        Three exact evaluations of one closed form: Python scalars for small requests, per row run
        (:meth:`_serve_runs`), and per bank (:meth:`_serve_banks`) once the request sweeps its banks
        row after row, so that the cost no longer grows with the request.
        """
        if b1 - b0 <= self.small_limit:
            return self._serve_small(now, b0, b1, write)
        if self.fast_path and self.mapping.blocks_spanned(b0, b1) >= self.bank_sweep_blocks:
            return self._serve_banks(now, b0, b1, write)
        return self._serve_runs(now, b0, b1, write)

    def _serve_runs(self, now: int, b0: int, b1: int, write: bool) -> tuple[int, int, int, int]:
        """The closed form over the request's row runs (numpy, one entry per run)."""
        t = self.t
        lane, bank, row, count = self.mapping.runs(b0, b1)
        key = lane * self.nb + bank
        n = len(key)
        tcas = t.tCWL if write else t.tCL
        state = self.open_row[key]
        if self.all_bank:
            state = np.where(self.last_use[key] < self._last_refresh(now, lane), -1, state)
        if n > 1 and self.mapping.blocks_spanned(b0, b1) > self.mapping.distinct_blocks:
            order = np.argsort(key, kind="stable")
            ks = key[order]
            rs = row[order]
            first = np.empty(n, dtype=bool)
            first[0] = True
            np.not_equal(ks[1:], ks[:-1], out=first[1:])
            prev_s = np.empty(n, dtype=np.int64)
            prev_s[0] = -1
            prev_s[1:] = rs[:-1]
            prev_s = np.where(first, state[order], prev_s)
            if self.closed_page:
                prev_s = np.where(first, prev_s, -1)
            prev = np.empty(n, dtype=np.int64)
            prev[order] = prev_s
            last = np.empty(n, dtype=bool)
            last[-1] = True
            last[:-1] = first[1:]
            last_keys, last_rows = ks[last], rs[last]
        else:
            prev = state
            last_keys, last_rows = key, row
        miss = prev != row
        conflict = miss & (prev >= 0)
        # Per-lane quantities as full-width vectors (lanes not touched have n == 0).
        n_l = np.bincount(lane, weights=count, minlength=self.nl).astype(np.int64)
        acts_l = np.bincount(lane[miss], minlength=self.nl)
        runs_l = np.bincount(lane, minlength=self.nl)
        a0 = np.maximum(self.act_busy, now)
        pre_t = np.maximum(a0[lane], self.bank_free[key])
        if self.all_bank:
            pre_t = self._out_of_refresh(pre_t, lane)
        act_t = pre_t + np.where(conflict, t.tRP, 0)
        ready = np.where(miss, act_t + t.tRCD + tcas, now + tcas)
        ready_l = np.full(self.nl, _NEVER, dtype=np.int64)
        np.minimum.at(ready_l, lane, ready)
        tail_l = np.zeros(self.nl, dtype=np.int64)
        np.maximum.at(tail_l, lane, ready + t.tBURST + (count - 1) * t.tCCD_L)
        end, touched = self._finish_lanes(now, tcas, lane, bank, a0, n_l, acts_l, runs_l, ready_l, tail_l)
        if miss.any():
            np.maximum.at(self.bank_free, key[miss], act_t[miss] + t.tRC)
        if self.closed_page:
            self.open_row[key] = -1
        else:
            self.open_row[last_keys] = last_rows
        self.last_use[key] = end[lane]
        n_conf = int(conflict.sum()) if not self.closed_page else 0
        return int(end[touched].max()), int(n_l.sum()), int(miss.sum()), n_conf

    def _serve_banks(self, now: int, b0: int, b1: int, write: bool) -> tuple[int, int, int, int]:
        """The same closed form per bank touched (numpy, one entry per bank; exact).

        A bank's row runs (:meth:`AddressMapping.bank_runs`) are on distinct rows, so after the first
        each one misses (a conflict under open page; under closed page the row was closed). All its
        runs share one precharge time ``max(a0, bank_free)`` (both fixed for the request), so every
        run after the first has the same ready time and the largest of them ends last; per-lane
        sums (bursts, ACTs, runs) and extremes (first ready, last tail) are then per-bank sums and
        extremes, and the bank's free time is its latest ACT + tRC.
        """
        t = self.t
        br = self.mapping.bank_runs(b0, b1)
        lane, bank, m = br.lane, br.bank, br.runs
        key = lane * self.nb + bank
        tcas = t.tCWL if write else t.tCL
        state = self.open_row[key]
        if self.all_bank:
            state = np.where(self.last_use[key] < self._last_refresh(now, lane), -1, state)
        miss1 = state != br.first_row
        conf1 = miss1 & (state >= 0)
        more = m > 1
        again = m - 1  # later runs: all activations; conflicts under open page
        acts = again + miss1
        nl = self.nl
        n_l = np.bincount(lane, weights=br.bursts, minlength=nl).astype(np.int64)
        acts_l = np.bincount(lane, weights=acts, minlength=nl).astype(np.int64)
        runs_l = np.bincount(lane, weights=m, minlength=nl).astype(np.int64)
        a0 = np.maximum(self.act_busy, now)
        bank_free = self.bank_free[key]
        pre_t = np.maximum(a0[lane], bank_free)
        if self.all_bank:
            pre_t = self._out_of_refresh(pre_t, lane)
        act1 = pre_t + np.where(conf1, t.tRP, 0)
        act2 = pre_t if self.closed_page else pre_t + t.tRP
        to_data = t.tRCD + tcas
        ready1 = np.where(miss1, act1 + to_data, now + tcas)
        ready2 = act2 + to_data
        ready = np.where(more, np.minimum(ready1, ready2), ready1)
        tail1 = ready1 + (br.first_count * t.tCCD_L + (t.tBURST - t.tCCD_L))
        tail2 = ready2 + (br.rest_max * t.tCCD_L + (t.tBURST - t.tCCD_L))
        tail = np.where(more, np.maximum(tail1, tail2), tail1)
        ready_l = np.full(nl, _NEVER, dtype=np.int64)
        np.minimum.at(ready_l, lane, ready)
        tail_l = np.zeros(nl, dtype=np.int64)
        np.maximum.at(tail_l, lane, tail)
        end, touched = self._finish_lanes(now, tcas, lane, bank, a0, n_l, acts_l, runs_l, ready_l, tail_l)
        latest = np.where(more, np.maximum(act1, act2), act1)  # the bank's last ACT, if any
        self.bank_free[key] = np.where(miss1 | more, np.maximum(bank_free, latest + t.tRC), bank_free)
        self.open_row[key] = -1 if self.closed_page else br.last_row
        self.last_use[key] = end[lane]
        n_conf = 0 if self.closed_page else int(conf1.sum()) + int(again.sum())
        return int(end[touched].max()), int(n_l.sum()), int(acts.sum()), n_conf

    def _finish_lanes(
        self,
        now: int,
        tcas: int,
        lane: np.ndarray,
        bank: np.ndarray,
        a0: np.ndarray,
        n_l: np.ndarray,
        acts_l: np.ndarray,
        runs_l: np.ndarray,
        ready_l: np.ndarray,
        tail_l: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-lane part of the closed form: ACT budget, TSV busy-until and bursts; (ends, touched)."""
        t = self.t
        touched = n_l > 0
        groups = np.zeros(self.nl * self.ngroups, dtype=bool)
        groups[lane * self.ngroups + bank // self.bpg] = True
        col = self.col_int[groups.reshape(self.nl, self.ngroups).sum(axis=1)]
        has_act = acts_l > 0
        self.act_busy = np.where(has_act, a0 + acts_l * self.act_int, self.act_busy)
        start = np.maximum(ready_l, self.lane_busy)
        if self.all_bank:
            start = self._out_of_refresh(start, self.lanes)
        end = start + t.tBURST + (n_l - 1) * col
        last_act = a0 + ((acts_l - 1) // 4) * self.faw4 + ((acts_l - 1) % 4) * t.tRRD_S
        per_run = -(-n_l // np.maximum(runs_l, 1))
        act_tail = np.where(has_act, last_act + t.tRCD + tcas + t.tBURST + (per_run - 1) * t.tCCD_L, 0)
        end = np.maximum(np.maximum(end, act_tail), tail_l)
        if self.all_bank:
            end = self._stretch(start, end, self.lanes)
        self.lane_busy = np.where(touched, end, self.lane_busy)
        self.lane_bursts += n_l
        return end, touched

    # -- the same closed form with Python scalars, for small requests ------------------------------
    def _refresh_window(self, when: int, lane: int) -> tuple[int, int]:
        """(start of the latest refresh window at or before ``when``, or -1; next window start)."""
        ph, period = int(self.phase[lane]), self.t.tREFI
        if when < ph:
            return -1, ph
        start = ph + ((when - ph) // period) * period
        return start, start + period

    def _serve_small(self, now: int, b0: int, b1: int, write: bool) -> tuple[int, int, int, int]:
        t, nb, bpg = self.t, self.nb, self.bpg
        all_bank, closed = self.all_bank, self.closed_page
        tcas = t.tCWL if write else t.tCL
        decode = self.mapping.decode_burst
        runs: dict[tuple[int, int, int], list[int]] = {}
        for b in range(b0, b1):
            lane, bank, row, _ = decode(b)
            run = runs.get((lane, bank, row))
            if run is None:
                runs[(lane, bank, row)] = [lane, lane * nb + bank, row, 1, bank // bpg]
            else:
                run[3] += 1
        open_row, bank_free, last_use = self.open_row, self.bank_free, self.last_use
        seen: dict[int, int] = {}
        lanes: dict[int, list[Any]] = {}  # lane -> [bursts, acts, groups, first ready, last tail, runs]
        info = []
        for lane, key, row, count, group in runs.values():
            if key in seen:
                prev = -1 if closed else seen[key]
            else:
                prev = int(open_row[key])
                if all_bank and int(last_use[key]) < self._refresh_window(now, lane)[0]:
                    prev = -1
            seen[key] = row
            miss = prev != row
            info.append((lane, key, count, miss, miss and prev >= 0))
            acc = lanes.get(lane)
            if acc is None:
                acc = lanes[lane] = [0, 0, set(), _NEVER, 0, 0]
            acc[0] += count
            acc[1] += miss
            acc[2].add(group)
            acc[5] += 1
        a0 = {}
        for lane, acc in lanes.items():
            a = int(self.act_busy[lane])
            a0[lane] = a if a > now else now
            if acc[1]:
                self.act_busy[lane] = a0[lane] + acc[1] * self.act_int
        frees = []
        misses = conflicts = 0
        for lane, key, count, miss, conflict in info:
            if miss:
                pre = max(a0[lane], int(bank_free[key]))
                if all_bank:
                    ws, _ = self._refresh_window(pre, lane)
                    if ws >= 0 and pre < ws + t.tRFC:
                        pre = ws + t.tRFC
                act = pre + (t.tRP if conflict else 0)
                ready = act + t.tRCD + tcas
                frees.append((key, act + t.tRC))
                misses += 1
                conflicts += conflict
            else:
                ready = now + tcas
            acc = lanes[lane]
            if ready < acc[3]:
                acc[3] = ready
            tail = ready + t.tBURST + (count - 1) * t.tCCD_L
            if tail > acc[4]:
                acc[4] = tail
        done = 0
        ends = {}
        for lane, (n, acts, groups, ready, tail, nruns) in lanes.items():
            start = max(ready, int(self.lane_busy[lane]))
            if all_bank:
                ws, _ = self._refresh_window(start, lane)
                if ws >= 0 and start < ws + t.tRFC:
                    start = ws + t.tRFC
            end = start + t.tBURST + (n - 1) * int(self.col_int[len(groups)])
            if acts:
                last_act = a0[lane] + ((acts - 1) // 4) * self.faw4 + ((acts - 1) % 4) * t.tRRD_S
                per_run = -(-n // nruns)
                end = max(end, last_act + t.tRCD + tcas + t.tBURST + (per_run - 1) * t.tCCD_L)
            end = max(end, tail)
            if all_bank:
                _, nxt = self._refresh_window(start, lane)
                while nxt < end:
                    end += t.tRFC
                    nxt += t.tREFI
            self.lane_busy[lane] = end
            self.lane_bursts[lane] += n
            ends[lane] = end
            done = max(done, end)
        for key, free in frees:
            if free > bank_free[key]:
                bank_free[key] = free
        for lane, key, _, _, _ in info:
            last_use[key] = ends[lane]
        for key, row in seen.items():
            open_row[key] = -1 if closed else row
        return done, b1 - b0, misses, 0 if closed else conflicts
