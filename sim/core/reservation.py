"""A FIFO server whose schedule is computed at arrival time.

For a server with deterministic service in FIFO order, the start of each job is known the moment it
arrives: ``start = max(ready, busy_until)``. Reserving instead of queueing as SimPy events costs no
events at all; the caller waits once for the finish time. Transaction-level models chain these
(plane -> channel bus -> stack interface), so requests still queue and contend, in closed form.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


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


@dataclass
class GapReservation:
    """A server that books each job into the earliest idle gap at or after its ready time.

    Unlike :class:`Reservation`, a job booked later may use an earlier gap, so jobs are served in
    order of readiness rather than order of booking: the right model when bookings are made ahead
    of time along a path (message-level fabric) but service follows arrival at the server.
    Intervals that ended before ``horizon`` are pruned, keeping the search short.
    """

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    busy_ps: int = 0
    waited_ps: int = 0
    jobs: int = 0

    def earliest(self, ready: int, duration: int, horizon: int = 0) -> int:
        """Earliest start >= ``ready`` of an idle gap of ``duration`` (books nothing)."""
        starts, ends = self.starts, self.ends
        if starts and ends[0] <= horizon:  # forget the past
            cut = bisect.bisect_right(ends, horizon)
            del starts[:cut], ends[:cut]
        i = bisect.bisect_right(ends, ready)  # first interval that ends after ready
        t = ready
        while i < len(starts):
            if starts[i] >= t + duration:
                break
            t = max(t, ends[i])
            i += 1
        return t

    def book(self, start: int, duration: int, ready: int | None = None) -> tuple[int, int]:
        """Occupy [start, start + duration), which must be idle (see :meth:`earliest`)."""
        i = bisect.bisect_right(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, start + duration)
        self.busy_ps += duration
        self.waited_ps += start - (start if ready is None else ready)
        self.jobs += 1
        return start, start + duration

    def reserve(self, ready: int, duration: int, horizon: int = 0) -> tuple[int, int]:
        """Book the earliest idle gap of ``duration`` at or after ``ready``."""
        return self.book(self.earliest(ready, duration, horizon), duration, ready)
