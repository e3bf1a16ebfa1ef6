"""The one protocol between the driver and whatever decides what runs: a :class:`Scheduler`.

Three kinds of scheduler implement it: the batching policies (:mod:`sim.serving.batching`, which
decide in simulated time), decode-trace replay (:class:`~sim.serving.decode_trace.ReplayScheduler`,
batches fixed in advance) and the fixed decode batch of a decode study (:class:`FixedDecodeBatch`).
The driver owns the clock and the cost of an iteration; a scheduler only decides::

    scheduler.add(request, now)              # at (or after) request.arrival_ps, in arrival order
    batch = scheduler.next_batch(now)        # None: nothing can run until an add or wake_time()
    ... the driver simulates the batch ...
    scheduler.complete(batch, now)           # at the iteration's end
    scheduler.wake_time(now)                 # when a batch may be ready without a new request
    scheduler.idle, scheduler.num_waiting    # to tell a finished run from a stalled one

A :class:`Batch` is the work of one iteration: per request, ``tokens`` new tokens attending to
``context_tokens`` in all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sim.core.errors import ConfigError
from sim.requests.record import Request

Phase = Literal["prefill", "decode"]


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One request's work in one iteration.

    ``tokens`` new tokens are processed (a prefill chunk, or 1 for decode); they attend to
    ``context_tokens`` tokens in all, the KV length after this iteration, so the tokens already
    cached before it are :attr:`past_tokens`. ``emits_token`` says whether the iteration ends with a
    new output token for this request (every decode; the last chunk of a prefill). A ``padding``
    entry (static batching with ``pad``) is a finished request still occupying its batch slot: it
    costs compute but emits nothing.
    """

    request: Request
    phase: Phase
    tokens: int
    context_tokens: int
    emits_token: bool
    padding: bool = False

    @property
    def past_tokens(self) -> int:
        return self.context_tokens - self.tokens


@dataclass(frozen=True, slots=True)
class Batch:
    """The work of one iteration, in scheduling order (decodes first, then prefill chunks).

    ``preempted`` are requests evicted while forming this batch (their KV is gone; they will be
    re-prefilled). ``kv_used_tokens`` is the KV held by all admitted requests after the iteration
    and ``kv_allocated_tokens`` what is reserved for them (whole blocks), both in tokens.
    """

    index: int
    start_ps: int
    entries: tuple[BatchEntry, ...]
    preempted: tuple[Request, ...] = ()
    kv_used_tokens: int = 0
    kv_allocated_tokens: int = 0

    @property
    def size(self) -> int:
        return len(self.entries)

    @property
    def num_tokens(self) -> int:
        return sum(e.tokens for e in self.entries)

    @property
    def prefill_tokens(self) -> int:
        return sum(e.tokens for e in self.entries if e.phase == "prefill")

    @property
    def num_decode(self) -> int:
        return sum(1 for e in self.entries if e.phase == "decode" and not e.padding)


class Scheduler(ABC):
    """What the token-generation driver asks of whatever decides the batches (module docstring)."""

    @abstractmethod
    def add(self, request: Request, now: int) -> None:
        """``request`` has arrived (called at or after its arrival, in arrival order)."""

    @abstractmethod
    def next_batch(self, now: int) -> Batch | None:
        """The next iteration's work, or None when nothing can run until an add or wake time."""

    @abstractmethod
    def complete(self, batch: Batch, now: int) -> Sequence[Any]:
        """``batch`` finished at ``now``; what left the scheduler with it (may be empty)."""

    def wake_time(self, now: int) -> int | None:
        """When a batch may be ready without any new request (None: only an add helps)."""
        return None

    @property
    @abstractmethod
    def idle(self) -> bool:
        """Nothing waiting, nothing running: the run may end once no request is due."""

    @property
    @abstractmethod
    def num_waiting(self) -> int:
        """Requests (or batches) waiting to run, for the message of a stalled run."""


class FixedDecodeBatch(Scheduler):
    """A decode study: the same ``batch`` sequences decode ``steps`` times, no prefill.

    Sequence ``i`` starts at ``context`` tokens (its KV already cached) and grows by one per step.
    """

    def __init__(self, batch: int, context: int, steps: int) -> None:
        if batch < 1 or context < 1 or steps < 1:
            raise ConfigError(
                f"expected batch, context and steps >= 1, found {batch}, {context}, {steps}",
                where="--batch/--context/--steps",
            )
        self.requests = [Request(i, 0, context, steps + 1) for i in range(batch)]
        self.context = context
        self.steps = steps
        self.step = 0

    def add(self, request: Request, now: int) -> None:  # the requests are built in; nothing to add
        pass

    def next_batch(self, now: int) -> Batch | None:
        if self.step >= self.steps:
            return None
        ctx = self.context + self.step + 1
        entries = tuple(BatchEntry(r, "decode", 1, ctx, True) for r in self.requests)
        return Batch(self.step, now, entries)

    def complete(self, batch: Batch, now: int) -> list[Any]:
        self.step += 1
        return []

    @property
    def idle(self) -> bool:
        return self.step >= self.steps

    @property
    def num_waiting(self) -> int:
        return 0
