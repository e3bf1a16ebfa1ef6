"""Synthetic traffic: destination patterns (registered, kind ``traffic``) and Bernoulli injection.

A pattern maps an array of source terminals to an array of destinations, so a whole block of
injections costs one call; bit patterns need a power-of-two terminal count, transpose a square 2D
arrangement. Injection is Bernoulli per terminal per cycle with probability ``rate /
packet_flits`` (rate in flits/node/cycle), drawn as geometric gaps in blocks with numpy: the cost
is per packet, not per terminal-cycle.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate

import numpy as np

from sim.core.errors import ConfigError
from sim.core.registry import register
from sim.fabric.packet import Packet

Pattern = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _bits(n: int, name: str) -> int:
    b = n.bit_length() - 1
    if n <= 1 or 1 << b != n:
        raise ConfigError(
            f"traffic {name!r} needs a power-of-two number of terminals, found {n}", where="traffic"
        )
    return b


@register("traffic", "uniform")
def uniform(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random destination, the source included (as in the closed-form hop count)."""
    return rng.integers(n, size=np.shape(src))


@register("traffic", "transpose")
def transpose(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(x, y) -> (y, x) on a k x k arrangement of terminals (id = x + k*y)."""
    k = math.isqrt(n)
    if k * k != n:
        raise ConfigError(
            f"traffic 'transpose' needs a square number of terminals, found {n}", where="traffic"
        )
    x, y = np.remainder(src, k), np.floor_divide(src, k)
    return y + k * x


@register("traffic", "bitcomp")
def bit_complement(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Destination = bitwise complement of the source id."""
    _bits(n, "bitcomp")
    return np.bitwise_and(np.invert(src), n - 1)


@register("traffic", "bitrev")
def bit_reverse(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Destination = the source id's bits reversed."""
    b = _bits(n, "bitrev")
    table = np.array([int(format(i, f"0{b}b")[::-1], 2) for i in range(n)])
    return table[src]


@register("traffic", "hotspot")
def hotspot(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Half the packets go to terminal 0, the rest uniformly (ASSUMPTION: one hotspot, 50%)."""
    shape = np.shape(src)
    return np.where(rng.random(shape) < 0.5, 0, rng.integers(n, size=shape))


@register("traffic", "neighbor")
def nearest_neighbor(src: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Next terminal in id order, wrapping (the +x neighbour on a mesh or torus row... and ring)."""
    return np.remainder(np.add(src, 1), n)


class BernoulliSource:
    """Creates packets for every terminal from ``start`` until ``stop`` (cycles).

    Each terminal injects in each cycle with probability ``p``, independently. Taken in (cycle,
    terminal) order, those trials form one Bernoulli sequence, so the gaps between successive
    injections are geometric: drawing them in blocks costs per packet, whatever the rate, and an
    idle stretch costs nothing.
    """

    BLOCK = 4096  # injections drawn per numpy call

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
        self.on_create = on_create
        # the next trial not yet drawn, as a position cycle * terminals + terminal, and the end
        self.next_trial = start * terminals
        self.end = None if stop is None else stop * terminals
        # drawn injections not yet created, in (cycle, source) order, from ``pos`` on
        self.cycles: list[int] = []
        self.srcs: list[int] = []
        self.dsts: list[int] = []
        self.pos = 0

    def _draw(self) -> bool:
        """Draw the next block of injections; False once ``stop`` is reached."""
        while self.pos >= len(self.cycles):
            if self.end is not None and self.next_trial >= self.end:
                return False
            gaps = self.rng.geometric(self.p, size=self.BLOCK).tolist()
            # positions of the injections (Python ints: the running sum cannot overflow)
            trials = list(accumulate(gaps, initial=self.next_trial - 1))[1:]
            self.next_trial = trials[-1] + 1
            if self.end is not None and trials[-1] >= self.end:
                trials = trials[: bisect_left(trials, self.end)]
            n = self.n
            self.cycles = [t // n for t in trials]
            self.srcs = srcs = [t % n for t in trials]
            self.dsts = np.asarray(self.pattern(np.array(srcs, dtype=np.int64), n, self.rng)).tolist()
            self.pos = 0
        return True

    def draw_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every injection not yet taken, up to ``stop``, as arrays (cycle, source, destination)
        in (cycle, source) order: the packets :meth:`due` would create, from the same random numbers
        drawn in the same calls as :meth:`_draw` (for the batch message level; needs a ``stop``)."""
        if self.end is None:
            raise ValueError("draw_all needs a source with a stop cycle")
        n = self.n
        rest = [np.array(x[self.pos :], dtype=np.int64) for x in (self.cycles, self.srcs, self.dsts)]
        parts = [rest] if len(rest[0]) else []
        self.cycles, self.srcs, self.dsts, self.pos = [], [], [], 0
        while self.next_trial < self.end:
            gaps = self.rng.geometric(self.p, size=self.BLOCK)
            trials = np.cumsum(gaps, dtype=np.int64) + (self.next_trial - 1)
            self.next_trial = int(trials[-1]) + 1
            if trials[-1] >= self.end:
                trials = trials[: np.searchsorted(trials, self.end)]
            srcs = trials % n
            dsts = np.asarray(self.pattern(srcs, n, self.rng), dtype=np.int64)
            parts.append([trials // n, srcs, dsts])
        if not parts:
            return tuple(np.zeros(0, dtype=np.int64) for _ in range(3))  # type: ignore[return-value]
        return tuple(np.concatenate(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]

    def next_cycle(self) -> int | None:
        if self.pos >= len(self.cycles) and not self._draw():
            return None
        return self.cycles[self.pos]

    def due(self, cycle: int) -> list[Packet]:
        out: list[Packet] = []
        while self.pos < len(self.cycles) or self._draw():
            cycles, i = self.cycles, self.pos
            end = len(cycles)
            while i < end and cycles[i] <= cycle:
                pkt = self.new_packet(self.srcs[i], self.dsts[i], self.size, cycles[i])
                if self.on_create is not None:
                    self.on_create(pkt)
                out.append(pkt)
                i += 1
            self.pos = i
            if i < end:  # the next injection is later
                break
        return out
