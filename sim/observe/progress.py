"""Progress of a long simulation on stderr: iterations done, events/s and an ETA.

A display only: it reads the driver and the simulation now and then and never changes either. With
``rich`` installed (the ``ui`` extra) it draws a bar; without it, one line rewritten in place.
"""

from __future__ import annotations

import sys
from typing import Any


class RunProgress:
    """A progress bar on stderr while a run simulates: iterations, events/s, ETA (rich if present)."""

    def __init__(self, spec: Any, enabled: bool) -> None:
        self.enabled = enabled
        self.total = spec.steps if spec.requests is None else None
        self.bar: Any = None
        self.t0 = 0.0

    def __enter__(self) -> RunProgress:
        import time

        self.t0 = time.perf_counter()
        if self.enabled:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                self.bar = Progress(
                    TextColumn("simulating"),
                    BarColumn(),
                    TextColumn("{task.completed} it"),
                    TextColumn("{task.fields[rate]}"),
                    TimeRemainingColumn(),
                    transient=True,
                )
                self.bar.start()
                self.task = self.bar.add_task("run", total=self.total, rate="")
            except ImportError:
                self.bar = None
        return self

    def update(self, driver: Any, sim: Any) -> None:
        import time

        done = len(driver.iterations)
        wall = time.perf_counter() - self.t0
        rate = f"{sim.env.events_processed / wall:,.0f} events/s" if wall > 0 else ""
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=rate)
        else:
            total = f"/{self.total}" if self.total else ""
            print(f"\rsimulating: {done}{total} iterations, {rate}", end="", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)  # clear the status line
