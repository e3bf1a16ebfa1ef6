"""Simulator CPU time per decode iteration of Llama-3.1-70B on gpu-hbm with iteration reuse off
(issue 12 item 1: target <= 15 ms CPU per iteration). On the shared 2-core machine, load 2-4, the
same CLI run: 59.9 ms and 1,446 events per iteration before the DRAM work (2de2870), 20.4 ms and
323 events per iteration after it (medians of three; results identical but for the event count).

Every iteration goes through the HBM transaction model (weights per bank, KV reads per row run or
lane grid, KV writes as scalars), so this measures that model plus SimPy and the driver. Prints the
median of ``--repeat`` runs of CPU seconds (process time, not wall clock: the machine is shared)
divided by the iterations, and events per iteration. A benchmark, not a test: nothing is asserted.

    python benchmarks/bench_dram_iteration.py [--limit 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from pathlib import Path

from sim.cli import main as memwall

ROOT = Path(__file__).resolve().parents[1]


def once(limit: int) -> tuple[float, int, int]:
    """(CPU seconds, iterations, events) of one run of the slice, in this process."""
    argv = [
        "run",
        "gpu-hbm",
        str(ROOT / "traces" / "splitwise_conv_200.csv"),
        "--model",
        "llama-3.1-70b",
        "--limit",
        str(limit),
        "--set",
        "driver.reuse=false",
        "--json",
    ]
    out = io.StringIO()
    t0 = time.process_time()
    with contextlib.redirect_stdout(out):
        code = memwall(argv)
    cpu = time.process_time() - t0
    if code:
        raise SystemExit(f"memwall {' '.join(argv)} exited {code}")
    result = json.loads(out.getvalue())
    return cpu, result["iterations"], result["events"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=20, help="requests of the trace (20: 683 iterations)")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    args = ap.parse_args()
    runs = [once(args.limit) for _ in range(args.repeat)]
    per_iter = [cpu / iters * 1e3 for cpu, iters, _ in runs]
    _, iters, events = runs[0]
    print(
        f"llama-3.1-70b gpu-hbm, reuse off, {args.limit} requests: {iters} iterations, "
        f"{events / iters:,.0f} events/iteration, "
        f"{statistics.median(per_iter):.1f} ms CPU/iteration (median of {args.repeat}: "
        + ", ".join(f"{v:.1f}" for v in per_iter)
        + ")"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
