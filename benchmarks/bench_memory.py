"""Simulator speed of the memory devices at each fidelity level.

Runs membench cases and records events/s, simulated bytes per wall second and wall time, to
``benchmarks/results/memory.json`` and a Markdown table beside it. Speed is measured here, never in
unit tests. Targets (issue #2, on the 2-core CI machine): 1 GiB of sequential reads at transaction
level under 2 s wall for hbf-gen1 and hbm3; the detailed level sustains >= 100k events/s.

    python benchmarks/bench_memory.py            # full cases
    python benchmarks/bench_memory.py --quick    # small cases, seconds
    python benchmarks/bench_memory.py --hbf      # issue 12 (HBF page register, batched streams):
                                                 # CPU seconds to results/hbf_streams.{json,md}
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

from sim.core.units import format_bandwidth, format_size, parse_size
from sim.experiments.membench import MembenchParams, run_membench
from sim.memory.factory import resolve_device

RESULTS = Path(__file__).parent / "results"

# (device, fidelity, pattern, request size, concurrency, bytes): chosen to match the targets.
CASES = [
    ("hbf-gen1", "transaction", "seq", "256KiB", 64, "1GiB"),
    ("hbm3", "transaction", "seq", "256KiB", 64, "1GiB"),
    ("hbf-gen1", "transaction", "random", "4KiB", 4096, "256MiB"),
    ("hbm3", "transaction", "random", "4KiB", 256, "64MiB"),
    ("hbf-gen1", "detailed", "seq", "256KiB", 64, "64MiB"),
    ("hbm3", "detailed", "seq", "256KiB", 64, "16MiB"),
    ("hbm3", "detailed", "random", "64B", 256, "2MiB"),
    ("hbf-gen1", "analytic", "seq", "256KiB", 64, "1GiB"),
]


def run_case(device: str, fidelity: str, pattern: str, size: str, conc: int, total: str) -> dict:
    spec = resolve_device(device, fidelity=fidelity)
    params = MembenchParams(pattern=pattern, request_size=size, concurrency=conc, total_bytes=total)
    r = run_membench(spec, params, seed=0)
    return {k: v for k, v in r.items() if k not in ("stats", "config")}


def _cpu(fn):
    """(fn(), CPU seconds this process spent in it)."""
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def _stream_case(fidelity: str, model: str, scale: int, window: int) -> dict:
    """Three unaligned tensors streamed through a 1 MiB-unit window (next_tensor hints)."""
    from sim.core.simulation import Simulation
    from sim.memory.prefetch import Prefetcher, PrefetchParams

    mib = 1 << 20
    tensors = [(3 * mib + 12_345, 40 * mib * scale + 777), (200 * mib + 4096, 24 * mib * scale)]
    sim = Simulation(seed=5)
    dev = resolve_device("hbf-gen1", fidelity=fidelity).build(sim)
    pf = Prefetcher(
        sim, "pf", dev, PrefetchParams(policy="next_tensor", window_pages=window, unit=mib, model=model)
    )
    ends: list[int] = []

    def consumer():
        for k, (base, n) in enumerate(tensors):
            hint = tensors[k + 1] if k + 1 < len(tensors) else None
            ends.append((yield from pf.stream(k, base, n, hint_next=hint)).end_ps)

    sim.env.process(consumer())
    _, cpu = _cpu(sim.run)
    sim.finalize()
    return {
        "fidelity": fidelity,
        "model": model,
        "window": window,
        "bytes": sum(n for _, n in tensors),
        "events": sim.env.events_processed,
        "cpu_s": cpu,
        "end_ps": ends,
        "energy_pj": dev.stat.energy_pj.value,
    }


def hbf_main(out: Path) -> int:
    """Issue 12 figures: sequential 4 KiB reads with the page register, batched streams."""
    from sim.cli import main as cli

    rows: list[dict] = []
    spec = resolve_device("hbf-gen1", fidelity="transaction")
    params = MembenchParams(pattern="seq", request_size=4096, concurrency=4096, total_bytes=1 << 30)
    r, cpu = _cpu(lambda: run_membench(spec, params, seed=0))
    rows.append(
        {
            "case": "membench hbf-gen1 transaction seq 4KiB x4096 1GiB",
            "cpu_s": cpu,
            "events": r["events"],
            "fraction_of_peak": r["fraction_of_peak"],
            "energy_pj_per_byte": r["energy_pj_per_byte"],
            "register_hits": r["stats"]["device"]["register_hits"],
            "pages_read": r["stats"]["device"]["pages_read"],
        }
    )
    print(rows[-1], flush=True)
    for fidelity in ("analytic", "transaction"):
        for window in (32, 4):
            ref = _stream_case(fidelity, "requests", 1, window)
            for scale in (1, 2):
                got = _stream_case(fidelity, "batched", scale, window)
                req = ref if scale == 1 else _stream_case(fidelity, "requests", scale, window)
                err = max(abs(a - b) for a, b in zip(got["end_ps"], req["end_ps"], strict=True))
                rows.append(
                    {
                        "case": f"stream {fidelity} window {window} x{scale}",
                        "bytes": got["bytes"],
                        "events_batched": got["events"],
                        "events_requests": req["events"],
                        "cpu_s_batched": got["cpu_s"],
                        "cpu_s_requests": req["cpu_s"],
                        "end_error_ps": err,
                        "energy_rel_error": abs(got["energy_pj"] - req["energy_pj"]) / req["energy_pj"],
                    }
                )
                print(rows[-1], flush=True)
    argv = [
        "run",
        "hbf-hybrid",
        "--model",
        "llama-3.1-70b",
        "--set",
        "mapping.tp=1",
        "--limit",
        "3",
        "--json",
    ]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _, cpu = _cpu(lambda: cli(argv))
    run = json.loads(buf.getvalue())
    rows.append(
        {
            "case": "memwall " + " ".join(argv),
            "cpu_s": cpu,
            "events": run["events"],
            "tpot_ms_mean": run["tpot_ms"]["mean"],
            "iterations": run["iterations"],
        }
    )
    print(rows[-1], flush=True)
    meta = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": "2 shared",
        "unit": "CPU s",
    }
    out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1, sort_keys=True) + "\n")
    md = ["| case | figures |", "|---|---|"]
    for row in rows:
        figures = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "case"
        )
        md.append(f"| {row['case']} | {figures} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shrink every case 16x (smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS / "memory.json")
    ap.add_argument("--hbf", action="store_true", help="issue 12 figures to results/hbf_streams.json")
    args = ap.parse_args(argv)
    if args.hbf:
        return hbf_main(RESULTS / "hbf_streams.json")
    rows = []
    for device, fidelity, pattern, size, conc, total in CASES:
        nbytes = parse_size(total) // (16 if args.quick else 1)
        r = run_case(device, fidelity, pattern, size, conc, nbytes)
        rows.append(r)
        print(
            f"{device:9} {fidelity:11} {pattern:6} {size:>6} x{conc:<5} {format_size(nbytes):>7}: "
            f"wall {r['wall_s']:7.3f} s, {r['events_per_s']:>10,.0f} ev/s, "
            f"{format_bandwidth(r['simulated_bytes_per_wall_s']):>10} simulated/s, "
            f"{100 * r['fraction_of_peak']:5.1f}% of peak",
            flush=True,
        )
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "quick": args.quick}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1, sort_keys=True) + "\n")
    md = [
        "| device | level | pattern | request | conc. | bytes | wall s | events/s | simulated B/s |"
        " % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['device']} | {r['fidelity']} | {r['pattern']} | "
            f"{format_size(r['request_size_bytes'])} | {r['concurrency']} | "
            f"{format_size(r['bytes'])} | {r['wall_s']:.3f} | {r['events_per_s']:,.0f} | "
            f"{format_bandwidth(r['simulated_bytes_per_wall_s'])} | "
            f"{100 * r['fraction_of_peak']:.1f} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
