"""MAC units beside the memory: processing-near-memory (PNM) and processing-in-memory (PIM).

The paper's distinction (Ma & Patterson, Table 4): **PNM** puts logic on a separate die next to
the memory (an HBM base die, a logic die under a 3D DRAM stack, a flash controller die), reads the
memory at its internal bandwidth and lets the model be split into shards of 16-32 GB. **PIM** puts
small units beside each DRAM bank on the memory die itself: more bandwidth per watt, but every
weight shard must fit one bank (32-64 MB), which is what makes software sharding hard.

A unit executes a GEMV whose weights live in its memory. Its time is the larger of reading the
weights at ``local_bandwidth`` and doing the MACs at ``units x macs_per_cycle x clock``; only the
(small) result vector leaves over the fabric. Work on one memory's units queues (one GEMV at a
time per memory), and the waits are reported.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim.compute.unit import QueuedUnit
from sim.core.component import Component
from sim.core.errors import ConfigError
from sim.core.params import ParamSet, non_negative, one_of, param, positive
from sim.core.registry import register
from sim.core.units import BANDWIDTH, COUNT, ENERGY, FREQUENCY, POWER, PS_PER_S, SIZE
from sim.stats import counter


@dataclass(frozen=True)
class NearMemoryParams(ParamSet):
    """Defaults: a PNM logic die under one HBM-class stack (ASSUMPTIONS, marked per field)."""

    placement: str = param(
        "near", str, "near (logic / base die, PNM) or in (bank-level, PIM)", check=one_of("near", "in")
    )
    units: int = param(
        32,
        COUNT,
        "MAC units per memory (ASSUMPTION: one per HBM pseudo-channel pair; "
        "PIM: one per bank, e.g. Samsung HBM-PIM has 16 per die)",
        check=positive,
    )
    macs_per_cycle: int = param(
        256,
        COUNT,
        "multiply-accumulates per unit per cycle (ASSUMPTION; HBM-PIM: 16-wide FP16 SIMD)",
        check=positive,
    )
    clock: float = param(
        "1GHz", FREQUENCY, "unit clock (ASSUMPTION; HBM-PIM runs at 300 MHz)", check=positive
    )
    local_bandwidth: float = param(
        "0B/s",
        BANDWIDTH,
        "bandwidth the units read their memory at; 0 = the memory's own internal bandwidth",
        check=non_negative,
    )
    energy_per_flop: float = param(
        "0.3pJ",
        ENERGY,
        "dynamic energy per FLOP including the local memory read path (ASSUMPTION: logic-process MACs "
        "beside the memory; the memory's own array energy is counted by the memory)",
        check=non_negative,
    )
    static_power: float = param(
        "0W",
        POWER,
        "power drawn whether busy or not, per memory (ASSUMPTION: 0)",
        check=non_negative,
    )
    shard_limit: int = param(
        "0B",
        SIZE,
        "largest weight shard one unit can own; 0 = no limit (PNM). PIM: one bank, 32-64 MB (paper Table 4)",
        check=non_negative,
    )

    def validate(self) -> None:
        if self.placement == "in" and self.shard_limit == 0:
            raise ConfigError(
                "processing-in-memory needs shard_limit (one bank's capacity, e.g. '64MiB')",
                where="shard_limit",
            )


@register("compute", "near_memory")
class NearMemoryUnits(QueuedUnit):
    """The MAC units of one memory (see module docstring)."""

    Params = NearMemoryParams
    STATS = (counter("bytes_read", "B", "weight bytes read at the local bandwidth"),)

    def __init__(
        self,
        sim: Any,
        name: str,
        params: NearMemoryParams | None = None,
        memory_bandwidth_Bps: float = 0.0,
        parent: Component | None = None,
    ) -> None:
        self.memory_bandwidth_Bps = memory_bandwidth_Bps
        super().__init__(sim, name, params, parent)

    def build(self) -> None:
        p: NearMemoryParams = self.params  # type: ignore[assignment]
        self.bandwidth = p.local_bandwidth or self.memory_bandwidth_Bps
        if self.bandwidth <= 0:
            raise ConfigError(
                "near-memory units need local_bandwidth or a memory to read",
                where=f"{self.path}.local_bandwidth",
            )
        super().build()

    @property
    def peak_flops(self) -> float:
        p: NearMemoryParams = self.params  # type: ignore[assignment]
        return 2.0 * p.units * p.macs_per_cycle * p.clock

    def gemv_time_ps(self, weight_bytes: float, flops: float) -> int:
        t = max(weight_bytes / self.bandwidth, flops / self.peak_flops)
        return int(t * PS_PER_S + 0.5)

    def book(self, weight_bytes: float, flops: float) -> int:
        """Queue a GEMV now without a process; returns its finish time (ps)."""
        self.stat.bytes_read.add(weight_bytes)
        p: NearMemoryParams = self.params  # type: ignore[assignment]
        return self._book(self.gemv_time_ps(weight_bytes, flops), flops, None, flops * p.energy_per_flop)

    def gemv(self, weight_bytes: float, flops: float) -> Generator[simpy.Event, Any, int]:
        """Run a GEMV (as a process); returns its finish time (ps)."""
        return self._wait_until(self.book(weight_bytes, flops))
