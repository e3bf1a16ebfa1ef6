"""Interconnect: collective latency and decode TPOT vs per-hop latency, topology, in-network reduction.

Decode all-reduces are small: the tensor-parallel all-reduce of an 8192-wide model moves
8192 x 2 B = 16 KiB per sequence, 16-512 KiB for batch 1-32. At those sizes latency, not
bandwidth, sets the collective's time. (a) sweeps the link latency of a 4x4 mesh; (b) compares
topologies with a ring and an in-network (SHARP-style) all-reduce; (c) lowers the calibrated NCCL
latency of the gpu-hbm system (its collective launch, which a hardware-initiated fabric would not
pay, and its per-transfer inject/eject latency) and watches llama-3.1-70b's TPOT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import capabilities, plot, simulate, table, write_markdown

from sim.experiments.collective import run_collective
from sim.fabric.collectives import CollectiveCase
from sim.fabric.network import NetworkParams
from sim.fabric.router import RouterParams
from sim.system.spec import load_system
from sim.topology import dragonfly, fat_tree, fully_connected, mesh, torus

NAME = "interconnect"
TITLE = "Interconnect: collective latency and decode TPOT vs hop latency, topology, in-network reduction"

KIB = 1024
RANKS = tuple(range(16))
# chip-to-chip fabric of the pnm-3d system: 100 GB/s links at a 1 ns cycle, 200 ns NIC each side
FABRIC = {"clock": "1GHz", "flit_bytes": "100B", "inject_latency": 200, "eject_latency": 200}
BASE_LINK = 50  # ns per link (pnm-3d's value)
ROUTER = RouterParams()  # 4 one-cycle stages

TOPOLOGIES = {
    "mesh 4x4": lambda: mesh(4),
    "torus 4x4": lambda: torus(4),
    "fat tree k4 l3": lambda: fat_tree(4, 3),
    "dragonfly p1 a4 h1": lambda: dragonfly(1, 4, 1),  # 20 terminals; ranks 0-15 (groups 0-3)
    "fully connected 16": lambda: fully_connected(16),
}

DECODE_SYSTEM = "gpu-hbm"
DECODE_MODEL = "llama-3.1-70b"
TP = 8  # gpu-hbm's mapping: one 8-rank all-reduce group


def allreduce_us(graph: Any, algorithm: str, nbytes: int, link_latency: int) -> float:
    net = NetworkParams(**FABRIC, link_latency=link_latency)
    case = CollectiveCase("allreduce", algorithm, nbytes, RANKS)
    return run_collective(graph, case, net, ROUTER, fidelity="message")["time_us"]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def run(fast: bool, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    sizes = (16 * KIB, 256 * KIB) if fast else (16 * KIB, 64 * KIB, 256 * KIB, 512 * KIB)
    table_sizes = (16 * KIB, 64 * KIB, 256 * KIB, 512 * KIB)
    links = (5, 10, 25, 50, 100, 200, 400) if fast else (1, 5, 10, 25, 50, 100, 200, 400, 800)
    algorithms_a = ("ring", "2d", "in-network")
    pipeline = ROUTER.pipeline

    # (a) all-reduce time vs per-hop latency on a 4x4 mesh
    g = mesh(4)
    sweep: dict[tuple[str, int], list[float]] = {}
    for alg in algorithms_a:
        for nbytes in sizes:
            sweep[(alg, nbytes)] = [allreduce_us(g, alg, nbytes, lat) for lat in links]
    hops = [pipeline + lat for lat in links]
    a_png = plot(
        out / f"{NAME}_hop_latency.png",
        "16-rank all-reduce on a 4x4 mesh vs per-hop latency",
        "per-hop latency (ns): router pipeline + link",
        "all-reduce time (us)",
        {f"{alg}, {nb // KIB} KiB": (hops, ys) for (alg, nb), ys in sweep.items()},
        logx=True,
        logy=True,
    )
    a_rows = []
    slopes: dict[tuple[str, int], float] = {}
    for (alg, nb), ys in sweep.items():
        slopes[(alg, nb)] = slope(hops, [y * 1e3 for y in ys])  # ns of all-reduce per ns of hop latency
        a_rows.append([alg, f"{nb // KIB} KiB", *ys, slopes[(alg, nb)]])
    a_table = table(
        ["algorithm", "bytes/rank", *[f"{h} ns/hop (us)" for h in hops], "hops on critical path"], a_rows
    )

    # (b) topologies x {ring, in-network} at decode sizes, fixed per-hop latency
    topo: dict[tuple[str, str], list[float]] = {}
    for name, make in TOPOLOGIES.items():
        graph = make()
        for alg in ("ring", "in-network"):
            topo[(name, alg)] = [allreduce_us(graph, alg, nb, BASE_LINK) for nb in table_sizes]
    xs = [nb // KIB for nb in table_sizes]
    ring_png = plot(
        out / f"{NAME}_topology_ring.png",
        f"ring all-reduce, 16 ranks, {pipeline + BASE_LINK} ns/hop",
        "bytes per rank (KiB)",
        "all-reduce time (us)",
        {name: (xs, topo[(name, "ring")]) for name in TOPOLOGIES},
        logx=True,
    )
    inn_png = plot(
        out / f"{NAME}_topology_innetwork.png",
        f"in-network all-reduce, 16 ranks, {pipeline + BASE_LINK} ns/hop",
        "bytes per rank (KiB)",
        "all-reduce time (us)",
        {name: (xs, topo[(name, "in-network")]) for name in TOPOLOGIES},
        logx=True,
    )
    b_rows = []
    for name in TOPOLOGIES:
        ring, inn = topo[(name, "ring")], topo[(name, "in-network")]
        b_rows.append([name, *ring, *inn, *(r / i for r, i in zip(ring, inn, strict=True))])
    b_table = table(
        [
            "topology",
            *[f"ring {x} KiB (us)" for x in xs],
            *[f"in-net {x} KiB (us)" for x in xs],
            *[f"speed-up {x} KiB" for x in xs],
        ],
        b_rows,
    )

    # (c) decode TPOT of llama-3.1-70b on gpu-hbm vs the fabric's latency: the calibrated NCCL launch of
    # an 8-rank all-reduce and the per-transfer inject/eject latency, scaled together
    system = load_system(DECODE_SYSTEM)
    inject, eject = system.network.inject_latency, system.network.eject_latency
    launch_ps = system.collective_launch.get(TP, 0)
    batches = (1, 16)
    scales = (1.0, 0.5, 0.25, 0.1, 0.01, 0.0) if not fast else (1.0, 0.3, 0.1, 0.01, 0.0)
    steps = 2 if fast else 8
    decode: dict[int, list[dict[str, Any]]] = {}
    for batch in batches:
        rows = []
        for sc in scales:
            inj, ej = (max(1, round(c * sc)) for c in (inject, eject))
            launch = round(launch_ps * sc)
            s = simulate(
                {
                    "system": DECODE_SYSTEM,
                    "model": DECODE_MODEL,
                    "batch": batch,
                    "context": 1024,
                    "steps": steps,
                    "seed": 0,
                    "set": {
                        "fabric.inject_latency": inj,
                        "fabric.eject_latency": ej,
                        f"fabric.collective_launch.{TP}": f"{launch}ps",
                    },
                }
            )
            shares = s["stall_breakdown"]
            rows.append(
                {
                    "scale": sc,
                    "launch_us": launch / 1e6,
                    "alpha_ns": inj + pipeline + ej,
                    "tpot_ms": s["tpot_ms"]["mean"],
                    "coll": shares.get("collective (allreduce)", 0.0)
                    + shares.get("collective launch (allreduce)", 0.0),
                }
            )
        decode[batch] = rows
    c_png = plot(
        out / f"{NAME}_decode_tpot.png",
        f"{DECODE_MODEL} on {DECODE_SYSTEM} (tp {TP}): TPOT vs fabric latency",
        "fabric latency as a fraction of today's (launch and per-transfer)",
        "TPOT (ms)",
        {f"batch {b}": ([r["scale"] for r in v], [r["tpot_ms"] for r in v]) for b, v in decode.items()},
    )
    c_table = table(
        [
            "batch",
            "scale",
            "launch (us)",
            "latency per transfer (ns)",
            "TPOT (ms)",
            "collective share of step",
        ],
        [
            [b, r["scale"], r["launch_us"], r["alpha_ns"], r["tpot_ms"], f"{r['coll']:.1%}"]
            for b, v in decode.items()
            for r in v
        ],
    )

    # conclusions, from the numbers above
    lines = []
    small, large = sizes[0], sizes[-1]
    ring_s, inn_s = sweep[("ring", small)], sweep[("in-network", small)]
    lines.append(
        f"**(a) Hop latency.** On the 4x4 mesh a {small // KIB} KiB ring all-reduce takes "
        f"{ring_s[0]:.2f} us at {hops[0]} ns/hop and {ring_s[-1]:.2f} us at {hops[-1]} ns/hop; it grows by "
        f"{slopes[('ring', small)]:.1f} ns per ns of hop latency (that many hops in series), the 2-D "
        f"algorithm by {slopes[('2d', small)]:.1f} and the in-network reduction by "
        f"{slopes[('in-network', small)]:.1f} (up and down a tree of depth "
        f"{slopes[('in-network', small)] / 2:.0f}). The ring's {2 * (len(RANKS) - 1)} steps each wait "
        f"for the longest transfer of the step, {slopes[('ring', small)] / (2 * (len(RANKS) - 1)):.1f} hops "
        f"(the row-major ring's wrap-around). At {large // KIB} KiB the ring's slope is "
        f"{slopes[('ring', large)]:.1f}"
        + (
            ": the hop count, not the message size, sets the latency term. At "
            if abs(slopes[("ring", large)] / slopes[("ring", small)] - 1) < 0.05
            else ": the message size changes the critical path too. At "
        )
        + f"{hops[-1]} ns/hop in-network is {ring_s[-1] / inn_s[-1]:.1f}x faster than the ring at "
        f"{small // KIB} KiB."
    )
    i16 = table_sizes.index(16 * KIB)
    i_big = len(table_sizes) - 1
    best_ring = min(TOPOLOGIES, key=lambda n: topo[(n, "ring")][i16])
    worst_ring = max(TOPOLOGIES, key=lambda n: topo[(n, "ring")][i16])
    best_inn = min(TOPOLOGIES, key=lambda n: topo[(n, "in-network")][i16])
    speedups = [topo[(n, "ring")][i16] / topo[(n, "in-network")][i16] for n in TOPOLOGIES]
    speedups_big = [topo[(n, "ring")][i_big] / topo[(n, "in-network")][i_big] for n in TOPOLOGIES]
    lines.append(
        f"**(b) Topology.** At {pipeline + BASE_LINK} ns/hop and 16 KiB the ring all-reduce ranges from "
        f"{topo[(best_ring, 'ring')][i16]:.2f} us ({best_ring}) to {topo[(worst_ring, 'ring')][i16]:.2f} us "
        f"({worst_ring}), a {topo[(worst_ring, 'ring')][i16] / topo[(best_ring, 'ring')][i16]:.2f}x spread; "
        f"in-network reduction cuts it {min(speedups):.1f}-{max(speedups):.1f}x on every topology (best "
        f"{topo[(best_inn, 'in-network')][i16]:.2f} us on {best_inn})"
        + (
            ", so the algorithm matters more than the topology at decode sizes. "
            if min(speedups) > topo[(worst_ring, "ring")][i16] / topo[(best_ring, "ring")][i16]
            else ", comparable to the spread between topologies. "
        )
        + f"At {table_sizes[-1] // KIB} KiB the in-network speed-up is "
        f"{min(speedups_big):.1f}-{max(speedups_big):.1f}x (the ring's 2(p-1) = {2 * (len(RANKS) - 1)} "
        f"latency-bound steps against one pipelined tree pass)."
    )
    for batch, rows in decode.items():
        cal, low = rows[0], rows[-1]
        saved = 1 - low["tpot_ms"] / cal["tpot_ms"]
        lines.append(
            f"**(c) Decode, batch {batch}.** {DECODE_MODEL} on {DECODE_SYSTEM}: with the calibrated "
            f"{cal['launch_us']:.1f} us launch and {cal['alpha_ns']} ns per transfer TPOT is "
            f"{cal['tpot_ms']:.3f} ms and the all-reduces (launch and transfers) are {cal['coll']:.0%} of "
            f"the critical path; with no launch and {low['alpha_ns']} ns per transfer TPOT is "
            f"{low['tpot_ms']:.3f} ms ({saved:.0%} less, collective share {low['coll']:.1%}). About "
            f"{saved:.0%} of today's decode step is collective latency that a lower-latency, "
            f"hardware-initiated fabric would remove; the rest is memory, kernels and software."
        )
    conclusion = "\n\n".join(lines)

    setup = (
        f"(a), (b): `run_collective` at message fidelity, 16 ranks, all-reduce; fabric "
        f"{FABRIC['flit_bytes']} per cycle at {FABRIC['clock']} (100 GB/s links), inject/eject "
        f"{FABRIC['inject_latency']}/{FABRIC['eject_latency']} ns, router pipeline {pipeline} cycles "
        f"(per-hop latency = {pipeline} + link latency). Sizes are decode all-reduce payloads: 16 KiB "
        f"per sequence (8192 x bf16) times the batch. (b) uses link latency {BASE_LINK} ns. "
        f"(c): `memwall run {DECODE_SYSTEM} --model {DECODE_MODEL} --batch B --context 1024 --steps "
        f"{steps} --set fabric.inject_latency=I --set fabric.eject_latency=E --set "
        f"fabric.collective_launch.{TP}=L`, with I/E and L scaled from the calibrated {inject}/{eject} ns "
        f"and {launch_ps / 1e6:.2f} us (NCCL fit, `topologies/{DECODE_SYSTEM}.toml`) by {list(scales)} "
        f"(I/E at least 1 ns)."
    )
    sections = [
        ("(a) all-reduce vs per-hop latency, 4x4 mesh", a_table),
        ("(b) topology and in-network reduction", b_table),
        ("(c) decode TPOT vs fabric latency", c_table),
        (
            "(c) What the decode system had",
            capabilities(
                {
                    DECODE_SYSTEM: {
                        "system": DECODE_SYSTEM,
                        "model": DECODE_MODEL,
                        "batch": 1,
                        "context": 1024,
                        "steps": 1,
                    }
                }
            ),
        ),
    ]
    return write_markdown(out, NAME, TITLE, setup, sections, conclusion, [a_png, ring_png, inn_png, c_png])
