"""Batching policies: pure schedulers that decide, iteration by iteration, which tokens run.

A policy knows nothing of time beyond the ``now`` (integer ps) it is handed, nothing of SimPy and
nothing of hardware: the token-generation driver owns the clock and the cost of an iteration. The
driver's loop is::

    policy = make_policy("continuous", {"max_batch": 64}, kv_capacity_tokens=kv_bytes // kv_bytes_per_token)
    ...
    policy.add(request, now)                 # at (or after) request.arrival_ps, in arrival order
    batch = policy.next_batch(now)           # None: nothing can run until the next add() / wake_time()
    ... simulate the iteration: for each entry, `tokens` new tokens attending to `context_tokens` ...
    finished = policy.complete(batch, now)   # at the iteration's end; RequestStates that are done

Exactly one batch is outstanding at a time: ``next_batch`` after ``next_batch`` without
``complete`` is an error. :func:`replay` is a tiny reference driver (fixed or callable iteration
time) that shows the protocol and is what the tests use.

Token accounting (the same for every policy):

* A request with prompt ``P`` and output ``O`` is *prefilled* over ``P`` tokens, possibly in several
  chunks; the iteration that finishes its prefill emits its first output token.
* Each later *decode* iteration feeds the newest output token back and emits one more, so a request
  takes ``O - 1`` decode iterations and its KV cache peaks at ``P + O - 1`` tokens (the last token is
  never fed back). A decode entry's ``context_tokens`` is ``P + generated``, i.e. the KV length after
  the iteration, which is what attention reads.
* A request preempted (``continuous`` with ``kv_reserve = "prompt"``) loses its KV and is later
  re-prefilled over ``P + generated`` tokens (recomputation, as vLLM does); that prefill emits the
  next token, so every request emits exactly ``O`` tokens in all.

KV capacity is in tokens (the driver converts from bytes with the model's KV bytes per token) and
is allocated in blocks of ``kv_block_tokens`` (16 in vLLM's paged attention; 1 for exact
accounting). A request that could never fit (its peak KV above the capacity, or, without chunked
prefill, a prompt above ``max_tokens``) raises :class:`CapacityError` from :meth:`add`, or is put in
``rejected`` when ``on_oversize = "reject"``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sim.core.errors import CapacityError, ConfigError, SimulationError
from sim.core.params import ParamSet, non_negative, one_of, param, positive
from sim.core.registry import lookup, register
from sim.core.units import COUNT, TIME, format_time
from sim.requests import timing
from sim.requests.record import Request
from sim.serving.scheduler import Batch, BatchEntry, Scheduler


@dataclass(slots=True, eq=False)
class RequestState:
    """A request's progress inside a policy (read it; do not change it).

    Times are ps: ``queued_ps`` when :meth:`BatchingPolicy.add` saw it, ``admitted_ps`` its first
    admission, ``first_token_ps`` / ``last_token_ps`` the ends of the iterations that emitted its
    first / last token, ``finished_ps`` when it left the policy (later than ``last_token_ps`` only
    for static batching, which returns a batch's results together).
    """

    request: Request
    seq: int
    queued_ps: int
    admitted_ps: int | None = None
    first_token_ps: int | None = None
    last_token_ps: int | None = None
    finished_ps: int | None = None
    generated: int = 0
    prefill_target: int = 0
    prefilled: int = 0
    kv_tokens: int = 0
    kv_blocks: int = 0
    preemptions: int = 0
    recomputed_tokens: int = 0

    @property
    def decoding(self) -> bool:
        return self.admitted_ps is not None and self.prefilled >= self.prefill_target

    @property
    def done(self) -> bool:
        return self.generated >= self.request.output_tokens

    @property
    def ttft_ps(self) -> int | None:
        """Time to first token, from the request's arrival (:mod:`sim.requests.timing`)."""
        return (
            None
            if self.first_token_ps is None
            else timing.ttft_ps(self.request.arrival_ps, self.first_token_ps)
        )

    @property
    def tpot_ps(self) -> float | None:
        """Mean time per output token after the first (None before two tokens)."""
        if self.last_token_ps is None or self.first_token_ps is None:
            return None
        return timing.tpot_ps(self.first_token_ps, self.last_token_ps, self.generated)

    @property
    def latency_ps(self) -> int | None:
        return None if self.finished_ps is None else self.finished_ps - self.request.arrival_ps


# -- the interface ---------------------------------------------------------------------------------


class BatchingPolicy(Scheduler):
    """Base of the registered batching policies; see the module docstring for the protocol."""

    Params: ClassVar[type[ParamSet]]
    registered_name: ClassVar[str]
    recovers_from_failures: ClassVar[bool] = False  # implements lose_kv, take_all, adopt
    prefix_caching: ClassVar[bool] = False
    """Whether the policy consults a prefix cache (``prefix_cache``) at admission."""

    def __init__(
        self,
        params: ParamSet | Mapping[str, Any] | None = None,
        *,
        kv_capacity_tokens: int | None = None,
        where: str | None = None,
    ) -> None:
        if params is None:
            params = self.Params()
        elif not isinstance(params, self.Params):
            params = self.Params.from_mapping(params, where=where)
        self.params = params
        if kv_capacity_tokens is not None and (
            isinstance(kv_capacity_tokens, bool)
            or not isinstance(kv_capacity_tokens, int)
            or kv_capacity_tokens < 1
        ):
            raise ConfigError(
                f"expected a whole number of tokens >= 1 (or None: unlimited), found {kv_capacity_tokens!r}",
                where=f"{where}.kv_capacity_tokens" if where else "kv_capacity_tokens",
            )
        self.block = params.kv_block_tokens  # type: ignore[attr-defined]
        self.kv_capacity_tokens = kv_capacity_tokens
        self.capacity_blocks = None if kv_capacity_tokens is None else kv_capacity_tokens // self.block
        self.used_blocks = 0
        self.rejected: list[Request] = []
        self.by_id: dict[int, RequestState] = {}  # queued or admitted requests, by id
        self._seq = 0
        self._iteration = 0
        self._outstanding: Batch | None = None
        self.prefix_cache: Any = None  # a sim.serving.prefix_cache.PrefixCache, set by the run

    # The protocol -------------------------------------------------------------------------------

    def add(self, request: Request, now: int) -> None:
        """Queue ``request`` (FCFS in the order of ``add`` calls)."""
        why = self._oversize(request)
        if why is not None:
            if self.params.on_oversize == "reject":  # type: ignore[attr-defined]
                self.rejected.append(request)
                return
            raise CapacityError(why, where=f"request {request.id}")
        state = RequestState(request, self._seq, now, prefill_target=request.prompt_tokens)
        self._seq += 1
        if request.id in self.by_id:
            raise ConfigError(f"request id {request.id} added twice", where=f"request {request.id}")
        self.by_id[request.id] = state
        self._enqueue(state)

    def next_batch(self, now: int) -> Batch | None:
        """The next iteration's work, or None when nothing can run until the next add or wake time."""
        if self._outstanding is not None:
            raise SimulationError(
                f"next_batch called while iteration {self._outstanding.index} is outstanding; "
                "call complete first"
            )
        entries, preempted = self._schedule(now)
        if not entries:
            if self.num_running:
                raise SimulationError(
                    f"{self.num_running} admitted requests but nothing scheduled (a policy bug)"
                )
            return None
        batch = Batch(
            self._iteration,
            now,
            tuple(entries),
            tuple(preempted),
            kv_used_tokens=self.kv_used_tokens + sum(e.tokens for e in entries if not e.padding),
            kv_allocated_tokens=self.used_blocks * self.block,
        )
        self._iteration += 1
        self._outstanding = batch
        return batch

    def complete(self, batch: Batch, now: int) -> list[RequestState]:
        """Finish ``batch`` at ``now``: advance every entry; return the requests that leave now."""
        if batch is not self._outstanding:
            raise SimulationError(
                f"complete called with iteration {batch.index}, which is not the outstanding one"
            )
        if now < batch.start_ps:
            raise SimulationError(
                f"iteration {batch.index} ends at {now} ps, before it started at {batch.start_ps}"
            )
        self._outstanding = None
        for e in batch.entries:
            if e.padding:
                continue
            s = self.state(e.request)
            if e.phase == "prefill":
                s.prefilled += e.tokens
                if e.emits_token and s.generated == 0 and self.prefix_cache is not None:
                    self.prefix_cache.insert(e.request, now)  # its blocks are reusable from now on
            s.kv_tokens = e.context_tokens
            if e.emits_token:
                s.generated += 1
                s.last_token_ps = now
                if s.first_token_ps is None:
                    s.first_token_ps = now
        return self._retire(now)

    # Introspection --------------------------------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        raise NotImplementedError

    @property
    def num_running(self) -> int:
        raise NotImplementedError

    def state(self, request: Request) -> RequestState:
        """The progress of a queued or admitted request (KeyError once it has left)."""
        return self.by_id[request.id]

    @property
    def idle(self) -> bool:
        """Nothing waiting, nothing admitted."""
        return self.num_waiting == 0 and self.num_running == 0

    @property
    def kv_used_tokens(self) -> int:
        """Tokens of KV currently held by admitted requests."""
        return sum(s.kv_tokens for s in self._admitted())

    @property
    def kv_allocated_tokens(self) -> int:
        """Tokens of KV reserved for admitted requests (whole blocks)."""
        return self.used_blocks * self.block

    # For subclasses -------------------------------------------------------------------------------

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.block)

    def _free_blocks(self) -> float:
        return float("inf") if self.capacity_blocks is None else self.capacity_blocks - self.used_blocks

    def _peak_kv(self, request: Request) -> int:
        return request.prompt_tokens + request.output_tokens - 1

    def _oversize_kv(self, request: Request, extra_blocks: int = 0) -> str | None:
        if self.capacity_blocks is None:
            return None
        need = self._blocks(self._peak_kv(request)) + extra_blocks
        if need > self.capacity_blocks:
            return (
                f"expected peak KV (prompt {request.prompt_tokens} + output {request.output_tokens} "
                f"- 1 tokens{f' + {extra_blocks} headroom blocks' if extra_blocks else ''}) to fit in the "
                f"KV capacity of {self.capacity_blocks * self.block} tokens, found {need * self.block} tokens"
            )
        return None

    def _oversize(self, request: Request) -> str | None:
        raise NotImplementedError

    def _enqueue(self, state: RequestState) -> None:
        """Queue a new request (already registered in ``by_id``)."""
        raise NotImplementedError

    def _schedule(self, now: int) -> tuple[list[BatchEntry], list[Request]]:
        raise NotImplementedError

    def _admitted(self) -> Iterable[RequestState]:
        raise NotImplementedError

    def _retire(self, now: int) -> list[RequestState]:
        raise NotImplementedError

    def _admit(self, s: RequestState, blocks: int, now: int) -> None:
        s.kv_blocks = blocks
        self.used_blocks += blocks
        if s.admitted_ps is None:
            s.admitted_ps = now

    def _free(self, s: RequestState) -> None:
        self.used_blocks -= s.kv_blocks
        s.kv_blocks = 0
        s.kv_tokens = 0

    def _leave(self, done: list[RequestState], now: int) -> list[RequestState]:
        """Finished requests leave at ``now``: their KV is freed and they are forgotten."""
        for s in done:
            self._free(s)
            s.finished_ps = now
            del self.by_id[s.request.id]
        return done


# -- continuous (iteration-level) batching ---------------------------------------------------------


@dataclass(frozen=True)
class ContinuousParams(ParamSet):
    """Iteration-level scheduling (Orca, OSDI'22; vLLM, SOSP'23; chunked prefill: Sarathi-Serve)."""

    max_batch: int = param(256, COUNT, "most requests admitted at once (vLLM max_num_seqs)", check=positive)
    max_tokens: int = param(
        8192, COUNT, "most tokens processed per iteration (vLLM max_num_batched_tokens)", check=positive
    )
    chunked_prefill: bool = param(True, bool, "split prefills to fill each iteration's token budget")
    kv_reserve: str = param(
        "full",
        str,
        "admission reserves KV for prompt+output ('full', never preempts) or the prompt only ('prompt')",
        check=one_of("full", "prompt"),
    )
    kv_headroom: int = param(
        0,
        COUNT,
        "with kv_reserve='prompt', KV tokens admission leaves free (vLLM watermark)",
        check=non_negative,
    )
    kv_block_tokens: int = param(16, COUNT, "tokens per KV block (paged allocation unit)", check=positive)
    on_oversize: str = param(
        "error",
        str,
        "a request that can never fit: raise, or drop into .rejected",
        check=one_of("error", "reject"),
    )


@register("batching", "continuous")
class ContinuousBatching(BatchingPolicy):
    """Iteration-level batching: requests join and leave every iteration, FCFS, within KV capacity.

    Each iteration: (1) every admitted request that is decoding gets one token, oldest first, while
    the token budget lasts; with ``kv_reserve = "prompt"`` a decode that needs a new KV block when
    none is free evicts the most recently admitted requests (recomputed later); (2) admitted requests
    part-way through a chunked prefill get their next chunk; (3) unless something was evicted, waiting
    requests are admitted strictly in FCFS order while there are seats (``max_batch``), token budget
    and KV room (``full``: blocks for prompt + output - 1; ``prompt``: blocks for the prompt plus
    ``kv_headroom``). The head of the queue is never overtaken. Without chunked prefill a prompt runs
    whole or waits (a recomputation longer than ``max_tokens`` is still chunked, or it could never
    run). Finished requests leave at the end of the iteration that emits their last token.
    """

    Params = ContinuousParams
    prefix_caching = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fresh: deque[RequestState] = deque()  # never admitted, FCFS
        self.evicted: list[tuple[int, RequestState]] = []  # heap by seq; all older than any fresh one
        self.running: list[RequestState] = []  # admitted, in admission order
        p = self.params
        self.headroom_blocks = self._blocks(p.kv_headroom) if p.kv_reserve == "prompt" else 0

    @property
    def num_waiting(self) -> int:
        return len(self.fresh) + len(self.evicted)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def _oversize(self, request: Request) -> str | None:
        p = self.params
        if not p.chunked_prefill and request.prompt_tokens > p.max_tokens:
            return (
                f"without chunked prefill expected prompt tokens <= max_tokens = {p.max_tokens}, "
                f"found {request.prompt_tokens}"
            )
        return self._oversize_kv(request, self.headroom_blocks)

    def _enqueue(self, state: RequestState) -> None:
        self.fresh.append(state)

    def _admitted(self) -> Iterable[RequestState]:
        return self.running

    def _head(self) -> RequestState | None:
        if self.evicted:
            return self.evicted[0][1]
        return self.fresh[0] if self.fresh else None

    def _pop_head(self) -> RequestState:
        return heapq.heappop(self.evicted)[1] if self.evicted else self.fresh.popleft()

    def _evict_youngest(self) -> None:
        victim = self.running.pop()
        self._free(victim)
        victim.preemptions += 1
        victim.prefilled = 0
        victim.prefill_target = victim.request.prompt_tokens + victim.generated
        heapq.heappush(self.evicted, (victim.seq, victim))

    def _schedule(self, now: int) -> tuple[list[BatchEntry], list[Request]]:
        p = self.params
        budget = p.max_tokens
        entries: list[BatchEntry] = []
        preempted: list[Request] = []

        # (1) decodes, oldest admission first; note the prefills under way for (2). Victims of
        # eviction are always the youngest (the tail of `running`), never one already scheduled.
        under_way: list[RequestState] = []
        cap = self.capacity_blocks
        i = 0
        while i < len(self.running) and budget > 0:
            s = self.running[i]
            i += 1
            if s.prefilled < s.prefill_target:
                under_way.append(s)
                continue
            context = s.request.prompt_tokens + s.generated
            need = self._blocks(context) - s.kv_blocks
            if need > 0:
                if cap is not None:
                    while cap - self.used_blocks < need and self.running[-1] is not s:
                        preempted.append(self.running[-1].request)
                        self._evict_youngest()
                    if cap - self.used_blocks < need:  # nothing younger left: s itself waits
                        preempted.append(s.request)
                        self._evict_youngest()
                        break
                s.kv_blocks += need
                self.used_blocks += need
            entries.append(BatchEntry(s.request, "decode", 1, context, True))
            budget -= 1

        # (2) chunks of prefills already under way.
        for s in under_way:
            if budget <= 0:
                break
            entries.append(self._prefill_chunk(s, budget))
            budget -= entries[-1].tokens

        # (3) admissions, strictly FCFS.
        while not preempted and budget > 0 and len(self.running) < p.max_batch:
            s = self._head()
            if s is None:
                break
            target = s.prefill_target
            if p.kv_reserve == "full":
                blocks = self._blocks(self._peak_kv(s.request))
                fits = self._free_blocks() >= blocks
            else:
                blocks = self._blocks(target)
                fits = self._free_blocks() - self.headroom_blocks >= blocks
            may_chunk = p.chunked_prefill or (s.preemptions > 0 and target > p.max_tokens)
            if not fits or (not may_chunk and target > budget):
                break
            self._pop_head()
            self._admit(s, blocks, now)
            if self.prefix_cache is not None and s.preemptions == 0:
                s.prefilled = self.prefix_cache.lookup(s.request, now)  # cached KV: not prefilled
            self.running.append(s)
            entries.append(self._prefill_chunk(s, budget))
            budget -= entries[-1].tokens
        return entries, preempted

    # Failures (sim.serving.failures) -----------------------------------------------------------

    recovers_from_failures = True

    def lose_kv(self, batch: Batch | None) -> list[RequestState]:
        """A failed chip took every admitted request's KV with it: drop ``batch`` (the iteration in
        flight; its tokens never came out) and queue each admitted request to be prefilled again over
        prompt + generated, as a preemption by recompute does. Returns those requests."""
        if batch is not None:
            if batch is not self._outstanding:
                raise SimulationError(f"iteration {batch.index} is not the outstanding one")
            self._outstanding = None
        lost = list(self.running)
        while self.running:
            self._evict_youngest()
        return lost

    def take_all(self) -> list[RequestState]:
        """Remove every request (none admitted: call :meth:`lose_kv` first) to move it elsewhere."""
        if self.running or self._outstanding is not None:
            raise SimulationError("take_all with requests admitted or an iteration outstanding")
        states = [s for _, s in sorted(self.evicted, key=lambda x: x[0])] + list(self.fresh)
        self.evicted.clear()
        self.fresh.clear()
        for s in states:
            del self.by_id[s.request.id]
        return states

    def adopt(self, s: RequestState, now: int) -> None:
        """Queue a request moved here from a failed replica, ahead of requests never admitted: it
        prefills ``s.prefill_target`` tokens (prompt + generated when its KV was lost)."""
        if s.request.id in self.by_id:
            raise SimulationError(f"request {s.request.id} adopted twice")
        s.seq = self._seq
        self._seq += 1
        s.kv_blocks = s.kv_tokens = s.prefilled = 0
        self.by_id[s.request.id] = s
        heapq.heappush(self.evicted, (s.seq, s))

    def _prefill_chunk(self, s: RequestState, budget: int) -> BatchEntry:
        remaining = s.prefill_target - s.prefilled
        tokens = min(remaining, budget)
        if s.preemptions:
            s.recomputed_tokens += tokens
        return BatchEntry(s.request, "prefill", tokens, s.prefilled + tokens, tokens == remaining)

    def _retire(self, now: int) -> list[RequestState]:
        done = [s for s in self.running if s.done]
        if done:
            self.running = [s for s in self.running if not s.done]
        return self._leave(done, now)


# -- static (request-level) batching ---------------------------------------------------------------


@dataclass(frozen=True)
class StaticParams(ParamSet):
    """Request-level batching (FasterTransformer / HF generate): a batch runs until its longest ends."""

    max_batch: int = param(8, COUNT, "requests per batch", check=positive)
    max_tokens: int = param(2**31, COUNT, "most prompt tokens in a batch's prefill iteration", check=positive)
    max_wait: int = param(
        0, TIME, "how long the oldest waiting request may wait for a fuller batch", check=non_negative
    )
    pad: bool = param(True, bool, "finished requests keep computing as padding until the batch ends")
    kv_block_tokens: int = param(1, COUNT, "tokens per KV block (allocation unit)", check=positive)
    on_oversize: str = param(
        "error",
        str,
        "a request that can never fit: raise, or drop into .rejected",
        check=one_of("error", "reject"),
    )


@register("batching", "static")
class StaticBatching(BatchingPolicy):
    """Fixed batches in arrival order, each run to completion of its longest request.

    When no batch is running, a new one is formed once ``max_batch`` requests wait or the oldest has
    waited ``max_wait``: up to ``max_batch`` requests in FCFS order while their peak KV (prompt +
    output - 1, reserved whole at once) fits and their prompts sum to at most ``max_tokens``. The
    first iteration prefills all of them; each later one decodes every request that still has
    tokens to emit, and (``pad``) runs finished ones as padding. All results return together when the
    longest request emits its last token; only then may the next batch form.
    """

    Params = StaticParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting: deque[RequestState] = deque()
        self.group: list[RequestState] = []

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.group)

    def _oversize(self, request: Request) -> str | None:
        if request.prompt_tokens > self.params.max_tokens:
            limit = self.params.max_tokens
            return f"expected prompt tokens <= max_tokens = {limit}, found {request.prompt_tokens}"
        return self._oversize_kv(request)

    def _enqueue(self, state: RequestState) -> None:
        self.waiting.append(state)

    def _admitted(self) -> Iterable[RequestState]:
        return self.group

    def wake_time(self, now: int) -> int | None:
        if self.group or not self.waiting or len(self.waiting) >= self.params.max_batch:
            return None
        return self.waiting[0].queued_ps + self.params.max_wait

    def _schedule(self, now: int) -> tuple[list[BatchEntry], list[Request]]:
        if not self.group:
            return self._form(now), []
        entries = []
        for s in self.group:
            r = s.request
            if not s.done:
                entries.append(BatchEntry(r, "decode", 1, r.prompt_tokens + s.generated, True))
            elif self.params.pad:
                entries.append(BatchEntry(r, "decode", 1, s.kv_tokens, False, padding=True))
        return entries, []

    def _form(self, now: int) -> list[BatchEntry]:
        p = self.params
        if not self.waiting:
            return []
        if len(self.waiting) < p.max_batch and now < self.waiting[0].queued_ps + p.max_wait:
            return []
        prompt_sum = 0
        while self.waiting and len(self.group) < p.max_batch:
            s = self.waiting[0]
            blocks = self._blocks(self._peak_kv(s.request))
            if self._free_blocks() < blocks or prompt_sum + s.request.prompt_tokens > p.max_tokens:
                break
            self.waiting.popleft()
            self._admit(s, blocks, now)
            self.group.append(s)
            prompt_sum += s.request.prompt_tokens
        return [
            BatchEntry(s.request, "prefill", s.prefill_target, s.prefill_target, True) for s in self.group
        ]

    def _retire(self, now: int) -> list[RequestState]:
        for s in self.group:
            if not s.done:
                return []
        done, self.group = self.group, []
        return self._leave(done, now)


# -- helpers for drivers ---------------------------------------------------------------------------


def make_policy(
    name: str,
    params: ParamSet | Mapping[str, Any] | None = None,
    *,
    kv_capacity_tokens: int | None = None,
    where: str | None = None,
) -> BatchingPolicy:
    """A registered batching policy by name, its params from a mapping (unknown keys name ``where``)."""
    cls = lookup("batching", name)
    return cls(params, kv_capacity_tokens=kv_capacity_tokens, where=where)


@dataclass
class ReplayResult:
    """What :func:`replay` returns: finished states (by request id), iterations run, end time."""

    states: list[RequestState] = field(default_factory=list)
    iterations: int = 0
    end_ps: int = 0
    rejected: list[Request] = field(default_factory=list)


def replay(
    policy: BatchingPolicy,
    requests: Iterable[Request],
    iteration_ps: int | Callable[[Batch], int],
    *,
    observe: Callable[[Batch, BatchingPolicy], None] | None = None,
    max_iterations: int | None = None,
) -> ReplayResult:
    """Run ``requests`` (sorted by arrival) through ``policy`` with a simple clock: a reference driver.

    Each iteration lasts ``iteration_ps`` (a constant, or a function of the batch). Requests that
    arrive during an iteration are added at its end. ``observe(batch, policy)`` is called right after
    each ``next_batch`` (for checks and statistics).
    """
    cost = iteration_ps if callable(iteration_ps) else (lambda _b, c=iteration_ps: c)
    pending = iter(requests)
    nxt = next(pending, None)
    now = 0
    result = ReplayResult()
    last_arrival = 0
    while True:
        while nxt is not None and nxt.arrival_ps <= now:
            if nxt.arrival_ps < last_arrival:
                raise ConfigError(
                    f"expected requests in arrival order, found {format_time(nxt.arrival_ps)} after "
                    f"{format_time(last_arrival)}",
                    where=f"request {nxt.id}",
                )
            last_arrival = nxt.arrival_ps
            policy.add(nxt, now)
            nxt = next(pending, None)
        batch = policy.next_batch(now)
        if batch is not None:
            if observe is not None:
                observe(batch, policy)
            dt = cost(batch)
            if not isinstance(dt, int) or dt <= 0:
                raise ConfigError(
                    f"expected an iteration time in whole ps > 0, found {dt!r}", where="iteration_ps"
                )
            now += dt
            result.states.extend(policy.complete(batch, now))
            result.iterations += 1
            if max_iterations is not None and result.iterations >= max_iterations:
                break
            continue
        wake = policy.wake_time(now)
        times = [t for t in (wake, None if nxt is None else nxt.arrival_ps) if t is not None]
        if not times:
            if not policy.idle:
                raise SimulationError(
                    f"{policy.num_waiting} requests wait but the policy schedules nothing "
                    "and expects no wake-up"
                )
            break
        now = max(now, min(times))
    result.states.sort(key=lambda s: s.request.id)
    result.end_ps = now
    result.rejected = list(policy.rejected)
    return result
