"""Simulator speed of end-to-end runs (issue #4 targets, 2-core machine).

* 16 decode iterations of Llama-3.1-70B at batch 32, context 4096, TP=8 on hbf-hybrid: < 5 s wall;
* 200 requests of the Azure conversation trace with Llama-3.1-8B on the default system: < 60 s wall.

Writes ``benchmarks/results/run.json`` and ``run.md``.

    python benchmarks/bench_run.py
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from sim.experiments.run import RunSpec, execute
from sim.model.spec import load_model
from sim.requests.readers import open_trace
from sim.serving.mapping import mapping_from
from sim.system.spec import load_system

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
KEEP = (
    "system",
    "model",
    "requests",
    "tokens",
    "iterations",
    "tpot_ms",
    "step_time_ms",
    "tokens_per_s",
    "stall_breakdown",
    "events",
    "wall_s",
    "events_per_s",
    "sim_s_per_wall_s",
)


def main() -> int:
    rows = {"meta": {"python": sys.version.split()[0], "machine": platform.machine()}}
    hybrid = load_system("hbf-hybrid")
    s, _, _ = execute(
        RunSpec(
            load_model("llama-3.1-70b"), hybrid, mapping_from(hybrid), None, batch=32, context=4096, steps=16
        )
    )
    rows["decode_70b_hbf_hybrid"] = {k: s[k] for k in KEEP}
    print(
        f"70B decode, batch 32, ctx 4096, TP8 on hbf-hybrid, 16 iterations: {s['wall_s']:.2f} s wall, "
        f"{s['events']:,} events ({s['events_per_s']:,.0f}/s), TPOT {s['tpot_ms']['mean']:.2f} ms"
    )
    default = load_system("default")
    reqs = open_trace(ROOT / "traces" / "azure_conv_200.csv", limit=200)
    s, _, _ = execute(
        RunSpec(load_model("llama-3.1-8b"), default, mapping_from(default), reqs, label="azure_conv_200")
    )
    rows["azure_200_llama8b_default"] = {k: s[k] for k in KEEP}
    print(
        f"200 Azure conversation requests, Llama-3.1-8B on default: {s['wall_s']:.2f} s wall, "
        f"{s['events']:,} events ({s['events_per_s']:,.0f}/s), {s['tokens']} tokens, "
        f"{s['sim_s_per_wall_s']:.2f} simulated s per wall s"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "run.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    md = ["| case | wall s | events | events/s | simulated s per wall s |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        if name != "meta":
            md.append(
                f"| {name} | {r['wall_s']:.2f} | {r['events']:,} | {r['events_per_s']:,.0f} | "
                f"{r['sim_s_per_wall_s']:.3g} |"
            )
    (RESULTS / "run.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
