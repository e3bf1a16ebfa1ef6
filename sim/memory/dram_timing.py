"""The resolved DRAM timing set: every JEDEC-style constraint as whole clock cycles, in picoseconds.

Convention (one, used everywhere): parameters give timings as durations ("14ns"); the device rounds each
up to whole cycles of its command clock ``tCK`` once, at build time, the way JEDEC turns a datasheet
nanosecond value into a cycle count (``nX = ceil(tX / tCK)``). Only ``tBURST`` is not rounded: it is
the data-bus time of one burst, ``burst_bytes`` over the pseudo-channel's TSV lanes at the pin rate,
so the twin's peak (``width x rate``) is exact.

The controller (``dram3d``) and the independent checker (``dram_checker``) both read this set; neither
shares the other's rule code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from sim.core.units import transfer_ps

# Timing parameters rounded to tCK (names match the device parameters).
ROUNDED = (
    "tCL",
    "tCWL",
    "tRCD",
    "tRP",
    "tRAS",
    "tRC",
    "tCCD_S",
    "tCCD_L",
    "tRRD_S",
    "tRRD_L",
    "tFAW",
    "tWR",
    "tWTR_S",
    "tWTR_L",
    "tRTP",
    "tRTW",
    "tREFI",
    "tRFC",
    "tRFCsb",
)


def round_to_clock(t_ps: int, tck_ps: int) -> int:
    """``t_ps`` rounded up to whole clock cycles (JEDEC rounding), in ps; 0 stays 0."""
    if t_ps <= 0:
        return 0
    return math.ceil(t_ps / tck_ps - 1e-9) * tck_ps


@dataclass(frozen=True, slots=True)
class DramTiming:
    """All timing constraints of one DRAM device in integer ps (see module docstring)."""

    tCK: int
    tBURST: int
    tCL: int
    tCWL: int
    tRCD: int
    tRP: int
    tRAS: int
    tRC: int
    tCCD_S: int
    tCCD_L: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tWR: int
    tWTR_S: int
    tWTR_L: int
    tRTP: int
    tRTW: int
    tREFI: int
    tRFC: int
    tRFCsb: int
    refresh_mode: str  # "per_bank", "all_bank" or "off"
    refresh_postpone: int  # refreshes that may be postponed (JEDEC allows 8)

    @classmethod
    def from_params(cls, p: Any) -> DramTiming:
        """Resolve a ``Dram3D.Params`` (or anything with the same attributes)."""
        tck = p.tCK
        values = {name: round_to_clock(getattr(p, name), tck) for name in ROUNDED}
        if values["tRC"] == 0:  # not given: JEDEC tRC = tRAS + tRP
            values["tRC"] = values["tRAS"] + values["tRP"]
        lane_bits = p.tsv_width_bits // p.pseudo_channels
        return cls(
            tCK=tck,
            tBURST=burst_ps(p.burst_bytes, lane_bits, p.tsv_rate),
            refresh_mode=p.refresh_mode,
            refresh_postpone=p.refresh_postpone,
            **values,
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def burst_ps(burst_bytes: int, lane_bits: int, pin_rate_Bps: float) -> int:
    """Data-bus time of one burst: ``burst_bytes`` over ``lane_bits`` pins at ``pin_rate_Bps`` each."""
    return transfer_ps(burst_bytes, lane_bits * pin_rate_Bps)
