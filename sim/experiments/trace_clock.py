"""The ``simulated`` trace clock: ``memwall trace gen --clock simulated``.

The request trace is served by the simulated system, as ``memwall run`` serves it (the same
batching policy, driver defaults, software stack and fabric), and every batch the policy formed is
handed to the trace writer with the time its iteration ended. Replaying the trace on the same
system and mapping therefore reproduces the live run's batches and timing (a test checks TTFT and
TPOT), which the ``estimated`` clock cannot: it ignores collectives and host time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sim.core.errors import SimulationError
from sim.core.registry import register
from sim.serving.scheduler import Batch
from sim.serving.tracegen import ClockInputs, check_finished


class _Recorder:
    """A batching policy whose batches are kept, in order, as the driver takes them."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.batches: list[Batch] = []

    def next_batch(self, now: int) -> Batch | None:
        batch = self.policy.next_batch(now)
        if batch is not None:
            self.batches.append(batch)
        return batch

    def __getattr__(self, name: str) -> Any:  # everything else is the policy's own
        return getattr(self.policy, name)


@register("trace_clock", "simulated")
def simulated_clock(x: ClockInputs) -> Iterator[tuple[Batch, int]]:
    """Simulate the system serving the requests; yield its batches with their end times."""
    from sim.experiments.run import RunSpec, execute

    recorder = _Recorder(x.policy)
    spec = RunSpec(model=x.model, system=x.system, mapping=x.mapping, requests=list(x.requests))
    spec.driver = type(spec.driver)(max_iterations=x.max_iterations)
    summary, driver, _ = execute(spec, scheduler=recorder)  # type: ignore[arg-type]
    if "error" in summary:
        raise SimulationError(f"the simulated clock stopped: {summary['error']}")
    unfinished = not x.policy.idle
    check_finished(x.policy, len(driver.iterations), x.max_iterations, unfinished)
    for batch, it in zip(recorder.batches, driver.iterations, strict=True):
        yield batch, it.end_ps
