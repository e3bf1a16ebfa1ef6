"""A FIFO server whose schedule is computed at arrival time.

For a server with deterministic service in FIFO order, the start of each job is known the moment it
arrives: ``start = max(ready, busy_until)``. Reserving instead of queueing as SimPy events costs no
events at all; the caller waits once for the finish time. Transaction-level models chain these
(plane -> channel bus -> stack interface), so requests still queue and contend, in closed form.
"""

from __future__ import annotations

from bisect import bisect_right
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


class Timeline:
    """A single FIFO server booked in closed form, for jobs that arrive out of ready-time order.

    :class:`sim.core.reservation.Reservation` is exact when jobs are booked in the order they become
    ready. Here a page booked now may be ready (sensed) later than a page booked afterwards on a
    less busy plane; a plain ``busy_until`` would make the second page wait behind the first, which
    the detailed model (FIFO in ready order) never does. A Timeline keeps the booked intervals and
    places each job in the earliest idle gap at or after its ready time, which equals
    ``Reservation`` when bookings do arrive in ready order (the fast path).
    """

    __slots__ = ("_ends", "_lo", "_starts", "busy_ps", "jobs", "waited_ps")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._lo = 0  # intervals before this index ended in the past
        self.busy_ps = 0
        self.waited_ps = 0
        self.jobs = 0

    def prune(self, now_ps: int) -> None:
        """Forget intervals that ended by ``now_ps`` (no job can be ready before now)."""
        ends, lo = self._ends, self._lo
        n = len(ends)
        while lo < n and ends[lo] <= now_ps:
            lo += 1
        if lo > 64 and 2 * lo > n:
            del self._starts[:lo]
            del ends[:lo]
            lo = 0
        self._lo = lo

    def earliest(self, ready_ps: int, duration_ps: int) -> int:
        """Earliest start >= ``ready_ps`` of an idle gap at least ``duration_ps`` long."""
        ends = self._ends
        n = len(ends)
        if n == self._lo or ready_ps >= ends[-1]:
            return ready_ps
        starts = self._starts
        i = bisect_right(ends, ready_ps, self._lo)
        t = ready_ps
        while i < n:
            if t + duration_ps <= starts[i]:
                return t
            if ends[i] > t:
                t = ends[i]
            i += 1
        return t

    def book(self, start_ps: int, duration_ps: int, ready_ps: int, work_ps: int = -1) -> int:
        """Occupy ``[start, start + duration)`` (must be idle); returns the end.

        ``work_ps`` (default: all of it) is the part counted as busy; the rest is holding.
        """
        end = start_ps + duration_ps
        self.busy_ps += duration_ps if work_ps < 0 else work_ps
        self.waited_ps += start_ps - ready_ps
        self.jobs += 1
        if duration_ps <= 0:
            return end
        starts, ends = self._starts, self._ends
        n = len(ends)
        if n == self._lo or start_ps >= ends[-1]:  # append (the common, in-order case)
            if n > self._lo and ends[-1] == start_ps:
                ends[-1] = end
            else:
                starts.append(start_ps)
                ends.append(end)
            return end
        i = bisect_right(ends, start_ps, self._lo)
        merge_prev = i > self._lo and ends[i - 1] == start_ps
        merge_next = i < n and starts[i] == end
        if merge_prev and merge_next:
            ends[i - 1] = ends[i]
            del starts[i]
            del ends[i]
        elif merge_prev:
            ends[i - 1] = end
        elif merge_next:
            starts[i] = start_ps
        else:
            starts.insert(i, start_ps)
            ends.insert(i, end)
        return end

    def reserve(self, ready_ps: int, duration_ps: int) -> tuple[int, int]:
        """Book the earliest idle gap at or after ``ready_ps``; returns (start, end)."""
        start = self.earliest(ready_ps, duration_ps)
        return start, self.book(start, duration_ps, ready_ps)

    def busy_until_ps(self, now_ps: int) -> int:
        """Busy time inside ``[0, now_ps]`` (bookings that run past now are clipped)."""
        future = 0
        for s, e in zip(self._starts[self._lo :], self._ends[self._lo :], strict=True):
            if e > now_ps:
                future += e - max(s, now_ps)
        return self.busy_ps - future
