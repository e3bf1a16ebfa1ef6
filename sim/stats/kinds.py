"""Statistic kinds. Components declare them; logic only calls ``add``/``observe``/``set``.

Derivation (means, percentiles, rates) happens in :meth:`summary`, called at collection time, so the
hot path stays a few attribute updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from sim.stats.percentiles import QUANTILES, percentile
from sim.stats.sketch import EXACT_SAMPLES, LogSketch


@dataclass
class Stat:
    """Common part: a name within its component, a unit and a doc line."""

    name: str
    unit: str = ""
    doc: str = ""

    def summary(self, now_ps: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Counter(Stat):
    """A monotone total (requests, bytes, picojoules)."""

    value: float = 0

    def add(self, amount: float = 1) -> None:
        self.value += amount

    def summary(self, now_ps: int) -> float:
        return self.value


@dataclass
class Gauge(Stat):
    """A value derived at the end of a run (utilisation, projected lifetime); set, not accumulated."""

    value: float = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def summary(self, now_ps: int) -> float:
        return self.value


@dataclass
class Tally(Stat):
    """Observations of a quantity (latencies). With ``keep``, percentiles are exact up to
    :data:`~sim.stats.sketch.EXACT_SAMPLES` samples; past that the samples move into a
    :class:`~sim.stats.sketch.LogSketch` (0.5% relative error) so memory stays bounded."""

    keep: bool = True
    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    samples: list[float] = field(default_factory=list)
    sketch: LogSketch | None = None

    def observe(self, x: float) -> None:
        self.n += 1
        self.total += x
        self.total_sq += x * x
        if x < self.lo:
            self.lo = x
        if x > self.hi:
            self.hi = x
        if self.keep:
            if self.sketch is not None:
                self.sketch.add(x)
            else:
                self.samples.append(x)
                if len(self.samples) >= EXACT_SAMPLES:
                    self.sketch = LogSketch()
                    self.sketch.extend(self.samples)
                    self.samples = []

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def percentile(self, q: float) -> float:
        return self.sketch.quantile(q) if self.sketch is not None else percentile(self.samples, q)

    def summary(self, now_ps: int) -> dict[str, float]:
        if self.n == 0:
            return {"n": 0}
        var = max(0.0, self.total_sq / self.n - self.mean**2)
        out = {
            "n": self.n,
            "mean": self.mean,
            "std": math.sqrt(var),
            "min": self.lo,
            "max": self.hi,
        }
        if self.samples or self.sketch is not None:
            out.update({f"p{q}": self.percentile(q) for q in QUANTILES})
        return out


@dataclass
class Level(Stat):
    """A time-weighted level (queue occupancy, busy units): mean over time and maximum."""

    value: float = 0.0
    since_ps: int = 0
    area: float = 0.0
    hi: float = 0.0
    start_ps: int = 0

    def set(self, value: float, now_ps: int) -> None:
        self.area += self.value * (now_ps - self.since_ps)
        self.since_ps = now_ps
        self.value = value
        if value > self.hi:
            self.hi = value

    def add(self, delta: float, now_ps: int) -> None:
        # set(value + delta), written out: queue levels change on every request of a hot path
        value = self.value
        self.area += value * (now_ps - self.since_ps)
        self.since_ps = now_ps
        value += delta
        self.value = value
        if value > self.hi:
            self.hi = value

    def time_average(self, now_ps: int) -> float:
        span = now_ps - self.start_ps
        if span <= 0:
            return 0.0
        return (self.area + self.value * (now_ps - self.since_ps)) / span

    def summary(self, now_ps: int) -> dict[str, float]:
        return {"mean": self.time_average(now_ps), "max": self.hi, "final": self.value}


@dataclass
class Histogram(Stat):
    """Counts in fixed bins ``[edges[i], edges[i+1])``; under- and overflow kept apart."""

    edges: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)
    underflow: int = 0
    overflow: int = 0

    def __post_init__(self) -> None:
        if len(self.edges) < 2 or any(b <= a for a, b in pairwise(self.edges)):
            raise ValueError(f"histogram {self.name!r} needs increasing edges, got {self.edges}")
        self.counts = [0] * (len(self.edges) - 1)

    def observe(self, x: float) -> None:
        if x < self.edges[0]:
            self.underflow += 1
        elif x >= self.edges[-1]:
            self.overflow += 1
        else:
            i = int(np.searchsorted(self.edges, x, side="right")) - 1
            self.counts[i] += 1

    def summary(self, now_ps: int) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "counts": list(self.counts),
            "underflow": self.underflow,
            "overflow": self.overflow,
        }
