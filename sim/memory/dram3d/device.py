"""The registered ``dram3d`` memory device: analytic twin, dispatch to the levels, stats and energy.

The overview (organisation, the three levels, refresh, energy) is in the package docstring,
:mod:`sim.memory.dram3d`. This module holds what is common to every level: the geometry, mapping
and timing set, the analytic twin, the entry points the base class calls for each fidelity, and the
flush of the internal event counts into stats, energy and the TSV buses.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Generator
from typing import Any, ClassVar

import simpy

from sim.core.params import ParamSet
from sim.core.registry import register
from sim.memory.address_mapping import AddressMapping, Geometry, get_mapping
from sim.memory.device import MemoryDevice, MemRequest
from sim.memory.dram3d.detailed import (
    _ACT,
    _CONFLICT,
    _HIT,
    _N_COUNTS,
    _PRE,
    _RD,
    _REF,
    _REFSB,
    _WR,
    DetailedRequest,
    LaneController,
    first_refresh_ps,
)
from sim.memory.dram3d.params import Dram3DParams
from sim.memory.dram3d.transaction import TransactionModel
from sim.memory.dram3d.tsv import TsvBus
from sim.memory.dram_timing import DramTiming
from sim.stats import counter


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
    books_transactions = True  # the transaction level's end is known on arrival (closed form)
    price_class = "dram"
    carbon_class = "dram"

    def build(self) -> None:
        super().build()
        p = self.params
        self.geometry = _geometry(p)
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
        self._ref_phases: tuple[tuple[int, ...], int, float] | None = None
        t = self.timing
        if t.refresh_mode != "off":
            per_bank = t.refresh_mode == "per_bank"
            period = t.tREFI // g.banks_per_lane if per_bank else t.tREFI
            per_ref = p.refresh_energy / g.banks_per_lane if per_bank else p.refresh_energy
            phases = tuple(sorted(first_refresh_ps(i, g.lanes, period) for i in range(g.lanes)))
            self._ref_phases = (phases, period, per_ref)
        self._latency_cache: dict[tuple[int, bool], int] = {}
        self._lanes: list[LaneController] | None = None
        self._txn: TransactionModel | None = None
        if p.fidelity == "detailed":
            self._lanes = [LaneController(self, i) for i in range(g.lanes)]
        elif p.fidelity == "transaction":
            self._txn = TransactionModel(self, refresh=True)

    # -- analytic twin ----------------------------------------------------------------------------
    @classmethod
    def capacity_of(cls, params: ParamSet) -> int:
        p: Dram3DParams = params  # type: ignore[assignment]
        return _geometry(p).capacity_bytes

    @classmethod
    def peak_bandwidth_of(cls, params: ParamSet, write: bool = False) -> float:
        """channels x TSV width x per-pin rate (bytes/s): what the TSV buses can carry at most."""
        p: Dram3DParams = params  # type: ignore[assignment]
        return p.channels * p.tsv_width_bits * p.tsv_rate

    def queueing_cause(self) -> str:
        """Above the analytic twin, waiting means a busy TSV bus or a bank not ready."""
        return "memory queueing" if self.params.fidelity == "analytic" else "TSV busy / bank conflict"

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
            scratch = TransactionModel(self, refresh=False)
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
        ctx = DetailedRequest(env.event(), b1 - b0)
        for lane, (banks, rows, cols) in self.mapping.bursts_by_lane(b0, b1).items():
            self._lanes[lane].enqueue(ctx, banks, rows, cols, req.write)
        yield ctx.event
        if ctx.done_at > env.now:
            yield env.timeout(ctx.done_at - env.now)
        self._flush()

    def serve_transaction(self, req: MemRequest) -> Generator[simpy.Event, Any, None]:
        done = self.serve_booked(req)
        if done > self.env.now:
            yield self.env.timeout(done - self.env.now)

    def serve_booked(self, req: MemRequest) -> int:
        """The transaction level in closed form: reserve ``req`` now, count it, return its end."""
        assert self._txn is not None
        b0, b1 = self._burst_range(req)
        done, bursts, acts, conflicts = self._txn.serve(self.env.now, b0, b1, req.write)
        self._account_txn(req.write, bursts, acts, conflicts)
        return done

    def _account_txn(self, write: bool, bursts: int, acts: int, conflicts: int) -> None:
        """Counts and energy of one transaction-level request, flushed at once (the counters are read
        between requests). With nothing else pending this is :meth:`_flush` without its generic
        bookkeeping: the same additions in the same order (integer zeros, which change nothing, are
        skipped; float zeros are not, they can turn an integer counter into a float)."""
        n = self._n
        if n != self._flushed:  # counts of another level still to flush: the general path
            n[_WR if write else _RD] += bursts
            n[_ACT] += acts
            n[_CONFLICT] += conflicts
            n[_HIT] += bursts - acts
            self._flush(refresh_by_time=True)
            return
        p, st = self.params, self.stat
        bits = self._burst_bits
        rd, wr = (0, bursts) if write else (bursts, 0)
        e_act = acts * p.act_energy
        e_rd = rd * bits * p.read_energy_per_bit
        e_wr = wr * bits * p.write_energy_per_bit
        e_tsv = (rd + wr) * bits * p.tsv_energy_per_bit
        e_ref = (0 + 0 / self.geometry.banks_per_lane) * p.refresh_energy
        refs = 0
        if self._ref_phases is not None:
            n = self._take_refreshes_due()
            refs += n
            e_ref += n * self._ref_phases[2]
        # Nothing pending stays nothing pending (only _n - _flushed matters), so the counts go straight
        # to the counters; ``value +=`` is what Counter.add does, without the call.
        if write:
            st.bursts_written.value += wr
        else:
            st.bursts_read.value += rd
        st.activates.value += acts
        if refs:
            st.refreshes.value += refs
        st.row_hits.value += bursts - acts
        st.row_misses.value += acts - conflicts
        st.row_conflicts.value += conflicts
        st.energy_act_pj.value += e_act
        st.energy_read_pj.value += e_rd
        st.energy_write_pj.value += e_wr
        st.energy_tsv_pj.value += e_tsv
        st.energy_refresh_pj.value += e_ref
        st.energy_pj.value += e_act + e_rd + e_wr + e_tsv + e_ref

    def account_analytic(self, req: MemRequest) -> None:
        """Base twin FIFO; energy as for a stream: one activation per row_bytes moved (at least one)."""
        b0, b1 = self._burst_range(req)
        bursts = b1 - b0
        acts = -(-bursts // self.geometry.columns)
        if self._n != self._flushed:  # counts from another level still to flush: the general path
            n = self._n
            n[_WR if req.write else _RD] += bursts
            n[_ACT] += acts
            n[_HIT] += bursts - acts
            self._flush(refresh_by_time=True)
        else:
            self._flush_stream(req.write, bursts, acts)

    def _flush_stream(self, write: bool, bursts: int, acts: int) -> None:
        """:meth:`_flush` of one streamed access with nothing else pending, without the generic
        bookkeeping: the same additions in the same order (integer zeros, which change nothing, are
        skipped), so the counters and energy are bit for bit those of the general path."""
        p, st = self.params, self.stat
        bits = self._burst_bits
        rd, wr = (0, bursts) if write else (bursts, 0)
        e_act = acts * p.act_energy
        e_rd = rd * bits * p.read_energy_per_bit
        e_wr = wr * bits * p.write_energy_per_bit
        e_tsv = (rd + wr) * bits * p.tsv_energy_per_bit
        e_ref = 0.0 * p.refresh_energy
        refs = 0
        if self._ref_phases is not None:
            n = self._take_refreshes_due()
            refs += n
            e_ref += n * self._ref_phases[2]
        if write:
            st.bursts_written.add(wr)
            self._n[_WR] += wr
            self._flushed[_WR] += wr
        else:
            st.bursts_read.add(rd)
            self._n[_RD] += rd
            self._flushed[_RD] += rd
        self._n[_ACT] += acts
        self._flushed[_ACT] += acts
        self._n[_HIT] += bursts - acts
        self._flushed[_HIT] += bursts - acts
        st.activates.add(acts)
        if refs:
            st.refreshes.add(refs)
        st.row_hits.add(bursts - acts)
        st.row_misses.add(acts)
        st.energy_act_pj.add(e_act)
        st.energy_read_pj.add(e_rd)
        st.energy_write_pj.add(e_wr)
        st.energy_tsv_pj.add(e_tsv)
        st.energy_refresh_pj.add(e_ref)
        st.energy_pj.add(e_act + e_rd + e_wr + e_tsv + e_ref)

    def account_internal_read(self, nbytes: int) -> None:
        """Bank-level reads by processing-in-memory units: activations and array reads, no TSV energy."""
        p, st = self.params, self.stat
        bursts = -(-nbytes // self.geometry.burst_bytes)
        acts = -(-bursts // self.geometry.columns)
        e_act = acts * p.act_energy
        e_rd = bursts * self._burst_bits * p.read_energy_per_bit
        st.activates.add(acts)
        st.energy_act_pj.add(e_act)
        st.energy_read_pj.add(e_rd)
        st.energy_pj.add(e_act + e_rd)
        st.internal_bytes_read.add(nbytes)

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
            n = self._take_refreshes_due()
            refs += n
            e_ref += n * self._ref_phases[2]
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

    def _take_refreshes_due(self) -> int:
        """Refreshes that fell due since they were last counted by time (closed form), now counted."""
        due = self._refreshes_due(self.env.now)
        n, self._ref_counted = due - self._ref_counted, due
        return n

    def _refreshes_due(self, now: int) -> int:
        """Refresh commands due in the whole stack up to ``now`` (closed form; lanes are staggered)."""
        assert self._ref_phases is not None
        phases, period, _ = self._ref_phases
        return refreshes_due(phases, period, now)

    @property
    def reuse_safe(self) -> bool:
        """Whether iteration reuse may replay spans of this device: not at the command level, whose
        lanes catch up on the refreshes of idle spans as commands when they next work."""
        return self._lanes is None

    def sync_stats(self, account: bool = True) -> None:
        """Bring the counters up to now (iteration reuse snapshots them): pending counts and TSV
        bursts, and refreshes due by time either accounted (``account``) or, after a replayed span
        whose stored change already holds them, only marked as counted. Booked requests complete
        by now are recorded first."""
        if self._booked:
            self.record_booked()
        if self._lanes is not None:
            self._flush()  # the command level counts its own refreshes, as commands
        elif account:
            self._flush(refresh_by_time=True)
        else:
            self._flush()
            if self._ref_phases is not None:
                self._ref_counted = self._refreshes_due(self.env.now)
        self._flush_tsv()

    def finalize(self) -> None:
        if self._booked:
            self.record_booked()
        if self._lanes is not None:
            for lane in self._lanes:
                lane.count_idle_refreshes(self.env.now)
            self._flush()
        else:
            self._flush(refresh_by_time=True)
        self._flush_tsv()

    def _flush_tsv(self) -> None:
        """Report the bursts each channel's TSV bus carried since the last report."""
        pc = self.geometry.pseudo_channels
        counts = self._txn.lane_bursts.tolist() if self._txn is not None else list(self._lane_bursts)
        tburst, bb = self.timing.tBURST, self.geometry.burst_bytes
        for c, bus in enumerate(self.tsv):
            lanes = slice(c * pc, (c + 1) * pc)
            nb = sum(counts[lanes]) - sum(self._tsv_flushed[lanes])
            bus.record(nb * tburst, nb * bb)
        self._tsv_flushed = counts


def refreshes_due(phases: tuple[int, ...], period: int, now: int) -> int:
    """Refreshes due up to ``now`` over lanes whose first refresh is at ``phases`` (sorted, each in
    [0, period]) and every ``period`` after: with now = q x period + r, each lane has had q refreshes,
    plus one more if its phase is at most r. O(log lanes), the same count as summing lane by lane."""
    q, r = divmod(now, period)
    return len(phases) * q + bisect_right(phases, r)


def _geometry(p: Dram3DParams) -> Geometry:
    """The bank organisation a stack with parameters ``p`` has."""
    return Geometry(
        channels=p.channels,
        pseudo_channels=p.pseudo_channels,
        bank_groups=p.bank_groups,
        banks_per_group=p.banks_per_group,
        rows=p.rows,
        columns=p.row_bytes // p.burst_bytes,
        burst_bytes=p.burst_bytes,
    )
