"""Independent DRAM command-trace checker: replays a trace and reports every broken timing rule.

It shares nothing with the controller in :mod:`sim.memory.dram3d` except the resolved timing set
(:class:`~sim.memory.dram_timing.DramTiming`). The controller pushes "earliest next" registers forward
when it issues; this checker looks backwards instead: for each command it finds the most recent earlier
command each rule names (in the rule's scope: bank, bank group or pseudo-channel) and checks the gap.
State rules (no ACT to an open bank, no RD/WR to a closed bank or another row, no refresh of an open
bank), the four-activate window, data-bus overlap and turnaround, the command buses and the refresh
interval are checked separately.

A trace entry is ``(time_ps, channel, pseudo_channel, bank_group, bank, command, row, column)`` with
commands ``ACT, PRE, RD, WR, REF`` (all banks of the pseudo-channel; bank fields -1) and ``REFSB``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from sim.core.errors import TimingViolation
from sim.memory.dram_timing import DramTiming

Entry = tuple[int, int, int, int, int, str, int, int]

ROW_COMMANDS = frozenset({"ACT", "PRE", "REF", "REFSB"})
COLUMN_COMMANDS = frozenset({"RD", "WR"})


@dataclass(frozen=True)
class Violation:
    """One broken rule: which, when, where, and the gap found versus the gap required."""

    rule: str
    time_ps: int
    channel: int
    pseudo_channel: int
    bank_group: int
    bank: int
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.rule} at {self.time_ps} ps on ch{self.channel}.pc{self.pseudo_channel}"
            f".bg{self.bank_group}.b{self.bank}: {self.detail}"
        )


@dataclass(frozen=True)
class _Rule:
    name: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    scope: str  # "bank", "group" or "lane"
    gap: int


def _rules(t: DramTiming) -> list[_Rule]:
    """Minimum command-to-command gaps (JEDEC-style), written from the datasheet view."""
    write_done = t.tCWL + t.tBURST  # WR command to end of its data
    return [
        _Rule("tRCD", ("ACT",), ("RD", "WR"), "bank", t.tRCD),
        _Rule("tRAS", ("ACT",), ("PRE",), "bank", t.tRAS),
        _Rule("tRP", ("PRE",), ("ACT", "REFSB"), "bank", t.tRP),
        _Rule("tRP", ("PRE",), ("REF",), "lane", t.tRP),
        _Rule("tRC", ("ACT",), ("ACT", "REFSB"), "bank", t.tRC),
        _Rule("tRC", ("ACT",), ("REF",), "lane", t.tRC),
        _Rule("tRRD_S", ("ACT",), ("ACT",), "lane", t.tRRD_S),
        _Rule("tRRD_L", ("ACT",), ("ACT",), "group", t.tRRD_L),
        _Rule("tCCD_S", ("RD",), ("RD",), "lane", t.tCCD_S),
        _Rule("tCCD_S", ("WR",), ("WR",), "lane", t.tCCD_S),
        _Rule("tCCD_L", ("RD",), ("RD",), "group", t.tCCD_L),
        _Rule("tCCD_L", ("WR",), ("WR",), "group", t.tCCD_L),
        _Rule("tRTP", ("RD",), ("PRE",), "bank", t.tRTP),
        _Rule("tWR", ("WR",), ("PRE",), "bank", write_done + t.tWR),
        _Rule("tWTR_S", ("WR",), ("RD",), "lane", write_done + t.tWTR_S),
        _Rule("tWTR_L", ("WR",), ("RD",), "group", write_done + t.tWTR_L),
        _Rule("tRFC", ("REF",), ("ACT", "REF", "REFSB"), "lane", t.tRFC),
        _Rule("tRFCsb", ("REFSB",), ("ACT", "REFSB"), "bank", t.tRFCsb),
    ]


def check_trace(trace: Iterable[Entry], timing: DramTiming, *, end_ps: int | None = None) -> list[Violation]:
    """Every rule the trace breaks (empty list: clean).

    ``end_ps``: the time the trace covers up to, for the refresh-interval rule; by default the last
    command of each pseudo-channel (an idle controller records refreshes only when work resumes).
    """
    lanes: dict[tuple[int, int], list[Entry]] = defaultdict(list)
    for entry in trace:
        lanes[(entry[1], entry[2])].append(entry)
    out: list[Violation] = []
    rules = _rules(timing)
    for lane_key in sorted(lanes):
        cmds = sorted(lanes[lane_key], key=lambda e: e[0])
        out.extend(_check_lane(cmds, timing, rules, end_ps))
    out.sort(key=lambda v: (v.time_ps, v.channel, v.pseudo_channel, v.rule))
    return out


def assert_trace_ok(trace: Iterable[Entry], timing: DramTiming, *, end_ps: int | None = None) -> None:
    """Raise :class:`TimingViolation` naming the first violations, if any."""
    found = check_trace(trace, timing, end_ps=end_ps)
    if found:
        shown = "; ".join(str(v) for v in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise TimingViolation(f"{len(found)} DRAM timing violation(s): {shown}{more}")


def _check_lane(
    cmds: Sequence[Entry], t: DramTiming, rules: list[_Rule], end_ps: int | None
) -> list[Violation]:
    out: list[Violation] = []
    last: dict[tuple[str, object], int] = {}  # (command, scope key) -> time of the latest one
    open_rows: dict[tuple[int, int], int] = {}  # (group, bank) -> open row
    acts: list[int] = []
    data: list[tuple[int, int, str]] = []  # (start, end, RD|WR) of each burst on the data bus
    last_row_cmd = last_col_cmd = None
    refreshes: dict[object, list[int]] = defaultdict(list)
    banks_seen: set[tuple[int, int]] = set()

    def bad(rule: str, e: Entry, detail: str) -> None:
        out.append(Violation(rule, e[0], e[1], e[2], e[3], e[4], detail))

    for e in cmds:
        time, _, _, bg, bank, cmd, row, _ = e
        scopes = {"bank": (bg, bank), "group": bg, "lane": None}
        # -- pairwise gaps ---------------------------------------------------------------------
        for rule in rules:
            if cmd not in rule.after:
                continue
            if cmd == "REF" and rule.scope != "lane":
                continue
            for before in rule.before:
                prev = last.get((before, scopes[rule.scope] if cmd != "REF" else None))
                if prev is not None and time - prev < rule.gap:
                    bad(rule.name, e, f"{cmd} {time - prev} ps after {before}, needs {rule.gap} ps")
        # -- command buses ---------------------------------------------------------------------
        if cmd in ROW_COMMANDS:
            if last_row_cmd is not None and time - last_row_cmd < t.tCK:
                bad("row_bus", e, f"{cmd} {time - last_row_cmd} ps after the previous row command")
            last_row_cmd = time
        elif cmd in COLUMN_COMMANDS:
            if last_col_cmd is not None and time - last_col_cmd < t.tCK:
                bad("column_bus", e, f"{cmd} {time - last_col_cmd} ps after the previous column command")
            last_col_cmd = time
        else:
            bad("unknown_command", e, f"unknown command {cmd!r}")
            continue
        # -- bank state ------------------------------------------------------------------------
        key = (bg, bank)
        if cmd == "ACT":
            if key in open_rows:
                bad("act_open_bank", e, f"ACT row {row} while row {open_rows[key]} is open")
            open_rows[key] = row
            acts.append(time)
            if len(acts) >= 5 and time - acts[-5] < t.tFAW:
                bad("tFAW", e, f"5 ACTs within {time - acts[-5]} ps, window {t.tFAW} ps")
            banks_seen.add(key)
        elif cmd == "PRE":
            open_rows.pop(key, None)
        elif cmd in COLUMN_COMMANDS:
            if key not in open_rows:
                bad("closed_bank", e, f"{cmd} to a closed bank")
            elif open_rows[key] != row:
                bad("wrong_row", e, f"{cmd} to row {row} while row {open_rows[key]} is open")
            lat = t.tCL if cmd == "RD" else t.tCWL
            data.append((time + lat, time + lat + t.tBURST, cmd))
        elif cmd == "REF":
            if open_rows:
                bad("ref_open_bank", e, f"REF with {len(open_rows)} bank(s) open")
            refreshes["lane"].append(time)
        elif cmd == "REFSB":
            if key in open_rows:
                bad("ref_open_bank", e, "REFSB to an open bank")
            refreshes[key].append(time)
            banks_seen.add(key)
        # -- remember --------------------------------------------------------------------------
        if cmd == "REF":
            last[(cmd, None)] = time
        else:
            last[(cmd, (bg, bank))] = time
            last[(cmd, bg)] = time
            last[(cmd, None)] = time
    out.extend(_check_data_bus(cmds[0] if cmds else None, data, t))
    out.extend(_check_refresh_interval(cmds, refreshes, banks_seen, t, end_ps))
    return out


def _check_data_bus(first: Entry | None, data: list[tuple[int, int, str]], t: DramTiming) -> list[Violation]:
    """Bursts on one pseudo-channel's TSV lanes never overlap; read-to-write leaves tRTW idle."""
    out: list[Violation] = []
    if first is None:
        return out
    data.sort()
    for (_, e0, d0), (s1, _, d1) in pairwise(data):
        need = e0 + (t.tRTW if (d0, d1) == ("RD", "WR") else 0)
        if s1 < need:
            rule = "tRTW" if s1 >= e0 else "data_bus"
            detail = f"{d1} data at {s1} ps, bus free at {need} ps after {d0} data"
            out.append(Violation(rule, s1, first[1], first[2], -1, -1, detail))
    return out


def _check_refresh_interval(
    cmds: Sequence[Entry],
    refreshes: dict[object, list[int]],
    banks_seen: set[tuple[int, int]],
    t: DramTiming,
    end_ps: int | None,
) -> list[Violation]:
    """All-bank: a REF every tREFI, up to ``refresh_postpone`` late. Per-bank: every bank once per
    2 x tREFI (a bank may go first in one round and last in the next), with the same allowance."""
    out: list[Violation] = []
    if t.refresh_mode == "off" or not cmds:
        return out
    ch, pc = cmds[0][1], cmds[0][2]
    end = cmds[-1][0] if end_ps is None else end_ps
    if t.refresh_mode == "all_bank":
        limit = (1 + t.refresh_postpone) * t.tREFI
        scopes: list[object] = ["lane"]
    else:
        limit = (2 + t.refresh_postpone) * t.tREFI
        scopes = sorted(banks_seen | {k for k in refreshes if k != "lane"})  # type: ignore[type-var]
    for scope in scopes:
        times = [0, *refreshes.get(scope, []), end]
        for a, b in pairwise(times):
            if b - a > limit:
                bg, bank = scope if isinstance(scope, tuple) else (-1, -1)
                out.append(
                    Violation("tREFI", b, ch, pc, bg, bank, f"{b - a} ps without refresh, limit {limit} ps")
                )
    return out
