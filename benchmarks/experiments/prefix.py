"""Prefix caching with the KV blocks kept on HBM, on HBF or in host memory: hit rate, TTFT, flash life.

The Mooncake conversation trace (Kimi's production chat, FAST'25) names every 512-token prompt block
by a hash of its prefix, so requests that continue a conversation find the KV of earlier turns.
Where the cached blocks live sets what a hit costs (nothing on HBM; a read over PCIe from host
memory; a read from flash) and what keeping them costs (HBM capacity taken from running requests;
flash writes, which wear the flash out). The same trace, model and chip (``hbf-hybrid``: 3 HBM3 +
3 HBF stacks, weights on HBF, running KV on HBM) with the cache off and on six tier layouts.
"""

from __future__ import annotations

from pathlib import Path

from common import capabilities, plot, simulate, table, write_markdown

NAME = "prefix"
TITLE = "Prefix caching: KV blocks on HBM, HBF or host memory"

REPO = Path(__file__).resolve().parents[2]
FULL_TRACE = REPO.parent / "shared" / "data" / "traces" / "conversation_trace.jsonl"
SLICE = "traces/mooncake_conv_200.jsonl"  # the first 200 requests of the same file, shipped
MODEL = "llama-3.1-8b"
HBM_POOL = "8GiB"  # ASSUMPTION: a sixth of hbf-hybrid's 48 GiB of HBM per chip kept for cached prefixes
HOST_POOL = "256GB"  # NVIDIA DGX H100 datasheet: 2 TB of system memory for 8 GPUs = 256 GB per GPU

IDEAL = "HBM, unbounded (ideal)"
LAYOUTS = [  # label, tiers, capacities per chip
    ("off", "", ""),
    (IDEAL, "hbm", "unbounded"),
    ("HBM", "hbm", HBM_POOL),
    ("HBF", "hbf", "unbounded"),
    ("HBF, pool as HBM's", "hbf", HBM_POOL),
    ("host", "host", HOST_POOL),
    ("HBM then HBF", "hbm,hbf", f"{HBM_POOL},unbounded"),
    ("HBM then host", "hbm,host", f"{HBM_POOL},{HOST_POOL}"),
]


def settings(trace: str, limit: int, tiers: str, capacity: str) -> dict:
    sets = {}
    if tiers:
        sets = {
            "prefix_cache.enabled": "true",
            "prefix_cache.tiers": tiers,
            "prefix_cache.capacity": capacity,
        }
    return {"system": "hbf-hybrid", "model": MODEL, "trace": trace, "limit": limit, "set": sets}


def command(trace: str, limit: int, tiers: str, capacity: str) -> str:
    sets = "".join(f" --set {k}={v}" for k, v in settings(trace, limit, tiers, capacity)["set"].items())
    return f"memwall run hbf-hybrid {trace} --model {MODEL} --limit {limit}{sets}"


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if fast or not FULL_TRACE.is_file():
        trace, limit = SLICE, 60
    else:
        trace, limit = "../shared/data/traces/conversation_trace.jsonl", 800
    path = trace if trace == SLICE else str(FULL_TRACE)
    rows, commands, ttft = [], [], {}
    results = {}
    for label, tiers, capacity in LAYOUTS:
        s = simulate(settings(path, limit, tiers, capacity))
        results[label] = s
        commands.append(command(trace, limit, tiers, capacity))
        pc = s.get("prefix_cache")
        flash = (pc or {}).get("flash", {}).get("hbf")
        moved = 0.0  # bytes read from and written to the tiers' media, per chip
        if pc:
            moved = sum(t["bytes_read"] + t["bytes_written"] for t in pc["by_tier"].values()) / 1e9
        rows.append(
            [
                label,
                100 * pc["token_hit_rate"] if pc else 0.0,
                pc["prefill_tokens_computed"] if pc else None,
                s["ttft_ms"]["p50"],
                s["ttft_ms"]["p99"],
                s["tpot_ms"]["mean"],
                1e3 * pc["transfer_wait_s"] if pc else 0.0,
                moved,
                flash["max_pe_cycles"] if flash else "-",
                flash["lifetime_days"] if flash else "-",
                flash["region_bytes_per_stack"] / 2**30 if flash else "-",
                flash["lifetime_days_region_only"] if flash else "-",
                flash["lifetime_days_configured_only"] if flash else "-",
            ]
        )
        ttft[label] = s["ttft_ms"]["p99"]
    headers = [
        "KV blocks on",
        "prompt tokens cached (%)",
        "prefill tokens computed",
        "TTFT p50 (ms)",
        "TTFT p99 (ms)",
        "TPOT mean (ms)",
        "waited for tier moves (ms)",
        "GB read + written on tier media per chip",
        "HBF max P/E",
        "HBF life (days, wear-levelled over the stack)",
        "HBF log region per stack (GiB; whole erase stripes)",
        "HBF life (days, over the log's region)",
        "HBF life (days, over the configured pool only)",
    ]
    img = plot(
        out / "prefix_ttft.png",
        f"{MODEL}, hbf-hybrid, Mooncake chat ({limit} requests)",
        "prompt tokens served from the cache (%)",
        "TTFT p99 (ms)",
        {r[0]: ([r[1]], [ttft[r[0]]]) for r in rows},  # one point per layout
    )
    rows[0][2] = results["HBM"]["prefix_cache"]["prompt_tokens"]  # without the cache: every prompt token
    hbm = results["HBM"]["prefix_cache"]
    ideal = results[IDEAL]["prefix_cache"]
    hbf = results["HBF"]["prefix_cache"]
    host = results["host"]["prefix_cache"]
    f = hbf["flash"].get("hbf", {})
    small = results["HBF, pool as HBM's"]["prefix_cache"]["flash"].get("hbf", {})
    inf = float("inf")
    setup = (
        f"Workload: the first {limit} requests of the Mooncake conversation trace (`{trace}`; Qin et al., "
        f"FAST'25), at its own arrival times; {MODEL}, tp 8 on `hbf-hybrid`. A request looks up its "
        "leading cached 512-token blocks when it is first admitted, computes the rest (at least one "
        "token), and its full blocks become reusable when its prefill completes "
        "(`sim/serving/prefix_cache.py`). An HBM pool takes its capacity from the running requests' "
        f"KV ({HBM_POOL} per chip, ASSUMPTION); host memory is {HOST_POOL} per GPU (DGX H100: 2 TB "
        "for 8 GPUs) "
        "over PCIe Gen5 x16 (63 GB/s per direction, 2 us per transfer, ASSUMPTION); HBF is the free "
        "space of the chip's three stacks (1.5 TiB), written as a log. Moves between tiers are issued "
        "to the memories' timing models before the iteration that needs them and are not overlapped "
        "with it (an upper bound on their cost). Lifetime: endurance (100k P/E, SK hynix H3) x "
        "capacity / (the tier's write rate x write amplification), for one stack at this run's rate.\n\n"
        + capabilities({"hbf-hybrid": settings(path, limit, "", "")})
        + "\n\nCommands (one per row):\n\n```\n"
        + "\n".join(commands)
        + "\n```"
    )
    sections = [("Hit rate, latency and flash wear by layout", table(headers, rows))]
    p99 = {k: v["ttft_ms"]["p99"] for k, v in results.items()}
    small_s = results["HBF, pool as HBM's"]["sim_time_s"]
    conclusion = (
        f"On {limit} requests the cache serves {100 * hbm['token_hit_rate']:.1f}% of prompt tokens "
        f"from an {HBM_POOL} HBM pool, {100 * hbf['token_hit_rate']:.1f}% from an unbounded pool on "
        f"HBF and {100 * host['token_hit_rate']:.1f}% from host memory, against "
        f"{100 * ideal['token_hit_rate']:.1f}% for an unbounded HBM pool (the trace's hit rate grows "
        "with the requests seen: conversations return minutes later, after a small pool has evicted "
        f"them). TTFT p99 goes from {p99['off']:.0f} ms without caching to {p99['HBM']:.0f} ms "
        f"(HBM pool), {p99['HBF']:.0f} ms (HBF), {p99['host']:.0f} ms (host) and "
        f"{p99[IDEAL]:.0f} ms (unbounded HBM, no transfers: what the tiers' moves cost is the rest). "
        "Every block put on HBF is a flash write: the unbounded HBF "
        f"tier wrote {f.get('bytes_written_per_stack', 0) / 1e9:.3g} GB per stack in "
        f"{results['HBF']['sim_time_s']:.0f} s ({f.get('write_rate_Bps_per_stack', 0) / 1e6:.3g} MB/s), "
        f"which at 100k P/E cycles wears the whole stack out in {f.get('lifetime_days', inf):.3g} days "
        "if wear-levelling spreads it over all 512 GiB; an HBF pool of the HBM pool's size "
        f"({small.get('configured_bytes_per_stack', 0) / 2**30:.3g} GiB per stack), rewritten in place, "
        f"has its log rounded up to whole erase stripes "
        f"({small.get('region_bytes_per_stack', 0) / 2**30:.3g} GiB per stack, the flash it really "
        f"takes) and lasts {small.get('lifetime_days_region_only', inf):.3g} days over that region "
        f"(its most-worn block took {small.get('max_pe_cycles', 0)} P/E cycles in {small_s:.0f} s), "
        f"or {small.get('lifetime_days_configured_only', inf):.3g} days if the log wrapped at the "
        "configured size."
    )
    return write_markdown(out, NAME, TITLE, setup, sections, conclusion, [img])
