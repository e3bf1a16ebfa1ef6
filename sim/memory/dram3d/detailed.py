"""The ``detailed`` level of a 3D DRAM stack: one FR-FCFS command scheduler per pseudo-channel.

Apart from the device because it is the largest and hottest part of the model (one event per DRAM
command) and is checked command by command against the JEDEC rules (its trace goes to
:mod:`sim.memory.dram_checker`) rather than against the closed form. Also home to what the other
modules share with it: the internal event-count indices that the device turns into stats and energy,
and the refresh stagger over lanes (:func:`first_refresh_ps`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from itertools import islice
from typing import TYPE_CHECKING, Any

import simpy

if TYPE_CHECKING:
    from sim.memory.dram3d.device import Dram3D

# Internal event counts (indices into Dram3D._n); flushed into stats and energy when requests finish.
_ACT, _PRE, _CONFLICT, _HIT, _RD, _WR, _REF, _REFSB = range(8)
_N_COUNTS = 8


def first_refresh_ps(lane: int, lanes: int, period: int) -> int:
    """Due time of a lane's first refresh: lanes are staggered evenly over one period."""
    return ((lane + 1) * period) // lanes


class DetailedRequest:
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


class LaneController:
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
        self.bank_q: list[deque[tuple[int, int, bool, DetailedRequest, int]]] = [deque() for _ in range(nb)]
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
    def enqueue(
        self, ctx: DetailedRequest, banks: list[int], rows: list[int], cols: list[int], write: bool
    ) -> None:
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
