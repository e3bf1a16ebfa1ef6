"""Full-trace replay at serving scale (issue 12): the whole Azure conversation trace through
Llama-3.1-70B on ``gpu-hbm`` (TP8) with the shipped defaults (HBM at transaction level, collectives
on the simulated fabric, iteration reuse on), and the reuse error measured against reuse off.

* ``full``: all 19,366 requests; CPU seconds, peak RSS, TTFT / TPOT and the sampled reuse error.
* ``first400``: the first 400 requests with reuse on and off; the relative difference of TTFT / TPOT
  mean, p50 and p99. A second reuse-off run with the host time per iteration moved by 1 ns shows
  how much any perturbation that small moves the same figures (scheduling divergence, not reuse).

Writes ``benchmarks/results/replay.json`` and ``replay.md``. The trace lives beside the repository
(``../shared/data/traces``, see its SOURCES.md)::

    python benchmarks/bench_replay.py                 # both parts
    python benchmarks/bench_replay.py --part first400
    python benchmarks/bench_replay.py --limit 2000    # a shorter "full" part
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

from sim.experiments.run import build_run, execute

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
TRACE = ROOT.parent / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"
FIGURES = ("ttft_ms", "tpot_ms")
QUANTILES = ("mean", "p50", "p99")


SUMS = ("tokens", "decodes", "decode_context", "chunks", "prefill_past", "prefill_pairs", "emitting")


def run(limit: int | None, sets: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """One run of the trace on gpu-hbm with Llama-3.1-70B; its summary (with ``reuse_worst``: the
    sampled check with the largest error, its batch and the stored one's) and CPU seconds."""
    settings: dict[str, Any] = {"system": "gpu-hbm", "model": "llama-3.1-70b", "trace": str(TRACE)}
    if limit is not None:
        settings["limit"] = limit
    spec, _ = build_run(dict(settings, set=sets))
    t0 = time.process_time()
    summary, driver, _ = execute(spec)
    cpu = time.process_time() - t0
    worst = driver.reuse.worst if driver.reuse is not None else None
    if worst is not None:
        worst = dict(
            worst,
            sums=dict(zip(SUMS, worst["sums"], strict=True)),
            stored_sums=dict(zip(SUMS, worst["stored_sums"], strict=True)),
        )
    return dict(summary, reuse_worst=worst), cpu


def figures(summary: dict[str, Any]) -> dict[str, float]:
    return {f"{f}.{q}": summary[f][q] for f in FIGURES for q in QUANTILES}


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Relative difference of ``a``'s TTFT / TPOT figures from ``b``'s."""
    fa, fb = figures(a), figures(b)
    return {k: fa[k] / fb[k] - 1 for k in fa}


def full(limit: int | None) -> dict[str, Any]:
    summary, cpu = run(limit, {})
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "requests": summary["requests"],
        "iterations": summary["iterations"],
        "tokens": summary["tokens"],
        "cpu_s": cpu,
        "peak_rss_mb": rss_mb,
        "events": summary["events"],
        "reuse": summary["reuse"],
        "reuse_worst": summary["reuse_worst"],
        "sim_time_s": summary["sim_time_s"],
        **figures(summary),
    }
    print(
        f"full: {out['requests']:,} requests, {out['iterations']:,} iterations in {cpu:.1f} CPU s, "
        f"peak RSS {rss_mb:.0f} MB, reuse {summary['reuse']}"
    )
    return out


def first400() -> dict[str, Any]:
    on, cpu_on = run(400, {})
    off, cpu_off = run(400, {"driver.reuse": False})
    nudged, _ = run(400, {"driver.reuse": False, "software.iteration": "2.000001ms"})
    out = {
        "cpu_s_reuse_on": cpu_on,
        "cpu_s_reuse_off": cpu_off,
        "reuse": on["reuse"],
        "reuse_on": figures(on),
        "reuse_off": figures(off),
        "relative_difference_reuse": differences(on, off),
        "relative_difference_1ns_host": differences(nudged, off),
    }
    for name in ("relative_difference_reuse", "relative_difference_1ns_host"):
        print(name, {k: f"{v:+.3%}" for k, v in out[name].items()})
    return out


def worst_line(w: dict[str, Any] | None) -> list[str]:
    """The largest sampled error named: its batch, the stored one's, replayed against full time."""
    if not w:
        return []

    def batch(s: dict[str, int]) -> str:
        return (
            f"{s['decodes']} decodes ({s['decode_context']:,} context tokens), {s['chunks']} prefill chunks"
        )

    return [
        f"Largest sampled error ({w['rel_error']:.4%} of the step, hit {w['hit']:,}): "
        f"{batch(w['sums'])}, replayed from {batch(w['stored_sums'])}: device time "
        f"{w['replayed_device_ps'] / 1e9:.3f} ms replayed, {w['device_ps'] / 1e9:.3f} ms in full "
        f"(host {w['host_ps'] / 1e9:.3f} ms).",
        "",
    ]


def markdown(rows: dict[str, Any]) -> str:
    lines = [
        "# Full-trace replay (benchmarks/bench_replay.py)",
        "",
        f"Machine: {rows['meta']['machine']}, Python {rows['meta']['python']}; CPU seconds "
        "(time.process_time). Llama-3.1-70B, gpu-hbm (TP8), Azure conversation trace, shipped defaults.",
        "",
    ]
    if "full" in rows:
        f = rows["full"]
        r = f["reuse"]
        lines += [
            "| requests | iterations | CPU s | peak RSS MB | shapes | hits | sampled | max rel. error |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {f['requests']:,} | {f['iterations']:,} | {f['cpu_s']:.1f} | {f['peak_rss_mb']:.0f} | "
            f"{r['shapes']:,} | {r['hits']:,} | {r['sampled']:,} | {r['max_rel_error']:.3%} |",
            "",
            *worst_line(f.get("reuse_worst")),
            "| figure | " + " | ".join(f"{q}" for q in QUANTILES) + " |",
            "|---|" + "---:|" * len(QUANTILES),
            *(
                f"| {fig} | " + " | ".join(f"{f[f'{fig}.{q}']:.3f}" for q in QUANTILES) + " |"
                for fig in FIGURES
            ),
            "",
        ]
    if "first400" in rows:
        f = rows["first400"]
        lines += [
            f"First 400 requests: reuse on {f['cpu_s_reuse_on']:.1f} CPU s, "
            f"off {f['cpu_s_reuse_off']:.1f} CPU s.",
            "",
            "| figure | reuse off | reuse on | difference | 1 ns more host time per iteration |",
            "|---|---:|---:|---:|---:|",
        ]
        for k, v in f["reuse_off"].items():
            lines.append(
                f"| {k} | {v:.3f} | {f['reuse_on'][k]:.3f} | {f['relative_difference_reuse'][k]:+.3%} | "
                f"{f['relative_difference_1ns_host'][k]:+.3%} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("full", "first400", "both"), default="both")
    ap.add_argument("--limit", type=int, default=None, help="requests of the full part (default: all)")
    ap.add_argument("--markdown", action="store_true", help="only rewrite replay.md from replay.json")
    args = ap.parse_args()
    if args.markdown:
        (RESULTS / "replay.md").write_text(markdown(json.loads((RESULTS / "replay.json").read_text())))
        return 0
    if not TRACE.is_file():
        print(f"error: {TRACE} not found (the shared data beside the repository)", file=sys.stderr)
        return 2
    out = RESULTS / "replay.json"
    rows: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}  # the other part kept
    rows["meta"] = {"python": sys.version.split()[0], "machine": platform.machine()}
    if args.part in ("first400", "both"):
        rows["first400"] = first400()
    if args.part in ("full", "both"):
        rows["full"] = full(args.limit)  # last: its peak RSS is the process's
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    (RESULTS / "replay.md").write_text(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
