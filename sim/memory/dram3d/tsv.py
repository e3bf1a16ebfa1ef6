"""The TSV data bus of one channel of a 3D DRAM stack.

A component of its own so that each channel's bus has its own stats (busy time, bytes, occupancy)
in the stats tree, whatever level timed the bursts: the device reports the bursts each lane moved at
finalize.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.core.component import Component
from sim.core.params import ParamSet, param, positive
from sim.core.units import BANDWIDTH, COUNT
from sim.stats import counter, gauge


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
