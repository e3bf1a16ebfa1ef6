"""Run one collective on a topology and compare it with its alpha-beta twin."""

from __future__ import annotations

import time
from typing import Any

import networkx as nx

from sim.core.errors import SimulationError
from sim.core.simulation import Simulation
from sim.core.units import PS_PER_S
from sim.fabric.collectives import CollectiveCase, alpha_beta_cycles, run_algorithm
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.router import RouterParams

NETWORKS = {"flit": FlitNetwork, "message": MessageNetwork}


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
    n_terminals = len(graph.graph["terminals"])
    bad = [r for r in case.ranks if not 0 <= r < n_terminals]
    if bad:
        from sim.core.errors import ConfigError

        raise ConfigError(
            f"ranks {bad} outside the topology's terminals 0..{n_terminals - 1}", where="--group"
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
    sim.start()
    proc = run_algorithm(network, case)
    t0 = time.perf_counter()
    sim.run(until=proc)
    wall = time.perf_counter() - t0
    if not proc.triggered:
        raise SimulationError(f"collective {case.op}/{case.algorithm} did not finish")
    sim.finalize()
    cycles = sim.now / network.cycle_ps
    twin = alpha_beta_cycles(network, case)
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
