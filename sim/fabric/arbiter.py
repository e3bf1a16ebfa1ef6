"""Arbiters: pick one requester among many. Registered under kind ``arbiter``.

An arbiter instance serves one resource (an output port, an output VC, an input port); ``pick``
receives the requesting indices in increasing order and returns the winner.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.core.registry import register


class Arbiter:
    """Base: ``size`` possible requesters numbered 0..size-1."""

    def __init__(self, size: int) -> None:
        self.size = size

    def pick(self, requests: Sequence[int]) -> int:
        raise NotImplementedError


@register("arbiter", "round_robin")
class RoundRobinArbiter(Arbiter):
    """Round-robin: the first requester after the last winner (fair, starvation-free)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.last = size - 1

    def pick(self, requests: Sequence[int]) -> int:
        last = self.last
        best = requests[0]
        for r in requests:
            if r > last:
                best = r
                break
        self.last = best
        return best


@register("arbiter", "fixed_priority")
class FixedPriorityArbiter(Arbiter):
    """Lowest index wins (unfair; useful to show starvation)."""

    def pick(self, requests: Sequence[int]) -> int:
        return requests[0]
