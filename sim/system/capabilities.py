"""What each side of a comparison had: a system's capabilities, read from its resolved parameters.

A comparison between technologies is fair only when both sides get the same treatment (memories at
their datasheet peaks, the same kernel model and software stack) and the capabilities that differ
(a weight-prefetch buffer, near-memory MACs) are stated. Experiments and reports print this next to
their numbers; it describes the parameters actually used, overrides included, not the preset names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.core.units import format_bandwidth, format_size, format_time
from sim.system.spec import SystemSpec


def _flops(rate: float) -> str:
    return f"{rate / 1e12:,.4g} TFLOPS"


def capabilities(spec: SystemSpec, mapping: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{part: description}`` for the compute die, each memory, the fabric and the software stack.

    ``mapping`` (the run's mapping keys, e.g. ``{"weights": "hbf", "compute": "near_memory"}``;
    default: the system file's) says which memory holds the weights and where the GEMMs run.
    """
    m = {**spec.mapping, **(mapping or {})}
    out: dict[str, str] = {}
    die = spec.compute
    kernel = (
        f"kernel model with GEMM fixed cost {format_time(die.gemm_fixed)}, tiles "
        f"{die.gemm_tile_m}x{die.gemm_tile_n}, compute efficiency {die.gemm_compute_efficiency:.3g}"
        if die.gemm_fixed > 0 or die.gemm_compute_efficiency < 1 or die.gemm_tile_m > 1
        else "ideal roofline kernels (no fixed cost, no tile padding, full efficiency)"
    )
    out["compute die"] = (
        f"{_flops(die.peak('bf16'))} bf16, {kernel}, static {die.static_power:g} W, "
        f"{die.energy_per_flop_bf16:g} pJ/FLOP bf16"
    )
    weights_on = m.get("weights")
    for name, mem in spec.memories.items():
        parts = [
            f"{mem.stacks} x {mem.preset or mem.kind}",
            f"{format_size(mem.capacity_bytes())}",
            f"{format_bandwidth(mem.peak_bandwidth_Bps())} peak (no derating)",
        ]
        pf = mem.prefetch
        if pf is None:
            parts.append("no prefetch buffer (reads on demand)")
        else:
            where = "compute-die SRAM" if pf.buffer == "die" else "its base-die SRAM"
            parts.append(f"weight-prefetch buffer {format_size(pf.window)}/stack in {where} ({pf.policy})")
        near = mem.near_memory
        if near is not None:
            rate = 2.0 * near.units * near.macs_per_cycle * near.clock
            path = (
                f"own path {format_bandwidth(near.local_bandwidth)}"
                if near.local_bandwidth > 0
                else "through the stack's interface"
            )
            used = " (used)" if m.get("compute") == "near_memory" and weights_on == name else " (unused)"
            fixed = (
                f"GEMM fixed cost {format_time(near.gemm_fixed)}" if near.gemm_fixed else "no GEMM fixed cost"
            )
            parts.append(f"{near.placement}-memory MACs {_flops(rate)} (unpadded, {fixed}), {path}{used}")
        if weights_on == name:
            parts.append("holds the weights")
        if m.get("kv") == name:
            parts.append("holds the KV cache")
        out[f"memory {name}"] = ", ".join(parts)
    launches = ", ".join(f"{p} ranks {format_time(ps)}" for p, ps in spec.collective_launch.items())
    out["fabric"] = f"{spec.chips} chips; collective launch {launches or 'none'}"
    sw = spec.software
    if sw.iteration == 0 and sw.per_sequence == 0 and sw.kernel_gap == 0:
        out["software"] = "none (hardware-only figures)"
    else:
        parts = [f"host {format_time(sw.iteration)} + {format_time(sw.per_sequence)}/request per iteration"]
        if sw.kernel_gap:
            parts.append(f"{format_time(sw.kernel_gap)} per kernel launch")
        if sw.overlap:
            parts.append(f"{sw.overlap:.0%} hidden behind the step")
        out["software"] = ", ".join(parts)
    return out


def capabilities_text(spec: SystemSpec, mapping: Mapping[str, Any] | None = None) -> str:
    """:func:`capabilities` as one Markdown line per part."""
    return "\n".join(f"- {part}: {text}" for part, text in capabilities(spec, mapping).items())
