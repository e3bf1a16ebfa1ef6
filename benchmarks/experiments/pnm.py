"""Processing near / in memory on a 3D memory-on-logic chip, and PIM's bank-shard constraint.

Three ways to run the GEMVs of a decode step on ``pnm-3d``-like settings: on the logic die as an
ordinary compute die (weights cross to it), on near-memory MAC arrays (PNM, shards of GBs) and on
in-memory units (PIM, every unit's shard bounded by one bank). Then the PIM constraint itself: the
smallest tensor-parallel degree at which the shards fit this stack's 24 MiB banks and the paper's 64 MiB.
"""

from __future__ import annotations

from pathlib import Path

from common import capabilities, plot, simulate, table, write_markdown

from sim.core.errors import CapacityError, ConfigError
from sim.model.spec import load_model, resolve_precision
from sim.serving.mapping import mapping_from, plan
from sim.system.spec import load_system

NAME = "pnm"
TITLE = "Near-memory vs in-memory vs compute-die GEMVs on a 3D memory-logic stack"

MiB = 1 << 20
MEM = "dram"  # the memory of topologies/pnm-3d.toml
# PIM after Samsung HBM-PIM (Aquabolt-XL, ISSCC 2021; paper-facts 3.3): one programmable unit per
# bank, 16-wide FP16 SIMD at 300 MHz, 4x the processing bandwidth of the off-chip interface from
# bank-level parallelism. On this stack: 64 channels x 2 pseudo-channels x 16 banks (the
# dram3d-logic preset) = 2,048 bank units, 2 x 2,048 x 16 x 0.3 GHz = 19.7 TFLOPS, 4 x 3,276.8 GB/s.
PIM_UNITS = 64 * 2 * 16
VARIANTS = {
    "compute die": {"mapping.compute": "die"},
    "PNM (near)": {"mapping.compute": "near_memory"},
    "PIM (in, bank units)": {
        "mapping.compute": "near_memory",
        f"chip.memory.{MEM}.near_memory.placement": "in",
        f"chip.memory.{MEM}.near_memory.units": PIM_UNITS,
        f"chip.memory.{MEM}.near_memory.macs_per_cycle": 16,
        f"chip.memory.{MEM}.near_memory.clock": "300MHz",
        # one bank of this stack: 48 GiB / 2,048 banks
        f"chip.memory.{MEM}.near_memory.shard_limit": "24MiB",
        f"chip.memory.{MEM}.near_memory.local_bandwidth": "13107.2GB/s",
    },
}
PIM = VARIANTS["PIM (in, bank units)"]
PIM_BANDWIDTH = PIM[f"chip.memory.{MEM}.near_memory.local_bandwidth"]


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cases = [("llama-3.1-8b", 1)] if fast else [("llama-3.1-8b", 1), ("llama-3.1-70b", 4)]
    batches = [1, 16] if fast else [1, 4, 16, 64]
    context, steps = (512, 2) if fast else (2048, 8)

    rows, series_tpot, series_bytes, series_energy, res = [], {}, {}, {}, {}
    for model, tp in cases:
        for label, extra in VARIANTS.items():
            ys_t, ys_b, ys_e = [], [], []
            for b in batches:
                s = simulate(
                    {
                        "system": "pnm-3d",
                        "model": model,
                        "batch": b,
                        "context": context,
                        "steps": steps,
                        "set": {"mapping.tp": tp, **extra},
                    }
                )
                top = max(s["stall_breakdown"].items(), key=lambda kv: kv[1])
                res[(model, label, b)] = s
                ys_t.append(s["tpot_ms"]["mean"])
                ys_b.append(s["memory_to_die_bytes_per_token"] / 1e6)
                ys_e.append(s["energy_j_per_token"])
                rows.append(
                    [
                        model,
                        tp,
                        label,
                        b,
                        s["tpot_ms"]["mean"],
                        s["memory_to_die_bytes_per_token"] / 1e6,
                        s["energy_j_per_token"],
                        f"{top[0]} {100 * top[1]:.0f}%",
                    ]
                )
            key = f"{model} {label}" if len(cases) > 1 else label
            series_tpot[key] = (batches, ys_t)
            series_bytes[key] = (batches, ys_b)
            series_energy[key] = (batches, ys_e)
    imgs = [
        plot(
            out / "pnm_tpot.png",
            "pnm-3d: TPOT by where GEMVs run",
            "decode batch",
            "TPOT (ms)",
            series_tpot,
            logx=True,
        ),
        plot(
            out / "pnm_bytes.png",
            "pnm-3d: memory-to-die bytes per token",
            "decode batch",
            "MB per token",
            series_bytes,
            logx=True,
            logy=True,
        ),
        plot(
            out / "pnm_energy.png",
            "pnm-3d: energy per token",
            "decode batch",
            "J per token",
            series_energy,
            logx=True,
        ),
    ]

    # PIM shard constraint
    system = load_system("pnm-3d")
    spec = system.memories[MEM]
    units = PIM_UNITS * spec.stacks
    tps = [d for d in range(1, system.chips + 1) if system.chips % d == 0]
    shard_rows, smallest = [], {}
    for model in ("llama-3.1-8b", "llama-3.1-70b"):
        m = load_model(model)
        of = resolve_precision(m.native_precision())
        mats = [of(t).nbytes(t.params) for t in m.tensors if t.is_matmul]
        total = m.weight_bytes(m.native_precision())
        biggest = max(mats)
        for limit in (24, 64):
            per_matrix = next((tp for tp in tps if biggest / tp / units <= limit * MiB), None)
            all_in_bank = next((tp for tp in tps if total / tp / units <= limit * MiB), None)
            planned = None
            for tp in tps:
                over = {k: v for k, v in PIM.items() if k.startswith("chip.")}
                over[f"chip.memory.{MEM}.near_memory.shard_limit"] = f"{limit}MiB"
                sys_pim = load_system("pnm-3d", over)
                try:
                    plan(m, sys_pim, mapping_from(sys_pim, {"tp": tp, "pp": 1}))
                except (CapacityError, ConfigError):
                    continue
                planned = tp
                break
            pnm_tp = None
            for tp in tps:
                try:
                    p = plan(m, system, mapping_from(system, {"tp": tp, "pp": 1}))
                except (CapacityError, ConfigError):
                    continue
                pnm_tp = (tp, p.weight_bytes_per_chip)
                break
            smallest[(model, limit)] = (per_matrix, all_in_bank, planned, pnm_tp)
            shard_rows.append(
                [
                    model,
                    limit,
                    f"{biggest / 1e6:.0f}",
                    per_matrix or "none",
                    all_in_bank or "none",
                    planned or "none",
                    pnm_tp[0] if pnm_tp else "none",
                    f"{pnm_tp[1] / 1e9:.1f}" if pnm_tp else "-",
                    f"{total / all_in_bank / units / 1e6:.1f}" if all_in_bank else "-",
                ]
            )

    setup = (
        f"`pnm-3d` (one {spec.capacity_bytes() / 2**30:.0f} GiB DRAM stack per chip, "
        f"{spec.peak_bandwidth_Bps() / 1e12:.2f} TB/s, {spec.near_memory.units} MAC units), fixed decode "
        f"batches {batches} at context {context}, {steps} steps, models/tp {cases}. Variants: "
        + "; ".join(f"{k}: `{', '.join(f'{a}={b}' for a, b in v.items())}`" for k, v in VARIANTS.items())
        + f". PIM shard table: {units} bank units per chip; 'per matrix' = smallest tp with the largest "
        f"matrix / tp / units <= bank (the check `plan` applies), 'all weights' = smallest tp with the whole "
        f"chip's weights / units <= bank (one bank per unit), 'plan' = smallest tp `plan` accepts (capacity "
        f"included); PNM = smallest tp `plan` accepts with near placement and its per-chip shard."
    )
    sections = [
        (
            "Decode",
            table(
                [
                    "model",
                    "tp",
                    "variant",
                    "batch",
                    "TPOT (ms)",
                    "memory->die MB/token",
                    "J/token",
                    "top cause",
                ],
                rows,
            ),
        ),
        (
            "What each variant had",
            capabilities(
                {
                    label: {
                        "system": "pnm-3d",
                        "model": cases[0][0],
                        "batch": 1,
                        "context": context,
                        "steps": 1,
                        "set": {"mapping.tp": cases[0][1], **extra},
                    }
                    for label, extra in VARIANTS.items()
                }
            ),
        ),
        (
            "PIM bank-shard constraint",
            table(
                [
                    "model",
                    "bank (MiB)",
                    "largest matrix (MB)",
                    "min tp per matrix",
                    "min tp all weights",
                    "min tp plan",
                    "PNM min tp",
                    "PNM shard/chip (GB)",
                    "PIM shard/unit at 'all weights' (MB)",
                ],
                shard_rows,
            ),
        ),
    ]
    m0, b0, b1 = cases[0][0], batches[0], batches[-1]
    die, pnm, pim = (res[(m0, k, b0)] for k in VARIANTS)
    die1, pnm1 = res[(m0, "compute die", b1)], res[(m0, "PNM (near)", b1)]
    s8 = smallest[("llama-3.1-70b", 24)]
    pim1 = res[(m0, "PIM (in, bank units)", b1)]
    pim_flops = 2 * PIM_UNITS * 16 * 0.3e9
    pnm_flops = 2 * spec.near_memory.units * spec.near_memory.macs_per_cycle * spec.near_memory.clock
    pim_dt1 = 100 * (pim1["tpot_ms"]["mean"] / pnm1["tpot_ms"]["mean"] - 1)
    d_bytes, p_bytes = die["memory_to_die_bytes_per_token"], pnm["memory_to_die_bytes_per_token"]
    pim_dt = 100 * (pim["tpot_ms"]["mean"] / pnm["tpot_ms"]["mean"] - 1)
    pim_de = 100 * (pim["energy_j_per_token"] / pnm["energy_j_per_token"] - 1)
    all_tp = s8[1] or f"more than {system.chips}"
    pnm_tp, pnm_gb = (s8[3][0], s8[3][1] / 1e9) if s8[3] else ("none", 0.0)
    conclusion = (
        f"For {m0} at batch {b0}, near-memory MACs cut memory-to-die traffic from "
        f"{d_bytes / 1e6:.0f} MB to {p_bytes / 1e6:.1f} MB per token ({d_bytes / p_bytes:.0f}x), "
        f"TPOT from {die['tpot_ms']['mean']:.3f} to {pnm['tpot_ms']['mean']:.3f} ms and energy from "
        f"{die['energy_j_per_token']:.3f} to {pnm['energy_j_per_token']:.3f} J/token. "
        f"At batch {b1} TPOT is {die1['tpot_ms']['mean']:.3f} ms on the die vs "
        f"{pnm1['tpot_ms']['mean']:.3f} ms near memory "
        f"(PNM/die = {pnm1['tpot_ms']['mean'] / die1['tpot_ms']['mean']:.2f}). "
        f"PIM reads its weights at the banks ({_tbps(PIM_BANDWIDTH)} TB/s, Samsung HBM-PIM's 4x) with "
        f"{PIM_UNITS:,} bank units of {pim_flops / 1e12:.1f} TFLOPS in all (HBM-PIM's 16-wide FP16 at "
        f"300 MHz), "
        f"where PNM reads through the stack's {spec.peak_bandwidth_Bps() / 1e12:.2f} TB/s interface with "
        f"{pnm_flops / 1e12:.1f} TFLOPS; PIM skips the TSV energy of its reads. At batch {b0} its TPOT "
        f"differs from PNM's by {pim_dt:+.1f}% and its energy by {pim_de:+.1f}% ({_top(pim)} binds PIM, "
        f"{_top(pnm)} PNM); at batch {b1} by {pim_dt1:+.1f}% ({_top(pim1)} binds PIM)"
        + (
            ", so the DRAM process's weaker MACs cap PIM once the batch grows (paper Table 4, logic PPA)."
            if pim_dt1 > pim_dt
            else "."
        )
        + f" Sharding: with {units:,} bank units, llama-3.1-70b's largest matrix fits this stack's 24 MiB "
        f"banks from tp {s8[0]}, and all of a chip's weights in one bank per unit from tp {all_tp}; "
        f"PNM runs it at tp {pnm_tp} with {pnm_gb:.1f} GB shards per chip."
    )
    return write_markdown(out, NAME, TITLE, setup, sections, conclusion, imgs)


def _tbps(value: str) -> str:
    """'13107.2GB/s' -> '13.11'."""
    from sim.core.units import BANDWIDTH

    return f"{BANDWIDTH.parse(value) / 1e12:.2f}"


def _top(summary: dict) -> str:
    cause, share = max(summary["stall_breakdown"].items(), key=lambda kv: kv[1])
    return f"{cause} ({100 * share:.0f}%)"
