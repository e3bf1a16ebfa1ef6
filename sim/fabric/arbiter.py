"""Arbiters: pick one requester among many. Registered under kind ``arbiter``.

An arbiter instance serves one resource (an output port, an output VC, an input port). Requests
come as a bit mask (bit ``i`` set: requester ``i`` asks), the cheapest form for the router's hot
loop; :meth:`Arbiter.pick` takes them as a list of indices in increasing order instead. A new
arbiter implements ``pick``; it may also override ``pick_mask`` when it can work on the bits.
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

    def pick_mask(self, mask: int) -> int:
        """The winner among the requesters whose bits are set in ``mask`` (at least one)."""
        return self.pick([i for i in range(mask.bit_length()) if mask >> i & 1])


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

    def pick_mask(self, mask: int) -> int:
        after = mask >> (self.last + 1) << (self.last + 1)  # requesters after the last winner
        low = (after or mask) & -(after or mask)  # the lowest such bit, else the lowest of all
        self.last = best = low.bit_length() - 1
        return best


@register("arbiter", "fixed_priority")
class FixedPriorityArbiter(Arbiter):
    """Lowest index wins (unfair; useful to show starvation)."""

    def pick(self, requests: Sequence[int]) -> int:
        return requests[0]

    def pick_mask(self, mask: int) -> int:
        return (mask & -mask).bit_length() - 1
