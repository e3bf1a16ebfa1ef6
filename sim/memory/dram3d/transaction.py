"""The ``transaction`` level of a 3D DRAM stack: closed-form timing of whole requests, no events.

Apart from the detailed controller because it is a different model of the same rules (busy-until
bookkeeping instead of command scheduling) that must stay exact under every evaluation (scalar,
per row run, per lane grid, per bank, per lane for bank sweeps); the device also runs it without
refresh for the analytic twin's unloaded latency.

Speed: a 70B decode iteration sends a few hundred requests through here, each a few dozen numpy
calls on arrays of a few hundred entries, so the cost is the number of calls, not their size. What
depends on the request alone is cached per address range (:class:`_BankPlan`; the weight layout is
fixed) or per mapping (:class:`_LaneGrid`), and each evaluation skips what integer identities make
redundant; tests compare every path with the per-run one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.memory.address_mapping import AddressMapping
from sim.memory.dram3d.detailed import first_refresh_ps

if TYPE_CHECKING:
    from sim.memory.dram3d.device import Dram3D

_NEVER = np.iinfo(np.int64).max
# The transaction model evaluates a request per bank (not per row run) once the banks it touches hold
# at least _BANK_SWEEP_ROWS of its rows each on average and it has at least _BANK_MIN_RUNS row runs
# (measured crossover: the per-run path costs ~70 us + ~0.1 us per run, the per-bank one ~120 us).
_BANK_SWEEP_ROWS = 2
_BANK_MIN_RUNS = 1024
# Request plans a model keeps (weight streams revisit a few hundred ranges; bounded, cleared when full).
_PLAN_CACHE = 4096
# Settled outcomes a sweep plan keeps, one per hit pattern met (bounded, cleared when full).
_SWEEP_MEMO = 64


class TransactionModel:
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
        self._col_list = col  # the same, as Python ints for the scalar path
        self.closed_page = dev.params.page_policy == "closed"
        self.all_bank = refresh and t.refresh_mode == "all_bank"
        self.phase = np.array([first_refresh_ps(i, nl, t.tREFI) for i in range(nl)], dtype=np.int64)
        # Requests of at most this many bursts take the scalar path (same formulas, no numpy overhead).
        self.small_limit = 16
        # Requests spanning at least this many high blocks take the per-bank path (same results; set
        # fast_path False to always take the per-run one).
        self.fast_path = True
        self.bank_sweep_blocks = self._bank_sweep_blocks(dev.mapping)
        self._plans: dict[tuple[int, int, bool], _BankPlan] = {}
        self._grid: tuple[AddressMapping, _LaneGrid | None] | None = None  # built for this mapping

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

        Exact evaluations of one closed form: Python scalars for small requests, per bank
        (:meth:`_serve_banks`, or per lane via :meth:`_serve_sweep`) once the request sweeps its
        banks row after row, so that the cost no longer grows with the request, on a (blocks, lanes,
        low indices) grid (:meth:`_serve_grid`) for a request of a few blocks on a mapping with the
        lanes below the column, and otherwise per row run (:meth:`_serve_runs`, the reference the
        others are tested against; ``fast_path = False`` takes it always beyond the scalar size).
        """
        if b1 - b0 <= self.small_limit:
            return self._serve_small(now, b0, b1, write)
        spanned = self.mapping.blocks_spanned(b0, b1)
        if self.fast_path and spanned >= self.bank_sweep_blocks:
            return self._serve_banks(now, b0, b1, write)
        if self.fast_path and spanned <= self.mapping.distinct_blocks:
            grid = self._lane_grid()
            if grid is not None:
                return self._serve_grid(grid, now, b0, b1, write)
        return self._serve_runs(now, b0, b1, write)

    def _lane_grid(self) -> _LaneGrid | None:
        """The mapping's :class:`_LaneGrid` (None when it does not apply), built once per mapping."""
        if self._grid is None or self._grid[0] is not self.mapping:
            self._grid = (self.mapping, _LaneGrid.of(self))
        return self._grid[1]

    def _serve_grid(
        self, grid: _LaneGrid, now: int, b0: int, b1: int, write: bool
    ) -> tuple[int, int, int, int]:
        """:meth:`_serve_runs` for a request of at most ``distinct_blocks`` high blocks on a mapping
        whose lanes and bank groups are all below the column (see :class:`_LaneGrid`); exact.

        Its row runs are the (block, low index) cells with bursts, each on its own bank, so they fit
        a (blocks, lanes, low indices per lane) grid: per-lane sums and extremes are reductions over
        two axes, empty cells are masked, and no sort, bincount or ``ufunc.at`` is needed.
        """
        t, m = self.t, self.mapping
        L, CL = m.L, m.CL
        h0, h1 = b0 // CL, (b1 - 1) // CL
        x, y = b0 - h0 * CL, b1 - h1 * CL
        up = grid.up  # L - 1 - l: bursts of low index l in [x, y) are (y + up) // L - (x + up) // L
        if h0 == h1:
            count = (y + up) // L - (x + up) // L
            _, bank_h, row = m._high(h0)  # scalars, broadcast
        else:
            count = np.empty((h1 - h0 + 1, *up.shape[1:]), dtype=np.int64)
            count[:] = m.C
            count[0] = m.C - (x + up[0]) // L
            count[-1] = (y + up[0]) // L
            highs = [m._high(h) for h in range(h0, h1 + 1)]
            bank_h = np.array([hb for _, hb, _ in highs], dtype=np.int64)[:, None, None]
            row = np.array([hr for _, _, hr in highs], dtype=np.int64)[:, None, None]
        key = grid.key + bank_h
        valid = count > 0
        tcas = t.tCWL if write else t.tCL
        state0 = self.open_row[key]
        state = state0
        if self.all_bank:
            last_use0 = self.last_use[key]
            state = np.where(last_use0 < self._last_refresh(now, grid.lane), -1, state)
        full = bool(valid.all())  # every cell has bursts (the usual case): no masking
        miss = state != row
        if not full:
            miss &= valid
        conflict = miss & (state >= 0)
        a0 = np.maximum(self.act_busy, now)
        bank_free = self.bank_free[key]
        pre_t = np.maximum(a0[grid.lane], bank_free)
        if self.all_bank:
            pre_t = self._out_of_refresh(pre_t, grid.lane)
        act_t = pre_t + conflict * t.tRP
        ready = np.where(
            miss, act_t + (t.tRCD + tcas), now + tcas if full else np.where(valid, now + tcas, _NEVER)
        )
        axes = (0, 2)
        ready_l = ready.min(axis=axes)
        tail = ready + (count * t.tCCD_L + (t.tBURST - t.tCCD_L))
        tail_l = (tail if full else np.where(valid, tail, 0)).max(axis=axes)
        n_l = count.sum(axis=axes)
        acts_l = miss.sum(axis=axes)
        if full:
            runs_l = grid.cells * (h1 - h0 + 1)
            col = grid.col_full
        else:
            runs_l = valid.sum(axis=axes)
            # bank groups touched: one per low index of the lane (in one block, one run each)
            col = self.col_int[runs_l if h0 == h1 else valid.any(axis=0).sum(axis=1)]
        has_act = acts_l > 0
        self.act_busy = np.where(has_act, a0 + acts_l * self.act_int, self.act_busy)
        start = np.maximum(ready_l, self.lane_busy)
        if self.all_bank:
            start = self._out_of_refresh(start, self.lanes)
        end = start + t.tBURST + (n_l - 1) * col
        q, r = np.divmod(acts_l - 1, 4)
        per_run = -(-n_l // np.maximum(runs_l, 1))
        act_tail = a0 + q * self.faw4 + r * t.tRRD_S + (t.tRCD + tcas + t.tBURST) + (per_run - 1) * t.tCCD_L
        end = np.maximum(np.maximum(end, np.where(has_act, act_tail, 0)), tail_l)
        if self.all_bank:
            end = self._stretch(start, end, self.lanes)
        if full:  # every lane has bursts
            self.lane_busy = end
            done = int(end.max())
        else:
            touched = n_l > 0
            self.lane_busy = np.where(touched, end, self.lane_busy)
            done = int(end[touched].max())
        self.lane_bursts += n_l
        # Distinct cells are distinct banks, so empty cells are written back unchanged.
        self.bank_free[key] = np.where(miss, act_t + t.tRC, bank_free)
        new_row = -1 if self.closed_page else row
        if full:
            self.open_row[key] = new_row
            self.last_use[key] = end[grid.lane]
        else:
            self.open_row[key] = np.where(valid, new_row, state0)
            if not self.all_bank:
                last_use0 = self.last_use[key]
            self.last_use[key] = np.where(valid, end[grid.lane], last_use0)
        n_conf = 0 if self.closed_page else int(np.count_nonzero(conflict))
        return done, b1 - b0, int(np.count_nonzero(miss)), n_conf

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

    def _bank_plan(self, b0: int, b1: int, write: bool) -> _BankPlan:
        """The parts of :meth:`_serve_banks` that depend on the request alone, cached per request:
        a weight stream reads the same few address ranges every iteration."""
        pkey = (b0, b1, write)
        plan = self._plans.get(pkey)
        if plan is None:
            if len(self._plans) >= _PLAN_CACHE:
                self._plans.clear()
            plan = self._plans[pkey] = _BankPlan.build(self, b0, b1, write)
        return plan

    def _serve_banks(self, now: int, b0: int, b1: int, write: bool) -> tuple[int, int, int, int]:
        """The same closed form per bank touched (numpy, one entry per bank; exact).

        A bank's row runs (:meth:`AddressMapping.bank_runs`) are on distinct rows, so after the first
        each one misses (a conflict under open page; under closed page the row was closed). All its
        runs share one precharge time ``max(a0, bank_free)`` (both fixed for the request), so every
        run after the first has the same ready time and the largest of them ends last; per-lane
        sums (bursts, ACTs, runs) and extremes (first ready, last tail) are then per-bank sums and
        extremes, and the bank's free time is its latest ACT + tRC.

        What depends on the request alone comes from a cached :class:`_BankPlan`. Two integer
        identities save work without changing a result: a later run's ACT is never before the
        first's (``act2 >= act1``) and its data never earlier (``ready2 >= ready1``, as
        ``pre_t >= now``), so the bank's first ready time is ``ready1`` and its last ACT ``act2``
        when it has later runs; and the new free time ``latest + tRC`` exceeds the old one.
        """
        t = self.t
        plan = self._bank_plan(b0, b1, write)
        if plan.sweep is not None and not self.all_bank:
            got = self._serve_sweep(now, plan)
            if got is not None:
                return got
        key, lane = plan.key, plan.lane
        nl = self.nl
        if plan.dense:  # every bank of every lane, in key order: views instead of gathers
            state = self.open_row
            bank_free = self.bank_free
        else:
            state = self.open_row[key]
            bank_free = self.bank_free[key]
        if self.all_bank:
            state = np.where(self.last_use[key] < self._last_refresh(now, lane), -1, state)
        miss1 = state != plan.first_row
        conf1 = miss1 & (state >= 0)
        a0 = np.maximum(self.act_busy, now)
        pre_t = np.maximum(a0[lane], bank_free)
        if self.all_bank:
            pre_t = self._out_of_refresh(pre_t, lane)
        act1 = pre_t + conf1 * t.tRP
        act2 = pre_t if self.closed_page else pre_t + t.tRP
        ready1 = np.where(miss1, act1 + plan.to_data, now + plan.tcas)
        tail = ready1 + plan.c1
        if plan.any_more:
            tail2 = act2 + plan.c2
            if not plan.all_more:
                tail2 = np.where(plan.more, tail2, tail)
            tail = np.maximum(tail, tail2)
        # per-lane sums and extremes
        if plan.dense:
            shape = (nl, self.nb)
            ready_l = ready1.reshape(shape).min(axis=1)
            tail_l = tail.reshape(shape).max(axis=1)
            acts_l = plan.again_l + miss1.reshape(shape).sum(axis=1)
        else:
            starts = plan.starts
            ready_t = np.minimum.reduceat(ready1, starts)
            tail_t = np.maximum.reduceat(tail, starts)
            miss_t = np.add.reduceat(miss1, starts, dtype=np.int64)
            if plan.all_lanes:
                ready_l, tail_l, acts_l = ready_t, tail_t, plan.again_l + miss_t
            else:
                tl = plan.lanes_touched
                ready_l = np.full(nl, _NEVER, dtype=np.int64)
                ready_l[tl] = ready_t
                tail_l = np.zeros(nl, dtype=np.int64)
                tail_l[tl] = tail_t
                acts_l = plan.again_l.copy()
                acts_l[tl] += miss_t
        end = self._finish_plan(plan, a0, acts_l, ready_l, tail_l)
        if plan.all_more:
            new_free = act2 + t.tRC
        else:
            latest = np.where(plan.more, act2, act1)  # the bank's last ACT, if any
            new_free = np.where(miss1 | plan.more, latest + t.tRC, bank_free)
        last_use = end[lane]
        if plan.dense:
            self.bank_free = new_free
            if self.closed_page:
                self.open_row = np.full(nl * self.nb, -1, dtype=np.int64)
            else:
                self.open_row = plan.last_row.copy()
            self.last_use = last_use
        else:
            self.bank_free[key] = new_free
            self.open_row[key] = -1 if self.closed_page else plan.last_row
            self.last_use[key] = last_use
        n_miss = int(np.count_nonzero(miss1))
        n_conf = 0 if self.closed_page else int(np.count_nonzero(conf1)) + plan.again
        return int(end[plan.lanes_touched].max()), plan.bursts, plan.again + n_miss, n_conf

    def _serve_sweep(self, now: int, plan: _BankPlan) -> tuple[int, int, int, int] | None:
        """:meth:`_serve_banks` per lane, for a request that holds several rows of every bank (open
        page, no all-bank refresh) when every bank is free by its lane's ACT budget and has a row
        open; None otherwise (the per-bank evaluation then applies).

        Then every bank's precharge time is its lane's ``a0``, every later run's ACT ``a0 + tRP`` and
        the bank's new free time ``a0 + tRP + tRC``. A bank whose open row is another one has first
        data at ``a0 + tRP + tRCD + CL`` and its first run ends at ``a0 + tRP`` plus a fixed offset; a
        bank that hits its open row (where the previous stream stopped mid-row) has first data at
        ``now + CL``, which is never later, and one ACT less. The integer formulas of
        :meth:`_serve_banks` with ``pre_t = a0``, reduced per lane.
        """
        t, nl, nb = self.t, self.nl, self.nb
        sw = plan.sweep
        assert sw is not None
        state = self.open_row
        # Settled: every lane's ACT budget, TSV share and bank free by now (the previous op waited
        # for its streams). Then a0 = now everywhere and the outcome is ``now`` plus what the hit
        # pattern alone decides (integer formulas, so exactly shift-invariant): memoised per plan.
        settled = self.act_busy.max() <= now and self.lane_busy.max() <= now and self.bank_free.max() <= now
        if settled:
            if state.min() < 0:  # a closed bank: ACT without precharge, the per-bank path
                return None
            hit_flat = state == plan.first_row
            memo_key = hit_flat.tobytes()
            rel = sw.memo.get(memo_key)
            if rel is not None:
                return self._sweep_replay(now, plan, rel)
            a0 = np.maximum(self.act_busy, now)
        else:
            memo_key = None
            a0 = np.maximum(self.act_busy, now)
            if not (self.bank_free.reshape(nl, nb) <= a0[:, None]).all():
                return None
            if not (state >= 0).all():  # a closed bank: ACT without precharge, the per-bank path
                return None
            hit_flat = state == plan.first_row
        hit = hit_flat.reshape(nl, nb)
        base = a0 + t.tRP
        later = base + sw.c2_max  # every bank's later runs
        hits_l = hit.sum(axis=1)
        n_hits = int(hits_l.sum())
        if n_hits:
            first = np.where(hit, (now + plan.tcas) + sw.c1, base[:, None] + sw.first)
            tail_l = np.maximum(later, first.max(axis=1))
            ready_l = np.where(hits_l > 0, now + plan.tcas, base + plan.to_data)
            acts_l = sw.acts_l - hits_l
        else:
            tail_l = base + sw.tail_l
            ready_l = base + plan.to_data
            acts_l = sw.acts_l
        end = self._finish_plan(plan, a0, acts_l, ready_l, tail_l)
        self.bank_free = np.repeat(base + t.tRC, nb)
        self.open_row = plan.last_row.copy()
        self.last_use = np.repeat(end, nb)
        banks = nl * nb
        acts = plan.again + banks - n_hits
        done = int(end.max())
        if memo_key is not None and bool((acts_l > 0).all()):  # every lane's state set from now
            if len(sw.memo) >= _SWEEP_MEMO:
                sw.memo.clear()
            rel_end = end - now
            rel_end.setflags(write=False)
            sw.memo[memo_key] = (rel_end, self.act_busy - now, done - now, acts)
        return done, plan.bursts, acts, acts

    def _sweep_replay(self, now: int, plan: _BankPlan, rel: tuple[Any, ...]) -> tuple[int, int, int, int]:
        """A settled sweep whose hit pattern was evaluated before: its state and result are the
        stored ones shifted to ``now`` (see :meth:`_serve_sweep`)."""
        rel_end, rel_act, rel_done, acts = rel
        t = self.t
        end = rel_end + now
        self.act_busy = rel_act + now
        self.lane_busy = end
        self.lane_bursts += plan.n_l
        self.bank_free = np.full(self.nl * self.nb, now + t.tRP + t.tRC, dtype=np.int64)
        self.open_row = plan.last_row.copy()
        self.last_use = np.repeat(end, self.nb)
        return now + rel_done, plan.bursts, acts, acts

    def _finish_plan(
        self, plan: _BankPlan, a0: np.ndarray, acts_l: np.ndarray, ready_l: np.ndarray, tail_l: np.ndarray
    ) -> np.ndarray:
        """:meth:`_finish_lanes` with the request's own per-lane terms taken from its plan."""
        t = self.t
        has_act = acts_l > 0
        self.act_busy = np.where(has_act, a0 + acts_l * self.act_int, self.act_busy)
        start = np.maximum(ready_l, self.lane_busy)
        if self.all_bank:
            start = self._out_of_refresh(start, self.lanes)
        end = start + plan.span_l
        q, r = np.divmod(acts_l - 1, 4)
        act_tail = np.where(has_act, a0 + q * self.faw4 + r * t.tRRD_S + plan.act_tail_l, 0)
        end = np.maximum(np.maximum(end, act_tail), tail_l)
        if self.all_bank:
            end = self._stretch(start, end, self.lanes)
        self.lane_busy = end if plan.all_lanes else np.where(plan.touched, end, self.lane_busy)
        self.lane_bursts += plan.n_l
        return end

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
        tRP, tRCD, tRC, tBURST, tCCD_L, tRRD_S = t.tRP, t.tRCD, t.tRC, t.tBURST, t.tCCD_L, t.tRRD_S
        col_int = self._col_list
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
                act = pre + (tRP if conflict else 0)
                ready = act + tRCD + tcas
                frees.append((key, act + tRC))
                misses += 1
                conflicts += conflict
            else:
                ready = now + tcas
            acc = lanes[lane]
            if ready < acc[3]:
                acc[3] = ready
            tail = ready + tBURST + (count - 1) * tCCD_L
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
            end = start + tBURST + (n - 1) * col_int[len(groups)]
            if acts:
                last_act = a0[lane] + ((acts - 1) // 4) * self.faw4 + ((acts - 1) % 4) * tRRD_S
                per_run = -(-n // nruns)
                end = max(end, last_act + tRCD + tcas + tBURST + (per_run - 1) * tCCD_L)
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


class _BankPlan:
    """What :meth:`TransactionModel._serve_banks` needs of one request that does not depend on the
    state: its banks (sorted by key, so lanes are contiguous), their rows and run counts, and its
    per-lane bursts, runs, column span and ACT tail (the request-only terms of the closed form)."""

    __slots__ = (
        "act_tail_l",
        "again",
        "again_l",
        "all_lanes",
        "all_more",
        "any_more",
        "bursts",
        "c1",
        "c2",
        "dense",
        "first_row",
        "key",
        "lane",
        "lanes_touched",
        "last_row",
        "more",
        "n_l",
        "span_l",
        "starts",
        "sweep",
        "tcas",
        "to_data",
        "touched",
    )

    @classmethod
    def build(cls, model: TransactionModel, b0: int, b1: int, write: bool) -> _BankPlan:
        t, nl, nb = model.t, model.nl, model.nb
        br = model.mapping.bank_runs(b0, b1)
        key = br.lane * nb + br.bank
        order = np.argsort(key, kind="stable")
        self = cls()
        self.key = key[order]
        lane = self.lane = br.lane[order]
        m = br.runs[order]
        self.first_row = br.first_row[order]
        self.last_row = br.last_row[order]
        self.more = m > 1
        self.any_more = bool(self.more.any())
        self.all_more = bool(self.more.all())
        self.tcas = t.tCWL if write else t.tCL
        self.to_data = t.tRCD + self.tcas
        self.c1 = br.first_count[order] * t.tCCD_L + (t.tBURST - t.tCCD_L)
        self.c2 = self.to_data + br.rest_max[order] * t.tCCD_L + (t.tBURST - t.tCCD_L)
        self.again = int((m - 1).sum())
        self.again_l = np.bincount(lane, weights=m - 1, minlength=nl).astype(np.int64)
        n_l = self.n_l = np.bincount(lane, weights=br.bursts[order], minlength=nl).astype(np.int64)
        runs_l = np.bincount(lane, weights=m, minlength=nl).astype(np.int64)
        self.bursts = int(n_l.sum())
        self.touched = n_l > 0
        self.lanes_touched = np.flatnonzero(self.touched)
        self.all_lanes = bool(self.touched.all())
        self.dense = len(key) == nl * nb  # every bank once, now in key order
        cuts = np.flatnonzero(np.diff(lane)) + 1
        self.starts = np.concatenate(([0], cuts)).astype(np.intp)
        groups = np.zeros(nl * model.ngroups, dtype=bool)
        groups[lane * model.ngroups + br.bank[order] // model.bpg] = True
        col = model.col_int[groups.reshape(nl, model.ngroups).sum(axis=1)]
        self.span_l = t.tBURST + (n_l - 1) * col
        per_run = -(-n_l // np.maximum(runs_l, 1))
        self.act_tail_l = t.tRCD + self.tcas + t.tBURST + (per_run - 1) * t.tCCD_L
        self.sweep = None
        if self.dense and self.all_more and self.all_lanes and not model.closed_page:
            self.sweep = _Sweep.build(self, nl, model.nb)
        for name in cls.__slots__:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        return self


class _LaneGrid:
    """The low indices of a mapping grouped by lane, for :meth:`TransactionModel._serve_grid`.

    Applies when every lane field and every bank-group field sits below the column (``RoBaCoBgPcCh``,
    the streaming default): then a burst's lane and bank group depend on its low index alone, each
    lane owns the same number of low indices, one per bank group, and the fields above the column
    move only the bank within its group and the row.
    """

    __slots__ = ("cells", "col_full", "key", "lane", "up")

    @classmethod
    def of(cls, model: TransactionModel) -> _LaneGrid | None:
        m = model.mapping
        if any(f in m.high for f in ("Ch", "Pc", "Bg")):
            return None
        lane_l, bank_l = m._lane_l, m._bank_l
        nl = model.nl
        if m.L % nl:
            return None
        k = m.L // nl
        order = np.argsort(lane_l * m.L + np.arange(m.L), kind="stable").reshape(nl, k)
        if not (lane_l[order] == np.arange(nl)[:, None]).all():
            return None
        group = bank_l[order] // model.bpg
        if any(len(set(row.tolist())) != k for row in group):  # one low index per bank group
            return None
        self = cls()
        self.up = (m.L - 1 - m._l[order])[None]  # (1, lanes, k) like the other grids
        self.cells = k  # low indices (bank groups) per lane
        self.col_full = model.col_int[np.full(nl, k)]  # column interval with every group touched
        self.key = (lane_l * model.nb + bank_l)[order][None]  # (1, lanes, k), broadcast over blocks
        self.lane = np.broadcast_to(np.arange(nl, dtype=np.int64)[:, None], (nl, k))[None]
        return self


class _Sweep:
    """Per-lane terms of a :class:`_BankPlan` over every bank with later runs everywhere, for
    :meth:`TransactionModel._serve_sweep` (offsets from the lane's ``a0 + tRP``; (lanes, banks))."""

    __slots__ = ("acts_l", "c1", "c2_max", "first", "memo", "tail_l")

    @classmethod
    def build(cls, plan: _BankPlan, nl: int, nb: int) -> _Sweep:
        self = cls()
        self.c1 = plan.c1.reshape(nl, nb)
        self.first = (plan.to_data + plan.c1).reshape(nl, nb)  # a conflicting bank's first run
        c2 = plan.c2.reshape(nl, nb)
        self.c2_max = c2.max(axis=1)
        self.tail_l = np.maximum(self.first, c2).max(axis=1)
        self.acts_l = plan.again_l + nb  # every bank's first run misses too, unless it hits
        # hit pattern -> (ends, ACT budgets) - now, completion - now, ACTs (TransactionModel._serve_sweep)
        self.memo: dict[bytes, tuple[Any, ...]] = {}
        for v in (self.first, self.c2_max, self.tail_l, self.acts_l):
            v.setflags(write=False)
        return self
