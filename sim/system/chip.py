"""A chip as built hardware: its compute die and its named memories, each with the parts it owns.

A :class:`ChipMemory` is one named memory of a chip: ``stacks`` identical devices that interleave
it, plus the parts that belong to that memory in hardware: a prefetch buffer (when the system file
or the memory kind asks for one) and near-memory MAC units (when the system file declares them).
Every access is split evenly over the stacks, so each stack sees the same request stream; one
representative device (and one prefetcher) is simulated with a stack's share and the memory's
bandwidth is ``stacks`` times that device's. This keeps contention between streams on the same
memory (weights against KV) and cuts the events by the stack count.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sim.compute.die import ComputeDie
from sim.compute.nearmem import NearMemoryUnits
from sim.core.component import Component
from sim.memory.device import MemoryDevice
from sim.memory.prefetch import Prefetcher

if TYPE_CHECKING:
    from sim.system.spec import MemorySpec, SystemSpec


class ChipMemory:
    """One named memory of a chip (see the module docstring)."""

    def __init__(
        self,
        spec: MemorySpec,
        device: MemoryDevice,
        prefetcher: Prefetcher | None,
        near: NearMemoryUnits | None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.device = device
        self.stacks = spec.stacks
        self.prefetcher = prefetcher
        self.near = near
        self.peak = spec.stacks * device.peak_bandwidth_Bps()
        self.cursor = 0  # next stream address (per stack), for streaming layouts
        self.capacity = device.capacity_bytes

    @cached_property
    def access_latency_ps(self) -> int:
        """How long an idle stack takes to answer a small read: what a kernel reading this memory on
        demand waits before its bytes flow (microseconds on flash, tens of ns on DRAM)."""
        return self.device.unloaded_latency_ps(64)

    def share(self, nbytes: float) -> int:
        """One stack's part of an access of ``nbytes``."""
        return max(1, math.ceil(nbytes / self.stacks))


class Chip(Component):
    """One chip of a system: a compute die and its memories, built from the system's chip spec."""

    def __init__(self, sim: Any, name: str, system: SystemSpec, parent: Component | None = None) -> None:
        self.system = system
        super().__init__(sim, name, None, parent)

    def build(self) -> None:
        self.die = ComputeDie(self.sim, "die", self.system.compute, parent=self)
        self.memories: dict[str, ChipMemory] = {}
        for name, spec in self.system.memories.items():
            device = spec.cls(self.sim, name, params=spec.params, parent=self)
            prefetcher = None
            if spec.prefetch is not None:
                prefetcher = Prefetcher(
                    self.sim, f"{name}_prefetch", device, spec.prefetch.window_params(), parent=self
                )
            near = None
            if spec.near_memory is not None:
                internal = spec.stacks * device.peak_bandwidth_Bps()
                near = NearMemoryUnits(self.sim, f"{name}_mac", spec.near_memory, internal, parent=self)
            self.memories[name] = ChipMemory(spec, device, prefetcher, near)
