"""Component base: a node of the component tree with typed params, declared stats and a lifecycle.

Lifecycle, driven by :class:`sim.core.simulation.Simulation`:

1. ``build``     (in ``__init__``): create children.
2. ``elaborate``: connect to peers, check the assembled system.
3. ``run``       : start SimPy processes.
4. ``finalize``  : derive end-of-run statistics (no new events).

Components never print, never read files and never know about the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from sim.core.params import ParamSet
from sim.stats.tree import StatDecl

if TYPE_CHECKING:
    from sim.core.simulation import Simulation


class Component:
    """Base of everything simulated. Subclasses declare ``Params`` and ``STATS`` on the class."""

    Params: ClassVar[type[ParamSet]] = ParamSet
    STATS: ClassVar[tuple[StatDecl, ...]] = ()

    def __init__(
        self,
        sim: Simulation,
        name: str,
        params: ParamSet | None = None,
        parent: Component | None = None,
    ) -> None:
        if not name or "." in name:
            raise ValueError(f"component name must be non-empty and dot-free, got {name!r}")
        self.sim = sim
        self.env = sim.env
        self.name = name
        self.parent = parent
        self.children: list[Component] = []
        self.path: str = f"{parent.path}.{name}" if parent else name
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{self.path}: params must be {self.Params.__name__}")
        self.stat = sim.stats.declare(self.path, self.declared_stats())
        if parent is None:
            sim.add_root(self)
        else:
            parent.children.append(self)
        self.build()

    @classmethod
    def declared_stats(cls) -> list[StatDecl]:
        """Stats of this class and its bases (base first, no duplicates)."""
        seen: dict[str, StatDecl] = {}
        for klass in reversed(cls.__mro__):
            for decl in klass.__dict__.get("STATS", ()):
                seen[decl.name] = decl
        return list(seen.values())

    # -- lifecycle hooks -------------------------------------------------------------------
    def build(self) -> None:
        """Create children. Called once from ``__init__``."""

    def elaborate(self) -> None:
        """Connect to other components and check the assembled system."""

    def run(self) -> None:
        """Start this component's SimPy processes."""

    def finalize(self) -> None:
        """Derive end-of-run statistics."""

    # -- tree ------------------------------------------------------------------------------
    def walk(self) -> Iterator[Component]:
        """This component and all descendants, depth first, in creation order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def rng(self, stream: str = "default") -> Any:
        """A random stream private to this component (named by its path)."""
        return self.sim.rng[f"{self.path}.{stream}"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"
