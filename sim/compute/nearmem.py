"""MAC units beside the memory: processing-near-memory (PNM) and processing-in-memory (PIM).

The paper's distinction (Ma & Patterson, Table 4): **PNM** puts logic on a separate die next to
the memory (an HBM base die, a logic die under a 3D DRAM stack, a flash controller die), reads the
memory at its internal bandwidth and lets the model be split into shards of 16-32 GB. **PIM** puts
small units beside each DRAM bank on the memory die itself: more bandwidth per watt, but every
weight shard must fit one bank (32-64 MB), which is what makes software sharding hard.

The units run the GEMMs whose weights live in their memory; only the (small) result vectors leave.
Where they read the weights decides the time and the energy:

* ``local_bandwidth = 0`` (PNM on a logic die under the stack): through the memory's own interface,
  the same TSVs every other read of the stack uses, so the weights are a stream on the memory
  device and share its bandwidth with the KV cache; the units' time is their MACs.
* ``local_bandwidth > 0`` (PIM at the banks; near-flash units ahead of a slower host link): on an
  internal path that does not cross the interface. The GEMMs take at least the weights, plus the
  op's other reads of that memory (the same banks or channels), over that bandwidth; the memory
  counts their array energy but no interface energy.

Work on one memory's units queues (one GEMM chain at a time per memory) and the waits are reported.
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
from sim.core.units import BANDWIDTH, COUNT, ENERGY, FREQUENCY, POWER, PS_PER_S, SIZE, TIME
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
        "bandwidth of the units' internal read path (PIM: the banks; near-flash: the NAND channels); "
        "0 = they read through the memory's own interface, sharing it with every other read",
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
    gemm_fixed: int = param(
        0,
        TIME,
        "fixed cost of each GEMM the units run (issue, synchronisation, result write-back); give it the "
        "compute die's value to compare die and near-memory GEMMs like with like",
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
        if self.placement == "in" and self.local_bandwidth == 0:
            raise ConfigError(
                "processing-in-memory reads at the banks: it needs local_bandwidth (the bank-level "
                "internal bandwidth, with its source)",
                where="local_bandwidth",
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

    @property
    def internal(self) -> bool:
        """Whether the units read weights on an internal path rather than the memory's interface."""
        return self.params.local_bandwidth > 0  # type: ignore[attr-defined]

    def gemm_time_ps(
        self, flops: float, weight_bytes: float, shared_bytes: float = 0.0, gemms: int = 0
    ) -> int:
        """The ``gemms`` GEMMs of one op (see :meth:`gemm_parts`), in ps."""
        return sum(self.gemm_parts(flops, weight_bytes, shared_bytes, gemms))

    def gemm_parts(
        self, flops: float, weight_bytes: float, shared_bytes: float = 0.0, gemms: int = 0
    ) -> tuple[int, int, int]:
        """(fixed, MAC, memory) ps of the ``gemms`` GEMMs of one op, as the compute die's kernel model
        splits a kernel: their fixed costs, then the longer of the MACs at the units' rate and the
        weights plus ``shared_bytes`` (the op's other reads of the same memory) over the path the units
        read (internal, or the memory's own interface); the shorter leg is hidden."""
        fixed = gemms * self.params.gemm_fixed  # type: ignore[attr-defined]
        mac = int(flops / self.peak_flops * PS_PER_S + 0.5)
        mem = int((weight_bytes + shared_bytes) / self.bandwidth * PS_PER_S + 0.5)
        return (fixed, mac, 0) if mac >= mem else (fixed, 0, mem)

    def book_gemms(self, duration_ps: int, flops: float, weight_bytes: float, ready_ps: int | None) -> int:
        """Queue an op's GEMMs of ``duration_ps`` no earlier than ``ready_ps``; their finish (ps)."""
        if self.internal:
            self.stat.bytes_read.add(weight_bytes)
        p: NearMemoryParams = self.params  # type: ignore[assignment]
        return self._book(duration_ps, flops, ready_ps, flops * p.energy_per_flop)

    def gemv_time_ps(self, weight_bytes: float, flops: float) -> int:
        """A GEMV reading its weights at the units' bandwidth (internal or the memory's own)."""
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
