"""Statistics kept beside the logic: kinds, declarations and the stats tree."""

from sim.stats.kinds import Counter, Histogram, Level, Tally
from sim.stats.tree import StatDecl, StatsTree, counter, histogram, level, tally

__all__ = [
    "Counter",
    "Histogram",
    "Level",
    "StatDecl",
    "StatsTree",
    "Tally",
    "counter",
    "histogram",
    "level",
    "tally",
]
