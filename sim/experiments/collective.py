"""Run one collective on a topology and compare it with its alpha-beta twin.

Sizes are checked before the run: the network (routers, terminals), the seed, the ranks (distinct
terminals), the number of point-to-point transfers the algorithm makes (:data:`MAX_TRANSFERS`),
and the twin's time, which must stay within the simulated-time limit and, at flit level (every
cycle simulated), within :data:`MAX_FLIT_CYCLES`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import networkx as nx

from sim.core.errors import ConfigError, SimulationError
from sim.core.limits import MAX_SIM_PS
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.experiments.noc import check_network, check_seed
from sim.fabric.collectives import CollectiveCase, alpha_beta_cycles, check_case, run_algorithm
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.router import RouterParams

NETWORKS = {"flit": FlitNetwork, "message": MessageNetwork}
MAX_TRANSFERS = 1_000_000
"""Point-to-point transfers of one collective (an all-to-all of p ranks makes p(p-1))."""
MAX_FLIT_CYCLES = 10_000_000
"""Cycles of a flit-level collective, as its alpha-beta twin estimates them (each is simulated)."""


def transfers(case: CollectiveCase) -> int:
    """About how many point-to-point transfers ``case`` makes (an upper estimate)."""
    p = len(case.ranks)
    if case.algorithm == "direct":
        return p * (p - 1)
    if case.algorithm == "ring":
        return 2 * p * p
    if case.algorithm == "2d":
        return 4 * p * (math.isqrt(p) + 1)
    return 4 * p  # tree, in-network


def run_collective(
    graph: nx.Graph,
    case: CollectiveCase,
    net: NetworkParams | None = None,
    router: RouterParams | None = None,
    fidelity: str = "message",
    seed: int = 0,
) -> dict[str, Any]:
    """Simulate ``case``; returns time, link bytes and the twin's time."""
    net = net or NetworkParams()
    router = router or RouterParams()
    if fidelity not in NETWORKS:
        raise ConfigError(f"expected one of {', '.join(NETWORKS)}, found {fidelity!r}", where="--fidelity")
    check_seed(seed)
    check_network(graph)
    check_case(case)
    n_terminals = len(graph.graph["terminals"])
    bad = [r for r in case.ranks if not 0 <= r < n_terminals]
    if bad:
        raise ConfigError(
            f"ranks {bad[:8]} outside the topology's terminals 0..{n_terminals - 1}", where="--group"
        )
    if len(set(case.ranks)) != len(case.ranks):
        raise ConfigError("expected distinct ranks, found a rank listed twice", where="--group")
    if transfers(case) > MAX_TRANSFERS:
        raise ConfigError(
            f"expected a collective of at most {MAX_TRANSFERS:,} transfers, found about "
            f"{transfers(case):,} ({case.op}/{case.algorithm} over {len(case.ranks):,} ranks)",
            where="--group",
        )
    sim = Simulation(
        seed=seed,
        config={
            "collective": case.__dict__,
            "network": net.as_dict(),
            "router": router.as_dict(),
            "fidelity": fidelity,
        },
    )
    network = NETWORKS[fidelity](sim, "net", graph, net, router)
    estimate = alpha_beta_cycles(network, case)  # checked before the run: it is close to it
    if estimate * network.cycle_ps > MAX_SIM_PS:
        raise ConfigError(
            f"expected a collective within the simulated-time limit of {MAX_SIM_PS / PS_PER_S:.3g} s "
            f"(MAX_SIM_PS), found about {estimate * network.cycle_ps / PS_PER_S:.3g} s for "
            f"{case.nbytes:,} bytes",
            where="--bytes",
        )
    if fidelity == "flit" and estimate > MAX_FLIT_CYCLES:
        raise ConfigError(
            f"expected a flit-level collective of at most {MAX_FLIT_CYCLES:,} cycles (each is simulated), "
            f"found about {estimate:,.0f} for {case.nbytes:,} bytes; the message-level model "
            "(--fidelity message) takes large collectives",
            where="--bytes",
        )
    sim.start()
    proc = run_algorithm(network, case)
    t0 = time.perf_counter()
    sim.run(until=proc)
    wall = time.perf_counter() - t0
    if not proc.triggered:
        raise SimulationError(f"collective {case.op}/{case.algorithm} did not finish")
    sim.finalize()
    cycles = sim.now / network.cycle_ps
    twin = estimate
    cycle_us = network.cycle_ps / PS_PER_S * 1e6
    link_bytes = int(network.stat.flit_hops.value * net.flit_bytes)
    return {
        "op": case.op,
        "algorithm": case.algorithm,
        "bytes": case.nbytes,
        "group": len(case.ranks),
        "topology": graph.graph.get("kind", "explicit"),
        "fidelity": fidelity,
        "time_us": cycles * cycle_us,
        "time_cycles": cycles,
        "twin_time_us": twin * cycle_us,
        "link_bytes": link_bytes,
        "events": sim.env.events_processed,
        "wall_s": wall,
    }
