"""The stats tree: every component's declared statistics, addressed by dotted scope name.

Components declare stats on their class (:class:`StatDecl`); the tree instantiates them per
component instance and collects everything into one nested, key-sorted dict at the end of a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sim.stats.kinds import Counter, Gauge, Histogram, Level, Stat, Tally

STAT_KINDS: dict[str, type[Stat]] = {
    "counter": Counter,
    "gauge": Gauge,
    "tally": Tally,
    "level": Level,
    "histogram": Histogram,
}


@dataclass(frozen=True)
class StatDecl:
    """A statistic a component class declares: name, kind, unit, doc and extra constructor args."""

    name: str
    kind: str
    unit: str
    doc: str
    options: tuple[tuple[str, Any], ...] = ()

    def make(self) -> Stat:
        return STAT_KINDS[self.kind](name=self.name, unit=self.unit, doc=self.doc, **dict(self.options))


def counter(name: str, unit: str, doc: str) -> StatDecl:
    return StatDecl(name, "counter", unit, doc)


def gauge(name: str, unit: str, doc: str) -> StatDecl:
    return StatDecl(name, "gauge", unit, doc)


def tally(name: str, unit: str, doc: str, *, keep: bool = True) -> StatDecl:
    return StatDecl(name, "tally", unit, doc, (("keep", keep),))


def level(name: str, unit: str, doc: str) -> StatDecl:
    return StatDecl(name, "level", unit, doc)


def histogram(name: str, unit: str, doc: str, edges: Iterable[float]) -> StatDecl:
    return StatDecl(name, "histogram", unit, doc, (("edges", tuple(edges)),))


@dataclass
class StatsTree:
    """scope path -> {stat name -> Stat}."""

    groups: dict[str, dict[str, Stat]] = field(default_factory=dict)

    def declare(self, scope: str, decls: Iterable[StatDecl]) -> SimpleNamespace:
        """Instantiate ``decls`` under ``scope``; returns a namespace for fast attribute access."""
        if scope in self.groups:
            raise ValueError(f"stats scope {scope!r} declared twice")
        group = {d.name: d.make() for d in decls}
        self.groups[scope] = group
        return SimpleNamespace(**group)

    def collect(self, now_ps: int) -> dict[str, Any]:
        """Nested dict of every stat's summary, ordered by scope path (deterministic)."""
        out: dict[str, Any] = {}
        for scope in sorted(self.groups):
            node = out
            for part in scope.split("."):
                node = node.setdefault(part, {})
            for name in sorted(self.groups[scope]):
                node[name] = self.groups[scope][name].summary(now_ps)
        return out

    def get(self, scope: str, name: str) -> Stat:
        return self.groups[scope][name]
