"""The compute die: peak FLOP/s per precision, on-chip SRAM, and a kernel model calibrated on
measured kernels.

An op on the die is a chain of kernels (:mod:`sim.compute.kernels`) that run one after another: each
takes ``max(floor, fixed + soft(memory leg, compute leg))`` with its class's calibrated parameters,
so small GEMMs lose to tile quantisation and launch costs, elementwise kernels are the memory-bound
kernels they are, and large GEMMs reach the measured fraction of peak. Operations on one die run
one after another (one stream); a busy die queues work and the wait is reported. The memory streams
that feed an op are simulated by the memories themselves; the driver overlaps them with the die's
kernels, so the roofline emerges from the simulation rather than being assumed.

The defaults are an *ideal* die (no fixed costs, full efficiency: a pure roofline); the presets
``h100-sxm`` and ``a100-sxm`` (:mod:`sim.compute.presets`) carry the values fitted on measured
kernels by :mod:`sim.calibration.compute`, with their fit error.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import simpy

from sim.compute.kernels import Kernel, KernelModel, KernelTime, Sources
from sim.compute.unit import QueuedUnit
from sim.core.params import ParamSet, fraction, non_negative, param, positive
from sim.core.registry import register
from sim.core.units import BANDWIDTH, COMPUTE_RATE, COUNT, ENERGY, POWER, PS_PER_S, RATIO, SIZE, TIME
from sim.stats import counter

DTYPES = ("bf16", "fp8", "fp4")

_IDEAL = "default: 0 (ideal); presets give fitted values"


def _efficiency(doc: str) -> Any:
    return param(1.0, RATIO, doc + " (default: 1.0, ideal; presets give fitted values)", check=fraction)


@dataclass(frozen=True)
class ComputeDieParams(ParamSet):
    """A compute die. Peaks default to an H100 SXM (datasheet, dense); the kernel model defaults to
    an ideal die, and the presets carry calibrated values."""

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
    sram_bandwidth: float = param(
        "0B/s",
        BANDWIDTH,
        "bandwidth kernels read on-die SRAM at (a prefetch buffer on the die); 0 = as fast as the "
        "memory the data came from (no gain)",
        check=non_negative,
    )
    fitted_memory_latency: int = param(
        0,
        TIME,
        "access latency of the memory the kernel model was fitted on: already inside the fitted fixed "
        "costs, so a kernel reading a memory on demand waits only for that memory's latency beyond it",
        check=non_negative,
    )
    # -- the kernel model (sim.compute.kernels) -------------------------------------------------
    units: int = param(1, COUNT, "parallel compute units (SMs) GEMM tiles are spread over", check=positive)
    gemm_tile_m: int = param(
        1, COUNT, "GEMM output tile rows (tokens); 1 = no tile quantisation", check=positive
    )
    gemm_tile_n: int = param(1, COUNT, "GEMM output tile columns; 1 = no tile quantisation", check=positive)
    gemm_fixed: int = param(
        0, TIME, "fixed time of every GEMM (launch, ramp, tail); " + _IDEAL, check=non_negative
    )
    gemm_floor: int = param(0, TIME, "shortest GEMM; " + _IDEAL, check=non_negative)
    gemm_bw_efficiency: float = _efficiency("fraction of the source's peak bandwidth a GEMM streams at")
    gemm_compute_efficiency: float = _efficiency("fraction of peak FLOP/s a full wave of GEMM tiles reaches")
    gemm_overlap: float = param(
        64.0,
        RATIO,
        "p of the soft maximum (t_mem^p + t_cmp^p)^(1/p) of a GEMM's legs; >= 64 is max() (default: "
        "64, perfect overlap)",
        check=lambda v: None if v >= 1 else "a value >= 1",
    )
    norm_fixed: int = param(
        0, TIME, "fixed time of a norm kernel (RMSNorm / LayerNorm); " + _IDEAL, check=non_negative
    )
    norm_floor: int = param(0, TIME, "shortest norm kernel; " + _IDEAL, check=non_negative)
    norm_bw_efficiency: float = _efficiency("fraction of peak bandwidth a norm kernel streams at")
    rope_fixed: int = param(0, TIME, "fixed time of a rotary-embedding kernel; " + _IDEAL, check=non_negative)
    rope_floor: int = param(0, TIME, "shortest rotary-embedding kernel; " + _IDEAL, check=non_negative)
    rope_bw_efficiency: float = _efficiency("fraction of peak bandwidth a rotary-embedding kernel streams at")
    act_fixed: int = param(
        0, TIME, "fixed time of an activation kernel (SiLU-and-mul); " + _IDEAL, check=non_negative
    )
    act_floor: int = param(0, TIME, "shortest activation kernel; " + _IDEAL, check=non_negative)
    act_bw_efficiency: float = _efficiency("fraction of peak bandwidth an activation kernel streams at")
    add_fixed: int = param(0, TIME, "fixed time of a residual add; " + _IDEAL, check=non_negative)
    add_floor: int = param(0, TIME, "shortest residual add; " + _IDEAL, check=non_negative)
    add_bw_efficiency: float = _efficiency("fraction of peak bandwidth a residual add streams at")
    emb_fixed: int = param(0, TIME, "fixed time of the embedding gather; " + _IDEAL, check=non_negative)
    emb_floor: int = param(0, TIME, "shortest embedding gather; " + _IDEAL, check=non_negative)
    emb_bw_efficiency: float = _efficiency("fraction of peak bandwidth the embedding gather streams at")
    attn_decode_fixed: int = param(
        0, TIME, "fixed time of a decode-attention kernel; " + _IDEAL, check=non_negative
    )
    attn_decode_floor: int = param(0, TIME, "shortest decode-attention kernel; " + _IDEAL, check=non_negative)
    attn_decode_bw_efficiency: float = _efficiency(
        "fraction of peak bandwidth decode attention (FlashDecoding-style) streams the KV cache at"
    )
    attn_prefill_fixed: int = param(
        0, TIME, "fixed time of a prefill-attention kernel; " + _IDEAL, check=non_negative
    )
    attn_prefill_floor: int = param(
        0, TIME, "shortest prefill-attention kernel; " + _IDEAL, check=non_negative
    )
    attn_prefill_bw_efficiency: float = _efficiency("fraction of peak bandwidth prefill attention streams at")
    attn_prefill_compute_efficiency: float = param(
        1.0,
        RATIO,
        "fraction of peak FLOP/s prefill attention reaches on the causal-mask FLOPs (default: 1.0, ideal)",
        check=fraction,
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
    """A compute die with a calibrated kernel model (see module docstring)."""

    Params = ComputeDieParams
    STATS = (counter("kernels", "kernels", "kernels executed"),)

    def build(self) -> None:
        super().build()
        self.kernels = KernelModel(self.params)

    def kernel_times(self, kernels: Sequence[Kernel], src: Sources) -> list[KernelTime]:
        """Each kernel's time on this die reading its bytes from ``src`` (no booking)."""
        return [self.kernels.time(k, src) for k in kernels]

    def book_kernels(
        self, kernels: Sequence[Kernel], times: Sequence[KernelTime], ready_ps: int | None = None
    ) -> int:
        """Queue ``kernels`` (already timed) back to back; returns the finish time (ps)."""
        p: ComputeDieParams = self.params  # type: ignore[assignment]
        flops = sum(k.flops for k in kernels)
        energy = sum(k.flops * p.energy_per_flop(k.precision) for k in kernels)
        duration = sum(t.total_ps for t in times)
        return self.book_timed(duration, flops, energy, kernels, ready_ps)

    def book_timed(
        self,
        duration_ps: int,
        flops: float,
        energy_pj: float,
        kernels: Sequence[Kernel],
        ready_ps: int | None,
    ) -> int:
        """Queue ``kernels`` whose totals are already known (a caller that reuses them); the finish (ps)."""
        self.stat.kernels.add(len(kernels))
        return self._book(duration_ps, flops, ready_ps, energy_pj)

    def op_time_ps(self, flops: float, dtype: str = "bf16") -> int:
        """Pure compute time of ``flops`` at the GEMM efficiency (a full wave of tiles)."""
        p: ComputeDieParams = self.params  # type: ignore[assignment]
        return int(flops * PS_PER_S / (p.peak(dtype) * p.gemm_compute_efficiency) + 0.5)

    def book(self, flops: float, dtype: str = "bf16", ready_ps: int | None = None) -> int:
        """Queue ``flops`` no earlier than ``ready_ps`` without a process; returns the finish (ps)."""
        p: ComputeDieParams = self.params  # type: ignore[assignment]
        return self._book(self.op_time_ps(flops, dtype), flops, ready_ps, flops * p.energy_per_flop(dtype))

    def execute(
        self, flops: float, dtype: str = "bf16", ready_ps: int | None = None
    ) -> Generator[simpy.Event, Any, int]:
        """Run ``flops`` (as a process); returns the finish time (ps)."""
        return self._wait_until(self.book(flops, dtype, ready_ps))
