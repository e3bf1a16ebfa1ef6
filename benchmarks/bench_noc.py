"""Simulator speed and fidelity of the fabric, side by side with BookSim 2 on the same question.

The question (issue 12): an 8x8 (and 16x16) mesh, dimension-order routing, 4 VCs x 8 flits, the
canonical 4-stage router (RC, VA, SA, ST) with 1-cycle links, 1-flit packets, uniform traffic at
0.3 flits/node/cycle (0.15 on 16x16: 60% of the bisection bound 4/k either way), 3,000 warm-up +
3,000 measured cycles, then a drain of the measured packets.

Reported (``benchmarks/results/noc.json`` and ``noc.md``):

* router traversals per CPU second (a flit crossing H links traverses H + 1 routers, BookSim's
  "Hops average"), flit and message level, 8x8 and 16x16 meshes, median of ``--repeat`` runs;
* with ``--booksim PATH``, BookSim 2 on the same question, run back to back with memwall (one
  BookSim run, then one of each memwall level, ``--repeat`` times), so a busy machine slows both;
* the message level's speed relative to the flit level, and its latency error per load;
* the saturation point (first load flagged saturated, see :mod:`sim.experiments.noc`) of the 8x8
  mesh at both levels and of the 8x8 torus at flit level (and BookSim's, with ``--booksim``).

CPU seconds, not wall: ``time.process_time()`` around ``run_noc`` for memwall, the child's user +
system time (``resource.getrusage(RUSAGE_CHILDREN)``, what ``/usr/bin/time`` reports) for BookSim.
BookSim's traversals are ``Time taken`` (cycles) x nodes x ``Accepted flit rate average`` x ``Hops
average`` (the accepted rate of the measured window stands for the warm-up and drain too).

How BookSim 2 was built (not part of this repository)::

    # github.com/booksim/booksim2 at commit 28f43299
    git archive HEAD | tar -x -C /tmp/booksim2 && cd /tmp/booksim2/src && make   # g++, flex, bison
    python benchmarks/bench_noc.py --booksim /tmp/booksim2/src/booksim

The BookSim configuration is :data:`BOOKSIM_CONFIG` (``routing_delay = 1`` matches memwall's
``t_rc = 1``: both then give a 0-hop packet 7 and 6 cycles, 5 per hop; ``use_noc_latency = 0``
gives torus links 1 cycle like the mesh's, BookSim's default is 2 on a torus).

    python benchmarks/bench_noc.py [--quick] [--repeat N] [--booksim PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.experiments.noc import NocRunParams, run_noc, sweep_noc
from sim.topology import mesh, torus

RESULTS = Path(__file__).parent / "results"

BOOKSIM_CONFIG = """\
topology = {topology};
k = {k};
n = 2;
routing_function = {routing};
num_vcs = 4;
vc_buf_size = 8;
wait_for_tail_credit = 0;
vc_allocator = separable_input_first;
sw_allocator = separable_input_first;
alloc_iters = 1;
credit_delay = 0;
routing_delay = 1;
vc_alloc_delay = 1;
sw_alloc_delay = 1;
input_speedup = 1;
output_speedup = 1;
internal_speedup = 1.0;
use_noc_latency = 0;
traffic = uniform;
packet_size = 1;
sim_type = latency;
warmup_periods = 1;
sample_period = {measure};
max_samples = 2;
injection_rate = {rate};
seed = {seed};
"""
"""BookSim 2 input for the question above: one warm-up period and one measured period of
``sample_period`` cycles each (``warmup_periods = 1``, ``max_samples = 2``), then the drain."""


def booksim(path: str, topology: str, k: int, rate: float, measure: int, seed: int = 1) -> dict[str, Any]:
    """Run BookSim 2 once; its CPU seconds, cycles, latency, accepted rate and traversals."""
    routing = "dor" if topology == "mesh" else "dim_order"
    cfg = BOOKSIM_CONFIG.format(
        topology=topology, k=k, routing=routing, rate=rate, measure=measure, seed=seed
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "noc.cfg"
        cfg_path.write_text(cfg)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([path, str(cfg_path)], capture_output=True, text=True, check=False).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def last(label: str) -> float | None:
        found = re.findall(rf"^{label}\s*=\s*([0-9.eE+-]+)", out, flags=re.M)
        return float(found[-1]) if found else None

    cycles = re.findall(r"Time taken is (\d+) cycles", out)
    accepted = last("Accepted flit rate average")
    hops = last("Hops average")
    latency = last("Packet latency average")
    stable = bool(cycles) and "Aborting" not in out and "Too many sample periods" not in out
    traversals = int(cycles[-1]) * k * k * accepted * hops if stable and accepted and hops else 0.0
    return {
        "cpu_s": cpu,
        "cycles": int(cycles[-1]) if cycles else None,
        "mean_packet_latency_cycles": latency,
        "accepted_flits_per_node_cycle": accepted,
        "routers_per_flit": hops,
        "router_traversals": traversals,
        "router_traversals_per_cpu_s": traversals / cpu if cpu > 0 else 0.0,
        "stable": stable,
    }


def memwall(graph: Any, rate: float, warmup: int, measure: int, fidelity: str) -> dict[str, Any]:
    """One ``run_noc`` with its CPU seconds and traversals per CPU second."""
    t0 = time.process_time()
    r = run_noc(
        graph, NocRunParams(rate=rate, warmup=warmup, measure=measure, drain=20000, fidelity=fidelity)
    )
    cpu = time.process_time() - t0
    r["cpu_s"] = cpu
    r["router_traversals_per_cpu_s"] = r["router_traversals"] / cpu if cpu > 0 else 0.0
    return r


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median speed (the figure to quote), with every run's speed beside it."""
    ranked = sorted(runs, key=lambda r: r["router_traversals_per_cpu_s"])
    med = dict(ranked[len(ranked) // 2])
    med["router_traversals_per_cpu_s_all_runs"] = [r["router_traversals_per_cpu_s"] for r in ranked]
    return med


KEEP = (
    "cpu_s",
    "cycles",
    "router_traversals",
    "router_traversals_per_cpu_s",
    "router_traversals_per_cpu_s_all_runs",
    "mean_packet_latency_cycles",
    "accepted_flits_per_node_cycle",
    "zero_load_latency_cycles",
    "saturated",
    "saturated_by",
    "routers_per_flit",
    "stable",
)


def trim(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in KEEP if k in r}


def speed(args: argparse.Namespace, rows: dict[str, Any], md: list[str]) -> None:
    """Traversals per CPU second on the BookSim question, meshes of 8x8 and 16x16."""
    warm = meas = 3000 // (4 if args.quick else 1)
    for k in (8, 16):
        g = mesh(k)
        # 60% of the bisection bound 4/k (uniform traffic): 0.3 on 8x8; 16x16 saturates below 0.25
        rate = round(0.6 * 4 / k, 4)
        runs: dict[str, list[dict[str, Any]]] = {"booksim": [], "flit": [], "message": []}
        for _ in range(args.repeat):  # back to back, so machine load hits all three alike
            if args.booksim:
                runs["booksim"].append(booksim(args.booksim, "mesh", k, rate, meas))
            for fidelity in ("flit", "message"):
                runs[fidelity].append(memwall(g, rate, warm, meas, fidelity))
        case = rows[f"speed_mesh{k}_uniform"] = {"rate": rate}
        for level, rs in runs.items():
            if rs:
                case[level] = trim(median_run(rs))
        flit = case["flit"]["router_traversals_per_cpu_s"]
        msg = case["message"]["router_traversals_per_cpu_s"]
        case["message_over_flit_speed"] = msg / flit
        line = (
            f"| {k}x{k} mesh, uniform {rate}, 1-flit packets, traversals/CPU s | flit {flit:,.0f} "
            f"| message {msg:,.0f} ({msg / flit:.2f}x flit)"
        )
        if "booksim" in case:
            bs = case["booksim"]["router_traversals_per_cpu_s"]
            case["flit_over_booksim_speed"] = flit / bs
            line += f" | BookSim {bs:,.0f} (flit {flit / bs:.2f}x BookSim)"
        md.append(line + " |")
        print(md[-1], flush=True)


def accuracy(args: argparse.Namespace, rows: dict[str, Any], md: list[str]) -> None:
    """Message- against flit-level latency per load on the 8x8 mesh, and both saturation points."""
    warm = meas = 3000 // (4 if args.quick else 1)
    g = mesh(8)
    loads = [0.05, 0.1, 0.2, 0.3, 0.34, 0.38, 0.4, 0.42, 0.44, 0.46, 0.48, 0.5, 0.55, 0.6]
    curves = {}
    for fidelity in ("flit", "message"):
        runs = [
            NocRunParams(rate=x, warmup=warm, measure=meas, drain=20000, fidelity=fidelity) for x in loads
        ]
        curves[fidelity] = {r["offered_flits_per_node_cycle"]: r for r in sweep_noc(g, runs)}
    sat = {f: max(c) if c[max(c)]["saturated"] else None for f, c in curves.items()}
    table = []
    for x in loads:
        f, m = curves["flit"].get(x), curves["message"].get(x)
        if f is None or m is None:
            continue
        err = m["mean_packet_latency_cycles"] / f["mean_packet_latency_cycles"] - 1
        table.append(
            {
                "load": x,
                "flit_latency": f["mean_packet_latency_cycles"],
                "message_latency": m["mean_packet_latency_cycles"],
                "message_error": err,
                "flit_saturated": f["saturated"],
                "message_saturated": m["saturated"],
            }
        )
    rows["latency_mesh8_uniform"] = {"by_load": table, "first_saturated_load": sat}
    for t in table:
        md.append(
            f"| 8x8 mesh latency at {t['load']:.2f} | flit {t['flit_latency']:.2f} | message "
            f"{t['message_latency']:.2f} ({100 * t['message_error']:+.1f}%) |"
        )
    md.append(f"| 8x8 mesh, first saturated load | flit {sat['flit']} | message {sat['message']} |")
    print("\n".join(md[-len(table) - 1 :]), flush=True)


def torus_saturation(args: argparse.Namespace, rows: dict[str, Any], md: list[str]) -> None:
    """The 8x8 torus under uniform traffic: first saturated load, flit level (and BookSim)."""
    warm = meas = 3000 // (4 if args.quick else 1)
    loads = [0.4, 0.45, 0.5, 0.525, 0.55, 0.575, 0.6, 0.7]
    runs = [NocRunParams(rate=x, warmup=warm, measure=meas, drain=20000) for x in loads]
    out = sweep_noc(torus(8), runs)
    case = rows["saturation_torus8_uniform"] = {
        "flit": [{"load": r["offered_flits_per_node_cycle"], **trim(r)} for r in out],
        "flit_first_saturated_load": out[-1]["offered_flits_per_node_cycle"]
        if out[-1]["saturated"]
        else None,
    }
    line = f"| 8x8 torus, first saturated load | flit {case['flit_first_saturated_load']}"
    if args.booksim:
        bs = []
        for x in loads:
            b = booksim(args.booksim, "torus", 8, x, meas)
            bs.append({"load": x, **b})
            # BookSim's own test is its latency threshold; use memwall's 3x zero-load test as well
            if not b["stable"] or (b["accepted_flits_per_node_cycle"] or 0) < 0.95 * x:
                break
            if (b["mean_packet_latency_cycles"] or 0) > 3 * 27:  # 3 x (5 * 4 + 7): zero load, H = 4
                break
        case["booksim"] = bs
        case["booksim_first_saturated_load"] = bs[-1]["load"]
        line += f" | BookSim {bs[-1]['load']}"
    md.append(line + " |")
    print(md[-1], flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    ap.add_argument("--out", type=Path, default=RESULTS / "noc.json")
    ap.add_argument("--repeat", type=int, default=3, help="runs per speed case (median quoted)")
    ap.add_argument("--booksim", help="path of a BookSim 2 binary to run side by side")
    ap.add_argument("--only", choices=("speed", "accuracy", "torus"), help="one section only")
    args = ap.parse_args(argv)
    rows: dict[str, Any] = {
        "meta": {
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "quick": args.quick,
            "repeat": args.repeat,
            "booksim": args.booksim,
            "booksim_config": BOOKSIM_CONFIG,
            "cpu_seconds": "time.process_time() for memwall; RUSAGE_CHILDREN user+sys for BookSim",
        }
    }
    md = ["| case | memwall | | BookSim 2 |", "|---|---|---|---|"]
    sections = {"speed": speed, "accuracy": accuracy, "torus": torus_saturation}
    for name, fn in sections.items():
        if args.only in (None, name):
            fn(args, rows, md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
