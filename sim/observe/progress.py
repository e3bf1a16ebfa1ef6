"""Progress of a long command on stderr: how far it got, how fast, and when it will end.

A display only: it reads counters now and then and never changes a simulation. On a terminal it
draws a rich bar (or, without the ``ui`` extra, one line rewritten in place); anywhere else (a pipe,
a CI log, ``2> log``) it writes one plain status line every :data:`STATUS_EVERY_S` seconds, so a
long run is never silent. ``--quiet`` turns both off. Once :data:`LONG_AFTER_S` seconds have passed,
a run whose estimated total is past :data:`LONG_RUN_S` says so once, with the estimate.

The interval can be changed with the environment variable ``MEMWALL_STATUS_EVERY`` (seconds, > 0),
for tests and for logs that want fewer lines.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

STATUS_EVERY_S = 3.0
"""Seconds between status lines when stderr is not a terminal (a tick of 4,096 events adds a little:
 at most 5 s apart down to ~2,000 events/s)."""
LONG_AFTER_S = 2.0
"""Wall seconds after which the first estimate of the total is trusted enough to warn on."""
LONG_RUN_S = 60.0
"""An estimated total wall time past this is announced as a long run."""
DRAW_EVERY_S = 0.1
"""Seconds between redraws of the bar on a terminal."""
ENV_EVERY = "MEMWALL_STATUS_EVERY"


def _interval() -> float:
    text = os.environ.get(ENV_EVERY)
    if not text:
        return STATUS_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        from sim.core.errors import ConfigError

        raise ConfigError(f"expected a number of seconds > 0, found {text!r}", where=ENV_EVERY)
    return value


def clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` for an ETA or a wall time."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Status:
    """Progress of one command: ``update(done, total, details)`` now and then, as often as is cheap.

    ``done`` and ``total`` are in the command's own unit (iterations, tokens, bytes, cycles); with
    a total the line carries a percentage and an ETA. ``details`` are short phrases shown after it.
    """

    def __init__(
        self, command: str, *, quiet: bool = False, stream: TextIO | None = None, unit: str = ""
    ) -> None:
        self.command = command
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet
        self.tty = self.enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = _interval()
        self.bar: Any = None
        self.task: Any = None
        self.t0 = 0.0
        self.last_line = 0.0
        self.last_draw = 0.0
        self.warned = False
        self.lines = 0  # status lines written (not counting the bar)

    def __enter__(self) -> Status:
        self.t0 = self.last_line = time.perf_counter()
        if self.tty:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

                self.bar = Progress(
                    TextColumn(self.command),
                    BarColumn(),
                    TextColumn("{task.fields[details]}"),
                    TimeRemainingColumn(),
                    transient=True,
                    console=Console(file=self.stream),
                )
                self.bar.start()
                self.task = self.bar.add_task(self.command, total=None, details="")
            except ImportError:
                self.bar = None
        return self

    def due(self) -> bool:
        """Whether an update now would show anything (callers skip costly counting otherwise)."""
        if not self.enabled:
            return False
        now = time.perf_counter()
        if self.tty:
            return now - self.last_draw >= DRAW_EVERY_S
        return now - self.last_line >= self.every or (not self.warned and now - self.t0 >= LONG_AFTER_S)

    def update(self, done: float, total: float | None = None, details: Sequence[str] = ()) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        self.last_draw = now
        wall = now - self.t0
        eta = self._eta(done, total, wall)
        if not self.warned and wall >= LONG_AFTER_S and eta is not None and wall + eta > LONG_RUN_S:
            self.warned = True
            self._say(
                f"{self.command}: this looks like a long run: about {clock(wall + eta)} in all at the "
                f"pace of its first {wall:.0f} s (status every {self.every:g} s; --quiet hides it)"
            )
        text = self._text(done, total, eta, details)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, details=", ".join(details))
        elif self.tty:
            print(f"\r\033[K{text}", end="", file=self.stream, flush=True)
        elif now - self.last_line >= self.every:
            self.last_line = now
            self.lines += 1
            print(text, file=self.stream, flush=True)

    def _eta(self, done: float, total: float | None, wall: float) -> float | None:
        if not total or done <= 0 or wall <= 0:
            return None
        return max(0.0, wall * (total - done) / done)

    def _text(self, done: float, total: float | None, eta: float | None, details: Iterable[str]) -> str:
        unit = f" {self.unit}" if self.unit else ""
        head = (
            f"{done:,.0f}{unit}"
            if total is None
            else f"{100 * done / total:.0f}% ({done:,.0f}/{total:,.0f}{unit})"
        )
        tail = "" if eta is None else f", ETA {clock(eta)}"
        body = ", ".join([head, *details])
        return f"{self.command}: {body}, {clock(time.perf_counter() - self.t0)} elapsed{tail}"

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False)
        else:
            prefix = "\r\033[K" if self.tty else ""
            print(f"{prefix}{line}", file=self.stream, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.tty:
            print("\r\033[K", end="", file=self.stream, flush=True)  # clear the status line


def events_per_s(sim: Any, status: Status) -> str:
    wall = time.perf_counter() - status.t0
    return f"{sim.env.events_processed / wall:,.0f} events/s" if wall > 0 else "0 events/s"


class RunProgress:
    """``memwall run``: requests done, iterations, simulated time and events/s; a percentage and ETA
    from the iterations of a fixed batch, or from the tokens (prompt + output) of the requests begun,
    when the run's requests are known up front."""

    def __init__(self, spec: Any, quiet: bool, stream: TextIO | None = None) -> None:
        fixed = spec.requests is None
        self.status = Status(
            "memwall run", quiet=quiet, stream=stream, unit="iterations" if fixed else "tokens"
        )
        self.fixed_steps = spec.steps if fixed else None
        requests = spec.requests if isinstance(spec.requests, list | tuple) else None
        self.requests = None if requests is None else len(requests)
        self.work = None if requests is None else sum(r.prompt_tokens + r.output_tokens for r in requests)

    def __enter__(self) -> RunProgress:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.status.__exit__(*exc)

    @property
    def enabled(self) -> bool:
        return self.status.enabled

    def update(self, drivers: Any, sim: Any) -> None:
        """Called with the run's driver (or every replica's) and the simulation."""
        if not self.status.due():
            return
        drivers = drivers if isinstance(drivers, list | tuple) else [drivers]
        iterations = sum(len(d.iterations) for d in drivers)
        timing = [f"{sim.env.now / 1e12:.3f} s simulated", events_per_s(sim, self.status)]
        if self.fixed_steps is not None:
            self.status.update(iterations, self.fixed_steps * len(drivers), timing)
            return
        records = [r for d in drivers for r in d.records.values()]
        finished = sum(1 for r in records if r.generated >= r.request.output_tokens)
        of = f" of {self.requests:,}" if self.requests is not None else ""
        begun = sum(r.request.prompt_tokens + r.generated for r in records if r.generated)
        self.status.update(
            begun, self.work, [f"{finished:,}{of} requests done", f"{iterations:,} iterations", *timing]
        )
