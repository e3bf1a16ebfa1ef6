"""Synthetic traffic: destination patterns (registered, kind ``traffic``) and Bernoulli injection.

Patterns map a source terminal to a destination; bit patterns need a power-of-two terminal count,
transpose a square 2D arrangement. Injection is Bernoulli per terminal per cycle with probability
``rate / packet_flits`` (rate in flits/node/cycle), drawn as geometric gaps so idle cycles cost
nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator

import numpy as np

from sim.core.errors import ConfigError
from sim.core.registry import register
from sim.fabric.packet import Packet

Pattern = Callable[[int, int, np.random.Generator], int]


def _bits(n: int, name: str) -> int:
    b = n.bit_length() - 1
    if n <= 1 or 1 << b != n:
        raise ConfigError(
            f"traffic {name!r} needs a power-of-two number of terminals, found {n}", where="traffic"
        )
    return b


@register("traffic", "uniform")
def uniform(src: int, n: int, rng: np.random.Generator) -> int:
    """Uniform random destination, the source included (as in the closed-form hop count)."""
    return int(rng.integers(n))


@register("traffic", "transpose")
def transpose(src: int, n: int, rng: np.random.Generator) -> int:
    """(x, y) -> (y, x) on a k x k arrangement of terminals (id = x + k*y)."""
    k = math.isqrt(n)
    if k * k != n:
        raise ConfigError(
            f"traffic 'transpose' needs a square number of terminals, found {n}", where="traffic"
        )
    x, y = src % k, src // k
    return y + k * x


@register("traffic", "bitcomp")
def bit_complement(src: int, n: int, rng: np.random.Generator) -> int:
    """Destination = bitwise complement of the source id."""
    _bits(n, "bitcomp")
    return (~src) & (n - 1)


@register("traffic", "bitrev")
def bit_reverse(src: int, n: int, rng: np.random.Generator) -> int:
    """Destination = the source id's bits reversed."""
    b = _bits(n, "bitrev")
    return int(format(src, f"0{b}b")[::-1], 2)


@register("traffic", "hotspot")
def hotspot(src: int, n: int, rng: np.random.Generator) -> int:
    """Half the packets go to terminal 0, the rest uniformly (ASSUMPTION: one hotspot, 50%)."""
    return 0 if rng.random() < 0.5 else int(rng.integers(n))


@register("traffic", "neighbor")
def nearest_neighbor(src: int, n: int, rng: np.random.Generator) -> int:
    """Next terminal in id order, wrapping (the +x neighbour on a mesh or torus row... and ring)."""
    return (src + 1) % n


class BernoulliSource:
    """Creates packets for every terminal from ``start`` until ``stop`` (cycles)."""

    def __init__(
        self,
        new_packet: Callable[[int, int, int, int], Packet],
        terminals: int,
        rate: float,
        packet_flits: int,
        pattern: Pattern,
        rng: np.random.Generator,
        start: int = 0,
        stop: int | None = None,
        on_create: Callable[[Packet], None] | None = None,
    ) -> None:
        if not 0 < rate <= packet_flits:
            raise ConfigError(
                f"expected a rate in (0, {packet_flits}] flits/node/cycle, found {rate}", where="rate"
            )
        self.new_packet = new_packet
        self.n = terminals
        self.p = min(1.0, rate / packet_flits)
        self.size = packet_flits
        self.pattern = pattern
        self.rng = rng
        self.stop = stop
        self.on_create = on_create
        self.heap: list[tuple[int, int]] = [(start + self._gap() - 1, t) for t in range(terminals)]
        heapq.heapify(self.heap)

    def _gap(self) -> int:
        return 1 if self.p >= 1.0 else int(self.rng.geometric(self.p))

    def next_cycle(self) -> int | None:
        if not self.heap:
            return None
        c = self.heap[0][0]
        return None if self.stop is not None and c >= self.stop else c

    def due(self, cycle: int) -> Iterator[Packet]:
        heap = self.heap
        while heap and heap[0][0] <= cycle:
            c, t = heap[0]
            if self.stop is not None and c >= self.stop:
                return
            heapq.heapreplace(heap, (c + self._gap(), t))
            pkt = self.new_packet(t, self.pattern(t, self.n, self.rng), self.size, c)
            if self.on_create is not None:
                self.on_create(pkt)
            yield pkt
