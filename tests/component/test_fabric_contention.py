"""Small contention cases with closed forms, traffic patterns and arbiters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.core.errors import ConfigError
from sim.core.registry import REGISTRY, lookup
from sim.core.simulation import Simulation
from sim.experiments.noc import NocRunParams, run_noc
from sim.fabric.arbiter import Arbiter, FixedPriorityArbiter, RoundRobinArbiter
from sim.fabric.message_network import MessageNetwork
from sim.fabric.network import FlitNetwork, NetworkParams
from sim.fabric.router import CreditVCRouter, RouterParams
from sim.fabric.traffic import BernoulliSource
from sim.topology import mesh

LEVELS = (FlitNetwork, MessageNetwork)


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("size_b", "size_a"), [(1, 1), (4, 4), (3, 5), (16, 2)])
def test_two_packets_meeting_at_one_channel_serialise(level, size_b, size_a):
    """B (terminal 1 -> 0, one hop, sent at cycle 0) and A (terminal 0 -> 0, sent at cycle 5) both
    bid for router 0's ejection port in cycle 8. The port moves one flit per cycle and never idles
    while either has a flit: the last tail reaches the NIC in 8 + t_sa + t_st + eject + sa + sb - 1,
    and neither packet beats its zero-load latency. (The message level used to book A on top of B.)"""
    sim = Simulation()
    net = level(sim, "net", mesh(2, 1), NetworkParams(), RouterParams())
    sim.start()
    pkts = {}

    def proc():
        pkts["b"] = net.new_packet(1, 0, size_b)
        net.submit(pkts["b"])
        yield sim.env.timeout(5 * net.cycle_ps)
        pkts["a"] = net.new_packet(0, 0, size_a)
        net.submit(pkts["a"])

    sim.env.process(proc())
    sim.run()
    a, b = pkts["a"], pkts["b"]
    assert max(a.eject_cycle, b.eject_cycle) == 8 + 2 + 1 + size_a + size_b - 1
    assert b.latency >= 2 + 4 * 2 + 1 + size_b - 1
    assert a.latency >= 2 + 4 + size_a - 1
    assert a.eject_cycle != b.eject_cycle  # one flit per cycle: never two tails at once


@pytest.mark.parametrize("level", LEVELS, ids=lambda c: c.__name__)
def test_a_stream_on_one_link_is_paced_at_one_flit_per_cycle(level):
    """Back-to-back packets from one source: the n-th tail arrives n * size after the first
    (deep buffers, 4 VCs: the channel is never idle)."""
    sim = Simulation()
    net = level(sim, "net", mesh(4), NetworkParams(), RouterParams())
    sim.start()
    pkts = [net.new_packet(0, 15, 4) for _ in range(10)]
    for p in pkts:
        net.submit(p)
    sim.run()
    first = 2 + 4 * 7 + 6 + 3
    assert [p.eject_cycle for p in pkts] == [first + 4 * i for i in range(10)]


# -- traffic ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["transpose", "bitcomp", "bitrev", "neighbor"])
def test_permutation_patterns_are_permutations(name):
    pattern = lookup("traffic", name)
    rng = np.random.default_rng(0)
    for n in (4, 16, 64):
        dests = pattern(np.arange(n), n, rng)  # one call maps a whole block of sources
        assert sorted(dests.tolist()) == list(range(n))
        assert [int(pattern(s, n, rng)) for s in range(n)] == dests.tolist()  # and a lone source


def test_transpose_and_bit_patterns_closed_forms():
    rng = np.random.default_rng(0)
    assert lookup("traffic", "transpose")(1 + 4 * 2, 16, rng) == 2 + 4 * 1
    assert lookup("traffic", "bitcomp")(0b0110, 16, rng) == 0b1001
    assert lookup("traffic", "bitrev")(0b0001, 16, rng) == 0b1000
    assert lookup("traffic", "neighbor")(15, 16, rng) == 0


def test_hotspot_sends_half_plus_a_share_to_terminal_zero():
    rng = np.random.default_rng(1)
    n, draws = 16, 40_000
    hits = int(np.count_nonzero(lookup("traffic", "hotspot")(np.full(draws, 3), n, rng) == 0))
    p = 0.5 + 0.5 / n
    assert abs(hits / draws - p) < 4 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.parametrize(("rate", "flits"), [(0.1, 1), (0.3, 4), (0.9, 2), (1.0, 1)])
def test_bernoulli_source_offers_its_rate(rate, flits):
    created = []

    def new_packet(src, dst, size, cycle):
        created.append((src, cycle))
        return (src, dst, size, cycle)

    n, cycles = 8, 4000
    src = BernoulliSource(
        new_packet, n, rate, flits, lookup("traffic", "uniform"), np.random.default_rng(3), 0, cycles
    )
    c = src.next_cycle()
    while c is not None:
        list(src.due(c))
        c = src.next_cycle()
    p = rate / flits  # packets per node per cycle
    mean = n * cycles * p
    assert abs(len(created) - mean) <= 4 * math.sqrt(mean * (1 - p)) + 1
    assert all(0 <= cyc < cycles for _, cyc in created)
    per_node_cycle = {(s, cyc) for s, cyc in created}
    assert len(per_node_cycle) == len(created)  # at most one packet per node per cycle


# -- arbiters --------------------------------------------------------------------------------------
def test_round_robin_serves_every_requester_once_per_round():
    arb = RoundRobinArbiter(5)
    reqs = [0, 2, 3]
    wins = [arb.pick(reqs) for _ in range(9)]
    assert wins == [0, 2, 3] * 3
    assert arb.pick([1, 4]) == 4 and arb.pick([1, 4]) == 1


def test_fixed_priority_always_picks_the_lowest():
    arb = FixedPriorityArbiter(4)
    assert {arb.pick([1, 2, 3]) for _ in range(5)} == {1}


@pytest.mark.parametrize("cls", [RoundRobinArbiter, FixedPriorityArbiter])
@given(st.lists(st.sets(st.integers(0, 11), min_size=1), min_size=1, max_size=40))
def test_mask_requests_pick_the_same_winners_as_index_lists(cls, rounds):
    """The router's bit-mask form and the list form of a request agree, state included."""
    by_list, by_mask = cls(12), cls(12)
    for reqs in rounds:
        assert by_mask.pick_mask(sum(1 << r for r in reqs)) == by_list.pick(sorted(reqs))


def test_an_arbiter_that_only_knows_lists_still_takes_masks():
    class Last(Arbiter):
        def pick(self, requests):
            return requests[-1]

    assert Last(8).pick_mask(0b1010_0110) == 7


@pytest.mark.parametrize("arbiter", ["round_robin", "fixed_priority"])
def test_both_arbiters_deliver_everything(arbiter):
    sim = Simulation(seed=1)
    net = FlitNetwork(sim, "net", mesh(3), NetworkParams(), RouterParams(arbiter=arbiter, vcs=2))
    created, delivered = [], []
    net.on_deliver = delivered.append
    net.add_source(
        BernoulliSource(
            net.new_packet, 9, 0.4, 2, lookup("traffic", "uniform"), np.random.default_rng(1),
            stop=800, on_create=created.append,
        )
    )  # fmt: skip
    sim.run()
    assert len(delivered) == len(created) > 100


# -- routers are a registry entry -------------------------------------------------------------------
def _with_router(monkeypatch, name, cls):
    lookup("router", "credit_vc")  # load the built-ins before extending the table for this test
    monkeypatch.setitem(REGISTRY.entries, "router", {**REGISTRY.entries["router"], name: cls})


def test_the_network_builds_the_registered_router_it_is_given(monkeypatch):
    contested: list[int] = []

    class Watching(CreditVCRouter):
        def _pick_outputs(self, bids, clash):
            contested.append(len(bids))
            return super()._pick_outputs(bids, clash)

    _with_router(monkeypatch, "watching", Watching)
    run = NocRunParams(rate=0.35, warmup=100, measure=300, drain=2000)
    plain = run_noc(mesh(4), run, seed=4)
    watched = run_noc(mesh(4), run, NetworkParams(router="watching"), seed=4)
    assert contested  # the subclass's allocator ran...
    drop = {"wall_s", "flit_hops_per_s", "router_traversals_per_s", "events_per_s", "sim_s_per_wall_s"}
    assert {k: v for k, v in watched.items() if k not in drop} == {  # ...and changed nothing
        k: v for k, v in plain.items() if k not in drop
    }


def test_a_router_that_is_not_a_credit_vc_router_is_refused(monkeypatch):
    _with_router(monkeypatch, "foreign", object)
    with pytest.raises(ConfigError, match=r"network.router.*'foreign' must be a CreditVCRouter subclass"):
        FlitNetwork(Simulation(), "net", mesh(2), NetworkParams(router="foreign"))


# -- the switch allocator ----------------------------------------------------------------------------
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1), st.integers(0, 4)), max_size=12))
def test_switch_allocation_grants_one_flit_per_input_and_per_output(bids):
    """Any ready set (input port, VC, output port): the winners come from it and use each input and
    output port at most once; uncontested requests all win, without touching the arbiters."""
    router = FlitNetwork(Simulation(), "net", mesh(3), NetworkParams(), RouterParams(vcs=2)).routers[4]
    ready = []
    for port, vc, out in dict.fromkeys(bids):  # (a VC bids once)
        ivc = router.inputs[port][vc]
        ivc.ovc = router.outputs[out].vcs[0]
        if ivc not in ready:
            ready.append(ivc)
    before = [arb.last for arb in router.in_arb + router.out_arb]
    winners = router._allocate_switch(list(ready))
    assert len({w.in_port for w in winners}) == len(winners)
    assert len({w.out_port for w in winners}) == len(winners)
    assert all(w in ready for w in winners)
    assert bool(winners) == bool(ready)  # the first requester of some output always wins
    assert router.n_sa_conflicts >= 0
    inputs = [r.in_port for r in ready]
    outputs = [r.out_port for r in ready]
    if len(set(inputs)) == len(inputs) and len(set(outputs)) == len(outputs):
        assert winners == ready
        assert [arb.last for arb in router.in_arb + router.out_arb] == before
