"""Invariants of the batching policies over random request streams and settings (hypothesis).

Continuous: no batch above max_batch requests or max_tokens tokens; KV allocation never above the
capacity and every request's KV within its allocation; first admissions in FCFS order; every
request finishes with exactly its output tokens emitted; no preemption under full reservation.
Static: batches never overlap, and all requests of a batch finish together, when the longest does.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.requests.record import Request
from sim.serving.batching import BatchingPolicy, ContinuousBatching, StaticBatching, replay
from sim.serving.scheduler import Batch

FAST = settings(max_examples=150, deadline=None)


@st.composite
def request_streams(draw: st.DrawFn) -> list[Request]:
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.integers(0, 60), min_size=n, max_size=n))
    reqs, t = [], 0
    for i, gap in enumerate(gaps):
        t += gap if i else 0
        prompt = draw(st.integers(1, 80))
        output = draw(st.integers(1, 20))
        reqs.append(Request(i, t, prompt, output))
    return reqs


@st.composite
def continuous_settings(draw: st.DrawFn) -> tuple[dict, int | None]:
    params = dict(
        max_batch=draw(st.integers(1, 8)),
        max_tokens=draw(st.integers(1, 128)),
        chunked_prefill=draw(st.booleans()),
        kv_reserve=draw(st.sampled_from(["full", "prompt"])),
        kv_headroom=draw(st.integers(0, 16)),
        kv_block_tokens=draw(st.sampled_from([1, 2, 4, 16])),
        on_oversize="reject",
    )
    capacity = draw(st.one_of(st.none(), st.integers(8, 400)))
    return params, capacity


iteration_costs = st.one_of(
    st.integers(1, 20),
    st.just(lambda b: 3 + b.num_tokens),  # longer iterations for more work: more requests queue up
)


class Checker:
    """Checks each batch against the policy's limits and state, and tallies the work done."""

    def __init__(self, policy: BatchingPolicy, capacity: int | None) -> None:
        self.policy = policy
        self.capacity = capacity
        self.emitted: dict[int, int] = defaultdict(int)
        self.prefilled: dict[int, int] = defaultdict(int)
        self.first_admissions: list[int] = []
        self.seen: set[int] = set()

    def __call__(self, batch: Batch, policy: BatchingPolicy) -> None:
        p = policy.params
        block = p.kv_block_tokens
        ids = [e.request.id for e in batch.entries]
        assert len(ids) == len(set(ids)), "a request twice in one batch"
        assert 1 <= batch.size <= p.max_batch
        assert policy.num_running <= p.max_batch
        assert batch.num_tokens <= p.max_tokens or isinstance(policy, StaticBatching)
        assert batch.prefill_tokens <= p.max_tokens
        assert batch.kv_used_tokens <= batch.kv_allocated_tokens == policy.kv_allocated_tokens
        if self.capacity is not None:
            assert policy.kv_allocated_tokens <= self.capacity
        for e in batch.entries:
            s = policy.state(e.request)
            r = e.request
            assert e.tokens >= 1
            assert e.context_tokens <= s.kv_blocks * block, "KV beyond the request's allocation"
            assert e.context_tokens <= r.prompt_tokens + r.output_tokens - 1
            if e.padding:
                assert s.done and not e.emits_token
                continue
            assert not s.done
            if e.phase == "decode":
                assert s.decoding and e.tokens == 1 and e.emits_token
                assert e.context_tokens == r.prompt_tokens + s.generated
            else:
                assert e.past_tokens == s.prefilled
                assert e.emits_token == (e.context_tokens == s.prefill_target)
                assert s.prefill_target == r.prompt_tokens + s.generated
                if r.id not in self.seen:
                    self.seen.add(r.id)
                    self.first_admissions.append(r.id)
                self.prefilled[r.id] += e.tokens
            self.emitted[r.id] += e.emits_token

    def check_end(self, reqs: list[Request], result) -> None:
        rejected = {r.id for r in result.rejected}
        served = [r for r in reqs if r.id not in rejected]
        assert [s.request.id for s in result.states] == [r.id for r in served], "a request never finished"
        assert self.policy.idle and self.policy.kv_allocated_tokens == 0
        assert self.first_admissions == [r.id for r in served], "first admissions not FCFS"
        for s in result.states:
            r = s.request
            assert self.emitted[r.id] == r.output_tokens, "output tokens not conserved"
            assert s.generated == r.output_tokens
            if s.preemptions == 0:
                assert self.prefilled[r.id] == r.prompt_tokens
            else:
                assert self.prefilled[r.id] >= s.recomputed_tokens >= r.prompt_tokens
            assert r.arrival_ps <= s.admitted_ps < s.first_token_ps <= s.last_token_ps <= s.finished_ps


@FAST
@given(request_streams(), continuous_settings(), iteration_costs)
def test_continuous_batching_invariants(reqs, setting, cost):
    params, capacity = setting
    policy = ContinuousBatching(params, kv_capacity_tokens=capacity)
    check = Checker(policy, capacity)
    result = replay(policy, reqs, cost, observe=check, max_iterations=20_000)
    check.check_end(reqs, result)
    if params["kv_reserve"] == "full":
        assert all(s.preemptions == 0 for s in result.states)
    for s in result.states:
        assert s.finished_ps == s.last_token_ps  # finished requests leave at once
    # A request is rejected exactly when it could never run alone.
    block = params["kv_block_tokens"]
    headroom = -(-params["kv_headroom"] // block) if params["kv_reserve"] == "prompt" else 0
    for r in result.rejected:
        too_long = not params["chunked_prefill"] and r.prompt_tokens > params["max_tokens"]
        too_big = capacity is not None and (
            -(-(r.prompt_tokens + r.output_tokens - 1) // block) + headroom > capacity // block
        )
        assert too_long or too_big


@FAST
@given(
    request_streams(),
    st.integers(1, 6),
    st.booleans(),
    st.one_of(st.none(), st.integers(20, 300)),
    st.integers(0, 50),
    iteration_costs,
)
def test_static_batching_invariants(reqs, max_batch, pad, capacity, max_wait, cost):
    params = dict(max_batch=max_batch, pad=pad, max_wait=max_wait, kv_block_tokens=1, on_oversize="reject")
    policy = StaticBatching(params, kv_capacity_tokens=capacity)
    check = Checker(policy, capacity)
    groups: list[list[int]] = []

    def observe(batch: Batch, pol: BatchingPolicy) -> None:
        check(batch, pol)
        if all(e.phase == "prefill" for e in batch.entries):
            groups.append([e.request.id for e in batch.entries])
        else:
            assert all(e.phase == "decode" for e in batch.entries)
            assert {e.request.id for e in batch.entries} <= set(groups[-1])
            if pad:
                assert [e.request.id for e in batch.entries] == groups[-1]

    result = replay(policy, reqs, cost, observe=observe, max_iterations=20_000)
    check.check_end(reqs, result)
    by_id = {s.request.id: s for s in result.states}
    previous_end = -1
    for group in groups:
        states = [by_id[i] for i in group]
        ends = {s.finished_ps for s in states}
        assert len(ends) == 1, "a static batch did not finish together"
        (end,) = ends
        assert end == max(s.last_token_ps for s in states)  # ... and finishes when the longest does
        start = min(s.admitted_ps for s in states)
        assert start >= previous_end, "static batches overlapped"
        assert all(s.admitted_ps == start for s in states)
        previous_end = end
    assert [i for g in groups for i in g] == sorted(by_id)  # batches are formed in arrival order


@FAST
@given(
    request_streams(),
    st.integers(2, 8),
    st.integers(4, 128),
    st.booleans(),
    st.sampled_from([1, 2, 4]),
    st.integers(0, 8),
    st.integers(0, 40),
    iteration_costs,
)
def test_continuous_preemption_under_kv_pressure(
    reqs, max_batch, max_tokens, chunked, block, headroom, slack, cost
):
    """Capacity just above the largest request: prompt-only reservation must evict and recompute."""
    peak = max(r.prompt_tokens + r.output_tokens - 1 for r in reqs)
    capacity = (-(-peak // block) + -(-headroom // block)) * block + slack
    params = dict(
        max_batch=max_batch,
        max_tokens=max_tokens,
        chunked_prefill=chunked,
        kv_reserve="prompt",
        kv_headroom=headroom,
        kv_block_tokens=block,
        on_oversize="reject",
    )
    policy = ContinuousBatching(params, kv_capacity_tokens=capacity)
    check = Checker(policy, capacity)
    result = replay(policy, reqs, cost, observe=check, max_iterations=50_000)
    check.check_end(reqs, result)
    if chunked:
        assert not result.rejected
