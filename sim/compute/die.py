"""The compute die: a roofline (peak FLOP/s per dtype x achievable fraction) with on-chip SRAM.

An operation occupies the die's matrix units for ``flops / (peak[dtype] x achievable)``; operations
on one die run one after another (one stream), so a busy die queues work and the wait is reported.
Memory time is *not* folded in here: the driver overlaps an operation's compute with the memory
streams that feed it, so the roofline emerges from the simulation rather than being assumed.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim.compute.unit import QueuedUnit
from sim.core.params import ParamSet, fraction, non_negative, param, positive
from sim.core.registry import register
from sim.core.units import COMPUTE_RATE, ENERGY, POWER, PS_PER_S, RATIO, SIZE

DTYPES = ("bf16", "fp8", "fp4")


@dataclass(frozen=True)
class ComputeDieParams(ParamSet):
    """Defaults: an H100 SXM5 class die (NVIDIA H100 datasheet, dense, no sparsity)."""

    peak_bf16: float = param(
        "989TFLOPS", COMPUTE_RATE, "dense BF16 peak, FLOP/s (H100 SXM datasheet: 989 TFLOPS)", check=positive
    )
    peak_fp8: float = param(
        "1979TFLOPS",
        COMPUTE_RATE,
        "dense FP8 peak, FLOP/s (H100 SXM datasheet: 1,979 TFLOPS)",
        check=positive,
    )
    peak_fp4: float = param(
        "1979TFLOPS",
        COMPUTE_RATE,
        "dense FP4 peak, FLOP/s (ASSUMPTION: H100 has no FP4 units; FP4 weights run at the FP8 rate)",
        check=positive,
    )
    achievable: float = param(
        0.7,
        RATIO,
        "fraction of peak real kernels reach (ASSUMPTION: ~70% for "
        "large GEMMs; decode GEMVs are memory-bound anyway)",
        check=fraction,
    )
    sram: int = param(
        "50MiB", SIZE, "on-chip SRAM for activations and staging (H100: 50 MB L2)", check=positive
    )
    static_power: float = param(
        "70W",
        POWER,
        "power drawn whether busy or not (ASSUMPTION: H100 SXM idles near 70 W in nvidia-smi)",
        check=non_negative,
    )
    energy_per_flop_bf16: float = param(
        "0.5pJ",
        ENERGY,
        "dynamic energy per BF16 FLOP (DERIVED/ASSUMPTION: H100's 700 W TDP at 989 TFLOPS is 0.71 pJ/FLOP "
        "including static and memory power; ~0.5 pJ for the math)",
        check=non_negative,
    )
    energy_per_flop_fp8: float = param(
        "0.25pJ",
        ENERGY,
        "dynamic energy per FP8 FLOP (ASSUMPTION: half of BF16)",
        check=non_negative,
    )
    energy_per_flop_fp4: float = param(
        "0.125pJ",
        ENERGY,
        "dynamic energy per FP4 FLOP (ASSUMPTION: half of FP8)",
        check=non_negative,
    )

    def peak(self, dtype: str) -> float:
        return {"bf16": self.peak_bf16, "fp8": self.peak_fp8, "fp4": self.peak_fp4}[dtype]

    def energy_per_flop(self, dtype: str) -> float:
        return {
            "bf16": self.energy_per_flop_bf16,
            "fp8": self.energy_per_flop_fp8,
            "fp4": self.energy_per_flop_fp4,
        }[dtype]


@register("compute", "die")
class ComputeDie(QueuedUnit):
    """Roofline compute die (see module docstring)."""

    Params = ComputeDieParams

    def op_time_ps(self, flops: float, dtype: str = "bf16") -> int:
        p: ComputeDieParams = self.params  # type: ignore[assignment]
        return int(flops * PS_PER_S / (p.peak(dtype) * p.achievable) + 0.5)

    def book(self, flops: float, dtype: str = "bf16", ready_ps: int | None = None) -> int:
        """Queue ``flops`` no earlier than ``ready_ps`` without a process; returns the finish (ps)."""
        p: ComputeDieParams = self.params  # type: ignore[assignment]
        return self._book(self.op_time_ps(flops, dtype), flops, ready_ps, flops * p.energy_per_flop(dtype))

    def execute(
        self, flops: float, dtype: str = "bf16", ready_ps: int | None = None
    ) -> Generator[simpy.Event, Any, int]:
        """Run ``flops`` (as a process); returns the finish time (ps)."""
        return self._wait_until(self.book(flops, dtype, ready_ps))
