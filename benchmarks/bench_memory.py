"""Simulator speed of the memory devices at each fidelity level.

Runs membench cases and records events/s, simulated bytes per wall second and wall time, to
``benchmarks/results/memory.json`` and a Markdown table beside it. Speed is measured here, never in
unit tests. Targets (issue #2, on the 2-core CI machine): 1 GiB of sequential reads at transaction
level under 2 s wall for hbf-gen1 and hbm3; the detailed level sustains >= 100k events/s.

    python benchmarks/bench_memory.py            # full cases
    python benchmarks/bench_memory.py --quick    # small cases, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shrink every case 16x (smoke run)")
    ap.add_argument("--out", type=Path, default=RESULTS / "memory.json")
    args = ap.parse_args(argv)
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
