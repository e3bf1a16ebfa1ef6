"""Batching policies, scenario by scenario: the exact batches follow from the rules in the docstrings."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.core.errors import CapacityError, ConfigError, RegistryError, SimulationError
from sim.core.registry import names
from sim.requests.readers import read_trace
from sim.requests.record import Request
from sim.serving.batching import (
    Batch,
    ContinuousBatching,
    StaticBatching,
    make_policy,
    replay,
)

TRACES = Path(__file__).resolve().parents[2] / "traces"


def R(rid: int, prompt: int, output: int, arrival: int = 0) -> Request:
    return Request(rid, arrival, prompt, output)


def run(policy, reqs, dt=10):
    batches: list[Batch] = []
    result = replay(policy, reqs, dt, observe=lambda b, _p: batches.append(b))
    return batches, result


def shape(batch: Batch) -> list[tuple]:
    """(id, phase, tokens, context, emits) per entry."""
    return [(e.request.id, e.phase[0], e.tokens, e.context_tokens, e.emits_token) for e in batch.entries]


def continuous(kv=None, **params) -> ContinuousBatching:
    return ContinuousBatching({"kv_block_tokens": 1, **params}, kv_capacity_tokens=kv)


# -- continuous ------------------------------------------------------------------------------------


def test_registered_names():
    assert {"continuous", "static"} <= set(names("batching"))
    assert isinstance(make_policy("continuous"), ContinuousBatching)
    assert isinstance(make_policy("static"), StaticBatching)


def test_chunked_prefill_fills_the_budget_and_emits_on_the_last_chunk():
    batches, res = run(continuous(max_tokens=32), [R(0, 100, 3)])
    assert [shape(b) for b in batches] == [
        [(0, "p", 32, 32, False)],
        [(0, "p", 32, 64, False)],
        [(0, "p", 32, 96, False)],
        [(0, "p", 4, 100, True)],
        [(0, "d", 1, 101, True)],  # decode context = prompt + generated so far
        [(0, "d", 1, 102, True)],
    ]
    (s,) = res.states
    assert s.first_token_ps == 40 and s.last_token_ps == s.finished_ps == 60
    assert s.ttft_ps == 40 and s.tpot_ps == 10


def test_decodes_first_then_ongoing_prefills_then_admissions():
    batches, _ = run(continuous(max_tokens=10), [R(0, 4, 5), R(1, 20, 2)])
    assert [shape(b) for b in batches[:4]] == [
        [(0, "p", 4, 4, True), (1, "p", 6, 6, False)],
        [(0, "d", 1, 5, True), (1, "p", 9, 15, False)],
        [(0, "d", 1, 6, True), (1, "p", 5, 20, True)],
        [(0, "d", 1, 7, True), (1, "d", 1, 21, True)],
    ]


def test_without_chunked_prefill_prompts_run_whole_and_the_head_blocks_the_queue():
    reqs = [R(0, 4, 3), R(1, 8, 1), R(2, 2, 1)]
    batches, res = run(continuous(max_tokens=10, chunked_prefill=False), reqs)
    assert [shape(b) for b in batches] == [
        [(0, "p", 4, 4, True)],  # request 1 (8) does not fit in 6; request 2 may not overtake it
        [(0, "d", 1, 5, True), (1, "p", 8, 8, True)],  # 2 tokens needed, 1 left
        [(0, "d", 1, 6, True), (2, "p", 2, 2, True)],
    ]
    assert [s.admitted_ps for s in res.states] == [0, 10, 20]


def test_max_batch_bounds_admitted_requests_and_finished_ones_leave_at_once():
    reqs = [R(0, 2, 1), R(1, 2, 4), R(2, 2, 1)]
    batches, res = run(continuous(max_batch=2), reqs)
    assert [shape(b) for b in batches] == [
        [(0, "p", 2, 2, True), (1, "p", 2, 2, True)],
        [(1, "d", 1, 3, True), (2, "p", 2, 2, True)],  # 0 left after its only token
        [(1, "d", 1, 4, True)],
        [(1, "d", 1, 5, True)],
    ]
    assert [s.finished_ps for s in res.states] == [10, 40, 20]
    assert all(s.finished_ps == s.last_token_ps for s in res.states)


def test_full_reservation_admits_only_when_prompt_plus_output_fits():
    # peaks: 10+6-1 = 15 and 4+2-1 = 5 fill 20 tokens; request 2 waits for request 1 to leave
    reqs = [R(0, 10, 6), R(1, 4, 2), R(2, 1, 1)]
    batches, res = run(continuous(kv=20), reqs)
    assert [b.kv_allocated_tokens for b in batches[:3]] == [20, 20, 16]
    assert [s.admitted_ps for s in res.states] == [0, 0, 20]
    assert all(b.kv_used_tokens <= b.kv_allocated_tokens <= 20 for b in batches)
    assert not any(b.preempted for b in batches)


def test_block_rounding_of_reservations():
    policy = ContinuousBatching({"kv_block_tokens": 16}, kv_capacity_tokens=40)  # 2 whole blocks
    batches, _ = run(policy, [R(0, 10, 7), R(1, 1, 1)])  # 16 tokens -> 1 block each
    assert batches[0].kv_allocated_tokens == 32
    with pytest.raises(CapacityError, match="request 9"):
        policy.add(R(9, 30, 4), 0)  # 33 tokens -> 3 blocks > 2


def test_prompt_reservation_preempts_the_youngest_and_recomputes_it():
    reqs = [R(0, 5, 5), R(1, 5, 5)]
    batches, res = run(continuous(kv=12, kv_reserve="prompt"), reqs)
    assert [shape(b) for b in batches] == [
        [(0, "p", 5, 5, True), (1, "p", 5, 5, True)],
        [(0, "d", 1, 6, True), (1, "d", 1, 6, True)],  # 12 of 12 tokens now
        [(0, "d", 1, 7, True)],  # 0 needs a 13th: 1 is evicted, having emitted 2 tokens
        [(0, "d", 1, 8, True)],  # 1 would need 7 tokens of KV, only 4 free
        [(0, "d", 1, 9, True)],  # 0 emits its 5th and last token
        [(1, "p", 7, 7, True)],  # recompute prompt + 2 generated; emits token 3
        [(1, "d", 1, 8, True)],
        [(1, "d", 1, 9, True)],
    ]
    assert [r.id for r in batches[2].preempted] == [1]
    s0, s1 = res.states
    assert (s0.preemptions, s1.preemptions, s1.recomputed_tokens) == (0, 1, 7)
    emitted = {0: 0, 1: 0}
    for b in batches:
        for e in b.entries:
            emitted[e.request.id] += e.emits_token
    assert emitted == {0: 5, 1: 5}


def test_headroom_keeps_kv_free_at_admission():
    batches, _ = run(continuous(kv=12, kv_reserve="prompt", kv_headroom=3), [R(0, 5, 4), R(1, 5, 4)])
    assert shape(batches[0]) == [(0, "p", 5, 5, True)]  # 5 + 5 + 3 > 12


def test_oversize_requests_raise_or_are_rejected():
    with pytest.raises(CapacityError, match=r"request 4: .*prompt 90 \+ output 20 - 1.*capacity of 100"):
        continuous(kv=100).add(R(4, 90, 20), 0)
    with pytest.raises(CapacityError, match=r"without chunked prefill.*max_tokens = 64"):
        continuous(max_tokens=64, chunked_prefill=False).add(R(5, 65, 1), 0)
    policy = continuous(kv=100, on_oversize="reject")
    _, res = run(policy, [R(0, 10, 5), R(1, 200, 5), R(2, 10, 5)])
    assert [r.id for r in res.rejected] == [1]
    assert [s.request.id for s in res.states] == [0, 2]


def test_protocol_misuse_is_an_error():
    policy = continuous()
    policy.add(R(0, 4, 2), 0)
    batch = policy.next_batch(0)
    with pytest.raises(SimulationError, match="outstanding"):
        policy.next_batch(0)
    with pytest.raises(SimulationError, match="before it started"):
        policy.complete(batch, -1)
    policy.complete(batch, 5)
    with pytest.raises(SimulationError, match="not the outstanding"):
        policy.complete(batch, 10)
    with pytest.raises(ConfigError, match="added twice"):
        policy.add(R(0, 4, 2), 10)
    assert policy.next_batch(10) is not None


def test_params_and_capacity_are_checked():
    with pytest.raises(ConfigError, match=r"sys\.toml: batching\.max_batch: expected a value > 0"):
        make_policy("continuous", {"max_batch": 0}, where="sys.toml: batching")
    with pytest.raises(ConfigError, match=r"batching\.max_seqs: unknown parameter"):
        make_policy("continuous", {"max_seqs": 8}, where="batching")
    with pytest.raises(ConfigError, match="kv_capacity_tokens"):
        make_policy("continuous", kv_capacity_tokens=0)
    with pytest.raises(RegistryError, match="continuous"):
        make_policy("orca")
    assert make_policy("continuous", {"max_tokens": "2048"}).params.max_tokens == 2048


# -- static ----------------------------------------------------------------------------------------


def test_static_batch_runs_until_its_longest_request_ends():
    reqs = [R(0, 4, 5), R(1, 2, 1), R(2, 3, 3), R(3, 1, 2)]
    batches, res = run(StaticBatching({"max_batch": 3}), reqs)
    assert [shape(b) for b in batches[:2]] == [
        [(0, "p", 4, 4, True), (1, "p", 2, 2, True), (2, "p", 3, 3, True)],
        [(0, "d", 1, 5, True), (1, "d", 1, 2, False), (2, "d", 1, 4, True)],  # 1 is padding
    ]
    assert [e.padding for e in batches[3].entries] == [False, True, True]
    assert len(batches) == 5 + 2  # first batch: 1 prefill + 4 decodes; then request 3
    by_id = {s.request.id: s for s in res.states}
    assert {by_id[i].finished_ps for i in (0, 1, 2)} == {50}  # all return with the longest
    assert (by_id[1].last_token_ps, by_id[2].last_token_ps) == (10, 30)
    assert by_id[3].admitted_ps == 50 and by_id[3].finished_ps == 70


def test_static_without_padding_drops_finished_requests_from_the_work():
    batches, res = run(StaticBatching({"max_batch": 3, "pad": False}), [R(0, 4, 3), R(1, 2, 1)])
    assert [shape(b) for b in batches] == [
        [(0, "p", 4, 4, True), (1, "p", 2, 2, True)],
        [(0, "d", 1, 5, True)],
        [(0, "d", 1, 6, True)],
    ]
    assert [s.finished_ps for s in res.states] == [30, 30]


def test_static_max_wait_and_kv_limit_batch_formation():
    policy = StaticBatching({"max_batch": 4, "max_wait": "1ns"}, kv_capacity_tokens=30)
    policy.add(R(0, 5, 5), 0)
    assert policy.next_batch(0) is None
    assert policy.wake_time(0) == 1000
    policy.add(R(1, 10, 11), 400)  # peak 20: with 9 for request 0 it would need 29 of 30
    policy.add(R(2, 1, 2), 500)  # peak 2 more: 31 > 30, waits for the next batch
    assert policy.next_batch(999) is None
    batch = policy.next_batch(1000)
    assert [e.request.id for e in batch.entries] == [0, 1]
    assert batch.kv_allocated_tokens == 29
    assert policy.num_waiting == 1 and policy.wake_time(1000) is None


def test_static_full_batch_starts_without_waiting():
    policy = StaticBatching({"max_batch": 2, "max_wait": "1s"})
    policy.add(R(0, 5, 5), 0)
    assert policy.next_batch(0) is None
    policy.add(R(1, 5, 5), 7)
    assert policy.next_batch(7).size == 2


# -- a real trace ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("continuous", {"max_batch": 16, "max_tokens": 512}),
        ("continuous", {"kv_reserve": "prompt", "max_tokens": 2048}),
        ("continuous", {"chunked_prefill": False, "kv_reserve": "prompt"}),
        ("static", {"max_batch": 8}),
    ],
)
def test_azure_sample_every_request_gets_exactly_its_tokens(name, params):
    reqs = read_trace(TRACES / "azure_conv_200.csv")
    emitted: dict[int, int] = {}
    cap = 16_000

    def observe(batch, policy):
        assert batch.kv_allocated_tokens <= cap
        for e in batch.entries:
            emitted[e.request.id] = emitted.get(e.request.id, 0) + e.emits_token

    res = replay(make_policy(name, params, kv_capacity_tokens=cap), reqs, 1_000_000_000, observe=observe)
    assert [s.request.id for s in res.states] == [r.id for r in reqs]
    assert emitted == {r.id: r.output_tokens for r in reqs}
    for s in res.states:
        assert s.request.arrival_ps <= s.queued_ps <= s.admitted_ps < s.first_token_ps <= s.last_token_ps
        assert s.last_token_ps <= s.finished_ps
        if name == "continuous":
            assert s.finished_ps == s.last_token_ps
