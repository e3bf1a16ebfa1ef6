"""Registry of named extension points, filled by decorators where each implementation lives.

Kinds are groups such as ``memory``, ``prefetch_policy``, ``address_mapping`` or ``preset``::

    @register("memory", "hbf")
    class HighBandwidthFlash(MemoryDevice): ...

Out-of-tree packages register through the ``memwall.plugins`` entry-point group: each entry point
names a module (or callable) whose import performs its registrations. Built-in modules are imported
lazily the first time the registry is consulted, so ``lookup`` never depends on import order.

The registry is the one piece of process-wide state in memwall; it is written only at import time
(by decorators) and read afterwards.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar

from sim.core.errors import RegistryError

T = TypeVar("T")

ENTRY_POINT_GROUP = "memwall.plugins"

# Modules whose import registers the built-in implementations.
BUILTIN_MODULES = (
    "sim.memory.hbf",
    "sim.memory.prefetch",
    "sim.memory.presets_hbf",
    "sim.memory.dram3d",
    "sim.memory.address_mapping",
    "sim.memory.presets_dram",
    "sim.topology.generators",
    "sim.fabric.arbiter",
    "sim.fabric.routing",
    "sim.fabric.traffic",
    "sim.fabric.collectives",
    "sim.fabric.router",
    "sim.compute.die",
    "sim.compute.presets",
    "sim.system.software",
    "sim.compute.nearmem",
    "sim.model.dtype",
    "sim.model.config",
    "sim.model.catalog",
    "sim.requests.readers",
    "sim.requests.synthetic",
    "sim.requests.load",
    "sim.serving.batching",
    "sim.serving.router",
    "sim.serving.failures",
    "sim.serving.disagg",
    "sim.serving.prefix_cache",
    "sim.serving.tracegen",
    "sim.experiments.trace_clock",
)


@dataclass
class Registry:
    """kind -> name -> object. Use the module-level :data:`REGISTRY` via the helper functions."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded: bool = False

    def add(self, kind: str, name: str, obj: Any) -> None:
        table = self.entries.setdefault(kind, {})
        if name in table and table[name] is not obj:
            raise RegistryError(f"{kind} {name!r} is registered twice ({table[name]!r} and {obj!r})")
        table[name] = obj

    def load(self) -> None:
        if self.loaded:
            return
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        self.loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plugin must not take the CLI down silently
                raise RegistryError(f"plugin entry point {ep.name!r} failed to load: {exc}") from exc
            if callable(loaded) and not isinstance(loaded, type):
                loaded()


REGISTRY = Registry()


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: register ``obj`` as ``name`` within ``kind``; sets ``obj.registered_name``."""

    def deco(obj: T) -> T:
        REGISTRY.add(kind, name, obj)
        if isinstance(obj, type):
            obj.registered_name = name  # type: ignore[attr-defined]
            obj.registered_kind = kind  # type: ignore[attr-defined]
        return obj

    return deco


def lookup(kind: str, name: str) -> Any:
    """The object registered as ``name`` in ``kind``; an unknown name lists the known ones."""
    REGISTRY.load()
    table = REGISTRY.entries.get(kind)
    if table is None:
        raise RegistryError(f"unknown kind {kind!r}; expected one of: {', '.join(kinds())}")
    if name not in table:
        raise RegistryError(f"unknown {kind} {name!r}; expected one of: {', '.join(sorted(table))}")
    return table[name]


def kinds() -> list[str]:
    REGISTRY.load()
    return sorted(REGISTRY.entries)


def names(kind: str) -> list[str]:
    REGISTRY.load()
    return sorted(REGISTRY.entries.get(kind, {}))


def items(kind: str) -> Iterator[tuple[str, Any]]:
    REGISTRY.load()
    yield from sorted(REGISTRY.entries.get(kind, {}).items())


def find(name: str) -> list[tuple[str, Any]]:
    """Every (kind, obj) registered under ``name`` (for ``memwall describe NAME``)."""
    REGISTRY.load()
    return [(kind, table[name]) for kind, table in sorted(REGISTRY.entries.items()) if name in table]
