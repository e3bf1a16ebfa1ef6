"""A phone running Llama-3.1-8B: weights on flash with near-flash MACs vs weights in LPDDR5X.

Batch 1 decode on ``mobile``: the weights stay on flash and the controller-die MACs read them at
the NAND channels' bandwidth, or they are loaded into LPDDR5X (only if they fit next to the KV
cache: 16 GB at bf16 on a 16 GiB package) and the NPU streams them. Smaller weight types (fp8,
fp4) are tried for both.
"""

from __future__ import annotations

from pathlib import Path

from common import capabilities, plot, simulate, table, write_markdown

from sim.core.errors import CapacityError, ConfigError
from sim.model.spec import load_model
from sim.serving.mapping import mapping_from, plan
from sim.system.spec import load_system

NAME = "mobile"
TITLE = "Phone-class Llama-3.1-8B: near-flash compute vs LPDDR5X"

MODEL = "llama-3.1-8b"
PLACEMENTS = {
    "flash + near-flash MACs": {"mapping.weights": "flash", "mapping.compute": "near_memory"},
    "LPDDR5X + NPU": {"mapping.weights": "lpddr", "mapping.compute": "die"},
}


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    contexts = [512, 2048] if fast else [512, 1024, 2048, 4096]
    dtypes = ["bf16", "fp8", "fp4"]
    steps = 2 if fast else 8
    system, model = load_system("mobile"), load_model(MODEL)

    rows, res, series = [], {}, {}
    for label, extra in PLACEMENTS.items():
        for dt in dtypes:
            sets = {**extra, "mapping.weight_dtype": dt}
            try:
                plan(model, system, mapping_from(system, {k.split(".", 1)[1]: v for k, v in sets.items()}))
            except (CapacityError, ConfigError) as err:
                rows.append([label, dt, "-", "does not fit", "-", "-", "-", str(err).split(";")[0][:90]])
                continue
            ys = []
            for ctx in contexts:
                s = simulate(
                    {
                        "system": "mobile",
                        "model": MODEL,
                        "batch": 1,
                        "context": ctx,
                        "steps": steps,
                        "set": sets,
                    }
                )
                top = max(s["stall_breakdown"].items(), key=lambda kv: kv[1])
                res[(label, dt, ctx)] = (s, top)
                ys.append(s["tokens_per_s"])
                rows.append(
                    [
                        label,
                        dt,
                        ctx,
                        s["tpot_ms"]["mean"],
                        s["tokens_per_s"],
                        s["energy_j_per_token"],
                        s["memory_to_die_bytes_per_token"] / 1e6,
                        f"{top[0]} {100 * top[1]:.0f}%",
                    ]
                )
            series[f"{label}, {dt}"] = (contexts, ys)
    img = plot(
        out / "mobile_tokens.png",
        f"mobile: {MODEL} batch 1 decode",
        "context (tokens)",
        "tokens/s",
        series,
        logx=True,
        logy=True,
    )

    flash, lp = system.memories["flash"], system.memories["lpddr"]
    nm = flash.near_memory
    setup = (
        f"`mobile` (one SoC: {lp.capacity_bytes() / 2**30:.0f} GiB LPDDR5X at "
        f"{lp.peak_bandwidth_Bps() / 1e9:.1f} GB/s holding the KV cache; "
        f"{flash.capacity_bytes() / 2**30:.0f} GiB "
        f"flash, near-flash MACs at {flash.near_memory.local_bandwidth / 1e9:.1f} GB/s, "
        f"{2 * nm.units * nm.macs_per_cycle * nm.clock / 1e9:.0f} "
        f"GFLOPS), `{MODEL}`, batch 1, contexts {contexts}, {steps} steps, `mapping.weight_dtype` in "
        f"{dtypes}. Placements: "
        + "; ".join(f"{k}: `{', '.join(f'{a}={b}' for a, b in v.items())}`" for k, v in PLACEMENTS.items())
        + ". A placement that `plan` rejects is listed as not fitting."
    )
    sections = [
        (
            "Decode",
            table(
                [
                    "placement",
                    "weights",
                    "context",
                    "TPOT (ms)",
                    "tokens/s",
                    "J/token",
                    "memory->die MB/token",
                    "top cause",
                ],
                rows,
            ),
        ),
        (
            "What each placement had",
            capabilities(
                {
                    label: {
                        "system": "mobile",
                        "model": MODEL,
                        "batch": 1,
                        "context": 512,
                        "steps": 1,
                        "set": extra,
                    }
                    for label, extra in PLACEMENTS.items()
                }
            ),
        ),
    ]

    c0 = contexts[0]
    ran = {(lab, dt): res[(lab, dt, c0)] for (lab, dt, ctx) in res if ctx == c0}
    best = max(ran, key=lambda k: ran[k][0]["tokens_per_s"])
    frugal = min(ran, key=lambda k: ran[k][0]["energy_j_per_token"])
    fit_lp = [dt for dt in dtypes if ("LPDDR5X + NPU", dt) in ran]
    nofit_lp = [dt for dt in dtypes if ("LPDDR5X + NPU", dt) not in ran]
    parts = [
        f"At context {c0} the fastest configuration is {best[0]} with {best[1]} weights: "
        f"{ran[best][0]['tokens_per_s']:.2f} tokens/s (TPOT {ran[best][0]['tpot_ms']['mean']:.1f} ms), "
        f"bound by {ran[best][1][0]} ({100 * ran[best][1][1]:.0f}%); the lowest energy is {frugal[0]} "
        f"with {frugal[1]} ({ran[frugal][0]['energy_j_per_token']:.2f} J/token).",
        f"Weights fit in LPDDR5X next to the KV cache at {', '.join(fit_lp) or 'no dtype'}"
        + (f" but not at {', '.join(nofit_lp)}." if nofit_lp else "."),
    ]
    for dt in dtypes:
        a, b = ("flash + near-flash MACs", dt), ("LPDDR5X + NPU", dt)
        if a in ran and b in ran:
            fa, fb = ran[a][0], ran[b][0]
            ratio = fb["tokens_per_s"] / fa["tokens_per_s"]
            lead = f"{ratio:.1f}x for LPDDR5X" if ratio >= 1 else f"{1 / ratio:.1f}x for near-flash"
            parts.append(
                f"At {dt}, near-flash runs at {fa['tokens_per_s']:.2f} vs LPDDR5X {fb['tokens_per_s']:.2f} "
                f"tokens/s ({lead}) and "
                f"{fa['energy_j_per_token']:.2f} vs {fb['energy_j_per_token']:.2f} J/token."
            )
    for label in PLACEMENTS:
        hi = [
            (dt, res[(label, dt, contexts[-1])][0], res[(label, dt, c0)][0])
            for dt in dtypes
            if (label, dt, contexts[-1]) in res
        ]
        if hi:
            dt, s_hi, s_lo = hi[-1]
            parts.append(
                f"{label} ({dt}): context {c0} -> {contexts[-1]} changes TPOT by "
                f"{100 * (s_hi['tpot_ms']['mean'] / s_lo['tpot_ms']['mean'] - 1):+.1f}%."
            )
    return write_markdown(out, NAME, TITLE, setup, sections, " ".join(parts), [img])
