"""A streaming quantile sketch with a stated relative error, for tallies that outgrow their samples.

Exact percentiles need every sample; a replay of a real trace observes hundreds of millions of
memory latencies. Past :data:`EXACT_SAMPLES` a :class:`~sim.stats.kinds.Tally` moves its samples
into a :class:`LogSketch`: logarithmic buckets of ratio ``gamma = (1 + a) / (1 - a)``, so every
positive value is represented by its bucket's midpoint within a relative error ``a``
(:data:`RELATIVE_ERROR`, 0.5%) and a quantile is exact to within that error of the sample at the
nearest rank (DDSketch, Masson, Rim & Lee, VLDB 2019). Memory is bounded by the range of values,
not their number: ~1,000 buckets cover nine decades at 0.5%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

RELATIVE_ERROR = 0.005
EXACT_SAMPLES = 1 << 16
"""Samples a tally keeps before it sketches (percentiles are exact up to here)."""
BUCKETS_KEPT = 1 << 12
"""Distinct positive values whose bucket a sketch remembers (bounds the memo's memory)."""


class LogSketch:
    """Counts of values in logarithmic buckets; zero and negative values in their own buckets."""

    __slots__ = ("_bucket", "_gamma_log", "count", "negative", "positive", "zeros")

    def __init__(self, relative_error: float = RELATIVE_ERROR) -> None:
        gamma = (1 + relative_error) / (1 - relative_error)
        self._gamma_log = math.log(gamma)
        # bucket of each positive value seen (latencies repeat a few thousand values; a log each is
        # most of the cost of adding one), up to BUCKETS_KEPT values
        self._bucket: dict[float, int] = {}
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, x: float) -> None:
        self.count += 1
        if x > 0:
            k = self._bucket.get(x)
            if k is None:
                k = math.ceil(math.log(x) / self._gamma_log)
                if len(self._bucket) < BUCKETS_KEPT:
                    self._bucket[x] = k
            self.positive[k] = self.positive.get(k, 0) + 1
        elif x < 0:
            k = math.ceil(math.log(-x) / self._gamma_log)
            self.negative[k] = self.negative.get(k, 0) + 1
        else:
            self.zeros += 1

    def extend(self, xs: Iterable[float]) -> None:
        for x in xs:
            self.add(x)

    def _value(self, k: int) -> float:
        """The bucket's representative: within the relative error of every value in it."""
        g = math.exp(self._gamma_log)
        return 2 * g**k / (1 + g)

    def quantile(self, q: float) -> float:
        """The value at rank ``q`` (0-100) of the observations, within the relative error."""
        if self.count == 0:
            return 0.0
        rank = q / 100 * (self.count - 1)
        seen = 0
        for k in sorted(self.negative, reverse=True):  # most negative first
            seen += self.negative[k]
            if seen > rank:
                return -self._value(k)
        seen += self.zeros
        if seen > rank:
            return 0.0
        for k in sorted(self.positive):
            seen += self.positive[k]
            if seen > rank:
                return self._value(k)
        return self._value(max(self.positive)) if self.positive else 0.0
