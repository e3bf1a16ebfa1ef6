"""Prefill/decode disaggregation at equal capital: an HBM prefill pool with an HBF or PNM decode pool
against a homogeneous cluster of HBM replicas (issue 13, item 6).

Every side serves the same synthetic chat load (``--load chat --rate R``, Poisson arrivals, length
distributions with their sources in ``sim.requests.load``) of ``llama-3.1-8b`` with one chip per
replica (tp 1). The homogeneous side is ``dp`` gpu-hbm replicas behind a least-tokens router; each
disaggregated side is gpu-hbm prefill replicas plus ``hbf-hybrid`` (weights on HBF, KV on HBM) or
``pnm-3d`` (near-memory MACs) decode replicas, the KV moving over the default scale-out link
(50 GB/s per chip, 5 us). Replica counts are chosen so every side's capital is within 10% of the
homogeneous cluster's (checked below, from the cost model).
"""

from __future__ import annotations

from pathlib import Path

from common import capabilities, plot, simulate, table, write_markdown

NAME = "disagg"
TITLE = "Prefill/decode disaggregation with HBF or PNM decode pools at equal cost"

MODEL = "llama-3.1-8b"
HOMOGENEOUS_REPLICAS = 4
# (label, decode system, prefill replicas, decode replicas): capital within 10% of 4 x gpu-hbm
SIDES = (
    ("1 gpu-hbm prefill + 3 hbf-hybrid decode", "hbf-hybrid", 1, 3),
    ("2 gpu-hbm prefill + 2 hbf-hybrid decode", "hbf-hybrid", 2, 2),
    ("1 gpu-hbm prefill + 3 pnm-3d decode", "pnm-3d", 1, 3),
)


def _settings(rate: float, limit: int, sets: dict) -> dict:
    return {
        "system": "gpu-hbm",
        "model": MODEL,
        "load": "chat",
        "rate": rate,
        "limit": limit,
        "seed": 1,
        "set": {"mapping.tp": 1, **sets},
    }


def _homogeneous() -> dict:
    return {"mapping.dp": HOMOGENEOUS_REPLICAS, "router.policy": "least_tokens"}


def _disaggregated(decode: str, prefill_n: int, decode_n: int) -> dict:
    return {
        "disagg.decode_system": decode,
        "disagg.decode_tp": 1,
        "disagg.prefill_replicas": prefill_n,
        "disagg.decode_replicas": decode_n,
        "disagg.prefill_router": "least_tokens",
        "disagg.decode_router": "least_tokens",
    }


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rates = [40.0] if fast else [20.0, 40.0, 60.0]
    limit = 40 if fast else 300
    sides = {f"{HOMOGENEOUS_REPLICAS} x gpu-hbm (dp {HOMOGENEOUS_REPLICAS})": _homogeneous()}
    sides.update({label: _disaggregated(dec, p, d) for label, dec, p, d in SIDES})
    rows, results = [], {}
    for rate in rates:
        for label, sets in sides.items():
            s = simulate(_settings(rate, limit, sets))
            assert "error" not in s, s.get("error")
            results[(label, rate)] = s
            x = s.get("disaggregation")
            rows.append(
                [
                    label,
                    rate,
                    s["capital_usd"],
                    s["tokens_per_s"],
                    1e3 * s["tokens_per_s_per_usd"],
                    s["energy_j_per_token"],
                    s["ttft_ms"]["p50"],
                    s["ttft_ms"]["p99"],
                    s["tpot_ms"]["p50"],
                    s["tpot_ms"]["p99"],
                    x["transfer_ms"]["mean"] if x else "-",
                    100 * x["ttft_breakdown"]["kv transfer"] if x else "-",
                ]
            )
    base_label = next(iter(sides))
    base_capital = results[(base_label, rates[0])]["capital_usd"]
    for label in sides:
        capital = results[(label, rates[0])]["capital_usd"]
        assert abs(capital / base_capital - 1) <= 0.10, (label, capital, base_capital)

    headers = [
        "cluster",
        "rate (req/s)",
        "capital ($)",
        "tokens/s",
        "tokens/s per k$",
        "J/token",
        "TTFT p50 (ms)",
        "TTFT p99 (ms)",
        "TPOT p50 (ms)",
        "TPOT p99 (ms)",
        "KV transfer mean (ms)",
        "KV transfer (% of TTFT)",
    ]
    pool_rows = []
    for label, *_ in SIDES:
        s = results[(label, rates[-1])]
        x = s["disaggregation"]
        pool_rows.append(
            [
                label,
                x["prefill"]["capital_usd"],
                x["decode"]["capital_usd"],
                x["prefill"]["energy_j"],
                x["decode"]["energy_j"],
                x["link"]["energy_j"],
                x["kv_bytes_moved"] / 1e9,
                100 * max(x["link"]["egress_utilization"]),
                x["decode"]["wait_ms"]["p99"],
            ]
        )
    img = plot(
        out / "disagg_tpot.png",
        f"{MODEL}: TPOT p50 against offered chat load, equal capital",
        "offered load (requests/s)",
        "TPOT p50 (ms)",
        {label: (rates, [results[(label, r)]["tpot_ms"]["p50"] for r in rates]) for label in sides},
    )
    setup = (
        f"`{MODEL}`, one chip per replica (`mapping.tp=1`), synthetic `chat` load "
        f"({limit} requests, Poisson arrivals, seed 1) at {', '.join(f'{r:g}' for r in rates)} requests/s. "
        f"Homogeneous: `gpu-hbm` with `mapping.dp={HOMOGENEOUS_REPLICAS}` and the least-tokens router. "
        "Disaggregated: `gpu-hbm` prefill replicas and `hbf-hybrid` or `pnm-3d` decode replicas "
        "(`disagg.*`, least-tokens routing in both pools), the KV moving over the default link "
        "(`disagg.link_bandwidth` 50 GB/s per chip per direction, one 400 Gb/s NDR port per GPU; "
        "`disagg.link_latency` 5 us, ASSUMPTION). Capital is the cost model's (chips and memories at "
        "the `[cost]` defaults); every side is within 10% of the homogeneous cluster's. TTFT of a "
        "disaggregated run ends when the request's KV reaches its decode replica.\n\n"
        "Commands (one side each; `benchmarks/run_all --only disagg` runs them all):\n\n"
        "```\n"
        f"memwall run gpu-hbm --load chat --rate {rates[-1]:g} --limit {limit} --seed 1 --set mapping.tp=1 "
        f"--set mapping.dp={HOMOGENEOUS_REPLICAS} --set router.policy=least_tokens\n"
        f"memwall run gpu-hbm --load chat --rate {rates[-1]:g} --limit {limit} --seed 1 --set mapping.tp=1 "
        "--set disagg.decode_system=hbf-hybrid --set disagg.decode_tp=1 --set disagg.prefill_replicas=1 "
        "--set disagg.decode_replicas=3 --set disagg.prefill_router=least_tokens "
        "--set disagg.decode_router=least_tokens\n"
        "```"
    )
    sections = [
        ("Throughput per capital, energy and latency", table(headers, rows)),
        (
            f"Pools at {rates[-1]:g} requests/s",
            table(
                [
                    "cluster",
                    "prefill capital ($)",
                    "decode capital ($)",
                    "prefill energy (J)",
                    "decode energy (J)",
                    "link energy (J)",
                    "KV moved (GB)",
                    "busiest link port (%)",
                    "decode admission wait p99 (ms)",
                ],
                pool_rows,
            ),
        ),
        (
            "What each side had",
            capabilities(
                {
                    label: {"system": system, "model": MODEL, "batch": 1, "context": 1024, "steps": 1}
                    | {"set": {"mapping.tp": 1}}
                    for label, system in (
                        ("gpu-hbm", "gpu-hbm"),
                        ("hbf-hybrid", "hbf-hybrid"),
                        ("pnm-3d", "pnm-3d"),
                    )
                }
            ),
        ),
    ]
    return write_markdown(out, NAME, TITLE, setup, sections, _conclusion(results, sides, rates), [img])


def _conclusion(results: dict, sides: dict, rates: list[float]) -> str:
    """In words, from the numbers: each disaggregated side against the homogeneous cluster."""
    base = next(iter(sides))
    parts = []
    for rate in rates:
        b = results[(base, rate)]
        for label in list(sides)[1:]:
            s = results[(label, rate)]
            per_usd = s["tokens_per_s_per_usd"] / b["tokens_per_s_per_usd"]
            per_j = s["energy_j_per_token"] / b["energy_j_per_token"]
            kv = 100 * s["disaggregation"]["ttft_breakdown"]["kv transfer"]
            parts.append(
                f"at {rate:g} requests/s, {label} gives {per_usd:.2f}x the tokens/s per $ of capital, "
                f"{per_j:.2f}x the J/token, TPOT p50 {s['tpot_ms']['p50']:.2f} against "
                f"{b['tpot_ms']['p50']:.2f} ms and TTFT p99 {s['ttft_ms']['p99']:.1f} against "
                f"{b['ttft_ms']['p99']:.1f} ms (KV transfer {kv:.1f}% of TTFT)"
            )
    best = max(
        (label for label in list(sides)[1:]),
        key=lambda label: results[(label, rates[-1])]["tokens_per_s_per_usd"],
    )
    gain = (
        results[(best, rates[-1])]["tokens_per_s_per_usd"]
        / results[(base, rates[-1])]["tokens_per_s_per_usd"]
    )
    tail = f"At the highest load the best disaggregated side ({best}) " + (
        f"beats the homogeneous cluster by {gain - 1:.0%} in tokens/s per $."
        if gain > 1
        else f"reaches {gain:.2f}x its tokens/s per $."
    )
    tps = [results[(label, rates[-1])]["tokens_per_s"] for label in sides]
    spread = max(tps) / min(tps)
    if spread < 1.05:
        tail += (
            f" There tokens/s differs by {spread - 1:.1%} between the sides (the offered load sets it), "
            "so tokens/s per $ mostly reflects capital; the latency columns show where each side's time goes."
        )
    cells = [(label, r) for r in rates for label in list(sides)[1:]]
    tpot_lower = sum(results[c]["tpot_ms"]["p50"] < results[(base, c[1])]["tpot_ms"]["p50"] for c in cells)
    ttft_higher = sum(results[c]["ttft_ms"]["p99"] > results[(base, c[1])]["ttft_ms"]["p99"] for c in cells)
    tail += (
        f" Over all {len(cells)} disaggregated cells, TPOT p50 is lower than the homogeneous cluster's in "
        f"{tpot_lower} (decode iterations no longer carry prefill chunks) and TTFT p99 is higher in "
        f"{ttft_higher} (the prefill pool queues, and the KV transfer is inside TTFT)."
    )
    return "Against " + base + ": " + "; ".join(parts) + ". " + tail
