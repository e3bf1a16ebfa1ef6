"""Statistics kept beside the logic: kinds, declarations and the stats tree."""

from sim.stats.kinds import Counter, Gauge, Histogram, Level, Tally
from sim.stats.tree import StatDecl, StatsTree, counter, gauge, histogram, level, tally

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "Level",
    "StatDecl",
    "StatsTree",
    "Tally",
    "counter",
    "gauge",
    "histogram",
    "level",
    "tally",
]
