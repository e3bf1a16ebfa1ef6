"""The one simulation root: SimPy environment, RNG streams, resolved config and stats tree."""

from __future__ import annotations

import time
from typing import Any

import simpy

from sim.core.component import Component
from sim.core.errors import SimulationError
from sim.core.limits import MAX_SIM_PS
from sim.core.rng import RandomStreams
from sim.core.units import PS_PER_S
from sim.stats.tree import StatsTree


class CountingEnvironment(simpy.Environment):
    """A SimPy environment whose clock is integer picoseconds and which counts processed events."""

    TICK_EVENTS = 1 << 12  # how often (in events) ``on_tick`` is called: ~0.1 s at 40k events/s

    def __init__(self) -> None:
        super().__init__(initial_time=0)
        self.events_processed = 0
        self.on_tick: Any = None  # progress display hook; never changes the simulation

    def schedule(self, event: simpy.Event, priority: int = 1, delay: Any = 0) -> None:
        """As SimPy's, refusing a time past :data:`~sim.core.limits.MAX_SIM_PS`: a parameter that
        makes an operation take years stops the run with the time it asked for, before any 64-bit
        time arithmetic downstream can overflow."""
        if self._now + delay > MAX_SIM_PS:
            raise SimulationError(
                f"an event at {(self._now + delay) / PS_PER_S:.3g} s of simulated time is beyond the "
                f"limit of {MAX_SIM_PS / PS_PER_S:.3g} s (~53 days); a rate, bandwidth or latency "
                "parameter is probably off by orders of magnitude"
            )
        super().schedule(event, priority, delay)

    def step(self) -> None:
        self.events_processed += 1
        if not self.events_processed & (self.TICK_EVENTS - 1) and self.on_tick is not None:
            self.on_tick()
        super().step()


class Simulation:
    """Owns everything global to one run; components reach it through ``self.sim``."""

    def __init__(self, seed: int = 0, config: dict[str, Any] | None = None) -> None:
        self.seed = int(seed)
        self.env = CountingEnvironment()
        self.rng = RandomStreams(self.seed)
        self.stats = StatsTree()
        self.config: dict[str, Any] = dict(config or {})
        self.roots: list[Component] = []
        self._elaborated = False
        self.wall_s = 0.0

    def add_root(self, component: Component) -> None:
        if any(r.name == component.name for r in self.roots):
            raise ValueError(f"two root components named {component.name!r}")
        self.roots.append(component)

    def components(self) -> list[Component]:
        return [c for root in self.roots for c in root.walk()]

    def start(self) -> None:
        """Elaborate and start every component (idempotent)."""
        if self._elaborated:
            return
        self._elaborated = True
        comps = self.components()
        for c in comps:
            c.elaborate()
        for c in comps:
            c.run()

    def run(self, until: int | simpy.Event | None = None) -> None:
        """Start components if needed and advance the clock (``until`` in ps or an event)."""
        self.start()
        t0 = time.perf_counter()
        try:
            self.env.run(until=until)
        finally:
            self.wall_s += time.perf_counter() - t0

    def finalize(self) -> None:
        for c in self.components():
            c.finalize()

    @property
    def now(self) -> int:
        return int(self.env.now)

    def performance(self) -> dict[str, float]:
        """Simulator speed figures reported in every run summary."""
        wall = self.wall_s
        events = self.env.events_processed
        sim_s = self.now / PS_PER_S
        return {
            "events": events,
            "wall_s": wall,
            "events_per_s": events / wall if wall > 0 else 0.0,
            "sim_s_per_wall_s": sim_s / wall if wall > 0 else 0.0,
        }

    def results(self) -> dict[str, Any]:
        """Stats tree plus resolved config; what writers serialise."""
        return {
            "seed": self.seed,
            "sim_time_ps": self.now,
            "config": self.config,
            "stats": self.stats.collect(self.now),
        }
