"""High Bandwidth Flash: prefetch window and tR, capacity over HBM only, and endurance if KV were on flash.

(a) TPOT and the prefetch-stall share of a weights-on-HBF decode against the prefetch window and
against the flash read latency tR. (b) The capacity HBF adds: which models fit per chip and per node,
and how many sequences of 4,096 tokens the KV memory holds, on ``hbf-hybrid`` against ``gpu-hbm``.
(c) Wear: the lifetime of the chip's HBF stacks if the KV cache were written to them (the paper
keeps it on HBM for this reason) against the weights-only case, which writes only on a model update.
"""

from __future__ import annotations

import math
from pathlib import Path

from common import capabilities, plot, simulate, table, write_markdown

from sim.core.errors import CapacityError, ConfigError
from sim.core.simulation import Simulation
from sim.model.catalog import CATALOG
from sim.model.spec import load_model
from sim.serving.mapping import mapping_from, plan
from sim.system.spec import load_system

NAME = "hbf"
TITLE = "High Bandwidth Flash: prefetch, tR, capacity and endurance"

MiB = 1 << 20
YEAR_S = 365.25 * 86400
CONTEXT_B = 4096  # context of the capacity question (b)
UPDATE_PERIOD_S = 86400.0  # ASSUMPTION: weights-only case rewrites the weights once a day (a model update)


def _decode(model: str, extra: dict, batch: int, context: int, steps: int) -> dict:
    return simulate(
        {
            "system": "hbf-hybrid",
            "model": model,
            "batch": batch,
            "context": context,
            "steps": steps,
            "set": {"mapping.tp": 1, **extra},
        }
    )


def _window(mib: int) -> dict[str, str]:
    """A prefetch window of ``mib`` MiB per stack, with the stack's base-die SRAM sized to hold it
    (the sweep explores the buffer size, so the SRAM grows with it)."""
    return {"chip.memory.hbf.prefetch.window": f"{mib}MiB", "chip.memory.hbf.controller_sram": f"{mib}MiB"}


def _fit(model, system, tp: int):
    """The plan of ``model`` on ``tp`` chips of ``system`` (pp 1), or None when it does not fit."""
    try:
        return plan(model, system, mapping_from(system, {"tp": tp, "pp": 1, "ep": 1, "dp": 1}))
    except (CapacityError, ConfigError):
        return None


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model_a = "llama-3.1-8b"
    batch_a, context_a, steps_a = (1, 512, 2) if fast else (8, 2048, 8)
    windows = [1, 4, 16, 64] if fast else [1, 2, 4, 8, 16, 32, 64, 128]
    trs = [5, 10, 20, 40] if fast else [5, 10, 15, 20, 30, 40, 60]
    tr_windows = [4, 64] if fast else [4, 16, 64]

    # (a) prefetch window and tR
    win_rows, tpot_w, stall_w = [], [], []
    for w in windows:
        s = _decode(model_a, _window(w), batch_a, context_a, steps_a)
        stall = s["stall_breakdown"].get("prefetch stall (hbf)", 0.0)
        tpot_w.append(s["tpot_ms"]["mean"])
        stall_w.append(100 * stall)
        win_rows.append([w, s["tpot_ms"]["mean"], 100 * stall, s["tokens_per_s"], s["energy_j_per_token"]])
    tr_series, tr_rows = {}, []
    for w in tr_windows:
        ys = []
        for tr in trs:
            s = _decode(
                model_a,
                {**_window(w), "chip.memory.hbf.tR": f"{tr}us"},
                batch_a,
                context_a,
                steps_a,
            )
            stall = s["stall_breakdown"].get("prefetch stall (hbf)", 0.0)
            ys.append(s["tpot_ms"]["mean"])
            tr_rows.append([tr, w, s["tpot_ms"]["mean"], 100 * stall])
        tr_series[f"window {w} MiB"] = (trs, ys)
    img_w = plot(
        out / "hbf_window_tpot.png",
        f"{model_a} on hbf-hybrid (tp 1): TPOT vs prefetch window",
        "prefetch window per stack (MiB)",
        "TPOT (ms)",
        {"TPOT": (windows, tpot_w)},
        logx=True,
    )
    img_s = plot(
        out / "hbf_window_stall.png",
        "Prefetch-stall share of critical path vs prefetch window",
        "prefetch window per stack (MiB)",
        "prefetch stall (%)",
        {"stall": (windows, stall_w)},
        logx=True,
    )
    img_t = plot(
        out / "hbf_tr_tpot.png",
        f"{model_a} on hbf-hybrid (tp 1): TPOT vs flash tR",
        "tR (us)",
        "TPOT (ms)",
        tr_series,
    )

    # (b) capacity gained over HBM only
    hbf_sys, hbm_sys = load_system("hbf-hybrid"), load_system("gpu-hbm")
    models = [(e.name, load_model(e.name)) for e in CATALOG]
    cap_rows, fits = [], {}
    for name, m in models:
        wbytes = m.weight_bytes(m.native_precision())
        row = [name, wbytes / 1e9]
        for sys_name, system in (("hbf-hybrid", hbf_sys), ("gpu-hbm", hbm_sys)):
            for scope, tp in (("chip", 1), ("node", system.chips)):
                p = _fit(m, system, tp)
                fits[(name, sys_name, scope)] = (wbytes, p.kv_capacity_tokens // CONTEXT_B if p else None)
                row.append(p.kv_capacity_tokens // CONTEXT_B if p else "no fit")
        cap_rows.append(row)

    def largest(sys_name: str, scope: str) -> tuple[str, float]:
        ok = [(w, n) for (n, s, sc), (w, b) in fits.items() if s == sys_name and sc == scope and b]
        w, n = max(ok) if ok else (0, "none")
        return n, w / 1e9

    big = {(s, sc): largest(s, sc) for s in ("hbf-hybrid", "gpu-hbm") for sc in ("chip", "node")}
    hbf_mem, hbm_mem = hbf_sys.memories["hbf"], hbm_sys.memories["hbm"]
    only_hbf_chip = [
        n for n, _ in models if fits[(n, "hbf-hybrid", "chip")][1] and not fits[(n, "gpu-hbm", "chip")][1]
    ]
    only_hbf_node = [
        n for n, _ in models if fits[(n, "hbf-hybrid", "node")][1] and not fits[(n, "gpu-hbm", "node")][1]
    ]

    # (c) endurance if the KV cache were on the chip's HBF stacks
    model_c = "llama-3.1-8b"
    mc = load_model(model_c)
    batches = [1, 8, 32] if fast else [1, 8, 32, 64, 128]
    context_c, steps_c = (1024, 2) if fast else (4096, 8)
    dev = hbf_mem.cls(Simulation(), "probe", params=hbf_mem.params)  # one HBF stack, preset endurance
    stacks = hbf_mem.stacks
    kv_tok = mc.kv_bytes_per_token("bf16")
    life_rows, life_y, weights_life_y = [], [], []
    w_chip_bytes = mc.weight_bytes(mc.native_precision())  # tp 1: the chip holds all weights
    w_rate = w_chip_bytes / UPDATE_PERIOD_S
    w_life = dev.projected_lifetime_s(w_rate / stacks) / YEAR_S
    for b in batches:
        s = simulate(
            {
                "system": "gpu-hbm",
                "model": model_c,
                "batch": b,
                "context": context_c,
                "steps": steps_c,
                "set": {"mapping.tp": 1},
            }
        )
        rate = s["tokens_per_s"] * kv_tok  # bytes of KV written per second on the one chip
        life_dev = dev.projected_lifetime_s(rate / stacks)  # spread over the stacks, wear-levelled
        life_closed = dev.params.endurance * dev.capacity_bytes * stacks / rate
        assert math.isclose(life_dev, life_closed, rel_tol=1e-9)
        life_y.append(life_dev / YEAR_S)
        weights_life_y.append(w_life)
        life_rows.append([b, s["tokens_per_s"], rate / 1e9, life_dev / 86400, life_dev / YEAR_S])
    img_l = plot(
        out / "hbf_endurance.png",
        f"HBF lifetime ({stacks} stacks, endurance {dev.params.endurance:,})",
        "decode batch (gpu-hbm throughput)",
        "projected lifetime (years)",
        {"KV cache on HBF": (batches, life_y), "weights only (1 update/day)": (batches, weights_life_y)},
        logy=True,
    )

    # (d) like with like: HBF against HBM for the same model, each with and without a prefetch buffer
    model_d = "llama-3.1-70b"
    batches_d = [1, 16] if fast else [1, 16, 64]
    context_d, steps_d = (1024, 2) if fast else (4096, 8)
    hbm_buffer = {"chip.memory.hbm.prefetch.window": "8MiB", "chip.memory.hbm.prefetch.buffer": "die"}
    variants_d = {
        "gpu-hbm": ("gpu-hbm", {}),
        "gpu-hbm + prefetch buffer": ("gpu-hbm", hbm_buffer),
        "hbf-hybrid": ("hbf-hybrid", {}),
        "hbf-hybrid without prefetch buffer": ("hbf-hybrid", {"chip.memory.hbf.prefetch.enabled": False}),
    }
    like_rows, like = [], {}
    for label, (system, extra) in variants_d.items():
        for b in batches_d:
            s = simulate(
                {
                    "system": system,
                    "model": model_d,
                    "batch": b,
                    "context": context_d,
                    "steps": steps_d,
                    "set": extra,
                }
            )
            top = max(s["stall_breakdown"].items(), key=lambda kv: kv[1])
            like[(label, b)] = s["tpot_ms"]["mean"]
            like_rows.append(
                [label, b, s["tpot_ms"]["mean"], f"{top[0]} {100 * top[1]:.0f}%", s["energy_j_per_token"]]
            )
    sides_d = capabilities(
        {
            label: {
                "system": system,
                "model": model_d,
                "batch": 1,
                "context": context_d,
                "steps": 1,
                "set": extra,
            }
            for label, (system, extra) in variants_d.items()
        }
    )

    # Markdown
    w_best = windows[min(range(len(windows)), key=lambda i: tpot_w[i])]
    tr_lo, tr_hi = (
        tr_series[f"window {tr_windows[0]} MiB"][1][0],
        tr_series[f"window {tr_windows[0]} MiB"][1][-1],
    )
    tr_lo_b, tr_hi_b = (
        tr_series[f"window {tr_windows[-1]} MiB"][1][0],
        tr_series[f"window {tr_windows[-1]} MiB"][1][-1],
    )
    bw_stack = hbf_mem.peak_bandwidth_Bps() / stacks
    w_ok = [tr_windows[-1] * MiB >= bw_stack * tr * 1e-6 for tr in trs]
    # a stack's peak is also bounded by its arrays: dies x planes x page / tR falls as tR rises
    peak_at = {
        tr: load_system("hbf-hybrid", {"chip.memory.hbf.tR": f"{tr}us"}).memories["hbf"].peak_bandwidth_Bps()
        for tr in (trs[0], trs[-1])
    }
    setup = (
        f"(a) `{model_a}` on `hbf-hybrid` with `mapping.tp=1` (weights on {stacks} HBF stacks, KV on HBM), "
        f"fixed decode batch {batch_a}, context {context_a}, {steps_a} steps; swept "
        "`chip.memory.hbf.prefetch.window` (with each stack's `controller_sram` sized to hold it) and "
        f"`chip.memory.hbf.tR` (default window 32 MiB, tR 10 us). (b) `plan` with tp 1 (per chip) and "
        f"tp = all chips, pp 1 (per node), native dtypes, KV bf16; batch = `kv_capacity_tokens` // "
        f"{CONTEXT_B}. (c) KV write rate = `tokens_per_s` of a `gpu-hbm` tp-1 decode of `{model_c}` "
        f"(context {context_c}, {steps_c} steps; decode writes only, prefill would add more) "
        f"x {kv_tok / 1e3:.1f} kB of KV per token, spread "
        f"evenly over the chip's {stacks} HBF stacks of {dev.capacity_bytes / 2**30:.0f} GiB; lifetime from "
        f"`HighBandwidthFlash.projected_lifetime_s` (= endurance x capacity / write rate, "
        f"write amplification 1, perfect wear-levelling; checked against the closed form). Weights only: "
        f"{w_chip_bytes / 1e9:.1f} GB rewritten once a day (ASSUMPTION: a daily model update)."
    )
    sections = [
        (
            "(a) Prefetch window",
            table(["window (MiB)", "TPOT (ms)", "prefetch stall (%)", "tokens/s", "J/token"], win_rows),
        ),
        (
            "(a) Flash read latency tR",
            table(["tR (us)", "window (MiB)", "TPOT (ms)", "prefetch stall (%)"], tr_rows),
        ),
        (
            f"(b) Capacity: sequences of {CONTEXT_B} tokens that fit (no fit = weights or KV overflow)",
            table(
                [
                    "model",
                    "weights (GB)",
                    "hbf-hybrid chip",
                    "hbf-hybrid node",
                    "gpu-hbm chip",
                    "gpu-hbm node",
                ],
                cap_rows,
            ),
        ),
        (
            "(c) Endurance",
            table(
                ["batch", "tokens/s (gpu-hbm)", "KV writes (GB/s)", "lifetime (days)", "lifetime (years)"],
                life_rows,
            )
            + f"\n\nWeights only: {w_rate / 1e6:.3f} MB/s of writes, lifetime {w_life:,.0f} years.",
        ),
        (
            f"(d) HBF against HBM, like with like: `{model_d}`, tp 8, context {context_d}",
            table(["system", "batch", "TPOT (ms)", "top cause", "J/token"], like_rows)
            + "\n\nWhat each side had:\n\n"
            + sides_d,
        ),
    ]
    worst = min(life_y)
    conclusion = (
        f"(a) The prefetch window sets the weight stream's concurrency: TPOT falls from "
        f"{tpot_w[0]:.2f} ms at {windows[0]} MiB to {tpot_w[-1]:.2f} ms at {windows[-1]} MiB "
        f"({tpot_w[0] / tpot_w[-1]:.1f}x), "
        f"the prefetch-stall share from {stall_w[0]:.0f}% to {stall_w[-1]:.0f}% (best window {w_best} MiB). "
        f"Raising tR from {trs[0]} to {trs[-1]} us multiplies TPOT by {tr_hi / tr_lo:.2f}x with a "
        f"{tr_windows[0]} MiB window but by {tr_hi_b / tr_lo_b:.2f}x with {tr_windows[-1]} MiB; one stack's "
        f"bandwidth x tR is {bw_stack * trs[0] * 1e-6 / MiB:.0f} MiB at {trs[0]} us and "
        f"{bw_stack * trs[-1] * 1e-6 / MiB:.0f} MiB at {trs[-1]} us, so the {tr_windows[-1]} MiB window "
        f"covers {sum(w_ok)} of the {len(trs)} tR points. With that window the remaining rise is bandwidth, "
        f"not latency: the stacks' peak (the lesser of their interface and dies x planes x page / tR) "
        f"falls from "
        f"{peak_at[trs[0]] / 1e9:,.0f} to {peak_at[trs[-1]] / 1e9:,.0f} GB/s over the same tR range "
        f"({peak_at[trs[0]] / peak_at[trs[-1]]:.2f}x) while TPOT rises {tr_hi_b / tr_lo_b:.2f}x"
        + (
            ", about as much: the step is the weight stream. "
            if abs((tr_hi_b / tr_lo_b) / (peak_at[trs[0]] / peak_at[trs[-1]]) - 1) < 0.15
            else ", less, because the rest of the step (kernels' fixed costs, the software's host time) "
            "does not depend on tR. "
        )
        + f"(b) Per chip the largest model that fits is {big[('hbf-hybrid', 'chip')][0]} "
        f"({big[('hbf-hybrid', 'chip')][1]:.0f} GB) on hbf-hybrid against {big[('gpu-hbm', 'chip')][0]} "
        f"({big[('gpu-hbm', 'chip')][1]:.0f} GB) on gpu-hbm; per node "
        f"{big[('hbf-hybrid', 'node')][0]} against {big[('gpu-hbm', 'node')][0]}. "
        f"Models that fit only with HBF: per chip "
        f"{', '.join(only_hbf_chip) or 'none'}; per node {', '.join(only_hbf_node) or 'none'}. "
        f"For {model_c} per chip the KV memory holds "
        f"{fits[(model_c, 'hbf-hybrid', 'chip')][1]} sequences of {CONTEXT_B} tokens on hbf-hybrid "
        f"({hbf_sys.memories['hbm'].capacity_bytes() / 2**30:.0f} GiB HBM) against "
        f"{fits[(model_c, 'gpu-hbm', 'chip')][1]} on gpu-hbm ({hbm_mem.capacity_bytes() / 2**30:.0f} GiB HBM "
        f"shared with the weights). "
        f"(c) Writing the KV cache to HBF would wear the {stacks} stacks out in {worst * 365.25:.0f} days at "
        f"batch {batches[life_y.index(worst)]} ({max(life_rows, key=lambda r: r[2])[2]:.2f} GB/s of writes) "
        f"and {max(life_y):.1f} years at batch {batches[life_y.index(max(life_y))]}, against "
        f"{w_life:,.0f} years for weights rewritten daily: "
        + (
            "KV on flash is not viable at serving batch sizes."
            if worst < 5
            else "even the KV case outlives a 5-year deployment at these rates."
        )
        + _like_with_like(
            like,
            batches_d,
            model_d,
            {"hbf": hbf_mem.peak_bandwidth_Bps(), "hbm": hbm_mem.peak_bandwidth_Bps()},
        )
    )
    return write_markdown(out, NAME, TITLE, setup, sections, conclusion, [img_w, img_s, img_t, img_l])


def _like_with_like(
    tpot: dict[tuple[str, int], float], batches: list[int], model: str, peaks: dict[str, float]
) -> str:
    """(d) in words: what HBF changes against HBM with the same die, kernels, software and fabric, and
    what a prefetch buffer changes on each."""
    parts = []
    for b in batches:
        hbm, hbm_pf = tpot[("gpu-hbm", b)], tpot[("gpu-hbm + prefetch buffer", b)]
        hbf, hbf_raw = tpot[("hbf-hybrid", b)], tpot[("hbf-hybrid without prefetch buffer", b)]
        parts.append(
            f"at batch {b} {model} takes {hbf:.2f} ms per token with weights on HBF against {hbm:.2f} ms on "
            f"HBM ({hbf / hbm - 1:+.0%}); a prefetch buffer changes HBM by {hbm_pf / hbm - 1:+.1%} and its "
            f"absence changes HBF by {hbf_raw / hbf - 1:+.0%}"
        )
    return (
        " (d) With the same compute die, kernel model, software stack and fabric on both sides and every "
        "memory at its datasheet peak: "
        + "; ".join(parts)
        + f". The buffer hides flash's microsecond reads; HBM has no such latency to hide, and a buffer "
        f"read no faster than its memory adds no bandwidth. The weight memories' peaks are "
        f"{peaks['hbf'] / 1e12:.2f} TB/s (HBF) and {peaks['hbm'] / 1e12:.2f} TB/s (HBM) per chip, so "
        + (
            "with the buffer hiding tR, what HBF gains over HBM is its stack bandwidth."
            if peaks["hbf"] > peaks["hbm"]
            else "HBF can at best match HBM here, and only with a buffer that hides tR."
        )
    )
