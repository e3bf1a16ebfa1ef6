"""Collectives against their alpha-beta twin, data-volume bounds and link-byte closed forms.

* Zero contention (every transfer of a step on its own links): the message level equals the twin
  exactly; the flit level is the twin plus at most one cycle per dependent step (a delivery seen in
  cycle c is acted on after that cycle's NIC stage, so the next transfer injects in c + 1).
* Link bytes: ring all-reduce moves 2(p-1) chunks of n/p bytes per rank over its hop count; the
  in-network reduction moves n bytes up and n bytes down each reduction-tree link.
* All-reduce without in-network help must deliver 2(p-1)/p * n bytes into every rank
  (Patarasuk & Yuan 2009), one flit per cycle per ejection channel: a lower bound on time.
* Alpha-beta shape: time ~ flat while steps are latency-bound, then linear in bytes.
"""

from __future__ import annotations

import math

import networkx as nx
import pytest

from sim.core.simulation import Simulation
from sim.experiments.collective import run_collective
from sim.fabric.collectives import CollectiveCase, reduction_tree
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import NetworkParams
from sim.topology import fat_tree, mesh, ring, torus

FB = NetworkParams().flit_bytes


def dependent_steps(case: CollectiveCase) -> int:
    p = len(case.ranks)
    if case.algorithm == "ring":
        return {"allreduce": 2 * (p - 1), "reduce_scatter": p - 1, "allgather": p - 1}[case.op]
    if case.algorithm == "tree":
        return (2 if case.op == "allreduce" else 1) * math.ceil(math.log2(p))
    if case.algorithm == "2d":
        a = math.isqrt(p)
        while p % a:
            a -= 1
        b = p // a
        return 2 * (b - 1) + 2 * (a - 1)
    raise AssertionError(case.algorithm)


ZERO_CONTENTION = [
    (ring(8), CollectiveCase("allreduce", "ring", 8 * 1024, tuple(range(8)))),
    (ring(8), CollectiveCase("reduce_scatter", "ring", 8 * 1000, tuple(range(8)))),
    (ring(8), CollectiveCase("allgather", "ring", 8 * 16, tuple(range(8)))),
    (ring(5), CollectiveCase("allreduce", "ring", 5 * 4096, tuple(range(5)))),
    (ring(8), CollectiveCase("allreduce", "tree", 4096, tuple(range(8)))),
    (ring(6), CollectiveCase("allreduce", "tree", 4096, tuple(range(6)))),
    (ring(8), CollectiveCase("broadcast", "tree", 8192, tuple(range(8)))),
    (torus(4), CollectiveCase("allreduce", "2d", 16 * 1024, tuple(range(16)))),
    (torus([4, 2]), CollectiveCase("allreduce", "2d", 8 * 1024, tuple(range(8)))),
]
IDS = [f"{c.op}-{c.algorithm}-{g.graph['kind']}{len(g)}" for g, c in ZERO_CONTENTION]


@pytest.mark.parametrize(("graph", "case"), ZERO_CONTENTION, ids=IDS)
def test_message_level_equals_the_twin_without_contention(graph, case):
    res = run_collective(graph, case, fidelity="message")
    assert res["time_cycles"] == pytest.approx(res["twin_time_us"] * 1e3, abs=1e-6)


@pytest.mark.parametrize(("graph", "case"), ZERO_CONTENTION, ids=IDS)
def test_flit_level_is_the_twin_plus_one_cycle_per_dependent_step(graph, case):
    res = run_collective(graph, case, fidelity="flit")
    twin = res["twin_time_us"] * 1e3
    assert twin <= res["time_cycles"] <= twin + dependent_steps(case) - 1


def test_in_network_equals_its_twin_and_beats_ring_on_link_bytes():
    for graph, ranks in [(mesh(4), range(16)), (fat_tree(4, 2), range(8)), (mesh(4), (0, 3, 5, 10, 12, 15))]:
        ranks = tuple(ranks)
        p, n = len(ranks), 64 * 1024 * len(ranks)
        inn = run_collective(graph, CollectiveCase("allreduce", "in-network", n, ranks))
        rng = run_collective(graph, CollectiveCase("allreduce", "ring", n, ranks))
        assert inn["time_cycles"] == pytest.approx(inn["twin_time_us"] * 1e3)
        routers = [graph.graph["terminals"][t] for t in ranks]
        tree, _, _ = reduction_tree(graph, routers)
        assert inn["link_bytes"] == 2 * tree.number_of_edges() * n
        ring_hops = sum(nx.shortest_path_length(graph, routers[i], routers[(i + 1) % p]) for i in range(p))
        assert rng["link_bytes"] == 2 * (p - 1) * (n // p) * ring_hops
        assert inn["link_bytes"] < rng["link_bytes"]


@pytest.mark.parametrize("fidelity", ["message", "flit"])
@pytest.mark.parametrize("algorithm", ["ring", "tree", "2d"])
def test_allreduce_never_beats_the_data_volume_bound(algorithm, fidelity):
    ranks, n = tuple(range(16)), 16 * 2048
    res = run_collective(mesh(4), CollectiveCase("allreduce", algorithm, n, ranks), fidelity=fidelity)
    p = len(ranks)
    assert res["time_cycles"] >= 2 * (p - 1) / p * n / FB


def test_alpha_beta_shape_latency_bound_then_bandwidth_bound():
    """A scale-up fabric (1 us links, 64 B/cycle at 1 GHz): ring all-reduce over 8 chips. Per step
    the twin is alpha + chunk / 64 B, alpha ~ 1 us, so the crossover is n* = alpha * 64 B * p ~ 0.5 MB:
    below n*/8 time stays within ~12% of its floor, above 8 n* doubling bytes doubles time."""
    net = NetworkParams(flit_bytes=64, link_latency=1000)
    p = 8
    probe = MessageNetwork(Simulation(), "probe", ring(p), net)
    alpha = probe.params.inject_latency + 2 * probe.router_params.pipeline + 1000 + 1  # one hop, 1 flit
    n_star = alpha * 64 * p
    assert 256 * 1024 < n_star < 1024 * 1024

    def t(n: int) -> float:
        return run_collective(ring(p), CollectiveCase("allreduce", "ring", n, tuple(range(p))), net)[
            "time_us"
        ]

    floor = t(64)
    for n in (1024, 16 * 1024, n_star // 8):
        assert floor <= t(n) <= 1.13 * floor
    for n in (8 * n_star, 32 * n_star):
        assert 1.88 <= t(2 * n) / t(n) <= 2.0
    assert t(1 << 30) == pytest.approx(2 * (p - 1) * ((1 << 30) / p / 64 + alpha - 1) / 1e3)
