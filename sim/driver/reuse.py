"""Iteration reuse: simulate each iteration shape in full once, replay it afterwards, measure the error.

A serving run repeats itself: a 200-request trace of Llama-3.1-70B runs ~5,000 iterations of only
~500 distinct shapes, and the step times within a shape differ by hundredths of a percent. An
iteration's **shape** (:func:`shape_key`) is its batch composition with contexts bucketed:

* the number of decode entries and their total context in ``bucket``-token buckets;
* every prefill chunk as (tokens, cached tokens before it in buckets, emits a token);
* how many entries emit a token (the LM head's rows).

The first iteration of a shape runs in full through the memories, compute and fabric at the
system's chosen fidelity; what it did is stored: its duration, the chips' share of it, its blame,
and the change it made to every counter of every component (bytes, energy, FLOPs, host time) and to
every compute unit's busy time. A later iteration of the same shape replays those: one timeout, the
blame, the counter deltas. Every ``check_every``-th hit is simulated in full anyway and compared with
the stored duration; the summary reports ``reuse: {hits, shapes, sampled, max_rel_error,
mean_rel_error}``. Nothing stored ever comes from an analytic twin unless the system chose it.

What a replayed iteration does not do: add latency samples to device tallies, move device queues
and row buffers, or record ops for ``ops.csv`` (``iterations.csv`` marks it ``reused``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sim.driver.blame import Blame, Cause
from sim.serving.scheduler import Batch
from sim.stats.kinds import Counter


def shape_key(batch: Batch, bucket: int) -> tuple[Any, ...]:
    """What decides an iteration's cost, with contexts in ``bucket``-token buckets (see module)."""
    decodes = context = emitting = 0
    prefill = []
    for e in batch.entries:
        emitting += e.emits_token
        if e.phase == "decode":
            decodes += 1
            context += e.context_tokens
        else:
            prefill.append((e.tokens, (e.context_tokens - e.tokens) // bucket, e.emits_token))
    return decodes, context // bucket, tuple(sorted(prefill)), emitting


@dataclass(frozen=True, slots=True)
class StoredIteration:
    """What the first full simulation of a shape did."""

    duration_ps: int
    device_step_ps: int
    blame: tuple[tuple[Cause, float], ...]
    counters: tuple[float, ...]  # change of each tracked counter
    busy: tuple[int, ...]  # change of each tracked unit's busy time (ps)


class IterationReuse:
    """The shapes seen so far and the error of the sampled re-simulations."""

    def __init__(
        self,
        counters: Sequence[Counter],
        units: Sequence[Any],
        bucket: int,
        check_every: int,
        syncs: Sequence[Any] = (),
    ) -> None:
        self.syncs = list(syncs)  # flush pending device counts into counters before a snapshot
        self.counters = list(counters)
        self.units = list(units)  # objects with a Timeline ``timeline`` (compute die, MAC units)
        self.bucket = bucket
        self.check_every = check_every
        self.shapes: dict[tuple[Any, ...], StoredIteration] = {}
        self.hits = 0
        self.sampled = 0
        self.max_rel_error = 0.0
        self._sum_rel_error = 0.0

    def sync(self, account: bool = True) -> None:
        """Bring every device's counters up to now: pending counts, and time-driven energy
        (refresh) accounted (``account``) or, after a replay whose stored change already holds it,
        skipped."""
        for sync in self.syncs:
            sync(account)

    def snapshot(self) -> tuple[tuple[float, ...], tuple[int, ...]]:
        self.sync()
        return tuple(c.value for c in self.counters), tuple(u.timeline.busy_ps for u in self.units)

    def lookup(self, key: tuple[Any, ...]) -> tuple[StoredIteration | None, bool]:
        """The stored iteration of ``key`` (None: first of its shape) and whether to replay it
        (False: simulate it in full, to store it or to check it)."""
        stored = self.shapes.get(key)
        if stored is None:
            return None, False
        self.hits += 1
        check = self.check_every > 0 and self.hits % self.check_every == 0
        return stored, not check

    def store(
        self,
        key: tuple[Any, ...],
        before: tuple[tuple[float, ...], tuple[int, ...]],
        duration_ps: int,
        device_step_ps: int,
        blame: Blame,
    ) -> None:
        counters, busy = self.snapshot()  # synced to the end of the iteration
        self.shapes[key] = StoredIteration(
            duration_ps,
            device_step_ps,
            tuple(blame.by_cause.items()),
            tuple(a - b for a, b in zip(counters, before[0], strict=True)),
            tuple(a - b for a, b in zip(busy, before[1], strict=True)),
        )

    def checked(self, stored: StoredIteration, duration_ps: int) -> None:
        """A hit simulated in full: how far the stored duration was from it."""
        self.sampled += 1
        err = abs(stored.duration_ps - duration_ps) / duration_ps if duration_ps else 0.0
        self.max_rel_error = max(self.max_rel_error, err)
        self._sum_rel_error += err

    def replay(self, stored: StoredIteration, blame: Blame) -> None:
        """Apply a stored iteration's blame, counter and busy-time changes (not its time)."""
        for cause, ps in stored.blame:
            blame.add(cause, ps)
        for c, d in zip(self.counters, stored.counters, strict=True):
            if d:
                c.value += d
        for u, d in zip(self.units, stored.busy, strict=True):
            if d:
                u.timeline.busy_ps += d

    def summary(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "shapes": len(self.shapes),
            "sampled": self.sampled,
            "max_rel_error": self.max_rel_error,
            "mean_rel_error": self._sum_rel_error / self.sampled if self.sampled else 0.0,
            "bucket_tokens": self.bucket,
        }
