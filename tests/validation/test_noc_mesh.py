"""k x k mesh, XY routing, synthetic traffic: the textbook closed forms (Dally & Towles ch. 3, 23).

* uniform traffic (source included): average hops 2 (k^2 - 1) / (3k);
* ideal throughput: the bisection carries half of all uniform traffic, so accepted load never
  exceeds 4/k flits/node/cycle; a 4-VC wormhole router saturates at 70-90% of it;
* transpose concentrates XY traffic on a few channels and saturates well below uniform;
* one VC (head-of-line blocking, a VC held across every packet) saturates below four.

The saturation point is bracketed from both sides: a load the network sustains (not saturated,
accepted = offered) and a load beyond it (saturated), whose accepted throughput is the saturation
throughput. Runs are short (200 warm-up + 500 measured cycles): 8x8 flit-level cycles are slow
(~3 ms each near saturation), so four runs serve every test.
"""

from __future__ import annotations

import functools

import pytest

from sim.experiments.noc import NocRunParams, run_noc
from sim.fabric.network import NetworkParams
from sim.fabric.router import RouterParams
from sim.topology import mesh

K = 8
IDEAL = 4 / K
pytestmark = pytest.mark.slow


@functools.cache
def run(traffic: str, rate: float, vcs: int = 4, seed: int = 1) -> dict:
    params = NocRunParams(traffic=traffic, rate=rate, packet_flits=1, warmup=200, measure=500, drain=300)
    return run_noc(mesh(K), params, NetworkParams(), RouterParams(vcs=vcs), seed=seed)


def test_uniform_hops_match_the_closed_form_and_70_percent_load_is_sustained():
    res = run("uniform", 0.70 * IDEAL)
    assert not res["saturated"]
    assert res["accepted_flits_per_node_cycle"] == pytest.approx(0.70 * IDEAL, rel=0.05)
    # per-packet hops have standard deviation ~2.7 on an 8x8 mesh; ~11k packets: 4 sigma ~ 0.1
    n = res["measured_packets"]
    assert n > 8_000
    assert res["avg_hops"] == pytest.approx(2 * (K * K - 1) / (3 * K), abs=4 * 2.7 / n**0.5)


def test_accepted_throughput_never_exceeds_4_over_k():
    runs = [
        run("uniform", 0.70 * IDEAL),
        run("uniform", 1.0 * IDEAL),
        run("transpose", 0.40 * IDEAL),
        run("uniform", 0.50 * IDEAL, vcs=1),
    ]
    for res in runs:
        assert res["accepted_flits_per_node_cycle"] <= IDEAL


def test_four_vcs_saturate_between_70_and_90_percent_of_ideal():
    below, beyond = run("uniform", 0.70 * IDEAL), run("uniform", 1.0 * IDEAL)
    assert not below["saturated"] and beyond["saturated"]
    throughput = beyond["accepted_flits_per_node_cycle"]
    assert 0.70 * IDEAL <= throughput <= 0.90 * IDEAL


def test_transpose_saturates_well_below_uniform():
    uniform_sat = run("uniform", 1.0 * IDEAL)["accepted_flits_per_node_cycle"]
    transpose = run("transpose", 0.40 * IDEAL)  # below the load uniform traffic sustains
    assert transpose["saturated"] and not run("uniform", 0.70 * IDEAL)["saturated"]
    assert transpose["accepted_flits_per_node_cycle"] < 0.6 * uniform_sat


def test_one_vc_saturates_below_four_vcs():
    four = run("uniform", 1.0 * IDEAL)["accepted_flits_per_node_cycle"]
    one = run("uniform", 0.50 * IDEAL, vcs=1)
    assert one["saturated"] and not run("uniform", 0.70 * IDEAL)["saturated"]
    assert one["accepted_flits_per_node_cycle"] < 0.6 * four
