"""Blame: what each operation on an iteration's critical path waited for, as typed values.

An op's time is split into what its kernels needed (``memory bandwidth`` of the memory a kernel's
bytes came from, ``memory latency`` of a memory read on demand beyond the latency the kernel model
was fitted with, ``compute die``, ``kernel overhead``: the fixed cost of every kernel,
``near-memory MACs``), what the memory streams added beyond the kernels (``prefetch stall``, a
memory's queueing cause), and the time between ops (``collective``, ``pipeline transfer``,
``software overhead``: the serving engine's host time) and, in a disaggregated run, between the
pools (``kv transfer``: a request's KV on the scale-out link). Each part is a :class:`Cause`:
what was waited for (``kind``), which one (``resource``: a memory's name, a collective's op) and the
part of the hardware it belongs to (``unit``), so observers group and draw causes without parsing
text. ``Cause.label`` (``"memory bandwidth (hbm)"``) is how results name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

MEMORY = "memory"
COMPUTE = "compute"
COMPUTE_WAIT = "compute wait"
FABRIC = "fabric"
SOFTWARE_UNIT = "software"


class Cause(NamedTuple):
    """One reason an op took time: ``kind`` of wait, on which ``resource``, in which ``unit``."""

    kind: str
    resource: str = ""
    unit: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.resource})" if self.resource else self.kind


def memory_bandwidth(memory: str) -> Cause:
    return Cause("memory bandwidth", memory, MEMORY)


def memory_wait(kind: str, memory: str) -> Cause:
    """A memory's queueing cause, named by the device (``memory queueing``, ``TSV busy / ...``)."""
    return Cause(kind, memory, MEMORY)


def memory_latency(memory: str) -> Cause:
    """Kernels reading a memory on demand (no prefetch buffer) waiting for its first bytes."""
    return Cause("memory latency", memory, MEMORY)


def prefetch_stall(memory: str) -> Cause:
    return Cause("prefetch stall", memory, MEMORY)


COMPUTE_DIE = Cause("compute die", "", COMPUTE)
KERNEL_OVERHEAD = Cause("kernel overhead", "", COMPUTE)
SOFTWARE = Cause("software overhead", "", SOFTWARE_UNIT)
PIPELINE_TRANSFER = Cause("pipeline transfer", "", FABRIC)
KV_TRANSFER = Cause("kv transfer", "", FABRIC)
"""A request's KV cache moving from its prefill replica to its decode replica (disaggregation)."""


def near_memory_macs(memory: str) -> Cause:
    return Cause("near-memory MACs", memory, COMPUTE)


def collective(op: str) -> Cause:
    return Cause("collective", op, FABRIC)


def collective_launch(op: str) -> Cause:
    """A collective's fixed start-up (library and kernel launch, synchronisation) before its transfers."""
    return Cause("collective launch", op, FABRIC)


@dataclass
class Blame:
    """Critical-path time (ps) by :class:`Cause`, for one op, one iteration or a whole run."""

    by_cause: dict[Cause, float] = field(default_factory=dict)

    def add(self, cause: Cause, ps: float) -> None:
        if ps > 0:
            self.by_cause[cause] = self.by_cause.get(cause, 0.0) + ps

    def merge(self, other: Blame) -> None:
        for cause, ps in other.by_cause.items():
            self.add(cause, ps)

    def by_label(self) -> dict[str, float]:
        """Time (ps) by label, in the order causes were first seen."""
        out: dict[str, float] = {}
        for cause, ps in self.by_cause.items():
            out[cause.label] = out.get(cause.label, 0.0) + ps
        return out

    def fractions(self) -> dict[str, float]:
        """Share of the blamed time by label, sorted by label."""
        labels = self.by_label()
        total = sum(labels.values())
        return {k: v / total for k, v in sorted(labels.items())} if total else {}

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` largest causes as (label, ps)."""
        return sorted(self.by_label().items(), key=lambda kv: -kv[1])[:n]
