"""Address mappings: how a byte address picks channel, pseudo-channel, bank group, bank, row and column.

A mapping is a field order written most-significant first, Ramulator style: ``RoBaCoBgPcCh`` means the
burst index (address // burst_bytes) is a mixed-radix number whose least significant digit is the
channel, then the pseudo-channel, the bank group, the column, the bank and finally the row. Fields:

==  ===============  =====================
Ro  row              rows per bank
Ba  bank             banks per bank group
Bg  bank group       bank groups
Pc  pseudo-channel   pseudo-channels
Co  column (burst)   row_bytes / burst_bytes
Ch  channel          channels
==  ===============  =====================

The row field must sit above the column field, so one row of one bank is a "row run": the bursts that
can be served by a single activation. Transaction-level timing works on row runs, not bursts:
:meth:`AddressMapping.runs` returns them vectorised, so a 256 KiB request costs a few numpy calls.

Registered under kind ``address_mapping``; add one by subclassing with a new ``ORDER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim.core.errors import ConfigError
from sim.core.registry import REGISTRY, lookup, register

FIELDS = ("Ro", "Ba", "Bg", "Pc", "Co", "Ch")


@dataclass(frozen=True)
class Geometry:
    """The organisation of one DRAM stack (counts, not sizes, except ``burst_bytes``)."""

    channels: int
    pseudo_channels: int
    bank_groups: int
    banks_per_group: int
    rows: int
    columns: int  # bursts per row
    burst_bytes: int

    @property
    def lanes(self) -> int:
        """Independent pseudo-channels of the stack (each owns its banks and its TSV lanes)."""
        return self.channels * self.pseudo_channels

    @property
    def banks_per_lane(self) -> int:
        return self.bank_groups * self.banks_per_group

    @property
    def row_bytes(self) -> int:
        return self.columns * self.burst_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.lanes * self.banks_per_lane * self.rows * self.row_bytes

    def radix(self, field: str) -> int:
        return {
            "Ro": self.rows,
            "Ba": self.banks_per_group,
            "Bg": self.bank_groups,
            "Pc": self.pseudo_channels,
            "Co": self.columns,
            "Ch": self.channels,
        }[field]


@dataclass(frozen=True, slots=True)
class DramCoord:
    """Where one burst lives."""

    channel: int
    pseudo_channel: int
    bank_group: int
    bank: int
    row: int
    column: int


def parse_order(order: str) -> tuple[str, ...]:
    """'RoBaCoBgPcCh' -> ('Ro', 'Ba', 'Co', 'Bg', 'Pc', 'Ch'); each field once, Ro above Co."""
    tokens = tuple(order[i : i + 2] for i in range(0, len(order), 2))
    if len(order) % 2 or sorted(tokens) != sorted(FIELDS):
        raise ConfigError(
            f"mapping {order!r} must name each of {', '.join(FIELDS)} exactly once",
            where="address_mapping",
        )
    if tokens.index("Ro") > tokens.index("Co"):
        raise ConfigError(
            f"mapping {order!r}: the row field must be above the column field (row runs)",
            where="address_mapping",
        )
    return tokens


class AddressMapping:
    """A field-order mapping over a :class:`Geometry` (see module docstring)."""

    ORDER: ClassVar[str] = ""
    DESCRIPTION: ClassVar[str] = ""

    def __init__(self, geometry: Geometry) -> None:
        self.geometry = g = geometry
        msb_first = parse_order(self.ORDER)
        lsb_first = list(reversed(msb_first))
        co = lsb_first.index("Co")
        self.low = lsb_first[:co]  # fields below the column, least significant first
        self.high = lsb_first[co + 1 :]
        # (field -> (unit, weight)) where unit is 'lane', 'bank' or 'row'.
        self._weight = {
            "Ch": ("lane", g.pseudo_channels),
            "Pc": ("lane", 1),
            "Bg": ("bank", g.banks_per_group),
            "Ba": ("bank", 1),
            "Ro": ("row", 1),
        }
        self.L = int(np.prod([g.radix(f) for f in self.low])) if self.low else 1
        self.C = g.columns
        self.CL = self.C * self.L
        ls = np.arange(self.L, dtype=np.int64)
        self._l = ls
        self._lane_l, self._bank_l, _ = self._digits(ls, self.low)
        self._full = np.full(self.L, self.C, dtype=np.int64)
        self._lsb = lsb_first
        # (radix, unit, weight) per field LSB first, unit 0 lane, 1 bank, 2 row, 3 column: the scalar
        # decode's table (built once; :meth:`Geometry.radix` builds a dict per call).
        units = {"lane": 0, "bank": 1, "row": 2}
        self._lsb_digits = tuple(
            (g.radix(f), 3, 1) if f == "Co" else (g.radix(f), units[self._weight[f][0]], self._weight[f][1])
            for f in lsb_first
        )
        self._high_fields = [(f, g.radix(f), *self._weight[f]) for f in self.high]
        # Consecutive high blocks that are sure to touch distinct banks: the product of the radices of
        # the high fields below the row (their digits differ for any run of that many blocks).
        distinct = 1
        for f in self.high:
            if f == "Ro":
                break
            distinct *= g.radix(f)
        self.distinct_blocks = distinct
        # One "row sweep" of the high blocks: ``distinct_blocks`` blocks for each row, then the fields
        # above the row (``h = inner + D * (row + rows * outer)``).
        self.sweep_blocks = distinct * g.rows

    # -- decoding ------------------------------------------------------------------------------
    def _digits(self, values: np.ndarray, order: list[str] | tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """(lane, bank, row) contributions of the fields ``order`` (LSB first) of ``values``."""
        lane = np.zeros_like(values)
        bank = np.zeros_like(values)
        row = np.zeros_like(values)
        rest = values
        out = {"lane": lane, "bank": bank, "row": row}
        for f in order:
            r = self.geometry.radix(f)
            unit, w = self._weight[f]
            out[unit] += (rest % r) * w
            rest = rest // r
        return lane, bank, row

    def _high(self, h: int) -> tuple[int, int, int]:
        """(lane, bank, row) contributions of high-block index ``h`` (scalar)."""
        lane = bank = row = 0
        for _, r, unit, w in self._high_fields:
            v = h % r
            h //= r
            if unit == "lane":
                lane += v * w
            elif unit == "bank":
                bank += v * w
            else:
                row += v
        return lane, bank, row

    def blocks_spanned(self, b0: int, b1: int) -> int:
        """Number of high blocks bursts ``[b0, b1)`` touch."""
        return (b1 - 1) // self.CL - b0 // self.CL + 1

    def decode_burst(self, b: int) -> tuple[int, int, int, int]:
        """(lane, bank-in-lane, row, column) of burst index ``b`` (scalar, no numpy)."""
        lane = bank = row = col = 0
        for r, unit, w in self._lsb_digits:
            v = b % r
            b //= r
            if unit == 0:
                lane += v * w
            elif unit == 1:
                bank += v * w
            elif unit == 2:
                row += v
            else:
                col = v
        return lane, bank, row, col

    def decode(self, addr: int) -> DramCoord:
        """Coordinates of the burst holding byte ``addr``."""
        g = self.geometry
        lane, bank, row, col = self.decode_burst(addr // g.burst_bytes)
        return DramCoord(
            channel=lane // g.pseudo_channels,
            pseudo_channel=lane % g.pseudo_channels,
            bank_group=bank // g.banks_per_group,
            bank=bank % g.banks_per_group,
            row=row,
            column=col,
        )

    def encode(self, coord: DramCoord) -> int:
        """Byte address of the first byte of the burst at ``coord`` (inverse of :meth:`decode`)."""
        g = self.geometry
        digit = {
            "Ro": coord.row,
            "Ba": coord.bank,
            "Bg": coord.bank_group,
            "Pc": coord.pseudo_channel,
            "Co": coord.column,
            "Ch": coord.channel,
        }
        b = 0
        for f in reversed(self._lsb):  # most significant first
            r = g.radix(f)
            if not 0 <= digit[f] < r:
                raise ValueError(f"{f}={digit[f]} outside [0, {r})")
            b = b * r + digit[f]
        return b * g.burst_bytes

    def bursts_by_lane(self, b0: int, b1: int) -> dict[int, tuple[list[int], list[int], list[int]]]:
        """Bursts ``[b0, b1)`` grouped by lane, each in address order: lane -> (banks, rows, columns)."""
        out: dict[int, tuple[list[int], list[int], list[int]]] = {}
        if b1 - b0 <= 32:
            for b in range(b0, b1):
                lane, bank, row, col = self.decode_burst(b)
                entry = out.get(lane)
                if entry is None:
                    entry = out[lane] = ([], [], [])
                entry[0].append(bank)
                entry[1].append(row)
                entry[2].append(col)
            return out
        b = np.arange(b0, b1, dtype=np.int64)
        low = b % self.L
        col = (b // self.L) % self.C
        lane_h, bank_h, row_h = self._digits(b // self.CL, self.high)
        lane = lane_h + self._lane_l[low]
        bank = bank_h + self._bank_l[low]
        order = np.argsort(lane, kind="stable")
        lane_s = lane[order]
        cuts = np.flatnonzero(np.diff(lane_s)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(lane_s)]))
        bank_s, row_s, col_s = bank[order], row_h[order], col[order]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            out[int(lane_s[s])] = (bank_s[s:e].tolist(), row_s[s:e].tolist(), col_s[s:e].tolist())
        return out

    def runs(self, b0: int, b1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Row runs of bursts ``[b0, b1)`` in address order: (lane, bank-in-lane, row, bursts).

        Burst index ``b = h*CL + c*L + l`` (``l``: fields below the column, ``c``: column, ``h``: fields
        above). In one ``h`` block each ``l`` is one (lane, bank) holding one row, so the number of its
        bursts in ``[x, y)`` is ``ceil((y-l)/L) - ceil((x-l)/L)``: no per-burst work.
        """
        L, CL = self.L, self.CL
        ls = self._l
        h0, h1 = b0 // CL, (b1 - 1) // CL
        x = b0 - h0 * CL
        if h0 == h1:
            y = b1 - h0 * CL
            counts = self._full if (x == 0 and y == CL) else (y - ls + L - 1) // L - (x - ls + L - 1) // L
            hs = np.array([h0], dtype=np.int64)
            counts2 = counts[None, :]
        else:
            nh = h1 - h0 + 1
            counts2 = np.empty((nh, L), dtype=np.int64)
            counts2[:] = self._full
            counts2[0] = self.C - (x - ls + L - 1) // L
            y = b1 - h1 * CL
            counts2[-1] = (y - ls + L - 1) // L
            hs = np.arange(h0, h1 + 1, dtype=np.int64)
        if len(hs) <= 8:
            lane_h, bank_h, row_h = np.array([self._high(h) for h in hs.tolist()], dtype=np.int64).T
        else:
            lane_h, bank_h, row_h = self._digits(hs, self.high)
        lane = (lane_h[:, None] + self._lane_l[None, :]).ravel()
        bank = (bank_h[:, None] + self._bank_l[None, :]).ravel()
        row = np.repeat(row_h, L)
        counts = counts2.ravel()
        keep = counts > 0
        if keep.all():
            return lane, bank, row, counts
        return lane[keep], bank[keep], row[keep], counts[keep]

    def bank_runs(self, b0: int, b1: int) -> BankRuns:
        """Row runs of bursts ``[b0, b1)`` summed per (lane, bank), without listing the runs.

        High block ``h = i + D * (r + R * o)`` (``D`` = :attr:`distinct_blocks`, ``R`` = rows): the
        inner digits ``i`` and outer digits ``o`` pick the lane and bank together with the low index
        ``l``, the middle digit is the row. So one bank ``(o, i, l)`` meets the blocks
        ``h = h_first, h_first + D, ...`` of its ``(o, i)`` segment, one row each, rows ascending, and
        only the request's first and last blocks can hold a partial (or empty) run. Cost: one entry
        per bank touched, whatever the request size.
        """
        L, C, CL, D = self.L, self.C, self.CL, self.distinct_blocks
        R, DR = self.geometry.rows, self.sweep_blocks
        ls = self._l
        h0, h1 = b0 // CL, (b1 - 1) // CL
        x, y = b0 - h0 * CL, b1 - h1 * CL
        # Bursts per low index l of a block: table row 0 inside the request, 1 in block h0, 2 in
        # block h1, 3 in both (a one-block request); row (h == h0) + 2 (h == h1) for block h.
        counts = np.empty((4, L), dtype=np.int64)
        counts[0] = C
        counts[1] = C - (x - ls + L - 1) // L
        counts[2] = (y - ls + L - 1) // L
        counts[3] = counts[2] + counts[1] - C
        # (o, i) segments: the blocks of [h0, h1] with one outer value o, then per inner value i the
        # first and last of them (every i when a segment spans D blocks or more).
        o0, o1 = h0 // DR, h1 // DR
        if o0 == o1 and h1 - h0 < D:  # fewer blocks than inner values: each block its own bank set
            fh = lh = np.arange(h0, h1 + 1, dtype=np.int64)
        else:
            outer = np.arange(o0, o1 + 1, dtype=np.int64)[:, None]
            a = np.maximum(outer * DR, h0)
            b = np.minimum(outer * DR + DR - 1, h1)
            inner = np.arange(D, dtype=np.int64)
            fh = (a + (inner - a) % D).ravel()
            lh = (b - (b - inner) % D).ravel()
            ok = fh <= lh
            if not ok.all():
                fh, lh = fh[ok], lh[ok]
        if len(fh) <= 8:
            lane_h, bank_h, _ = np.array([self._high(h) for h in fh.tolist()], dtype=np.int64).T
        else:
            lane_h, bank_h, _ = self._digits(fh, self.high)

        def count(h: np.ndarray) -> np.ndarray:  # (blocks,) -> (blocks, L)
            return counts[(h == h0) + 2 * (h == h1)]

        # Only blocks h0 and h1 can leave a bank empty: its first (last) run is then one block on.
        c_first, c_last = count(fh), count(lh)
        drop_f = c_first == 0
        drop_l = (c_last == 0) & (lh != fh)[:, None]
        m = ((lh - fh) // D + 1)[:, None] - drop_f - drop_l
        if drop_f.any():
            c_first = np.where(drop_f, count(fh + D), c_first)
        if drop_l.any():
            c_last = np.where(drop_l, count(lh - D), c_last)
        total = np.where(m >= 2, c_first + c_last + (m - 2) * C, c_first)
        rest = np.where(m >= 3, C, np.where(m == 2, c_last, 0))
        lane = lane_h[:, None] + self._lane_l
        bank = bank_h[:, None] + self._bank_l
        first_row = ((fh // D) % R)[:, None] + drop_f  # the segment's rows ascend with h, no wrap
        last_row = ((lh // D) % R)[:, None] - drop_l
        fields = (lane, bank, m, first_row, c_first, last_row, rest, total)
        keep = m > 0
        if keep.all():
            return BankRuns(*(v.ravel() for v in fields))
        return BankRuns(*(v[keep] for v in fields))


@dataclass(frozen=True, slots=True)
class BankRuns:
    """Row runs of one request summed per (lane, bank) touched (arrays, one entry per bank).

    The runs of a bank are in address order with ascending, distinct rows: ``runs`` of them, the first
    on ``first_row`` with ``first_count`` bursts, the last on ``last_row``; ``rest_max`` is the largest
    burst count of the runs after the first (0 when there is one run) and ``bursts`` their sum.
    """

    lane: np.ndarray
    bank: np.ndarray
    runs: np.ndarray
    first_row: np.ndarray
    first_count: np.ndarray
    last_row: np.ndarray
    rest_max: np.ndarray
    bursts: np.ndarray


def get_mapping(name: str) -> type[AddressMapping]:
    """The mapping class registered as ``name`` (built-ins without loading the whole registry)."""
    table = REGISTRY.entries.get("address_mapping", {})
    cls = table.get(name)
    if cls is None:
        cls = lookup("address_mapping", name)
    return cls


@register("address_mapping", "RoBaCoBgPcCh")
class ChannelInterleaved(AddressMapping):
    ORDER = "RoBaCoBgPcCh"
    DESCRIPTION = (
        "streaming: consecutive bursts rotate over channels, pseudo-channels and bank groups before the "
        "column advances, so a sequential stream uses every TSV lane and hides tCCD_L and ACTs"
    )


@register("address_mapping", "RoBaBgPcChCo")
class RowInterleaved(AddressMapping):
    ORDER = "RoBaBgPcChCo"
    DESCRIPTION = (
        "row-interleaved (page interleaving): a whole row is contiguous, then the next channel; maximal "
        "row-buffer locality per request, little parallelism for small requests"
    )


@register("address_mapping", "ChPcRoBaBgCo")
class ChannelPartitioned(AddressMapping):
    ORDER = "ChPcRoBaBgCo"
    DESCRIPTION = (
        "channel-partitioned: each pseudo-channel owns one contiguous slice of the address space "
        "(placement control, e.g. one tensor shard per channel)"
    )
