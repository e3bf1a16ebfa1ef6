"""3D stacking: TSV count (data TSVs per channel x channels) against decode TPOT and energy per token.

The pnm-3d system bonds a DRAM stack onto each logic die; its MAC arrays read the stack through the
TSVs. Widening the per-channel TSV bus raises the stack's bandwidth linearly; this experiment finds
where that stops paying off (the near-memory MACs or the tensor-parallel all-reduce take over).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import capabilities, plot, simulate, table, write_markdown

from sim.system.spec import load_system

NAME = "stacking"
TITLE = "3D stacking: TSV count against TPOT and energy per token"

SYSTEM = "pnm-3d"
MEMORY = "dram"  # [chip.memory.dram] in topologies/pnm-3d.toml
MODEL = "llama-3.1-8b"
CONTEXT = 1024
BATCHES = (1, 16)
TPS = (16, 1)  # the system's own mapping (tp 16 over the 4x4 mesh) and one chip alone (no all-reduce)
SATURATION = 0.05  # a doubling of the TSVs that buys less than 5% TPOT counts as "stopped improving"


def stack_geometry() -> tuple[int, int, float, int]:
    """(channels, default tsv_width_bits, tsv_rate in B/s per TSV, stacks) of the system's DRAM stack."""
    mem = load_system(SYSTEM).memories[MEMORY]
    params = mem.params
    return int(params.channels), int(params.tsv_width_bits), float(params.tsv_rate), mem.stacks


def memory_energy(summary: dict[str, Any]) -> float:
    """Joules spent in the memory and its near-memory MACs (everything but the logic die and fabric)."""
    return sum(
        v for k, v in summary["energy_by_component_j"].items() if k.startswith(("memory.", "near_memory."))
    )


def top_stall(summary: dict[str, Any]) -> tuple[str, float]:
    cause, share = max(summary["stall_breakdown"].items(), key=lambda kv: kv[1])
    return cause, share


def saturation_index(tpots: list[float]) -> int | None:
    """First index after which one more doubling of the TSVs improves TPOT by less than SATURATION."""
    for i in range(len(tpots) - 1):
        if tpots[i + 1] > tpots[i] * (1 - SATURATION):
            return i
    return None


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    widths = (32, 64, 128, 256, 512, 1024) if fast else (16, 32, 64, 128, 256, 512, 1024, 2048)
    steps = 2 if fast else 8
    channels, default_width, rate, stacks = stack_geometry()

    results: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for tp in TPS:
        for batch in BATCHES:
            rows = []
            for width in widths:
                s = simulate(
                    {
                        "system": SYSTEM,
                        "model": MODEL,
                        "batch": batch,
                        "context": CONTEXT,
                        "steps": steps,
                        "seed": 0,
                        "set": {f"chip.memory.{MEMORY}.tsv_width_bits": width, "mapping.tp": tp},
                    }
                )
                tsvs = channels * width * stacks
                rows.append(
                    {
                        "width": width,
                        "tsvs": tsvs,
                        "bw_gbs": tsvs * rate / 1e9,
                        "tpot_ms": s["tpot_ms"]["mean"],
                        "j_per_token": s["energy_j_per_token"],
                        "mem_j_per_token": memory_energy(s) / s["tokens"],
                        "stall": top_stall(s),
                        "breakdown": s["stall_breakdown"],
                    }
                )
            results[(tp, batch)] = rows

    def label(tp: int, batch: int) -> str:
        return f"tp {tp}, batch {batch}"

    tpot_png = plot(
        out / f"{NAME}_tpot.png",
        f"{MODEL} on {SYSTEM}: TPOT vs TSVs per stack (context {CONTEXT})",
        "data TSVs per chip (channels x TSV width)",
        "TPOT (ms)",
        {label(*k): ([r["tsvs"] for r in v], [r["tpot_ms"] for r in v]) for k, v in results.items()},
        logx=True,
        logy=True,
    )
    energy_png = plot(
        out / f"{NAME}_energy.png",
        f"{MODEL} on {SYSTEM}: energy per token vs TSVs per stack",
        "data TSVs per chip (channels x TSV width)",
        "energy per token (J, whole system)",
        {label(*k): ([r["tsvs"] for r in v], [r["j_per_token"] for r in v]) for k, v in results.items()},
        logx=True,
        logy=True,
    )

    sections = []
    for (tp, batch), rows in results.items():
        body = table(
            [
                "TSV width (bits/channel)",
                "TSVs per chip",
                "TSV bandwidth (GB/s)",
                "TPOT (ms)",
                "J/token",
                "memory + MAC J/token",
                "top stall (share)",
            ],
            [
                [
                    r["width"],
                    r["tsvs"],
                    r["bw_gbs"],
                    r["tpot_ms"],
                    r["j_per_token"],
                    r["mem_j_per_token"],
                    f"{r['stall'][0]} ({r['stall'][1]:.0%})",
                ]
                for r in rows
            ],
        )
        sections.append((label(tp, batch), body))

    lines = []
    for (tp, batch), rows in results.items():
        tpots = [r["tpot_ms"] for r in rows]
        first, last = rows[0], rows[-1]
        head = (
            f"**{label(tp, batch)}**: TPOT goes from {first['tpot_ms']:.3f} ms at {first['tsvs']:,} TSVs to "
            f"{last['tpot_ms']:.3f} ms at {last['tsvs']:,} ({first['tpot_ms'] / last['tpot_ms']:.2f}x for "
            f"{last['tsvs'] / first['tsvs']:.0f}x the TSVs); energy per token {first['j_per_token']:.4g} -> "
            f"{last['j_per_token']:.4g} J, of which memory + MACs are {first['mem_j_per_token']:.3g} -> "
            f"{last['mem_j_per_token']:.3g} J ({first['mem_j_per_token'] / first['j_per_token']:.1%} -> "
            f"{last['mem_j_per_token'] / last['j_per_token']:.1%})"
            + (
                ": energy per token follows TPOT because the rest is power integrated over the step."
                if last["mem_j_per_token"] < 0.5 * last["j_per_token"]
                else f": memory and MAC energy, which is per byte and per FLOP whatever the TSV count, "
                f"dominates, so energy per token falls {first['j_per_token'] / last['j_per_token']:.2f}x "
                f"where TPOT falls {first['tpot_ms'] / last['tpot_ms']:.2f}x."
            )
        )
        sat = saturation_index(tpots)
        if sat is None:
            gain = tpots[-2] / tpots[-1]
            tail = (
                f" TPOT still improves by at least {SATURATION:.0%} per doubling up to {last['tsvs']:,} TSVs "
                f"(the last doubling gave {gain:.2f}x): the stack's TSV bandwidth binds throughout; the "
                f"blame lands on {last['stall'][0]} ({last['stall'][1]:.0%}) because that op is the MACs "
                f"streaming the stack."
            )
        else:
            at = rows[sat]
            cause, share = at["stall"]
            tail = (
                f" It stops improving (< {SATURATION:.0%} per doubling) at {at['tsvs']:,} TSVs "
                f"({at['width']} per channel, {at['bw_gbs']:,.0f} GB/s): {at['tpot_ms']:.3f} ms there vs "
                f"{last['tpot_ms']:.3f} ms at {last['tsvs']:,}. What binds there is {cause} "
                f"({share:.0%} of the step)"
                + (
                    ", i.e. the MAC array's arithmetic: the near-memory op no longer waits on the TSVs."
                    if cause.startswith("near-memory MACs")
                    else "."
                )
            )
        lines.append(head + tail)
    # the system's own design point against the saturation points
    default_tsvs = channels * default_width * stacks
    sys_rows = results[(TPS[0], BATCHES[0])]
    default_row = next((r for r in sys_rows if r["width"] == default_width), None)
    if default_row is not None:
        shares = default_row["breakdown"]
        coll = shares.get("collective (allreduce)", 0.0) + shares.get("collective launch (allreduce)", 0.0)
        streaming = sum(v for k, v in shares.items() if k.startswith(("memory", "near-memory", "TSV")))
        cause, share = default_row["stall"]
        lines.append(
            f"At the preset's own {default_width} TSVs per channel ({default_tsvs:,} per chip) and "
            f"{label(TPS[0], BATCHES[0])}, the largest shares of the step are "
            + ", ".join(f"{k} ({v:.0%})" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])[:3])
            + f"; the all-reduces (launch and transfers) take {coll:.0%} and streaming the stack (memory "
            f"and near-memory MACs) {streaming:.0%}"
            + (
                ": more TSVs only shorten that minority, so TSV count is not this design's lever at this "
                "point."
                if streaming < 0.5
                else ": streaming is the larger part, so more TSVs still pay."
            )
        )
    conclusion = "\n\n".join(lines)

    setup = (
        f"`memwall run {SYSTEM} --model {MODEL} --batch B --context {CONTEXT} --steps {steps} "
        f"--set chip.memory.{MEMORY}.tsv_width_bits=W --set mapping.tp=T` for W in {list(widths)}, "
        f"B in {list(BATCHES)}, T in {list(TPS)} (T = 16 is the system's mapping: every chip streams "
        f"its weight shard and all-reduces twice per layer over the 4x4 mesh; T = 1 is one chip alone). "
        f"The stack has {channels} channels x {stacks} stack(s) at {rate * 8 / 1e9:.1f} Gb/s per TSV, so "
        f"TSVs per chip = {channels * stacks} x W. Energy is the whole system's per generated token."
    )
    sections.append(
        (
            "What the system had",
            capabilities(
                {
                    f"{SYSTEM}, tp {tp}": {
                        "system": SYSTEM,
                        "model": MODEL,
                        "batch": 1,
                        "context": CONTEXT,
                        "steps": 1,
                        "set": {"mapping.tp": tp},
                    }
                    for tp in TPS
                }
            ),
        )
    )
    return write_markdown(out, NAME, TITLE, setup, sections, conclusion, [tpot_png, energy_png])
