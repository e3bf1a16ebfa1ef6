"""A compute unit that runs one operation at a time, booked in closed form.

Operations on one unit queue in order; each is placed on a :class:`Timeline` when issued, so the
caller learns its finish time at once and waits with a single timeout (or folds it into a wait for
several things). The queueing delay and the busy fraction are reported.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.core.component import Component
from sim.core.reservation import Timeline
from sim.stats import counter, gauge, tally


class QueuedUnit(Component):
    """Base of the compute die and the near-memory MAC units."""

    STATS = (
        counter("ops", "ops", "operations executed"),
        counter("flops", "FLOP", "floating-point operations executed"),
        tally("queue_ns", "ns", "wait for the unit to become free", keep=False),
        gauge("utilization", "", "busy time / simulated time"),
        counter("energy_pj", "pJ", "dynamic energy of the operations executed"),
    )

    def build(self) -> None:
        self.timeline = Timeline()

    def _book(
        self, duration_ps: int, flops: float, ready_ps: int | None = None, energy_pj: float = 0.0
    ) -> int:
        """Queue an operation of ``duration_ps`` no earlier than ``ready_ps``; its finish time."""
        now = self.env.now
        ready = now if ready_ps is None else max(now, ready_ps)
        self.timeline.prune(now)
        start, end = self.timeline.reserve(ready, duration_ps)
        self.stat.ops.add()
        self.stat.flops.add(flops)
        self.stat.energy_pj.add(energy_pj)
        self.stat.queue_ns.observe((start - ready) / 1000)
        return end

    def _wait_until(self, end_ps: int) -> Generator[simpy.Event, Any, int]:
        yield self.env.timeout(end_ps - self.env.now)
        return end_ps

    def finalize(self) -> None:
        now = self.env.now
        self.stat.utilization.set(self.timeline.busy_until_ps(now) / now if now else 0.0)
