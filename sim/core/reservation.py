"""A FIFO server whose schedule is computed at arrival time.

For a server with deterministic service in FIFO order, the start of each job is known the moment it
arrives: ``start = max(ready, busy_until)``. Reserving instead of queueing as SimPy events costs no
events at all; the caller waits once for the finish time. Transaction-level models chain these
(plane -> channel bus -> stack interface), so requests still queue and contend, in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Reservation:
    """Busy-until bookkeeping plus the raw sums its owner turns into stats."""

    busy_until: int = 0
    busy_ps: int = 0
    waited_ps: int = 0
    jobs: int = 0

    def reserve(self, ready_ps: int, duration_ps: int) -> tuple[int, int]:
        """Book ``duration_ps`` no earlier than ``ready_ps``; returns (start, end) in ps."""
        start = ready_ps if ready_ps > self.busy_until else self.busy_until
        end = start + duration_ps
        self.busy_until = end
        self.busy_ps += duration_ps
        self.waited_ps += start - ready_ps
        self.jobs += 1
        return start, end

    def utilization(self, now_ps: int) -> float:
        return self.busy_ps / now_ps if now_ps > 0 else 0.0
